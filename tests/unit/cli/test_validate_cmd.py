"""``biofound validate`` runs the stages' own checks: each bad recipe is one line naming the field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus

runner = CliRunner()
SAMPLE_EDF = Path(__file__).resolve().parents[3] / "biofound_cli" / "data" / "samples" / "eeg" / "eegmmidb" / "S001R02.edf"
EMPTY_PATH = "expected a path, not an empty string; name a file or folder, or remove the field"

TRAINING = """
name = "check"
description = "A recipe for the validate tests."
[preprocess]
corpus = "tuar"
sfreq = 256.0
window_seconds = 5.0
[data]
train = "packed/train.h5"
[model]
variant = "luna-base"
task = "mcc"
[train]
device = "cpu"
"""


@pytest.fixture
def recipe(tmp_path) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(TRAINING)
    return path


def validate(path: Path, *overrides: str):
    args = ["validate", str(path), "--json"]
    for override in overrides:
        args += ["--set", override]
    return runner.invoke(app, args)


def test_a_good_recipe_names_its_description_and_what_was_checked(recipe):
    result = validate(recipe)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["valid"] and summary["description"] == "A recipe for the validate tests."
    assert [check.split(":")[0] for check in summary["checked"]] == ["preprocess", "pretrain/finetune"]


def test_the_human_summary_names_the_description_once(recipe):
    result = runner.invoke(app, ["validate", str(recipe)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.output.count("A recipe for the validate tests.") == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["model.variant=luna-tiny"], "model.variant"),
        (["preprocess.corpus=nowhere"], "preprocess.corpus"),
        (["preprocess.options={label_mode = 'nope'}"], "preprocess.options.label_mode"),
        (["preprocess.options={colour = 'red'}"], "preprocess.options"),
        (["train.early_stopping_metric=val_acc"], "train.early_stopping_metric"),
        (["train.early_stopping_metric=val_mae"], "train.early_stopping_metric"),
        (["train.precision=fp16"], "train.precision"),
        # A loss of another kind of head (mse on classes, ce on one logit per channel) crashed at the first batch.
        (["train.loss=mse"], "train.loss"),
        (["model.task=mc", "train.loss=ce"], "train.loss"),
        (["model.task=regression", "train.loss=bce", "train.early_stopping_metric=val_loss"], "train.loss"),
        # A regression head has no classes: the weights were taken and never used.
        (
            [
                *("model.variant=tinymyo", "model.task=regression", "model.num_classes=1"),
                *("train.early_stopping_metric=val_loss", "train.class_weights=[2.0]"),
            ],
            "train.class_weights",
        ),
        # A multi-class head of one output passed, and a task the variant cannot be built for (LUNA has no regression head).
        (["model.task=mcc", "model.num_classes=1"], "model.num_classes"),
        (["model.task=regression", "model.num_classes=1", "train.early_stopping_metric=val_loss"], "model.task"),
        # ce over one logit has no class 1: finetune failed at the first batch holding one, with a traceback.
        (["model.task=bc", "model.num_classes=1", "train.loss=ce"], "train.loss"),
        # finetune refuses these (exit 2) when it builds the model; validate used to call them valid.
        (["model.overrides.depths=2"], "model.overrides"),
        (["model.overrides.depth='two'"], "model.overrides"),
        # A size that builds a degenerate model: no blocks (trained a model of its embeddings alone),
        # no heads or a negative width (a traceback from the constructor), layers of width 0.
        (["model.overrides.depth=0"], "model.overrides.depth"),
        (["model.overrides.num_heads=0"], "model.overrides.num_heads"),
        (["model.overrides.embed_dim=-16"], "model.overrides.embed_dim"),
        (["model.overrides.mlp_ratio=0.0"], "model.overrides.mlp_ratio"),
        (["model.overrides.drop_path=1.5"], "model.overrides.drop_path"),
        (["model.variant=tinymyo", "model.overrides.n_layer=0"], "model.overrides.n_layer"),
        (["model.variant=tinymyo", "model.overrides.n_head=0"], "model.overrides.n_head"),
        (["model.variant=femba-base", "model.task=bc", "model.overrides.stride=[0, 16]"], "model.overrides.stride"),
        (["preprocess.window_seconds=0.001"], "preprocess.window_seconds"),
        (
            ["preprocess.corpus=db5", "preprocess.options={split_by_repetition = {train = [1, 2], test = [2]}}"],
            "preprocess.options.split_by_repetition",
        ),
        # Every event is cut to 2 s, shorter than the window: preprocess skipped every file (exit 1).
        (
            [
                "preprocess.corpus=edf",
                "preprocess.options={event_labels = {T0 = 0}, event_window = [0.5, 2.5]}",
                "preprocess.window_seconds=4",
            ],
            "preprocess.window_seconds",
        ),
        # The files' declared 200 Hz cannot carry a 150 Hz band edge: preprocess skipped every file (exit 1).
        (["preprocess.corpus=emg-csv", "preprocess.options={sfreq = 200}", "preprocess.h_freq=150"], "preprocess.options.sfreq"),
    ],
)
def test_each_bad_field_is_one_line_and_exit_2(recipe, overrides, field):
    result = validate(recipe, *overrides)
    assert result.exit_code == ExitStatus.USAGE, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and field in errors[0], result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["preprocess.notch_hz=abc"], 'preprocess.notch_hz = "abc": expected a number or a list'),
        (['preprocess.notch_hz=[50, "x"]'], 'preprocess.notch_hz.1 = "x": expected a number'),
        (
            ["preprocess.corpus=edf", "preprocess.options={event_labels = {T1 = [1]}}"],
            "preprocess.options.event_labels.T1 = [1]: expected a whole number or a string",
        ),
        (["data.train=3"], "data.train = 3: expected a path (a string)"),
        # A list without its quotes arrives as a string (TOML needs them); pydantic said only "expected a list".
        (
            ["preprocess.channels=[Fp1]"],
            'preprocess.channels = "[Fp1]": expected a list; write ["Fp1"] '
            """(on the command line: --set 'preprocess.channels=["Fp1"]')""",
        ),
        (
            ["train.class_weights=1,2"],
            'train.class_weights = "1,2": expected a list; write [1, 2] '
            "(on the command line: --set 'train.class_weights=[1, 2]')",
        ),
        # Read as Path("."), the current folder, until it was refused.
        (
            ["data.train="],
            'data.train = "": ' + EMPTY_PATH,
        ),
        (
            ["preprocess.corpus=edf", "preprocess.options={labels_csv = ''}"],
            'preprocess.options.labels_csv = "": ' + EMPTY_PATH,
        ),
        (["pack.train=0.5"], "pack: pack.train + pack.val + pack.test = 0.7; the three fractions must add up to 1"),
        (
            ["preprocess.corpus=db5", "preprocess.options={split_by_repetitions = {test = [3]}}"],
            "preprocess.options.split_by_repetitions: unknown field; did you mean split_by_repetition?",
        ),
        # pydantic's own words ("List should have at least 1 item after validation, not 0",
        # "Input should be a valid dictionary or instance of OptimSection") named no fix.
        (["train.class_weights=[]"], "train.class_weights = []: expected at least 1 item, not an empty list"),
        (["export.formats=[]"], "export.formats = []: expected at least 1 item, not an empty list"),
        (["optim=3"], "optim = 3: expected a table: a [section] or {key = value, ...}"),
        (["model.overrides=[1]"], "model.overrides = [1]: expected a table: a [section] or {key = value, ...}"),
        # finetune refused it after opening the data and building the model; validate called it valid.
        (
            ["model.num_classes=3", "train.class_weights=[1, 2]"],
            "train.class_weights has 2 values but the task has 3 classes; give one per class",
        ),
    ],
)
def test_a_value_of_a_wrong_type_is_one_line_naming_the_field_as_written(recipe, overrides, line):
    """Not one line per type a union allows, named as fields (``notch_hz.float``), nor a whole section printed back."""
    result = validate(recipe, *overrides)
    assert result.exit_code == ExitStatus.USAGE, result.output
    # The value at fault is the last --set's: the line names it, not the recipe file, which does not hold it.
    assert [text for text in result.stderr.splitlines() if text.startswith("error: ")] == [
        f"error: --set {overrides[-1]}: {line}"
    ]


NOT_A_NUMBER = "expected a number, not true or false"
NOT_A_BOOL = "expected true or false (TOML's words, unquoted)"


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("preprocess.notch_hz=true", f"preprocess.notch_hz = true: {NOT_A_NUMBER}"),
        ("preprocess.window_seconds=true", f"preprocess.window_seconds = true: {NOT_A_NUMBER}"),
        ("preprocess.options={sfreq = true}", f"preprocess.options.sfreq = true: {NOT_A_NUMBER}"),
        ("preprocess.notch_hz=[50, true]", f"preprocess.notch_hz = [50, true]: {NOT_A_NUMBER}"),
        ("train.compile=yes", f'train.compile = "yes": {NOT_A_BOOL}'),
        ("train.compile=on", f'train.compile = "on": {NOT_A_BOOL}'),
        ("train.compile=1", f"train.compile = 1: {NOT_A_BOOL}"),
        ("train.compile='true'", f'train.compile = "true": {NOT_A_BOOL}'),
        ("preprocess.zscore=off", f'preprocess.zscore = "off": {NOT_A_BOOL}'),
        ("preprocess.options.has_header=0", f"preprocess.options.has_header = 0: {NOT_A_BOOL}"),
    ],
)
def test_true_or_false_where_a_number_goes_and_anything_else_where_a_bool_goes_are_refused(recipe, override, line):
    """pydantic's lax types read true as 1 (a 1 Hz notch, 1 s windows), ``yes`` as true and ``off`` or ``0`` as false."""
    result = validate(recipe, "preprocess.corpus=emg-csv", override)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert [text for text in result.stderr.splitlines() if text.startswith("error: ")] == [f"error: --set {override}: {line}"]


