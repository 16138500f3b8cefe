"""The published TinyMyo recipe under ``torchrun`` with two CPU ranks, as a cluster job runs it.

The bundled Myo gestures are preprocessed and packed by the recipe, which is shrunk in size and
steps only: two loader workers per rank, an evaluation at the end of each of 4 epochs. A straight
run, then a run stopped by a signal sent to every process group of the job (torchrun's and each
rank's, as SLURM signals every process of a step) in the middle of an epoch or of an evaluation and
requeued with ``--resume auto``: one JSON object and one stop line for the job, status 75, and
``metrics.jsonl`` rows equal to the straight run's. ``evaluate`` of the recipe then finds the run
folder training chose.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures import process_group

from biofound_cli.errors import ExitStatus

pytestmark = pytest.mark.slow

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "tinymyo_myo.toml"
SMALLER = [
    *("--set", "train.epochs=4", "--set", "data.num_workers=2", "--set", "model.overrides.n_layer=1"),
    *("--set", "model.overrides.embed_dim=24", "--set", "model.overrides.n_head=2", "--set", "train.log_every=1"),
]
"""5 steps an epoch (87 windows, batch 8 over two ranks): evaluations at steps 5, 10, 15 and 20."""
VAL_COPIES = 60
"""The validation split repeated: an evaluation of some seconds, long enough for a signal to land in."""


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)


def one_json_object(stdout: str) -> dict:
    """The job's one JSON object: stdout holds it alone, whatever the number of ranks."""
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def records(run_folder: Path) -> list[dict]:
    """metrics.jsonl without the throughput, which differs from run to run."""
    rows = [json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in row.items() if key != "samples_per_second"} for row in rows]


def repeat_split(source: Path, target: Path, copies: int) -> None:
    """``source`` with every per-window dataset repeated ``copies`` times (the same recordings)."""
    with h5py.File(source, "r") as read, h5py.File(target, "w") as written:
        written.attrs.update(dict(read.attrs))
        n_windows = read["x"].shape[0]
        for name, dataset in read.items():
            values = dataset[()]
            written.create_dataset(name, data=np.concatenate([values] * copies) if len(values) == n_windows else values)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with the recipe, its packed splits and a long validation split."""
    folder = tmp_path_factory.mktemp("torchrun-myo")
    shutil.copy(RECIPE, folder / RECIPE.name)
    for stage in ("preprocess", "pack"):
        done = run(process_group.biofound(stage, "--recipe", RECIPE.name, "--no-progress"), folder)
        assert done.returncode == 0, done.stderr
    packed = folder / "out" / "tinymyo_myo" / "packed"
    repeat_split(packed / "val.h5", folder / "long_val.h5", VAL_COPIES)
    return folder


def finetune(*args: str) -> list[str]:
    """``torchrun ... -m biofound_cli finetune`` of the shrunk recipe, SIGUSR1 forwarded to the ranks."""
    launcher = process_group.torchrun("finetune", RECIPE.name, *SMALLER, "--set", "data.val=long_val.h5", *args)
    launcher[3:3] = ["--signals-to-handle", "SIGTERM,SIGINT,SIGUSR1"]
    return launcher


@pytest.fixture(scope="module")
def straight(folder: Path) -> Path:
    """The run folder of an uninterrupted run, named as training names it."""
    trained = run(finetune("--json", "--no-progress"), folder)
    assert trained.returncode == 0, trained.stderr
    summary = one_json_object(trained.stdout)
    assert summary["world_size"] == 2 and summary["steps"] == 20
    # Each evaluation's line once, not once per rank.
    assert trained.stderr.count("step 10: val_loss") == 1, trained.stderr
    return folder / summary["run"]


def test_evaluate_scores_the_run_folder_that_torchrun_training_chose(folder, straight):
    scored = run(process_group.biofound("evaluate", RECIPE.name, "--json", "--no-progress", "--no-plots"), folder)
    assert scored.returncode == 0, scored.stderr
    report = one_json_object(scored.stdout)
    assert report["checkpoint"] == str(straight.relative_to(folder) / "checkpoints" / "best" / "model.safetensors")


def every_group_of_the_job(root: int) -> set[int]:
    """The process groups of torchrun (``root``) and of its ranks, which torchrun starts in sessions of their own."""
    groups = {os.getpgid(root)}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # not a process, or one that ended
        if entry.name.isdigit() and int(fields[1]) == root:
            groups.add(int(fields[2]))
    return groups


def signal_the_job_when(process: subprocess.Popen, metrics: Path, ready, signum: signal.Signals) -> list[dict]:
    """Send ``signum`` to every process group of the job once ``ready(records)``; the records seen then."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        logged = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
        if ready(logged):
            for group in every_group_of_the_job(process.pid):
                os.killpg(group, signum)
            return logged
        time.sleep(0.005)
    raise AssertionError("the run ended before it could be signalled")


