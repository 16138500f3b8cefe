"""Errors a user can act on, and the exit statuses every command shares.

Every failure a user can cause (a bad recipe, a missing file, a channel that is not there)
is raised as a :class:`BiofoundError` whose message is one sentence naming the file, field
or channel at fault and what to do. The CLI prints that sentence and exits with the error's
status; it never shows a traceback for bad input.
"""

from __future__ import annotations

import contextlib
import difflib
import enum
import errno
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from biofound_cli import PACKAGE_LOGGER


class ExitStatus(enum.IntEnum):
    """The exit statuses of every ``biofound`` command (documented in ``docs/exit-status.md``)."""

    OK = 0
    """The work was done."""
    FAILED = 1
    """The work failed: every input file was bad, the loss went NaN, a verification failed."""
    USAGE = 2
    """A usage or recipe error: nothing was started."""
    PREEMPTED = 75
    """Stopped on a preemption signal after writing a resumable checkpoint (EX_TEMPFAIL)."""
    NEEDS_CREDENTIALS = 77
    """Nothing was fetched: the source needs credentials the environment lacks; the output says how to get them (EX_NOPERM)."""
    INTERRUPTED = 130
    """Interrupted by Ctrl-C (SIGINT)."""
    TERMINATED = 143
    """Stopped by SIGTERM or SIGUSR1 after keeping what was finished (``preprocess``: whole shards and the report)."""


EVERY_COMMAND = frozenset({ExitStatus.OK, ExitStatus.USAGE, ExitStatus.INTERRUPTED})
"""What any command may end with: its work done; a flag, argument or recipe refused; Ctrl-C, as it
starts (``cli.entry``) or while it works (``cli.common.run_command``)."""

COMMAND_STATUSES: dict[str, frozenset[ExitStatus]] = {
    "quickstart": EVERY_COMMAND | {ExitStatus.FAILED, ExitStatus.PREEMPTED, ExitStatus.TERMINATED},
    "download": EVERY_COMMAND | {ExitStatus.FAILED, ExitStatus.NEEDS_CREDENTIALS, ExitStatus.TERMINATED},
    "preprocess": EVERY_COMMAND | {ExitStatus.FAILED, ExitStatus.TERMINATED},
    "pack": EVERY_COMMAND | {ExitStatus.FAILED, ExitStatus.TERMINATED},
    "pretrain": EVERY_COMMAND | {ExitStatus.FAILED, ExitStatus.PREEMPTED},
    "finetune": EVERY_COMMAND | {ExitStatus.FAILED, ExitStatus.PREEMPTED},
    "evaluate": EVERY_COMMAND | {ExitStatus.FAILED, ExitStatus.TERMINATED},
    "export": EVERY_COMMAND | {ExitStatus.FAILED, ExitStatus.TERMINATED},
    "predict": EVERY_COMMAND | {ExitStatus.FAILED, ExitStatus.TERMINATED},
    "models": EVERY_COMMAND,
    "recipes": EVERY_COMMAND,
    "info": EVERY_COMMAND | {ExitStatus.FAILED},
    "validate": EVERY_COMMAND,
    "env": EVERY_COMMAND,
}
"""The statuses each command may end with: the per-command table of ``docs/exit-status.md``, one column
per status (a test holds the page to this). A command without ``TERMINATED`` writes nothing a stop
could leave half done and leaves SIGTERM its default action; ``pretrain``/``finetune`` end with
``PREEMPTED`` on it."""


# What each status means, in a few words, for the line every command's --help ends with.
_STATUS_WORDS: dict[ExitStatus, str] = {
    ExitStatus.OK: "done",
    ExitStatus.FAILED: "failed",
    ExitStatus.USAGE: "bad flags or recipe",
    ExitStatus.PREEMPTED: "preempted (SIGTERM, SIGUSR1), a resumable checkpoint written: the line names the command to continue",
    ExitStatus.NEEDS_CREDENTIALS: "the data set needs credentials",
    ExitStatus.INTERRUPTED: "Ctrl-C",
    ExitStatus.TERMINATED: "SIGTERM or SIGUSR1, finished work kept",
}