@pytest.mark.parametrize(
    ("override", "shown"),
    [
        ("model.overrides.depth=true", "depth = true"),
        ('model.overrides.depth="x"', 'depth = "x"'),
        ("model.overrides.depth=2.5", "depth = 2.5"),
    ],
)
def test_a_model_override_of_a_wrong_type_is_named_in_the_recipe_words(recipe, override, shown):
    """Python's names were printed: ``depth = True is a bool but must be a int (e.g. 8)``."""
    result = validate(recipe, override)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert [text for text in result.stderr.splitlines() if text.startswith("error: ")] == [
        f"error: --set {override}: model.overrides: LUNA argument {shown} is not a whole number (e.g. 8); "
        "fix model.overrides.depth"
    ]


@pytest.mark.parametrize("override", ["train.compile=true", "train.compile=false", "preprocess.zscore=true"])
def test_true_and_false_where_a_bool_goes_are_taken(recipe, override):
    result = validate(recipe, "preprocess.corpus=emg-csv", override)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda text: text.replace('train = "packed/train.h5"\n', ""), "data.train"),
        (lambda text: text.replace('[data]\ntrain = "packed/train.h5"\n', ""), "[data]"),
    ],
)
def test_a_training_recipe_without_its_data_is_refused(recipe, edit, field):
    recipe.write_text(edit(TRAINING))
    result = validate(recipe)
    assert result.exit_code == ExitStatus.USAGE, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and field in errors[0], result.stderr


