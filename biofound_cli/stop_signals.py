"""The stop signals as the user meets them: which ones preempt a training run, and how a stop names them.

Read without torch or pydantic: the command line's entry point (:mod:`biofound_cli.cli.entry`)
notes the preemption signals before anything heavy is imported.
"""

from __future__ import annotations

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