def statuses_help(command: str) -> str:
    """The sentence naming the statuses ``command`` may end with (its row of :data:`COMMAND_STATUSES`), for its ``--help``.

    Parameters
    ----------
    command : str
        The command's first word, e.g. ``"finetune"``.
    """
    named = ", ".join(f"{int(status)} {_STATUS_WORDS[status]}" for status in sorted(COMMAND_STATUSES[command]))
    return f"Exit status: {named}; docs/exit-status.md says when each comes."


def handles_stops(command: str | None) -> bool:
    """Whether ``command`` (as typed after ``biofound``) handles SIGTERM and SIGUSR1: it may end ``TERMINATED`` or ``PREEMPTED``.

    The others write nothing a stop could leave half done, and leave the signals their default action.

    Parameters
    ----------
    command : str | None
        The command's first word, e.g. ``"preprocess"``.
    """
    return bool(COMMAND_STATUSES.get(command or "", frozenset()) & {ExitStatus.TERMINATED, ExitStatus.PREEMPTED})


class BiofoundError(Exception):
    """An error with a message meant for the user and the exit status it maps to."""

    status: ExitStatus = ExitStatus.FAILED

    def __init__(self, message: str, *, status: ExitStatus | None = None, details: dict | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.details = dict(details or {})
        """Extra fields of the ``--json`` failure object, e.g. the checkpoint to resume from."""

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(BiofoundError):
    """Bad arguments, a bad recipe or a missing input: exit status 2."""

    status = ExitStatus.USAGE


class RecipeError(UsageError):
    """A recipe that failed validation; ``problems`` holds one line per bad field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class DataError(BiofoundError):
    """An input file that cannot be used (unreadable, missing channels, bad annotations)."""


class EveryRecordingSkipped(DataError):
    """A batch stage (``preprocess``, ``predict``) whose every recording was skipped; the report is written."""

    def __init__(self, found: int, skipped: dict[str, int], report_path: object, where: str = "") -> None:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(skipped.items()))
        # A run on one file said "every one of the 1 recordings".
        which = f"the one recording{where}" if found == 1 else f"every one of the {found} recordings{where}"
        per_file = "" if found == 1 else " per file"
        super().__init__(f"{which} was skipped ({reasons}); see {report_path} for the reason{per_file}")


class CheckpointError(UsageError):
    """A checkpoint that does not fit the model asked for, or is missing: exit status 2."""


class UnreadableCheckpoint(CheckpointError):
    """A checkpoint file that exists but cannot be read (empty, truncated, not its format): exit status 1.

    The rule of ``docs/exit-status.md`` for every command: a file that is there but unreadable
    is a failure, as a damaged ``.h5`` or recording is; a missing or mismatched one is a usage error.
    """

    status = ExitStatus.FAILED


class DownloadError(BiofoundError):
    """A download or verification that failed: no network, access refused, bad file (exit status 1)."""


class CredentialsNeeded(BiofoundError):
    """A download that cannot start without credentials (TUH corpora): exit status 77, nothing fetched."""

    status = ExitStatus.NEEDS_CREDENTIALS


class PreemptedError(BiofoundError):
    """Raised by the training loop after a preemption signal once a resumable checkpoint is safe."""

    status = ExitStatus.PREEMPTED


class InterruptedRunError(BiofoundError):
    """Raised by the training loop after Ctrl-C (SIGINT) once a resumable checkpoint is safe."""

    status = ExitStatus.INTERRUPTED


class ReportedByAnotherRank(BiofoundError):
    """A failure of a torchrun job that a lower rank reports: this rank exits with its status, silently.

    Refusals every rank reaches alike (a recipe or a data file that does not fit) would otherwise
    print one line per rank.
    """


class UnusableRecording(DataError):
    """A recording the pipeline skips, with a short machine-readable ``reason`` it is counted under.

    Reasons used by the shared chain: ``unreadable``, ``missing_channels``, ``ambiguous_channels``,
    ``mixed_rates``, ``sfreq_too_low``,
    ``too_many_nans``, ``flat_channels``, ``too_short``, ``bad_annotations``. A plain
    :class:`~biofound_cli.errors.DataError` is counted as ``unusable``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.reason))