def test_the_training_stage_runs_the_same_check_before_any_work(recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # output.runs_dir is relative to the current folder
    result = runner.invoke(app, ["finetune", str(recipe), "--set", "model.variant=luna-tiny"])
    assert result.exit_code == ExitStatus.USAGE and "model.variant" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("field", ["output.run_name", "name"])
@pytest.mark.parametrize("name", [".", "..", "a/b", "../elsewhere"])
def test_a_run_name_must_be_one_folder(recipe, tmp_path, monkeypatch, field, name):
    # output.run_name = "." trained straight into runs_dir, ".." and "a/b" outside its own folder.
    monkeypatch.chdir(tmp_path)
    for command in ("validate", "finetune"):
        result = runner.invoke(app, [command, str(recipe), "--set", f"{field}={name}"])
        assert result.exit_code == ExitStatus.USAGE, result.output
        assert f"{field} = \"{name}\": '{name}' is not one folder name" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("command", "stage"), [("validate", "pretrain and finetune"), ("finetune", "finetune"), ("pretrain", "pretrain")]
)
def test_a_missing_section_names_the_stage_the_user_ran(recipe, command, stage):
    # validate said "required by training", a stage no command is called; docs/troubleshooting.md
    # quotes the stage's own words.
    recipe.write_text(TRAINING.replace('[data]\ntrain = "packed/train.h5"\n', ""))
    result = runner.invoke(app, [command, str(recipe)])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert f"{recipe}: the [data] section is required by {stage}; name the packed files" in result.stderr


@pytest.mark.parametrize(
    ("override", "refused"), [("train.early_stopping_metric=val_balanced_accuracy", True), ("train.loss=mse", False)]
)
def test_validate_stage_pretrain_says_valid_exactly_when_pretrains_checks_pass(recipe, override, refused, monkeypatch):
    # A pretraining recipe watching a classification metric was "valid" and pretrain refused it:
    # the stage is not written in a recipe, so validate checked model.task's metrics instead.
    monkeypatch.chdir(recipe.parent)  # the recipe's relative paths, and the run folder a stage makes
    stage = runner.invoke(app, ["pretrain", str(recipe), "--set", override])
    checked = runner.invoke(app, ["validate", str(recipe), "--stage", "pretrain", "--set", override, "--json"])
    assert stage.exit_code == ExitStatus.USAGE, stage.output
    if refused:
        assert checked.exit_code == ExitStatus.USAGE and json.loads(checked.stdout)["error"] in stage.stderr
    else:  # pretraining ignores train.loss: the stage went on to the data, which the test does not make
        assert checked.exit_code == ExitStatus.OK and "data.train = 'packed/train.h5' does not exist" in stage.stderr
    # As finetune (model.task = mcc): the metric is computed, the loss does not fit.
    finetune = runner.invoke(app, ["validate", str(recipe), "--stage", "finetune", "--set", override])
    assert finetune.exit_code == (ExitStatus.OK if refused else ExitStatus.USAGE), finetune.output


@pytest.mark.parametrize("mode", ["frozen", "lora"])
def test_a_frozen_or_lora_pretraining_is_refused_before_any_work_and_validate_agrees(recipe, mode, monkeypatch):
    # model.finetune was ignored by pretrain: a LoRA or frozen pre-training trained every weight, silently.
    monkeypatch.chdir(recipe.parent)
    override = f"model.finetune={mode}"
    stage = runner.invoke(app, ["pretrain", str(recipe), "--set", override, "--json"])
    checked = runner.invoke(app, ["validate", str(recipe), "--stage", "pretrain", "--set", override, "--json"])
    assert stage.exit_code == checked.exit_code == ExitStatus.USAGE, stage.output
    error = json.loads(checked.stdout)["error"]
    assert f"model.finetune = '{mode}' applies to fine-tuning only" in error and error in stage.stdout
    assert not (recipe.parent / "runs").exists()
    assert runner.invoke(app, ["validate", str(recipe), "--stage", "finetune", "--set", override]).exit_code == ExitStatus.OK


def test_validate_refuses_an_unknown_stage(recipe):
    result = runner.invoke(app, ["validate", str(recipe), "--stage", "train"])
    assert result.exit_code == ExitStatus.USAGE and "--stage train: choose pretrain or finetune" in result.stderr


