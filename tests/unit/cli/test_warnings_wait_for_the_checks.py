"""What loading a recipe warns of is said once the stage's checks pass: a refused recipe prints its refusal alone.

``biofound finetune R --set preprocess.window_seconds=1 --set data.train=/nonexistent.h5`` printed the
warning that finetune does not read ``[preprocess]`` and then the refusal, as if the run went on
with a setting that had no effect; only ``validate`` and the preprocess check held their warnings.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus

runner = CliRunner()

RECIPE = (
    "[data]\ntrain = 'packed/train.h5'\ntest = 'packed/test.h5'\n[model]\nvariant = 'tinymyo'\n"
    "[export]\ncheckpoint = 'ckpt/model.safetensors'\nout = 'export'\nformats = ['safetensors']\n"
)
WARNING = "warning: --set pack.seed=3: {stage} does not read [pack], so it has no effect here"

# Each stage: its command, what its check refuses, and what mends it (its work then stops on a file
# that is not whole, or a run that has no checkpoint, after the warning).
CASES = {
    "finetune": (["finetune", "r.toml"], [], ["packed/train.h5"]),
    "evaluate": (
        ["evaluate", "r.toml"],
        ["--set", "model.overrides.bogus=1"],
        ["packed/test.h5", "runs/tinymyo-finetune/checkpoints/best/model.safetensors"],
    ),
    "export": (["export", "--recipe", "r.toml"], [], ["ckpt/model.safetensors"]),
}


def _run(tmp_path, monkeypatch, command: list[str], *options: str):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.toml").write_text(RECIPE)
    result = runner.invoke(app, [*command, "--set", "pack.seed=3", *options, "--no-progress"])
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("stage", sorted(CASES))
def test_a_refused_recipe_prints_its_refusal_and_no_warning_before_it(stage, tmp_path, monkeypatch):
    command, refused, _ = CASES[stage]
    result = _run(tmp_path, monkeypatch, command, *refused)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert [line.split(": ", 1)[0] for line in result.stderr.splitlines()] == ["error"], result.output


@pytest.mark.parametrize("stage", sorted(CASES))
def test_the_recipe_mended_says_its_warning_once(stage, tmp_path, monkeypatch):
    command, _, missing = CASES[stage]
    for name in missing:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()  # there, so the check passes; empty, so the work stops on it
    result = _run(tmp_path, monkeypatch, command)
    assert result.exit_code != ExitStatus.OK, result.output
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("warning:")] == [
        WARNING.format(stage=stage) + "; give it to pack, which reads it"
    ], result.output
    assert lines[-1].startswith("error: "), result.output
