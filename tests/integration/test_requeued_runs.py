"""Runs re-run, requeued or moved between machines, as jobs on a cluster run them.

Every start of a run, a finished run's re-run included, is checked and recorded by the same code:
the recipe on record names the paths the run now uses and the history keeps the old ones, a new
path with nothing there is refused as a fresh run refuses it, and a training split that is not the
checkpoint's is refused before anything is recorded. Each start's environment stays in the history. A
run's own ``recipe.json`` serves as its recipe, and names its folder, a recipe without a name too.

The run is a tiny TinyMyo fine-tuned for 3 epochs (evaluated each epoch) with 2 loader workers, in
separate processes. ``tiny`` trained to its end; ``unfinished`` is a copy of it without its last
checkpoint, as a preemption before the last checkpoint leaves a run. A finished run's requeue is
also run under torchrun (two CPU ranks, gloo).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures import process_group
from fixtures.packed import write_packed
from fixtures.tiny_training import tiny_recipe

from biofound_cli.errors import ExitStatus

pytestmark = pytest.mark.slow
RUNS = ("tiny", "unfinished")


def run_command(command: list[str], cwd: Path, threads: int = 1) -> subprocess.CompletedProcess:
    """``command`` in ``cwd`` with ``threads`` threads for torch: a node with another number of cores, say."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)


def biofound(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    return run_command(process_group.biofound(*args), cwd)


def finetune(recipe: Path, run_name: str, *settings: str, resume: str = "auto", threads: int = 1) -> subprocess.CompletedProcess:
    options = [word for setting in settings for word in ("--set", setting)]
    args = ["finetune", recipe, "--resume", resume, "--set", f"output.run_name={run_name}", *options, "--json"]
    return run_command(process_group.biofound(*args), recipe.parent, threads)


def error_of(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == ExitStatus.USAGE, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)["error"]


def recorded_paths(run: Path) -> dict:
    result = biofound("info", run, "--json", cwd=run.parent)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["recorded_paths"]


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "recipe_history.jsonl").read_text().splitlines()]


def records(run: Path) -> tuple[str, str]:
    """What a start writes into the run folder, to tell that a refused one wrote nothing."""
    return (run / "recipe.json").read_text(), (run / "recipe_history.jsonl").read_text()


def write_recipe(folder: Path) -> Path:
    """``folder/tiny.toml``, its packed splits beside it and its runs in ``folder/runs``."""
    folder.mkdir()
    return tiny_recipe(folder, "epochs = 3", data="num_workers = 2")


def stage_data(folder: Path, node: str) -> list[str]:
    """Move the packed splits to ``folder/node``, as a requeued job stages them; the ``--set`` values naming them there."""
    (folder / node).mkdir()
    for split in ("train", "val"):
        shutil.move(folder / f"{split}.h5", folder / node / f"{split}.h5")
    return [f"data.{split}={folder / node / split}.h5" for split in ("train", "val")]


@pytest.fixture
def cluster(tmp_path) -> Path:
    """The recipe in ``cluster/``, its run ``tiny`` trained to the end and ``unfinished`` one checkpoint short."""
    recipe = write_recipe(tmp_path / "cluster")
    folder = recipe.parent
    trained = finetune(recipe, "tiny", resume="none")
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["steps"] == 18
    assert sum('"val"' in line for line in (folder / "runs" / "tiny" / "metrics.jsonl").open()) == 3
    shutil.copytree(folder / "runs" / "tiny", folder / "runs" / "unfinished")
    shutil.rmtree(folder / "runs" / "unfinished" / "checkpoints" / "step-00000018")
    return recipe


