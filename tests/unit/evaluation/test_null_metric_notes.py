"""``biofound evaluate``: a metric that is null carries one note saying why, once, and no note about something else."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from fixtures.eval_split import write_checkpoint, write_packed
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.metrics import compute_metrics

runner = CliRunner()


def _evaluate_constant_targets(tmp_path, task: str, num_classes: int, target: float, *flags: str):
    """Evaluate a tiny ``task`` checkpoint on a split of 4 recordings whose every target is ``target``."""
    packed = write_packed(tmp_path / "test.h5", task=task, num_classes=num_classes)
    with h5py.File(packed, "a") as handle:
        handle["y"][...] = target
    checkpoint = write_checkpoint(tmp_path / "model.safetensors", task=task, num_classes=num_classes)
    recipe = tmp_path / "r.toml"
    # A batch larger than the split, read by 2 loader workers, as users run it.
    recipe.write_text(f'[data]\ntest = "{packed}"\nbatch_size = 64\nnum_workers = 2\n[train]\ndevice = "cpu"\n')
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(recipe), "-c", str(checkpoint), "-o", str(out), "--no-progress", *flags])
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "report.json").read_text())


@pytest.mark.parametrize(
    ("task", "num_classes", "target", "null", "why"),
    [
        (
            "bc",
            2,
            0,
            ("auroc", "aupr", "cohen_kappa"),
            "the targets hold only one class (gesture0): AUROC, AUPR, Cohen's kappa and the other classes' recall "
            "and F1 are undefined (null)",
        ),
        ("regression", 1, 0.5, ("r2",), "R² is undefined for gesture0: the target is constant (or a single value)"),
    ],
    ids=["bc", "regression"],
)
def test_a_null_metric_carries_one_reason_shown_once(tmp_path, task, num_classes, target, null, why):
    # Targets of one class gave two notes per level that said the same, and a note on how binary
    # AUROC ranks by the softmax beside AUROCs that ranked nothing; a constant target one note per level.
    result, report = _evaluate_constant_targets(tmp_path, task, num_classes, target)
    for level in ("windows", "recordings"):
        assert all(report["headline"][level][name] is None for name in null)
    assert report["notes"] == [f"windows and recordings: {why}"]
    printed = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert printed == [f"note: windows and recordings: {why}"]


def test_the_json_summary_says_why_a_metric_is_null(tmp_path):
    # `evaluate --json` gave "auroc": null with no reason: the notes were printed (to stderr) and written
    # into report.json only.
    result, report = _evaluate_constant_targets(tmp_path, "bc", 2, 0, "--json")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["metrics"]["auroc"] is None
    assert (
        summary["notes"]
        == report["notes"]
        == [
            "windows and recordings: the targets hold only one class (gesture0): AUROC, AUPR, Cohen's kappa and the "
            "other classes' recall and F1 are undefined (null)"
        ]
    )


def test_a_metric_null_on_every_channel_is_explained_by_the_channels_note_alone():
    # "auroc is averaged over the 0 of 3 channels where it is defined" stood beside a null average.
    metrics = compute_metrics("mc", np.zeros((6, 3), dtype=int), np.linspace(0.1, 0.9, 18).reshape(6, 3))
    assert metrics["auroc"] is None and metrics["aupr"] is None
    assert metrics["notes"] == [
        "every channel: the targets hold only one class (0): AUROC, AUPR, Cohen's kappa and the other classes' recall "
        "and F1 are undefined (null)"
    ]
