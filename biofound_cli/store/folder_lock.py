"""One process at a time in a folder: a lock file the system releases when its holder ends, however it ends.

Training holds its run folder (``runs/NAME/.lock``, :meth:`biofound_cli.training.run_folder.RunFolder.held`),
``export``, ``evaluate``, ``predict`` and ``preprocess`` their ``--out`` (``.export.lock``, ``.evaluate.lock``,
``.predict.lock``, ``.preprocess.lock``, which the slices of ``predict --shard`` or ``preprocess --shard`` of one count
share, each holding its own besides: :func:`held_out_folder`) and ``pack`` its ``--out`` (``.pack.lock``), so two jobs given the
same folder (a second ``sbatch``, a CI matrix, two shells) do not write into it at once: the second is refused
in one line naming the first. ``finetune``, ``pretrain``, ``evaluate`` and ``export --split`` hold the packed
folder they read with the shared form of pack's lock (:func:`biofound_cli.store.packer.held_for_reading`), and
``pack`` the shard folder it reads with that of preprocess's (:func:`held_to_read`): any number read it at once,
and a job writing into it is refused while they do.

A lock file has two bytes that matter. Jobs lock :data:`_JOB_BYTE` without waiting, which is where one job refuses
another. ``info`` asks (:func:`lock_holder`) by locking :data:`_HOLDER_BYTE` for an instant, which a job locks once it
holds the job byte, waiting out such an instant: so the probe never refuses a job starting as it looks.
Each holder also locks one byte for its own line (:data:`_LINE_BYTES` past the line's start), so a refused job
names the holders still there, not a reader that has ended while others read on.

On Linux the locks are open-file-description locks (``F_OFD_SETLK``), owned by the holder's open file rather than
by its process: POSIX record locks (``lockf``, used on other Unix systems) are all dropped when the process closes
any descriptor of the file, so a second reader of one packed folder ending, or ``info``'s question asked, in the
process of a holder let go of its lock unseen. Two holders in one process now refuse each other as two processes
do, and a forked worker closes the holder's file as it starts (:func:`_close_in_child`), as it never inherited a
record lock.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import struct
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from biofound_cli.errors import UsageError

if TYPE_CHECKING:
    from biofound_cli.store.slices import Slice

try:
    import fcntl
except ImportError:  # Windows: an exclusive holder locks with msvcrt, a shared one runs unheld
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

_OFD = fcntl is not None and hasattr(fcntl, "F_OFD_SETLK") and struct.calcsize("l") == 8
"""Whether to lock with open-file-description locks: Linux on a 64-bit build, where ``struct flock`` is
:data:`_FLOCK` (a kernel before 3.15 refuses them with ``EINVAL``, and :func:`_lock` falls back to ``lockf``)."""

_FLOCK = "hhqqi4x"
"""``struct flock`` of 64-bit Linux: type, whence, start, length, pid (0 for an open-file-description lock)."""

_HELD: set[IO[str]] = set()
"""The lock files this process holds, which a forked child closes (:func:`_close_in_child`)."""

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
    admits: Callable[[str], bool] | None = None,
) -> Iterator[None]:
    """Hold ``lock_file`` for this process while the block runs; refuse when another process holds it.

    The lock is an ``fcntl`` lock of this open file (a ``msvcrt`` byte lock on Windows): the kernel (or the NFS lock
    manager) drops it when the process ends, SIGKILL included, and forked workers do not keep it.
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
    admits : callable | None
        For a shared holder: whether it may hold beside the holder of a line (``pid ..., for slice 1/4``). Once its
        own line is in, it is refused, ``busy`` naming them, while another holder's line is not admitted; of two
        starting at once, at least the later to look is refused.

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
            else:
                _HELD.add(handle)
            handle.seek(0)
            holder = f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}"
            holder += f", {note}\n" if note else "\n"
            # Unbuffered, and a full disk is no reason to refuse: the lock holds without its line (a refused job
            # then names "another process"), and the work itself meets the full disk where it can name its file.
            # A reader that may not write the folder holds the lock without its line too. A shared holder adds its
            # line to those of the others (a writer holds alone: its line is the file's only one).
            own = None
            with suppress(OSError):
                if not shared:
                    handle.truncate()
                own = _write_line(handle, holder)
            # Its own line is left out before the others are asked: asking a byte it holds would let go of it.
            lines = [(start, line) for start, line in _lines(handle) if start != own and not admits(line)] if admits else []
            others = [line for _, line in _live_lines(handle, lines)]
            if others:
                _HELD.discard(handle)
                raise UsageError(busy("; ".join(others)))
            try:
                yield
            finally:
                _HELD.discard(handle)
                if remove and (not shared or _alone(handle)):
                    with suppress(OSError):  # Windows cannot delete an open file: it stays, unlocked, for the next
                        lock_file.unlink()
            return


