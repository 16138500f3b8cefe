"""Training as cluster users run it: loader workers, evaluation every epoch, signals to whole
process groups, torchrun with two CPU ranks and a job-wide signal, the shipped SLURM script,
and re-runs of finished, early-stopped, interrupted and damaged runs.

The recipes are the published ones' settings shrunk in size and steps only: ``num_workers``
is 2 (the published recipes use 8), evaluation runs once per epoch (the default) over several
epochs, and every resumed run must end with the bit-identical weights of a straight run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fixtures.process_group import biofound, start_in_own_group, torchrun, wait_until
from fixtures.real_runs import (
    assert_bit_identical,
    continue_command,
    environment,
    newest_weights,
    process_tree,
    run,
    signal_when_logged,
    write_recipe,
    write_split,
)
from safetensors.torch import load_file

from biofound_cli.errors import ExitStatus

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# -- every family and fine-tuning mode, with workers and an evaluation every epoch ----------------


@pytest.mark.parametrize("mode", ["full", "frozen", "lora"])
@pytest.mark.parametrize("family", ["tinymyo", "femba", "luna"])
def test_every_family_and_mode_trains_through_evaluations_every_epoch(tmp_path, family, mode):
    recipe = write_recipe(tmp_path, family, epochs=2)
    result = run(biofound("finetune", recipe, "--set", f"model.finetune={mode}", "--json", "--no-progress"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 12 and summary["epochs"] == 2
    run_folder = tmp_path / "runs" / f"{family}-real"
    evaluations = [
        json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines() if json.loads(line)["split"] == "val"
    ]
    assert [record["step"] for record in evaluations] == [6, 12]

    from biofound_cli.models.checkpoints import load

    best = run_folder / "checkpoints" / "best" / "model.safetensors"
    assert not any("parametrizations" in key or "lora_" in key for key in load_file(str(best)))
    load(best)  # plain weights under the official key names


# -- what training records for the best checkpoint is what `biofound evaluate` reports -------------


@pytest.mark.parametrize("launcher", [biofound, torchrun], ids=["one-process", "torchrun-2-ranks"])
def test_recorded_validation_metrics_are_what_evaluate_reports_for_the_best_checkpoint(tmp_path, launcher):
    # bf16 autocast in training; a validation split of 61 windows: no multiple of the batch (4) or
    # of the global batch (4 x 2 ranks), so the last batch is partial and a padding sampler would repeat windows.
    # No early_stopping_mode: an AUROC is better when larger, whatever the recipe leaves out.
    extra = "precision = 'bf16'\nearly_stopping_metric = 'val_auroc'"
    recipe = write_recipe(tmp_path, epochs=3, extra=extra)
    write_split(tmp_path / "val.h5", 61, 1)
    trained = run(launcher("finetune", recipe, "--json", "--no-progress"))
    assert trained.returncode == 0, trained.stderr
    evaluated = run(biofound("evaluate", recipe, "--split", "val", "--json", "--no-progress"))
    assert evaluated.returncode == 0, evaluated.stderr
    reported = json.loads(evaluated.stdout)["metrics"]

    from biofound_cli.models.checkpoints import read_metadata

    run_folder = tmp_path / "runs" / "tinymyo-real"
    best = read_metadata(run_folder / "checkpoints" / "best" / "model.safetensors").extra
    assert float(best["val_auroc"]) == pytest.approx(reported["auroc"], abs=1e-6)
    rows = [json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines()]
    recorded = next(row for row in rows if row["split"] == "val" and row["step"] == int(best["step"]))
    assert {name: recorded[f"val_{name}"] for name in reported} == pytest.approx(reported, abs=1e-6)
    assert recorded["val_auroc"] == max(row["val_auroc"] for row in rows if row["split"] == "val")


# -- signals to the process group with loader workers -----------------------------------------


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> dict[str, torch.Tensor]:
    folder = tmp_path_factory.mktemp("straight")
    recipe = write_recipe(folder)
    result = run(biofound("finetune", recipe, "--no-progress"))
    assert result.returncode == 0, result.stderr
    return newest_weights(folder / "runs" / "tinymyo-real")


@pytest.mark.parametrize(
    ("signum", "status"),
    [
        (signal.SIGTERM, ExitStatus.PREEMPTED),
        (signal.SIGUSR1, ExitStatus.PREEMPTED),
        (signal.SIGINT, ExitStatus.INTERRUPTED),
    ],
)
def test_group_signal_with_loader_workers_checkpoints_and_resumes_bit_exact(tmp_path, straight_run, signum, status):
    recipe = write_recipe(tmp_path)
    run_folder = tmp_path / "runs" / "tinymyo-real"
    process = start_in_own_group(biofound("finetune", recipe, "--json", "--no-progress"), env=environment())
    signal_when_logged(process, run_folder / "metrics.jsonl", signum)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr and "DataLoader worker" not in stderr
    failure = json.loads(stdout)
    assert failure["exit_status"] == status and failure["ok"] is False
    stopped_at = Path(failure["checkpoint"])
    assert (stopped_at / "trainer_state.pt").is_file() and failure["step"] < 24
    assert failure["resume_command"] in stderr

    resumed = run(continue_command(stderr))
    assert resumed.returncode == 0, resumed.stderr
    # The printed command keeps the output flags, so a script re-running it reads the same format:
    # one JSON summary on stdout, the messages (and no live bars) on stderr.
    assert json.loads(resumed.stdout)["steps"] == 24
    assert f"resumed from {stopped_at}" in resumed.stderr
    assert_bit_identical(newest_weights(run_folder), straight_run)


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (its ``SigCgt`` mask in /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) & (1 << (signum - 1)))


def test_a_preemption_while_the_job_starts_checkpoints_after_the_first_step(tmp_path, straight_run):
    # A scheduler's SIGTERM while torch imported and the recipe was read (seconds; tens on a
    # cluster's network file system) killed the job with status 143 and no line, which an sbatch
    # requeue waiting for 75 passed over. Signalled as soon as the command handles SIGTERM at all:
    # from the entry point's first instruction, before typer, pydantic and torch are imported.
    recipe = write_recipe(tmp_path)
    process = start_in_own_group(biofound("finetune", recipe, "--json", "--no-progress"), env=environment())
    wait_until(process, lambda: catches(process.pid, signal.SIGTERM), "handling SIGTERM")
    os.killpg(process.pid, signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.PREEMPTED, stderr
    failure = json.loads(stdout)
    assert failure["step"] == 1 and "stopped by SIGTERM at step 1" in failure["error"]
    resumed = run(continue_command(stderr))
    assert resumed.returncode == 0, resumed.stderr
    assert_bit_identical(newest_weights(tmp_path / "runs" / "tinymyo-real"), straight_run)


def test_late_copies_of_the_stop_signal_cannot_kill_the_report(tmp_path):
    """torchrun forwards its copy of a job-wide SIGTERM when it next gets CPU time, which on a
    loaded node can be after a rank has finished its stop step: the copy must not kill the rank
    (silently, exit 143) before it reports the stop and exits 75."""
    recipe = write_recipe(tmp_path)
    process = start_in_own_group(biofound("finetune", recipe, "--no-progress"), env=environment())
    signal_when_logged(process, tmp_path / "runs" / "tinymyo-real" / "metrics.jsonl", signal.SIGTERM)
    copies = 0
    while process.poll() is None:  # copies keep arriving until the process is gone
        try:
            os.kill(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            break
        copies += 1
        time.sleep(0.002)
    _, stderr = process.communicate(timeout=300)
    assert copies > 1 and process.returncode == ExitStatus.PREEMPTED, stderr
    assert stderr.count("error: stopped by SIGTERM") == 1 and "Traceback" not in stderr, stderr


def test_a_job_stopped_and_continued_again_and_again_finishes(tmp_path):
    """Job control on the whole group (Ctrl-Z then ``fg``, a scheduler's suspend and resume)
    while loader workers are forked for every epoch and evaluation: a worker forked as both
    signals arrive is left stopped by the kernel, and the run waited for it for ever."""
    recipe = write_recipe(tmp_path)
    process = start_in_own_group(biofound("finetune", recipe, "--json", "--no-progress"), env=environment())
    deadline = time.monotonic() + 300  # a stopped worker hangs the run: give up rather than wait for ever
    while process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGSTOP)
            os.killpg(process.pid, signal.SIGCONT)
        time.sleep(0.005)  # let the job run a little between the pairs
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the run hung: a loader worker was left stopped")
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["steps"] == 24


# -- torchrun: two CPU ranks, a job-wide SIGTERM, and the shipped SLURM script -------------------


@pytest.fixture(scope="module")
def straight_torchrun(tmp_path_factory) -> dict[str, torch.Tensor]:
    folder = tmp_path_factory.mktemp("straight-ddp")
    recipe = write_recipe(folder, extra="")
    result = run(torchrun("finetune", recipe, "--set", "data.batch_size=2", "--no-progress"))
    assert result.returncode == 0, result.stderr
    return newest_weights(folder / "runs" / "tinymyo-real")


def test_job_wide_sigterm_under_torchrun_checkpoints_once_and_resumes_bit_exact(tmp_path, straight_torchrun):
    recipe = write_recipe(tmp_path)
    run_folder = tmp_path / "runs" / "tinymyo-real"
    process = start_in_own_group(torchrun("finetune", recipe, "--set", "data.batch_size=2", "--no-progress"), env=environment())
    # Every process gets SIGTERM, and each rank a second copy forwarded by torchrun.
    signal_when_logged(process, run_folder / "metrics.jsonl", signal.SIGTERM, job_wide=True)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode != 0  # torchrun reports its own signal; the ranks exited 75
    # One stop, one line: rank 0's; rank 1 agreed and exits 75 in silence. torchrun's report of its
    # own signal (docs/distributed.md) shares the pipe, in either order.
    stops = [line for line in stderr.splitlines() if "stopped by" in line]
    assert len(stops) == 1 and stops[0].startswith("error: stopped by SIGTERM at step "), stderr
    assert "rank 1" not in stderr and stderr.count("error:") == 1, stderr
    assert stderr.count("Traceback") == 1 and "SignalException" in stderr  # torchrun's own, no rank's
    step = int(stops[0].split(" at step ")[1].split(";")[0])
    stopped = sorted((run_folder / "checkpoints").glob("step-*"))
    assert stopped[-1].name == f"step-{step:08d}" and (stopped[-1] / "trainer_state.pt").is_file()

    resumed = run(continue_command(stderr))
    assert resumed.returncode == 0, resumed.stderr
    assert "--no-progress" in resumed.args and f"resumed from {stopped[-1]}" in resumed.stdout
    assert_bit_identical(newest_weights(run_folder), straight_torchrun)


def test_a_torchrun_job_stopped_on_two_ranks_continues_on_one_with_the_same_global_batch(tmp_path):
    # docs/distributed.md: another number of processes resumes with --allow-changes and the global batch
    # it started with (2 x 2 windows, now 1 x 4); without the flag it is refused in one line naming why.
    recipe = write_recipe(tmp_path, epochs=3)
    run_folder = tmp_path / "runs" / "tinymyo-real"
    process = start_in_own_group(torchrun("finetune", recipe, "--set", "data.batch_size=2", "--no-progress"), env=environment())
    # To the process group (the bit-exact test above signals every process). After 9 records the
    # ranks start the loader workers of an epoch: a stop that came then was lost (the job ran on to
    # its last step, 1 run in 4-6) until the workers' start stopped ignoring signals in the ranks.
    signal_when_logged(process, run_folder / "metrics.jsonl", signal.SIGTERM, lines=9)
    _, stderr = process.communicate(timeout=300)
    stopped = sorted((run_folder / "checkpoints").glob("step-*"))[-1]
    assert (stopped / "trainer_state.pt").is_file(), stderr
    one_process = ["finetune", recipe, "--resume", "auto", "--set", "data.batch_size=4", "--json", "--no-progress"]

    refused = run(biofound(*one_process))
    assert refused.returncode == ExitStatus.USAGE
    assert "world size (processes): 2 -> 1" in json.loads(refused.stdout)["error"]
    assert sorted((run_folder / "checkpoints").glob("step-*"))[-1] == stopped

    resumed = run(biofound(*one_process, "--allow-changes"))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == 18 and f"resumed from {stopped}" in resumed.stderr
    rows = [json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if row["split"] == "train"] == list(range(1, 19))
    assert [(row["step"], row["epoch"]) for row in rows if row["split"] == "val"] == [(6, 0), (12, 1), (18, 2)]


@pytest.mark.parametrize("family", ["femba", "luna"])
def test_a_pretraining_checkpoint_has_one_val_loss_for_any_batch_size_and_number_of_ranks(tmp_path, family):
    # docs/distributed.md lets a run continue on another number of ranks (--allow-changes): its
    # best checkpoint and early stopping compare val_loss across the two. The masks were seeded
    # by the batch's index, so the same weights scored another val_loss with another
    # data.batch_size or number of ranks. A learning rate too small to move float32 weights keeps
    # the initial weights: every evaluation of every run below scores that one checkpoint.
    tiny = ["--set", "optim.lr=1e-30", "--set", "optim.warmup_lr_init=0", "--set", "optim.min_lr=0", "--no-progress"]
    recipe = write_recipe(tmp_path, family, epochs=2)
    launches = {"one-by-8": (biofound, 8), "one-by-3": (biofound, 3), "two-by-4": (torchrun, 4)}
    losses = {}
    for name, (launcher, batch_size) in launches.items():
        named = ["--set", f"output.run_name={name}", "--set", f"data.batch_size={batch_size}"]
        trained = run(launcher("pretrain", recipe, *named, *tiny))
        assert trained.returncode == 0, trained.stderr
        rows = [json.loads(line) for line in (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines()]
        losses[name] = [row["val_loss"] for row in rows if row["split"] == "val"]
    assert len(losses["one-by-8"]) == 2
    expected = losses["one-by-8"][0]
    assert {name: values for name, values in losses.items()} == {name: pytest.approx([expected] * 2, rel=1e-5) for name in losses}


@pytest.mark.parametrize(("family", "signum"), [("femba", signal.SIGUSR1), ("luna", signal.SIGTERM)])
def test_pretraining_stopped_by_a_group_signal_resumes_bit_exact_and_finetune_starts_from_its_best(tmp_path, family, signum):
    # Masked reconstruction with 2 loader workers and an evaluation every epoch, the stop sent to the
    # whole process group; then the join between the stages: finetune names the checkpoint it loaded.
    recipe = write_recipe(tmp_path, family, epochs=3, extra='early_stopping_metric = "val_loss"\nearly_stopping_mode = "min"')
    straight = run(biofound("pretrain", recipe, "--json", "--no-progress", "--set", "output.run_name=straight"))
    assert straight.returncode == 0, straight.stderr
    run_folder = tmp_path / "runs" / f"{family}-real"
    process = start_in_own_group(biofound("pretrain", recipe, "--json", "--no-progress"), env=environment())
    signal_when_logged(process, run_folder / "metrics.jsonl", signum)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.PREEMPTED, stderr
    assert "Traceback" not in stderr and "DataLoader worker" not in stderr
    resumed = run(continue_command(stderr))
    assert resumed.returncode == 0, resumed.stderr
    assert_bit_identical(newest_weights(run_folder), newest_weights(tmp_path / "runs" / "straight"))

    def comparable(folder: Path) -> list[dict]:
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        return [{key: value for key, value in row.items() if key != "samples_per_second"} for row in rows]

    assert comparable(run_folder) == comparable(tmp_path / "runs" / "straight")
    summaries = [json.loads(result.stdout) for result in (straight, resumed)]
    assert summaries[1]["best_step"] == summaries[0]["best_step"]

    best = run_folder / "checkpoints" / "best" / "model.safetensors"
    tuned = run(
        biofound("finetune", recipe, "--no-progress", "--set", f"model.checkpoint={run_folder}", "--set", "output.run_name=tuned")
    )
    assert tuned.returncode == 0, tuned.stderr
    [loaded] = [line for line in tuned.stdout.splitlines() if line.startswith("loaded ")]
    assert f" tensors from {best}; " in loaded and "start fresh (the head)" in loaded, loaded


# Rank 1 surviving said "rank 1: rank 1: another process ..." (its line was prefixed twice).
@pytest.mark.parametrize("killed", [1, 0], ids=["rank 1 killed", "rank 0 killed"])
def test_a_killed_rank_leaves_one_line_on_the_other_rank(tmp_path, killed):
    survivor_rank = 1 - killed
    recipe = write_recipe(tmp_path)
    process = start_in_own_group(
        torchrun("finetune", recipe, "--set", "data.batch_size=2", "--no-progress"),
        env={**environment(), "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "10"},
    )
    metrics = tmp_path / "runs" / "tinymyo-real" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.01)
    ranks = [
        pid
        for pid in process_tree(process.pid)[1:]
        if f"RANK={killed}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        and int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == process.pid
    ]
    os.kill(ranks[0], signal.SIGKILL)  # e.g. the kernel's out-of-memory killer
    _, stderr = process.communicate(timeout=300)
    assert process.returncode != 0
    assert f"[rank{survivor_rank}]: Traceback" not in stderr and "gloo" not in stderr, stderr
    survivor = [line for line in stderr.splitlines() if line.startswith(f"error: rank {survivor_rank}: ")]
    assert len(survivor) == 1, stderr
    assert survivor[0].startswith(f"error: rank {survivor_rank}: another process of this job failed or was killed")
    assert "--resume auto" in survivor[0]


def rank_exit_statuses(torchrun_stderr: str) -> list[int]:
    """The exit status of each rank as torchrun's failure report lists them."""
    return [int(status) for status in re.findall(r"^\s+exitcode\s+: (-?\d+)", torchrun_stderr, flags=re.MULTILINE)]


def _reorder_val_classes(folder: Path) -> None:
    with h5py.File(folder / "val.h5", "r+") as handle:
        handle.attrs["label_names"] = ["class2", "class0", "class1"]


@pytest.mark.parametrize(
    ("args", "change", "status", "expected"),
    [
        (["--set", "train.early_stopping_metric=val_r2"], None, ExitStatus.USAGE, "is not computed for task 'mcc'"),
        ([], _reorder_val_classes, ExitStatus.FAILED, "val.h5 names its classes class2, class0, class1 but"),
        (["--resume", "nowhere"], None, ExitStatus.USAGE, "--resume nowhere: not a complete checkpoint folder"),
        # Refused while the recipe is read, before the process group starts.
        (["--set", "optim.lr=-1"], None, ExitStatus.USAGE, "optim.lr = -1: must be above 0"),
        (["--set", "optim.lr"], None, ExitStatus.USAGE, "--set optim.lr: expected section.key=value"),
    ],
)
def test_a_refused_torchrun_job_exits_alike_on_every_rank_with_one_line(tmp_path, args, change, status, expected):
    # Every rank reaches the same refusal; each used to print it (rank 1 with a "rank 1:" prefix),
    # and the rank that exited last could be stopped by torchrun's SIGTERM (exit -15) instead.
    recipe = write_recipe(tmp_path)
    if change is not None:
        change(tmp_path)
    result = run(torchrun("finetune", recipe, "--set", "data.batch_size=2", *args, "--json", "--no-progress"))
    assert result.returncode != 0
    assert rank_exit_statuses(result.stderr) == [status, status], result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0] and "rank" not in errors[0], result.stderr
    assert result.stderr.count("Traceback") == 1 and "ChildFailedError" in result.stderr  # torchrun's own report
    [failure] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert failure["exit_status"] == status and expected in failure["error"]
    assert not list((tmp_path / "runs").rglob("step-*"))


