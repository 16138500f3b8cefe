"""A run trained in one folder and used from another: a moved project, a copied run, a read-only copy.

The chain is the shipped TinyMyo recipe with every path absolute (as on a cluster), shrunk to one
layer and 2 epochs (evaluated each epoch) with 2 loader workers; the project folder is then moved
to a path with a space, so every path ``recipe.json`` recorded is stale.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from biofound_cli.recipes.shipped import shipped_recipe

pytestmark = pytest.mark.slow
PACKAGE = Path(shipped_recipe("tinymyo_myo.toml")).parents[2]
RUN = Path("out/tinymyo_myo/runs/tinymyo-myo")
SMALL = ["--set", "model.overrides.n_layer=1", "--set", "model.overrides.embed_dim=48"]


def biofound(*args: object, cwd: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "biofound_cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def moved(tmp_path_factory) -> Path:
    """A project trained at ``cluster/`` (absolute paths), then moved to ``moved project/``."""
    base = tmp_path_factory.mktemp("moved")
    cluster = base / "cluster"
    cluster.mkdir()
    assert biofound("recipes", "cp", "tinymyo_myo", cluster / "r.toml", cwd=cluster).returncode == 0
    text = (cluster / "r.toml").read_text().replace('root = "biofound_cli/', f'root = "{PACKAGE}/')
    text = text.replace('"out/', f'"{cluster}/out/').replace("epochs = 15", "epochs = 2")
    (cluster / "r.toml").write_text(text.replace("num_workers = 0", "num_workers = 2"))
    for stage in (["preprocess", "--recipe"], ["pack", "--recipe"], ["finetune"]):
        result = biofound(*stage, "r.toml", "--no-progress", *(SMALL if stage == ["finetune"] else []), cwd=cluster)
        assert result.returncode == 0, (stage, result.stderr)
    assert len([json.loads(line) for line in (cluster / RUN / "metrics.jsonl").open() if '"val"' in line]) == 2
    project = base / "moved project"
    shutil.move(cluster, project)
    return project


def _run_paths(project: Path, run: Path = RUN) -> dict:
    result = biofound("info", run, "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["recorded_paths"]


def test_info_names_the_recorded_paths_and_where_the_data_is_now(moved):
    paths = _run_paths(moved)
    assert paths["run_folder"]["moved"] is True
    assert paths["run_folder"]["recorded"].endswith("/cluster/out/tinymyo_myo/runs/tinymyo-myo")
    assert f"--set 'output.runs_dir={moved}/out/tinymyo_myo/runs'" in paths["run_folder"]["note"]
    test = paths["test"]
    assert test["status"] == "moved"
    assert f"--set 'data.test={moved}/out/tinymyo_myo/packed/test.h5'" in test["note"]


@pytest.mark.parametrize("inside", [".", "../tinymyo-myo"])
def test_info_from_inside_the_run_folder_names_the_same_paths(moved, inside):
    """`cd RUN && biofound info .`: the folder holding the run is the run folder's parent, not "."."""
    assert _run_paths(moved / RUN, Path(inside)) == _run_paths(moved)


def test_a_run_folder_renamed_when_moved_names_its_recorded_paths_and_evaluates(moved):
    """``mv runs/tinymyo-myo runs/old-run``: the record's run name, not the folder's, was recorded."""
    renamed = moved / RUN.parent / "old-run"
    shutil.copytree(moved / RUN, renamed, ignore=shutil.ignore_patterns("eval", "export"))
    try:
        paths = _run_paths_of(renamed)
        assert paths["run_folder"]["recorded"].endswith("/cluster/out/tinymyo_myo/runs/tinymyo-myo")
        assert paths["test"]["status"] == "moved", paths["test"]  # the data moved along with the project
        # The flags info names (runs_dir alone led to a folder of the old name), as a user pastes them.
        pointed = shlex.split(paths["run_folder"]["note"].split("find it with ")[1])
        assert pointed[-2:] == ["--set", "output.run_name=old-run"], pointed
        pointed += shlex.split(paths["test"]["note"].split(": ")[-1])
        result = biofound("evaluate", "r.toml", "--no-progress", *pointed, cwd=moved)
        assert result.returncode == 0, result.stderr
        assert (renamed / "eval" / "test" / "report.json").is_file()
    finally:
        shutil.rmtree(renamed)


