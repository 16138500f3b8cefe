"""The size and modification time of a recording's files as they were read: what tells a recording rewritten since.

``preprocess`` records it in each shard and ``predict`` in each summary entry; a re-run that finds
the stamp changed (a session exported again, a corrected file) processes the recording again
instead of counting it done. A record without a stamp (written by an older biofound) is taken as
current. A recording read from several files (an EDF and its annotation file, a BrainVision
header and its data and marker files: :meth:`~biofound_cli.corpora.base.Corpus.source_files`) is
stamped by all of them: their total size and the sum of their modification times, which changes
when any one file is rewritten, even with an older time (``rsync -t``), or is gone. One file's
stamp is its own size and time, so records written before companions were stamped stay current.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Files = str | Path | Sequence[str | Path]
"""One file, or the files one recording is read from."""

SOURCE_STAMP = ("source_bytes", "source_mtime_ns")
"""The keys a shard's attributes or a summary entry hold the stamp under."""


def file_stamp(files: Files) -> tuple[int, int]:
    """The total size and the sum of the modification times (ns) of ``files``.

    Parameters
    ----------
    files : str, Path or sequence of them
        The recording's files, stamped before they are read: a file rewritten while it is read is
        processed again by the next run.

    Raises
    ------
    OSError
        When one of the files cannot be read.
    """
    infos = [os.stat(path) for path in ([files] if isinstance(files, (str, Path)) else files)]
    return sum(info.st_size for info in infos), sum(info.st_mtime_ns for info in infos)


def rewritten_since(record: Mapping[str, Any], files: Files, keys: tuple[str, str] = SOURCE_STAMP) -> bool:
    """Whether ``files`` are no longer those ``record`` stamped under ``keys`` (also when one is gone).

    Parameters
    ----------
    record : mapping
        Shard attributes or a summary entry; one without ``keys`` is taken as current.
    files : str, Path or sequence of them
        The stamped files: the recording's (:meth:`~biofound_cli.corpora.base.Corpus.source_files`), or
        another file the record describes (predict's table).
    keys : tuple of str
        The record's keys for the size and the modification time; :data:`SOURCE_STAMP` by default.
    """
    if not all(key in record for key in keys):
        return False
    try:
        return file_stamp(files) != tuple(int(record[key]) for key in keys)
    except OSError:
        return True
