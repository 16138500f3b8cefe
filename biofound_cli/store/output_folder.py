"""Making sure an output folder can be written before any work starts.

A folder that exists is not enough: a read-only file system, ``/proc`` or a folder without write
permission only refuses at the first write, which for ``pack`` comes after every shard header
was read and the split decided. Creating and removing one small file up front turns that late
traceback into one line and exit status 2 before anything is read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path}: a file is in the way of the output folder; remove it or choose another folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"{option} {path}: the folder cannot be created ({_reason(error)}); choose a folder you can write to"
        ) from None
    try:
        handle, probe = tempfile.mkstemp(dir=path, prefix=PROBE_PREFIX)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise UsageError(
            f"{option} {path}: cannot write there ({_reason(error)}); choose a folder you can write to, or fix its permissions"
        ) from None
    return path


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__
