"""pretrain/finetune on a disk that fills up, met for real on a small file system (tests/fixtures/small_disk.py)."""

from __future__ import annotations

import json
import math
import re
import shlex
import sys
from pathlib import Path

import pytest
from fixtures.small_disk import biofound_on_a_small_disk

from biofound_cli.errors import ExitStatus

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from test_exit_statuses import invoke, training_recipe  # noqa: E402

pytestmark = pytest.mark.slow

PAGE = 4096
"""What a tmpfs gives a file at a time: a file of n bytes takes ceil(n / PAGE) of its pages."""


def _pages(run: Path) -> int:
    """The tmpfs pages the files of ``run`` take, its curve aside (drawn at the end only); hard links once."""
    files = {path.stat().st_ino: path for path in run.rglob("*") if path.is_file() and path.name != "train_curve.png"}
    return sum(math.ceil(path.stat().st_size / PAGE) for path in files.values())


def test_a_disk_that_fills_while_metrics_jsonl_grows_names_it_leaves_no_torn_line_and_resumes(tmp_path):
    # The line said "error: No space left on device; ..." naming no file, and metrics.jsonl ended in a torn line
    # (`{"split": "train",`) that jq and pandas refuse the whole file for.
    recipe = training_recipe(tmp_path, max_steps=64)
    text = recipe.read_text().replace("batch_size = 4", "batch_size = 1\nnum_workers = 2")  # 16 steps an epoch
    recipe.write_text(text.replace("eval_every = 64", "eval_every = 16\ncheckpoint_every = 16\nlog_every = 1"))
    # The first epoch on a roomy disk says how many pages the run holds at step 16: on a disk of that size, the
    # checkpoint and best of step 16 fit, and the page metrics.jsonl needs next, a few steps on, does not.
    first = invoke("finetune", recipe, "--set", f"output.runs_dir={tmp_path / 'first'}", "--set", "train.max_steps=16")
    assert first.exit_code == 0, first.output
    small = tmp_path / "small"
    run, after = small / "runs" / "tiny", tmp_path / "after"
    resume = shlex.join([sys.executable, "-m", "biofound_cli", "finetune", str(recipe), "--resume", "auto", "--json"])
    then = (
        f"cp -r {run} {tmp_path / 'failed'}; mount -o remount,size=4m {small}; "
        f"{resume} > {tmp_path / 'resumed.json'}; echo $? > {tmp_path / 'resumed.status'}; cp -r {run} {after}"
    )
    size = f"{_pages(tmp_path / 'first' / 'tiny') * PAGE // 1024}k"
    recipe.write_text(recipe.read_text().replace(str(tmp_path / "runs"), str(small / "runs")))
    done = biofound_on_a_small_disk(small, ["finetune", recipe, "--json", "--no-progress"], size=size, then=then)
    assert done.returncode == ExitStatus.FAILED and "Traceback" not in done.stderr, done.stderr
    error = json.loads(done.stdout)["error"]
    assert re.fullmatch(
        rf"{re.escape(str(run / 'metrics.jsonl'))}: No space left on device; free space on that disk \(or raise your quota\): "
        rf"what was finished is kept, so continue with: biofound finetune {re.escape(str(recipe))} --resume auto --json "
        r"--no-progress",
        error,
    ), error
    assert ".tmp" not in done.stderr  # no half-written file under the run folder
    failed = (tmp_path / "failed" / "metrics.jsonl").read_text()
    assert failed.endswith("\n") and all(json.loads(line) for line in failed.splitlines())  # no torn last line
    # Once space is back, --resume auto goes on from step 16's checkpoint and logs every step once.
    assert (tmp_path / "resumed.status").read_text().strip() == "0"
    assert json.loads((tmp_path / "resumed.json").read_text())["steps"] == 64
    *_, start = (after / "recipe_history.jsonl").read_text().splitlines()
    assert json.loads(start)["resumed_from"] == str(run / "checkpoints" / "step-00000016")
    steps = [
        record["step"]
        for record in map(json.loads, (after / "metrics.jsonl").read_text().splitlines())
        if record["split"] == "train"
    ]
    assert steps == list(range(1, 65))
