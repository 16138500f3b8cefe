"""A bad value given by ``--set`` or a quick flag is reported as that option's, not as the recipe file's.

The user searched the file for ``training.lr = "abc"``, which was never there: pydantic's errors
and every stage's own checks named the recipe file as the source of every value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus, RecipeError
from biofound_cli.recipes import load_recipe
from biofound_cli.recipes.origin import RecipeOrigin

runner = CliRunner()

TRAINING = """
name = "check"
[preprocess]
corpus = "tuar"
sfreq = 256.0
[data]
train = "packed/train.h5"
[model]
variant = "luna-base"
task = "mcc"
[optim]
lr = 1e-4
[train]
device = "cpu"
"""


@pytest.fixture
def recipe(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the recipe's relative paths, and the run folder a stage would make
    path = tmp_path / "recipe.toml"
    path.write_text(TRAINING)
    return path


def errors(result) -> list[str]:
    return [line.removeprefix("error: ") for line in result.stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize("command", ["validate", "finetune", "pretrain"])
@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("optim.lr=abc", '--set optim.lr=abc: optim.lr = "abc": expected a number'),
        ("preprocess.window_seconds=-1", "--set preprocess.window_seconds=-1: preprocess.window_seconds = -1: must be above 0"),
        ("data.window_seconds=-1", "--set data.window_seconds=-1: unknown field; "),
    ],
)
def test_a_bad_set_value_is_named_by_its_option_with_and_without_json(recipe, command, override, line):
    for json_flag in ([], ["--json"]):
        result = runner.invoke(app, [command, str(recipe), "--set", override, *json_flag])
        assert result.exit_code == ExitStatus.USAGE, result.output
        [error] = errors(result)
        assert error.startswith(line), error
        assert str(recipe) not in error
        if json_flag:
            assert json.loads(result.stdout)["error"] == error


@pytest.mark.parametrize("command", ["validate", "finetune"])
@pytest.mark.parametrize(
    ("override", "line"),
    [
        # check_training, before any file is opened
        ("model.variant=luna-tiny", "--set model.variant=luna-tiny: unknown model 'luna-tiny'"),
        ("train.precision=fp16", "--set train.precision=fp16: train.precision = 'fp16' needs a CUDA device"),
        ("train.loss=mse", "--set train.loss=mse: train.loss = 'mse' does not fit task 'mcc'"),
        # check_preprocess, run by validate alone here (finetune does not preprocess)
    ],
)
def test_a_training_check_names_the_set_option(recipe, command, override, line):
    result = runner.invoke(app, [command, str(recipe), "--set", override, "--json"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert [error.startswith(line) for error in errors(result)] == [True], result.stderr
    assert json.loads(result.stdout)["error"].startswith(line)


def test_a_missing_data_file_given_by_set_names_the_option(recipe):
    # Found by finetune only after the checks, when it opens the data.
    result = runner.invoke(app, ["finetune", str(recipe), "--set", "data.train=elsewhere.h5", "--json"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    [line] = errors(result)
    assert line.startswith("--set data.train=elsewhere.h5: data.train = 'elsewhere.h5' does not exist"), line


def test_the_preprocess_check_names_the_set_option_and_the_quick_flag(recipe, tmp_path):
    command = ["preprocess", "--recipe", str(recipe), "--root", str(tmp_path), "--out", str(tmp_path / "shards")]
    result = runner.invoke(app, [*command, "--set", "preprocess.window_seconds=0.001", "--json"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    [error] = errors(result)
    assert error.startswith(
        "--set preprocess.window_seconds=0.001: preprocess.window_seconds = 0.001 s is shorter than one sample"
    )
    assert json.loads(result.stdout)["error"] == error
    result = runner.invoke(app, [*command, "--workers", "0"])
    assert errors(result) == ["--workers = 0: must be at least 1"]
    result = runner.invoke(app, ["preprocess", "tuarr", "--root", str(tmp_path), "--out", str(tmp_path / "shards")])
    assert [error.split(";")[0] for error in errors(result)] == ["CORPUS: unknown corpus 'tuarr'"]
    assert not (tmp_path / "shards").exists()


def test_a_value_in_the_file_is_still_named_by_the_file(recipe):
    recipe.write_text(TRAINING.replace("lr = 1e-4", "lr = 'abc'"))
    result = runner.invoke(app, ["validate", str(recipe), "--set", "optim.weight_decay=0.1"])
    assert errors(result) == [f'{recipe}: optim.lr = "abc": expected a number']


def test_a_section_check_names_the_file_with_the_set_options_that_changed_it(recipe):
    # optim.lr is in the file, optim.min_lr came from --set: the line says both.
    result = runner.invoke(app, ["validate", str(recipe), "--set", "optim.min_lr=1e-3"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    [error] = errors(result)
    assert error.startswith(f"{recipe} with --set optim.min_lr=1e-3: optim: optim.min_lr = 0.001 is above optim.lr")


def test_the_last_set_of_a_field_is_the_one_named(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[optim]\nlr = 1e-3\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, ["optim.lr=1", "optim={lr = 'x'}"])
    assert caught.value.problems == ["--set optim={lr = 'x'}: optim.lr = \"x\": expected a number"]


@pytest.mark.parametrize(
    ("line", "blamed"),
    [
        ("r.toml: data.train = 'x' does not exist", "--set data.train=x: data.train = 'x' does not exist"),
        ("r.toml: data.train.0: bad", "--set data.train=x: data.train.0: bad"),
        ("r.toml: data: both", "r.toml with --set data.train=x: data: both"),
        ("r.toml: model: none in the file", "--set model.task=bc: model: none in the file"),
        ("r.toml: data.val: the file's", "r.toml: data.val: the file's"),
        ("r.toml: the [data] section is required", "r.toml: the [data] section is required"),
        ("elsewhere: data.train: not this recipe's line", "elsewhere: data.train: not this recipe's line"),
        # A quick flag takes its field's place: "CHECKPOINT: export.checkpoint = ..." named the place twice.
        ("r.toml: export.checkpoint = 'hub:luna/Base': no", "CHECKPOINT = 'hub:luna/Base': no"),
        ("r.toml: export.checkpoint: none", "CHECKPOINT: none"),
    ],
)
def test_blame_names_the_option_of_the_field_a_line_starts_with(line, blamed):
    origin = RecipeOrigin("r.toml", frozenset({"data", "data.val"}))
    origin.give("data.train", "--set data.train=x")
    origin.give("model.task", "--set model.task=bc")
    origin.give("export.checkpoint", "CHECKPOINT")
    assert origin.blame(line) == blamed


def test_a_download_flag_the_model_lacks_is_named_by_its_flag(recipe):
    # The line led with download.model, so TARGET was blamed for --variant's size.
    result = runner.invoke(app, ["download", "luna", "--recipe", str(recipe), "--variant", "gigantic", "--json"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    [error] = errors(result)
    assert error.startswith("--variant 'gigantic' is not a luna variant; choose one of: luna-base")
    assert json.loads(result.stdout)["error"] == error


def test_a_quick_flag_that_replaces_a_set_of_the_same_field_says_so(recipe):
    """``--root`` wins over ``--set preprocess.root``, as documented; the ``--set`` the user typed was dropped without a word."""
    result = runner.invoke(
        app, ["preprocess", "--recipe", str(recipe), "--root", "no_root", "--set", "preprocess.root=other", "--out", "o"]
    )
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert result.stderr.splitlines() == [
        "warning: --root no_root replaces --set preprocess.root=other (a command's own flag wins); give preprocess.root once",
        "error: --root = 'no_root' is not a folder; give the folder holding the raw tuar recordings",
    ]


def test_a_section_check_names_the_options_that_gave_the_fields_it_names(tmp_path):
    # Fractions given by --set that do not add up to 1 blamed "--set pack.val=0 and --set pack.test=0
    # and SHARDS and --out": the folders had nothing to do with it.
    args = ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--set", "pack.val=0", "--set", "pack.test=0"]
    result = runner.invoke(app, args)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert result.stderr.strip() == (
        "error: --set pack.val=0 and --set pack.test=0: pack: pack.train + pack.val + pack.test = 0.8; "
        "the three fractions must add up to 1"
    )
