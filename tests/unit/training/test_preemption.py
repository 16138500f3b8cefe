"""The stop-request guard: copies of one request, and copies that arrive after the stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from biofound_cli.errors import ExitStatus

SCRIPT = """
import os, signal, sys
from biofound_cli.training.preemption import PreemptionGuard

with PreemptionGuard(["SIGTERM", "SIGUSR1"], hold_after_stop={hold}) as guard:
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGUSR1)  # a copy of the same request, by another name
    assert guard.request.name == "SIGTERM", guard.request.name
# the stop is being reported; torchrun's forwarded copy arrives now
os.kill(os.getpid(), signal.SIGTERM)
print("reported", flush=True)
sys.exit({status})
"""


def run_script(hold: bool) -> subprocess.CompletedProcess:
    script = textwrap.dedent(SCRIPT).format(hold=hold, status=int(ExitStatus.PREEMPTED))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_a_late_copy_after_a_stop_is_ignored_when_the_guard_holds():
    result = run_script(hold=True)
    assert result.returncode == ExitStatus.PREEMPTED, result.stderr
    assert result.stdout == "reported\n"


def test_without_holding_the_previous_handlers_come_back():
    result = run_script(hold=False)
    assert result.returncode == -signal.SIGTERM and result.stdout == ""


@pytest.mark.parametrize("hold", [True, False])
def test_a_guard_that_saw_no_stop_restores_the_previous_handlers(hold):
    from biofound_cli.training.preemption import PreemptionGuard

    before = signal.getsignal(signal.SIGUSR1)
    with PreemptionGuard(["SIGUSR1"], hold_after_stop=hold) as guard:
        assert signal.getsignal(signal.SIGUSR1) == guard._handle
    assert signal.getsignal(signal.SIGUSR1) == before and guard.request.name is None


def test_a_signal_noted_before_the_guard_is_a_stop_request_when_the_guard_starts():
    from biofound_cli.training.preemption import PreemptionGuard, stops_noted

    with stops_noted(["SIGUSR1"]) as arrived:
        os.kill(os.getpid(), signal.SIGUSR1)  # while the command imports torch and reads its recipe
        assert arrived == [signal.SIGUSR1]
        with PreemptionGuard(["SIGUSR1"], arrived=arrived) as guard:
            assert guard.request.name == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_a_guard_that_held_the_signal_after_a_stop_keeps_it_held_after_the_noting_block():
    # Late copies of a stop (torchrun's forwarded one) must not kill the report: the noting block
    # used to put the default action back over the guard's ignored signal.
    from biofound_cli.training.preemption import PreemptionGuard, stops_noted

    with stops_noted(["SIGUSR1"]):
        with PreemptionGuard(["SIGUSR1"], hold_after_stop=True) as guard:
            os.kill(os.getpid(), signal.SIGUSR1)
        assert guard.request.name == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
