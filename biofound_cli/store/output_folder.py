"""Making sure an output folder can be written before any work starts.

A folder that exists is not enough: a read-only file system, ``/proc`` or a folder without write
permission only refuses at the first write, which for ``pack`` comes after every shard header
was read and the split decided. Creating and removing one small file up front turns that late
traceback into one line and exit status 2 before anything is read.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from biofound_cli.errors import UsageError

PROBE_PREFIX = ".biofound-write-probe-"


def prepare_output_folder(path: Path, option: str = "--out") -> Path:
    """Create ``path`` if needed and check that a file can be written in it.

    Parameters
    ----------
    path : Path
        The output folder, given by ``option`` (or the recipe field it sets).
    option : str
        How the errors name where the folder came from: ``--out``, ``--dest``, ``HF_HUB_CACHE``.

    Returns
    -------
    Path
        ``path``, now an existing folder in which a file was just created and removed.

    Raises
    ------
    UsageError
        When the folder cannot be created (a file in the way, a read-only file system, ``/proc``)
        or a file cannot be created in it (no write permission).
    """
    problem = unwritable(Path(path), option)
    if problem is not None:
        raise UsageError("; ".join(problem))
    return Path(path)


def unwritable(path: Path, option: str = "--out") -> tuple[str, str] | None:
    """Why no file can be written in ``path`` (created if needed), and what to do; ``None`` when one can.

    A caller that can do without the folder (a read-only cache that already holds what is asked
    for) says the problem without the advice.

    Parameters
    ----------
    path : Path
        The output folder, given by ``option``.
    option : str
        How the problem names where the folder came from: ``--out``, ``--dest``, ``HF_HUB_CACHE``.
    """
    if path.exists() and not path.is_dir():
        return f"{option} {path}: a file is in the way of the output folder", "remove it or choose another folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"{option} {path}: the folder cannot be created ({_reason(error)})", "choose a folder you can write to"
    try:
        handle, probe = tempfile.mkstemp(dir=path, prefix=PROBE_PREFIX)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        return (
            f"{option} {path}: cannot write there ({_reason(error)})",
            "choose a folder you can write to, or fix its permissions",
        )
    return None


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


@contextmanager
def created_folders_removed_on_failure(path: Path) -> Iterator[None]:
    """Remove, when the block raises, the folders up to ``path`` that did not exist before it and are still empty.

    A failed command asked for ``--out a/b/c`` leaves neither ``c`` nor the ``a/b`` it created on the way.

    Parameters
    ----------
    path : Path
        The output folder the block may create (with its missing parents).
    """
    missing = missing_folders(path)
    try:
        yield
    except BaseException:
        remove_empty(missing)
        raise


def missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first (empty when ``path`` exists).

    Parameters
    ----------
    path : Path
        A folder about to be created with its missing parents.
    """
    path = Path(path).absolute()
    return [folder for folder in (path, *path.parents) if not folder.exists()]


def remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (:func:`missing_folders`, made by this command) deepest first, up to the first not empty.

    Parameters
    ----------
    folders : list of Path
        The folders a command made, deepest first.
    """
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (something else wrote there), or already gone: keep it and what holds it
            break
