"""A recipe run from another folder: its relative paths found beside it, not in the working folder, are named once."""

from __future__ import annotations

from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus

runner = CliRunner()

RECIPE = """
[preprocess]
corpus = "emg-csv"
root = "raw"
out = "out/shards"
"""


def test_a_recipe_run_from_another_folder_says_where_its_paths_are(tmp_path, monkeypatch):
    study = tmp_path / "study"
    (study / "raw").mkdir(parents=True)
    (study / "r.toml").write_text(RECIPE)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    warning = (
        "warning: ../study/r.toml: preprocess.root = 'raw' is not found from the working folder "
        f"{tmp_path / 'elsewhere'} but is beside the recipe; paths in a recipe are relative to the working folder: "
        f"run from {study}"
    )
    checked = runner.invoke(app, ["validate", "../study/r.toml"])
    assert checked.exit_code == 0 and warning in checked.stderr.splitlines(), checked.stderr
    ran = runner.invoke(app, ["preprocess", "--recipe", "../study/r.toml"])
    assert ran.exit_code == ExitStatus.USAGE
    assert ran.stderr.splitlines() == [
        warning,
        "error: ../study/r.toml: preprocess.root = 'raw' is not a folder; give the folder holding the raw emg-csv recordings",
    ]
    monkeypatch.chdir(study)
    assert "warning" not in runner.invoke(app, ["validate", "r.toml"]).stderr


def test_a_training_recipe_refused_for_a_packed_file_beside_it_says_where_the_file_is(tmp_path, monkeypatch):
    """held28 held every warning of the loading until the checks passed: a fresh start's missing data.train,
    checked there, dropped the one line that says the file is beside the recipe, which is what to do about it."""
    study = tmp_path / "study"
    (study / "packed").mkdir(parents=True)
    (study / "packed" / "train.h5").touch()
    (study / "r.toml").write_text("[data]\ntrain = 'packed/train.h5'\n[model]\nvariant = 'tinymyo'\n[train]\ndevice = 'cpu'\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    ran = runner.invoke(app, ["finetune", "../study/r.toml", "--no-progress"])
    assert ran.exit_code == ExitStatus.USAGE
    lines = ran.stderr.splitlines()
    assert len(lines) == 2 and lines[1].startswith("error: ../study/r.toml: data.train = 'packed/train.h5' does not exist")
    assert lines[0] == (
        "warning: ../study/r.toml: data.train = 'packed/train.h5' is not found from the working folder "
        f"{tmp_path / 'elsewhere'} but is beside the recipe; paths in a recipe are relative to the working folder: "
        f"run from {study}"
    )
