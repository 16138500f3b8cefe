"""The ``virtual`` pack layout: a split file whose ``x`` maps onto the shards instead of copying them.

``x`` is an HDF5 virtual dataset: each contiguous run of a shard's windows that goes to the
split is one mapping (one per channel when the shard's channels must be reordered). The shards'
paths are stored relative to the packed file's folder, in the ``shard_paths`` dataset (parallel
to ``recordings``) and in the mappings themselves, so a folder holding both moves together.

HDF5 reads a missing source as the fill value without complaint, and it keeps every source it
has read from open until the split file is closed, again filling silently once the process
runs out of file descriptors; :func:`check_sources` and :func:`raise_open_file_limit` turn both
into errors before any window is read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from biofound_cli.errors import DataError
from biofound_cli.store.shard_scan import as_str

logger = logging.getLogger(__name__)

LAYOUT_ATTR = "layout"
"""Attribute of a packed file: ``copy`` or ``virtual``; files packed before it existed are copies."""
SHARD_PATHS = "shard_paths"
"""(R,) strings: each recording's shard, relative to the packed file's folder (virtual layout only)."""
SHARD_SIZES = "shard_sizes"
"""(R,) int64: each shard's size in bytes when packed; a shard rewritten since (``preprocess --force``
with another window or stride) no longer holds the windows the packed labels describe."""
# Descriptors kept free for everything else a process opens (libraries, sockets, checkpoints).
SPARE_FILE_DESCRIPTORS = 256


def relative_source(shard: Path, packed_folder: Path) -> str:
    """``shard``'s path relative to ``packed_folder``, as HDF5 resolves a relative virtual source.

    Parameters
    ----------
    shard : Path
        The shard file.
    packed_folder : Path
        The folder of the packed file that reads it.
    """
    return Path(os.path.relpath(Path(shard).resolve(), Path(packed_folder).resolve())).as_posix()


def map_runs(layout: Any, source: str, dataset: Any, mask: np.ndarray, position: int, channel_order: np.ndarray | None) -> None:
    """Map the windows of one shard selected by ``mask`` onto ``layout`` from ``position`` on.

    Parameters
    ----------
    layout : h5py.VirtualLayout
        The split file's ``x`` being built.
    source : str
        The shard's path relative to the packed file's folder.
    dataset : h5py.Dataset
        The shard's ``x`` (its shape and dtype are recorded; HDF5 converts on read).
    mask : ndarray of bool
        Which of the shard's windows go to this split, in order.
    position : int
        The first row of ``layout`` they fill.
    channel_order : ndarray | None
        Shard channel index for each packed channel, when the shard's order differs.
    """
    import h5py

    virtual = h5py.VirtualSource(source, "x", shape=dataset.shape, dtype=dataset.dtype)
    selected = np.flatnonzero(mask)
    for run in np.split(selected, np.flatnonzero(np.diff(selected) != 1) + 1):
        if run.size == 0:
            continue
        rows, first = slice(position, position + run.size), int(run[0])
        windows = slice(first, first + run.size)
        if channel_order is None:
            layout[rows] = virtual[windows]
        else:
            for packed, stored in enumerate(channel_order.tolist()):
                layout[rows, packed : packed + 1] = virtual[windows, stored : stored + 1]
        position += run.size


def check_sources(handle: Any, path: Path) -> None:
    """Raise :class:`DataError` naming the first shard a virtual packed file maps onto that is gone.

    Parameters
    ----------
    handle : h5py.File
        The open packed file.
    path : Path
        Its path; relative shard paths are resolved against its folder.
    """
    if as_str(handle.attrs.get(LAYOUT_ATTR, "copy")) != "virtual":
        return
    folder = Path(path).parent
    names = [as_str(value) for value in handle[SHARD_PATHS][()]]
    # Files packed before the sizes were recorded are checked for presence only.
    sizes = handle[SHARD_SIZES][()].tolist() if SHARD_SIZES in handle else [None] * len(names)
    for name, packed_size in zip(names, sizes, strict=True):
        if not (folder / name).is_file():
            raise DataError(
                f"{path}: its shard {name} is missing ({(folder / name).resolve()}); a packed file with "
                'layout "virtual" reads every window from the shards, so put the shard folder back beside it '
                'or pack again with pack.layout = "copy"'
            )
        size = (folder / name).stat().st_size
        if packed_size is not None and size != packed_size:
            raise DataError(
                f"{path}: its shard {name} was rewritten after packing ({packed_size} bytes then, {size} now, as after "
                "preprocess --force), so its windows may no longer match the labels packed beside them; run pack again"
            )


def raise_open_file_limit(n_sources: int, path: Path) -> None:
    """Let this process keep ``n_sources`` shards open (HDF5 does, once read), or fail saying so.

    The soft limit on open files is raised towards the hard one; child processes (DataLoader
    workers) inherit it.

    Parameters
    ----------
    n_sources : int
        How many shards the packed file reads from.
    path : Path
        The packed file, named in the error.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = n_sources + SPARE_FILE_DESCRIPTORS
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise DataError(
            f"{path}: its {n_sources} shards stay open while it is read, but this process may open only {hard} "
            f'files; raise the limit (ulimit -n {needed}) or pack again with pack.layout = "copy"'
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    logger.debug(f"open-file limit raised from {soft} to {needed} for the {n_sources} shards of {path}")