def test_a_nan_training_loss_under_torchrun_is_one_line_and_every_rank_exits_failed(tmp_path):
    # A NaN sample in one window: the all-reduced loss is NaN on every rank at the same step, and
    # each rank printed the same error (rank 1 with a "rank 1:" prefix).
    recipe = write_recipe(tmp_path)
    with h5py.File(tmp_path / "train.h5", "r+") as handle:
        handle["x"][5, 0, 3] = np.nan
    result = run(torchrun("finetune", recipe, "--set", "data.batch_size=2", "--json", "--no-progress"))
    assert rank_exit_statuses(result.stderr) == [ExitStatus.FAILED, ExitStatus.FAILED], result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "the training loss became nan at step" in errors[0], result.stderr
    [failure] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert failure["exit_status"] == ExitStatus.FAILED and failure["error"] in errors[0]


def test_single_node_sbatch_checkpoints_requeues_and_finishes(tmp_path, straight_torchrun):
    recipe = write_recipe(tmp_path, extra="")
    recipe.write_text(recipe.read_text().replace("batch_size = 4", "batch_size = 2"))
    run_folder = tmp_path / "runs" / "tinymyo-real"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "scontrol.calls"
    (fake_bin / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> {calls}\n')
    (fake_bin / "scontrol").chmod(0o755)
    # `python` and `torchrun` of this interpreter's environment, as a cluster's module would provide.
    (fake_bin / "python").write_text(f'#!/bin/bash\nexec {sys.executable} "$@"\n')
    (fake_bin / "python").chmod(0o755)
    (fake_bin / "torchrun").write_text(f'#!/bin/bash\nexec {sys.executable} -m torch.distributed.run "$@"\n')
    (fake_bin / "torchrun").chmod(0o755)
    env = {**environment(), "PATH": f"{fake_bin}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242", "SLURM_GPUS_ON_NODE": "2"}
    script = REPO / "examples" / "slurm" / "finetune_single_node.sbatch"

    batch = subprocess.Popen(
        ["bash", str(script), str(recipe)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    metrics = run_folder / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.01)
    batch.send_signal(signal.SIGUSR1)  # SLURM's --signal=B:USR1@180 reaches the batch shell only
    output, _ = batch.communicate(timeout=300)
    assert batch.returncode == 0, output
    assert calls.read_text().split() == ["requeue", "4242"]
    assert "stopped by SIGTERM" in output
    assert sorted((run_folder / "checkpoints").glob("step-*"))

    requeued = subprocess.run(
        ["bash", str(script), str(recipe)], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert requeued.returncode == 0, requeued.stdout + requeued.stderr
    assert_bit_identical(newest_weights(run_folder), straight_torchrun)


# -- two jobs of one recipe, and a requeue after SIGKILL --------------------------------------


def test_a_second_job_is_refused_and_a_requeue_after_sigkill_clears_the_half_written_checkpoint(tmp_path, straight_run):
    from biofound_cli.atomic import temporary_name

    recipe = write_recipe(tmp_path)
    run_folder = tmp_path / "runs" / "tinymyo-real"
    first = subprocess.Popen(
        biofound("finetune", recipe, "--resume", "auto", "--no-progress"),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    metrics = run_folder / "metrics.jsonl"
    while time.monotonic() < deadline and not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 8):
        time.sleep(0.01)
    os.killpg(first.pid, signal.SIGSTOP)  # still running, but held still while the second job starts
    try:
        second = run(biofound("finetune", recipe, "--resume", "auto", "--json", "--no-progress"))
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # then the node dies: no checkpoint at the stop
        first.wait(timeout=60)
    assert second.returncode == ExitStatus.USAGE, second.stderr
    refusal = json.loads(second.stdout)["error"]
    assert refusal.startswith(f"{run_folder} is in use by pid {first.pid} on ") and "output.run_name" in refusal
    assert second.stderr.count("error: ") == 1 and "Traceback" not in second.stderr

    # What a kill mid-write leaves: a checkpoint folder under its temporary name, cut short.
    half_written = temporary_name(run_folder / "checkpoints" / "step-00000012")
    half_written.mkdir()
    (half_written / "model.safetensors").write_bytes(b"\0" * 100)
    requeued = run(biofound("finetune", recipe, "--resume", "auto", "--no-progress"))
    assert requeued.returncode == 0, requeued.stderr
    assert not half_written.exists() and f"cleared {half_written}" in requeued.stdout  # the log, without --json
    assert "resumed from" in requeued.stdout
    assert_bit_identical(newest_weights(run_folder), straight_run)


# -- a pack into the folder jobs read -----------------------------------------------------------


def test_a_pack_into_a_folder_a_finetune_reads_is_refused_while_a_second_finetune_reads_it_too(tmp_path):
    # A pack swapped its files in under a running job, whose loader workers reopen them every epoch.
    recipe = write_recipe(tmp_path / "packed", epochs=3)
    (tmp_path / "shards").mkdir()
    metrics = tmp_path / "packed" / "runs" / "tinymyo-real" / "metrics.jsonl"
    first = start_in_own_group(biofound("finetune", recipe, "--no-progress"))
    try:
        wait_until(first, lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 2, "it trained")
        os.killpg(first.pid, signal.SIGSTOP)  # held still mid-epoch, its loader workers alive
        try:
            pack = run(biofound("pack", tmp_path / "shards", "--out", tmp_path / "packed", "--no-progress"))
            second = run(biofound("finetune", recipe, "--set", "output.run_name=second", "--json", "--no-progress"))
        finally:
            os.killpg(first.pid, signal.SIGCONT)
        first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert pack.returncode == ExitStatus.USAGE and "Traceback" not in pack.stderr, pack.stderr
    [refusal] = [line for line in pack.stderr.splitlines() if line.startswith("error:")]
    assert f"{tmp_path / 'packed'} is read by a running job, pid {first.pid} on " in refusal
    assert "reading it for finetune" in refusal and "pack into a new --out" in refusal
    assert second.returncode == 0, second.stderr  # two jobs read one pack at once
    assert first.returncode == 0
    assert not (tmp_path / "packed" / ".pack.lock").exists()  # the last reader to end removes it


def test_a_finetune_started_while_a_pack_writes_its_folder_is_refused(tmp_path):
    recipe = write_recipe(tmp_path / "packed")
    holder = subprocess.Popen(
        [sys.executable, "-c", PACK_HOLDING, str(tmp_path / "packed")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        refused = run(biofound("finetune", recipe, "--no-progress"))
    finally:
        holder.communicate("\n", timeout=60)
    assert refused.returncode == ExitStatus.USAGE and "Traceback" not in refused.stderr, refused.stderr
    [refusal] = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert f"{tmp_path / 'packed'} is being packed into by pid {holder.pid} on " in refusal
    assert "start the finetune again" in refusal
    assert not (tmp_path / "packed" / "runs").exists()  # refused before its run folder was kept


# A pack holding its --out (the lock it takes before it reads a shard), until told to end.
PACK_HOLDING = """
import sys
from pathlib import Path
from biofound_cli.store.packer import _held
with _held(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.readline()
"""


# -- re-runs ----------------------------------------------------------------------------------


def test_rerun_of_an_early_stopped_run_does_nothing_and_reports_it(tmp_path):
    # Updates too small to move a float32 weight: no improvement after the first evaluation.
    recipe = write_recipe(tmp_path, epochs=6, extra="early_stopping_patience = 1")
    frozen = [
        "--set",
        "optim.lr=1e-30",
        "--set",
        "optim.warmup_lr_init=0",
        "--set",
        "optim.min_lr=0",
        "--set",
        "optim.weight_decay=0",
    ]
    first = run(biofound("finetune", recipe, *frozen, "--json", "--no-progress"))
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["stopped_early"] and summary["steps"] == 12
    # The log's last progress line read "...: 12/36 steps (..., ETA ...)", as if the run went on.
    [progress] = [line for line in first.stderr.splitlines() if "/36 steps" in line][-1:]
    assert ": stopped at 12/36 steps (" in progress and "ETA" not in progress
    run_folder = tmp_path / "runs" / "tinymyo-real"
    metrics_before = (run_folder / "metrics.jsonl").read_text()

    # A requeue after the end, the data staged to the job's $TMPDIR gone with it: it was refused.
    for split in ("train.h5", "val.h5"):
        (tmp_path / split).unlink()
    again = run(biofound("finetune", recipe, *frozen, "--resume", "auto", "--json", "--no-progress"))
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["steps"] == 12 and report["stopped_early"]
    assert report["last_checkpoint"] == summary["last_checkpoint"] and report["metrics"] == summary["metrics"]
    assert "already finished at step 12; nothing to do" in again.stderr
    assert (run_folder / "metrics.jsonl").read_text() == metrics_before


def test_damaged_newest_checkpoint_resumes_from_the_previous_one(tmp_path, straight_run):
    recipe = write_recipe(tmp_path, extra="checkpoint_every = 2\nkeep_checkpoints = 3")
    run_folder = tmp_path / "runs" / "tinymyo-real"
    process = start_in_own_group(biofound("finetune", recipe, "--no-progress"), env=environment())
    signal_when_logged(process, run_folder / "metrics.jsonl", signal.SIGTERM, lines=8)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.PREEMPTED, stderr
    *_, older, newest = sorted((run_folder / "checkpoints").glob("step-*"))
    state = newest / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # a copy cut short

    resumed = run(biofound("finetune", recipe, "--resume", "auto", "--no-progress"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{state}: damaged" in resumed.stderr and f"resuming from {older}" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert_bit_identical(newest_weights(run_folder), straight_run)


# -- errors a run can detect are reported before the first step --------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.task=regression", "does not fit"),
        ("model.task=bc", "holds 3 classes"),
        (
            'model.overrides={img_size = 40, patch_size = 20, in_chans = 4, embed_dim = 12, n_layer = "x", n_head = 2}',
            'n_layer = "x" is not a whole number',
        ),
        # A value the model's constructor refuses: validate said valid, the stage refused naming no field.
        ("model.overrides.n_head=5", "model.overrides: TinyMyo cannot be built with these arguments: embed_dim (12)"),
        ("train.early_stopping_metric=val_acc", "is not a validation metric"),
    ],
)
def test_recipe_errors_stop_before_the_first_step_and_validate_agrees(tmp_path, override, expected):
    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    recipe = write_recipe(tmp_path)
    # In this process: the run is refused before a loader worker starts, and a fresh interpreter for
    # each refusal would only import torch again (the refused torchrun jobs above are real processes).
    result = CliRunner().invoke(app, ["finetune", str(recipe), "--set", override, "--json", "--no-progress"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert expected in json.loads(result.stdout)["error"] and "Traceback" not in result.stderr
    assert not list((tmp_path / "runs").rglob("step-*"))
    if not override.startswith("model.task"):  # the data name the classes; validate reads no data
        validated = CliRunner().invoke(app, ["validate", str(recipe), "--set", override])
        assert validated.exit_code == ExitStatus.USAGE and expected in validated.stderr


# -- the run folder a refused job made goes, under torchrun with loader workers ----------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.overrides={img_size = 40, patch_size = 20, in_chans = 8}", "has 4 channels but tinymyo expects 8"),
        ("data.batch_size=13", "fewer than one batch"),
    ],
)
def test_a_torchrun_job_refused_once_its_data_is_open_leaves_no_run_folder(tmp_path, override, expected):
    # Refused after rank 0 took the folder (the data is read on every rank first): `runs/NAME`
    # with its .lock, or with a recipe.json and no checkpoint, looked like a run that had started.
    recipe = write_recipe(tmp_path)
    result = run(torchrun("finetune", recipe, "--set", override, "--json", "--no-progress"))
    assert result.returncode != 0
    [failure] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert expected in failure["error"], result.stderr
    assert not (tmp_path / "runs" / "tinymyo-real").exists()


# -- DDP without the unused-parameter search, every family, LoRA ------------------------------


@pytest.mark.parametrize("family", ["tinymyo", "femba", "luna"])
def test_two_ranks_train_lora_with_workers_through_every_epoch_without_the_unused_parameter_search(tmp_path, family):
    # Each family says no step leaves a trainable weight without a gradient, so DDP runs with
    # find_unused_parameters off: a wrong word stops the job at its second step, on every rank.
    recipe = write_recipe(tmp_path, family, epochs=3)
    result = run(
        torchrun("finetune", recipe, "--set", "data.batch_size=2", "--set", "model.finetune=lora", "--json", "--no-progress")
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 18 and summary["world_size"] == 2
    assert "find_unused_parameters" not in result.stderr
    run_folder = tmp_path / "runs" / f"{family}-real"
    evaluations = [
        row["step"] for row in map(json.loads, (run_folder / "metrics.jsonl").read_text().splitlines()) if row["split"] == "val"
    ]
    assert evaluations == [6, 12, 18]


def test_a_lora_run_stopped_early_on_two_ranks_warns_once_and_its_best_evaluates_and_exports(tmp_path):
    # Updates too small to move a float32 weight: no improvement after the first evaluation, so
    # both ranks stop at the second (step 12) of the 6 epochs asked for.
    recipe = write_recipe(tmp_path, epochs=6, extra="early_stopping_patience = 1")
    frozen = ["optim.lr=1e-30", "optim.warmup_lr_init=0", "optim.min_lr=0", "optim.weight_decay=0"]
    settings = [word for value in ["model.finetune=lora", "model.lora_rank=4", *frozen] for word in ("--set", value)]
    result = run(torchrun("finetune", recipe, "--set", "data.batch_size=2", *settings, "--json", "--no-progress"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stopped_early"] and summary["steps"] == 12 and summary["best_step"] == 6
    # Warnings of the work every rank does alike (the recipe, the job) were printed once per rank.
    assert result.stderr.count("trains adapters and the head on a body of random weights") == 1, result.stderr
    assert result.stderr.count("early stopping at step 12") == 1, result.stderr
    run_folder = tmp_path / "runs" / "tinymyo-real"
    rows = [json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if row["split"] == "train"] == list(range(1, 13))
    assert [(row["step"], row["epoch"]) for row in rows if row["split"] == "val"] == [(6, 0), (12, 1)]
    assert [path.name for path in (run_folder / "checkpoints").iterdir() if not path.name.startswith("step-")] == ["best"]

    evaluated = run(biofound("evaluate", recipe, *settings, "--split", "val", "--json", "--no-progress"))
    assert evaluated.returncode == 0, evaluated.stderr
    reported = json.loads(evaluated.stdout)["metrics"]
    best = next(row for row in rows if row["split"] == "val" and row["step"] == 6)
    assert {name: best[f"val_{name}"] for name in reported} == pytest.approx(reported, abs=1e-6)
    exported = run(biofound("export", run_folder, "--out", tmp_path / "export", "--format", "onnx", "--json", "--no-progress"))
    assert exported.returncode == 0, exported.stderr
    assert "model.onnx" in json.loads(exported.stdout)["files"]


# -- the summary's best_metrics across a preemption and --resume auto ---------------------------


def test_best_metrics_after_a_preemption_and_resume_are_the_best_steps_evaluation(tmp_path):
    recipe = write_recipe(tmp_path, epochs=3, extra="early_stopping_metric = 'val_loss'\nearly_stopping_mode = 'min'")
    run_folder = tmp_path / "runs" / "tinymyo-real"
    lora = ["--set", "model.finetune=lora"]
    process = start_in_own_group(biofound("finetune", recipe, *lora, "--json", "--no-progress"), env=environment())
    # Past the first evaluation (step 6: 6 train records and 1 val record), before the last.
    signal_when_logged(process, run_folder / "metrics.jsonl", signal.SIGTERM, lines=9)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.PREEMPTED, stderr

    resumed = run(continue_command(stderr))
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["steps"] == 18
    rows = [json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines()]
    evaluations = [row for row in rows if row["split"] == "val"]
    assert [row["step"] for row in evaluations] == [6, 12, 18]
    best = min(evaluations, key=lambda row: row["val_loss"])
    assert summary["best_step"] == best["step"]
    assert summary["best_metrics"] == {key: value for key, value in best.items() if key.startswith("val_")}
    assert summary["best_metric"] == {"val_loss": best["val_loss"]}

    from biofound_cli.models.checkpoints import read_metadata

    assert int(read_metadata(run_folder / "checkpoints" / "best" / "model.safetensors").extra["step"]) == best["step"]


# -- a training split of one class, under torchrun --------------------------------------------


def test_a_training_split_of_one_class_is_named_once_under_torchrun(tmp_path):
    # Every rank opens the data and builds the job, and the other ranks pass warnings on: the
    # warning (alike on every rank, about the same file) was printed once per rank.
    recipe = write_recipe(tmp_path, epochs=2)
    with h5py.File(tmp_path / "train.h5", "a") as handle:
        handle["y"][...] = 0
        handle.attrs["class_counts"] = json.dumps({"class0": 24})  # as pack counts them
    result = run(torchrun("finetune", recipe, "--set", "data.batch_size=2", "--json", "--no-progress"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == 12
    assert result.stderr.count(f"training split {tmp_path / 'train.h5'} holds only class 'class0' of 3") == 1, result.stderr
