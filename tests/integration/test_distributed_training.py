"""Two CPU processes with the gloo backend, launched the way torchrun sets them up.

* Two processes with batch 4 end with the weights of one process with batch 8.
* A SIGTERM on one rank mid-run: every rank exits with the preemption status and names SIGTERM, and a restart
  with ``--resume auto`` ends with the weights of an uninterrupted two-process run.
* Once-per-epoch evaluation when the accumulation does not divide an epoch, on two ranks with
  two loader workers each: one evaluation and one checkpoint in the step in which each epoch ends.
* A SIGTERM after the last step: the run is complete, every rank exits 0.
* Under accumulation, two processes with batch 4 sync their gradients once a step (the other
  micro-batches under ``no_sync``) and end with the weights of one process with batch 8.
* After a finished run (DDP, loader workers, evaluation each epoch), and after a SIGTERM while the
  stop's exception (whose traceback holds the loop's frames, DDP among them) is still alive, no
  rank keeps the gloo process group's threads once it left the group. Whatever held the group
  past ``destroy_process_group`` destroyed it later: torch.distributed.nn (imported by DDP after
  the group was made) during interpreter exit, where a rank could abort (exit -6) after a
  successful run; DDP's reducer, freed with that traceback, while holding the interpreter lock
  that a gloo thread waited for, and the rank hung after the stop.
* A warning every rank meets in training is printed by rank 0 alone, as the CLI's ranks print it.
* ``train.compile = true`` on two ranks with two loader workers each (the compiled model
  inside DDP, evaluated every 4 steps) compiles without falling back and ends with the eager
  run's weights.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from biofound_cli.errors import ExitStatus

JOB = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_job.py"
HANG_SECONDS = 300
"""A launch takes seconds; ranks still running after this long are stuck (their stacks are printed)."""
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(world_size: int, *args: str, stderr: Path | None = None) -> list[int]:
    """Start ``world_size`` ranks of the tiny job; their exit statuses in rank order.

    With ``stderr``, the ranks' standard error goes to that file instead of the terminal.
    """
    port = free_port()
    processes = []
    for rank in range(world_size):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        log = open(stderr, "a") if stderr is not None else None  # noqa: SIM115 - closed below
        processes.append(subprocess.Popen([sys.executable, str(JOB), *args], env=env, stderr=log))
        if log is not None:
            log.close()  # the child holds its own descriptor
    try:
        return [process.wait(timeout=HANG_SECONDS) for process in processes]
    except subprocess.TimeoutExpired:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGQUIT)  # tiny_job prints its threads' stacks
        time.sleep(2)
        raise
    finally:
        for process in processes:  # ranks left behind by a failed wait would run on past the test
            process.kill()
            process.wait()


def assert_same_weights(first: Path, second: Path, atol: float) -> None:
    a, b = torch.load(first), torch.load(second)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


def test_two_processes_match_one_process_with_the_doubled_batch(tmp_path):
    assert launch(
        1, "--run-dir", str(tmp_path / "one"), "--batch-size", "8", "--max-steps", "6", "--out", str(tmp_path / "one.pt")
    ) == [0]
    assert launch(
        2, "--run-dir", str(tmp_path / "two"), "--batch-size", "4", "--max-steps", "6", "--out", str(tmp_path / "two.pt")
    ) == [0, 0]
    # Gradients are averaged in another order: equal up to float rounding.
    assert_same_weights(tmp_path / "one.pt", tmp_path / "two.pt", atol=1e-5)


def test_sigterm_on_one_rank_preempts_all_and_resume_auto_matches_a_straight_run(tmp_path):
    common = ["--batch-size", "4", "--max-steps", "10"]
    assert launch(2, "--run-dir", str(tmp_path / "straight"), *common, "--out", str(tmp_path / "straight.pt")) == [0, 0]
    log = tmp_path / "preempted.log"
    preempted = launch(2, "--run-dir", str(tmp_path / "run"), *common, "--resume", "auto", "--signal-at", "3", stderr=log)
    assert preempted == [int(ExitStatus.PREEMPTED)] * 2, log.read_text()[-3000:]
    # Only rank 0 received the SIGTERM; every rank names it.
    for rank in range(2):
        assert f"rank {rank}: stopped by SIGTERM at step 3;" in log.read_text(), log.read_text()[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "step-00000003" / "trainer_state.pt").is_file()
    resumed = launch(2, "--run-dir", str(tmp_path / "run"), *common, "--resume", "auto", "--out", str(tmp_path / "resumed.pt"))
    assert resumed == [0, 0]
    assert_same_weights(tmp_path / "straight.pt", tmp_path / "resumed.pt", atol=1e-6)


def test_only_rank_zero_prints_a_warning_every_rank_meets(tmp_path):
    # Two steps warm up over the whole run on both ranks; the job filters rank 1's log as `biofound finetune` does.
    log = tmp_path / "ranks.log"
    assert launch(2, "--run-dir", str(tmp_path / "run"), "--batch-size", "4", "--max-steps", "2", stderr=log) == [0, 0]
    assert log.read_text().count("optim.warmup_steps = 2 warms up over 2 steps") == 1, log.read_text()[-3000:]


def test_train_compile_on_two_ranks_matches_the_eager_run(tmp_path):
    common = ["--batch-size", "4", "--max-steps", "6", "--workers", "2"]
    assert launch(2, "--run-dir", str(tmp_path / "eager"), *common, "--out", str(tmp_path / "eager.pt")) == [0, 0]
    log = tmp_path / "compiled.log"
    compiled = launch(
        2, "--run-dir", str(tmp_path / "compiled"), *common, "--compile", "--out", str(tmp_path / "compiled.pt"), stderr=log
    )
    assert compiled == [0, 0], log.read_text()[-3000:]
    # The fallback (an uncompiled run) would log this warning; the compiled graphs must have run.
    assert "could not compile" not in log.read_text()
    assert_same_weights(tmp_path / "eager.pt", tmp_path / "compiled.pt", atol=1e-5)


def test_two_ranks_with_loader_workers_evaluate_once_per_epoch_under_accumulation(tmp_path):
    # 48 windows, a global batch of 8: 6 micro-batches an epoch, 4 a step, so the 4 epochs end
    # inside steps 2, 3, 5 and 6 (24 micro-batches make 6 steps).
    args = ["--batch-size", "4", "--epochs", "4", "--accumulation", "4", "--workers", "2"]
    assert launch(2, "--run-dir", str(tmp_path), *args) == [0, 0]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "val"] == [2, 3, 5, 6]
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 7))
    checkpoints = sorted(path.name for path in (tmp_path / "checkpoints").glob("step-*"))
    assert checkpoints[-1] == "step-00000006"


def test_two_processes_under_accumulation_sync_once_a_step_and_match_one_process(tmp_path):
    common = ["--max-steps", "6", "--accumulation", "3", "--workers", "2"]
    assert launch(1, "--run-dir", str(tmp_path / "one"), "--batch-size", "8", *common, "--out", str(tmp_path / "one.pt")) == [0]
    two = ["--run-dir", str(tmp_path / "two"), "--batch-size", "4", *common, "--out", str(tmp_path / "two.pt")]
    assert launch(2, *two, "--syncs", str(tmp_path / "syncs")) == [0, 0]
    # One bucket holds the tiny model's gradients: one all-reduce per step, none for the 12 other micro-batches.
    assert [(tmp_path / f"syncs.{rank}").read_text() for rank in range(2)] == ["6", "6"]
    assert_same_weights(tmp_path / "one.pt", tmp_path / "two.pt", atol=1e-5)


def test_a_sigterm_after_the_last_step_ends_a_complete_run_on_every_rank(tmp_path):
    statuses = launch(2, "--run-dir", str(tmp_path), "--batch-size", "4", "--max-steps", "4", "--signal-at", "4")
    assert statuses == [0, 0]
    assert (tmp_path / "checkpoints" / "step-00000004" / "trainer_state.pt").is_file()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads through Linux's /proc")
@pytest.mark.parametrize(
    ("run", "status"),
    [(["--epochs", "2"], 0), (["--max-steps", "10", "--signal-at", "5"], int(ExitStatus.PREEMPTED))],
    ids=["finished", "stopped"],
)
def test_leaving_the_process_group_ends_its_threads_on_every_rank(tmp_path, run, status):
    # Stopped at step 5: after the evaluation at step 4, whose two loader workers a rank forks each time.
    args = ["--batch-size", "4", *run, "--workers", "2", "--threads-left", str(tmp_path / "threads")]
    assert launch(2, "--run-dir", str(tmp_path / "run"), *args) == [status, status]
    for rank in range(2):
        names = (tmp_path / f"threads.{rank}").read_text().splitlines()
        assert names and not [name for name in names if "gloo" in name], (rank, names)


def test_two_ranks_score_the_validation_split_as_one_process_does(tmp_path):
    # Each rank scores a share of the 12 validation windows (one batch of 4 on rank 0, two on
    # rank 1) and the outputs are gathered: the metrics of one process scoring them all.
    args = ["--epochs", "2", "--workers", "2"]
    assert launch(1, "--run-dir", str(tmp_path / "one"), "--batch-size", "8", *args) == [0]
    assert launch(2, "--run-dir", str(tmp_path / "two"), "--batch-size", "4", *args) == [0, 0]
    runs = {}
    for name in ("one", "two"):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        runs[name] = [json.loads(line) for line in lines if json.loads(line)["split"] == "val"]
    assert [r["step"] for r in runs["one"]] == [r["step"] for r in runs["two"]] == [6, 12]
    for one, two in zip(runs["one"], runs["two"], strict=True):
        metrics = [key for key in one if key.startswith("val_")]
        assert metrics and metrics == [key for key in two if key.startswith("val_")]
        # The same weights up to float rounding (gradients averaged in another order).
        assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)
        assert all(two[key] == pytest.approx(one[key], abs=1e-6) for key in metrics if key != "val_loss" and one[key] is not None)


def test_two_ranks_stop_together_and_agree_on_the_best_when_the_watched_metric_is_undefined_at_first(tmp_path):
    # Each rank counts the patience from the gathered metrics. The first evaluation's val_loss is NaN
    # (undefined): neither the best nor a strike. A learning rate of 1e-12 leaves every later one
    # equal to the second, the best: the third is the strike that ends the run at step 12 of 20.
    args = ["--batch-size", "4", "--max-steps", "20", "--workers", "2", "--lr", "1e-12", "--patience", "1"]
    results = tmp_path / "result"
    assert launch(2, "--run-dir", str(tmp_path / "run"), *args, "--nan-val-until", "4", "--result", str(results)) == [0, 0]
    ranks = [json.loads((tmp_path / f"result.{rank}").read_text()) for rank in range(2)]
    assert ranks[0] == ranks[1], ranks
    assert ranks[0]["stopped_early"] and ranks[0]["step"] == 12 and ranks[0]["best_step"] == 8, ranks
    val = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [record for record in val if record["split"] == "val"]
    assert [(r["step"], r["val_loss"] is None) for r in val] == [(4, True), (8, False), (12, False)]
    assert ranks[0]["best_metric"] == val[1]["val_loss"]
    from biofound_cli.models.checkpoints import read_metadata

    assert read_metadata(tmp_path / "run" / "checkpoints" / "best" / "model.safetensors").extra["step"] == 8
