"""The ``biofound`` console script and ``python -m biofound_cli`` (what torchrun's ``-m biofound_cli`` runs).

The first code of ours a command runs, before typer, rich, pydantic and torch are imported. For
``pretrain`` and ``finetune`` it notes the default preemption signals from here on, and the
training command hands what it noted to its guard (:func:`noted_at_start`): a scheduler's
SIGTERM while the rest is imported (a quarter to half a second on a laptop, seconds on a
cluster's network file system) killed the job with status 143 and no line, which a requeue that
waits for 75 passed over. What is left is the interpreter's own start, before any of our code
runs (some tens of milliseconds); a signal then still ends the process with 143.

Other commands handle SIGTERM and SIGUSR1 their own way once they run (143 with a line), and
note nothing here. A noted signal no command took (``finetune --help``, a parse error) gets the action it had
without this module, once the command has ended.
"""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType
from typing import Any

from biofound_cli.cli.whole_imports import hold_ctrl_c_during_first_imports
from biofound_cli.stop_signals import PREEMPTION_SIGNALS, stop_name

TRAINING_COMMANDS = ("pretrain", "finetune")
"""The commands whose preemption signals are noted from the start (they exit 75 on one)."""

_noted: list[int] = []
_previous: dict[int, Any] = {}
_taken = False


def main() -> None:
    """Console-script entry point: note a training command's preemption signals, then run the app."""
    words = [word for word in sys.argv[1:] if not word.startswith("-")]
    if words and words[0] in TRAINING_COMMANDS:
        for name in PREEMPTION_SIGNALS:
            signum = signal.Signals[name]
            _previous[signum] = signal.signal(signum, _note)
    hold_ctrl_c_during_first_imports()
    try:
        from biofound_cli.cli.app import main as run_app

        run_app()
    except KeyboardInterrupt:  # Ctrl-C while typer, rich and the command's modules were imported
        stopped_as_it_started(json_summary="--json" in sys.argv[1:])
    finally:
        # The command's status is decided: a Ctrl-C from here on (Python's own shutdown, with
        # torch's, takes a while) killed the process by SIGINT after a complete run, with no line.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # CPython (3.11 at least) marks a KeyboardInterrupt that passed through a string `exec`
        # (dataclasses and namedtuples build methods so) as unhandled even once handled, and then
        # ends the process by SIGINT, not with the status the command chose; an `exec` clears it.
        exec("pass", {})
        _release()


def stopped_as_it_started(*, json_summary: bool) -> None:
    """End a command stopped by Ctrl-C before its work began: one line (and the JSON object asked for), status 130.

    A Ctrl-C in the first fraction of a second (the imports) printed Python's traceback and the
    process died of SIGINT; one while the arguments were read printed click's "Aborted!" and
    exited 1, which the exit-status table gives to a failed run.

    Parameters
    ----------
    json_summary : bool
        ``--json`` was given: the error is also one JSON object on stdout.
    """
    from biofound_cli.errors import ExitStatus

    message = f"stopped by {stop_name('SIGINT')} as the command started; nothing was done"
    if json_summary:
        sys.stdout.write(json.dumps({"ok": False, "exit_status": int(ExitStatus.INTERRUPTED), "error": message}) + "\n")
        sys.stdout.flush()
    sys.stderr.write(f"error: {message}\n")
    sys.exit(ExitStatus.INTERRUPTED)


def noted_at_start() -> list[int]:
    """The signals noted since the process started, handed over once: later ones act as they would without this module.

    Call it once the command's own handlers are installed (``stops_noted``), so none falls between.
    """
    global _taken
    _taken = True
    return list(_noted)


def _note(signum: int, frame: FrameType | None) -> None:
    if not _taken:
        _noted.append(signum)
        return
    # Handed over, and the command's handlers are gone again: what the signal did before.
    signal.signal(signum, _previous[signum])
    signal.raise_signal(signum)


def _release() -> None:
    """Put the handlers this module replaced back; a signal noted but never taken now acts as it would have."""
    for signum, previous in _previous.items():
        if signal.getsignal(signum) is _note:
            signal.signal(signum, previous)
    if not _taken and _noted:
        sys.stdout.flush()  # the default action of SIGTERM ends the process without flushing
        sys.stderr.flush()
        for signum in dict.fromkeys(_noted):
            signal.raise_signal(signum)