@contextmanager
def held_out_folder(folder: Path, job: str, doing: str, part: Slice | None = None) -> Iterator[None]:
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
        with its own summary and journal): that slice's own lock (``.predict.slice-1-of-4.lock``), so the other
        slices run beside it, and ``.<job>.lock`` shared with the slices of as many (the other ``I/4``). A run
        without ``part`` holds that one alone, so it and any slice run refuse each other, and so do slices of
        different counts (``1/2`` and ``1/3`` split the recordings differently, and both would predict some).

    Raises
    ------
    UsageError
        Another process holds ``folder``: ``OUT is being exported into by pid 4242 on node07, started ...; ...``
        (``OUT is being predicted into for slice 1/4 by ...`` for a ``part``; ``... by pid ..., for slice 1/2; ...``
        naming slices a whole run or a slice of another count meets).
    """
    lock_file, unheld = (
        folder / _out_lock_name(job, None),
        f"the {job} folder is not held; make sure no other {job} writes into it",
    )

    def busy(holder: str, whose: str = "") -> str:
        if READING in holder:  # jobs reading the folder (:func:`held_to_read`): packs of a preprocess's --out
            return f"{folder} is read by {holder}; wait for that to end, then run the {job} again, or choose another --out"
        return f"{folder} is being {doing}{whose} by {holder}; wait for that {job} to end (or stop it), or choose another --out"

    if part is None:
        with held_lock(lock_file, busy, unheld, remove=True):
            yield
        return
    with (
        held_lock(
            folder / _out_lock_name(job, part.label), lambda holder: busy(holder, f" for slice {part}"), unheld, remove=True
        ),
        held_lock(
            lock_file,
            lambda holder: busy(holder if _SLICE_NOTE.search(holder) or READING in holder else f"{holder}, without --shard"),
            unheld,
            remove=True,
            shared=True,
            note=f"for slice {part}",
            admits=lambda line: (found := _SLICE_NOTE.search(line)) is not None and int(found[1]) == part.count,
        ),
    ):
        yield


READING = "reading it for"
"""What the holder line of a job reading a folder says after its start (:func:`held_to_read`): ``reading it for pack``."""


@contextmanager
def held_to_read(folder: Path, writer: str, reader: str, busy: Callable[[str], str]) -> Iterator[None]:
    """Hold ``folder``, the ``--out`` of a ``writer`` job, for a ``reader`` job: refused while a ``writer`` writes it.

    The shared form of the writer's lock (``.<writer>.lock``, :func:`held_out_folder`): any number of readers hold it
    at once (``pack`` of a preprocessed folder, ``finetune`` of a packed one), and a ``writer`` into it is refused
    while they do, in one line naming them. A reader needs no write access: it opens the lock file to read where it
    may not write it, and a folder it may not write that holds no lock file yet (a read-only copy, which no
    ``writer`` of this user can write either) is not held. A missing folder is not held.

    Parameters
    ----------
    folder : Path
        The folder read.
    writer : str
        The command that writes it (``preprocess``), named in the lock file's name.
    reader : str
        The command reading it (``pack``), named in its holder line (``reading it for pack``).
    busy : callable
        The one-line refusal, given the holder line of the ``writer`` (or of its slices) writing it now.

    Raises
    ------
    UsageError
        A ``writer`` writes into ``folder`` now: ``busy(holder)``.
    """
    lock_file = folder / _out_lock_name(writer, None)
    if not folder.is_dir() or not (lock_file.exists() or os.access(folder, os.W_OK)):
        yield
        return
    with held_lock(
        lock_file,
        busy,
        "",
        opened=lambda: _opened_to_read(lock_file),
        remove=True,
        shared=True,
        note=f"{READING} {reader}",
        admits=lambda line: READING in line,  # the writer's slices hold it shared too
    ):
        yield


def _opened_to_read(lock_file: Path) -> IO[str]:
    """``lock_file`` opened to append, or to read where this user may not write it (a shared lock only reads)."""
    try:
        return lock_file.open("a+")
    except PermissionError:
        return lock_file.open("r")


_SLICE_NOTE = re.compile(r", for slice \d+/(\d+)$")
"""The end of the holder line of a slice run (:func:`held_out_folder`), with its count."""


def out_folder_running(folder: Path, job: str) -> str:
    """Whether a ``job`` writes into ``folder``, its ``--out``, now (:func:`held_out_folder`), for ``info``.

    Every run into it holds ``.<job>.lock``, the slices of an array job each with its line there, so that file
    names them all; the lines of jobs reading the folder (:func:`held_to_read`) are not its runs. A lock file left by
    a run that was killed is held by no one.

    Parameters
    ----------
    folder : Path
        The output folder.
    job : str
        The command (``predict``).

    Returns
    -------
    str
        ``running: pid 4242 on node07, started ...`` (the slices' lines joined by ``; ``: ``..., for slice 1/4; pid
        ...``), or ``not running``.
    """
    holders = lock_holder(folder / _out_lock_name(job, None))
    writers = "; ".join(line for line in (holders or "").split("; ") if line and READING not in line)
    return f"running: {writers}" if writers else "not running"


def _out_lock_name(job: str, label: str | None) -> str:
    """The lock file of a ``job``'s ``--out`` (``.export.lock``), or of its slice ``label`` (``.predict.slice-1-of-4.lock``)."""
    return f".{job}.lock" if label is None else f".{job}.slice-{label}.lock"


