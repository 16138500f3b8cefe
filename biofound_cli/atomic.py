"""Writing files and folders whole: a temporary name beside the target, then a rename.

A reader (another process, a rerun after a crash, ``biofound info``) sees either the previous
target or the complete new one, never half a file. The temporary lives in the target's own
folder, so the final :func:`os.replace` is a rename within one file system and therefore atomic.

Temporary names are hidden and carry the target's name, the machine (:func:`host_label`), the
process id, a random token and ``.tmp``: ``.report.json.node07.4242.9f3ac1d2.tmp``. The token
keeps two threads of one process, or two machines that share a folder and happen to run the same
process id, from writing to the same temporary; the machine's name lets a later run tell the
temporaries of its own machine's dead processes, which it may delete, from those of another node
writing into a shared folder, whose process ids mean nothing here (:func:`remove_stale_temporaries`).
The shard writer (:class:`biofound_cli.store.shards.ShardWriter`) names its temporaries so too, and
the shard scanner (:func:`biofound_cli.store.shard_scan.find_shards`) skips every name
:func:`parse_temporary_name` reads, so a temporary is never read as data.

Files come out with the mode a plain ``open(path, "w")`` would give them (``0o666`` less the
umask, usually ``0644``), whatever the writer used for the temporary: safetensors, for one,
creates its file ``0600``, which made checkpoints unreadable to the rest of a shared group.

Nothing here calls ``fsync`` (nor did the hand-written writers this module replaced): the
rename protects readers against a crashed or interrupted *process*, not against a power cut.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import shutil
import socket
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator, Sequence


def host_label() -> str:
    """This machine's name as temporary names carry it: the first label of its host name, in ``[A-Za-z0-9-]``.

    ``node07.cluster.example.org`` gives ``node07``; any other character (``_``, a non-ASCII
    letter) becomes ``-``, so the label never holds a dot and a name is parsed back from its right
    end (:func:`parse_temporary_name`). A machine without a host name is ``unnamed``.
    """
    label = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".", 1)[0])
    return label or "unnamed"


def temporary_name(path: Path, *, suffix_hint: str = "", tag: str = "tmp") -> Path:
    """A fresh hidden name beside ``path`` for writing it: ``.<name>.<host>.<pid>.<token>.<tag><suffix_hint>``.

    Parameters
    ----------
    path : Path
        The final name.
    suffix_hint : str
        Appended after ``.<tag>`` for writers that choose the format by the file's suffix
        (``".onnx"``, ``".png"``); empty by default, so the temporary never matches a glob of
        finished files such as ``*.h5``.
    tag : str
        What the name is for (``tmp`` for a file being written, ``old`` for a folder moved aside).

    Returns
    -------
    Path
        The name; nothing is created.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{host_label()}.{os.getpid()}.{secrets.token_hex(4)}.{tag}{suffix_hint}")


@dataclass(frozen=True)
class TemporaryName:
    """What a name :func:`temporary_name` gave says: whose temporary it is, and of what."""

    target: str
    """The name of the file or folder being written (or moved aside)."""
    host: str | None
    """The machine (:func:`host_label`); ``None`` for a name given before names carried it."""
    pid: int
    tag: str
    """``tmp`` (being written) or ``old`` (moved aside by :func:`atomic_folder`)."""


_FIELDS = r"(?:\.(?P<host>[A-Za-z0-9-]+))?\.(?P<pid>\d+)\.[0-9a-f]{8}\.(?P<tag>tmp|old)(?:\..*)?"
"""What :func:`temporary_name` puts after the target's name: host (absent in older names), pid, token, tag, suffix hint."""


def parse_temporary_name(name: str, target: str | None = None) -> TemporaryName | None:
    """Read back a name :func:`temporary_name` gave; ``None`` for any other name.

    Parameters
    ----------
    name : str
        A file or folder name (no folder).
    target : str | None
        The name of the file it would be a temporary of, when known: the fields are then read from
        what follows it, which is unambiguous. Without it the shortest target that leaves a host,
        pid, token and tag is taken (a host label holds no dot), so a name of the older form
        without a host whose target holds a dot (``.a.csv.42.9f3ac1d2.tmp``) reads as host
        ``csv``, a machine other than this one unless it is named so.
    """
    pattern = re.escape(target) if target is not None else ".+?"
    match = re.fullmatch(rf"\.(?P<target>{pattern}){_FIELDS}", name, flags=re.S)
    if match is None:
        return None
    return TemporaryName(match.group("target"), match.group("host"), int(match.group("pid")), match.group("tag"))


