"""The torch Dataset over one packed split file (``PACKED/train.h5`` and friends).

The HDF5 file is opened lazily, on first access in the process that reads it: a DataLoader
worker forked from the main process never inherits an open handle (h5py handles are not
fork-safe), and the handle is dropped when the dataset is pickled for spawned workers. No
windows are cached beyond HDF5's own bounded chunk cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from biofound_cli.errors import DataError
from biofound_cli.plural import counted
from biofound_cli.store.packer import CHAINS_ATTR
from biofound_cli.store.shard_scan import as_str, as_str_list, open_hdf5
from biofound_cli.store.splits import missing_split_advice
from biofound_cli.store.virtual_layout import SHARD_PATHS, check_sources, raise_open_file_limit
from biofound_cli.tasks import RECONSTRUCTION, normalise_task

# No HDF5 chunk cache: a copied split is contiguous (no chunks), and a virtual one reads parts of
# the shards' channel chunks, which HDF5 then copies straight into our buffer instead of through
# the cache (measured ~20 % faster on EEG-sized windows); memory does not grow with the items read.
CHUNK_CACHE_BYTES = 0
# What `pack` records of a split's content beside its recording ids (which another seed or corpus
# changes): the labels and the preprocessing chain, or the chains of a split whose shards disagree
# (several corpora): re-preprocessing one of them keeps every id but changes the windows, so a resume
# must refuse it as it does for a split of one chain. Not the seed (irrelevant to an official split),
# layout, dtype or biofound version: a re-pack of the same windows in the same order keeps the digest.
PROVENANCE_ATTRS = ("class_counts", "preprocess_config", CHAINS_ATTR)


@dataclass(frozen=True)
class PackedInfo:
    """File-level facts of a packed split file."""

    path: Path
    split: str
    ch_names: tuple[str, ...]
    sfreq: float
    task: str
    num_classes: int
    label_names: tuple[str, ...]
    n_windows: int
    n_channels: int
    n_times: int
    labelled: bool
    regression: bool
    """``True`` when ``y`` holds floats (regression targets) rather than class indices."""
    target_shape: tuple[int, ...] = ()
    """Shape of one window's ``y`` (``()`` for one value per window or no labels), read from the header."""
    channel_positions: dict[str, list[float]] | None = None
    """Custom electrode positions (name → [x, y, z] metres) stored by preprocess, for montages outside 10-05."""
    n_shards: int = 0
    """Shards the file maps its windows onto (the virtual layout); 0 when it holds its windows."""
    preprocessing: dict[str, Any] | None = None
    """The preprocessing chain every shard of the split was written with (``{"corpus", "options",
    **ChainConfig}``), when they all agree; ``biofound predict`` runs new recordings through it."""
    preprocessing_chains: list[dict[str, Any]] | None = None
    """The distinct chains of the split's shards when they disagree (several corpora packed together,
    :data:`~biofound_cli.store.packer.CHAINS_ATTR`), most shards first; ``preprocessing`` is then ``None``."""
    class_counts: dict[str, int] | None = None
    """Windows (label entries for per-channel tasks) per class name, as ``pack`` counted them;
    ``None`` for a file that records none (regression targets, files not written by ``pack``)."""

    @cached_property
    def fingerprint(self) -> str:
        """A digest of what ``pack`` records of the split's content and order (:func:`provenance_digest`).

        ``""`` for a file without a recordings list. Read on first use: only a training run needs
        it, and it reads the whole recordings list.
        """
        with open_hdf5(self.path, "packed file not found") as handle:
            return provenance_digest(handle)

    @property
    def window_seconds(self) -> float | None:
        """Each window's length: ``n_times`` samples at ``sfreq`` (``None`` for a file that records no rate)."""
        return self.n_times / self.sfreq if self.sfreq > 0 else None

    @property
    def label_task(self) -> str:
        """The task the split's labels are scored as: the stored task, or ``regression`` for float targets stored without one.

        Evaluation, the head check and the int8 export's scoring all read a split's task through
        this one rule; ``""`` or ``reconstruction`` remain for a split without class labels.
        """
        if self.task not in ("", RECONSTRUCTION):
            return self.task
        return "regression" if self.regression else self.task

    def check_holds_windows(self, consequence: str, advice: str = "") -> None:
        """Refuse a split of no windows, in the one sentence every stage gives: ``FILE holds no windows, so
        CONSEQUENCE; pack it again[, or ADVICE]``.

        ``pack`` writes no such file, but a hand-made or cut one opens; scored or trained on, it gave a best
        ``val_loss`` of 0.0, a batch-size complaint or a crash, each stage its own way.

        Parameters
        ----------
        consequence : str
            What the stage cannot do with it: ``no validation metric can be computed``.
        advice : str
            The stage's own way out beside packing it again: ``--unset data.val to train without validation``.

        Raises
        ------
        DataError
            When the split holds no windows.
        """
        if self.n_windows == 0:
            raise DataError(
                f"{self.path} holds no windows, so {consequence}; pack it again" + (f", or {advice}" if advice else "")
            )