class AbsentChannels(UnusableRecording):
    """A recording with channels NaN throughout (absent from the file), counted as ``too_many_nans``.

    ``channels`` names them, so a stage whose channels are not the user's to choose (``predict``:
    they are the model's) can say what fits it instead of the chain's advice.
    """

    def __init__(self, message: str, channels: tuple[str, ...]) -> None:
        super().__init__(message, "too_many_nans")
        self.channels = tuple(channels)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.channels))


# Words users write for one another: an output folder is a `dir`, an `out`, a `path`; a learning rate an `lr`.
_SAME_MEANING = (frozenset({"dir", "directory", "folder", "out", "path"}), frozenset({"lr", "learningrate"}))


def _words(name: str) -> list[str]:
    """The lower-case words of a name, split at ``_``, ``-``, ``.`` and spaces (``runs_dir``: runs, dir)."""
    return [word for word in re.split(r"[_\-. ]+", name.lower()) if word]


def _meanings(word: str) -> frozenset[str]:
    """``word`` and the words of :data:`_SAME_MEANING` that mean the same."""
    return next((group for group in _SAME_MEANING if word in group), frozenset({word}))


def closest_names(name: str, known: Iterable[str], *, misspelt: bool = True) -> list[str]:
    """The known names that ``name`` is most likely meant as (``luna_tua``: ``luna_tuab``, ``luna_tuar``).

    The one rule every "did you mean" of biofound follows: recipe fields (``optim.lrr``), shipped
    recipes, corpora, model variants, download targets. Case is ignored (``LUNA_bas``: ``luna-base``).
    First the names ``name`` is, written another way (``batchsize``: ``batch_size``; ``learning_rate``:
    ``lr``); else those it names one word of (``dir`` or ``out``: ``runs_dir``; ``lora``: each
    ``lora_*``); else those scoring best by difflib's ratio, at least 0.6 (a misspelling: ``lrr``:
    ``lr``). Several are given in the order of ``known``.

    Parameters
    ----------
    name : str
        The name as the user wrote it.
    known : iterable of str
        The names that are allowed there.
    misspelt : bool
        Whether to give the names ``name`` may be a misspelling of (difflib's), when it means none.
    """
    by_lower = {str(candidate).lower(): str(candidate) for candidate in known}
    typed = "".join(_words(name))
    written_otherwise = [candidate for candidate in by_lower if typed in _meanings("".join(_words(candidate)))]
    one_word = [candidate for candidate in by_lower if len(typed) >= 2 and _meanings(typed) & set(_words(candidate))]
    if written_otherwise or one_word or not misspelt:
        return [by_lower[candidate] for candidate in written_otherwise or one_word]
    scores = {candidate: difflib.SequenceMatcher(None, candidate, name.lower()).ratio() for candidate in by_lower}
    best = max(scores.values(), default=0.0)
    return [by_lower[candidate] for candidate, score in scores.items() if score == best] if best >= 0.6 else []


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``did you mean lr?`` (``luna_tuab or luna_tuar?`` when as close), or ``""`` when no known name is close.

    Parameters
    ----------
    name : str
        The name as the user wrote it.
    known : iterable of str
        The names that are allowed there.
    """
    return you_mean(closest_names(name, known))


def you_mean(names: list[str]) -> str:
    """``did you mean a, b or c?`` naming ``names``, or ``""`` for none.

    Parameters
    ----------
    names : list of str
        The names to suggest, in order.
    """
    if not names:
        return ""
    either = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"did you mean {either}?"


def unknown_name(what: str, name: str, known: Iterable[str], *, listed_by: str = "") -> str:
    """``unknown recipe 'luna_tuabb'; did you mean luna_tuab?``, or the allowed names when none is close.

    Parameters
    ----------
    what : str
        What the name names (``recipe``, ``corpus``, ``model``).
    name : str
        The name as the user wrote it.
    known : iterable of str
        The names that are allowed, in the order to list them.
    listed_by : str
        The command that lists the allowed names (``biofound recipes ls``); named after a suggestion
        and after the list.
    """
    names = [str(candidate) for candidate in known]
    suggestion = did_you_mean(name, names)
    if suggestion:
        return f"unknown {what} {name!r}; {suggestion}" + (f" ({listed_by} lists them all)" if listed_by else "")
    listing = ", ".join(names) if names else "none"
    return f"unknown {what} {name!r}; choose one of: {listing}" + (f" (see {listed_by})" if listed_by else "")


def refusal(check: Callable[[], object], prefix: str = "") -> list[str]:
    """The problem ``check()`` refuses with, as a list of one line for a recipe check to collect; empty when it passes.

    Parameters
    ----------
    check : callable
        Raises :class:`UsageError` for what it refuses.
    prefix : str
        Put before the error's message (the recipe file and field, ``"recipe.toml: model.variant: "``).
    """
    try:
        check()
    except UsageError as error:
        return [prefix + error.message]
    return []


SAID_AT_ONCE = "said_at_once"
"""The ``extra`` key of a log record :func:`said_once_it_passes` does not hold back."""


@contextlib.contextmanager
def said_once_it_passes() -> Iterator[None]:
    """Hold back what the core logs in the block; say it after the block, unless the block is refused as a usage error.

    A refusal (a :class:`BiofoundError` of exit status 2: a recipe's problems, a packed file that is not
    there) prints alone: a warning said before it (a ``--set`` of a section the stage does not read, a
    stride longer than the window) was about a run that will not start, and read as if it went on;
    once the refusal is mended, the next try says it. Holds nest: the outermost says what the block
    logged. Its one user is :func:`~biofound_cli.recipes.loading.load_checked`, around a recipe's
    loading and its stage's checks. A record logged with ``extra={SAID_AT_ONCE: True}`` is not held:
    it says which value the recipe's checks saw (a path found beside the recipe alone, a flag that
    replaced a ``--set``), the why of a refusal of that value.
    """
    package = logging.getLogger(PACKAGE_LOGGER)
    handlers: list[logging.Handler] = []
    chain: logging.Logger | None = package
    while chain is not None:  # the handlers a record of the package reaches, as Logger.callHandlers walks them
        handlers += chain.handlers
        chain = chain.parent if chain.propagate else None
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        if getattr(record, SAID_AT_ONCE, False):
            return True
        if record.name.startswith(PACKAGE_LOGGER) and not any(record is other for other in held):
            held.append(record)
        return not record.name.startswith(PACKAGE_LOGGER)

    for handler in handlers:
        handler.addFilter(hold)
    try:
        yield
    except BiofoundError as error:
        if error.status == ExitStatus.USAGE:
            held.clear()
        raise
    finally:
        for handler in handlers:
            handler.removeFilter(hold)
        for record in held:
            logging.getLogger(record.name).handle(record)


def shown(value: Any) -> str:
    """A value as a recipe writes it (``true``, ``"text"``), for error lines.

    Parameters
    ----------
    value : Any
        The value read from the recipe or ``--set``.

    Returns
    -------
    str
        Its JSON text, which is TOML's for numbers, strings, booleans and lists (JSON's ``Infinity`` is
        TOML's ``inf``); else its ``repr``.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # inf, -inf, nan: TOML's words
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type name when it has none.

    How a library's failure (a reader's, a connection's) is quoted inside one of our one-line
    messages, so without its closing full stop: requests' ``Exceeded 30 redirects.`` read
    ``(Exceeded 30 redirects.; a server fault ...)`` there. An ellipsis stays.

    Parameters
    ----------
    error : BaseException
        What the library raised.
    """
    text = str(error).strip()
    if not text:
        return type(error).__name__
    line = text.splitlines()[0].rstrip()
    return line[:-1] if line.endswith(".") and not line.endswith("..") else line


def is_refused_path(error: OSError) -> bool:
    """Whether the file system refused a path the user gave (bad input: exit status 2), rather than failing mid-run.

    A file in the way, a folder where a file is needed, no permission, a read-only file system (e.g. a read-only
    ``/home`` on a compute node); not a full disk or an I/O error, where the input was fine and the work failed.

    Parameters
    ----------
    error : OSError
        What the file system raised.
    """
    refused = isinstance(error, (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError))
    return refused or error.errno == errno.EROFS


def file_system_problem(error: OSError, then: str) -> str:
    """One sentence naming what the file system failed to do, and ``then``: what is left and what to do.

    A full disk or quota, or another failure of the file system (``Input/output error``, ``Stale file handle``).

    Parameters
    ----------
    error : OSError
        What the file system raised mid-run (not :func:`is_refused_path`).
    then : str
        What the command left and how to go on (``what was finished is kept, so run the same command again``).
    """
    from biofound_cli.atomic import NO_SPACE_ERRNOS

    where = f"{error.filename}: " if error.filename else ""
    if error.errno in NO_SPACE_ERRNOS:
        problem = f"{error.strerror or 'no space left'}; free space on that disk (or raise your quota)"
    else:
        problem = f"{error.strerror or first_line(error)}; check that disk or file system"
    return f"{where}{problem}: {then}"


def rate_limited(retry_after: str | None) -> str:
    """What an HTTP 429 answer means, with the wait its ``Retry-After`` header asks for, to quote in a message.

    ``HTTP 429 (rate-limited: too many requests from this address; the server asks to wait 30 s)``. The header is
    a number of seconds or an HTTP date (RFC 9110, 10.2.3); without one a few minutes are advised.

    Parameters
    ----------
    retry_after : str | None
        The answer's ``Retry-After`` header, if any.
    """
    return f"HTTP 429 (rate-limited: too many requests from this address; {asked_wait(retry_after) or 'wait a few minutes'})"


def asked_wait(retry_after: str | None) -> str | None:
    """The wait an answer's ``Retry-After`` header asks for, in words (``the server asks to wait 30 s``); ``None`` without one.

    A 429 or a 503 may carry it, as a number of seconds or an HTTP date (RFC 9110, 10.2.3).

    Parameters
    ----------
    retry_after : str | None
        The answer's ``Retry-After`` header, if any.
    """
    value = (retry_after or "").strip()
    if value.isdigit():
        return f"the server asks to wait {int(value)} s"
    return f"the server asks to wait until {value}" if value else None


def reader_failure(path: object, error: BaseException) -> str:
    """Why a reader (MNE's, h5py's) could not read ``path``, for the parentheses of a one-line message.

    An empty file says so; otherwise the error's type and first line (the type alone when the
    error has no text, as a bare ``AssertionError`` inside MNE has).

    Parameters
    ----------
    path : path-like
        The file that was read.
    error : BaseException
        What the reader raised.
    """
    with contextlib.suppress(OSError, TypeError):
        if os.path.getsize(path) == 0:  # type: ignore[arg-type]
            return "the file is empty, 0 bytes"
    return typed_first_line(error)


def typed_first_line(error: BaseException) -> str:
    """The error's type and :func:`first_line`, ``ValueError: Bad EDF file provided``; its type alone when it has no text.

    How an error of a type the user needs to tell apart (a tracer's, an importer's) is quoted.

    Parameters
    ----------
    error : BaseException
        What the library raised.
    """
    return f"{type(error).__name__}: {first_line(error)}" if str(error).strip() else type(error).__name__


READING_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, EOFError, RuntimeError, AssertionError)
"""What a reading library raises for a bad file, besides a bare ``Exception``: :func:`is_reading_error`."""

READING_LIBRARIES = frozenset({"mne", "mne_bids", "h5py", "scipy"})
"""The packages that read recordings: an error raised inside one is the file's fault, whatever its type."""


