"""Shards: one HDF5 file per recording, written whole or not at all.

Layout: dataset ``x`` (n_windows, n_channels, n_samples), each chunk one
channel of up to :data:`WINDOWS_PER_CHUNK` windows; ``y`` (n_windows,) or (n_windows,
n_channels) int64 when labelled; ``window_start_seconds`` (n_windows,) float64, where each window
starts in seconds from the recording's first sample (at the output rate), so a window can be traced
back to the raw file after windows were dropped (unlabelled spans, events, label modes); ``split``
(n_windows,) strings only when the corpus gives per-segment splits; attributes ``sfreq``,
``channel_names``, ``subject``, ``session``, ``source_path``, ``corpus``, ``label_names``,
``task``, ``window_seconds``, ``stride_seconds``, ``biofound_version``, ``preprocess_config``
(JSON), when the corpus has an official split for the whole recording, ``split``, when discovery
labels the whole recording, ``label`` (:data:`RECORDING_LABEL`), the size and time of the files
it was read from (``source_bytes``, ``source_mtime_ns``), and the recording's notes
(``truncated``, ``events_outside``, ``events_clipped``, ...).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from biofound_cli.atomic import remove_leftovers, temporary_name


@dataclass
class ShardMeta:
    """The attributes of one shard."""

    corpus: str
    subject: str
    session: str
    source_path: str
    sfreq: float
    channel_names: Sequence[str]
    label_names: Sequence[str]
    task: str
    window_seconds: float
    stride_seconds: float
    preprocess_config: dict[str, Any]
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def shard_path(out: Path, corpus: str, recording_id: str) -> Path:
    """Where the shard of one recording lives: ``OUT/<corpus>/<recording_id>.h5``.

    Parameters
    ----------
    out : Path
        The shard folder of the recipe.
    corpus : str
        The corpus name.
    recording_id : str
        The recording's id, unique within the corpus.
    """
    return Path(out) / corpus / f"{recording_id}.h5"


RECORDING_LABEL = "label"
"""The attribute holding the label discovery gave the whole recording (a labels CSV row, a TUAB folder), when it gave
one: a re-run compares it with what discovery says then (:func:`~biofound_cli.store.preprocess_plan.discovered`)."""

SHARD_MARK = "biofound_version"
"""The attribute :class:`ShardWriter` has stored in every shard since the first biofound (the version that wrote it),
which another program's HDF5 file lacks even when it holds a 3-d ``x`` and an ``sfreq``: shards are known by it
(:func:`not_a_shard`)."""


def not_a_shard(handle: Any) -> str | None:
    """Why the open HDF5 file ``handle`` is not a biofound shard, said after its path; ``None`` when it is one.

    ``info`` describes only what it knows to be a shard, and ``pack`` packs only those: a foreign file
    of the same shape was described, and packed, as one.

    Parameters
    ----------
    handle : h5py.File
        The file, open for reading.
    """
    x = handle.get("x")
    if getattr(x, "ndim", None) != 3:
        return "has no 3-d dataset 'x' (n_windows, n_channels, n_samples)"
    if SHARD_MARK not in handle.attrs:
        return f"has no '{SHARD_MARK}' attribute, which biofound preprocess writes in every shard"
    return None


WINDOW_STARTS = "window_start_seconds"
"""The per-window dataset of start times; ``pack`` copies it into packed files under the same name."""

WINDOWS_PER_CHUNK = 64
"""Most windows per HDF5 chunk of a shard's ``x``; a chunk holds one channel, so the chain can
write a channel at a time and never hold the whole recording's windows."""


