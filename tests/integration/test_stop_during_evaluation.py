"""A job-wide SIGTERM while a periodic evaluation runs (not a training step), then ``--resume auto``.

The evaluation in progress is finished and kept once: ``metrics.jsonl`` has one validation row
per epoch, the run stops with exit 75 at that step's checkpoint, and the resumed run ends with
the straight run's weights and records. After both runs, every place that states the best
step and metric agrees: the ``--json`` summary, ``metrics.jsonl``, the best checkpoint's
metadata, the points ``train_curve.png`` plots and ``biofound evaluate`` on the validation split.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fixtures.real_runs import environment, write_recipe, write_split
from safetensors.torch import load_file

from biofound_cli.errors import ExitStatus

pytestmark = pytest.mark.slow

SPY = Path(__file__).resolve().parents[1] / "fixtures" / "curve_spy.py"
WATCHED = "val_balanced_accuracy"
EARLY_STOPPING = f'early_stopping_metric = "{WATCHED}"\nearly_stopping_mode = "max"'


def finetune(recipe: Path, run_name: str, spy_out: Path, *extra: str) -> list[str]:
    """``biofound finetune`` under the curve spy, into ``runs/RUN_NAME``."""
    return [
        sys.executable,
        str(SPY),
        "finetune",
        str(recipe),
        "--json",
        "--no-progress",
        "--set",
        f"output.run_name={run_name}",
        *extra,
    ]


def spied(spy_out: Path) -> dict[str, str]:
    """The test environment, the curve spy writing to ``spy_out``."""
    return {**environment(), "CURVE_SPY_OUT": str(spy_out)}


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def stop_during_the_evaluation_at(process: subprocess.Popen, metrics: Path, step: int) -> list[dict]:
    """SIGTERM to the process group once training step ``step`` is logged and its evaluation is not:
    the evaluation is then running. Returns the records logged just before the signal."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        logged = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
        if any(record["split"] == "train" and record["step"] == step for record in logged):
            os.killpg(process.pid, signal.SIGTERM)
            return logged
        time.sleep(0.005)
    raise AssertionError("the run ended before it could be signalled")


