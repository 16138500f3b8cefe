"""pretrain/finetune on a disk that fills up, met for real on a small file system (tests/fixtures/small_disk.py)."""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.process_group import biofound
from fixtures.small_disk import run_on_a_small_disk
from fixtures.tiny_training import invoke, training_recipe

from biofound_cli.errors import ExitStatus

pytestmark = pytest.mark.slow

PAGE = 4096
"""What a tmpfs gives a file at a time: a file of n bytes takes ceil(n / PAGE) of its pages."""


def _pages(run: Path) -> int:
    """The tmpfs pages the files of ``run`` take, its curve aside (drawn at the end only); hard links once."""
    files = {path.stat().st_ino: path for path in run.rglob("*") if path.is_file() and path.name != "train_curve.png"}
    return sum(math.ceil(path.stat().st_size / PAGE) for path in files.values())


def _epochs_recipe(tmp_path: Path) -> tuple[Path, int]:
    """A run of 4 epochs of 16 steps, loader workers, an evaluation and a checkpoint each epoch, into ``tmp_path/small``;
    and the tmpfs pages its run folder holds after the first epoch (run on a roomy disk to learn it)."""
    recipe = training_recipe(tmp_path, max_steps=64)
    text = recipe.read_text().replace("batch_size = 4", "batch_size = 1\nnum_workers = 2")
    recipe.write_text(text.replace("eval_every = 64", "eval_every = 16\ncheckpoint_every = 16\nlog_every = 1"))
    first = invoke("finetune", recipe, "--set", f"output.runs_dir={tmp_path / 'first'}", "--set", "train.max_steps=16")
    assert first.exit_code == 0, first.output
    recipe.write_text(recipe.read_text().replace(str(tmp_path / "runs"), str(tmp_path / "small" / "runs")))
    return recipe, _pages(tmp_path / "first" / "tiny")


def _resumed_after(tmp_path: Path, recipe: Path, *more: str) -> str:
    """What runs once the command failed: its run folder copied to ``failed``, space freed, ``--resume auto`` run
    (its status in ``resumed.status``), the run folder copied to ``after``."""
    run, small = tmp_path / "small" / "runs" / "tiny", tmp_path / "small"
    resume = shlex.join([sys.executable, "-m", "biofound_cli", "finetune", str(recipe), "--resume", "auto", "--json", *more])
    return (
        f"cp -r {run} {tmp_path / 'failed'}; mount -o remount,size=4m {small}; "
        f"{resume} > {tmp_path / 'resumed.json'}; echo $? > {tmp_path / 'resumed.status'}; cp -r {run} {tmp_path / 'after'}"
    )


def _assert_resumed_from_step_16(tmp_path: Path) -> None:
    """Once space was back, ``--resume auto`` went on from step 16's checkpoint and logged every step once."""
    after = tmp_path / "after"
    assert (tmp_path / "resumed.status").read_text().strip() == "0"
    assert json.loads((tmp_path / "resumed.json").read_text())["steps"] == 64
    *_, start = (after / "recipe_history.jsonl").read_text().splitlines()
    assert json.loads(start)["resumed_from"] == str(tmp_path / "small" / "runs" / "tiny" / "checkpoints" / "step-00000016")
    records = map(json.loads, (after / "metrics.jsonl").read_text().splitlines())
    assert [record["step"] for record in records if record["split"] == "train"] == list(range(1, 65))


def _assert_failed_naming(done: subprocess.CompletedProcess, path: Path, recipe: Path) -> None:
    """The command failed in one line: ``path`` did not fit, and the ``--resume auto`` of its own command line."""
    assert done.returncode == ExitStatus.FAILED and "Traceback" not in done.stderr, done.stderr
    error = json.loads(done.stdout)["error"]
    assert re.fullmatch(
        rf"{re.escape(str(path))}: No space left on device; free space on that disk \(or raise your quota\): "
        rf"what was finished is kept, so continue with: biofound finetune {re.escape(str(recipe))} --resume auto --json "
        r"--no-progress",
        error,
    ), error


