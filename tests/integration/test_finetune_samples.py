"""Fine-tuning on the bundled real samples beats chance on held-out data.

The training runs once, inside the quick start (session fixture ``quickstart_run`` in
tests/integration/conftest.py); these tests read its held-out test metrics and check that the
stage commands (`preprocess`, `pack`, `evaluate`) run on the same shipped recipes give the same
data and the same score.

Numbers reached (seed 42, CPU, torch 2.13, 2 threads):
* LUNA on SCP1 (official *_TEST file, 293 trials, 2 classes, chance 0.5): accuracy 0.683, AUROC 0.788.
* TinyMyo on the Myo gestures (repetition 3, 44 windows, 5 classes, chance 0.2): accuracy 0.477, balanced accuracy 0.467.
The thresholds below sit safely under those numbers and clearly above chance.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / "biofound_cli" / "data" / "recipes"
runner = CliRunner()

LUNA_SCP1_MIN_ACCURACY = 0.60
TINYMYO_MYO_MIN_ACCURACY = 0.35


def test_luna_on_scp1_beats_chance(quickstart_run) -> None:
    metrics = quickstart_run.summary["luna"]["metrics"]
    assert quickstart_run.summary["luna"]["chance"] == 0.5
    assert metrics["accuracy"] >= LUNA_SCP1_MIN_ACCURACY, metrics
    assert metrics["auroc"] > 0.6, metrics


def test_tinymyo_on_myo_beats_chance(quickstart_run) -> None:
    metrics = quickstart_run.summary["tinymyo"]["metrics"]
    assert quickstart_run.summary["tinymyo"]["chance"] == 0.2
    assert metrics["accuracy"] >= TINYMYO_MYO_MIN_ACCURACY, metrics
    assert metrics["balanced_accuracy"] >= TINYMYO_MYO_MIN_ACCURACY, metrics


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("chain", "recipe"), [("luna", "luna_scp1.toml"), ("tinymyo", "tinymyo_myo.toml")])
def test_stage_commands_reproduce_the_quickstart(quickstart_run, tmp_path, monkeypatch, chain, recipe) -> None:
    """preprocess → pack → evaluate through the stage commands: the same windows, the same score."""
    monkeypatch.chdir(REPO_ROOT)  # the recipe's preprocess.root is relative to the repository
    path = str(SHIPPED / recipe)
    shards, packed = tmp_path / "shards", tmp_path / "packed"
    _json(runner.invoke(app, ["preprocess", "--recipe", path, "--out", str(shards), "--json", "--no-progress"]))
    _json(runner.invoke(app, ["pack", str(shards), "--out", str(packed), "--recipe", path, "--json", "--no-progress"]))
    quick_packed = Path(quickstart_run.summary[chain]["artefacts"]["packed"])
    for split in ("train", "val", "test"):
        with h5py.File(packed / f"{split}.h5") as ours, h5py.File(quick_packed / f"{split}.h5") as theirs:
            np.testing.assert_array_equal(ours["x"][:], theirs["x"][:])
            np.testing.assert_array_equal(ours["y"][:], theirs["y"][:])

    checkpoint = quickstart_run.summary[chain]["artefacts"]["best_checkpoint"]
    evaluated = _json(
        runner.invoke(
            app,
            [
                "evaluate",
                path,
                "--checkpoint",
                checkpoint,
                "--set",
                f"data.test={packed / 'test.h5'}",
                "--out",
                str(tmp_path / "eval"),
                "--no-plots",
                "--json",
                "--no-progress",
            ],
        )
    )
    for name, value in quickstart_run.summary[chain]["metrics"].items():
        assert evaluated["metrics"][name] == pytest.approx(value, abs=1e-9), name
