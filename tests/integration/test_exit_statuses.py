"""Exit statuses and output as a shell sees them: separate processes, real pipes, real signals.

The in-process checks of every command are in ``tests/unit/cli/test_exit_statuses.py``;
Ctrl-C during preprocess is in ``test_preprocess_resume.py`` and preemption (75) in
``test_train_cli_processes.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fixtures.cli_output import LIVE_DISPLAY_MARKERS
from fixtures.tiny_training import training_recipe
from fixtures.tuh import build_tuab

from biofound_cli.errors import ExitStatus

pytestmark = pytest.mark.slow


def biofound(*args: object) -> list[str]:
    return [sys.executable, "-m", "biofound_cli", *(str(arg) for arg in args)]


def environment() -> dict[str, str]:
    # A plain log, as under cron, SLURM or CI: none of the variables that make rich assume a terminal.
    plain = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    return {**plain, "OMP_NUM_THREADS": "1"}


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(biofound(*args), env=environment(), capture_output=True, text=True, timeout=600)


def test_json_through_a_pipe_and_plain_logs(tmp_path):
    raw = build_tuab(tmp_path / "raw")
    preprocessed = run("preprocess", "tuab", "--root", raw, "--out", tmp_path / "shards", "--json")
    assert preprocessed.returncode == 0, preprocessed.stderr
    assert json.loads(preprocessed.stdout)["written"] == 5  # what `| jq .written` would read

    packed = run("pack", tmp_path / "shards", "--out", tmp_path / "packed")  # no --json: the human log
    assert packed.returncode == 0, packed.stderr
    assert not any(marker in packed.stdout for marker in LIVE_DISPLAY_MARKERS)
    assert "packing: 20/20 windows" in packed.stdout

    bad = run("pack", tmp_path / "nowhere", "--out", tmp_path / "packed", "--json")
    assert bad.returncode == ExitStatus.USAGE
    failure = json.loads(bad.stdout)  # one object, so `| jq .exit_status` works on failures too
    assert failure["ok"] is False and failure["exit_status"] == ExitStatus.USAGE and "nowhere" in failure["error"]
    assert bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_ctrl_c_during_training_exits_130(tmp_path):
    recipe = training_recipe(tmp_path, max_steps=100_000)
    metrics = tmp_path / "runs" / "tiny" / "metrics.jsonl"
    # Ctrl-C reaches the whole foreground process group, hence a session of its own and killpg.
    process = subprocess.Popen(
        biofound("finetune", recipe, "--set", "train.eval_every=5", "--no-progress"),
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.INTERRUPTED, stderr
    assert "stopped by Ctrl-C at step" in stderr and "Traceback" not in stderr
    assert "continue with: biofound finetune" in stderr and "--resume auto" in stderr
    assert list((tmp_path / "runs" / "tiny" / "checkpoints").glob("step-*/trainer_state.pt"))
    assert not any(marker in stdout for marker in LIVE_DISPLAY_MARKERS)
