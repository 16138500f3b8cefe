"""The preprocess stage: bad input never stops the run, every skip is counted by reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from fixtures.shards import read_shard
from fixtures.tuh import TUH_ELECTRODES, build_tuab, write_tuh_edf
from typer.testing import CliRunner

import biofound_cli.store.worker_pool as worker_pool_module
from biofound_cli.cli.app import app
from biofound_cli.corpora.base import Recording, UnusableRecording
from biofound_cli.corpora.tuab import TUABCorpus
from biofound_cli.errors import RecipeError
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.signals.chain import ChainConfig, run_chain
from biofound_cli.store.preprocess_config import resolve_chain_config
from biofound_cli.store.worker_pool import started_pool, worker_start_method

runner = CliRunner()
GOOD = ["aaaaaaaa_s001_t000", "aaaaaaab_s001_t000", "aaaaaaac_s002_t001", "aaaaaaad_s001_t000", "aaaaaaae_s001_t000"]


@pytest.fixture(scope="module")
def messy_root(tmp_path_factory):
    """The TUAB fixture plus one file for each way a recording can be unusable."""
    edf = build_tuab(tmp_path_factory.mktemp("messy"))
    folder = edf / "train" / "normal" / "01_tcp_ar"
    (folder / "zzbroken_s001_t000.edf").write_bytes(
        b"0       this is not an EDF header".ljust(300, b"x")
    )  # whole, not cut short: not EDF
    write_tuh_edf(folder / "zznoc3_s001_t000.edf", drop=("C3",))
    write_tuh_edf(folder / "zzslow_s001_t000.edf", sfreq=128.0)
    write_tuh_edf(folder / "zzflat_s001_t000.edf", flat=True)
    write_tuh_edf(folder / "zzshort_s001_t000.edf", seconds=3.0)
    return edf


def _preprocess(root, out, *extra):
    return runner.invoke(app, ["preprocess", "tuab", "--root", str(root), "--out", str(out), "--json", "--no-progress", *extra])


def test_each_bad_file_is_skipped_with_its_reason(messy_root, tmp_path):
    result = _preprocess(messy_root, tmp_path)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["found"] == 10 and summary["written"] == 5 and summary["skipped"] == 5
    assert summary["skipped_by_reason"] == {
        "flat_channels": 1, "missing_channels": 1, "sfreq_too_low": 1, "too_short": 1, "unreadable": 1
    }  # fmt: skip
    assert sorted(p.stem for p in (tmp_path / "tuab").iterdir()) == GOOD
    stderr = result.stderr
    [broken] = [line for line in stderr.splitlines() if "zzbroken_s001_t000.edf: not a readable EDF file (" in line]
    assert broken.endswith("); check the file, or copy it again if a copy was cut short")  # it said why alone
    assert "zznoc3_s001_t000.edf: missing required channel C3;" in stderr
    assert "zzslow_s001_t000.edf: sampling rate 128 Hz is too low for h_freq=75 Hz" in stderr
    assert "zzflat_s001_t000.edf: 22 of 22 channels are flat" in stderr
    assert "zzshort_s001_t000.edf: 3 s of signal (768 samples at 256 Hz) gives no whole 5 s window (1280 samples)" in stderr
    report = json.loads((tmp_path / "preprocess_report.tuab.json").read_text())
    by_id = {entry["recording_id"]: entry for entry in report["files"]}
    assert by_id["zznoc3_s001_t000"]["reason"] == "missing_channels" and "C3" in by_id["zznoc3_s001_t000"]["message"]
    assert by_id["aaaaaaaa_s001_t000"]["status"] == "written" and by_id["aaaaaaaa_s001_t000"]["windows"] == 4
    assert report["config"]["sfreq"] == 256.0


def test_thresholds_come_from_the_recipe(messy_root, tmp_path):
    result = _preprocess(
        messy_root, tmp_path, "--set", "preprocess.max_flat_fraction=1.0", "--set", "preprocess.h_freq=60", "--workers", "2"
    )
    summary = json.loads(result.stdout)
    assert "flat_channels" not in summary["skipped_by_reason"] and "sfreq_too_low" not in summary["skipped_by_reason"]
    assert summary["written"] == 7
    # The flat recording now written is said to be, as predict says it (the chain warns): one line, the report's counts.
    assert summary["notes"] == {"flat_channels_kept": 22} and "flat_channels_kept" not in summary  # said once
    stderr = " ".join(result.stderr.split())
    assert stderr.count("zzflat_s001_t000.edf: 22 of 22 channels are flat (std < 1e-06): FP1-F7, F7-T3,") == 1, stderr
    assert "the recording is used all the same, as preprocess.max_flat_fraction = 1 allows" in stderr
    report = json.loads((tmp_path / "preprocess_report.tuab.json").read_text())
    kept = {entry["recording_id"]: entry["flat_channels_kept"] for entry in report["files"] if entry["flat_channels_kept"]}
    assert list(kept) == ["zzflat_s001_t000"] and len(kept["zzflat_s001_t000"]) == 22
    assert report["notes"] == {"flat_channels_kept": 22} and "flat_channels_kept" not in report


def test_every_file_failing_exits_1_with_a_report(tmp_path):
    root = tmp_path / "raw"
    write_tuh_edf(root / "train" / "normal" / "01_tcp_ar" / "a_s001_t000.edf", drop=("O1", "O2"))
    (root / "train" / "abnormal").mkdir(parents=True)
    (root / "train" / "abnormal" / "b_s001_t000.edf").write_text("nonsense")
    result = _preprocess(root, tmp_path / "out")
    assert result.exit_code == 1
    assert "every one of the 2 recordings" in result.stderr and "missing_channels: 1, unreadable: 1" in result.stderr
    report = json.loads((tmp_path / "out" / "preprocess_report.tuab.json").read_text())
    assert report["written"] == 0 and report["skipped_by_reason"] == {"missing_channels": 1, "unreadable": 1}


def test_finished_shards_are_skipped_unless_forced(tmp_path):
    root = build_tuab(tmp_path / "raw")
    out = tmp_path / "out"
    assert _preprocess(root, out).exit_code == 0
    again = json.loads(_preprocess(root, out).stdout)
    assert (again["written"], again["already_done"]) == (0, 5)
    forced = json.loads(_preprocess(root, out, "--force").stdout)
    assert (forced["written"], forced["already_done"]) == (5, 0)


def test_grid_resampling_from_the_command_line_gives_the_same_windows_and_labels(tmp_path):
    root = build_tuab(tmp_path / "raw")
    published = _preprocess(root, tmp_path / "mne")
    grid = _preprocess(root, tmp_path / "grid", "--set", "preprocess.resample_method=grid")
    assert published.exit_code == grid.exit_code == 0
    assert json.loads(grid.stdout)["windows_written"] == json.loads(published.stdout)["windows_written"] > 0
    for shard in sorted((tmp_path / "mne" / "tuab").glob("*.h5")):
        expected, got = read_shard(shard), read_shard(tmp_path / "grid" / "tuab" / shard.name)
        assert got["x"].shape == expected["x"].shape and got["attrs"]["sfreq"] == 256.0
        np.testing.assert_array_equal(got["y"], expected["y"])
        assert json.loads(got["attrs"]["preprocess_config"])["resample_method"] == "grid"
        # The same signal a fraction of a sample later: close, not equal.
        assert 0 < np.abs(got["x"] - expected["x"]).max() < 0.5 * np.abs(expected["x"]).max()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["preprocess", "nosuch", "--root", ".", "--out", "o"], "unknown corpus 'nosuch'; choose one of: db5, edf, "),
        (["preprocess", "tuabb", "--root", ".", "--out", "o"], "unknown corpus 'tuabb'; did you mean tuab?\n"),
        (["preprocess", "tuab", "--out", "o"], "preprocess.root: required"),
        (
            ["preprocess", "tuab", "--root", "/no/such/folder", "--out", "o"],
            "error: --root = '/no/such/folder' is not a folder",
        ),
        (
            ["preprocess", "tuab", "--out", "o", "--set", "preprocess.root=/no/such"],
            "error: --set preprocess.root=/no/such: preprocess.root = '/no/such' is not a folder",
        ),
        (["preprocess", "tuab", "--root", ".", "--out", "o", "--set", "preprocess.options.x=1"], "takes no options"),
        (["preprocess", "tuab", "--root", ".", "--out", "o", "--set", "preprocess.l_freq=80"], "must be below h_freq"),
    ],
)
def test_usage_errors_exit_2(args, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr


def test_no_recordings_found_exits_2(tmp_path):
    result = _preprocess(tmp_path, tmp_path / "out")
    assert result.exit_code == 2 and "no tuab recordings found" in result.stderr


def test_resolution_order_builtin_corpus_recipe():
    config = resolve_chain_config(PreprocessSection(h_freq=40.0, notch_hz=[50, 100], sfreq=0), TUABCorpus)
    assert (config.l_freq, config.h_freq, config.notch_hz, config.sfreq) == (0.1, 40.0, (50.0, 100.0), None)
    assert config.montage == "tcp" and config.units == "uV" and config.window_seconds == 5.0
    with pytest.raises(RecipeError, match="l_freq = 0.1: must be below h_freq = 0.05"):
        resolve_chain_config(PreprocessSection(h_freq=0.05), TUABCorpus)


def _recording(data, **changes):
    return Recording(data=data, sfreq=100.0, ch_names=["C3", "C4"], **changes)


def test_nans_are_zero_filled_up_to_the_threshold():
    data = np.random.default_rng(0).normal(0, 1e-5, (2, 1000))
    data[0, :5] = np.nan
    config = ChainConfig(window_seconds=1.0, max_nan_fraction=0.01)
    windowed = run_chain(_recording(data), config, source="n.edf")
    assert windowed.x.shape == (10, 2, 100) and np.isfinite(windowed.x).all()
    with pytest.raises(UnusableRecording) as error:
        run_chain(_recording(data), ChainConfig(window_seconds=1.0), source="n.edf")
    assert error.value.reason == "too_many_nans" and error.value.message.startswith("n.edf: 0.25% of the samples are NaN")


def test_a_channel_nan_throughout_gets_advice_that_fits_the_montage():
    # The advice was always "leave them out via preprocess.channels": with montage tcp a channels
    # list without FP1 is refused (the montage needs it), and without any list the user had to
    # find the other names.
    data = np.random.default_rng(0).normal(0, 1e-5, (len(TUH_ELECTRODES), 1000))
    data[0] = np.nan  # FP1
    recording = Recording(data=data, sfreq=100.0, ch_names=list(TUH_ELECTRODES))
    advice = {}
    for name, config in {
        "tcp": ChainConfig(window_seconds=1.0, montage="tcp"),
        "list": ChainConfig(window_seconds=1.0, channels=("FP1", "CZ")),
        "none": ChainConfig(window_seconds=1.0, channels=None),
    }.items():
        with pytest.raises(UnusableRecording) as error:
            run_chain(recording, config, source="n.csv")
        assert error.value.reason == "too_many_nans"
        assert error.value.message.startswith("n.csv: channel FP1 holds no value at all (NaN throughout")
        advice[name] = error.value.message.split("; ", 1)[1]
    assert advice["tcp"] == (
        "montage tcp needs them for FP1-F7, FP1-F3, so this file cannot give those pairs; "
        'to use it, set preprocess.montage = "none" and list the channels to keep in preprocess.channels'
    )
    assert advice["list"] == "remove them from preprocess.channels"
    others = ", ".join(f'"{name}"' for name in TUH_ELECTRODES[1:])
    assert advice["none"] == f"leave them out by listing the channels to keep in preprocess.channels ({others})"


def test_a_channel_nan_throughout_is_refused_whatever_max_nan_fraction_allows():
    # Under max_nan_fraction = 1 (or any fraction above its share) an absent channel became a
    # channel of zeros, written to the shard or fed to the model without a word.
    data = np.random.default_rng(0).normal(0, 1e-5, (2, 1000))
    data[1] = np.nan  # C4
    for allowed in (0.5, 1.0):
        with pytest.raises(UnusableRecording) as error:
            run_chain(_recording(data), ChainConfig(window_seconds=1.0, max_nan_fraction=allowed), source="n.edf")
        assert error.value.reason == "too_many_nans"
        assert error.value.message.startswith("n.edf: channel C4 holds no value at all (NaN throughout")
        assert "50.00% of the samples are NaN, infinite or beyond ±1e+30;" in error.value.message


def _bad_value_tables(root):
    """Three subjects' .npy tables (4 channels x 2048 samples at 512 Hz): a sound one, one holding +inf and -inf,
    one holding values no recording has (1e39 beyond float32's range; float32's largest, a missing-value marker)."""
    rng = np.random.default_rng(3)
    tables = {"s1/sound": rng.normal(size=(4, 2048)), "s2/inf": rng.normal(size=(4, 2048))}
    tables["s2/inf"][0, 100], tables["s2/inf"][2, 900] = np.inf, -np.inf
    tables["s3/huge"] = rng.normal(size=(4, 2048))
    tables["s3/huge"][1, 300] = 1e39
    tables["s3/marker"] = rng.normal(size=(4, 2048)).astype(np.float32)
    tables["s3/marker"][3, 50] = np.finfo(np.float32).max
    for name, table in tables.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(root / f"{name}.npy", table)


def test_inf_and_values_beyond_any_signal_are_missing_samples_as_nan_is(tmp_path):
    # An inf, or a value float32 cannot hold, was written to the shard as inf (or as 3.4e38), so
    # training's loss was NaN; the NaN rule now covers them: counted against max_nan_fraction, set to 0.
    _bad_value_tables(tmp_path / "raw")
    command = ["preprocess", "table", "--root", str(tmp_path / "raw"), "--json", "--no-progress", "--workers", "2"]
    options = ["--set", "preprocess.window_seconds=0.5", "--set", "preprocess.options.sfreq=512"]
    options += ["--set", "preprocess.options.pattern=(?P<subject>s\\d)/.+[.]npy"]
    refused = runner.invoke(app, [*command, "--out", str(tmp_path / "strict"), *options])
    assert refused.exit_code == 0, refused.output
    assert json.loads(refused.stdout)["skipped_by_reason"] == {"too_many_nans": 3}, refused.stdout
    assert "s2/inf.npy: 0.02% of the samples are NaN, infinite or beyond ±1e+30, above max_nan_fraction=0;" in refused.stderr
    kept = runner.invoke(app, [*command, "--out", str(tmp_path / "kept"), *options, "--set", "preprocess.max_nan_fraction=0.01"])
    assert kept.exit_code == 0 and json.loads(kept.stdout)["written"] == 4, kept.output
    for shard in sorted((tmp_path / "kept" / "table").glob("*.h5")):
        assert np.abs(read_shard(shard)["x"]).max() < 10, shard.name  # the bad samples became 0


def test_float16_storage_is_clipped_and_counted():
    data = np.full((2, 200), 1.0)  # 1 V = 1e6 µV, beyond float16
    windowed = run_chain(_recording(data), ChainConfig(window_seconds=1.0, dtype="float16", flat_std=0.0))
    assert windowed.x.dtype == np.float16 and np.isfinite(windowed.x).all() and windowed.n_clipped == 400


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers are a Linux choice")
def test_workers_are_forked_unless_another_thread_runs(monkeypatch):
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert worker_start_method() == "fork"
    # Forking while another thread may hold a lock can deadlock the child.
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    assert worker_start_method() == "spawn"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers are a Linux choice")
def test_the_command_line_starts_no_thread_so_its_workers_fork():
    code = (
        "import biofound_cli.cli.app; from biofound_cli.store.worker_pool import worker_start_method; "
        "print(worker_start_method())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "fork"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_are_running_before_the_first_recording(method, monkeypatch):
    if method == "fork" and not sys.platform.startswith("linux"):
        pytest.skip("forked workers are a Linux choice")
    monkeypatch.setattr(worker_pool_module, "worker_start_method", lambda: method)
    with started_pool(TUABCorpus, 2, 5, written="the report") as pool, pool as executor:
        assert executor is not None and executor.start_method == method
        pids = {executor.submit(os.getpid).result() for _ in range(4)}
        assert os.getpid() not in pids and 1 <= len(pids) <= 2
    with started_pool(TUABCorpus, 1, 5, written="the report") as pool, pool as executor:
        assert executor is None  # --workers 1: read in this process
    # One recording with more --workers asked: one worker, so that a crash reading it ends its worker, not the run.
    with started_pool(TUABCorpus, 4, 1, written="the report") as pool, pool as executor:
        assert executor is not None and executor.n_workers == 1


def test_one_recording_is_counted_in_the_singular(tmp_path):
    """``tuab: 1 recordings found`` (a count's noun is in the number the count asks for, biofound_cli.plural)."""
    folder = tmp_path / "raw" / "train" / "normal" / "01_tcp_ar"
    folder.mkdir(parents=True)
    write_tuh_edf(folder / "aaaaaaaa_s001_t000.edf")
    result = _preprocess(tmp_path / "raw", tmp_path / "out", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "tuab: 1 recording found, 1 to process, 0 already done or skipped" in result.stderr


def test_the_stopped_line_counts_a_shard_renamed_in_as_the_stop_came(tmp_path, monkeypatch):
    # A stop right after a recording's shard was renamed into place, before its result was taken, left
    # the shard in the report (counted on disk) but not in the last line: "stopped at 1/5" of 2 shards.
    import biofound_cli.store.preprocess as preprocess_module
    from biofound_cli.store.worker_lifetime import Terminated

    done = []
    process_recording = preprocess_module.process_recording

    def stopped_after_the_second(*args):
        result = process_recording(*args)
        done.append(result)
        if len(done) == 2:
            raise Terminated("SIGTERM")
        return result

    monkeypatch.setattr(preprocess_module, "process_recording", stopped_after_the_second)
    root, out = build_tuab(tmp_path), tmp_path / "out"
    result = runner.invoke(app, ["preprocess", "tuab", "--root", str(root), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 143, result.output
    report = json.loads((out / "preprocess_report.tuab.json").read_text())
    assert report["interrupted"] and report["written"] == 2 == len(list((out / "tuab").iterdir()))
    assert "preprocess tuab: stopped at 2/5 files (" in result.stdout, result.stdout