def read_packed_info(path: Path) -> PackedInfo:
    """Read :class:`PackedInfo` from a packed file, checking that it is one.

    Parameters
    ----------
    path : Path
        A packed split file (``train.h5``, ``val.h5`` or ``test.h5``).
    """
    path = Path(path)
    with open_hdf5(path, missing_split_advice(path)) as handle:
        if "x" not in handle or "schema_version" not in handle.attrs:
            raise DataError(f"{path}: not a packed split file (no 'x' or no schema_version); pack the shards first")
        check_sources(handle, path)
        x = handle["x"]
        attrs = handle.attrs
        y = handle.get("y")
        return PackedInfo(
            path=path,
            split=as_str(attrs.get("split", "")),
            ch_names=tuple(as_str_list(attrs.get("channel_names"))),
            sfreq=float(attrs.get("sfreq", 0.0)),
            task=normalise_task(as_str(attrs.get("task", ""))),
            num_classes=int(attrs.get("num_classes", 0)),
            label_names=tuple(as_str_list(attrs.get("label_names"))),
            n_windows=int(x.shape[0]),
            n_channels=int(x.shape[1]),
            n_times=int(x.shape[2]),
            labelled=y is not None,
            regression=y is not None and y.dtype.kind == "f",
            target_shape=tuple(int(n) for n in y.shape[1:]) if y is not None else (),
            channel_positions=(json.loads(as_str(attrs["channel_positions"])) or None) if "channel_positions" in attrs else None,
            preprocessing=(json.loads(as_str(attrs["preprocess_config"])) or None) if "preprocess_config" in attrs else None,
            preprocessing_chains=json.loads(as_str(attrs[CHAINS_ATTR])) if CHAINS_ATTR in attrs else None,
            n_shards=int(handle[SHARD_PATHS].shape[0]) if SHARD_PATHS in handle else 0,
            class_counts=json.loads(as_str(attrs["class_counts"])) if "class_counts" in attrs else None,
        )


