"""The stop signals as the user meets them: which preempt training, how a stop names them, those noted as a command starts.

Read without torch or pydantic: the command line's entry point (:mod:`biofound_cli.cli.entry`)
notes the preemption signals here (:func:`note_stops`) before anything heavy is imported, for
the command's own handlers to take once installed (:func:`noted_at_start`): a scheduler's
SIGTERM or SIGUSR1 while the rest is imported (a quarter to half a second on a laptop, seconds
on a cluster's network file system) killed the command with no line at all.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

PREEMPTION_SIGNALS = ("SIGTERM", "SIGUSR1")
"""``train.preemption_signals`` unset: SLURM's SIGTERM, and SIGUSR1 as ``sbatch --signal`` sends it.

The commands other than training stop on the same signals, with status 143
(:data:`~biofound_cli.store.worker_lifetime.TERMINATING_SIGNALS`)."""

INTERRUPT_NAME = "Ctrl-C"
"""How every stop line names SIGINT: a person pressing Ctrl-C is what sends it."""


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
