from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from biofound_cli import __version__
from biofound_cli.cli.app import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"biofound {__version__}"


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "validate" in result.stdout


def test_help_does_not_import_torch_or_mne():
    code = (
        "import sys\n"
        "from biofound_cli.cli.app import app\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(app, ['--help'])\n"
        "print(sorted(m for m in ('torch', 'mne', 'h5py') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_dash_m_runs():
    out = subprocess.run([sys.executable, "-m", "biofound_cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert __version__ in out.stdout


def test_validate_good_recipe_json(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[preprocess]\ncorpus = 'tuab'\n")
    result = runner.invoke(app, ["validate", str(path), "--json"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["valid"] is True
    assert summary["sections"] == ["preprocess"]


def test_validate_bad_recipe_exits_2_without_traceback(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[preprocess]\nworkers = 'sixty'\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert 'preprocess.workers = "sixty": expected a whole number' in result.output
    assert "Traceback" not in result.output


def _leaf_commands(command, prefix=()):
    """``(words, click command)`` of every command a user can run, sub-commands included."""
    if hasattr(command, "commands"):
        for name, child in command.commands.items():
            yield from _leaf_commands(child, (*prefix, name))
    else:
        yield prefix, command


def test_every_command_takes_json_quiet_and_no_progress():
    # README.md and docs/inspect.md promise it for every command.
    import typer

    missing = {}
    for words, command in _leaf_commands(typer.main.get_command(app)):
        declared = {option for param in command.params for option in param.opts}
        lacking = {"--json", "--quiet", "--no-progress"} - declared
        if lacking:
            missing[" ".join(words)] = sorted(lacking)
    assert not missing, f"commands without the shared flags (biofound_cli/cli/common.py has them): {missing}"


def test_shared_flags_work_on_the_inspection_commands():
    for args in (["models", "tinymyo"], ["env"], ["recipes", "ls"], ["recipes", "show", "luna_scp1"]):
        result = runner.invoke(app, [*args, "--json", "--quiet", "--no-progress"])
        assert result.exit_code == 0, result.output
        json.loads(result.stdout)


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        (["models", "ls", "luna"], "Got unexpected extra argument(s) (luna)"),
        (["recipes", "ls", "luna"], "Got unexpected extra argument(s) (luna)"),
        (["recipes", "show"], "Missing argument 'NAME'"),
        (["pack", "--bogus"], "No such option: --bogus"),
        (["bogus"], "No such command 'bogus'"),
    ],
)
def test_a_parse_error_is_one_error_line_like_every_other_bad_input(words, problem):
    """``biofound models ls luna`` printed a usage block and ``Error:``, where every other bad input is one line."""
    run = subprocess.run([sys.executable, "-m", "biofound_cli", *words], capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {problem}"), run.stderr
    assert "--help` (usage: " in lines[0] and "[OPTIONS]" in lines[0]