def test_a_resume_on_moved_data_records_the_new_paths_whether_or_not_steps_are_left(cluster):
    runs, staged = cluster.parent / "runs", cluster.parent / "node-2"
    old = {split: str(cluster.parent / f"{split}.h5") for split in ("train", "val")}
    new = stage_data(cluster.parent, "node-2")
    for run in RUNS:
        fingerprints = json.loads((runs / run / "environment.json").read_text())["data_fingerprints"]
        assert recorded_paths(runs / run)["train"]["status"] == "missing"

        resumed = finetune(cluster, run, *new)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["steps"] == 18
        said = "already finished at step 18; nothing to do" if run == "tiny" else "resumed from"
        assert said in resumed.stderr and f"data.train moved: {old['train']} -> {staged / 'train.h5'}" in resumed.stderr
        # The recipe on record names the paths the run now uses; its history keeps the ones it started on.
        recipe = json.loads((runs / run / "recipe.json").read_text())
        assert recipe["data"]["train"] == str(staged / "train.h5") and recipe["data"]["val"] == str(staged / "val.h5")
        first, last = history(runs / run)[0], history(runs / run)[-1]
        assert first["recipe"]["data"]["train"] == old["train"] and last["recipe"]["data"]["train"] == recipe["data"]["train"]
        assert last["changes"] == [] and last["resumed_from"].endswith("step-00000018" if run == "tiny" else "step-00000012")
        assert json.loads((runs / run / "environment.json").read_text())["data_fingerprints"] == fingerprints
        paths = recorded_paths(runs / run)
        assert (paths["train"]["status"], paths["val"]["status"]) == ("found", "found")


def test_a_requeue_naming_missing_data_at_a_new_path_is_told_the_file_is_missing_as_a_fresh_run_is(cluster):
    runs, gone = cluster.parent / "runs", cluster.parent / "node-3" / "train.h5"
    fresh = error_of(finetune(cluster, "fresh", f"data.train={gone}", resume="none"))
    assert fresh.startswith(f"--set data.train={gone}: data.train = '{gone}' does not exist: packed file not found")
    for run in RUNS:
        before = records(runs / run)
        # It was refused as "started with another recipe (data.train: ... -> ...)", which --allow-changes passes.
        assert error_of(finetune(cluster, run, f"data.train={gone}")) == fresh
        assert records(runs / run) == before


def test_a_resume_on_other_windows_at_the_recorded_path_is_refused_before_it_is_recorded(cluster):
    runs = cluster.parent / "runs"
    write_packed(cluster.parent / "train.h5", 24, seed=2)  # packed again with another subject split
    for run, newest in zip(RUNS, ("step-00000018", "step-00000012"), strict=True):
        before = records(runs / run)
        # The finished run's re-run reported "already finished" without looking at the data it was told to use.
        error = error_of(finetune(cluster, run))
        assert error.startswith(f"{runs / run / 'checkpoints' / newest} was trained on a training split of fingerprint ")
        # The unfinished one recorded the start (a line in its history) before the loop refused it.
        assert records(runs / run) == before


def test_a_run_s_recipe_json_is_its_recipe_for_evaluate_and_a_resume_after_the_run_moved(cluster):
    laptop = cluster.parent.parent / "laptop copy"
    shutil.move(cluster.parent, laptop)
    run = laptop / "runs" / "tiny"
    new = [f"data.{split}={laptop / split}.h5" for split in ("train", "val")]

    folder = biofound("evaluate", run, "--json", cwd=laptop)
    assert f"pass the path of a .toml recipe or {run / 'recipe.json'}, the recipe its run trained with" in error_of(folder)
    evaluated = biofound("evaluate", run / "recipe.json", "--split", "val", "--set", new[1], "--json", cwd=laptop)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["checkpoint"] == str(run / "checkpoints" / "best" / "model.safetensors")
    assert (run / "eval" / "val" / "report.json").is_file()

    resume = ["--resume", "auto", "--set", new[0], "--set", new[1], "--json"]
    resumed = biofound("finetune", run / "recipe.json", *resume, cwd=laptop)
    assert resumed.returncode == 0, resumed.stderr
    assert "already finished at step 18; nothing to do" in resumed.stderr
    assert f"the run is the folder holding this record, {run} " in resumed.stderr
    assert json.loads((run / "recipe.json").read_text())["output"]["runs_dir"] == str(laptop / "runs")
    paths = recorded_paths(run)
    assert paths["run_folder"]["moved"] is False and paths["train"]["status"] == "found"


