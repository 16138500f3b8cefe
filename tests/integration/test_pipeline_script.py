"""``examples/slurm/pipeline.sbatch`` run as a batch job runs it: no terminal, preempted and requeued.

The script runs preprocess (2 pool workers) → pack → finetune (2 loader workers, evaluated every
epoch) → evaluate → export on the bundled Myo gestures, each stage with ``--json`` into a file and
its log lines into another. A preemption is SIGTERM to the job's whole process group, at a set
point of one stage (its ``where`` called the Nth time); the script exits 75 and, run again as a
requeue, ends with what a job never stopped ends with: the same ``metrics.jsonl`` rows, best
checkpoint, ``report.json`` numbers and ONNX file, and nothing half-written. A second job of the
script started while the first one still trains or exports is refused in one line by the run
folder's or the export folder's lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures import process_group
from safetensors.torch import load_file

from biofound_cli.errors import ExitStatus

pytestmark = pytest.mark.slow
REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPT = REPOSITORY / "examples" / "slurm" / "pipeline.sbatch"
RUN = Path("out/tinymyo_myo/runs/tinymyo-myo")
BIOFOUND = f"{sys.executable} -m biofound_cli"


def write_recipe(folder: Path) -> Path:
    """The shipped Myo recipe, shrunk in size and steps only: 2 epochs of a 1-layer TinyMyo, 2 loader workers."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (REPOSITORY / "recipes" / "tinymyo_myo.toml").read_text()
    samples = REPOSITORY / "biofound_cli" / "data" / "samples" / "emg" / "myo"
    for old, new in [
        ("epochs = 15", "epochs = 2"),
        ("num_workers = 0", "num_workers = 2"),
        ("n_layer = 4", "n_layer = 1"),
        ('root = "biofound_cli/data/samples/emg/myo"', f'root = "{samples}"'),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    recipe = folder / "recipe.toml"
    recipe.write_text(text)
    return recipe


def start_job(folder: Path, biofound: str = BIOFOUND) -> subprocess.Popen:
    """The script in ``folder`` as a batch job: its own process group, output to files, no terminal."""
    environment = {**os.environ, "BIOFOUND": biofound, "PYTHONPATH": str(REPOSITORY)}
    return process_group.start_in_own_group(["bash", str(SCRIPT), "recipe.toml", "logs"], cwd=folder, env=environment)


def finished(process: subprocess.Popen) -> str:
    """The job's own output once it and every process of its group have ended (SIGKILL after the grace period)."""
    try:
        stdout, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)  # SLURM's SIGKILL once the grace period is over
        stdout, stderr = process.communicate()
    process_group.assert_group_gone(process.pid)
    return stdout + stderr


def assert_plain_logs(logs: Path) -> None:
    """Each stage's stdout is exactly one JSON object and its log has no colour, redraw or traceback."""
    for log in logs.glob("*.log"):
        text = log.read_text()
        assert "\x1b[" not in text and "\r" not in text and "Traceback" not in text, (log, text)
    for summary in logs.glob("*.json"):
        json.loads(summary.read_text())


def outputs(folder: Path) -> dict:
    """What a job leaves that must not depend on whether it was stopped."""
    rows = [json.loads(line) for line in (folder / RUN / "metrics.jsonl").read_text().splitlines()]
    best = load_file(folder / RUN / "checkpoints" / "best" / "model.safetensors")
    report = json.loads((folder / RUN / "eval" / "test" / "report.json").read_text())
    exported = sorted(path.name for path in (folder / RUN / "export").iterdir())
    return {
        "rows": [{key: value for key, value in row.items() if key != "samples_per_second"} for row in rows],
        "best": {name: torch.sum(tensor.double()).item() for name, tensor in best.items()},
        "report": {key: report[key] for key in ("windows", "recordings") if key in report},
        "onnx": hashlib.sha256((folder / RUN / "export" / "model.onnx").read_bytes()).hexdigest(),
        "exported": exported,
        # Hidden files, temporaries; the run folder's .lock stays (the lock is the kernel's, not the file's).
        "left": sorted(
            str(path.relative_to(folder)) for path in (folder / "out").rglob("*") if re.search(r"^\.|tmp|\.part", path.name)
        ),
    }


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """The outputs of a job never stopped."""
    folder = tmp_path_factory.mktemp("straight")
    write_recipe(folder)
    job = start_job(folder)
    assert job.wait(600) == 0, finished(job)
    assert_plain_logs(folder / "logs")
    return outputs(folder)