def is_reading_error(error: BaseException) -> bool:
    """Whether ``error`` is the file's fault: the one rule of what a bad file raises, and what a bug of ours does.

    A reader turns such an error into a skip that names the file (:func:`reading_as`), and a
    per-recording stage (``preprocess``, ``predict``) skips a recording that raised one. They are
    :data:`READING_ERRORS`, a bare ``Exception`` (MNE's "Encountered invalid byte in at least one
    annotations channel"), and any error raised inside a reading library (:data:`READING_LIBRARIES`:
    MNE meets an odd header with an ``IndexError`` or ``KeyError`` too). An ``AssertionError`` is
    MNE's word for a header it cannot parse. Anything else (a ``TypeError``, ``AttributeError``,
    ``KeyError``, ``IndexError``, ``NameError`` raised in our code) is a bug of biofound's, not of the
    file: it stops the run as a :class:`ReadingBug` rather than hiding among the skipped recordings.

    Parameters
    ----------
    error : BaseException
        What reading or processing a recording raised.
    """
    if isinstance(error, READING_ERRORS) or type(error) is Exception:
        return True
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    raised_in = frame.tb_frame.f_globals.get("__name__", "") if frame is not None else ""
    return raised_in.partition(".")[0] in READING_LIBRARIES


class ReadingBug(BiofoundError):
    """A bug of biofound's met while reading or processing one recording: the run stops with one line, exit status 1."""


