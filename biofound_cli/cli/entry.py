"""The ``biofound`` console script and ``python -m biofound_cli`` (what torchrun's ``-m biofound_cli`` runs).

The first code of ours a command runs, before typer, rich, pydantic and torch are imported. For
every command that handles stop signals (:func:`~biofound_cli.errors.handles_stops`) it notes the
default preemption signals from here on (:func:`~biofound_cli.stop_signals.note_stops`), and
the command's handlers take what was noted once installed: a training command's guard (status
75 after the first step), the others' ``sigterm_as_interrupt`` (their stop line, 143). A
scheduler's SIGTERM or SIGUSR1 while the rest is imported killed them with no line, which a
requeue that waits for 75 (or a script that reads the line) passed over. What is left is the
interpreter's own start, before any of our code runs (some tens of milliseconds); a signal then
still ends the process as its default action does.

``validate``, ``env``, ``models``, ``recipes`` and ``info`` note nothing: SIGTERM ends them as it
ends any process. A noted signal no command took (``finetune --help``, a parse error, a bad
recipe) gets the action it had without this module, once the command has ended.
"""

from __future__ import annotations

import json
import signal
import sys

from biofound_cli.cli.whole_imports import hold_ctrl_c_during_first_imports
from biofound_cli.errors import ExitStatus, handles_stops
from biofound_cli.stop_signals import note_stops, release_noted, stop_name


def asks_for_json(words: list[str]) -> bool:
    """Whether the command line asks for JSON; ``--json=true`` too, which the parser refuses (a flag takes no value).

    Parameters
    ----------
    words : list of str
        The command line's words after the program name.
    """
    return any(word == "--json" or word.startswith("--json=") for word in words)


def main() -> None:
    """Console-script entry point: note the preemption signals of a command that handles them, then run the app."""
    words = [word for word in sys.argv[1:] if not word.startswith("-")]
    if words and handles_stops(words[0]):
        note_stops()
    hold_ctrl_c_during_first_imports()
    try:
        from biofound_cli.cli.app import main as run_app

        run_app()
    except KeyboardInterrupt:  # Ctrl-C while typer, rich and the command's modules were imported
        stopped_as_it_started(json_summary=asks_for_json(sys.argv[1:]))
    finally:
        # The command's status is decided: a Ctrl-C from here on (Python's own shutdown, with
        # torch's, takes a while) killed the process by SIGINT after a complete run, with no line.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # CPython (3.11 at least) marks a KeyboardInterrupt that passed through a string `exec`
        # (dataclasses and namedtuples build methods so) as unhandled even once handled, and then
        # ends the process by SIGINT, not with the status the command chose; an `exec` clears it.
        exec("pass", {})
        release_noted()


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
    say_error(f"stopped by {stop_name('SIGINT')} as the command started; nothing was done", ExitStatus.INTERRUPTED, json_summary)
    sys.exit(ExitStatus.INTERRUPTED)


def say_error(message: str, status: int, json_summary: bool) -> None:
    """The ``error:`` line of a command that ended before its output was set up, and with ``--json`` its object.

    Parameters
    ----------
    message : str
        One sentence: what went wrong and what to do.
    status : int
        The exit status the command ends with, given in the JSON object.
    json_summary : bool
        ``--json`` was given: the error is also one JSON object on stdout, as a command's own failure writes it.
    """
    if json_summary:
        sys.stdout.write(json.dumps({"ok": False, "exit_status": int(status), "error": message}) + "\n")
        sys.stdout.flush()
    sys.stderr.write(f"error: {message}\n")