def assert_best_agrees(run: Path, summary: dict, curve: list, tmp_path: Path, recipe: Path) -> None:
    """The summary's best step and metric, metrics.jsonl, the best checkpoint, the plot and evaluate agree."""
    val = {record["step"]: record for record in records(run) if record["split"] == "val"}
    best_step, best_metric = summary["best_step"], summary["best_metric"][WATCHED]
    assert val[best_step][WATCHED] == best_metric
    # The first evaluation reaching the best value is the best (a tie is not an improvement).
    assert best_step == min(step for step, record in val.items() if record[WATCHED] == max(r[WATCHED] for r in val.values()))

    from biofound_cli.models.checkpoints import read_metadata

    metadata = read_metadata(run / "checkpoints" / "best" / "model.safetensors").extra
    assert metadata["step"] == best_step and metadata[WATCHED] == best_metric

    loss_panel, metric_panel = curve
    [plotted] = [line for line in metric_panel if line["label"] == WATCHED]
    assert plotted["x"] == sorted(val) and plotted["y"] == [val[step][WATCHED] for step in sorted(val)]
    for panel in curve:
        [marker] = [line for line in panel if line["label"].startswith("best checkpoint")]
        assert set(marker["x"]) == {best_step}
    [val_loss] = [line for line in loss_panel if line["label"] == "val_loss"]
    assert val_loss["y"] == [val[step]["val_loss"] for step in sorted(val)]

    scored = subprocess.run(
        [sys.executable, "-m", "biofound_cli", "evaluate", str(recipe), "--split", "val", "--json", "--quiet", "--no-plots"]
        + ["--set", f"output.run_name={run.name}", "--out", str(tmp_path / f"eval-{run.name}")],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert scored.returncode == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert report["checkpoint"] == str(run / "checkpoints" / "best" / "model.safetensors")
    for name, value in report["metrics"].items():
        if f"val_{name}" in val[best_step]:
            assert value == pytest.approx(val[best_step][f"val_{name}"], abs=1e-9), name


# Validation windows per family: an evaluation of a second or more, long enough to land in.
VAL_WINDOWS = {"tinymyo": 1500, "femba": 300, "luna": 600}


# TinyMyo in CI (the stop and resume are the loop's, not a family's); FEMBA and LUNA passed the
# same test by hand (about 9 min together on 2 cores): BIOFOUND_ALL_FAMILIES=1 runs them too.
# LoRA with a patience: the adapters and the strikes against the best must survive the stop too.
MODES = {"full": ("", []), "lora": ("\nearly_stopping_patience = 2", ["--set", "model.finetune=lora"])}


@pytest.mark.parametrize("family", ["tinymyo", "femba", "luna"] if os.environ.get("BIOFOUND_ALL_FAMILIES") else ["tinymyo"])
@pytest.mark.parametrize("mode", list(MODES))
def test_sigterm_during_an_evaluation_keeps_it_once_and_resumes_to_the_straight_runs_end(tmp_path, family, mode):
    patience, finetune_mode = MODES[mode]
    recipe = write_recipe(tmp_path, family, epochs=3, extra=EARLY_STOPPING + patience)
    write_split(tmp_path / "val.h5", VAL_WINDOWS[family], 1, family)

    straight_curve = tmp_path / "straight-curve.json"
    straight = subprocess.run(
        finetune(recipe, "straight", straight_curve, *finetune_mode),
        env=spied(straight_curve),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert straight.returncode == 0, straight.stderr

    stopped_curve = tmp_path / "stopped-curve.json"
    args = finetune(recipe, "stopped", stopped_curve, *finetune_mode, "--resume", "auto")
    run = tmp_path / "runs" / "stopped"
    process = subprocess.Popen(
        args, env=spied(stopped_curve), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    before = stop_during_the_evaluation_at(process, run / "metrics.jsonl", step=12)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.PREEMPTED, stderr
    assert "Traceback" not in stderr and "DataLoader worker" not in stderr
    assert not any(record["split"] == "val" and record["step"] == 12 for record in before)
    # The evaluation under way was finished, logged once, and the stop checkpointed after it.
    failure = json.loads(stdout)
    assert failure["checkpoint"] == str(run / "checkpoints" / "step-00000012")
    val_so_far = {record["step"]: record[WATCHED] for record in records(run) if record["split"] == "val"}
    assert list(val_so_far) == [6, 12]
    # The curve plotted at the stop marks the best checkpoint so far, as the failure object names it.
    best_so_far = min(step for step, value in val_so_far.items() if value == max(val_so_far.values()))
    assert failure["best_step"] == best_so_far
    for panel in json.loads(stopped_curve.read_text()):
        [marker] = [line for line in panel if line["label"].startswith("best checkpoint")]
        assert set(marker["x"]) == {best_so_far}

    resumed = subprocess.run(args, env=spied(stopped_curve), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    expected_run = tmp_path / "runs" / "straight"
    for name in ("step-00000018", "best"):
        expected_file, got_file = (folder / "checkpoints" / name / "model.safetensors" for folder in (expected_run, run))
        expected, got = load_file(str(expected_file)), load_file(str(got_file))
        assert all(torch.equal(got[key], expected[key]) for key in expected), name
        assert got_file.read_bytes() == expected_file.read_bytes(), name  # the same sha256, as a user checks

    def comparable(run_folder: Path) -> list[dict]:
        return [{k: v for k, v in record.items() if k != "samples_per_second"} for record in records(run_folder)]

    assert comparable(run) == comparable(expected_run)
    from biofound_cli.training import state

    # The early-stopping counter (and the rest of where the run was) is the straight run's.
    [got_progress, expected_progress] = [
        state.read_checkpoint(folder / "checkpoints" / "step-00000018")[1]["progress"] for folder in (run, expected_run)
    ]
    assert got_progress == expected_progress
    summaries = [json.loads(result.stdout) for result in (straight, resumed)]
    for key in ("steps", "epochs", "stopped_early", "best_step", "best_metric", "metrics"):
        assert summaries[1][key] == summaries[0][key], key
    for folder, summary, curve in zip((expected_run, run), summaries, (straight_curve, stopped_curve), strict=True):
        assert_best_agrees(folder, summary, json.loads(curve.read_text()), tmp_path, recipe)