class ShardWriter:
    """Write one shard channel by channel, atomically.

    ``open`` creates ``x`` in a temporary file in the same folder (named by
    :func:`~biofound_cli.atomic.temporary_name`, so no ``*.h5`` glob sees it) and takes the windows' start
    times; ``write_channel`` fills one channel's windows; ``commit`` adds ``y``,
    ``window_start_seconds``, ``split`` and the attributes, closes the file and renames it to
    ``path``. Leaving the ``with`` block without ``commit`` (an error, a skipped recording)
    deletes the temporary file, so ``path`` is either absent or whole; a killed process leaves a
    temporary file that :func:`remove_partial_shards` removes on the next run.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Not atomic.atomic_path: this temporary spans open()..commit(), and a clean exit without commit deletes it.
        self._temp = temporary_name(self.path)
        self._handle: Any = None
        self._x: Any = None
        self._starts: np.ndarray | None = None

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.abort()

    def open(
        self,
        n_windows: int,
        n_channels: int,
        n_samples: int,
        dtype: Any,
        *,
        window_start_seconds: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        """Create the file and its ``x`` dataset, (n_windows, n_channels, n_samples) of ``dtype``.

        Parameters
        ----------
        n_windows, n_channels, n_samples : int
            The shape of ``x``.
        dtype : numpy dtype
            The storage type of ``x``.
        window_start_seconds : sequence of float or ndarray | None
            Where each window starts, in seconds from the recording's first sample; required
            before :meth:`commit`.
        """
        import h5py

        self._starts = _window_starts(window_start_seconds, n_windows)

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = h5py.File(self._temp, "w")
        chunks = None
        if n_windows and n_channels and n_samples:
            # Equal chunks of at most WINDOWS_PER_CHUNK windows: no half-empty chunk at the end.
            n_chunks = -(-n_windows // WINDOWS_PER_CHUNK)
            chunks = (-(-n_windows // n_chunks), 1, n_samples)
        self._x = self._handle.create_dataset("x", (n_windows, n_channels, n_samples), dtype=dtype, chunks=chunks)

    def write_channel(self, index: int, windows: np.ndarray) -> None:
        """Store channel ``index`` of every window: ``windows`` is (n_windows, n_samples).

        Each chunk is one channel's run of windows, i.e. a contiguous block of ``windows``, so it
        is written as raw bytes (``write_direct_chunk``): no trip through HDF5's chunk cache and
        conversion buffers, whose free lists otherwise grow with every channel until the file closes.

        Parameters
        ----------
        index : int
            The channel's row in ``x``.
        windows : np.ndarray
            (n_windows, n_samples) that channel's samples of every window.
        """
        chunks = self._x.chunks
        if chunks is None:
            self._x[:, index, :] = windows
            return
        rows = chunks[0]
        windows = np.ascontiguousarray(windows, dtype=self._x.dtype)
        for start in range(0, len(windows), rows):
            block = windows[start : start + rows]
            if len(block) < rows:  # the edge chunk is stored whole
                block = np.concatenate([block, np.zeros((rows - len(block), block.shape[1]), dtype=block.dtype)])
            self._x.id.write_direct_chunk((start, index, 0), block)

    def commit(self, y: np.ndarray | None, meta: ShardMeta, *, split: Sequence[str] | None = None) -> None:
        """Write labels, the window start times :meth:`open` had and attributes, close the file and move it to ``path``.

        Parameters
        ----------
        y : ndarray | None
            Labels, (n_windows,) or (n_windows, n_channels); ``None`` for unlabelled windows.
        meta : ShardMeta
            The attributes.
        split : sequence of str | None
            Per-window official split, when the corpus gives one per segment.

        Raises
        ------
        ValueError
            When :meth:`open` had no window start times (a programming error).
        """
        import h5py

        from biofound_cli import __version__

        handle = self._handle
        if self._starts is None:
            raise ValueError(f"{self.path}: no window start times; pass window_start_seconds to open()")
        handle.create_dataset(WINDOW_STARTS, data=self._starts)
        if y is not None:
            handle.create_dataset("y", data=np.asarray(y, dtype=np.int64))
        if split is not None:
            handle.create_dataset("split", data=np.asarray(list(split), dtype=object), dtype=h5py.string_dtype())
        attrs = handle.attrs
        attrs.update(
            {
                "sfreq": float(meta.sfreq),
                "channel_names": list(meta.channel_names),
                "subject": meta.subject,
                "session": meta.session,
                "source_path": meta.source_path,
                "corpus": meta.corpus,
                "label_names": list(meta.label_names),
                "task": meta.task,
                "window_seconds": float(meta.window_seconds),
                "stride_seconds": float(meta.stride_seconds),
                SHARD_MARK: __version__,
                "preprocess_config": json.dumps(meta.preprocess_config, sort_keys=True),
            }
        )
        if meta.split:
            attrs["split"] = meta.split
        attrs.update(meta.extra)
        handle.close()
        self._handle = None
        os.replace(self._temp, self.path)

    def abort(self) -> None:
        """Close and delete the temporary file, if there is one (nothing after ``commit``)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._temp.unlink(missing_ok=True)


def _window_starts(seconds: Sequence[float] | np.ndarray | None, n_windows: int) -> np.ndarray | None:
    """``seconds`` as float64, checked to hold one start per window."""
    if seconds is None:
        return None
    starts = np.asarray(seconds, dtype=np.float64).reshape(-1)
    if len(starts) != n_windows:
        raise ValueError(f"{len(starts)} window start times for {n_windows} windows")
    return starts


def remove_partial_shards(folder: Path, recording_ids: Sequence[str] | None = None) -> int:
    """Delete the temporary files of shards (:class:`ShardWriter`) that a killed run left; returns how many.

    Slices of an array job write into one shared folder, often from several nodes, so a temporary
    is judged by the recording it belongs to, not by its machine or process: a slice removes every
    temporary of the recordings it owns, whoever wrote it (a requeued slice may run on another
    node), and never one of a recording another slice owns (:func:`~biofound_cli.atomic.remove_leftovers`
    of the owned shards' names). The rule assumes that no process
    outside the caller's is writing an owned recording, i.e. that one slice never runs twice at
    once (a requeued task starts after the old one ended; the caller's own workers are not running
    when it cleans): were it started twice, each copy would delete the other's temporaries and the
    copy that then tried to rename one would stop with an error. The shards on disk stay whole either way.

    Parameters
    ----------
    folder : Path
        The folder of one corpus's shards; nothing happens when it does not exist.
    recording_ids : sequence of str | None
        The recordings the caller owns; None (a run that is not sliced) owns them all.
    """
    owned = None if recording_ids is None else {f"{recording_id}.h5" for recording_id in recording_ids}
    # Older biofound named them ``<id>.h5.partial-<pid>``: removed too, so an upgrade leaves none behind.
    older = [
        path for path in Path(folder).glob("*.h5.partial-*") if owned is None or path.name.rpartition(".partial-")[0] in owned
    ]
    for path in older:
        path.unlink(missing_ok=True)
    return len(remove_leftovers(folder, owned)) + len(older)