@pytest.mark.parametrize("command", ["validate", "finetune"])
def test_a_min_lr_above_lr_is_refused_by_validate_and_the_stage_alike(recipe, tmp_path, command):
    # The cosine schedule then rose from lr up to min_lr after warm-up.
    result = runner.invoke(app, [command, str(recipe), "--set", "optim.lr=1e-4", "--set", "optim.min_lr=1e-3"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        # Both values came from --set: the recipe file holds no [optim] to look in.
        "error: --set optim.lr=1e-4 and --set optim.min_lr=1e-3: optim: optim.min_lr = 0.001 is above optim.lr = 0.0001, "
        "so the cosine schedule would rise; "
        "set min_lr at most lr (or schedule = 'constant')"
    ]
    assert not (tmp_path / "runs").exists()


def test_a_min_lr_above_lr_is_left_alone_by_the_constant_schedule(recipe):
    result = runner.invoke(app, ["validate", str(recipe), "--set", "optim.lr=1e-6", "--set", "optim.schedule=constant", "--json"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["validate", "finetune"])
def test_a_folder_given_as_the_recipe_is_named_a_folder_not_a_missing_file(tmp_path, command):
    # A run folder passed where its recipe was meant used to be reported as "recipe file not found".
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    result = runner.invoke(app, [command, str(run), "--json"])
    assert result.exit_code == ExitStatus.USAGE
    error = json.loads(result.stdout)["error"]
    assert error.startswith(f"{run}: is a folder, not a recipe file; pass the path of a .toml recipe")


def test_preprocess_refuses_a_window_longer_than_the_event_window_before_reading_a_file(tmp_path):
    root = tmp_path / "edf"
    root.mkdir()
    shutil.copy(SAMPLE_EDF, root)
    result = runner.invoke(
        app,
        ["preprocess", "edf", "--root", str(root), "--out", str(tmp_path / "shards"), "--no-progress"]
        + ["--set", "preprocess.options={event_labels = {T0 = 0}, event_window = [0.5, 2.5]}"]
        + ["--set", "preprocess.window_seconds=4"],
    )
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert "preprocess.window_seconds = 4 s is longer than the 2 s that preprocess.options.event_window" in result.stderr
    assert not (tmp_path / "shards").exists()


def test_a_misspelt_stage_gets_the_closest_one(recipe):
    result = runner.invoke(app, ["validate", str(recipe), "--stage", "pretrainn"])
    assert result.exit_code == ExitStatus.USAGE
    assert "--stage pretrainn: choose pretrain or finetune (did you mean pretrain?)" in result.stderr


def test_a_recipe_without_any_stage_section_is_valid_with_a_warning(tmp_path):
    # An empty file was "valid" with nothing checked, as if it were ready to run.
    empty = tmp_path / "empty.toml"
    empty.write_text('name = "x"\n')
    result = runner.invoke(app, ["validate", str(empty), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["checked"] == [] and summary["warnings"] == [
        f"{empty}: no stage section ([preprocess], [data], [model], [export], ...), so no stage check ran"
    ]


EVALUATE_ALONE = """
name = "scored"
[data]
test = "packed/test.h5"
[train]
device = "cpu"
"""


@pytest.mark.parametrize("command", ["validate", "info"])
def test_a_recipe_for_evaluate_alone_is_checked_as_evaluate_checks_it(tmp_path, command):
    # Both refused it with training's requirements (data.train, model.variant); evaluate runs it.
    recipe = tmp_path / "scored.toml"
    recipe.write_text(EVALUATE_ALONE)
    result = runner.invoke(app, [command, str(recipe), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["valid"]
    if command == "validate":
        assert [check.split(":")[0] for check in summary["checked"]] == ["evaluate"]


@pytest.mark.parametrize("command", ["validate", "evaluate"])
def test_evaluate_refuses_a_bad_variant_before_any_work_as_validate_does(tmp_path, command):
    # An official file is built from model.variant; evaluate found out only after reading the split.
    recipe = tmp_path / "scored.toml"
    recipe.write_text(EVALUATE_ALONE + '[model]\nvariant = "luna-tiny"\n')
    result = runner.invoke(app, [command, str(recipe)])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
        f"error: {recipe}: model.variant: unknown model 'luna-tiny'; did you mean femba-tiny? (`biofound models` lists them all)"
    ]


@pytest.mark.parametrize(
    ("extra", "args"),
    [("[optim]\nlr = 1e-4\n", []), ("[train]\nepochs = 3\n", []), ("", ["--stage", "finetune"])],
    ids=["optim", "train-epochs", "stage"],
)
def test_a_recipe_meant_for_training_without_data_train_is_still_refused(tmp_path, extra, args):
    # A test split beside [optim], a [train] field only training reads, or --stage: it is for training.
    recipe = tmp_path / "meant.toml"
    recipe.write_text(EVALUATE_ALONE.replace('[train]\ndevice = "cpu"\n', extra))
    result = runner.invoke(app, ["validate", str(recipe), *args])
    assert result.exit_code == ExitStatus.USAGE, result.output
    stage = "finetune" if args else "pretrain and finetune"
    assert f"error: {recipe}: data.train: required by {stage}; set it to a packed train.h5" in result.stderr.splitlines()


def test_a_variant_two_checked_stages_read_is_one_line(recipe):
    # A whole-pipeline recipe is checked as training and as evaluate: both read model.variant.
    result = validate(recipe, "data.test=packed/test.h5", "model.variant=luna-tiny")
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert len([line for line in result.stderr.splitlines() if "model.variant" in line]) == 1
    checked = runner.invoke(app, ["validate", str(recipe), "--set", "data.test=packed/test.h5", "--json"])
    assert [check.split(":")[0] for check in json.loads(checked.stdout)["checked"]] == [
        "preprocess",
        "pretrain/finetune",
        "evaluate",
    ]


@pytest.mark.parametrize("other", ["model.variant=luna-tiny", "export.quantize=int8-static"])
def test_two_sources_of_labels_are_listed_with_the_recipes_other_problems(recipe, other):
    # The edf reader refuses labels_csv with event_labels when it is built: validate built it after the training
    # check, so a bad model.variant hid it, and otherwise it stopped validate before the export check, with no "error:".
    labels = "preprocess.options={labels_csv = 'labels.csv', event_labels = {T0 = 0}}"
    result = validate(recipe, "preprocess.corpus=edf", labels, other)
    assert result.exit_code == ExitStatus.USAGE, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0] == (
        f"error: --set {labels}: preprocess.options.labels_csv and preprocess.options.event_labels both give labels; "
        "keep one of them"
    )
    assert errors[1:] and all(other.split("=")[0] in line for line in errors[1:]), result.stderr


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ("preprocess.window_seconds=2.5", "preprocess.sfreq=200"),
            "preprocess.window_seconds = 2.5 cuts 500-sample windows at 200 Hz, but luna-base takes windows of a "
            "multiple of 40 samples (its patch); set preprocess.window_seconds = 2.4, or 2.6 if the recordings and their "
            "labelled events last that long",
        ),
        (
            ("preprocess.window_seconds=2.5", "model.variant=femba-tiny"),
            "preprocess.window_seconds = 2.5 cuts 640-sample windows at 256 Hz, but femba-tiny takes 1280-sample "
            "windows (5 s); set preprocess.window_seconds = 5 if the recordings and their labelled events last that long, or set "
            "model.overrides.seq_length = 640 to train from scratch",
        ),
    ],
)
def test_preprocess_windows_the_model_cannot_take_are_refused_before_the_data_exist(recipe, overrides, line):
    # validate said "valid"; finetune refused them only once preprocess and pack had run, without naming window_seconds.
    result = runner.invoke(app, ["validate", str(recipe), *[arg for o in overrides for arg in ("--set", o)]])
    assert result.exit_code == ExitStatus.USAGE, result.output
    # The line names where the window came from: here the --set that gave it.
    assert f"error: --set {overrides[0]}: {line}" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("window", "advice"),
    [
        ("1", "seq_length = 256, which keeps the weights of {start}"),
        # 512 samples: another size of FEMBA's positional embedding, which the starting weights do not fit.
        ("2", "seq_length = 512 and leave model.checkpoint unset to train from scratch ({start} takes other windows)"),
    ],
)
def test_a_window_the_starting_weights_were_built_for_is_advised_as_finetune_advises_it(recipe, tmp_path, window, advice):
    # validate said only "set preprocess.window_seconds = 5" to a recipe starting from a run built for
    # 256-sample windows: weights that then no longer fit; finetune offered the override that keeps them.
    from fixtures.export_models import save_small

    start = save_small(tmp_path / "start" / "model.safetensors", "femba")  # seq_length = 256
    body = "model.overrides={num_channels = 4, exp = 2, num_blocks = 1, embed_dim = 16}"  # the start's, but its windows
    overrides = (f"preprocess.window_seconds={window}", "model.variant=femba-tiny", f"model.checkpoint={start}", body)
    result = runner.invoke(app, ["validate", str(recipe), *[arg for o in overrides for arg in ("--set", o)]])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert (
        "femba-tiny takes 1280-sample windows (5 s); set preprocess.window_seconds = 5 if the recordings and their labelled "
        f"events last that long, or set model.overrides.{advice.format(start=start)}"
    ) in " ".join(result.output.split())


