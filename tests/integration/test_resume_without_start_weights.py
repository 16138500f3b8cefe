"""A fine-tuning run from starting weights staged to a node's local disk, preempted and requeued
after the disk was wiped: the resume reads its weights from its checkpoint alone.

``--resume auto`` used to require ``model.checkpoint`` to exist (and log "loaded N tensors from
START" although the checkpoint's weights replace them), so the requeued job was refused.
"""

from __future__ import annotations

import json
import shutil
import signal

import pytest
from fixtures.process_group import biofound, start_in_own_group
from fixtures.real_runs import (
    assert_bit_identical,
    continue_command,
    environment,
    newest_weights,
    run,
    signal_when_logged,
    trained_weights,
    write_recipe,
)

from biofound_cli.errors import ExitStatus

pytestmark = pytest.mark.slow

LOADED = "tensors from"  # the line that names the starting weights loaded


def test_a_requeued_finetune_resumes_without_its_staged_starting_weights_bit_exact(tmp_path):
    recipe = write_recipe(tmp_path)  # 4 epochs of 6 steps, 2 loader workers, evaluation every epoch
    staged = tmp_path / "node-tmp" / "start.safetensors"  # as a job copies them to $TMPDIR
    staged.parent.mkdir()
    shutil.copy(trained_weights("finetune", recipe, "start", "--set", "train.max_steps=2"), staged)
    start = ["--set", f"model.checkpoint={staged}", "--json", "--no-progress"]

    straight = run(biofound("finetune", recipe, *start, "--set", "output.run_name=straight"))
    assert straight.returncode == 0, straight.stderr
    assert f"{LOADED} {staged}" in straight.stderr

    run_folder = tmp_path / "runs" / "requeued"
    process = start_in_own_group(
        biofound("finetune", recipe, *start, "--set", "output.run_name=requeued", "--resume", "auto"), env=environment()
    )
    signal_when_logged(process, run_folder / "metrics.jsonl", signal.SIGTERM, lines=8)  # past the first evaluation
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.PREEMPTED, stderr
    stopped_at = json.loads(stdout)["checkpoint"]
    # The requeued job stages them to its own $TMPDIR; the node's $TMPDIR is gone with the job.
    restaged = tmp_path / "node-tmp-2" / "start.safetensors"
    restaged.parent.mkdir()
    shutil.copy(staged, restaged)
    shutil.rmtree(staged.parent)

    # A new run needs them, and is told the file is gone (it was told to run `biofound pack`).
    fresh = run(biofound("finetune", recipe, *start, "--set", "output.run_name=fresh"))
    assert fresh.returncode == ExitStatus.USAGE, fresh.stderr
    refusal = json.loads(fresh.stdout)["error"]
    assert refusal == (
        f"--set model.checkpoint={staged}: {staged}: no such checkpoint file; check the path "
        "(or fetch it with `biofound download`)"
    )
    # Another [model] is still refused, without the starting weights to read.
    other = run(continue_command(stderr) + ["--set", "model.finetune=lora", "--allow-changes"])
    assert other.returncode == ExitStatus.USAGE, other.stderr
    assert "holds another model than this recipe builds" in json.loads(other.stdout)["error"]

    resumed = run([word.replace(str(staged), str(restaged)) for word in continue_command(stderr)])
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {stopped_at}" in resumed.stderr and LOADED not in resumed.stderr
    assert f"model.checkpoint moved: {staged} -> {restaged}" in resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == 24
    expected_run = tmp_path / "runs" / "straight"
    assert_bit_identical(newest_weights(run_folder), newest_weights(expected_run))
    # The same file bytes, metadata included: the provenance names the staged file the run started from.
    best, expected_best = (folder / "checkpoints" / "best" / "model.safetensors" for folder in (run_folder, expected_run))
    assert best.read_bytes() == expected_best.read_bytes()

    shutil.rmtree(restaged.parent)
    again = run(continue_command(stderr))  # a requeue after the end, its starting weights gone
    assert again.returncode == 0, again.stderr
    assert "already finished at step 24; nothing to do" in again.stderr and LOADED not in again.stderr