STOPS = [
    ("preprocess", "biofound_cli.store.preprocess:_record:3", ExitStatus.TERMINATED),
    ("pack", "biofound_cli.store.packer:_write_split:2", ExitStatus.TERMINATED),
    ("finetune", "biofound_cli.training.loop:_forward_backward:15", ExitStatus.PREEMPTED),  # mid-epoch 2
    ("finetune", "biofound_cli.training.loop:_evaluate_and_keep_best:1", ExitStatus.PREEMPTED),
    ("evaluate", "biofound_cli.evaluation.evaluate:_score", ExitStatus.TERMINATED),
    ("export", "biofound_cli.export.onnx_export:onnx_runner", ExitStatus.TERMINATED),
]


@pytest.mark.parametrize(("stage", "where", "status"), STOPS, ids=[where.split(":")[1] for _, where, _ in STOPS])
def test_a_job_preempted_in_a_stage_and_requeued_ends_as_a_straight_one(straight, tmp_path, stage, where, status) -> None:
    write_recipe(tmp_path)
    shim = tmp_path / "signalled.py"
    shim.write_text(process_group.SIGNALLED_AS_IT_CALLS)
    job = start_job(tmp_path, f"{sys.executable} {shim} {where} SIGTERM")
    said = finished(job)
    assert job.returncode == ExitStatus.PREEMPTED, said
    assert f"{stage} stopped (status {int(status)}): requeueing" in said, said
    log = (tmp_path / "logs" / f"{stage}.log").read_text()
    [error] = [line for line in log.splitlines() if line.startswith("error:")]
    assert error.startswith("error: stopped by SIGTERM"), log
    assert json.loads((tmp_path / "logs" / f"{stage}.json").read_text())["exit_status"] == status
    assert_plain_logs(tmp_path / "logs")

    requeued = start_job(tmp_path)
    said = finished(requeued)
    assert requeued.returncode == 0, said
    assert_plain_logs(tmp_path / "logs")
    assert outputs(tmp_path) == straight


@pytest.mark.parametrize(
    ("stage", "where", "refused_at"),
    [
        # The first job's pack holds the shard folder it reads, so the second job's preprocess is refused first.
        ("pack", "_write_split", "preprocess"),
        # The second job's pack would swap new split files in under the first job's loader workers.
        ("finetune", "_evaluate_and_keep_best", "pack"),
        ("export", "onnx_runner", "export"),
    ],
)
def test_a_second_job_while_the_first_is_in_a_stage_is_refused_in_one_line(tmp_path, stage, where, refused_at) -> None:
    """A requeue that starts while the old job still runs (its grace period): the lock of the folder refuses it."""
    first = tmp_path
    write_recipe(first)
    environment = {**os.environ, "BIOFOUND": BIOFOUND, "PYTHONPATH": str(REPOSITORY)}
    module = {
        "pack": "biofound_cli.store.packer",
        "finetune": "biofound_cli.training.loop",
        "export": "biofound_cli.export.onnx_export",
    }[stage]
    # The first job's stage runs the second job, from the same folder, before it goes on.
    shim = first / "with_second_job.py"
    shim.write_text(
        f"""import subprocess, sys
from importlib import import_module
from biofound_cli.__main__ import main
module = import_module({module!r})
call, calls = module.{where}, []
def second_job_then_called(*args, **kwargs):
    if not calls:
        calls.append(subprocess.run(["bash", {str(SCRIPT)!r}, "recipe.toml", "logs2"], env={environment!r},
                                    capture_output=True, text=True, timeout=600))
        open("second.status", "w").write(str(calls[0].returncode) + "\\n" + calls[0].stdout + calls[0].stderr)
    return call(*args, **kwargs)
module.{where} = second_job_then_called
sys.argv = ["biofound", *sys.argv[1:]]
main()
"""
    )
    job = start_job(first, f"{sys.executable} {shim}")
    said = finished(job)
    assert job.returncode == 0, said
    status, *second_said = (first / "second.status").read_text().splitlines()
    assert int(status) == ExitStatus.USAGE, second_said
    log = (first / "logs2" / f"{refused_at}.log").read_text()
    [error] = [line for line in log.splitlines() if line.startswith("error:")]
    assert re.search(r"by (a running job, )?pid \d+ on ", error), error
    assert "Traceback" not in log
    assert json.loads((first / "logs2" / f"{refused_at}.json").read_text())["exit_status"] == ExitStatus.USAGE
