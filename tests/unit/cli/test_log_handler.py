"""The core's log records reach the user as the Output's own lines, for one command only."""

from __future__ import annotations

import logging

import pytest

from biofound_cli.cli.log_handler import OutputHandler, forward_logs
from biofound_cli.output import Output
from biofound_cli.progress import NO_PROGRESS, ProgressReporter

core = logging.getLogger("biofound_cli.store.preprocess")


def test_levels_go_to_the_streams_and_prefixes_of_the_output(capsys):
    with forward_logs(Output(progress=False)):
        core.debug("not shown")
        core.info("found 3 recordings")
        core.warning("skipped (flat): a.edf")
        core.error("gave up")
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["found 3 recordings"]
    assert captured.err.splitlines() == ["warning: skipped (flat): a.edf", "error: gave up"]


def test_quiet_keeps_warnings_and_errors_only(capsys):
    with forward_logs(Output(quiet=True, progress=False)) as handler:
        assert handler.level == logging.WARNING
        core.info("hidden")
        core.warning("careful")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == ["warning: careful"]


def test_the_handler_is_removed_and_the_logger_restored_when_the_command_ends(capsys):
    package = logging.getLogger("biofound_cli")
    before = package.level, package.propagate, list(package.handlers)
    try:
        with forward_logs(Output(progress=False)):
            assert any(isinstance(h, OutputHandler) for h in package.handlers)
            raise KeyError("the command failed")
    except KeyError:
        pass
    assert (package.level, package.propagate, list(package.handlers)) == before
    core.info("after the command")
    assert "after the command" not in capsys.readouterr().out


def test_run_command_routes_the_core_s_records_while_the_work_runs(capsys):
    from biofound_cli.cli.common import run_command

    def work() -> str:
        core.info("3 recordings found")
        core.warning("skipped (flat): a.edf")
        return "done"

    assert run_command(Output(progress=False), work) == "done"
    captured = capsys.readouterr()
    assert captured.out == "3 recordings found\n" and captured.err == "warning: skipped (flat): a.edf\n"
    assert not any(isinstance(h, OutputHandler) for h in logging.getLogger("biofound_cli").handlers)


def test_a_non_main_rank_logs_warnings_only(capsys):
    from biofound_cli.training.distributed import logging_at_least

    with forward_logs(Output(progress=False)):
        with logging_at_least(logging.WARNING, True):
            core.info("rank 0 says this")
            core.warning("my own problem")
        core.info("back to normal")
    captured = capsys.readouterr()
    assert captured.out == "back to normal\n" and captured.err == "warning: my own problem\n"


@pytest.mark.parametrize("rank", ["0", "1"])
def test_work_every_rank_does_alike_warns_on_rank_zero_only(capsys, monkeypatch, rank):
    from biofound_cli.training.distributed import warned_by_rank_zero

    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with forward_logs(Output(progress=False)):
        with warned_by_rank_zero():
            core.warning("model.finetune = 'lora' trains adapters on random weights")
        core.warning("my own problem")
    shown = capsys.readouterr().err.splitlines()
    expected = ["warning: model.finetune = 'lora' trains adapters on random weights"] if rank == "0" else []
    assert shown == [*expected, "warning: my own problem"]


def test_the_output_and_the_silent_default_are_progress_reporters():
    reporters: list[ProgressReporter] = [NO_PROGRESS, Output(progress=False, quiet=True)]
    for reporter in reporters:
        with reporter.task(3, "work", unit="files") as task:
            task.advance(2)
            task.set_description("more work")
            task.advance()


def test_a_python_warning_is_one_warning_line_and_the_hook_is_restored(capsys):
    import warnings

    shown, heard = warnings.showwarning, logging.getLogger("py.warnings")
    before = heard.level, heard.propagate, list(heard.handlers)
    output = Output(progress=False)
    with forward_logs(output), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library says so\nacross two lines", UserWarning, stacklevel=1)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: a library says so across two lines (UserWarning in test_log_handler.py:")
    assert output.warnings == [line.removeprefix("warning: ")]
    assert warnings.showwarning is shown and (heard.level, heard.propagate, list(heard.handlers)) == before


# A library's warning raised in the main process while a stage runs (here, while validate checks training).
WARNS_WHILE_CHECKING = """
import sys, warnings
import biofound_cli.training.setup as setup

checked = setup.check_training

def check_training(*args):
    warnings.warn("this library is deprecated", DeprecationWarning)
    return checked(*args)

setup.check_training = check_training
from biofound_cli.cli.app import main

sys.argv = ["biofound", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_python_warning_in_the_main_process_is_one_warning_line_off_a_terminal(tmp_path, json_flag):
    """Python printed ``/path/setup.py:12: DeprecationWarning: ...`` and the source line, as two raw lines."""
    import json
    import subprocess
    import sys

    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\ntrain = "train.h5"\n[model]\nvariant = "luna-base"\n[train]\ndevice = "cpu"\n')
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", WARNS_WHILE_CHECKING, "validate", str(recipe), *json_flag],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    message = "this library is deprecated (DeprecationWarning in <string>:"
    assert [line[: len("warning: ") + len(message)] for line in done.stderr.splitlines()] == [f"warning: {message}"]
    if json_flag:
        [warned] = json.loads(done.stdout)["warnings"]
        assert warned.startswith(message)