def lock_holder(lock_file: Path) -> str | None:
    """The holder line of ``lock_file`` (``pid 4242 on node07, started ...``) while a process holds it, else None;
    the lines of shared holders, joined by ``; ``.

    For ``info``, which says whether a run folder is being trained into, or a predict folder predicted into. It
    takes a shared lock on the holder byte and lets go at once, writing nothing: a job starting in that instant
    waits for it to let go, and is not refused. A lock file left by a job that has ended holds a stale line, which
    is why the lock, not the file, is asked.
    Where the system locks no files with ``fcntl`` (Windows), None.

    Parameters
    ----------
    lock_file : Path
        A lock file :func:`held_lock` holds; a missing one is held by no one.
    """
    if fcntl is None:
        return None
    try:
        handle = open(lock_file)
    except OSError:
        return None
    with handle:
        try:
            _lock(handle, fcntl.LOCK_SH, _HOLDER_BYTE)
        except OSError as error:
            if error.errno in (errno.EACCES, errno.EAGAIN):
                return _holders(handle)
            return None  # not lockable here
        # No job holds it alone; shared holders (readers, a predict's slices) may, each locking its own line.
        return "; ".join(line for _, line in _live_lines(handle)) or None  # closing the file lets go of the probe


def _write_line(handle: IO[str], holder: str) -> int | None:
    """Append ``holder`` to the lock file and lock the byte of its line (:data:`_LINE_BYTES`), where ``fcntl`` is.

    The file is opened to append, so lines of shared holders writing at once do not overwrite each other; the
    offset after the write, less the line, is where this one starts, which it returns (None without ``fcntl``).
    """
    data = holder.encode()
    os.write(handle.fileno(), data)
    if fcntl is None:
        return None
    start = os.lseek(handle.fileno(), 0, os.SEEK_CUR) - len(data)
    _lock(handle, fcntl.LOCK_EX, _LINE_BYTES + start)
    return start


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
    lines = _lines(handle)
    live = [line for _, line in _live_lines(handle, lines)]
    return "; ".join(live) or (lines[-1][1] if lines else "another process")


