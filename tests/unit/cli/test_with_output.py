"""``with_output`` (cli/common.py): the one place a command gets --json, --quiet, --no-progress and its exit statuses."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from biofound_cli.cli.common import Output, with_output
from biofound_cli.errors import BiofoundError, ExitStatus

runner = CliRunner()
received: list[Output] = []


@with_output
def greet(
    output: Output,
    name: Annotated[str, typer.Option("--name", help="Who to greet.")] = "world",
    fail: Annotated[bool, typer.Option("--fail", help="Raise a BiofoundError instead.")] = False,
    warn: Annotated[bool, typer.Option("--warn", help="Log a warning first, as the core does.")] = False,
) -> None:
    """Greet someone, as a command of a tiny app."""
    received.append(output)
    if warn:
        logging.getLogger("biofound_cli.greeting").warning(f"{name} may not answer")
    if fail:
        raise BiofoundError(f"cannot greet {name}", status=ExitStatus.PREEMPTED, details={"name": name})
    output.info(f"hello {name}")
    output.summary({"greeted": name}, title="Greeted")


app = typer.Typer(rich_markup_mode="rich")
app.command("greet")(greet)


@app.command("other")
def _other() -> None:
    """A second command, so that the app takes command names."""


@pytest.fixture(autouse=True)
def _fresh():
    received.clear()


def test_help_shows_the_command_s_options_then_the_three_flags():
    result = runner.invoke(app, ["greet", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Greet someone, as a command of a tiny app." in result.stdout
    positions = [result.stdout.index(flag) for flag in ("--name", "--fail", "--json", "--quiet", "--no-progress")]
    assert positions == sorted(positions)
    assert "Output format" in result.stdout and "-q" in result.stdout
    assert "--output" not in result.stdout


def test_json_prints_the_summary_on_stdout_and_the_rest_elsewhere():
    result = runner.invoke(app, ["greet", "--name", "Ada", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"greeted": "Ada"}
    assert received[0].json_summary and not received[0].quiet


def test_quiet_and_no_progress_reach_the_output():
    result = runner.invoke(app, ["greet", "--quiet", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "hello world" not in result.output  # --quiet hides info lines, not the summary
    assert "greeted" in result.output
    assert received[0].quiet and not received[0].live


def test_an_error_is_its_exit_status_and_one_line():
    result = runner.invoke(app, ["greet", "--name", "Bob", "--fail"])
    assert result.exit_code == int(ExitStatus.PREEMPTED)
    assert result.output.strip().splitlines() == ["error: cannot greet Bob"]
    assert "Traceback" not in result.output


def test_an_error_with_json_is_also_one_json_object_on_stdout():
    result = runner.invoke(app, ["greet", "--name", "Bob", "--fail", "--json"])
    assert result.exit_code == int(ExitStatus.PREEMPTED)
    assert json.loads(result.stdout) == {
        "ok": False,
        "exit_status": int(ExitStatus.PREEMPTED),
        "error": "cannot greet Bob",
        "name": "Bob",
    }


@pytest.mark.parametrize("fail", [[], ["--fail"]], ids=["summary", "failure"])
def test_json_repeats_the_warnings_printed_on_the_way(fail):
    """A script reading stdout alone missed them (pack: a class train lacks); the plain run prints them on stderr."""
    result = runner.invoke(app, ["greet", "--name", "Bob", "--warn", "--json", *fail])
    assert result.stderr.count("warning: Bob may not answer") == 1
    assert json.loads(result.stdout)["warnings"] == ["Bob may not answer"]
    assert "warnings" not in json.loads(runner.invoke(app, ["greet", "--json", *fail]).stdout)


def test_the_command_keeps_its_name_and_docstring():
    assert greet.__name__ == "greet"
    assert greet.__doc__ == "Greet someone, as a command of a tiny app."


def test_a_function_whose_first_parameter_is_not_output_is_refused():
    def body(name: str) -> None:
        """Not a command body."""

    with pytest.raises(TypeError, match="first parameter must be `output"):
        with_output(body)