def _stale(name: TemporaryName | None) -> bool:
    """Whether ``name`` is a temporary being written by a process of this machine that is gone.

    Only this machine's process ids can be asked about: a temporary of another node writing into a
    shared folder, or of a name without its machine (written by an older biofound), is never stale.
    """
    return name is not None and name.tag == "tmp" and name.host == host_label() and not process_alive(name.pid)


def remove_stale_temporaries(path: Path) -> int:
    """Delete the temporaries of ``path`` (:func:`temporary_name`, files or folders) left by a dead process of this machine.

    An ``atomic_path`` removes its temporary on any exception, Ctrl-C and SIGTERM included, but
    not when the process is killed outright (SIGKILL, the kernel's out-of-memory killer); a
    writer of large files calls this before writing so such a leftover does not stay for good.
    A temporary of a process still running on this machine, one written on another machine (a
    cluster node writing into the same shared folder) and one whose name carries no machine
    (written by an older biofound) are left alone.

    Parameters
    ----------
    path : Path
        The final name whose temporaries are looked for, beside it.

    Returns
    -------
    int
        How many were removed.
    """
    import glob

    path = Path(path)
    return len(_remove_stale(path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"), path.name))


def remove_stale_temporaries_in(folder: Path) -> list[Path]:
    """Delete every temporary in ``folder`` (not its sub-folders) left by a dead process of this machine.

    :func:`remove_stale_temporaries` for a folder of many files written one by one (``predict``'s
    tables and PNGs), in one listing of the folder rather than one per file. The same
    temporaries are left alone: another machine's, a running process's, and those without a machine.

    Parameters
    ----------
    folder : Path
        The folder to clear; nothing happens when it does not exist.

    Returns
    -------
    list of Path
        The temporaries removed.
    """
    folder = Path(folder)
    return _remove_stale(sorted(folder.iterdir())) if folder.is_dir() else []


def _remove_stale(candidates: Iterable[Path], target: str | None = None) -> list[Path]:
    """Delete the stale temporaries (:func:`_stale`) among ``candidates``, of ``target`` or of any name; those removed."""
    stale = [path for path in candidates if _stale(parse_temporary_name(path.name, target))]
    for path in stale:
        _remove(path)  # a file, or a staging folder (staged_files)
    return stale


def _remove(path: Path) -> None:
    """Delete ``path``, a folder with its contents or a file; a link is removed, never followed.

    A staging folder whose swap was cut (:func:`_finish_cut_swap`) has its swap finished first.
    """
    if path.is_dir() and not path.is_symlink():
        _finish_cut_swap(path)
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_leftovers(folder: Path, targets: Collection[str] | None = None) -> list[Path]:
    """Clear what writers killed outright (SIGKILL, a node failure) left in ``folder``.

    A temporary (file or folder) is deleted; a staging folder whose swap was cut
    (:func:`staged_files`) has its swap finished first, so ``folder`` holds the new files whole; then a
    folder that :func:`atomic_folder` had moved aside (``.old``) is put back when its target is missing,
    since the kill then came between its two renames. Unlike :func:`remove_stale_temporaries` neither
    the machine nor the process is asked about, because the writer may have run on another machine sharing the folder: call
    it only where no other process can be writing in ``folder`` (e.g. while holding the run
    folder's lock), or none can be writing ``targets``.

    Parameters
    ----------
    folder : Path
        The folder to clear (not its sub-folders); nothing happens when it does not exist.
    targets : collection of str | None
        Only the leftovers of the files (or folders) of these names; None clears every one.

    Returns
    -------
    list of Path
        The leftovers removed or put back, as they were named.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    leftovers = sorted(folder.iterdir())
    # Cut swaps first: the files they moved aside are theirs to delete, not to put back.
    for leftover in sorted(leftovers, key=lambda path: not (path / SWAP_JOURNAL).is_file()):
        name = parse_temporary_name(leftover.name)
        if name is None or (targets is not None and name.target not in targets) or not os.path.lexists(leftover):
            continue
        target = folder / name.target
        if name.tag == "old" and not (target.exists() or target.is_symlink()):
            os.replace(leftover, target)
        else:
            _remove(leftover)
        found.append(leftover)
    return found


STAGING = "staging"
"""What the name of a hidden staging folder of :func:`staged_files` starts with (:func:`staging_name`)."""


def staging_name(job: str) -> str:
    """The target name of ``job``'s staging folders, each named as its temporary: ``.staging-<job>.<host>.<pid>.<token>.tmp``.

    Parameters
    ----------
    job : str
        The command writing them (``evaluate``, ``export``, ``pack``, ``predict``), in ``[a-z]``: two commands
        given one folder keep their staging folders apart, so each clears only its own
        (:func:`remove_staging_leftovers`).
    """
    return f"{STAGING}-{job}"


def remove_staging_leftovers(folder: Path, job: str, others: Collection[str] = ()) -> list[Path]:
    """Clear the staging folders runs of ``job`` killed outright left in ``folder``, on any machine, finishing a cut swap.

    The one rule of a command that holds ``folder`` with its lock (``evaluate``, ``export`` and ``pack``
    their ``--out``, :mod:`biofound_cli.store.folder_lock`) as it starts. A staging folder of ``job`` in
    ``folder`` is then a dead run's wherever it ran: a live one's writer would hold that lock. Its process
    id is not asked about, since it means nothing on another machine, and a pack or export killed on one
    node and run again on another would otherwise leave its staging folder, as large as what it wrote, for
    good. Another command's staging folder is never removed, although it is named alike: that command
    holds another lock (``predict`` none), so it may be live on another machine writing into the same
    folder. A swap cut by the kill is finished (:func:`_finish_cut_swap`), so ``folder`` holds that run's
    files whole. A staging folder of a biofound that did not name the job (``.staging.<host>...``) is
    removed only when it is a dead process's of this machine (:func:`remove_stale_temporaries`).

    Parameters
    ----------
    folder : Path
        The folder ``job`` holds.
    job : str
        The command holding it (:func:`staging_name`).
    others : collection of str
        The names of other files ``job`` alone writes in ``folder`` whose temporaries go too (an older pack's).

    Returns
    -------
    list of Path
        The leftovers removed or put back, as they were named.
    """
    remove_stale_temporaries(Path(folder) / STAGING)
    return remove_leftovers(folder, {staging_name(job), *others})


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (as any user).

    Parameters
    ----------
    pid : int
        The process id.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
"""What a write into a full file system or past a user's quota fails with."""

LOW_SPACE_BYTES = 1 << 20
"""Less room than this left after a failed write means the write filled the disk."""


def disk_full_error(error: BaseException, path: Path) -> OSError | None:
    """The ``OSError`` (ENOSPC or EDQUOT, naming ``path``) behind a failed write, or ``None`` for another failure.

    Writers of other libraries lose the ``OSError``: safetensors raises ``SafetensorError("...
    No space left on device (os error 28)")`` and ``torch.save`` a ``RuntimeError`` about an
    "unexpected pos" in its zip writer. The errno is read from the message where it is there;
    otherwise a disk left with almost no room (:data:`LOW_SPACE_BYTES`) is taken as the cause,
    so call this before the partial file is deleted.

    Parameters
    ----------
    error : BaseException
        What the write raised.
    path : Path
        The file or folder being written, named in the returned error.
    """
    code = error.errno if isinstance(error, OSError) else None
    if code is None:
        match = re.search(r"os error (\d+)", str(error))
        code = int(match.group(1)) if match else None
    if code is None and not isinstance(error, OSError) and _free_bytes(Path(path)) < LOW_SPACE_BYTES:
        code = errno.ENOSPC
    return OSError(code, os.strerror(code), str(path)) if code in NO_SPACE_ERRNOS else None


def _free_bytes(path: Path) -> int:
    """Bytes this user may still write on the file system of ``path`` (its nearest existing folder)."""
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                break
    return LOW_SPACE_BYTES


def default_file_mode() -> int:
    """The permission bits a new file gets from ``open``: ``0o666`` less the process's umask.

    Linux states the umask in ``/proc/self/status``; elsewhere it is read by setting it and
    putting it back (``os.umask`` has no read-only form).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _give_default_mode(path: Path) -> None:
    """Set a finished temporary file to the usual mode (a writer may have created it ``0600``)."""
    if path.is_file() and not path.is_symlink():
        os.chmod(path, default_file_mode())


def _named(error: OSError, path: Path, temporary: Path) -> OSError | None:
    """``error`` naming ``path`` when it names no file or only the hidden ``temporary``; ``None`` when it names another.

    A write or flush that fails (most often for want of space) raises an ``OSError`` without a
    file name (only ``open`` names one), so the one line for a full disk could not say which file
    did not fit.
    """
    if error.errno is None or (error.filename is not None and Path(error.filename) != temporary):
        return None
    named = type(error)(error.errno, error.strerror, str(path))
    named.__traceback__ = error.__traceback__
    return named


@contextmanager
def atomic_path(path: Path, *, suffix_hint: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The parent folder is created. The block writes the file at the yielded path (which does not
    exist yet). When the block exits normally the file replaces ``path``; when it raises
    (any exception, ``KeyboardInterrupt`` and ``SystemExit`` included), or the rename itself
    fails, the temporary is deleted and ``path`` is left as it was.

    Parameters
    ----------
    path : Path
        The final file name.
    suffix_hint : str
        Suffix the temporary name ends with, for writers that pick the format from it
        (pass ``path.suffix``); see :func:`temporary_name`.

    Yields
    ------
    Path
        Where to write.

    Examples
    --------
    >>> with atomic_path(out / "train.h5") as temporary:  # doctest: +SKIP
    ...     with h5py.File(temporary, "w") as handle:
    ...         handle["x"] = x
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path, suffix_hint=suffix_hint)
    try:
        yield temporary
        _give_default_mode(temporary)
        os.replace(temporary, path)
    except OSError as error:
        named = _named(error, path, temporary)
        if named is None:
            raise
        raise named from None
    finally:
        # After a successful rename there is nothing left to delete, nor when none was made: a read-only
        # file system refuses to remove even a name that is not there, and that refusal hid the first.
        if os.path.lexists(temporary):
            temporary.unlink()


@contextmanager
def atomic_paths(paths: Sequence[Path]) -> Iterator[list[Path]]:
    """Yield where to write each of ``paths``, files of one folder; they all move in when the block succeeds, or none.

    :func:`staged_files` for files that describe one thing together (``predict``'s PNG of a recording and
    its table): one that did not fit (a full disk) leaves every ``path`` as it was, so an earlier run's
    files are never left beside one of this run's. They move in in the order given, the last last; a swap
    cut by a kill is finished by the next clearing of this machine's dead processes' temporaries
    (:func:`remove_stale_temporaries_in`, which ``predict`` runs as it starts).

    Parameters
    ----------
    paths : sequence of Path
        The final file names, all in one folder, each written at the path yielded in its place.

    Yields
    ------
    list of Path
        Where to write, in the order of ``paths``: files of the same names in a hidden staging folder.
    """
    paths = [Path(path) for path in paths]
    folder = paths[0].parent
    if any(path.parent != folder for path in paths):
        raise ValueError(f"atomic_paths moves files of one folder in together, not {[str(path) for path in paths]}")
    with staged_files(folder, "predict", order=[path.name for path in paths]) as staging:
        yield [staging / path.name for path in paths]


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` whole (see :func:`atomic_path`).

    Parameters
    ----------
    path : Path
    text : str
        Written as UTF-8 (never the locale's default encoding).

    Returns
    -------
    Path
        ``path``.
    """
    # Encoded here and written as bytes: the same file on every OS (no newline translation).
    return write_bytes_atomic(path, text.encode("utf-8"))


def strict_json(data: Any) -> str:
    """``data`` as the indented JSON text of every file biofound writes: strict, NaN and inf (which JSON lacks) as ``null``.

    ``json.dumps`` writes them as ``NaN`` and ``Infinity``, which strict readers (JavaScript, ``jq``) refuse.
    Numpy scalars are written as the numbers they hold; other values JSON does not know as their ``str``.

    Parameters
    ----------
    data : Any
        The object to write.
    """
    return json.dumps(finite(data), indent=2, allow_nan=False, default=str) + "\n"


def finite(value: Any) -> Any:
    """``value`` with every NaN and inf replaced by ``None`` (which JSON has), in dicts, lists and tuples too.

    The one rule for a number biofound writes or reports: metrics, losses and every JSON file alike.

    Parameters
    ----------
    value : Any
        A number (a numpy scalar or a 0-d tensor is read as the Python number it holds), or a
        dict, list or tuple of them; anything else is returned as it is.
    """
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # a numpy scalar or a 0-d tensor
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def write_json_atomic(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` to ``path`` as :func:`strict_json`, atomically.

    Parameters
    ----------
    path : Path
        The JSON file.
    data : dict
        The object to write.
    """
    return write_text_atomic(path, strict_json(data))


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole (see :func:`atomic_path`).

    Parameters
    ----------
    path : Path
        The file to write; its folder is created when missing.
    data : bytes
        The whole content of the file.

    Returns
    -------
    Path
        ``path``.
    """
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield a new empty temporary folder beside ``path``; it becomes ``path`` when the block succeeds.

    For a folder written as a unit (several files that belong together, such as a checkpoint).
    On success an existing ``path`` (folder or file) is first moved aside under a hidden
    ``.old`` name, the temporary folder is renamed to ``path``, and the old one is deleted; a
    reader therefore sees the old folder, no folder for the instant between the two renames,
    then the new one, never a mixture. If the second rename fails the old folder is put back.
    When the block raises (``KeyboardInterrupt`` included) the temporary folder and everything
    in it is deleted and ``path`` is untouched.

    Parameters
    ----------
    path : Path
        The final folder name; its parent is created.

    Yields
    ------
    Path
        The temporary folder to fill.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    temporary.mkdir()
    previous: Path | None = None
    try:
        yield temporary
        if path.exists() or path.is_symlink():
            previous = temporary_name(path, tag="old")
            os.replace(path, previous)
        try:
            os.replace(temporary, path)
        except BaseException:
            if previous is not None:
                os.replace(previous, path)
                previous = None
            raise
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
        if previous is not None:
            _remove(previous)


@contextmanager
def staged_files(
    folder: Path, job: str, replaces: Collection[Path] = (), *, order: Sequence[str] | None = None
) -> Iterator[Path]:
    """Yield a hidden staging folder inside ``folder``; its files move into ``folder`` when the block succeeds.

    For several files that belong together but share a folder with files that stay (an export
    adding ``model.onnx`` beside an earlier ``model.safetensors``): nothing appears in
    ``folder`` until the block has written and checked every file. Then the files they replace
    (those of the same names, and ``replaces``) are moved aside under hidden ``.old`` names, the
    new files are renamed into place in the order they were written (so the file written last,
    an index such as ``config.json``, arrives last), and the old ones are deleted. When a rename
    fails (a directory that cannot grow on a full disk or past a quota, an I/O error) the files
    already moved go back: ``folder`` holds all the old files or all the new ones, never a mix.
    When the block raises, the staging folder and everything in it is deleted and ``folder`` is
    as it was; an ``OSError`` naming a file in the staging folder (a full disk) names that file's
    place in ``folder`` instead. It clears no leftovers: the staging folders a writer killed outright
    (SIGKILL, the out-of-memory killer) left behind, a swap it was killed in the middle of among them
    (:func:`_finish_cut_swap`), are its caller's to clear once as it starts, in one listing of ``folder``
    (:func:`remove_staging_leftovers` for a writer holding ``folder``, :func:`remove_stale_temporaries_in` for
    ``predict``, which holds none).

    Parameters
    ----------
    folder : Path
        The destination folder; created if missing.
    job : str
        The command writing, which names the staging folder (:func:`staging_name`).
    replaces : collection of Path
        Other files of ``folder`` that go when the new files move in (another export's).
    order : sequence of str | None
        The names of the files the block writes, in the order they move in; by default every file written,
        in the order written.

    Yields
    ------
    Path
        The staging folder to write into (files only; sub-folders are not moved).

    Raises
    ------
    OSError
        A rename failed, naming the file of ``folder`` it was for; ``folder`` is as it was.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = temporary_name(folder / staging_name(job))
    staging.mkdir()
    try:
        yield staging
        files = (
            sorted((file for file in staging.iterdir() if file.is_file()), key=lambda file: (file.stat().st_mtime_ns, file.name))
            if order is None
            else [staging / name for name in order]
        )
        for file in files:
            _give_default_mode(file)
        _swap_in(staging, [(file, folder / file.name) for file in files], [Path(path) for path in replaces])
    except OSError as error:
        # The staging folder is gone once this fails: a full disk named `.staging-evaluate.*.tmp/roc.png`, a file
        # the user never sees; its place in ``folder`` is the name they know.
        if error.filename is not None:
            error.filename = str(error.filename).replace(str(staging), str(folder))
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


SWAP_JOURNAL = ".swap.json"
"""What :func:`_swap_in` writes into its staging folder before its first rename: the swap to finish if it is cut."""


def _swap_in(staging: Path, moves: list[tuple[Path, Path]], replaces: list[Path]) -> None:
    """Rename each ``(new, target)`` of ``moves`` onto its target, all or none; the targets' old files and ``replaces`` go.

    The new files are in ``staging``, the targets in its parent folder. Before the first rename the swap is
    written into ``staging`` (:data:`SWAP_JOURNAL`): a process killed outright (SIGKILL) while the files move
    leaves some old files aside and some new ones still in ``staging``, which the next run's clearing of
    leftovers completes from it (:func:`_finish_cut_swap`), rather than putting back the old files it finds
    aside beside new ones. Raises the ``OSError`` of the rename that failed, naming the file of the folder
    it was for, once every rename done is undone.
    """
    folder = staging.parent
    targets = list(dict.fromkeys([*(target for _, target in moves), *replaces]))
    aside = [(target, temporary_name(target, tag="old")) for target in targets if target.is_file() or target.is_symlink()]
    moved: list[tuple[Path, Path]] = []  # (new file's place in folder, where it came from)
    journal = staging / SWAP_JOURNAL
    target = folder
    try:
        news = {target for _, target in moves}
        write_json_atomic(
            journal,
            {
                "moves": [new.name for new, _ in moves],
                "gone": [target.name for target in targets if target not in news],
                "aside": [waiting.name for _, waiting in aside],
            },
        )
        for target, waiting in aside:
            os.replace(target, waiting)
        for new, target in moves:
            os.replace(new, target)
            moved.append((target, new))
    except OSError as error:
        for place, origin in reversed(moved):
            os.replace(place, origin)
        for place, waiting in reversed(aside):
            if os.path.lexists(waiting):
                os.replace(waiting, place)
        journal.unlink(missing_ok=True)  # undone: nothing is left to finish
        raise OSError(error.errno, error.strerror, str(target)) from None
    for _, waiting in aside:
        waiting.unlink(missing_ok=True)


def _finish_cut_swap(staging: Path) -> None:
    """Finish the swap of ``staging`` (:func:`_swap_in`) that a kill cut; nothing when it holds no swap.

    Its new files were all written and checked before the swap began, so the swap is finished rather than
    undone, wherever it was cut: the new files still in ``staging`` move in, and the old files moved aside
    and those the swap replaces go. The folder then holds the new files whole, as if the swap had ended.
    """
    swap = read_json_object(staging / SWAP_JOURNAL)
    if swap is None:
        return
    folder = staging.parent
    for name in swap.get("moves", []):
        with suppress(FileNotFoundError):  # moved in before the cut
            os.replace(staging / name, folder / name)
    for name in [*swap.get("gone", []), *swap.get("aside", [])]:
        (folder / name).unlink(missing_ok=True)
    (staging / SWAP_JOURNAL).unlink()


def append_line(path: Path, line: str) -> None:
    """Add ``line`` and a newline to the end of ``path`` (created if missing), whole or not at all.

    A log of one JSON object a line (a run's ``metrics.jsonl``) grows so. On a full disk the write
    stops mid-line, and a file ending in a torn line is refused whole by ``jq`` and
    ``pandas.read_json(lines=True)``: the file is cut back to its old end, and the ``OSError``
    (which names no file when a write fails) names ``path``.

    Parameters
    ----------
    path : Path
        The file to append to.
    line : str
        One line, without its newline.
    """
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        end = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(data):  # a short write (the disk filling) is followed by the one that fails
                written += os.write(fd, data[written:])
        except OSError as error:
            with suppress(OSError):
                os.ftruncate(fd, end)
            raise OSError(error.errno, error.strerror, str(path)) from None
    finally:
        os.close(fd)


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; ``None`` when the file is missing, unreadable or holds no object.

    Parameters
    ----------
    path : Path
        A JSON file (``config.json``, a run's ``recipe.json``, an evaluation ``report.json``).
    """
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None
