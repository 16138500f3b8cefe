"""A folder re-preprocessed after files were removed, added and one corrupted, then packed, as users do.

The shard of a removed recording stays (``preprocess`` warned as it ran); ``pack`` packed its
windows without a word, so a recording the user took out went on into train.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

MYO = Path(__file__).resolve().parents[2] / "biofound_cli" / "data" / "samples" / "emg" / "myo"


def _biofound(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "biofound_cli", *args, "--json", "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd)


def test_pack_names_the_shards_of_recordings_removed_since_and_packs_what_preprocess_wrote(tmp_path):
    shutil.copytree(MYO, tmp_path / "myo")
    preprocess = ["preprocess", "emg-csv", "--root", "myo", "--out", "shards", "--workers", "2"]
    preprocess += ["--set", "preprocess.window_seconds=0.5"]
    first = _biofound(tmp_path, *preprocess)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["written"] == 20

    (tmp_path / "myo" / "R_1_C_2_EMG.csv").unlink()
    shutil.copy(tmp_path / "myo" / "R_0_C_0_EMG.csv", tmp_path / "myo" / "R_6_C_1_EMG.csv")
    (tmp_path / "myo" / "R_5_C_0_EMG.csv").write_text("a,b,c\n1,2\n")
    again = _biofound(tmp_path, *preprocess)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["found"], summary["written"], summary["already_done"], summary["skipped"]) == (21, 1, 19, 1)
    assert "skipped (unusable): myo/R_5_C_0_EMG.csv: not a numeric" in again.stderr

    packed = _biofound(tmp_path, "pack", "shards", "--out", "packed")
    assert packed.returncode == 0, packed.stderr
    log = " ".join(packed.stderr.split())
    assert (
        "1 shard holds recordings the last preprocess run did not find under its root "
        "(shards/emg-csv/R_1_C_2_EMG.h5 (shard of myo/R_1_C_2_EMG.csv)); they are packed"
    ) in log, log
    assert json.loads(packed.stdout)["recordings"]["train"] == 21

    (tmp_path / "shards" / "emg-csv" / "R_1_C_2_EMG.h5").unlink()
    repacked = _biofound(tmp_path, "pack", "shards", "--out", "packed")
    assert repacked.returncode == 0 and "did not find" not in repacked.stderr, repacked.stderr
    assert json.loads(repacked.stdout)["recordings"]["train"] == 20
