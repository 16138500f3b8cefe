"""The core's log records reach the user as the Output's own lines, for one command only."""

from __future__ import annotations

import logging

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
    from biofound_cli.training.run import _warnings_only

    with forward_logs(Output(progress=False)):
        with _warnings_only(True):
            core.info("rank 0 says this")
            core.warning("my own problem")
        core.info("back to normal")
    captured = capsys.readouterr()
    assert captured.out == "back to normal\n" and captured.err == "warning: my own problem\n"


def test_the_output_and_the_silent_default_are_progress_reporters():
    reporters: list[ProgressReporter] = [NO_PROGRESS, Output(progress=False, quiet=True)]
    for reporter in reporters:
        with reporter.task(3, "work", unit="files") as task:
            task.advance(2)
            task.set_description("more work")
            task.advance()
