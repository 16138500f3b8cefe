"""The quick start's recipe handling (the chain itself runs in tests/integration/test_quickstart.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from biofound_cli.errors import UsageError
from biofound_cli.quickstart import CHAINS, load_chain_recipe, run_quickstart
from biofound_cli.recipes.shipped import shipped_recipe


@pytest.mark.parametrize("name", list(CHAINS))
def test_chain_recipe_moves_every_output_under_out(name: str, tmp_path: Path) -> None:
    path, recipe = load_chain_recipe(name, tmp_path)
    assert path == shipped_recipe(CHAINS[name])
    chain_dir = tmp_path.resolve() / name
    written = [
        recipe.preprocess.out,
        recipe.pack.shards,
        recipe.pack.out,
        recipe.data.train,
        recipe.data.val,
        recipe.data.test,
        recipe.output.runs_dir,
    ]
    assert all(Path(item).is_relative_to(chain_dir) for item in written), written
    assert recipe.data.train == recipe.pack.out / "train.h5"
    # The samples come from the installed package, whatever the working directory.
    root = Path(recipe.preprocess.root)
    assert root.is_absolute() and root.is_dir()
    assert root.is_relative_to(Path(shipped_recipe(CHAINS[name])).parents[1] / "samples")


def test_unknown_chain_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--only femba: unknown chain; choose one of tinymyo, luna"):
        run_quickstart(tmp_path, only="femba")
    assert not any(tmp_path.iterdir())


def test_without_the_export_extra_the_chain_skips_the_export_alone(tmp_path: Path, monkeypatch, caplog) -> None:
    # The warning and --no-export's help said the quick start "stops after evaluation", but predict runs after the
    # export, from the checkpoint: both now say the export alone is skipped.
    from typer.testing import CliRunner

    import biofound_cli.quickstart as quickstart
    from biofound_cli.cli.app import app

    calls = []
    monkeypatch.setattr(quickstart, "onnx_available", lambda: False)
    monkeypatch.setattr(quickstart, "run_chain", lambda name, out_dir, *, reporter, export, **_: calls.append((name, export)))
    quickstart.run_quickstart(tmp_path, only="tinymyo")
    assert calls == [("tinymyo", False)]
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert "pip install 'biofound[export]'" in caplog.text
    assert "skips the ONNX export (predict still runs the checkpoint)" in caplog.text
    shown = " ".join(CliRunner().invoke(app, ["quickstart", "--help"], env={"COLUMNS": "400"}).stdout.split())
    assert "--no-export Skip the ONNX export; predict still runs the checkpoint." in shown


def test_a_file_given_as_out_is_named_as_given(tmp_path: Path) -> None:
    # `biofound quickstart --out FILE` named `--out FILE/tinymyo/shards`, a path the user never gave.
    import json

    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    taken = tmp_path / "notes.txt"
    taken.write_text("not a folder\n")
    result = CliRunner().invoke(app, ["quickstart", "--out", str(taken), "--only", "tinymyo", "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"] == (
        f"--out {taken}: a file is in the way of the output folder; remove it or choose another folder"
    )
    assert taken.read_text() == "not a folder\n"
