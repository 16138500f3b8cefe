"""Shared fixtures: where the repository's bundled data live; Ctrl-C reaches the processes tests start."""

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


@pytest.fixture
def test_data() -> Path:
    return TEST_DATA