def mid_epoch(logged: list[dict]) -> bool:
    return any(row["split"] == "train" and row["step"] == 7 for row in logged)


def mid_evaluation(logged: list[dict]) -> bool:
    # Step 10 ends the second epoch: once it is logged, its evaluation runs until its row is.
    return any(row["split"] == "train" and row["step"] == 10 for row in logged)


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the ranks through Linux's /proc")
@pytest.mark.parametrize(
    ("signum", "ready"),
    [(signal.SIGTERM, mid_evaluation), (signal.SIGUSR1, mid_epoch)],
    ids=["SIGTERM mid-evaluation", "SIGUSR1 mid-epoch"],
)
def test_a_job_wide_stop_and_its_requeue_log_what_the_straight_run_logs(folder, straight, signum, ready):
    name = f"stopped-{signum.name}"
    args = finetune("--json", "--no-progress", "--resume", "auto", "--set", f"output.run_name={name}")
    stopped_run = straight.parent / name
    process = subprocess.Popen(
        args,
        cwd=folder,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    before = signal_the_job_when(process, stopped_run / "metrics.jsonl", ready, signum)
    stdout, stderr = process.communicate(timeout=300)
    stop = one_json_object(stdout)
    assert stop["exit_status"] == ExitStatus.PREEMPTED, stderr
    assert stop["error"].startswith(f"stopped by {signum.name} at step "), stop
    assert len([line for line in stderr.splitlines() if line.startswith("error:")]) == 1, stderr
    assert "resource_tracker" not in stderr and "KeyError" not in stderr, stderr
    step = stop["step"]
    assert (stopped_run / "checkpoints" / f"step-{step:08d}" / "trainer_state.pt").is_file()
    if ready is mid_evaluation and not any(row["split"] == "val" and row["step"] == 10 for row in before):
        # The evaluation under way was finished and logged once, and the stop came at its step.
        assert step == 10

    requeued = run(args, folder)
    assert requeued.returncode == 0, requeued.stderr
    assert one_json_object(requeued.stdout)["steps"] == 20
    assert records(stopped_run) == records(straight)


def pinned_to_one_cpu(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """:func:`run` with the job on one CPU: torch then warns that the loader makes more workers than it suggests."""
    one_cpu = min(os.sched_getaffinity(0))
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        args,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.sched_setaffinity(0, {one_cpu}),
    )


def lines_said_again(result: subprocess.CompletedProcess) -> list[str]:
    """The lines a job printed more than once, stdout and stderr together."""
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return sorted({line for line in lines if lines.count(line) > 1})


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pins the job to one CPU (Linux)")
def test_a_two_rank_job_says_each_line_once(folder):
    # Every rank reads the recipe, builds the job, loads its windows and restores the checkpoint, so each
    # warning met there came once per rank: a --set of a section finetune does not read, torch's notice
    # of more loader workers than CPUs (each rank's loader), a resume whose watched metric starts anew.
    name = ["--set", "output.run_name=said-once", "--set", "pack.seed=7", "--json", "--no-progress"]
    first = pinned_to_one_cpu(process_group.torchrun("finetune", RECIPE.name, *SMALLER, *name), folder)
    assert first.returncode == 0, first.stderr
    changed = ["--set", "train.epochs=5", "--set", "train.early_stopping_metric=val_accuracy", "--allow-changes"]
    again = pinned_to_one_cpu(
        process_group.torchrun("finetune", RECIPE.name, *SMALLER, *name, *changed, "--resume", "auto"), folder
    )
    assert again.returncode == 0, again.stderr
    for result in (first, again):
        assert one_json_object(result.stdout)["world_size"] == 2
        assert "finetune does not read [pack]" in result.stderr and "worker processes in total" in result.stderr
        assert lines_said_again(result) == [], result.stderr
    assert "this start watches val_accuracy max" in again.stderr
    assert one_json_object(again.stdout)["steps"] == 25