def test_a_disk_that_fills_while_metrics_jsonl_grows_names_it_leaves_no_torn_line_and_resumes(tmp_path):
    # The line said "error: No space left on device; ..." naming no file, and metrics.jsonl ended in a torn line
    # (`{"split": "train",`) that jq and pandas refuse the whole file for.
    # On a disk the size of the run after its first epoch, the page metrics.jsonl needs next, a few steps on, does not fit.
    recipe, pages = _epochs_recipe(tmp_path)
    small = tmp_path / "small"
    run = small / "runs" / "tiny"
    done = run_on_a_small_disk(
        small,
        biofound("finetune", recipe, "--json", "--no-progress"),
        size=f"{pages * PAGE // 1024}k",
        then=_resumed_after(tmp_path, recipe),
    )
    _assert_failed_naming(done, run / "metrics.jsonl", recipe)
    assert ".tmp" not in done.stderr  # no half-written file under the run folder
    failed = (tmp_path / "failed" / "metrics.jsonl").read_text()
    assert failed.endswith("\n") and all(json.loads(line) for line in failed.splitlines())  # no torn last line
    _assert_resumed_from_step_16(tmp_path)


STOPPED_AT_THE_SECOND_EVALUATION = """
import os, signal, sys
from biofound_cli.training import loop
from biofound_cli.__main__ import main
evaluate, calls = loop._evaluate_and_keep_best, []
def evaluate_then_stop_at_the_second(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # SIGTERM to the whole group, loader workers included, as a scheduler sends it
        os.killpg(os.getpgrp(), signal.SIGTERM)
    return evaluate(*args, **kwargs)
loop._evaluate_and_keep_best = evaluate_then_stop_at_the_second
sys.argv = ["biofound", *sys.argv[1:]]
main()
"""


def test_a_preemption_checkpoint_that_does_not_fit_fails_naming_it_and_resume_goes_on_from_the_last_good_one(tmp_path):
    # A requeue with the quota exceeded: SIGTERM at step 32, whose checkpoint does not fit on the disk.
    recipe, pages = _epochs_recipe(tmp_path)
    run = tmp_path / "small" / "runs" / "tiny"
    command = [sys.executable, "-c", STOPPED_AT_THE_SECOND_EVALUATION, "finetune", recipe, "--json", "--no-progress"]
    # Room for step 32's metrics and best (5 pages written beside the old), not for its checkpoint (23 pages).
    size = f"{(pages + 8) * PAGE // 1024}k"
    done = run_on_a_small_disk(tmp_path / "small", command, size=size, then=_resumed_after(tmp_path, recipe))
    _assert_failed_naming(done, run / "checkpoints" / "step-00000032", recipe)
    assert ".tmp" not in done.stderr and ".old" not in done.stderr  # no half-written file under the run folder
    failed = tmp_path / "failed"
    assert sorted(path.name for path in (failed / "checkpoints").iterdir()) == ["best", "step-00000016"]
    assert (failed / "metrics.jsonl").read_text().endswith("\n")
    _assert_resumed_from_step_16(tmp_path)


def test_a_curve_that_does_not_fit_as_the_run_ends_is_drawn_by_the_resume_the_line_asks_for(tmp_path):
    # The line said to continue with --resume auto, which found the run finished and drew no curve: none, for good.
    recipe, pages = _epochs_recipe(tmp_path)
    run, short = tmp_path / "small" / "runs" / "tiny", ["--set", "train.max_steps=16"]
    command = biofound("finetune", recipe, *short, "--json", "--no-progress")
    # Room for the first epoch's files, not for train_curve.png (~19 pages).
    done = run_on_a_small_disk(
        tmp_path / "small", command, size=f"{(pages + 2) * PAGE // 1024}k", then=_resumed_after(tmp_path, recipe, *short)
    )
    assert done.returncode == ExitStatus.FAILED and "Traceback" not in done.stderr, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error.startswith(f"{run / 'train_curve.png'}: No space left on device; free space on that disk"), error
    assert error.endswith("--set train.max_steps=16 --resume auto --json --no-progress"), error
    assert ".tmp" not in done.stderr
    assert (tmp_path / "resumed.status").read_text().strip() == "0"
    curve = json.loads((tmp_path / "resumed.json").read_text())["train_curve"]
    assert curve == str(run / "train_curve.png") and (tmp_path / "after" / "train_curve.png").read_bytes()[:4] == b"\x89PNG"
