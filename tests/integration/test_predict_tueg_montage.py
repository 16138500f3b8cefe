"""``biofound predict`` reads TUEG recordings as ``preprocess`` did for the model: the automatic montage.

``preprocess tueg`` (``montage = "auto"``) → ``pack`` → ``pretrain`` a tiny LUNA → ``predict`` the raw
folder through the CLI, with loader and predict workers. The TUEG files carry, as real ones do, a
signal at another rate (an ``IBI`` at 1 Hz) beside the 21 electrodes: ``preprocess`` reads only the
electrodes of each recording's montage, so predict must too, or it skips every file as ``mixed_rates``.
A file without ear electrodes (``03_tcp_ar_a``, the 20-channel montage) lacks channels of the model's
22: it is skipped naming them, never fed to the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.tuh import TUH_ELECTRODES
from typer.testing import CliRunner

from biofound_cli.cli.app import app

pytestmark = pytest.mark.slow

SECONDS = 10
SUBJECTS = ("aaaaaaaa", "aaaaaaab", "aaaaaaac", "aaaaaaad")
RECIPE = """
name = "tueg"
[preprocess]
corpus = "tueg"
root = "raw"
out = "shards"
[pack]
shards = "shards"
out = "packed"
seed = 1
train = 0.5
val = 0.5
test = 0.0
[data]
train = "packed/train.h5"
val = "packed/val.h5"
transform = "zscore"
batch_size = 4
num_workers = 2
[model]
variant = "luna-base"
overrides = { depth = 1, embed_dim = 32, num_queries = 2 }
[optim]
lr = 1e-3
warmup_steps = 1
[train]
epochs = 2
device = "cpu"
early_stopping_metric = "val_loss"
early_stopping_mode = "min"
[output]
runs_dir = "runs"
"""


def _invoke(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, [*args, "--json", "--no-progress"])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def _tueg_edf(path: Path, seed: int, drop: tuple[str, ...] = ()) -> None:
    """A TUEG file: the 21 electrodes (less ``drop``) at 250 Hz (µV) and an IBI channel at 1 Hz, as clinical exports hold."""
    import edfio

    rng = np.random.default_rng(seed)
    channels = [*((f"EEG {name}-REF", 250) for name in TUH_ELECTRODES if name not in drop), ("IBI", 1)]
    signals = [
        edfio.EdfSignal(
            rng.normal(0, 20, rate * SECONDS).round(1), sampling_frequency=rate, label=label, physical_dimension="uV",
            physical_range=(-500, 500),
        )
        for label, rate in channels
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    edfio.Edf(signals).write(path)


def test_a_tueg_model_predicts_raw_files_through_the_montage_preprocess_chose(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for seed, subject in enumerate(SUBJECTS):
        _tueg_edf(tmp_path / "raw" / subject / "s001_2010" / "01_tcp_ar" / f"{subject}_s001_t000.edf", seed)
    (tmp_path / "tueg.toml").write_text(RECIPE)
    for stage in (["preprocess", "--recipe"], ["pack", "--recipe"], ["pretrain"]):
        status, printed = _invoke(*stage, "tueg.toml")
        assert status == 0, printed

    _tueg_edf(tmp_path / "more" / "aaaaaaae" / "s001_2010" / "03_tcp_ar_a" / "aaaaaaae_s001_t000.edf", 4, ("A1", "A2"))

    checkpoint = tmp_path / "runs" / "tueg" / "checkpoints" / "best"
    status, printed = _invoke("predict", str(checkpoint), "raw", "more", "--out", "predictions", "--workers", "2")

    # Before, predict read every signal of the files: the IBI's 1 Hz made each one "mixed_rates".
    assert status == 0, printed
    assert (printed["found"], printed["predicted"], printed["skipped"]) == (5, 4, 1)
    summary = json.loads((tmp_path / "predictions" / "summary.json").read_text())
    no_ears = next(entry for entry in summary["recordings"] if entry["recording_id"] == "aaaaaaae_s001_t000")
    assert (no_ears["status"], no_ears["reason"]) == ("skipped", "missing_channels")
    assert "A1, A2" in no_ears["message"], no_ears
    header = (tmp_path / "predictions" / "aaaaaaaa_s001_t000.csv").read_text().splitlines()[0]
    assert header.endswith(",reconstruction_error"), header
