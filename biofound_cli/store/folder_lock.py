"""One process at a time in a folder: a lock file the system releases when its holder ends, however it ends.

Training holds its run folder (``runs/NAME/.lock``, :meth:`biofound_cli.training.run_folder.RunFolder.held`),
``export``, ``evaluate`` and ``predict`` their ``--out`` (``.export.lock``, ``.evaluate.lock``, ``.predict.lock``, one
per slice for ``predict --shard``: :func:`held_out_folder`) and
``pack`` its ``--out`` (``.pack.lock``), so two jobs given the
same folder (a second ``sbatch``, a CI matrix, two shells) do not write into it at once: the second is refused
in one line naming the first. ``finetune``, ``pretrain``, ``evaluate`` and ``export --split`` hold the packed
folder they read with the shared form of pack's lock (:func:`biofound_cli.store.packer.held_for_reading`): any
number read it at once, and a pack into it is refused while they do.

A lock file has two bytes that matter. Jobs lock :data:`_JOB_BYTE` without waiting, which is where one job refuses
another. ``info`` asks (:func:`lock_holder`) by locking :data:`_HOLDER_BYTE` for an instant, which a job locks once it
holds the job byte, waiting out such an instant: so the probe never refuses a job starting as it looks.
Each holder also locks one byte for its own line (:data:`_LINE_BYTES` past the line's start), so a refused job
names the holders still there, not a reader that has ended while others read on.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import time
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from biofound_cli.errors import UsageError

if TYPE_CHECKING:
    from biofound_cli.store.slices import Slice

logger = logging.getLogger(__name__)

# Where msvcrt locks its one byte: far past the holder line, which Windows' mandatory locks would
# otherwise keep the refused job from reading.
_MSVCRT_LOCK_OFFSET = 1 << 20

_JOB_BYTE = 1
"""Locked by jobs only, without waiting: a job finding it held is refused."""

_HOLDER_BYTE = 0
"""Locked by a job that holds :data:`_JOB_BYTE` (waiting for a probe to let go), and by :func:`lock_holder` for an instant."""

_LINE_BYTES = 1 << 21
"""A holder locks the byte this far past the start of its line in the lock file while it holds the lock: shared holders
(jobs reading a packed folder) each add a line, which stays after that one ends while others read on."""


@contextmanager
def held_lock(
    lock_file: Path,
    busy: Callable[[str], str],
    unheld: str,
    *,
    opened: Callable[[], IO[str]] | None = None,
    remove: bool = False,
    shared: bool = False,
    note: str = "",
) -> Iterator[None]:
    """Hold ``lock_file`` for this process while the block runs; refuse when another process holds it.

    The lock is a POSIX record lock (a ``msvcrt`` byte lock on Windows): the kernel (or the NFS lock
    manager) drops it when the process ends, SIGKILL included, and forked workers do not inherit it.
    The holder writes ``pid N on HOST, started TIME`` into the file, which the refused process names.
    On a file system or platform without locks the block runs unheld, with a warning.

    Parameters
    ----------
    lock_file : Path
        The lock file, in the folder it holds (which exists).
    busy : callable
        The one-line refusal, given the holder's line (``pid 4242 on node07, started ...``).
    unheld : str
        What the user must see to when nothing can be locked (``make sure no other job trains into it``).
    opened : callable | None
        Opens ``lock_file`` to append (a caller turns a read-only folder into its own refusal);
        by default a plain ``open``.
    remove : bool
        Delete ``lock_file`` when the block ends, so the folder holds nothing of the lock afterwards
        (a shared holder deletes it only when no other process holds it).
        A process that opened the file just before is not fooled: it locks the file only if that is
        still the one at ``lock_file``, else it opens the new one.
    shared : bool
        Hold the lock with other shared holders (jobs reading the folder), refusing only an exclusive
        holder (a job writing it), which in turn is refused while any shared holder holds it. Where the
        system has no shared locks (``msvcrt``), the block runs unheld.
    note : str
        Added to the holder line after its start time (``reading it for finetune``), for a refused job to read.

    Raises
    ------
    UsageError
        Another process holds ``lock_file``: ``busy(holder)``.
    """
    lock_file = Path(lock_file)
    while True:
        with (opened or (lambda: lock_file.open("a+")))() as handle:
            try:
                locked = _lock_without_waiting(handle, shared)
            except OSError as error:
                if error.errno not in (errno.EACCES, errno.EAGAIN, errno.EDEADLK):
                    logger.warning(f"{lock_file}: cannot lock it on this file system ({error.strerror}); {unheld}")
                    yield
                    return
                raise UsageError(busy(_holders(handle))) from None
            if not locked:
                if not shared:  # readers need no warning: they write nothing a second job could mix
                    logger.warning(f"{lock_file}: this system locks no files (neither fcntl nor msvcrt); {unheld}")
            elif not _still_there(handle, lock_file):
                continue  # its holder removed it between our open and our lock: lock the one there now
            handle.seek(0)
            holder = f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}"
            holder += f", {note}\n" if note else "\n"
            # Unbuffered, and a full disk is no reason to refuse: the lock holds without its line (a refused job
            # then names "another process"), and the work itself meets the full disk where it can name its file.
            # A reader that may not write the folder holds the lock without its line too. A shared holder adds its
            # line to those of the others (a writer holds alone: its line is the file's only one).
            with suppress(OSError):
                if not shared:
                    handle.truncate()
                _write_line(handle, holder)
            try:
                yield
            finally:
                if remove and (not shared or _alone(handle)):
                    with suppress(OSError):  # Windows cannot delete an open file: it stays, unlocked, for the next
                        lock_file.unlink()
            return


def held_out_folder(folder: Path, job: str, doing: str, part: Slice | None = None) -> AbstractContextManager[None]:
    """Hold ``folder``, the ``--out`` of a ``job``, for this one: a second ``job`` into it is refused in one line.

    Two exports would each write a ``config.json`` listing only their own files, two evaluations each their own
    ``report.json`` beside the other's plots, two predicts append to one journal. The lock file is ``.<job>.lock``
    (``.export.lock``), removed at the end.

    Parameters
    ----------
    folder : Path
        The output folder (which exists).
    job : str
        The command (``export``), named in the lock file's name and the refusal.
    doing : str
        What the refusal says the holder does to ``folder`` (``exported into``).
    part : Slice | None
        The array-job slice the job does, where the slices share ``folder`` by design (``predict --shard``, each
        with its own summary and journal): the lock is that slice's alone (``.predict.slice-1-of-4.lock``), so the
        other slices run beside it, and the refusal names it.

    Raises
    ------
    UsageError
        Another process holds ``folder``: ``OUT is being exported into by pid 4242 on node07, started ...; ...``
        (``OUT is being predicted into for slice 1/4 by ...`` for a ``part``).
    """
    sliced = "" if part is None else f" for slice {part}"
    return held_lock(
        folder / _out_lock_name(job, None if part is None else part.label),
        lambda holder: (
            f"{folder} is being {doing}{sliced} by {holder}; wait for that {job} to end (or stop it), or choose another --out"
        ),
        f"the {job} folder is not held; make sure no other {job} writes into it",
        remove=True,
    )


def out_folder_holders(folder: Path, job: str) -> str | None:
    """Who holds ``folder``, the ``--out`` of a ``job``, now (:func:`held_out_folder`), for ``info``; None: no one.

    Parameters
    ----------
    folder : Path
        The output folder.
    job : str
        The command (``predict``).

    Returns
    -------
    str | None
        The holder line (``pid 4242 on node07, started ...``), or for the slices of an array job each slice's
        (``slice 1/4 by pid 4242 on node07, started ...; slice 2/4 by ...``).
    """
    # The slices' lock files as _out_lock_name names them, their I and N read back (to order 10/12 after 9/12).
    named = re.compile(re.escape(_out_lock_name(job, "@")).replace("@", r"(\d+)-of-(\d+)"))
    slices = sorted(
        (tuple(map(int, match.groups())), path)
        for path in folder.glob(_out_lock_name(job, "*"))
        if (match := named.fullmatch(path.name))
    )
    locks = [("", folder / _out_lock_name(job, None)), *((f"slice {index}/{count} by ", path) for (index, count), path in slices)]
    held = [f"{part}{holder}" for part, path in locks if (holder := lock_holder(path)) is not None]
    return "; ".join(held) or None


def _out_lock_name(job: str, label: str | None) -> str:
    """The lock file of a ``job``'s ``--out`` (``.export.lock``), or of its slice ``label`` (``.predict.slice-1-of-4.lock``)."""
    return f".{job}.lock" if label is None else f".{job}.slice-{label}.lock"