@pytest.mark.parametrize(("window", "refused"), [("3.0", True), ("3.125", False)])
def test_the_quick_starts_luna_recipe_with_another_window_is_checked_at_the_rate_its_corpus_declares(window, refused):
    # luna_scp1 does not resample: its rate is the ts corpus's options.sfreq, and validate said "valid"
    # of 3 s windows (768 samples, not a multiple of LUNA's 40), refused only at finetune, after pack.
    from biofound_cli.recipes.shipped import shipped_recipe

    override = f"preprocess.window_seconds={window}"
    result = runner.invoke(app, ["validate", str(shipped_recipe("luna_scp1")), "--set", override])
    assert result.exit_code == (ExitStatus.USAGE if refused else 0), result.output
    if refused:
        assert (
            f"error: --set {override}: preprocess.window_seconds = 3 cuts 768-sample windows at 256 Hz, but luna-base takes "
            "windows of a multiple of 40 samples (its patch); set preprocess.window_seconds = 2.96875, or 3.125 if the "
            "recordings and their labelled events last that long"
        ) in " ".join(result.output.split())


def test_the_window_advised_for_windows_as_long_as_the_trials_is_no_longer_than_they_are(tmp_path):
    # SCP1's trials are 3.5 s (896 samples, no multiple of LUNA's 40): validate advised "3.4375 or 3.59375",
    # and preprocess with 3.59375 skipped every file, its trials being shorter than the window.
    from biofound_cli.recipes.shipped import shipped_recipe

    recipe = str(shipped_recipe("luna_scp1"))
    refused = runner.invoke(app, ["validate", recipe, "--set", "preprocess.window_seconds=3.5"])
    assert refused.exit_code == ExitStatus.USAGE, refused.output
    advice = " ".join(refused.output.split()).rpartition("set preprocess.window_seconds = ")[2]
    advised, _, longer = advice.partition(", or ")
    assert (advised, longer) == ("3.4375", "3.59375 if the recordings and their labelled events last that long")
    out = tmp_path / "shards"
    command = ["preprocess", "--recipe", recipe, "--set", f"preprocess.window_seconds={advised}", "--out", str(out), "--json"]
    done = runner.invoke(app, command)
    assert done.exit_code == 0 and json.loads(done.stdout)["skipped"] == 0, done.output


