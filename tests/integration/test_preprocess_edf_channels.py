"""How ``biofound preprocess edf`` reads a recording's channels, in a real process.

Files written with edfio hold what clinical exports do: an EKG at a higher rate than the EEG,
one electrode under two names (``Fp1`` and ``EEG FP1-REF``); a BIDS folder holds one recording
in two formats (EDF and EEGLAB); a labels CSV turns Latin-1 far past its start.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import h5py
import mne
import numpy as np
import pytest
import scipy.io
from fixtures.tuh import TUH_ELECTRODES

pytestmark = pytest.mark.slow

SECONDS = 20


def _edf(path: Path, channels: Sequence[tuple[str, float]], seed: int = 0) -> dict[str, np.ndarray]:
    """An EDF file of ``(label, rate)`` signals in µV; the values written, by label."""
    import edfio

    rng = np.random.default_rng(seed)
    values = {label: rng.normal(0, 20, int(rate * SECONDS)).round(1) for label, rate in channels}
    signals = [
        edfio.EdfSignal(values[label], sampling_frequency=rate, label=label, physical_dimension="uV", physical_range=(-500, 500))
        for label, rate in channels
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    edfio.Edf(signals).write(path)
    return values


def _preprocess(tmp_path: Path, root: Path, name: str, recipe: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``biofound preprocess edf`` of ``root`` with ``recipe`` (the lines under ``[preprocess]``)."""
    recipe_path, out = tmp_path / f"{name}.toml", tmp_path / f"{name}-shards"
    recipe_path.write_text(f'[preprocess]\ncorpus = "edf"\n{recipe}\n')
    command = [sys.executable, "-m", "biofound_cli", "preprocess", "edf", "--recipe", str(recipe_path)]
    command += ["--root", str(root), "--out", str(out), "--workers", "2", "--json", "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600), out


def _summary(result: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def _shard(out: Path, recording_id: str) -> tuple[float, tuple[int, ...], list[str]]:
    with h5py.File(out / "edf" / f"{recording_id}.h5") as shard:
        return float(shard.attrs["sfreq"]), shard["x"].shape, list(shard.attrs["channel_names"])


def test_kept_channels_are_read_at_their_own_rate_and_mixed_rates_skipped(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    _edf(root / "s1" / "mixed.edf", [("Fp1", 256), ("C3", 256), ("EKG", 1024)])
    _edf(root / "s2" / "plain.edf", [("Fp1", 256), ("C3", 256)], seed=1)

    # Without the EKG the EEG stays at 256 Hz (MNE read the file at 1024 Hz, upsampling it).
    result, out = _preprocess(tmp_path, root, "eeg", 'channels = ["Fp1", "C3"]\nwindow_seconds = 5.0')
    assert result.returncode == 0, result.stderr
    assert _summary(result)["written"] == 2
    assert _shard(out, "s1-mixed") == (256.0, (4, 2, 1280), ["FP1", "C3"])

    # Every channel kept: the file has no one rate, and is skipped saying which channel has which.
    result, out = _preprocess(tmp_path, root, "all", "window_seconds = 5.0")
    assert result.returncode == 0, result.stderr
    summary = _summary(result)
    assert (summary["written"], summary["skipped_by_reason"]) == (1, {"mixed_rates": 1})
    assert (
        "mixed.edf: the channels read have different sampling rates (FP1, C3 at 256 Hz; EKG at 1024 Hz); "
        "set preprocess.channels to channels of one rate, or leave this file out" in result.stderr
    )


def test_tueg_reads_only_its_montage_electrodes_so_a_slow_aux_channel_is_no_bar(tmp_path: Path) -> None:
    root = tmp_path / "tueg"
    edf = root / "edf" / "000" / "aaaaaaaa" / "s001_2002" / "01_tcp_ar" / "aaaaaaaa_s001_t000.edf"
    _edf(edf, [*((f"EEG {name}-REF", 250) for name in TUH_ELECTRODES), ("IBI", 1)])
    command = [sys.executable, "-m", "biofound_cli", "preprocess", "tueg", "--root", str(root)]
    result = subprocess.run([*command, "--out", str(tmp_path / "out"), "--json", "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert _summary(result)["written"] == 1
    with h5py.File(tmp_path / "out" / "tueg" / "aaaaaaaa_s001_t000.h5") as shard:
        assert (float(shard.attrs["sfreq"]), shard["x"].shape) == (256.0, (4, 22, 1280))


def test_two_channels_naming_one_electrode_are_refused_unless_one_is_named_exactly(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    values = _edf(root / "s1" / "both.edf", [("Fp1", 128), ("EEG FP1-REF", 128), ("C3", 128)])
    _edf(root / "s2" / "plain.edf", [("Fp1", 128), ("C3", 128)], seed=1)
    ambiguous = "both.edf: channels 'Fp1' and 'EEG FP1-REF' both name the electrode FP1; "

    for name, recipe, fix in [
        ("listed", 'channels = ["FP1", "C3"]', "list the one to use by its exact name in preprocess.channels"),
        ("all", "", "set preprocess.channels to the channels to keep, naming that one exactly"),
    ]:
        result, _ = _preprocess(tmp_path, root, name, recipe)
        assert result.returncode == 0, result.stderr
        summary = _summary(result)
        assert (summary["written"], summary["skipped_by_reason"]) == (1, {"ambiguous_channels": 1}), name
        assert f"{ambiguous}{fix}, or rename or drop the other in the recording" in result.stderr, name

    # Named as the file names it, that channel is taken (in plain.edf the name finds Fp1, as any spelling does).
    result, out = _preprocess(tmp_path, root, "exact", 'channels = ["EEG FP1-REF", "C3"]\nl_freq = 0')
    summary = _summary(result)
    assert (summary["written"], summary["skipped"]) == (2, 0), result.stderr
    with h5py.File(out / "edf" / "s1-both.h5") as shard:
        assert list(shard.attrs["channel_names"]) == ["FP1", "C3"]
        # No filter: the windows are the samples of EEG FP1-REF (not Fp1's), to EDF's 16-bit steps.
        np.testing.assert_allclose(shard["x"][:, 0, :].reshape(-1), values["EEG FP1-REF"], atol=0.02)


def _write_set(path: Path, data_uv: np.ndarray, names: Sequence[str], sfreq: float) -> None:
    """An EEGLAB ``.set`` file holding its data (MNE reads it as written by EEGLAB)."""
    chanlocs = np.array([(name,) for name in names], dtype=[("labels", object)])
    n_times = data_uv.shape[1]
    eeg = {
        "setname": path.stem, "nbchan": len(names), "trials": 1, "pnts": n_times, "srate": sfreq, "xmin": 0.0,
        "xmax": (n_times - 1) / sfreq, "data": data_uv, "chanlocs": chanlocs, "event": np.array([]),
        "icawinv": np.array([]), "times": np.arange(n_times) * 1000 / sfreq, "ref": "common",
    }  # fmt: skip
    scipy.io.savemat(path, {"EEG": eeg}, appendmat=False)


def test_a_bids_recording_in_two_formats_is_read_once(tmp_path: Path) -> None:
    mne_bids = pytest.importorskip("mne_bids")
    source = tmp_path / "source.edf"
    values = _edf(source, [("Cz", 100), ("Pz", 100)])
    root = tmp_path / "bids"
    bids_path = mne_bids.BIDSPath(subject="01", task="rest", datatype="eeg", root=root)
    mne_bids.write_raw_bids(mne.io.read_raw_edf(source, verbose="error"), bids_path, verbose=False)
    edf = bids_path.copy().update(suffix="eeg", extension=".edf").fpath
    _write_set(edf.with_suffix(".set"), np.stack([values["Cz"], values["Pz"]]), ["Cz", "Pz"], 100.0)

    result, out = _preprocess(tmp_path, root, "bids", "window_seconds = 5.0")
    assert result.returncode == 0, result.stderr
    summary = _summary(result)
    assert (summary["found"], summary["written"], summary["windows_written"]) == (1, 1, 4), result.stderr
    assert sorted(path.name for path in (out / "edf").glob("*.h5")) == ["sub-01_task-rest_eeg.h5"]
    assert (
        "1 BIDS recording is stored in more than one format; each is read once, in the first format of "
        "preprocess.options.extensions, and these copies are left out: sub-01_task-rest_eeg.set "
        "(read as sub-01_task-rest_eeg.edf)" in result.stderr
    )
    assert json.loads((out / "preprocess_report.edf.json").read_text())["excluded_by_reason"] == {"other_format": 1}
    with h5py.File(out / "edf" / "sub-01_task-rest_eeg.h5") as shard:
        assert shard.attrs["source_path"].endswith("sub-01_task-rest_eeg.edf")


def test_a_labels_csv_not_utf8_past_its_start_names_the_line(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    _edf(root / "s1" / "a.edf", [("Fp1", 128)])
    rows = [f"s1/a.edf,{index % 2},subject{index:05d}" for index in range(3000)]  # about 70 KiB of UTF-8
    rows[2900] = "s1/a.edf,1,Jos\xe9"
    labels = tmp_path / "labels.csv"
    labels.write_bytes(("file,label,subject\n" + "\n".join(rows) + "\n").encode("latin-1"))
    assert labels.read_bytes().index(b"\xe9") > 1 << 16

    result, _ = _preprocess(tmp_path, root, "csv", f"[preprocess.options]\nlabels_csv = '{labels}'")
    assert result.returncode == 2, result.stderr
    assert _summary(result)["error"] == (
        f"{labels}: line 2902 is not UTF-8 text (invalid continuation byte), though the file starts as UTF-8; "
        "save the labels CSV as UTF-8"
    )
