"""A FIF recording split over several files: ``raw.fif``, ``raw-1.fif``, ... (MNE's ``split_size``).

FIF files are at most 2 GB, so MNE (and the Neuromag acquisition software) write a longer
recording as a chain of files, each naming the next; ``mne.io.read_raw`` given the first reads
them all. The chain is what the files record, not their names (``raw-1.fif`` with MNE's naming,
``..._split-02_raw.fif`` with BIDS naming), so it is read from the files: the parts after the first
are files of the recording the first one is (:func:`split_parts`), not recordings of their own
(:func:`later_parts`). Only the header is read (``preload=False``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from biofound_cli.errors import is_reading_error

FIF_ENDINGS = (".fif", ".fif.gz")

# The names MNE gives the parts after the first: raw-1.fif (neuromag) or ..._split-02_... (BIDS).
_PART_NAME = re.compile(r"(-\d+\.fif(\.gz)?$)|(_split-\d+_)", re.IGNORECASE)


def is_fif(path: Path) -> bool:
    """Whether ``path`` is a FIF file by its name (``.fif`` or ``.fif.gz``, any letter case).

    Parameters
    ----------
    path : Path
        Any file.
    """
    return path.name.lower().endswith(FIF_ENDINGS)


def split_parts(path: Path) -> list[Path]:
    """The files after ``path`` in its chain of split FIF files, in order; none for a file that is whole or unreadable.

    Parameters
    ----------
    path : Path
        A ``.fif`` / ``.fif.gz`` file; read without its samples.
    """
    import mne

    try:
        raw = mne.io.read_raw_fif(path, preload=False, allow_maxshield=True, verbose="error")
    except Exception as error:
        if not is_reading_error(error):  # a bug of ours: not to be taken for a broken file
            raise
        return []  # a broken file: reading it says why
    return [Path(name) for name in raw.filenames[1:] if name is not None]


def later_parts(paths: Iterable[Path]) -> set[Path]:
    """Of ``paths``, the FIF files that are a later part of another one's chain (resolved paths).

    Only the folders holding a file named as MNE names a later part are read, so a folder of
    whole FIF files costs nothing.

    Parameters
    ----------
    paths : iterable of Path
        The files a corpus found.
    """
    fifs = [path for path in paths if is_fif(path)]
    folders = {path.parent for path in fifs if _PART_NAME.search(path.name)}
    return {part.resolve() for path in fifs if path.parent in folders for part in split_parts(path)}
