"""The stop signals as the user meets them: which preempt training, how a stop names them, those noted as a command starts.

Read without torch or pydantic: the command line's entry point (:mod:`biofound_cli.cli.entry`)
notes the preemption signals here (:func:`note_stops`) before anything heavy is imported, for
the command's own handlers to take once installed (:func:`noted_at_start`): a scheduler's
SIGTERM or SIGUSR1 while the rest is imported (a quarter to half a second on a laptop, seconds
on a cluster's network file system) killed the command with no line at all.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType
from typing import Any

from biofound_cli.errors import ExitStatus

PREEMPTION_SIGNALS = ("SIGTERM", "SIGUSR1")
"""``train.preemption_signals`` unset: SLURM's SIGTERM, and SIGUSR1 as ``sbatch --signal`` sends it.

The commands other than training stop on the same signals, with status 143
(:data:`~biofound_cli.store.worker_lifetime.TERMINATING_SIGNALS`)."""

INTERRUPT_NAME = "Ctrl-C"
"""How every stop line names SIGINT: a person pressing Ctrl-C is what sends it."""


SECOND_INTERRUPT_SECONDS = 1.0
"""The rule of a second Ctrl-C, for every command: this long or longer after its first stop, it stops the command at once.

A first stop is honoured with care (training finishes its step and writes a checkpoint,
``preprocess`` and ``predict`` let the recordings in flight finish and write their report), which
can take minutes; a second Ctrl-C then ends the process at once (:func:`exit_on_a_second_ctrl_c`).
One sooner is a copy of the first: torchrun forwards its own to every rank."""

AT_ONCE = (
    f"stopped at once by a second {INTERRUPT_NAME}: the work in progress is dropped and no report or checkpoint of it "
    "is written; what was finished is kept and the same command resumes (training: with --resume auto)"
)
"""The line of a command a second Ctrl-C ended (:func:`exit_on_a_second_ctrl_c`)."""


def exit_on_a_second_ctrl_c(signum: int, first_at: float) -> None:
    """End the process at once, status 130 and the :data:`AT_ONCE` line, when ``signum`` is a second Ctrl-C.

    For a stop signal's handler once a first stop was taken: a SIGINT :data:`SECOND_INTERRUPT_SECONDS`
    or more after it. Worker processes die with this one; the temporary files they leave are
    removed by the next run. No ``--json`` object: the process ends where it is, as a person asked.

    Parameters
    ----------
    signum : int
        The signal received.
    first_at : float
        When the first stop came, by ``time.monotonic()``.
    """
    if signum != signal.SIGINT or time.monotonic() - first_at < SECOND_INTERRUPT_SECONDS:
        return
    # Written straight to the descriptor: the handler may run in the middle of a write to sys.stderr.
    # A live progress display hid the terminal's cursor and left it mid-line.
    on_terminal = "\x1b[?25h\n" if os.isatty(2) else ""
    os.write(2, f"{on_terminal}error: {AT_ONCE}\n".encode())
    os._exit(ExitStatus.INTERRUPTED)


def a_second_signal(signal_name: str) -> str:
    """What a second stop signal of the kind received does while the first is honoured, for the stop's announcement.

    A second Ctrl-C ends the command at once (:func:`exit_on_a_second_ctrl_c`); a second SIGTERM
    or SIGUSR1 is a copy of the first (a scheduler's, to every task), and a Ctrl-C still ends it at once.

    Parameters
    ----------
    signal_name : str
        The first stop's signal (``"SIGINT"``, ``"SIGTERM"``).
    """
    if signal_name == "SIGINT":
        return f"a second {INTERRUPT_NAME} stops at once"
    return f"a second {signal_name} changes nothing, a {INTERRUPT_NAME} stops at once"


def came_as_the_work_finished(signal_name: str | None) -> str:
    """The warning of every command for a stop that came once its work was done: the run is complete, status 0.

    One rule, one line: ``preprocess`` and ``predict`` stopped as their last recordings finish,
    export, evaluate and pack as their results move in, training after its last step. A requeue
    of such a run would find nothing to do.

    Parameters
    ----------
    signal_name : str | None
        The stop signal's name (``"SIGTERM"``); ``None`` when no rank could name it.
    """
    return f"{signal_name or 'a stop signal'} came as the work finished: it is complete"


def stop_name(signal_name: str | None) -> str:
    """The words for ``signal_name`` in a stop line: ``stopped by Ctrl-C``, ``stopped by SIGTERM``.

    Every command says "Ctrl-C" for SIGINT and the signal's own name for the others; a line
    that follows "stopped by" takes its words from here.

    Parameters
    ----------
    signal_name : str | None
        A ``signal.Signals`` member's name (``"SIGINT"``, ``"SIGTERM"``); ``None`` when no rank
        could name the signal.
    """
    if signal_name is None:
        return "a stop signal"
    return INTERRUPT_NAME if signal_name == "SIGINT" else signal_name


_noted: list[int] = []
_previous: dict[int, Any] = {}
_taken = False


def note_stops() -> None:
    """From now on note the preemption signals instead of acting on them, for the command's handlers (:func:`noted_at_start`)."""
    for name in PREEMPTION_SIGNALS:
        signum = signal.Signals[name]
        _previous[signum] = signal.signal(signum, _note)


def noted_at_start() -> list[int]:
    """The signals noted since the process started, handed over once: later ones act as they would without :func:`note_stops`.

    Call it once the command's own handlers are installed (``stops_noted``, ``sigterm_as_interrupt``),
    so none falls between.
    """
    global _taken
    _taken = True
    return list(_noted)


def release_noted() -> None:
    """Put the handlers :func:`note_stops` replaced back; a signal noted but never taken now acts as it would have."""
    for signum, previous in _previous.items():
        if signal.getsignal(signum) is _note:
            signal.signal(signum, previous)
    if not _taken and _noted:
        sys.stdout.flush()  # the default action of SIGTERM ends the process without flushing
        sys.stderr.flush()
        for signum in dict.fromkeys(_noted):
            signal.raise_signal(signum)


def _note(signum: int, frame: FrameType | None) -> None:
    if not _taken:
        _noted.append(signum)
        return
    # Handed over, and the command's handlers are gone again: what the signal did before.
    signal.signal(signum, _previous[signum])
    signal.raise_signal(signum)
