"""``--unset SECTION.KEY`` removes a recipe field so its default applies; ``--set`` cannot say "no value".

A shipped recipe sets ``model.checkpoint`` (pre-trained weights) and ``data.val``; to train from
scratch, or without the validation split pack left empty, the user had to edit the file: ``--set
model.checkpoint=`` is refused as an empty path, rightly (``$CKPT`` unset in a script).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.cli.train import _continue_command
from biofound_cli.errors import ExitStatus, RecipeError
from biofound_cli.recipes import load_recipe

runner = CliRunner()

RECIPE = """
[data]
train = "packed/train.h5"
val = "packed/val.h5"
[model]
variant = "tinymyo"
checkpoint = "runs/pre/checkpoints/best/model.safetensors"
overrides = { in_chans = 8, n_layer = 4 }
[train]
device = "cpu"
"""


@pytest.fixture
def recipe(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "recipe.toml"
    path.write_text(RECIPE)
    return path


def test_unset_fields_take_their_defaults_and_set_still_wins(recipe):
    loaded = load_recipe(recipe, ["data.val=other/val.h5"], unset=["model.checkpoint", "model.overrides.n_layer", "data.val"])
    assert loaded.model.checkpoint is None and loaded.model.overrides == {"in_chans": 8}
    assert str(loaded.data.val) == "other/val.h5"  # --set applies after --unset
    assert load_recipe(recipe, unset=["optim.grad_clip"]).train.device == "cpu"  # not in the file: its default, no error


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("model.chekpoint", "--unset model.chekpoint: unknown field; did you mean checkpoint?"),
        (
            "model.overrides.nlayer",
            "--unset model.overrides.nlayer: the recipe sets no model.overrides.nlayer; check its spelling",
        ),
        ("data.val=x", "--unset data.val=x: expected section.key, e.g. --unset model.checkpoint (--set gives a value)"),
    ],
)
def test_a_wrong_unset_is_refused_naming_the_option(recipe, name, line):
    with pytest.raises(RecipeError) as error:
        load_recipe(recipe, unset=[name])
    assert error.value.problems == [line]


def test_validate_names_the_unset_option_for_a_field_a_stage_needs(recipe):
    result = runner.invoke(app, ["validate", str(recipe), "--unset", "model.variant"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert result.stderr.startswith("error: --unset model.variant: model.variant"), result.stderr
    assert "recipe.toml" not in result.stderr


def test_the_continue_command_repeats_unset(recipe):
    command = _continue_command("finetune", recipe, (["optim.lr=1e-4"], ["model.checkpoint"]), ["--json"])
    assert command.endswith(f"finetune {recipe} --unset model.checkpoint --set optim.lr=1e-4 --resume auto --json")


@pytest.mark.parametrize(("override", "field"), [("train.max_steps=none", "train.max_steps"), ("optim.lr=null", "optim.lr")])
def test_a_word_for_no_value_in_set_is_refused_pointing_at_unset(recipe, override, field):
    # `--set export.quantize=none` was refused as "expected 'int8' or 'int8-static'", with no word of --unset.
    result = runner.invoke(app, ["validate", str(recipe), "--set", override])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert f"to leave it unset (its default), pass --unset {field} or remove it from the recipe" in " ".join(
        result.output.split()
    )
