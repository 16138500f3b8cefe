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