@pytest.mark.parametrize("unset", [True, False])
def test_luna_channels_picked_without_a_position_are_refused_before_the_data_exist(unset):
    # validate said "valid" of SCP1's custom channels picked without their channel_positions; finetune
    # refused them ("no known position in the 10-05 system") only after preprocess and pack.
    from biofound_cli.recipes.shipped import shipped_recipe

    command = ["validate", str(shipped_recipe("luna_scp1")), "--set", 'preprocess.channels=["C3A", "C4P"]']
    result = runner.invoke(app, command + (["--unset", "preprocess.options.channel_positions"] if unset else []))
    assert result.exit_code == (ExitStatus.USAGE if unset else 0), result.output
    assert ("Channels 'C3A', 'C4P' have no known position in the 10-05 system" in result.output) is unset


@pytest.mark.parametrize(
    "overrides",
    [
        # A fractional MLP ratio: TinyMyo's default was the whole number 4, so the type check refused 4.5.
        ("model.variant=tinymyo", "model.overrides.in_chans=22", "model.overrides.mlp_ratio=4.5"),
        ("model.overrides.mlp_ratio=2.5", "model.overrides.drop_path=0.1"),
    ],
)
def test_sizes_in_range_are_valid(recipe, overrides):
    result = validate(recipe, *overrides)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("overrides", [("preprocess.window_seconds=2.4", "preprocess.sfreq=200"), ("model.variant=femba-tiny",)])
def test_preprocess_windows_the_model_takes_are_valid(recipe, overrides):
    result = runner.invoke(app, ["validate", str(recipe), *[arg for o in overrides for arg in ("--set", o)]])
    assert result.exit_code == 0, result.output


def test_preprocess_channels_the_model_cannot_take_are_refused_with_the_override_that_fits(recipe):
    # FEMBA takes 22 channels; 8 picked channels passed validate and failed only in finetune, after pack.
    result = runner.invoke(
        app, ["validate", str(recipe), "--set", "model.variant=femba-tiny", "--set", "preprocess.montage=none", "--set",
              'preprocess.channels=["FP1", "FP2", "C3", "C4", "O1", "O2", "T3", "T4"]']
    )  # fmt: skip
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert (
        "give 8 channels, but femba-tiny takes 22; set model.overrides.num_channels = 8 to train from scratch, "
        "or change the channels" in " ".join(result.output.split())
    )


@pytest.mark.parametrize(("metric", "mode"), [("val_balanced_accuracy", "max"), ("val_auroc", "max"), ("val_loss", "min")])
def test_the_early_stopping_mode_left_out_is_the_metrics_own(metric, mode):
    from biofound_cli.recipes.training import TrainSection

    assert TrainSection(epochs=1, early_stopping_metric=metric).early_stopping_direction == mode
    assert TrainSection(epochs=1, early_stopping_metric=metric, early_stopping_mode=mode).early_stopping_direction == mode


@pytest.mark.parametrize("command", ["validate", "finetune"])
def test_a_mode_that_keeps_the_worst_checkpoint_is_refused_before_any_work(recipe, tmp_path, command):
    # With "min", a run watching an accuracy kept its worst evaluation's weights as checkpoints/best.
    overrides = ["--set", "train.early_stopping_metric=val_balanced_accuracy", "--set", "train.early_stopping_mode=min"]
    result = runner.invoke(app, [command, str(recipe), *overrides])
    assert result.exit_code == ExitStatus.USAGE, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "train.early_stopping_mode = 'min' keeps the checkpoint of the smallest" in errors[0]
    assert "set 'max' or leave early_stopping_mode out" in errors[0]
    assert not (tmp_path / "runs").exists()


def test_a_preprocess_warning_is_said_once_though_the_window_check_reads_the_chain_too(recipe):
    """The window check of a training recipe resolved the preprocess chain again, so each of its warnings came twice."""
    result = validate(recipe, "preprocess.stride_seconds=10")
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if "lies between windows" in line] == [
        f"warning: {recipe}: preprocess.stride_seconds = 10 s is longer than window_seconds = 5 s, so 50% of every "
        "recording lies between windows and is not used"
    ]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ("model.variant=luna-bas", "unknown model 'luna-bas'"),  # another stage's check refuses
        ("preprocess.l_freq=200", "must be below h_freq"),  # the preprocess check that warned refuses
    ],
)
def test_a_refused_recipe_prints_its_problems_and_no_warning_about_its_stride(recipe, extra, error):
    """The stride warning came before the error, as if the recipe would run with 50% of every recording unused."""
    result = validate(recipe, "preprocess.stride_seconds=10", extra, "preprocess.h_freq=100")
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert [line.split(": ", 1)[0] for line in result.stderr.splitlines()] == ["error"]
    assert error in result.stderr


def test_preprocess_of_a_refused_recipe_prints_no_warning_about_its_stride(recipe):
    result = runner.invoke(
        app,
        ["preprocess", "--recipe", str(recipe), "--root", ".", "--out", "out"]
        + ["--set", "preprocess.stride_seconds=10", "--set", "preprocess.l_freq=200", "--set", "preprocess.h_freq=100"],
    )
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert result.stderr.splitlines() == [
        "error: --set preprocess.l_freq=200: preprocess.l_freq = 200: must be below h_freq = 100"
    ]


def test_a_few_samples_between_windows_are_not_called_0_percent(recipe):
    # 4.99 s windows every 5 s at 256 Hz (1277 samples of every 1280 used) made the warning say "0%"; those windows
    # are no multiple of LUNA's patch, and a refused recipe warns of nothing: 1240 samples of every 1242 here.
    result = validate(recipe, "preprocess.window_seconds=4.84375", "preprocess.stride_seconds=4.85")
    assert result.exit_code == 0, result.output
    assert [line.partition(", so ")[2] for line in result.stderr.splitlines() if "lies between windows" in line] == [
        "under 1% of every recording lies between windows and is not used"
    ]


