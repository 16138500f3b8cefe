"""A ``--set`` of a section the running command does not read warns that it has no effect.

``biofound pack --recipe R --set optim.lr=1e-3`` (every command's help gave ``optim.lr=1e-4`` as
its example) packed as if nothing were said: the user believed the rate was set. A recipe FILE may
hold sections for every stage; only the options typed on this command line are warned about.
"""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.recipes import load_recipe
from biofound_cli.recipes.loading import remove_field
from biofound_cli.recipes.schema import STAGE_SECTIONS, Recipe

runner = CliRunner()

# Each stage with a recipe of its own sections (its work then stops on a file that is not there or
# is empty, or on nothing to fetch) and a section it does not read. The files its check looks for are
# there (:data:`CHECKED_FILES`): a refused recipe prints its refusal alone.
CASES = {
    "download": ("[model]\nvariant = 'tinymyo'\n", "optim.lr=1e-3", "[optim]", "pretrain and finetune"),
    "preprocess": ("[preprocess]\ncorpus = 'emg-csv'\nroot = 'raw'\nout = 'shards'\n", "pack.seed=3", "[pack]", "pack"),
    "pack": ("[pack]\nshards = 'shards'\nout = 'packed'\n", "optim.lr=1e-3", "[optim]", "pretrain and finetune"),
    "pretrain": (
        "[data]\ntrain = 'packed/train.h5'\n[model]\nvariant = 'tinymyo'\n",
        "pack.seed=3",
        "[pack]",
        "pack",
    ),
    "finetune": (
        "[data]\ntrain = 'packed/train.h5'\n[model]\nvariant = 'tinymyo'\n",
        "export.opset=18",
        "[export]",
        "export",
    ),
    "evaluate": (
        "[data]\ntest = 'packed/test.h5'\n[model]\nvariant = 'tinymyo'\n",
        "optim.lr=1e-3",
        "[optim]",
        "pretrain and finetune",
    ),
    "export": (
        "[model]\nvariant = 'tinymyo'\n[export]\ncheckpoint = 'runs/x/model.safetensors'\nout = 'export'\n",
        "preprocess.sfreq=200",
        "[preprocess]",
        "preprocess",
    ),
}

# Folders end in "/"; an empty file passes the check, and the work stops on it.
CHECKED_FILES = {
    "preprocess": ["raw/"],
    "pack": ["shards/"],
    "pretrain": ["packed/train.h5"],
    "finetune": ["packed/train.h5"],
    "evaluate": ["packed/test.h5", "runs/tinymyo-finetune/checkpoints/best/model.safetensors"],
    "export": ["runs/x/model.safetensors"],
}


def _command(stage: str, recipe: str) -> list[str]:
    return [stage, recipe] if stage in ("pretrain", "finetune", "evaluate") else [stage, "--recipe", recipe]


def test_every_stage_is_tried():
    assert set(CASES) == set(STAGE_SECTIONS)


@pytest.mark.parametrize("stage", sorted(CASES))
def test_a_set_of_a_section_the_stage_does_not_read_is_one_warning(stage, tmp_path, monkeypatch):
    text, setting, section, readers = CASES[stage]
    monkeypatch.chdir(tmp_path)
    # The file holds [output], which download, preprocess and pack do not read: no warning for it, only for the option.
    (tmp_path / "r.toml").write_text("[output]\nruns_dir = 'runs'\n" + text)
    for name in CHECKED_FILES.get(stage, []):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).mkdir() if name.endswith("/") else (tmp_path / name).touch()
    result = runner.invoke(app, [*_command(stage, "r.toml"), "--set", setting, "--no-progress"])
    warnings = [line for line in result.output.splitlines() if "does not read" in line]
    assert warnings == [
        f"warning: --set {setting}: {stage} does not read {section}, so it has no effect here; "
        f"give it to {readers}, which read{'' if ' and ' in readers else 's'} it"
    ], result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("stage", "refusal"),
    [
        ("preprocess", "error: r.toml: preprocess.root = 'raw' is not a folder; give the folder holding the raw emg-csv"),
        ("pack", "error: shards: shard folder not found; pass the --out folder of `biofound preprocess`"),
        ("evaluate", "error: packed/test.h5: packed file not found; run `biofound pack"),
        ("evaluate", "error: runs/tinymyo-finetune/checkpoints/best/model.safetensors: the run has no best checkpoint yet"),
    ],
)
def test_a_missing_input_is_refused_before_the_warnings_and_alone(stage, refusal, tmp_path, monkeypatch):
    """The folder or file a stage reads not being there is a fact about the recipe: its refusal came from the
    work, after the warning that the ``--set`` had no effect, as if the run went on (held28 held them for the checks)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.toml").write_text("[output]\nruns_dir = 'runs'\n" + CASES[stage][0])
    if "checkpoint" not in refusal:  # the split alone is missing
        for name in CHECKED_FILES.get(stage, [])[1:]:
            (tmp_path / name).parent.mkdir(parents=True)
            (tmp_path / name).touch()
    result = runner.invoke(app, [*_command(stage, "r.toml"), "--set", CASES[stage][1], "--no-progress"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(refusal) and len(result.output.splitlines()) == 1, result.output


@pytest.mark.parametrize("stage", ["pack", "finetune"])
def test_a_set_of_a_section_the_stage_reads_says_nothing(stage, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.toml").write_text(CASES[stage][0] + "[optim]\nlr = 1e-3\n")
    setting = "pack.seed=3" if stage == "pack" else "optim.lr=1e-4"
    result = runner.invoke(app, [*_command(stage, "r.toml"), "--set", setting, "--no-progress"])
    assert "does not read" not in result.output and "Traceback" not in result.output


def test_an_unset_of_a_section_not_read_warns_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.toml").write_text(CASES["pack"][0] + "[model]\ncheckpoint = 'w.safetensors'\n")
    (tmp_path / "shards").mkdir()  # the check passes; the work finds no shard
    result = runner.invoke(app, ["pack", "--recipe", "r.toml", "--unset", "model.checkpoint", "--no-progress"])
    assert "warning: --unset model.checkpoint: pack does not read [model]" in result.output, result.output


def test_validate_reads_every_section():
    result = runner.invoke(app, ["validate", "/dev/null", "--set", "optim.lr=1e-4", "--set", "pack.seed=3"])
    assert "does not read" not in result.output


def test_download_without_a_recipe_refuses_set_instead_of_ignoring_it():
    result = runner.invoke(app, ["download", "luna", "--set", "download.variant=large"])
    assert result.exit_code == 2, result.output
    assert "error: --set download.variant=large: download reads --set and --unset only with --recipe" in result.output


def _option_help(stage: str, option: str) -> str:
    import typer.main

    command = typer.main.get_command(app).commands[stage]  # type: ignore[attr-defined]
    return next(param.help for param in command.params if option in getattr(param, "opts", ()))


@pytest.mark.parametrize("stage", sorted(STAGE_SECTIONS))
def test_the_help_examples_name_a_field_the_command_reads(stage):
    """Every help said ``--set optim.lr=1e-4``, a field pack, preprocess, export and download never read."""
    setting = re.search(r"e\.g\. --set (\S+)\.$", _option_help(stage, "--set")).group(1)
    unsetting = re.search(r"e\.g\. --unset (\S+)\.$", _option_help(stage, "--unset")).group(1)
    for example in (setting, unsetting):
        assert example.split(".")[0] in STAGE_SECTIONS[stage], (stage, example)
    load_recipe(None, [setting])  # a real field, a valid value
    remove_field({}, unsetting, Recipe)
