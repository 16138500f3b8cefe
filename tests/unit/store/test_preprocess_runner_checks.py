"""What preprocess refuses before any work (exit 2, one line), and how the window step is resolved."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from fixtures.cli_output import assert_one_error_line
from fixtures.edf_files import preprocess, write_eeg
from fixtures.shards import read_shard
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora.db5 import Db5Corpus
from biofound_cli.corpora.edf import EdfCorpus
from biofound_cli.errors import RecipeError
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.store.preprocess_config import resolve_chain_config

runner = CliRunner()


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("edf")
    write_eeg(root / "long.edf", seconds=600.0)
    return root


# -- the stride follows the window ---------------------------------------------------------------


def test_a_window_set_alone_brings_its_own_stride(ten_minutes, tmp_path):
    result = preprocess(ten_minutes, tmp_path / "out", "--set", "preprocess.window_seconds=2")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["windows_written"] == 300 and summary["signal_unused_fraction"] == 0.0
    shard = read_shard(tmp_path / "out" / "edf" / "long.h5")
    assert shard["x"].shape == (300, 2, 200) and shard["attrs"]["stride_seconds"] == 2.0


def test_a_stride_longer_than_the_window_is_warned_about_and_reported(ten_minutes, tmp_path):
    result = preprocess(
        ten_minutes, tmp_path / "out", "--set", "preprocess.window_seconds=2", "--set", "preprocess.stride_seconds=5"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["windows_written"] == 120 and summary["signal_unused_fraction"] == pytest.approx(0.6)
    assert "stride_seconds = 5 s is longer than window_seconds = 2 s" in result.stderr and "60%" in result.stderr
    report = json.loads((tmp_path / "out" / "preprocess_report.edf.json").read_text())
    assert report["signal_unused_fraction"] == pytest.approx(0.6)


def test_a_stride_longer_than_the_window_by_less_than_a_sample_leaves_nothing_between_windows(ten_minutes, tmp_path):
    """1.999 s and 2 s are both 200 samples at 100 Hz: no "0% ... is not used" warning, nothing reported unused."""
    overrides = ["preprocess.sfreq=100", "preprocess.window_seconds=1.999", "preprocess.stride_seconds=2"]
    result = preprocess(ten_minutes, tmp_path / "out", *(arg for override in overrides for arg in ("--set", override)))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["windows_written"] == 300 and summary["signal_unused_fraction"] == 0.0
    assert "between windows" not in result.stderr


def test_a_corpus_keeps_its_published_overlap_only_with_its_own_window(caplog):
    assert (Db5Corpus.defaults["window_seconds"], Db5Corpus.defaults["stride_seconds"]) == (1.0, 0.25)
    published = resolve_chain_config(PreprocessSection(), Db5Corpus)
    assert (published.window_seconds, published.stride_seconds) == (1.0, 0.25)
    with caplog.at_level(logging.INFO, logger="biofound_cli.store.preprocess_config"):
        longer = resolve_chain_config(PreprocessSection(window_seconds=2.0), Db5Corpus)
    assert (longer.window_seconds, longer.stride_seconds) == (2.0, 2.0)
    assert "stride_seconds follows window_seconds = 2 s" in caplog.text
    stepped = resolve_chain_config(PreprocessSection(window_seconds=2.0, stride_seconds=0.5), Db5Corpus)
    assert (stepped.window_seconds, stepped.stride_seconds) == (2.0, 0.5)
    only_stride = resolve_chain_config(PreprocessSection(stride_seconds=0.5), Db5Corpus)
    assert (only_stride.window_seconds, only_stride.stride_seconds) == (1.0, 0.5)
    assert resolve_chain_config(PreprocessSection(window_seconds=2.0), EdfCorpus).stride_seconds == 2.0


# -- windows shorter than one sample -------------------------------------------------------------


def test_a_window_below_one_sample_at_the_output_rate_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError, match="window_seconds = 0.001 s is shorter than one sample at 256 Hz"):
        resolve_chain_config(PreprocessSection(window_seconds=0.001), _with_rate(256.0))
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[preprocess]\ncorpus = "tuab"\nwindow_seconds = 0.0015\n')
    line = assert_one_error_line(runner.invoke(app, ["validate", str(recipe)]), 2)
    assert "preprocess.window_seconds = 0.0015 s is shorter than one sample at 256 Hz" in line


def test_a_window_is_below_one_sample_by_the_samples_the_chain_cuts(tmp_path):
    """The checks refused `window_seconds * rate < 1` while the chain cuts `round(window_seconds * rate)` samples:
    0.002 s at 256 Hz (0.512, cut as 1 sample) and 0.006 s at a native 100 Hz were refused though the chain cuts them.
    validate and preprocess now count as the chain cuts (`ChainConfig.window_samples`)."""
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[preprocess]\ncorpus = "tuab"\nwindow_seconds = 0.002\n')
    result = runner.invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 0, result.output
    write_eeg(tmp_path / "raw" / "r0.edf", seconds=2.0)
    result = preprocess(tmp_path / "raw", tmp_path / "out", "--set", "preprocess.window_seconds=0.006")
    assert result.exit_code == 0, result.output
    [shard] = list((tmp_path / "out").rglob("*.h5"))
    assert read_shard(shard)["x"].shape[-1] == 1


def _with_rate(sfreq: float) -> type[EdfCorpus]:
    class Resampled(EdfCorpus):
        defaults = {**EdfCorpus.defaults, "sfreq": sfreq}

    return Resampled


def test_a_window_below_one_sample_at_the_native_rate_stops_at_the_first_recording(tmp_path):
    for index in range(3):
        write_eeg(tmp_path / "raw" / f"r{index}.edf", seconds=20.0)
    result = preprocess(tmp_path / "raw", tmp_path / "out", "--set", "preprocess.window_seconds=0.005", "--workers", "2")
    line = assert_one_error_line(result, 2)
    assert "preprocess.window_seconds = 0.005 s is shorter than one sample of" in line and "native 100 Hz" in line
    assert not list((tmp_path / "out").rglob("*.h5"))


def test_a_file_a_few_samples_short_of_the_window_is_told_in_samples(tmp_path):
    """A 598-row Myo file (2.99 s) under a 3 s window was "3.0 s of signal", which "gives no whole 3 s window"."""
    myo = Path(__file__).resolve().parents[3] / "biofound_cli" / "data" / "samples" / "emg" / "myo"
    root = tmp_path / "raw"
    root.mkdir()
    for name in ("R_0_C_0_EMG.csv", "R_0_C_1_EMG.csv"):  # 602 and 598 rows at 200 Hz
        (root / name).write_bytes((myo / name).read_bytes())
    args = ["preprocess", "emg-csv", "--root", str(root), "--out", str(tmp_path / "out"), "--json", "--no-progress"]
    result = runner.invoke(app, [*args, "--set", "preprocess.window_seconds=3", "--workers", "2"])
    assert result.exit_code == 0, result.output
    [skipped] = json.loads(result.stdout)["warnings"]
    assert skipped.endswith(
        "R_0_C_1_EMG.csv: 2.99 s of signal (598 samples at 200 Hz) gives no whole 3 s window (600 samples); "
        "lower preprocess.window_seconds or drop this file"
    )


# -- an --out that cannot be written -------------------------------------------------------------


@pytest.fixture(scope="module")
def small_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small")
    write_eeg(root / "a.edf", seconds=20.0)
    return root


@pytest.mark.parametrize("out", ["/proc/biofound-shards", "/proc/self", "/sys/biofound-shards"])
def test_an_out_on_a_file_system_that_refuses_writes_exits_2(small_root, out):
    if not Path(out).parent.is_dir():
        pytest.skip(f"no {Path(out).parent} here")
    line = assert_one_error_line(preprocess(small_root, Path(out)), 2)
    assert f"--out {out}:" in line


def test_an_out_blocked_by_a_file_exits_2(small_root, tmp_path):
    (tmp_path / "a_file").write_text("")
    assert "--out" in assert_one_error_line(preprocess(small_root, tmp_path / "a_file"), 2)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write into any folder")
def test_an_out_without_write_permission_exits_2_before_reading(small_root, tmp_path):
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o555)
    try:
        line = assert_one_error_line(preprocess(small_root, out), 2)
    finally:
        out.chmod(0o755)
    assert "cannot write there" in line and not (out / "preprocess_report.edf.json").exists()


def test_a_pattern_that_matches_no_file_is_named_as_the_user_wrote_it(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "sample_data_1.csv").write_text("1,2\n3,4\n")
    pattern = r"sample_(?P<subject>\d+)\.csv"  # misses the "data_" part
    result = runner.invoke(
        app,
        [
            "preprocess",
            "emg-csv",
            "--root",
            str(tmp_path / "raw"),
            "--out",
            str(tmp_path / "out"),
            "--set",
            f'preprocess.options.pattern="{pattern}"',
            "--set",
            "preprocess.options.sfreq=200",
        ],
    )
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert f'no file there matches preprocess.options.pattern = "{pattern}"' in line
    assert not (tmp_path / "out" / "emg-csv").exists()


def test_a_corpus_without_a_default_window_says_how_to_set_one(tmp_path):
    # `biofound preprocess ts --root R --out S` said "...has no default window length; set it", naming no way to.
    result = runner.invoke(app, ["preprocess", "ts", "--root", str(tmp_path), "--out", str(tmp_path / "shards"), "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"].endswith(
        "the ts corpus has no default window length; set it in the recipe's [preprocess] section or with "
        "--set preprocess.window_seconds=SECONDS"
    )
