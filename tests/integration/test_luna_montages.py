"""LUNA through the whole chain on EEG of several montages, in real processes, as a researcher runs it.

EDF exports hold an EOG beside the EEG, with new 10-20 names (T7); the model is fine-tuned on them
(two loader workers, two epochs evaluated each), then predicts recordings of another montage: three
TUH-style channels (``EEG FP2-REF``), which it takes from a ``--recipe`` naming them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SECONDS, RATE = 20, 256


def _edf(path: Path, labels: Sequence[str], seed: int) -> None:
    import edfio

    rng = np.random.default_rng(seed)
    signals = [
        edfio.EdfSignal(
            rng.normal(0, 20, SECONDS * RATE).round(1),
            sampling_frequency=RATE,
            label=label,
            physical_dimension="uV",
            physical_range=(-500, 500),
        )
        for label in labels
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    edfio.Edf(signals).write(path)


def _biofound(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "biofound_cli", *args, "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd)


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def _preprocess_and_pack(tmp_path: Path, name: str, *settings: str) -> None:
    settings = ("--set", "preprocess.sfreq=256", "--set", "preprocess.options.labels_csv=raw/labels.csv", *settings)
    result = _biofound("preprocess", "edf", "--root", "raw", "--out", f"{name}-shards", "--workers", "2", *settings, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = _biofound("pack", f"{name}-shards", "--out", f"{name}-packed", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def _recipe(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
name = "{name}"
[data]
train = "{name}-packed/train.h5"
val = "{name}-packed/val.h5"
transform = "zscore"
batch_size = 4
num_workers = 2
[model]
variant = "luna-base"
task = "bc"
num_classes = 2
overrides = {{ depth = 1, embed_dim = 32, num_queries = 2 }}
[optim]
lr = 1e-3
[train]
epochs = 2
device = "cpu"
""")
    return path


def test_luna_fine_tuned_with_an_eog_predicts_recordings_of_another_montage(tmp_path: Path) -> None:
    rows = ["file,label,subject"]
    for index in range(6):
        _edf(tmp_path / "raw" / f"r{index}.edf", ["Fp1", "T7", "Cz", "O2", "EOG"], seed=index)
        rows.append(f"r{index}.edf,{'abnormal' if index % 2 else 'normal'},p{index}")
    (tmp_path / "raw" / "labels.csv").write_text("\n".join(rows) + "\n")

    # Every channel kept, the EOG too: named, with the two settings that resolve it, before any step.
    _preprocess_and_pack(tmp_path, "all")
    recipe = _recipe(tmp_path, "all")
    refused = _biofound("finetune", str(recipe), cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    line = refused.stderr.strip()
    assert line.startswith(f"error: {recipe}: data.train = ") and "all-packed/train.h5" in line, line
    assert line.endswith(
        ": Channel 'EOG' has no known position in the 10-05 system; LUNA places every channel by its electrode "
        "position: leave such channels out with preprocess.channels (the channels to keep; ECG, EOG and EMG have no "
        "place on the scalp), or give each its head-frame position in metres (x right, y front, z up) in "
        "preprocess.options.channel_positions, then run preprocess and pack again"
    ), line

    # The EOG placed below the left eye (the edf corpus takes positions as the ts corpus does): trained,
    # and the checkpoint carries the position to every later stage.
    _preprocess_and_pack(tmp_path, "placed", "--set", "preprocess.options.channel_positions={EOG = [-0.03, 0.08, -0.03]}")
    trained = _biofound("finetune", str(_recipe(tmp_path, "placed")), "--json", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert _json(trained)["epochs"] == 2
    metadata = _json(_biofound("info", "runs/placed/checkpoints/best", "--json", cwd=tmp_path))["weights"]["metadata"]
    assert json.loads(metadata["channel_positions"]) == {"EOG": [-0.03, 0.08, -0.03]}
    assert json.loads(metadata["ch_names"]) == ["FP1", "T3", "CZ", "O2", "EOG"]

    # Recordings of another montage: three TUH-style channels, two of them not in the model's five.
    for name in ("a", "b"):
        _edf(tmp_path / "other" / f"{name}.edf", ["EEG FP2-REF", "EEG T4-REF", "EEG CZ-REF"], seed=10)
    skipped = _biofound("predict", "runs/placed", "other", "--out", "none", "--json", cwd=tmp_path)
    assert skipped.returncode == 1
    assert "LUNA takes the channels a recording has" in skipped.stderr
    (tmp_path / "other.toml").write_text(
        '[preprocess]\ncorpus = "edf"\nsfreq = 256\nwindow_seconds = 5\nchannels = ["Fp2", "T8", "Cz"]\n'
    )
    predicted = _biofound(
        "predict", "runs/placed", "other", "--recipe", "other.toml", "--out", "pred", "--workers", "2", "--json", cwd=tmp_path
    )
    assert predicted.returncode == 0, predicted.stderr
    summary = _json(predicted)
    assert (summary["predicted"], summary["windows"], summary["channels"]) == (2, 8, ["FP2", "T4", "CZ"])
