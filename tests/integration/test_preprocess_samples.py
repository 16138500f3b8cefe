"""``biofound preprocess`` end to end on the bundled samples with the non-TUH readers."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "biofound_cli" / "data" / "samples"
runner = CliRunner()

pytestmark = pytest.mark.slow


def test_scp1_recipe_gives_one_window_per_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    out = tmp_path / "shards"
    result = runner.invoke(
        app, ["preprocess", "ts", "--recipe", "recipes/preprocess_scp1.toml", "--out", str(out), "--json", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["written"], summary["windows_written"]) == (2, 268 + 293)
    with h5py.File(out / "ts" / "SelfRegulationSCP1_TEST.h5") as shard:
        assert shard["x"].shape == (293, 6, 896)
        assert list(shard.attrs["channel_names"]) == ["A1-CZ", "A2-CZ", "C3A", "C3P", "C4A", "C4P"]
        assert list(shard.attrs["label_names"]) == ["negativity", "positivity"]
        assert shard.attrs["split"] == "test"
        # µV in, µV out: the first sample of the first test trial is 4.06 µV.
        assert shard["x"][0, 0, 0] == pytest.approx(4.06, abs=1e-3)
    with h5py.File(out / "ts" / "SelfRegulationSCP1_TRAIN.h5") as shard:
        splits = shard["split"][:].astype(str)
        assert (np.sum(splits == "train"), np.sum(splits == "val")) == (214, 54)


def test_myo_csv_folder_gives_labelled_emg_windows(tmp_path: Path) -> None:
    out = tmp_path / "shards"
    result = runner.invoke(
        app, ["preprocess", "emg-csv", "--root", str(SAMPLES / "emg" / "myo"), "--out", str(out), "--json", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["written"] == 20
    with h5py.File(out / "emg-csv" / "R_2_C_3_EMG.h5") as shard:
        assert shard["x"].shape[1:] == (8, 200)
        assert set(shard["y"][:].tolist()) == {3}
        assert shard.attrs["sfreq"] == 200.0
