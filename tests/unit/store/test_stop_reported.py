"""``stop_reported``: the one way a command turns SIGTERM (and, where asked, Ctrl-C) into one line and a status."""

from __future__ import annotations

import os
import signal

import pytest

from biofound_cli.errors import BiofoundError, ExitStatus
from biofound_cli.store.worker_lifetime import stop_reported

CONSEQUENCE = "; finished files are kept, so re-run the same command"


def test_sigterm_is_status_143_with_the_consequence() -> None:
    with pytest.raises(BiofoundError) as caught:
        with stop_reported(CONSEQUENCE):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pause()  # the handler raises before this returns
    assert caught.value.status == ExitStatus.TERMINATED
    assert caught.value.message == "stopped by SIGTERM" + CONSEQUENCE


def test_ctrl_c_is_status_130_when_asked_and_passed_on_otherwise() -> None:
    with pytest.raises(BiofoundError) as caught:
        with stop_reported(CONSEQUENCE, ctrl_c=True):
            raise KeyboardInterrupt
    assert caught.value.status == ExitStatus.INTERRUPTED
    assert caught.value.message == "stopped by Ctrl-C" + CONSEQUENCE
    with pytest.raises(KeyboardInterrupt):
        with stop_reported(CONSEQUENCE):
            raise KeyboardInterrupt


def test_the_sigterm_handler_is_restored_after_a_run_that_was_not_stopped() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop_reported(CONSEQUENCE):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
