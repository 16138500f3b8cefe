"""Shared fixtures: where the repository's bundled data live; stop signals reach the processes tests start."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

# A test run started in the background of a non-interactive shell (`bash .ci/run &`) inherits
# SIGINT ignored, and so would every process the tests start: their Ctrl-C tests would then
# test nothing. A handled signal is reset to the default at exec, so the children get Python's
# KeyboardInterrupt as from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = REPO_ROOT / "tests" / "data"


# A stage run in this process (CliRunner) ignores SIGTERM once its outcome is settled, and
# `biofound finetune` the stop signals once it has stopped or failed (a late copy from torchrun
# must not kill the report). An ignored signal is inherited at exec, so a later test's child would
# then not die of SIGTERM: every test starts and ends with the handlers the session started with
# (a module- or session-scoped fixture may have run a stage before the test's own setup).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)
SESSION_HANDLERS = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}


def _restore_session_handlers() -> None:
    for signum, handler in SESSION_HANDLERS.items():
        if handler is not None and signal.getsignal(signum) != handler:
            signal.signal(signum, handler)


@pytest.fixture(autouse=True)
def _stop_signal_handlers_restored():
    _restore_session_handlers()
    yield
    _restore_session_handlers()


@pytest.fixture
def test_data() -> Path:
    return TEST_DATA
