"""Every command's ``--help``: options grouped in panels, flags shown as flags, one example."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import COMMANDS as REGISTERED
from biofound_cli.cli.app import app

runner = CliRunner()
COMMANDS = [
    ["quickstart"],
    ["download"],
    ["preprocess"],
    ["pack"],
    ["pretrain"],
    ["finetune"],
    ["evaluate"],
    ["export"],
    ["predict"],
    ["models"],
    ["recipes", "ls"],
    ["recipes", "show"],
    ["recipes", "cp"],
    ["info"],
    ["validate"],
    ["env"],
]


def help_text(command: list[str]) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "160", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_list_covers_every_registered_command():
    listed = {command[0] for command in COMMANDS}
    assert listed >= {*REGISTERED, "recipes"}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_groups_options_shows_flags_as_flags_and_gives_an_example(command):
    text = help_text(command)
    assert "<bool>" not in text  # `--json <bool>` read as if it took a value
    assert "Example: " in text and ("biofound " in text.split("Example: ", 1)[1] or "torchrun" in text)
    assert "Output format" in text and "--json" in text.split("Output format", 1)[1]


def test_a_stage_groups_its_options_by_what_they_are_for():
    text = help_text(["preprocess"])
    for panel, option in [("Input and output", "--root"), ("Run control", "--workers"), ("Recipe", "--set")]:
        assert panel in text and option in text.split(panel, 1)[1].split("╰", 1)[0], (panel, option)


def test_a_flag_given_a_value_is_refused_in_one_line():
    result = runner.invoke(app, ["validate", "--json", "true"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_json_given_a_value_is_refused_as_one_json_object():
    """``--json=true`` asked for JSON too: stdout was empty, so ``| jq .exit_status`` failed."""
    import json
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "biofound_cli", "validate", "--json=true", "r.toml"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert json.loads(run.stdout)["error"].startswith("Option '--json' does not take a value; see `")


def _click_command(command: list[str]):
    import typer.main

    found = typer.main.get_command(app)
    for name in command:
        found = found.commands[name]  # type: ignore[attr-defined]
    return found


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_no_bracketed_word_is_eaten_as_rich_markup(command):
    """``[data]`` in a help string is a rich markup tag unless escaped (``\\[data]``): rich drops it."""
    from rich.text import Text

    found = _click_command(command)
    texts = [found.help or "", found.epilog or ""] + [getattr(param, "help", None) or "" for param in found.params]
    for text in texts:
        assert Text.from_markup(text).plain.count("[") == text.count("["), text


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_usage_line_names_arguments_in_capitals(command):
    """``{recipe}`` (Typer 0.29's spelling) was copied with its braces; click's RECIPE / [SHARDS] is not."""
    usage = next(line for line in help_text(command).splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    arguments = [word.strip("[].") for word in usage.split("[OPTIONS]", 1)[1].split()]
    assert all(word.isupper() for word in arguments), usage


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_the_arguments_panel_names_arguments_as_the_usage_line_does(command):
    """``Usage: ... RECIPE`` above an Arguments panel listing ``recipe`` read as two different things."""
    text = help_text(command)
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    in_usage = [word.strip("[].") for word in usage.split("[OPTIONS]", 1)[1].split()]
    panel = text.split("Arguments", 1)[1].split("╰", 1)[0] if "─ Arguments" in text else ""
    # A name starts within the first few columns; a help text's wrapped line starts far to the right.
    names = [row.lstrip("│")[:8].strip(" *") for row in panel.splitlines()[1:]]
    in_panel = [
        row.lstrip("│").strip(" *").split()[0].rstrip(".")
        for row, name in zip(panel.splitlines()[1:], names, strict=True)
        if name
    ]
    assert in_panel == in_usage, (in_panel, usage)


@pytest.mark.parametrize(("command", "missing"), [(["validate"], "RECIPE"), (["recipes", "cp", "luna_tuab"], "DEST")])
@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["plain", "json"])
def test_a_missing_argument_is_named_as_the_usage_line_names_it(command, missing, json_flag):
    """``Missing argument 'recipe'`` under ``Usage: ... RECIPE`` read as two different things."""
    import json
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "biofound_cli", *command, *json_flag], capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert f"Missing argument '{missing}'" in run.stderr
    assert f"'{missing.lower()}'" not in run.stderr + run.stdout
    if json_flag:
        assert json.loads(run.stdout)["error"].startswith(f"Missing argument '{missing}'; see `")
    else:
        assert f"[OPTIONS] {'NAME ' if missing == 'DEST' else ''}{missing}" in run.stderr


def test_download_help_names_every_target_and_task_the_command_takes():
    """The TARGET and --task lists are written out in the help: a model, data set or task added elsewhere fails here."""
    from biofound_cli.dataset_download import OPEN_DATASETS, TUH_CORPORA
    from biofound_cli.models.registry import FAMILIES

    found = _click_command(["download"])
    helps = {param.name: getattr(param, "help", "") for param in found.params}
    targets = {word.strip(".,") for word in helps["target"].replace(":", " ").split()}
    assert {*FAMILIES, *OPEN_DATASETS, *TUH_CORPORA} <= targets, helps["target"]
    tasks = {word.strip(".,") for word in helps["task"].replace(":", " ").split()}
    published = {folder for family in FAMILIES.values() for folder in family.hub_task_folders.values()}
    assert published <= tasks, helps["task"]


PANEL_ORDER = ["Input and output", "Run control", "Recipe", "Output format"]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_option_panels_come_in_one_order_in_every_command(command):
    """export listed Recipe first and predict put it before Run control: each help was laid out its own way."""
    text = help_text(command)
    shown = [panel for panel in PANEL_ORDER if f"─ {panel} " in text]
    assert sorted(shown, key=lambda panel: text.index(f"─ {panel} ")) == shown, text


def test_an_option_of_a_few_values_shows_them_as_the_code_lists_them():
    """``--format <list[str]>``, ``--precision <str>``: the values were in the help text only; one list decides them."""
    from biofound_cli.export import FORMATS, QUANTIZE_SCHEMES
    from biofound_cli.prediction.model import PRECISIONS
    from biofound_cli.prediction.outputs import FORMATS as TABLE_FORMATS
    from biofound_cli.store.splits import SPLITS

    expected = {
        ("evaluate", "--split"): SPLITS,
        ("export", "--format"): FORMATS,
        ("export", "--quantize"): QUANTIZE_SCHEMES,
        ("predict", "--format"): TABLE_FORMATS,
        ("predict", "--precision"): PRECISIONS,
    }
    for (command, flag), values in expected.items():
        option = next(param for param in _click_command([command]).params if flag in param.opts)
        assert option.metavar == "|".join(values), (command, flag)


def test_predict_md_synopsis_names_every_option_with_the_values_its_help_shows():
    """predict.md said ``--device cpu|cuda`` where the help took ``cuda:N`` too: the two lists were kept apart."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[3] / "docs" / "predict.md").read_text(encoding="utf-8")
    synopsis = " ".join(re.search(r"```text\n(biofound predict .*?)```", page, re.S).group(1).split())
    written = dict(re.findall(r"(--[a-z-]+)(?: ([^\s\]-][^\s\]]*))?", synopsis))
    options = [param for param in _click_command(["predict"]).params if param.opts[0].startswith("--")]
    assert {param.opts[0] for param in options} - {"--help"} == set(written), synopsis
    for option in options:
        value = written.get(option.opts[0], "")
        if option.is_flag:
            assert not value, (option.opts[0], synopsis)
        elif "|" in (option.metavar or "") or "|" in value:
            assert value == option.metavar, (option.opts[0], value, option.metavar)


def test_the_predict_example_runs_where_the_evaluate_example_trained():
    # predict's example named runs/tinymyo-myo and "recordings/*.csv", folders nothing writes: the tinymyo_myo recipe
    # (evaluate's example) trains into its output.runs_dir, and its raw test recordings are the bundled repetition 3.
    from pathlib import Path

    from biofound_cli.recipes.loading import load_recipe
    from biofound_cli.recipes.shipped import shipped_recipe

    repo = Path(__file__).resolve().parents[3]
    recipe = load_recipe(Path(shipped_recipe("tinymyo_myo")))
    example = " ".join(help_text(["predict"]).split("Example: ", 1)[1].split())
    model, recordings = example.split()[2:4]
    assert Path(model) == recipe.run_dir() / "checkpoints" / "best"
    assert sorted(repo.glob(recordings.strip('"'))), f"the example's recordings {recordings} name no file"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_names_the_exit_statuses_the_command_may_end_with(command):
    """``finetune --help`` said nothing of 75, the status a preempted run ends with, which a requeue script acts on;
    only ``preprocess`` and ``predict`` listed theirs, by hand. Each command's ``--help`` now gives its row of
    ``COMMAND_STATUSES``, the one table ``docs/exit-status.md`` is held to (journey31b); ``recipes ls``, ``show``
    and ``cp`` gave none, their group's row (docs31)."""
    from biofound_cli.errors import COMMAND_STATUSES

    text = " ".join(help_text(command).replace("│", " ").split())
    assert "Exit status: " in text, text
    line = text.split("Exit status: ", 1)[1].split("docs/exit-status.md", 1)[0]
    named = {int(word) for word in line.replace(",", " ").split() if word.isdigit()}
    assert named == {int(status) for status in COMMAND_STATUSES[command[0]]}, line
    assert text.count("Exit status") == 1, text


@pytest.mark.parametrize(
    ("module", "command", "option", "section", "field", "said"),
    [
        ("pack", "pack", "seed", "biofound_cli.recipes.pack:PackSection", "seed", "recipe default: 7)"),
        ("preprocess", "preprocess", "workers", "biofound_cli.recipes.preprocess:PreprocessSection", "workers", "default 7)"),
        ("export", "export", "tolerance", "biofound_cli.recipes.export:ExportSection", "tolerance", "default 7)"),
        ("export", "export", "opset", "biofound_cli.recipes.export:ExportSection", "opset", "default 7)"),
    ],
)
def test_a_default_the_help_states_is_the_recipe_fields(monkeypatch, module, command, option, section, field, said):
    """``--seed``, ``--workers``, ``--tolerance`` and ``--opset`` wrote their recipe field's default by hand
    (``recipe default: 42``): the help is read from the field, so a new default cannot leave it behind (docs31)."""
    import importlib
    import typing

    section_module, section_name = section.split(":")
    fields = getattr(importlib.import_module(section_module), section_name).model_fields
    cli_module = importlib.import_module(f"biofound_cli.cli.{module}")
    monkeypatch.setattr(fields[field], "default", 7)
    try:
        reloaded = importlib.reload(cli_module)
        hints = typing.get_type_hints(getattr(reloaded, command), include_extras=True)
        assert said in hints[option].__metadata__[0].help
    finally:
        monkeypatch.undo()
        importlib.reload(cli_module)