def _live_lines(handle: Any, lines: list[tuple[int, str]] | None = None) -> list[tuple[int, str]]:
    """The lines of ``handle``'s file (or ``lines`` of it) whose holders are still there, by where each starts."""
    return [(start, line) for start, line in (_lines(handle) if lines is None else lines) if _line_held(handle, start)]


def _lines(handle: Any) -> list[tuple[int, str]]:
    """The holder lines of ``handle``'s file by where each starts; its position is left at the end."""
    handle.seek(0)
    lines, start = [], 0
    for line in handle.buffer.read().splitlines(keepends=True):
        if line.strip():
            lines.append((start, line.decode(errors="replace").strip()))
        start += len(line)
    return lines


def _line_held(handle: IO[str], start: int) -> bool:
    """Whether a holder locks the byte of the line at ``start`` (:data:`_LINE_BYTES`); False without ``fcntl``.

    Asked by a shared lock taken and let go at once: ``handle`` holds no line it asks about (its holder skips its own).
    """
    if fcntl is None:
        return False
    try:
        _lock(handle, fcntl.LOCK_SH, _LINE_BYTES + start)
    except OSError as error:
        return error.errno in (errno.EACCES, errno.EAGAIN)
    _lock(handle, fcntl.LOCK_UN, _LINE_BYTES + start)
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
    if fcntl is None:
        return True
    try:
        _lock(handle, fcntl.LOCK_EX, _JOB_BYTE)
    except OSError:  # another holds it, or the file is open to read only
        return False
    return True


def _lock_without_waiting(handle: Any, shared: bool = False) -> bool:
    """Lock ``handle``'s file for this process, or raise ``OSError`` (``EACCES``, ``EAGAIN``) if another job holds it.

    ``fcntl`` locks (:func:`_lock`): the job byte without waiting, then the holder byte, waiting only
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
    if fcntl is not None:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        _lock(handle, mode, _JOB_BYTE)
        _lock(handle, mode, _HOLDER_BYTE, wait=True)
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


def _lock(handle: Any, mode: int, byte: int, *, wait: bool = False) -> None:
    """Lock (or, with ``LOCK_UN``, let go of) one ``byte`` of ``handle``'s file for its open file, where ``fcntl`` is.

    An open-file-description lock where the system has them (:data:`_OFD`), else a POSIX record lock.

    Parameters
    ----------
    handle : file object
        The open lock file.
    mode : int
        ``fcntl.LOCK_SH``, ``fcntl.LOCK_EX`` or ``fcntl.LOCK_UN``.
    byte : int
        The byte's offset.
    wait : bool
        Wait while another holds it, rather than raise ``OSError`` (``EACCES`` or ``EAGAIN``).
    """
    global _OFD
    if _OFD:
        kind = {fcntl.LOCK_SH: fcntl.F_RDLCK, fcntl.LOCK_EX: fcntl.F_WRLCK}.get(mode, fcntl.F_UNLCK)
        try:
            fcntl.fcntl(handle, fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK, struct.pack(_FLOCK, kind, 0, byte, 1, 0))
            return
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            _OFD = False  # a kernel without them: record locks, as on other Unix systems
    fcntl.lockf(handle, mode if wait or mode == fcntl.LOCK_UN else mode | fcntl.LOCK_NB, 1, byte)


def _close_in_child() -> None:
    """Close, in a forked child (a loader or pool worker), the lock files its parent holds.

    An open-file-description lock lasts while any process has the file open, so a child that kept it would hold the
    folder after its parent let go or was killed; a record lock the child never had.
    """
    for handle in _HELD:
        with suppress(OSError, ValueError):
            handle.close()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)
