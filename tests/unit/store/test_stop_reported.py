"""``stop_reported``: the one way a command turns SIGTERM or SIGUSR1 (and, where asked, Ctrl-C) into one line and a status."""

from __future__ import annotations

import logging
import os
import signal
import threading

import pytest

from biofound_cli.errors import BiofoundError, ExitStatus
from biofound_cli.store.worker_lifetime import (
    Terminated,
    sigterm_as_interrupt,
    sigterm_noted,
    stop_kept_through_a_wait,
    stop_reported,
    stops_settled,
)

CONSEQUENCE = "; finished files are kept, so re-run the same command"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_terminating_signal_is_status_143_with_its_name_and_the_consequence(signum) -> None:
    """SIGUSR1 (``sbatch --signal=USR1@N``) killed every command but training with status -10 and no line."""
    with pytest.raises(BiofoundError) as caught:
        with stop_reported(CONSEQUENCE):
            os.kill(os.getpid(), signum)
            signal.pause()  # the handler raises before this returns
    assert caught.value.status == ExitStatus.TERMINATED
    assert caught.value.message == f"stopped by {signal.Signals(signum).name}" + CONSEQUENCE


def test_ctrl_c_is_status_130_when_asked_and_passed_on_otherwise() -> None:
    with pytest.raises(BiofoundError) as caught:
        with stop_reported(CONSEQUENCE, ctrl_c=True):
            raise KeyboardInterrupt
    assert caught.value.status == ExitStatus.INTERRUPTED
    assert caught.value.message == "stopped by Ctrl-C" + CONSEQUENCE
    with pytest.raises(KeyboardInterrupt):
        with stop_reported(CONSEQUENCE):
            raise KeyboardInterrupt


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_the_handler_is_restored_after_a_run_that_was_not_stopped(signum) -> None:
    before = signal.getsignal(signum)
    with stop_reported(CONSEQUENCE):
        assert signal.getsignal(signum) is not before
    assert signal.getsignal(signum) is before


def test_the_handler_only_notes_a_stop_the_done_work_finished_under_and_the_warning_comes_once_after(caplog) -> None:
    """The handler logged the dropped stop's warning itself, inside the signal handler, where the main thread may
    be half-way through logging or writing the report. It now notes the stop; the block ends, then warns once."""
    with caplog.at_level(logging.WARNING), sigterm_noted(left=lambda: 0):  # the recordings all done, the report written
        signal.raise_signal(signal.SIGTERM)  # its handler runs before this returns
        signal.raise_signal(signal.SIGUSR1)  # one stop is one request: not a second warning
        assert caplog.records == []
    assert [record.getMessage() for record in caplog.records] == ["SIGTERM came as the work finished: it is complete"]


def test_a_stop_the_work_finished_under_stays_the_command_s_and_stops_what_starts_next() -> None:
    """The quick start's stage after one that took a stop as its last recordings finished; not the one itself."""
    with pytest.raises(Terminated, match="SIGTERM"), sigterm_as_interrupt():  # the quick start
        with sigterm_noted(left=lambda: 0):
            signal.raise_signal(signal.SIGTERM)
        with sigterm_as_interrupt():  # its next stage
            pytest.fail("the next stage started")


def test_a_stop_as_a_failing_run_writes_its_report_leaves_its_error() -> None:
    """A stop while a run that failed (a full disk) wrote its report cut the report short and took the error's place."""
    written = []
    with pytest.raises(BaseException) as raised, sigterm_noted(left=lambda: 3):  # a Terminated here must not end pytest
        try:
            with sigterm_as_interrupt():  # the work
                raise OSError(28, "No space left on device")
        finally:
            signal.raise_signal(signal.SIGTERM)
            written.append("the report")
    assert isinstance(raised.value, OSError) and written == ["the report"]


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), Terminated("SIGTERM")], ids=["Ctrl-C", "SIGTERM"])
def test_a_stop_as_a_wait_retakes_its_lock_comes_out_as_the_stop(stop):
    # What CPython's Condition.wait does when the stop's handler runs as the wait re-takes its lock:
    # the `with` around it releases a lock it no longer holds, and RuntimeError took the stop's place
    # (preprocess stopped with Ctrl-C printed a traceback, status 1).
    condition = threading.Condition()
    with pytest.raises(KeyboardInterrupt) as raised, stop_kept_through_a_wait():
        with condition:
            condition.release()
            raise stop
    assert raised.value is stop


def test_a_runtime_error_without_a_stop_goes_on():
    with pytest.raises(RuntimeError, match="other"), stop_kept_through_a_wait():
        raise RuntimeError("other")


def test_a_stop_once_a_stage_is_settled_stops_the_next_stage_as_it_starts() -> None:
    """The quick start's stages share one stop: a SIGTERM as evaluate's report moves in lets evaluate finish,
    and the next stage (export) stops as it starts rather than running on."""
    finished = []
    with pytest.raises(Terminated), sigterm_as_interrupt():
        with sigterm_as_interrupt():  # evaluate
            with stops_settled():
                os.kill(os.getpid(), signal.SIGTERM)
            finished.append("evaluate")
        with sigterm_as_interrupt():  # export
            finished.append("export")
    assert finished == ["evaluate"]