def provenance_digest(handle: Any) -> str:
    """A digest of a packed split's recorded provenance: its recording ids in order and :data:`PROVENANCE_ATTRS`.

    Another seed, another corpus or another preprocessing gives another digest even with the same
    number of windows, and it reads no window nor any per-window array, so it costs the same on a
    1.7 TB corpus as on a test file. ``""`` for a file without a ``recordings`` list (not packed by ``pack``).

    Parameters
    ----------
    handle : h5py.File
        The open packed file.
    """
    if "recordings" not in handle:
        return ""
    facts = {
        "recordings": as_str_list(handle["recordings"][()]),
        **{key: as_str(handle.attrs[key]) for key in PROVENANCE_ATTRS if key in handle.attrs},
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def _check_class_labels(info: PackedInfo) -> None:
    """Refuse class labels outside the ``num_classes`` the file declares, before any batch is read.

    ``pack`` never writes one, but an edited or hand-made file may: the loss then failed at the
    first batch holding it with torch's ``IndexError`` (under torchrun, on the one rank that drew it).
    """
    if not info.labelled or info.regression or info.num_classes <= 0:
        return
    with open_hdf5(info.path, missing_split_advice(info.path)) as handle:
        y = np.asarray(handle["y"][()])
    outside = np.argwhere((y < 0) | (y >= info.num_classes))
    if outside.size:
        window = int(outside[0][0])
        raise DataError(
            f"{info.path}: window {window} has label {y[tuple(outside[0])]}, outside the {info.num_classes} classes "
            f"(0 to {info.num_classes - 1}) of its num_classes attribute ({counted(len(outside), 'such label')}); "
            "pack the split again from its shards"
        )


class PackedDataset(Dataset):
    """Windows of one packed split file as ``{"x": (C, T) float32, "y": label}`` dicts.

    Parameters
    ----------
    path : Path
        A packed file written by ``biofound pack`` (``PACKED/train.h5``).
    transform : callable | None
        Applied to each window's ``x`` tensor (C, T) after reading; returns a tensor.

    Notes
    -----
    ``y`` is an int64 scalar for classification, an int64 (C,) tensor for per-channel tasks
    and float32 for regression; unlabelled files give items without ``"y"``.
    :meth:`__getitems__` reads a batch with one HDF5 slice per contiguous run of indices, which
    torch's DataLoader uses automatically; pair it with
    :class:`~biofound_cli.store.sampler.ChunkedBatchSampler` so batches are mostly contiguous.
    """

    def __init__(self, path: Path | str, transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.path = Path(path)
        self.transform = transform
        self.info = read_packed_info(self.path)
        self._handle: Any = None
        self._pid: int | None = None
        _check_class_labels(self.info)

    def __len__(self) -> int:
        return self.info.n_windows

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None, "_pid": None}

    def _file(self) -> Any:
        # Reopen after a fork: the parent's handle must not be used from a child process.
        if self._handle is None or self._pid != os.getpid():
            import h5py

            if self.info.n_shards:
                raise_open_file_limit(self.info.n_shards, self.path)
            self._handle = h5py.File(self.path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
            self._pid = os.getpid()
        return self._handle

    def close(self) -> None:
        """Close the file handle of this process (it reopens on next access)."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None
        self._pid = None

    def _check_index(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {self.path} with {len(self)} windows")
        return index

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # One window is a batch of one: a single read path, so items and batches cannot differ.
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """Read many windows at once: one slice per contiguous run of the sorted indices.

        The windows are read straight into one ``(n, C, T)`` buffer, which the returned
        :class:`WindowBatch` also holds as ready-made batch tensors; with
        :func:`collate_windows` as the DataLoader's ``collate_fn`` a batch costs a single
        pass over its bytes instead of a read, a concatenation and a stack. In a DataLoader
        worker that buffer is in shared memory (:func:`_batch_buffer`), so the batch reaches
        the main process without another copy.
        """
        wanted = np.array([self._check_index(i) for i in indices], dtype=np.int64)
        if wanted.size == 0:
            return []
        unique, rows = np.unique(wanted, return_inverse=True)
        handle = self._file()
        x_dataset = handle["x"]
        x = _batch_buffer((wanted.size, *x_dataset.shape[1:]))
        in_order = np.array_equal(unique, wanted)  # a sorted batch needs no reordering
        # Read straight into the batch when it is float32 in the order asked for.
        direct = x_dataset.dtype == np.float32 and in_order
        x_all = x.numpy() if direct else np.empty((unique.size, *x_dataset.shape[1:]), dtype=x_dataset.dtype)
        y_dataset = handle["y"] if self.info.labelled else None
        y_all = np.empty((unique.size, *y_dataset.shape[1:]), dtype=y_dataset.dtype) if y_dataset is not None else None
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        offset = 0
        for run in np.split(unique, breaks):
            source = np.s_[int(run[0]) : int(run[-1]) + 1]
            destination = np.s_[offset : offset + run.size]
            if x_all.size:
                x_dataset.read_direct(x_all, source_sel=source, dest_sel=destination)
            if y_dataset is not None and y_all is not None and y_all.size:
                y_dataset.read_direct(y_all, source_sel=source, dest_sel=destination)
            offset += run.size
        if not direct and x_all.dtype == np.float32:  # reordered straight into the batch, no temporary
            np.take(x_all, rows, axis=0, out=x.numpy(), mode="clip")  # "raise" would buffer; rows are valid
        elif not direct:  # in the order asked for, as float32
            x.numpy()[...] = x_all if in_order else x_all[rows]
        if y_all is not None and not in_order:
            y_all = y_all[rows]
        if self.transform is not None:
            x = torch.stack([self.transform(window) for window in x])
        batch = WindowBatch({"x": x[i]} for i in range(x.shape[0]))
        batch.stacked = {"x": x}
        if y_all is not None:
            y = torch.from_numpy(y_all).to(torch.float32 if self.info.regression else torch.int64)
            for i, item in enumerate(batch):
                item["y"] = y[i]
            batch.stacked["y"] = y
        return batch


def _batch_buffer(shape: tuple[int, ...]) -> torch.Tensor:
    """An uninitialised float32 tensor for a batch's windows; in a DataLoader worker, in shared memory.

    A worker sends each batch to the main process through shared memory, and torch moves a
    tensor that is not there yet by copying it into a new segment: a second pass over every
    byte of the batch in the worker. A batch read into shared memory in the first place is sent
    as it is, as torch's own ``default_collate`` does in a worker. Against the copy, in the same
    run: a worker's read and send of a batch 0.55x the CPU (EEG windows), the whole 2-worker
    loader's workers 0.96x (docs/performance.md, the loader rows of 2026-12-07).
    """
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=torch.float32)
    count = int(np.prod(shape))
    storage = torch.UntypedStorage._new_shared(count * torch.float32.itemsize)
    return torch.empty(0, dtype=torch.float32).set_(storage).view(shape)


class WindowBatch(list):
    """The items of one :meth:`PackedDataset.__getitems__` call, with the batch already stacked.

    It is a plain list of ``{"x", "y"}`` dicts for any code that expects items;
    :func:`collate_windows` returns :attr:`stacked` instead of stacking the items again.
    """

    stacked: dict[str, torch.Tensor]


def collate_windows(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``collate_fn`` for packed files: reuse a :class:`WindowBatch`'s tensors, else stack as usual.

    Parameters
    ----------
    items : sequence of dict of str to Tensor
        A :class:`WindowBatch` (a whole batch read at once), or the samples of one batch.
    """
    return items.stacked if isinstance(items, WindowBatch) else default_collate(list(items))