def test_luna_pretraining_on_channels_outside_its_vocabulary_is_refused_by_validate_as_by_pretrain(tmp_path, monkeypatch):
    # The quick start's SCP1 channels (named by preprocess.options.channel_names alone) have no name in LUNA's
    # vocabulary, which pre-training embeds every channel by: `validate --stage pretrain` said "valid", and only
    # `pretrain`, after preprocess and pack, refused them.
    from biofound_cli.recipes.shipped import shipped_recipe

    monkeypatch.chdir(tmp_path)  # the recipe's out/ folders
    recipe = str(shipped_recipe("luna_scp1"))
    checked = runner.invoke(app, ["validate", recipe, "--stage", "pretrain"])
    assert checked.exit_code == ExitStatus.USAGE, checked.output
    errors = [line for line in checked.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "'C3A'" in errors[0] and "preprocess.channels" in errors[0], checked.stderr
    assert runner.invoke(app, ["validate", recipe, "--stage", "finetune"]).exit_code == 0  # fine-tuning reads no name
    for stage in ("preprocess", "pack"):
        assert runner.invoke(app, [stage, "--recipe", recipe, "--quiet"]).exit_code == 0
    trained = runner.invoke(app, ["pretrain", recipe])
    # pretrain's line names the packed file at fault, the field naming it, and the way out from packed windows.
    refused = [line for line in trained.stderr.splitlines() if line.startswith("error: ")]
    assert trained.exit_code != 0 and len(refused) == 1, trained.output
    assert refused[0].startswith(f"error: {recipe}: data.train = 'out/luna_scp1/packed/train.h5': "), refused
    assert errors[0].partition(f"{recipe}: ")[2].rstrip(".") in refused[0], refused
    assert refused[0].endswith(", then run preprocess and pack again"), refused
    assert not (tmp_path / "out" / "luna_scp1" / "runs").exists()


def test_luna_channels_the_corpus_options_name_are_placed_before_the_data_exist():
    # Without preprocess.channels, SCP1's channels are those its ts options name: their positions were not looked up.
    from biofound_cli.recipes.shipped import shipped_recipe

    command = ["validate", str(shipped_recipe("luna_scp1")), "--unset", "preprocess.options.channel_positions"]
    result = runner.invoke(app, command)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert "Channels 'C3A', 'C3P', 'C4A', 'C4P' have no known position in the 10-05 system" in result.stderr


def test_the_channels_a_corpus_always_has_are_counted_before_the_data_exist():
    # DB5's 16 channels are the reader's own, in no recipe field: validate knew only ts/emg-csv's channel_names,
    # so a TinyMyo of 8 input channels on DB5 was "valid" and refused by finetune after preprocess and pack.
    from biofound_cli.recipes.shipped import shipped_recipe

    result = runner.invoke(app, ["validate", str(shipped_recipe("tinymyo_db5")), "--set", "model.overrides.in_chans=8"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert "give 16 channels, but tinymyo takes 8; set model.overrides.in_chans = 16" in " ".join(result.stderr.split())


@pytest.mark.parametrize(("columns", "refused"), [('["C3", "C4"]', False), ('["0:3"]', True), ("[]", True)])
def test_the_channels_a_table_recipe_names_and_picks_are_the_ones_checked(tmp_path, columns, refused):
    # A table's channel_names with columns (or drop_columns) picking some were not checked at all: validate could
    # not tell which channels remain, though the options say it.
    recipe = tmp_path / "table.toml"
    recipe.write_text(
        '[preprocess]\ncorpus = "table"\nsfreq = 200.0\nwindow_seconds = 1.0\n'
        f'[preprocess.options]\nsfreq = 200.0\nchannel_names = ["C3", "C4", "ECG"]\ncolumns = {columns}\n'
        '[data]\ntrain = "packed/train.h5"\n[model]\nvariant = "luna-base"\ntask = "mcc"\n[train]\ndevice = "cpu"\n'
    )
    result = runner.invoke(app, ["validate", str(recipe)])
    assert result.exit_code == (ExitStatus.USAGE if refused else 0), result.output
    assert ("Channel 'ECG' has no known position in the 10-05 system" in result.stderr) is refused, result.stderr


@pytest.mark.parametrize("field", ["sfreq_variable", "variable", "names_variable"])
@pytest.mark.parametrize("empty", ['""', '" "'])
def test_an_empty_matlab_variable_name_of_a_table_is_refused_naming_the_option(tmp_path, field, empty):
    # An empty name counted as set: sfreq_variable = "" was "valid" without sfreq, then every file failed for want of
    # a rate; variable = "" meant the file's only matrix and names_variable = "" a variable no file holds.
    recipe = tmp_path / "table.toml"
    recipe.write_text(
        f'[preprocess]\ncorpus = "table"\nwindow_seconds = 1.0\n[preprocess.options]\nsfreq = 200.0\n{field} = {empty}\n'
    )
    result = runner.invoke(app, ["validate", str(recipe)])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert result.stderr.strip().splitlines() == [
        f"error: {recipe}: preprocess.options.{field} = {empty}: expected a MATLAB variable name, not an empty string; "
        "name one, or remove the field"
    ], result.stderr


def _errors(result) -> list[str]:
    return [text for text in result.stderr.splitlines() if text.startswith("error: ")]


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "model.overrides.n_layer=abc",
            'TinyMyo argument n_layer = "abc" is not a whole number (e.g. 8); fix model.overrides.n_layer',
        ),
        ("model.overrides.n_layr=2", "TinyMyo has no argument model.overrides.n_layr; did you mean n_layer?"),
    ],
)
def test_a_model_override_set_beside_the_files_is_blamed_on_its_option_alone(tmp_path, override, line):
    """tinymyo_myo's file sets model.overrides too: the line said ``r.toml with --set ...`` and sent the user to
    ``the checkpoint's constructor_kwargs`` of a recipe that names no checkpoint."""
    from biofound_cli.recipes.shipped import shipped_recipe

    shutil.copy(shipped_recipe("tinymyo_myo"), tmp_path / "r.toml")
    result = validate(tmp_path / "r.toml", override)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert _errors(result) == [f"error: --set {override}: model.overrides: {line}"]