def test_each_start_keeps_its_environment_in_the_history_and_environment_json_describes_the_latest(cluster):
    # A requeue on a node with another number of cores (another torch, GPU or biofound alike) rewrote
    # environment.json, and the machine that trained the earlier epochs was on file nowhere.
    runs = cluster.parent / "runs"
    for run in RUNS:
        first = json.loads((runs / run / "environment.json").read_text())
        requeued = finetune(cluster, run, threads=2)
        assert requeued.returncode == 0, requeued.stderr
        latest = json.loads((runs / run / "environment.json").read_text())
        assert (first["threads"], latest["threads"]) == (1, 2)
        assert [start["environment"] for start in history(runs / run)] == [first, latest]


def test_a_finished_torchrun_job_requeued_on_another_node_reports_the_run_once_and_records_the_start(tmp_path):
    recipe = write_recipe(tmp_path / "cluster")
    folder, run = recipe.parent, recipe.parent / "runs" / "tiny"
    args = ["finetune", recipe, "--resume", "auto", "--set", "data.batch_size=2", "--json"]
    trained = run_command(process_group.torchrun(*args), cwd=folder)
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["steps"] == 18
    assert sum('"val"' in line for line in (run / "metrics.jsonl").open()) == 3
    before = (run / "metrics.jsonl").read_text(), sorted(path.name for path in (run / "checkpoints").iterdir())

    staged = stage_data(folder, "node-2")
    requeued = run_command(process_group.torchrun(*args, *[word for value in staged for word in ("--set", value)]), folder, 2)
    assert requeued.returncode == 0, requeued.stderr
    [summary] = [json.loads(line) for line in requeued.stdout.splitlines()]  # one job, one object: rank 0's
    assert (summary["steps"], summary["world_size"], summary["best_step"]) == (18, 2, json.loads(trained.stdout)["best_step"])
    assert requeued.stderr.count("already finished at step 18; nothing to do") == 1
    assert ((run / "metrics.jsonl").read_text(), sorted(path.name for path in (run / "checkpoints").iterdir())) == before
    starts = history(run)
    assert [(start["environment"]["world_size"], start["environment"]["threads"]) for start in starts] == [(2, 1), (2, 2)]
    assert starts[-1]["resumed_from"].endswith("step-00000018") and starts[-1]["changes"] == []
    assert json.loads((run / "recipe.json").read_text())["data"]["train"] == staged[0].split("=", 1)[1]


def test_the_record_of_a_run_without_a_name_names_its_folder_and_serves_after_a_move(cluster):
    # A recipe without a name trains into runs/VARIANT-STAGE; its record named no folder, so once the
    # run was moved, its recipe.json led evaluate to the folder it had left.
    unnamed = cluster.with_name("unnamed.toml")
    unnamed.write_text(cluster.read_text().replace('name = "tiny"\n', ""))
    trained = biofound("finetune", unnamed, "--json", cwd=cluster.parent)
    assert trained.returncode == 0, trained.stderr
    run = cluster.parent / "runs" / "tinymyo-finetune"
    assert json.loads(trained.stdout)["run"] == str(run)
    assert json.loads((run / "recipe.json").read_text())["output"]["run_name"] == "tinymyo-finetune"

    laptop = cluster.parent.parent / "laptop copy"
    shutil.move(cluster.parent, laptop)
    run = laptop / "runs" / "tinymyo-finetune"
    evaluated = biofound(
        "evaluate", run / "recipe.json", "--split", "val", "--set", f"data.val={laptop / 'val.h5'}", "--json", cwd=laptop
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["checkpoint"] == str(run / "checkpoints" / "best" / "model.safetensors")
    assert f"the run is the folder holding this record, {run} " in evaluated.stderr