def lock_holder(lock_file: Path) -> str | None:
    """The holder line of ``lock_file`` (``pid 4242 on node07, started ...``) while a process holds it, else None.

    For ``info``, which says whether a run folder is being trained into. It takes a shared lock on the holder byte
    and lets go at once, writing nothing: a job starting in that instant waits for it to let go, and is not refused.
    A lock file left by a job that has ended holds a stale line, which is why the lock, not the file, is asked.
    Where the system locks no files with ``fcntl`` (Windows), None.

    Parameters
    ----------
    lock_file : Path
        A lock file :func:`held_lock` holds; a missing one is held by no one.
    """
    try:
        import fcntl
    except ImportError:
        return None
    try:
        handle = open(lock_file)
    except OSError:
        return None
    with handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, _HOLDER_BYTE)
        except OSError as error:
            if error.errno in (errno.EACCES, errno.EAGAIN):
                return _holders(handle)
        return None  # held by no one (closing the file lets go of the lock), or not lockable here


def _write_line(handle: IO[str], holder: str) -> None:
    """Append ``holder`` to the lock file and lock the byte of its line (:data:`_LINE_BYTES`), where ``fcntl`` is.

    The file is opened to append, so lines of shared holders writing at once do not overwrite each other; the
    offset after the write, less the line, is where this one starts.
    """
    data = holder.encode()
    os.write(handle.fileno(), data)
    try:
        import fcntl
    except ImportError:
        return
    start = os.lseek(handle.fileno(), 0, os.SEEK_CUR) - len(data)
    fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _LINE_BYTES + start)