def reading_bug(path: object, error: BaseException, doing: str = "reading or processing it") -> ReadingBug:
    """The one line that stops a run on an error outside :data:`READING_ERRORS`: names the file, the error, and asks for a report.

    Parameters
    ----------
    path : path-like
        The recording being read or processed, or the folder whose recordings were being listed.
    error : BaseException
        What was raised.
    doing : str
        What was being done with ``path`` (``listing the recordings under it``).
    """
    return ReadingBug(
        f"{path}: {typed_first_line(error)} while {doing}; this is a bug in biofound, not a fault of "
        "the file: please report it with this line and the output of `biofound env`"
    )


@contextlib.contextmanager
def discovering(root: object) -> Iterator[None]:
    """Turn what listing the recordings under ``root`` raises into one line: a bad file's, or a bug of ours.

    The rule of a recording's reading (:func:`is_reading_error`) holds for discovery too: a
    :class:`BiofoundError` (a reader's own line: a labels CSV without its column) and an
    :class:`OSError` (the CLI names its file: one gone since it was listed) pass; another reading
    error (a table or annotation file a library could not parse) stops the run with one line naming
    ``root``, the error and what to do (:class:`DataError`); any other error is a bug of ours
    (:func:`reading_bug`).

    Parameters
    ----------
    root : path-like
        The folder being listed (``--root``, or a folder given to ``predict``).
    """
    try:
        yield
    except (BiofoundError, OSError):
        raise
    except Exception as error:
        doing = "listing the recordings under it"
        if not is_reading_error(error):
            raise reading_bug(root, error, doing) from error
        raise DataError(
            f"{root}: {typed_first_line(error)} while {doing}; a file there (a table or annotation file) is not what "
            f"its reader expects: {UNREADABLE_ADVICE}"
        ) from error