def test_evaluate_names_the_moved_run_folder_then_runs_with_the_new_paths(moved):
    stale = biofound("evaluate", "r.toml", "--no-progress", cwd=moved)
    assert stale.returncode == 2, stale.stderr
    assert "no run folder" in stale.stderr and "--set output.runs_dir=FOLDER" in stale.stderr
    assert "--set output.run_name=NAME too if it was renamed" in stale.stderr
    assert "Traceback" not in stale.stderr
    packed = moved / "out/tinymyo_myo/packed"
    pointed = ["--set", "output.runs_dir=out/tinymyo_myo/runs"]
    no_data = biofound("evaluate", "r.toml", "--no-progress", *pointed, cwd=moved)
    assert no_data.returncode == 2 and "--set data.test=ITS_PATH" in no_data.stderr, no_data.stderr
    pointed += ["--set", f"data.test={packed / 'test.h5'}"]
    result = biofound("evaluate", "r.toml", "--no-progress", *pointed, cwd=moved)
    assert result.returncode == 0, result.stderr
    assert (moved / RUN / "eval" / "test" / "report.json").is_file()
    # The same windows at a new path are not a change of recipe: the finished run's resume ends at once,
    # and records the paths it now uses. On a copy: the run keeps the cluster's paths for the tests below.
    shutil.copytree(moved / RUN, moved / RUN.parent / "resumed")
    pointed += ["--set", f"data.train={packed / 'train.h5'}", "--set", f"data.val={packed / 'val.h5'}"]
    pointed += ["--set", "output.run_name=resumed"]
    resumed = biofound("finetune", "r.toml", "--resume", "auto", "--no-progress", *SMALL, *pointed, cwd=moved)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    assert "already finished" in resumed.stdout
    described = biofound("info", RUN.parent / "resumed", "--json", cwd=moved)
    assert described.returncode == 0, described.stderr
    paths = json.loads(described.stdout)["recorded_paths"]
    assert paths["run_folder"]["moved"] is False
    assert [paths[split]["status"] for split in ("train", "val", "test")] == ["found"] * 3


def test_info_through_a_symlinked_runs_folder(moved, tmp_path):
    (tmp_path / "runs").symlink_to(moved / "out/tinymyo_myo/runs")
    paths = _run_paths_of(tmp_path / "runs" / "tinymyo-myo")
    assert paths["test"]["status"] == "moved"  # found beside the link's real place, not beside the link
    exported = biofound("export", tmp_path / "runs" / "tinymyo-myo", "--json", "--no-progress", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert Path(json.loads(exported.stdout)["out"]).samefile(moved / RUN / "export")


def test_export_and_predict_from_a_moved_run_folder(moved):
    exported = biofound("export", RUN, "--json", "--no-progress", cwd=moved)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["out"] == str(RUN / "export")  # as the run was given: from the cwd
    recording = PACKAGE / "data/samples/emg/myo/R_3_C_0_EMG.csv"
    predicted = biofound("predict", RUN / "export", recording, "--out", "predictions", "--no-progress", cwd=moved)
    assert predicted.returncode == 0, predicted.stderr
    assert (moved / "predictions" / "summary.json").is_file()


def test_info_names_missing_data_and_other_windows(moved, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(moved / RUN, copy / "runs" / "tinymyo-myo")
    paths = _run_paths_of(copy / "runs" / "tinymyo-myo")
    assert paths["test"]["status"] == "missing" and "--set data.test=PATH" in paths["test"]["note"]
    # A packed file at the recorded path, but not the run's windows: a stale copy is named, not trusted.
    recorded_val = Path(paths["val"]["recorded"])
    recorded_val.parent.mkdir(parents=True)
    shutil.copy(moved / "out/tinymyo_myo/packed/test.h5", recorded_val)
    try:
        assert _run_paths_of(copy / "runs" / "tinymyo-myo")["val"]["status"] == "other windows"
    finally:
        shutil.rmtree(recorded_val.parents[3])


def _run_paths_of(run: Path) -> dict:
    result = biofound("info", run, "--json", cwd=run.parent)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["recorded_paths"]


def _read_only(folder: Path) -> tuple[str, ...]:
    """A command prefix that runs with ``folder`` read-only: a read-only bind mount as root, else no write bits."""
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(folder)], check=True)
        return ()
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    prefix = ("unshare", "-m", "sh", "-c", script, str(folder))
    if shutil.which("unshare") is None or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("root without a way to mount a folder read-only here")
    return prefix


def test_a_read_only_copy_reads_and_names_the_folder_it_must_write(moved, tmp_path):
    project = tmp_path / "read only"
    shutil.copytree(moved, project, ignore=shutil.ignore_patterns("eval", "export", "predictions"))
    runs = project / "out/tinymyo_myo/runs"
    prefix = _read_only(runs)
    pointed = ["--set", "output.runs_dir=out/tinymyo_myo/runs"]
    for split in ("train", "val", "test"):
        pointed += ["--set", f"data.{split}={project / 'out/tinymyo_myo/packed' / split}.h5"]
    try:
        assert biofound("info", RUN, cwd=project, prefix=prefix).returncode == 0
        evaluated = biofound("evaluate", "r.toml", "--no-progress", *pointed, cwd=project, prefix=prefix)
        assert evaluated.returncode == 2 and "default --out" in evaluated.stderr, evaluated.stderr
        written = biofound("evaluate", "r.toml", "--no-progress", *pointed, "--out", "eval", cwd=project, prefix=prefix)
        assert written.returncode == 0, written.stderr
        resumed = biofound("finetune", "r.toml", "--resume", "auto", *SMALL, *pointed, cwd=project, prefix=prefix)
        assert resumed.returncode == 2 and "the run folder is not writable" in resumed.stderr, resumed.stderr
        assert "Traceback" not in evaluated.stderr + resumed.stderr
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(runs)], check=True)