def test_a_bad_model_override_of_the_file_is_blamed_on_the_file_beside_a_good_set_one(tmp_path):
    from biofound_cli.recipes.shipped import shipped_recipe

    path = tmp_path / "r.toml"
    path.write_text(shipped_recipe("tinymyo_myo").read_text().replace("n_layer = 4 }", "n_layer = 4.5 }"))
    result = validate(path, "model.overrides.in_chans=8")
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert _errors(result) == [
        f"error: {path}: model.overrides: TinyMyo argument n_layer = 4.5 is not a whole number (e.g. 8); "
        "fix model.overrides.n_layer"
    ]


@pytest.mark.parametrize(
    ("name", "download"),
    [
        ("preprocess_tuab", "download: data set name"),
        ("luna_tuab", "download: model.checkpoint's hub reference, data set name"),
        ("tinymyo_myo", "download: nothing to fetch"),
    ],
)
def test_the_checked_line_lists_only_the_download_checks_that_ran(name, download):
    """A preprocess-only recipe (no [model]) was said to have had its weights checked against model.checkpoint."""
    from biofound_cli.recipes.shipped import shipped_recipe

    result = validate(shipped_recipe(name))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["checked"][0] == download


def test_the_download_check_of_named_weights_says_it_compared_them_with_model_checkpoint(recipe):
    result = validate(recipe, "download.model=luna", "model.checkpoint=hub:luna/Base")
    assert result.exit_code == 0, result.output
    checked = json.loads(result.stdout.strip().splitlines()[-1])["checked"][0]
    assert checked == "download: model, size and task names, the same weights as model.checkpoint"


@pytest.mark.parametrize(
    ("override", "advice"),
    [
        ("train.batch_size=16", "did you mean data.batch_size?"),
        ("train.lr=1e-4", "did you mean optim.lr?"),
        ("optim.epochs=3", "did you mean train.epochs or warmup_epochs?"),  # not optim's near "eps"
        ("train.num_workers=2", "did you mean data.num_workers?"),
        ("optim.lrr=1e-4", "did you mean lr?"),
    ],
)
def test_a_field_set_in_the_wrong_section_names_the_section_that_has_it(recipe, override, advice):
    """``--set train.batch_size=16`` was told only "remove it or check its spelling"."""
    result = validate(recipe, override)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert _errors(result) == [f"error: --set {override}: unknown field; {advice}"]


@pytest.mark.parametrize(
    ("override", "advice"),
    [
        ("output.dir=x", "did you mean runs_dir?"),
        ("output.folder=x", "did you mean runs_dir?"),
        ("output.path=x", "did you mean runs_dir?"),
        ("output.out=x", "did you mean preprocess.out, pack.out, export.out or runs_dir?"),
        ("output.run=x", "did you mean run_name?"),
        ("lr=1e-4", "did you mean optim.lr?"),  # outside any section
        ("epochs=3", "did you mean train.epochs?"),  # not the top level's near "preprocess"
        ("optim.learning_rate=1e-4", "did you mean lr?"),
        ("data.batchsize=8", "did you mean batch_size?"),
        ("optim.decay=0.1", "did you mean weight_decay or layer_decay?"),
        ("optim.wieght_decay=0.1", "did you mean weight_decay?"),  # a misspelling
        ("output.runs_dri=x", "did you mean runs_dir?"),
        ("output.data=x", "remove it or check its spelling"),  # nothing near: no nonsense
        ("optim.x=1", "remove it or check its spelling"),
    ],
)
def test_the_names_users_guess_for_a_field_are_told_the_field(recipe, override, advice):
    """``--set output.dir=...`` got no "did you mean": ``runs_dir`` was too far by spelling alone."""
    result = validate(recipe, override)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert _errors(result) == [f"error: --set {override}: unknown field; {advice}"]


def test_a_list_of_unquoted_channel_names_is_written_back_quoted_in_the_users_own_names(recipe):
    """The advice quoted an example list (``["Fp1", "Fp2"]``) whatever channels the user had typed."""
    result = validate(recipe, "preprocess.channels=[EMG1, EMG2]")
    assert result.exit_code == ExitStatus.USAGE, result.output
    [line] = _errors(result)
    assert line.endswith("""quote the strings in it: --set 'preprocess.channels=["EMG1", "EMG2"]'""")
    from biofound_cli.recipes.loading import parse_override

    assert parse_override(line.rsplit("--set ", 1)[1].strip("'")) == (["preprocess", "channels"], ["EMG1", "EMG2"])
