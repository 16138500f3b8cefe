"""The bundled SCP1 ``.ts`` files preprocessed with workers at one window, packed, then at another.

``pack`` said "shards changed since splits.json was written (+0/-0 recordings)" of the re-run: a
user read that as nothing having changed, while every window had.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _biofound(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "biofound_cli", *args, "--json", "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd)


def _preprocess(tmp_path: Path, window: float, *extra: str) -> subprocess.CompletedProcess[str]:
    recipe = str(REPO / "recipes" / "preprocess_scp1.toml")
    root = str(REPO / "biofound_cli" / "data" / "samples" / "eeg" / "scp1")
    sets = ["--set", f"preprocess.window_seconds={window}", "--set", f"preprocess.stride_seconds={window / 2}"]
    return _biofound(
        tmp_path, "preprocess", "ts", "--recipe", recipe, "--root", root, "--out", "shards", "--workers", "2", *sets, *extra
    )


def test_ts_trials_at_another_window_are_refused_without_force_and_repacked_with_it(tmp_path):
    first = _preprocess(tmp_path, 2.0)
    assert first.returncode == 0, first.stderr
    packed = _biofound(tmp_path, "pack", "shards", "--out", "packed")
    assert packed.returncode == 0, packed.stderr
    with h5py.File(tmp_path / "packed" / "train.h5") as handle:
        assert handle["x"].shape[2] == 512

    refused = _preprocess(tmp_path, 1.0)
    assert refused.returncode == 2 and "pass --force to rewrite the shards with these settings" in refused.stderr

    again = _preprocess(tmp_path, 1.0, "--force")
    assert again.returncode == 0, again.stderr
    repacked = _biofound(tmp_path, "pack", "shards", "--out", "packed")
    assert repacked.returncode == 0, repacked.stderr
    summary = json.loads(repacked.stdout)
    assert summary["splits_json"] == "updated" and summary["skipped"] == 0
    assert "(the same recordings, their windows or splits changed)" in summary["splits_note"]
    assert sum(summary["windows"].values()) > sum(json.loads(packed.stdout)["windows"].values())
    with h5py.File(tmp_path / "packed" / "train.h5") as handle:
        assert handle["x"].shape[2] == 256
