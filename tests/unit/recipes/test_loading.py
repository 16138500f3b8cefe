from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus, RecipeError
from biofound_cli.recipes import Recipe, load_recipe, parse_override


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


def test_valid_recipe_loads_with_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, "[preprocess]\ncorpus = 'tuab'\nworkers = 2\n"))
    assert isinstance(recipe, Recipe)
    assert recipe.preprocess.corpus == "tuab"
    assert recipe.preprocess.workers == 2
    assert recipe.pack is None


def test_bad_value_names_file_field_value_and_rule(tmp_path):
    path = write(tmp_path, "[preprocess]\nworkers = 'two'\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert caught.value.problems == [f'{path}: preprocess.workers = "two": expected a whole number']
    assert caught.value.status == ExitStatus.USAGE


def test_every_problem_is_listed(tmp_path):
    path = write(tmp_path, "[preprocess]\nworkers = 0\ntypo = 1\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    problems = caught.value.problems
    assert len(problems) == 2
    assert any("preprocess.workers = 0" in line and "must be at least 1" in line for line in problems)
    assert any("preprocess.typo: unknown field" in line for line in problems)


def test_set_overrides_are_typed(tmp_path):
    recipe = load_recipe(write(tmp_path, "[preprocess]\nworkers = 2\n"), ["preprocess.workers=4", "pack.seed=7"])
    assert recipe.preprocess.workers == 4
    assert recipe.pack.seed == 7


def test_flags_win_over_file_and_none_is_ignored(tmp_path):
    recipe = load_recipe(
        write(tmp_path, "[preprocess]\nworkers = 2\ncorpus = 'tuab'\n"),
        flags={"preprocess.workers": 3, "preprocess.corpus": None},
    )
    assert recipe.preprocess.workers == 3
    assert recipe.preprocess.corpus == "tuab"


@pytest.mark.parametrize(
    ("text", "keys", "value"),
    [
        ("optim.lr=1e-4", ["optim", "lr"], 1e-4),
        ("train.precision=bf16", ["train", "precision"], "bf16"),
        ("a.b=[1, 2]", ["a", "b"], [1, 2]),
        ("a.flag=true", ["a", "flag"], True),
        ('a.name="x y"', ["a", "name"], "x y"),
    ],
)
def test_parse_override(text, keys, value):
    assert parse_override(text) == (keys, value)


@pytest.mark.parametrize("text", ["noequals", "=3", "a..b=1"])
def test_parse_override_rejects_malformed(text):
    with pytest.raises(RecipeError, match="expected section.key=value"):
        parse_override(text)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.toml")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(write(tmp_path, "[preprocess\n"))


@pytest.mark.parametrize(
    ("text", "overrides", "field"),
    [
        ("[data]\ntrain = ''\n", [], "data.train"),
        ("[data]\ntrain = 'packed/train.h5'\n", ["data.train="], "data.train"),
        ("[output]\nruns_dir = ' '\n", [], "output.runs_dir"),
    ],
)
def test_an_empty_path_is_refused_not_read_as_the_current_folder(tmp_path, text, overrides, field):
    # pydantic reads "" as Path("."): validate called it valid, and finetune then said
    # ".: packed file not found; run `biofound pack SHARDS --out .` first".
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, overrides)
    [problem] = caught.value.problems
    source = f"--set {overrides[-1]}" if overrides else path
    assert problem.startswith(f"{source}: {field} = ") and "expected a path, not an empty string" in problem


def test_a_recipe_saved_with_a_byte_order_mark_or_windows_line_ends_loads(tmp_path):
    # Notepad saves UTF-8 with a BOM; tomllib refused it as "Invalid statement (at line 1, column 1)".
    path = tmp_path / "r.toml"
    path.write_bytes(b"\xef\xbb\xbfname = 'bom'\r\n[optim]\r\n\tlr = 1e-4\r\n")
    recipe = load_recipe(path)
    assert recipe.name == "bom" and recipe.optim.lr == 1e-4


def test_a_recipe_that_is_not_utf8_says_so_and_what_to_do(tmp_path):
    path = tmp_path / "r.toml"
    path.write_bytes("name = 'caf\u00e9'\n".encode("latin-1"))
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert caught.value.problems == [f"{path}: not UTF-8 text (byte 11 is 0xe9); save the recipe as UTF-8"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[optim]\nlrr = 1e-4\n", "optim.lrr: unknown field; did you mean lr?"),
        ("[data]\nbatchsize = 8\n", "data.batchsize: unknown field; did you mean batch_size?"),
        ("[optimizer]\nlr = 1e-4\n", "optimizer: unknown field; did you mean optim?"),
        ("[train]\nzzz = 1\n", "train.zzz: unknown field; remove it or check its spelling"),
    ],
)
def test_an_unknown_field_names_the_closest_field_of_its_section(tmp_path, text, line):
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert caught.value.problems == [f"{path}: {line}"]


@pytest.mark.parametrize("text", ["preprocess.channels=[Fp1, Fp2]", "model.overrides={name = two, depth = 2}"])
def test_a_list_or_table_with_unquoted_strings_says_to_quote_them(text):
    # It was kept as one string and refused as "expected a list", which hid that quotes were missing.
    dotted, raw = text.split("=", 1)
    with pytest.raises(RecipeError) as caught:
        parse_override(text)
    [problem] = caught.value.problems
    assert problem.startswith(f"--set {dotted}: {raw} is not a TOML list or table (")
    assert "quote the strings in it" in problem


@pytest.mark.parametrize("regex", ["[A-Z]", "[0-9]+", "(?P<subject>[a-z]+)_[0-9]"])
def test_a_regex_with_brackets_is_still_a_plain_string(regex):
    assert parse_override(f"preprocess.options.subject_pattern={regex}") == (
        ["preprocess", "options", "subject_pattern"],
        regex,
    )


@pytest.mark.parametrize("betas", ["[0.9]", "[0.9, 0.99, 0.999]", "0.9", "[]"])
def test_a_betas_list_of_the_wrong_size_asks_for_two_numbers(tmp_path, betas):
    # [0.9] was reported as "optim.betas.1: required field is missing", a field the user never wrote.
    path = write(tmp_path, "[optim]\nlr = 1e-3\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, [f"optim.betas={betas}"])
    assert caught.value.problems == [
        f"--set optim.betas={betas}: optim.betas = {json.dumps(json.loads(betas))}: expected a list of 2 numbers, "
        "e.g. [0.9, 0.999]"
    ]


def _fixed_length_tuple_fields():
    """(section model, field name, item count) of every fixed-length tuple field a recipe can hold."""
    import typing

    from biofound_cli.recipes.reference import corpus_option_models

    sections = [
        typing.get_args(field.annotation)[0] for field in Recipe.model_fields.values() if typing.get_args(field.annotation)
    ]
    models = [model for model in sections if isinstance(model, type) and issubclass(model, BaseModel)] + [
        model for _, model in corpus_option_models()
    ]
    for model in models:
        for name, field in model.model_fields.items():
            for member in (field.annotation, *typing.get_args(field.annotation)):
                items = typing.get_args(member) if typing.get_origin(member) is tuple else ()
                if items and Ellipsis not in items:
                    yield model, name, len(items)


def test_every_fixed_length_tuple_field_names_its_size_when_one_item_short():
    from biofound_cli.recipes.loading import validate_data

    fields = list(_fixed_length_tuple_fields())
    assert ("OptimSection", "betas", 2) in [(model.__name__, name, n) for model, name, n in fields]
    for model, name, n_items in fields:
        with pytest.raises(RecipeError) as caught:
            validate_data(model, {name: [0.5] * (n_items - 1)}, "r.toml")
        about_it = [line for line in caught.value.problems if line.startswith(f"r.toml: {name}")]
        assert len(about_it) == 1 and f"{name} = {[0.5] * (n_items - 1)}: expected a list of {n_items} " in about_it[0]


def test_an_unreadable_recipe_is_one_line_naming_it_and_the_fix(tmp_path, monkeypatch):
    """``chmod 000 r.toml`` (faked: tests may run as root, who reads anything) printed the bare OSError."""
    recipe = write(tmp_path, "[pack]\n")

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)
    result = CliRunner().invoke(app, ["validate", str(recipe), "--json"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    message = f"{recipe}: cannot be read (Permission denied); make it readable (chmod u+r)"
    assert json.loads(result.stdout)["error"] == message and f"error: {message}" in result.stderr


def test_set_into_a_value_names_the_value_and_how_to_set_it():
    """``--set pack.train.x=1`` said "train is a value", naming neither its section nor what to type instead."""
    with pytest.raises(RecipeError) as raised:
        load_recipe(None, ["pack.train=0.8", "pack.train.x=1"])
    assert raised.value.problems == [
        "--set pack.train.x: pack.train is a value, not a section; set it whole, e.g. --set pack.train=..."
    ]


def test_a_run_s_recipe_json_loads_as_the_recipe_it_records(tmp_path):
    from biofound_cli.recipes.shipped import shipped_recipe

    # Written as training writes it: the whole recipe after --set and the defaults, unset fields as null.
    recipe = load_recipe(Path(shipped_recipe("tinymyo_myo.toml")), ["optim.lr=3e-4"], unset=["model.checkpoint"])
    record = tmp_path / "elsewhere" / "recipe.json"
    record.parent.mkdir()
    record.write_text(json.dumps(recipe.model_dump(mode="json"), indent=2))
    again = load_recipe(record, ["train.epochs=2"])
    assert again.model_dump(mode="json") == recipe.model_dump(mode="json") | {"train": again.train.model_dump(mode="json")}
    assert again.optim.lr == 3e-4 and again.model.checkpoint is None and again.train.epochs == 2
    # Not in a folder of its run's name: its runs_dir is kept as recorded.
    assert again.output.runs_dir == recipe.output.runs_dir


def test_a_run_s_recipe_json_names_the_run_folder_it_is_in_once_the_run_moved(tmp_path):
    record = tmp_path / "copied runs" / "tiny" / "recipe.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"name": "tiny", "output": {"runs_dir": "/cluster/runs", "run_name": None}}))
    assert load_recipe(record).run_dir() == record.parent
    assert load_recipe(record, ["output.runs_dir=/other"]).run_dir() == Path("/other/tiny")  # --set still wins
    renamed = tmp_path / "copied runs" / "tiny" / "old.json"  # a copy under another name keeps what it records
    renamed.write_text(record.read_text())
    assert load_recipe(renamed).run_dir() == Path("/cluster/runs/tiny")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not valid JSON (Expecting property name enclosed in double quotes at line 1)"),
        ("[1, 2]", "holds a JSON list, not a recipe's tables"),
    ],
)
def test_a_json_recipe_that_is_not_a_run_s_record_says_what_to_pass(tmp_path, text, says):
    path = tmp_path / "recipe.json"
    path.write_text(text)
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert caught.value.problems == [
        f"{path}: {says}; pass a .toml recipe, or the recipe.json a training run wrote into its run folder"
    ]