UNREADABLE_ADVICE = "check the file, or copy it again if a copy was cut short"
"""What to do about a recording no reader could open (an empty file, a header cut short, another format)."""


@contextlib.contextmanager
def reading_as(path: object, what: str) -> Iterator[None]:
    """Raise :func:`unreadable_recording` for a reading error (:func:`is_reading_error`) in the block; let any other through.

    Parameters
    ----------
    path : path-like
        The file the block reads.
    what : str
        What it should be, e.g. ``"EDF file"``, ``"recording"``.
    """
    try:
        yield
    except Exception as error:
        if not is_reading_error(error):
            raise
        raise unreadable_recording(path, what, error) from None


def unreadable_recording(path: object, what: str, error: BaseException) -> UnusableRecording:
    """The skip (``unreadable``) of a recording the reader could not open: one sentence naming it, why and what to do.

    Parameters
    ----------
    path : path-like
        The file.
    what : str
        What it should have been, e.g. ``"EDF file"``, ``"recording"``.
    error : BaseException
        What the reader raised.
    """
    return UnusableRecording(f"{path}: not a readable {what} ({reader_failure(path, error)}); {UNREADABLE_ADVICE}", "unreadable")


def existing_file(path: str | Path) -> Path:
    """``path`` as a :class:`~pathlib.Path`, refused with one line when there is no file there.

    Parameters
    ----------
    path : str | Path
        A file the user named.

    Raises
    ------
    UsageError
        ``"{path}: file not found; check the path"``.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: file not found; check the path")
    return path
