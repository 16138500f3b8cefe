"""The training commands as separate processes: an external SIGTERM, and torchrun with two ranks."""

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
from fixtures import process_group
from fixtures.tiny_training import tiny_recipe

from biofound_cli.errors import ExitStatus

pytestmark = pytest.mark.slow


def write_recipe(tmp_path: Path, max_steps: int, eval_every: int) -> Path:
    return tiny_recipe(tmp_path, f"max_steps = {max_steps}\neval_every = {eval_every}\nlog_every = 1", name=None)


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "biofound_cli", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    newest = sorted((run / "checkpoints").glob("step-*"))[-1]
    return load_file(str(newest / "model.safetensors"))


def test_external_sigterm_exits_75_leaves_the_curve_and_resume_auto_matches_a_straight_run(tmp_path):
    # Enough steps that the run is still going when the signal comes (the stop is at step 3 or so);
    # the straight run and the resumed one each train all of them.
    recipe = write_recipe(tmp_path, max_steps=120, eval_every=60)
    straight = subprocess.run(
        command("finetune", str(recipe), "--quiet", "--set", "output.run_name=straight"),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert straight.returncode == 0, straight.stderr

    args = command("finetune", str(recipe), "--resume", "auto", "--quiet", "--set", "output.run_name=preempted")
    process = subprocess.Popen(args, env=environment(), stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "runs" / "preempted" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            process.send_signal(signal.SIGTERM)
            break
        time.sleep(0.02)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.PREEMPTED, stderr
    assert "--resume auto" in stderr
    # What was trained so far is plotted, not only once the run ends.
    assert (tmp_path / "runs" / "preempted" / "train_curve.png").stat().st_size > 0

    resumed = subprocess.run(args, env=environment(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = final_weights(tmp_path / "runs" / "straight"), final_weights(tmp_path / "runs" / "preempted")
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=0, msg=key)


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node=2 -m biofound_cli ARGS``, its output captured."""
    return subprocess.run(process_group.torchrun(*args), env=environment(), capture_output=True, text=True, timeout=600)


def test_torchrun_two_ranks_finetune(tmp_path):
    recipe = write_recipe(tmp_path, max_steps=4, eval_every=2)
    result = torchrun("finetune", str(recipe), "--json", "--quiet", "--set", "data.batch_size=2")
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # only rank 0 prints
    assert summaries[0]["world_size"] == 2 and summaries[0]["steps"] == 4
    # TinyMyo declares that each step uses every trainable weight: DDP searches for none and warns on no rank.
    assert "find_unused_parameters" not in result.stderr
    # Every rank's process, host and device are on file, not rank 0's alone: a multi-node job may mix GPUs.
    environment = json.loads((tmp_path / "runs" / "tinymyo-finetune" / "environment.json").read_text())
    ranks = environment["ranks"]
    assert [rank["rank"] for rank in ranks] == [0, 1] and environment["world_size"] == 2
    assert {(rank["host"], rank["device"], rank["gpu"]) for rank in ranks} == {(socket.gethostname(), "cpu", None)}
    assert len({rank["pid"] for rank in ranks}) == 2


def test_torchrun_resume_with_another_accumulation_is_refused_by_rank_zero_once(tmp_path):
    recipe = write_recipe(tmp_path, max_steps=4, eval_every=2)
    common = ["finetune", str(recipe), "--json", "--quiet", "--resume", "auto"]
    common += ["--set", "data.batch_size=2", "--set", "data.num_workers=2"]
    assert torchrun(*common).returncode == 0
    refused = torchrun(*common, "--set", "optim.accumulation_steps=2", "--set", "train.max_steps=6", "--allow-changes")
    assert refused.returncode != 0
    reports = [json.loads(line) for line in refused.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1 and reports[0]["exit_status"] == ExitStatus.USAGE
    newest = tmp_path / "runs" / "tinymyo-finetune" / "checkpoints" / "step-00000004"
    assert reports[0]["error"].startswith(f"{newest} was trained with optim.accumulation_steps = 1 and this start has 2")
    assert "exitcode  : 2" in refused.stderr  # torchrun's report: each rank refused, none crashed
    assert not (newest.parent / "step-00000005").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_torchrun_stopped_by_sigterm_prints_a_resume_command_that_runs_when_pasted(tmp_path, signum):
    # The cluster's way: torchrun with its own options, SIGTERM to the job's whole process group,
    # then the `resume_command` of the --json object pasted into a shell. It used to read
    # "torchrun <the same torchrun options> -m biofound_cli ...", which a shell cannot run.
    # SIGUSR1, as docs/distributed.md sends it: torchrun forwards it to each rank's group, where it
    # killed multiprocessing's resource tracker ("Some resources might leak", a traceback per semaphore).
    recipe = write_recipe(tmp_path, max_steps=120, eval_every=60)
    args = ["finetune", str(recipe), "--json", "--quiet", "--set", "data.batch_size=2", "--set", "data.num_workers=2"]
    launcher = process_group.torchrun(*args, "--resume", "auto")
    launcher[3:3] = ["--signals-to-handle", "SIGTERM,SIGINT,SIGUSR1"]
    process = subprocess.Popen(
        launcher,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    metrics = tmp_path / "runs" / "tinymyo-finetune" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            os.killpg(process.pid, signum)
            break
        time.sleep(0.02)
    stdout, stderr = process.communicate(timeout=300)
    reports = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1 and reports[0]["exit_status"] == ExitStatus.PREEMPTED, stderr
    assert reports[0]["error"].startswith(f"stopped by {signum.name} at step ")
    assert "resource_tracker" not in stderr + stdout and "KeyError" not in stderr, stderr
    pasted = reports[0]["resume_command"]
    assert pasted.startswith(" ".join(launcher[: launcher.index("biofound_cli") + 1]) + " ")

    resumed = subprocess.run(pasted, shell=True, env=environment(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    summary = [json.loads(line) for line in resumed.stdout.splitlines() if line.startswith("{")][0]
    assert summary["steps"] == 120 and summary["world_size"] == 2


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pins the process to one CPU (Linux)")
def test_a_library_warning_repeated_every_epoch_is_shown_once(tmp_path):
    # More loader workers than CPUs: torch warns at every loader it makes (each epoch and each
    # evaluation, from two places), and the metrics' catch_warnings made Python forget it had
    # shown it, so the line came once per epoch, on stderr and in --json's warnings alike.
    recipe = write_recipe(tmp_path, max_steps=18, eval_every=6)
    one_cpu = min(os.sched_getaffinity(0))
    result = subprocess.run(
        command("finetune", str(recipe), "--json", "--quiet", "--set", "data.num_workers=2"),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.sched_setaffinity(0, {one_cpu}),
    )
    assert result.returncode == 0, result.stderr
    notice = "worker processes in total"
    summary = json.loads(result.stdout.splitlines()[-1])
    assert [line for line in summary["warnings"] if notice in line] != []
    assert len([line for line in summary["warnings"] if notice in line]) == 1
    assert result.stderr.count(notice) == 1
