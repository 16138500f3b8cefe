"""``stop_reported``: the one way a command turns SIGTERM or SIGUSR1 (and, where asked, Ctrl-C) into one line and a status."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from biofound_cli.errors import BiofoundError, ExitStatus
from biofound_cli.store.worker_lifetime import (
    Terminated,
    sigterm_as_interrupt,
    stop_kept_through_a_wait,
    stop_reported,
    stop_unless_all_done,
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


def test_a_stop_the_last_recordings_finished_under_ends_the_quick_start_after_that_stage() -> None:
    """A stage that took SIGTERM as its last recordings finished ends as done; the quick start around it must
    still stop there, not go on to train (losing the stop) until the scheduler's SIGKILL."""
    from biofound_cli.quickstart import _stops_named

    command = "biofound quickstart --out qs"
    with pytest.raises(BiofoundError) as caught:
        with sigterm_as_interrupt(), _stops_named("preprocess", command), stop_reported(CONSEQUENCE):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                signal.pause()
            except KeyboardInterrupt as stop:
                assert stop_unless_all_done(stop, left=0) is None  # the stage's recordings were all done
    assert caught.value.status == ExitStatus.TERMINATED
    assert caught.value.message == f"stopped by SIGTERM during preprocess; the finished stages are kept, continue with: {command}"


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
