from __future__ import annotations

import json
import shlex

from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


def test_models_json_lists_every_variant_with_facts():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["models"]}
    assert list(rows) == [
        "femba-tiny",
        "femba-base",
        "femba-large",
        "femba-huge",
        "luna-base",
        "luna-large",
        "luna-huge",
        "tinymyo",
    ]
    tinymyo = rows["tinymyo"]
    assert tinymyo["parameters"] == 3_567_380
    assert (tinymyo["n_channels"], tinymyo["n_times"], tinymyo["sfreq"]) == (16, 1000, 2000.0)
    assert tinymyo["hub_repo"] == "MatteoFasulo/TinyMyo" and tinymyo["license"] == "CC BY-ND 4.0"
    assert rows["luna-base"]["n_channels"] is None


def test_models_pattern_and_table():
    result = runner.invoke(app, ["models", "tiny*"])
    assert result.exit_code == 0, result.output
    assert "tinymyo" in result.stdout and "3.6M" in result.stdout
    assert "luna" not in result.stdout


def test_models_unknown_pattern_exits_2_without_traceback():
    result = runner.invoke(app, ["models", "gpt*"])
    assert result.exit_code == 2
    assert "no model matches 'gpt*'; known models: femba-tiny" in result.output
    assert "Traceback" not in result.output


def test_the_example_of_models_help_runs():
    # The epilog said `biofound models luna`, which exits 2: a pattern matches whole names.
    command = next(command for command in app.registered_commands if command.name == "models")
    words = shlex.split(command.epilog.removeprefix("Example: "))
    assert words[:2] == ["biofound", "models"]
    result = runner.invoke(app, words[1:])
    assert result.exit_code == 0, result.output
    assert "luna-base" in result.stdout and "femba" not in result.stdout


def test_a_bare_family_name_is_refused_with_the_pattern_that_matches():
    result = runner.invoke(app, ["models", "luna"])
    assert result.exit_code == 2
    assert "no model matches 'luna' (a pattern matches whole names: try 'luna*'); known models:" in result.output


def test_models_ls_lists_them_all_as_recipes_ls_does():
    # `biofound models ls` said "no model matches 'ls'"; `biofound recipes ls` is the sibling users know.
    listed = runner.invoke(app, ["models", "ls", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == json.loads(runner.invoke(app, ["models", "--json"]).stdout)
    assert "ls lists them all" in runner.invoke(app, ["models", "--help"], env={"COLUMNS": "200"}).stdout


def test_the_variant_table_of_models_md_says_what_biofound_models_says():
    """docs/models.md restates the registry (sizes, input, rate, weights): a changed variant fails here, not for a reader."""
    from pathlib import Path

    from biofound_cli.models.registry import VARIANTS

    page = (Path(__file__).resolve().parents[3] / "docs" / "models.md").read_text(encoding="utf-8")
    cells = [line.strip("|").split("|") for line in page.splitlines() if line.startswith("| `")]
    documented = {cell[0].strip().strip("`"): [part.strip() for part in cell[1:]] for cell in cells}
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["models"]}
    assert list(documented) == list(rows)
    repo = ""
    for name, (family, parameters, geometry, rate, weights) in documented.items():
        row = rows[name]
        repo = weights.split("`")[1] if weights != "〃" else repo  # 〃: the row above's repository
        channels, samples = (part.split()[0] for part in geometry.split(" × "))
        documented_facts = (family, parameters, channels, int(samples), float(rate.replace("2 kHz", "2000").split()[0]), repo)
        registry_facts = (
            row["family"],
            f"{row['parameters'] / 1e6:.1f} M",
            str(row["n_channels"] or "any"),
            row["n_times"],
            row["sfreq"],
            row["hub_repo"],
        )
        assert documented_facts == registry_facts, name
        if weights != "〃":
            assert f"mirror `{VARIANTS[name].hub_mirrors[0]}`" in weights, name


def test_the_weights_table_of_download_md_says_what_the_registry_says():
    """download.md lists each family's sizes (default first), hub tasks and repositories: held to the registry."""
    from pathlib import Path

    from biofound_cli.models.registry import FAMILIES, VARIANTS

    page = (Path(__file__).resolve().parents[3] / "docs" / "download.md").read_text(encoding="utf-8")
    table = page.split("## Weights", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in table.splitlines() if line.startswith("| `")]
    documented = {cells[0].strip().strip("`"): [cell.strip() for cell in cells[1:]] for cells in rows}
    assert list(documented) == list(FAMILIES)
    for key, (sizes, tasks, repositories) in documented.items():
        family = FAMILIES[key]
        variants = [variant for variant in VARIANTS.values() if variant.family == key]
        default = VARIANTS[family.default_variant]
        names = [default.name, *(variant.name for variant in variants if variant is not default)]
        assert [f"{key}-{size}" if size != key else size for size in sizes.split(", ")] == names, key
        assert tasks.split(", ") == list(family.hub_task_folders.values()), key
        assert repositories.replace("`", "").split(", ") == [default.hub_repo, *default.hub_mirrors], key