def _holders(handle: Any) -> str:
    """Who holds the lock, from its file: the lines of the holders still there (several joined by ``; ``).

    A line whose byte no one locks was left by a holder that has ended (a reader that ended while others read on,
    a job killed). When no line is held (no ``fcntl``, or a holder between writing its line and locking it), the
    newest line; ``another process`` for an empty file (a holder that could not write).

    Parameters
    ----------
    handle : file object
        The lock file, open to read; its position is left at the end.
    """
    handle.seek(0)
    lines, start = [], 0
    for line in handle.buffer.read().splitlines(keepends=True):
        if line.strip():
            lines.append((start, line.decode(errors="replace").strip()))
        start += len(line)
    live = [line for start, line in lines if _line_held(handle, start)]
    return "; ".join(live) or (lines[-1][1] if lines else "another process")


def _line_held(handle: IO[str], start: int) -> bool:
    """Whether a holder locks the byte of the line at ``start`` (:data:`_LINE_BYTES`); False without ``fcntl``.

    Asked by a shared lock taken and let go at once: this process holds no line of the file it asks about.
    """
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fcntl.lockf(handle, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, _LINE_BYTES + start)
    except OSError as error:
        return error.errno in (errno.EACCES, errno.EAGAIN)
    fcntl.lockf(handle, fcntl.LOCK_UN, 1, _LINE_BYTES + start)
    return False


def _still_there(handle: IO[str], lock_file: Path) -> bool:
    """Whether ``handle`` is the file at ``lock_file`` now (a holder that removes its lock file may have done so)."""
    try:
        there = os.stat(lock_file)
    except FileNotFoundError:
        return False
    ours = os.fstat(handle.fileno())
    return (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino)


def _alone(handle: Any) -> bool:
    """Whether a shared holder of ``handle``'s file is its only holder (it then holds it exclusively).

    Without ``fcntl`` (Windows) no shared lock was taken, and the file is left to whoever deletes it last.
    """
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _JOB_BYTE)
    except OSError:  # another holds it, or the file is open to read only
        return False
    return True


def _lock_without_waiting(handle: Any, shared: bool = False) -> bool:
    """Lock ``handle``'s file for this process, or raise ``OSError`` (``EACCES``, ``EAGAIN``) if another job holds it.

    POSIX record locks (``fcntl``): the job byte without waiting, then the holder byte, waiting only
    while :func:`lock_holder` holds it for its instant (no job waits there: a job reaches it holding the
    job byte, which refuses every other job but shared ones, whose holder byte lock does not conflict).
    On Windows, where there is no ``fcntl``, a ``msvcrt`` byte lock, which the system also drops when
    the process ends, however it ends. A lock file made with ``O_EXCL`` would outlive a killed job and
    refuse every requeue. Returns ``False`` when the platform has neither, or no shared form, so the
    block runs unheld.

    Parameters
    ----------
    handle : file object
        The open lock file; its position is left at the start.
    shared : bool
        The shared form (:func:`held_lock`).
    """
    try:
        import fcntl
    except ImportError:
        fcntl = None  # type: ignore[assignment]
    if fcntl is not None:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        fcntl.lockf(handle, mode | fcntl.LOCK_NB, 1, _JOB_BYTE)
        fcntl.lockf(handle, mode, 1, _HOLDER_BYTE)
        return True
    if shared:
        return False
    try:
        import msvcrt
    except ImportError:
        return False
    handle.seek(_MSVCRT_LOCK_OFFSET)
    try:
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    finally:
        handle.seek(0)
    return True
