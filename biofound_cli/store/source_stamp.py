"""A recording file's size and modification time as it was read: what tells a file rewritten since.

``preprocess`` records it in each shard and ``predict`` in each summary entry; a re-run that finds
the file's stamp changed (a session exported again, a corrected file) processes the recording again
instead of counting it done. A record without a stamp (written by an older biofound) is taken as
current. A recording read from several files is stamped by the file its reference names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SOURCE_STAMP = ("source_bytes", "source_mtime_ns")
"""The keys a shard's attributes or a summary entry hold the stamp under."""


def file_stamp(path: str | Path) -> tuple[int, int]:
    """The size and modification time (ns) of ``path``.

    Parameters
    ----------
    path : str or Path
        The recording file, stamped before it is read: a file rewritten while it is read is
        processed again by the next run.
    """
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def rewritten_since(record: Mapping[str, Any], path: str | Path, keys: tuple[str, str] = SOURCE_STAMP) -> bool:
    """Whether ``path`` is no longer the file ``record`` stamped under ``keys`` (also when it is gone).

    Parameters
    ----------
    record : mapping
        Shard attributes or a summary entry; one without ``keys`` is taken as current.
    path : str or Path
        The stamped file: the recording, or another file the record describes (predict's table).
    keys : tuple of str
        The record's keys for the size and the modification time; :data:`SOURCE_STAMP` by default.
    """
    if not all(key in record for key in keys):
        return False
    try:
        return file_stamp(path) != tuple(int(record[key]) for key in keys)
    except OSError:
        return True
