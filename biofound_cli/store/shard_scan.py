"""Finding shards, reading their headers and checking that they can be packed together.

Only headers and the small per-window ``split`` dataset are read here; the signals are
streamed later by :mod:`biofound_cli.store.packer`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biofound_cli.atomic import parse_temporary_name
from biofound_cli.errors import DataError, UsageError
from biofound_cli.plural import counted, plural
from biofound_cli.store.majority import first_of_most
from biofound_cli.store.sampling_rates import rate_key, resample_advice
from biofound_cli.store.shards import RECORDING_LABEL, not_a_shard
from biofound_cli.store.source_stamp import SOURCE_STAMP
from biofound_cli.store.splits import MANIFEST_NAME, SPLITS, is_packed_folder
from biofound_cli.tasks import normalise_task

logger = logging.getLogger(__name__)

# Attributes that describe one recording; everything else a shard carries is corpus-wide and
# is copied into the packed files when every shard agrees on it.
RECORDING_ATTRS = ("subject", "session", "source_path", "split", RECORDING_LABEL, *SOURCE_STAMP)

DAMAGED_ADVICE = "delete it and run the same preprocess again, which writes it anew"
"""What to do about a shard whose HDF5 structure is damaged (a disk error, a copy cut short)."""
REWRITE_ADVICE = "copy it again, or run the preprocess (a shard) or pack (a packed split) that wrote it again"
"""What to do about an HDF5 file :func:`open_hdf5` cannot open, which may be a shard or a packed split."""


def as_str(value: Any) -> str:
    """An HDF5 attribute or element as ``str`` (h5py may give bytes or numpy strings).

    Parameters
    ----------
    value : Any
        A ``str``, ``bytes`` (read as UTF-8), 0-d numpy array or anything ``str`` accepts.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return as_str(value.item())
    return str(value)


def as_str_list(value: Any) -> list[str]:
    """A list-of-strings attribute as ``list[str]`` (a JSON string is accepted too).

    Parameters
    ----------
    value : Any
        None (an empty list), one string (a JSON list when it starts with ``[``), or an array of strings.
    """
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        text = as_str(value)
        if text.startswith("["):
            import json

            return [str(item) for item in json.loads(text)]
        return [text] if text else []
    return [as_str(item) for item in np.asarray(value).ravel()]


def counts_by_class_name(counts: dict[int, int], label_names: list[str]) -> dict[str, int]:
    """Window counts keyed by class name, in class-index order; an index without a name keeps its number.

    Parameters
    ----------
    counts : dict of int to int
        Windows per class index.
    label_names : list of str
        The class names, by index.
    """
    return {(label_names[int(k)] if 0 <= int(k) < len(label_names) else str(k)): int(v) for k, v in sorted(counts.items())}


def open_hdf5(path: Path, not_found: str) -> Any:
    """Open ``path`` read-only as an ``h5py.File`` (use it as a context manager).

    Parameters
    ----------
    path : Path
        The HDF5 file.
    not_found : str
        What to say, after the path, when the file does not exist (which command makes it).

    Raises
    ------
    UsageError
        ``"{path}: {not_found}"`` when there is no such file.
    DataError
        When the file is not readable HDF5.
    """
    import h5py

    if not path.is_file():
        raise UsageError(f"{path}: {not_found}")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: {_unreadable(path, error, REWRITE_ADVICE)}") from None


@dataclass(frozen=True)
class SkippedShard:
    """A shard ``pack`` leaves out, and why.

    Named by its path, and the file it was written from where the shard says, as ``preprocess``
    names the files it skips: a recording id alone (``edf/sub-01``) is no file a user can find.
    """

    path: Path
    recording_id: str
    reason: str
    source_path: str = ""
    """The raw file the shard was written from; ``""`` when the shard does not say (or does not open)."""

    def named(self) -> str:
        """The shard's path, with the raw file it was written from when known."""
        return str(self.path) + (f" (shard of {self.source_path})" if self.source_path else "")

    def line(self) -> str:
        """``<shard> (shard of <file>): <reason>``, the one line that names it everywhere."""
        return f"{self.named()}: {self.reason}"

    def as_json(self) -> dict[str, str]:
        """The entry of ``splits.json``'s ``skipped`` list."""
        return {"recording": self.recording_id, "shard": str(self.path), "source_path": self.source_path, "reason": self.reason}


CLASS_LABELS = ("per window", "per channel")
"""The :func:`label_kind` of class labels, the ones ``pack`` and ``info`` count windows by."""


def label_kind(y_shape: tuple[int, ...] | None, y_kind: str | None) -> str:
    """How a shard or packed file is labelled, as ``info`` and ``pack`` say it.

    Parameters
    ----------
    y_shape : tuple of int | None
        The shape of ``y`` per window; ``None`` when there is no ``y`` (pre-training data).
    y_kind : str | None
        The numpy dtype kind of ``y`` (``"f"``: regression targets).

    Returns
    -------
    str
        ``none``, ``regression``, ``per channel`` or ``per window`` (the last two: classes).
    """
    if y_shape is None:
        return "none"
    if y_kind == "f":
        return "regression"
    return "per channel" if len(y_shape) == 1 else "per window"


@dataclass
class ShardHeader:
    """What the packer needs to know about one shard before reading its windows."""

    path: Path
    recording_id: str
    subject: str
    n_windows: int
    ch_names: list[str]
    sfreq: float
    n_times: int
    task: str
    label_names: list[str]
    y_shape: tuple[int, ...] | None
    """Shape of ``y`` per window (``()`` or ``(n_channels,)``), ``None`` when unlabelled."""
    y_kind: str | None
    """numpy dtype kind of ``y``: ``"i"``/``"u"`` for classes, ``"f"`` for regression."""
    official: np.ndarray | None
    """Official split per window (``""`` where none), or ``None`` when the shard has none."""
    attrs: dict[str, Any] = field(default_factory=dict)
    channel_order: np.ndarray | None = None
    """Indices that put this shard's channels in the packed order; ``None`` when already in it."""
    classes_seen: int = 0
    """1 + the largest class index in ``y``; 0 when unlabelled, for regression targets or without windows."""
    source_path: str = ""
    """The raw file the shard was written from (its ``source_path`` attribute; ``""`` without one)."""

    def skipped(self, reason: str) -> SkippedShard:
        """This shard, left out for ``reason``.

        Parameters
        ----------
        reason : str
            Why it is not packed, and what to do.
        """
        return SkippedShard(self.path, self.recording_id, reason, self.source_path)

    def compatibility_key(self) -> tuple[Any, ...]:
        return (
            frozenset(self.ch_names),
            rate_key(self.sfreq),
            self.n_times,
            self.task,
            tuple(self.label_names),
            self.y_shape is not None,
            self.y_kind,
            len(self.y_shape) if self.y_shape is not None else None,
        )


def find_shards(root: Path, exclude: Path | None = None) -> list[Path]:
    """Every ``*.h5`` under ``root`` (recursively), skipping unfinished writes, ``exclude`` and packed folders, sorted.

    The split files of an earlier ``pack --out SHARDS/packed1`` carry a shard's attributes and a 3-d
    ``x``: a second ``pack --out SHARDS/packed2`` packed them again as shards (their windows twice,
    test windows in train). A folder below ``root`` that ``pack`` wrote (:func:`is_packed_folder`)
    is passed over, named in one info line.

    Parameters
    ----------
    root : Path
        The shard folder, searched recursively.
    exclude : Path | None
        A folder below ``root`` whose files are skipped (the output folder of ``pack``); None skips none.
    """
    root = Path(root)
    exclude_resolved = exclude.resolve() if exclude is not None else None
    packed: dict[Path, bool] = {}

    def in_packed_folder(path: Path) -> bool:
        for folder in path.relative_to(root).parents[:-1]:  # the folders below root, root itself left out
            if folder not in packed:
                packed[folder] = is_packed_folder(root / folder)
                if packed[folder]:
                    logger.info(
                        f"{root / folder}: the output of an earlier biofound pack (its {MANIFEST_NAME} is there); "
                        "its split files are not shards and are not packed"
                    )
            if packed[folder]:
                return True
        return False

    found = [
        path
        for path in root.rglob("*.h5")
        # A temporary ends in .tmp, unless its writer gave a suffix hint of .h5: skipped all the same.
        if parse_temporary_name(path.name) is None
        and not (exclude_resolved is not None and exclude_resolved in path.resolve().parents)
        and not in_packed_folder(path)
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def read_header(path: Path, root: Path, use_official: bool = True) -> ShardHeader:
    """Read one shard's header; raises ``ValueError`` with the reason when it is not a usable shard.

    Parameters
    ----------
    path : Path
        The shard, below ``root``.
    root : Path
        The shard folder; the recording id is the path relative to it, without ``.h5``.
    use_official : bool
        Read the shard's official split (the ``split`` dataset or attribute); False ignores it.
    """
    import h5py

    recording_id = path.relative_to(root).with_suffix("").as_posix()
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(_unreadable(path, error, DAMAGED_ADVICE)) from None
    try:
        with handle:
            return _read_open_header(handle, path, recording_id, use_official)
    except (OSError, KeyError, RuntimeError) as error:
        # A damaged object header or chunk index: skipped here, where the split is not yet planned,
        # rather than a traceback half-way through copying it.
        raise ValueError(f"is damaged ({error}); {DAMAGED_ADVICE}") from None


def _unreadable(path: Path, error: OSError, advice: str) -> str:
    """Why HDF5 cannot open ``path``, and ``advice``: a broken link, an empty or truncated file, else HDF5's words."""
    if path.is_symlink() and not path.exists():
        return f"is a broken symbolic link (to {os.readlink(path)}); remove it, or put back what it points to"
    if path.stat().st_size == 0:
        return f"is empty (0 bytes); {advice}"
    truncated = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(error))
    if truncated:
        there, whole = truncated.groups()
        return f"is truncated ({there} of its {whole} bytes are there, as after a copy cut short); {advice}"
    return f"not a readable HDF5 file ({error}); {advice}"


def _check_chunk_index(x: Any, file_bytes: int) -> None:
    """Walk the chunk index of the shard's ``x``, which every read of its windows needs (the virtual layout's too).

    A damaged index raises here (caught by :func:`read_header`), and a chunk said to lie beyond
    the end of the file is refused, so the shard is skipped before the split is planned instead of
    failing half-way through the copy, or in training's loader.
    """
    if x.chunks is None:
        return
    for index in range(x.id.get_num_chunks()):
        chunk = x.id.get_chunk_info(index)
        if chunk.byte_offset is None or chunk.byte_offset + chunk.size > file_bytes:
            raise ValueError(f"is damaged (chunk {index} of 'x' lies beyond the end of the file); {DAMAGED_ADVICE}")


def _read_open_header(handle: Any, path: Path, recording_id: str, use_official: bool) -> ShardHeader:
    """:func:`read_header` of the open shard ``handle``."""
    problem = not_a_shard(handle)
    if problem is not None:
        raise ValueError(f"{problem}, so it is not a biofound shard; move it out of the shard folder")
    x = handle["x"]
    _check_chunk_index(x, path.stat().st_size)
    attrs = dict(handle.attrs)
    missing = [name for name in ("sfreq", "channel_names") if name not in attrs]
    if missing:
        raise ValueError(f"lacks the {plural(len(missing), 'attribute')} {', '.join(missing)}; re-run preprocess for it")
    ch_names = as_str_list(attrs["channel_names"])
    if len(ch_names) != x.shape[1]:
        raise ValueError(f"has {x.shape[1]} channels in 'x' but {len(ch_names)} channel_names")
    if len(set(ch_names)) != len(ch_names):
        raise ValueError("has duplicate channel names")
    y_shape = y_kind = None
    classes_seen = 0
    if "y" in handle:
        y = handle["y"]
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"has {y.shape[0]} labels for {x.shape[0]} windows")
        if y.ndim == 2 and y.shape[1] != x.shape[1]:
            raise ValueError(f"has per-channel labels for {y.shape[1]} channels but {x.shape[1]} channels")
        if y.ndim > 2:
            raise ValueError(f"has labels of shape {y.shape}; expected (n_windows,) or (n_windows, n_channels)")
        y_shape, y_kind = tuple(y.shape[1:]), y.dtype.kind
        classes_seen = int(np.max(y[()])) + 1 if y_kind in "iu" and y.size else 0
    official = None
    if use_official:
        if "split" in handle:
            official = np.array([as_str(v) for v in handle["split"][()]], dtype=object)
            if len(official) != x.shape[0]:
                raise ValueError(f"has {len(official)} per-window splits for {x.shape[0]} windows")
        elif "split" in attrs and as_str(attrs["split"]):
            official = np.full(x.shape[0], as_str(attrs["split"]), dtype=object)
        if official is not None:
            bad = sorted(set(official) - set(SPLITS) - {""})
            if bad:
                raise ValueError(f"has official split {plural(len(bad), 'value')} {bad}; expected train, val or test")
    return ShardHeader(
        path=path,
        recording_id=recording_id,
        subject=as_str(attrs.get("subject", "")),
        n_windows=int(x.shape[0]),
        ch_names=ch_names,
        sfreq=float(attrs["sfreq"]),
        n_times=int(x.shape[2]),
        task=normalise_task(as_str(attrs.get("task", ""))),
        label_names=as_str_list(attrs.get("label_names")),
        y_shape=y_shape,
        y_kind=y_kind,
        official=official,
        attrs={k: v for k, v in attrs.items() if k not in RECORDING_ATTRS},
        classes_seen=classes_seen,
        source_path=as_str(attrs.get("source_path", "")),
    )


_KEY_FIELDS = ("channel names", "sfreq", "window length", "task", "label names", "labels", "label type", "label shape")


def check_compatible(headers: list[ShardHeader]) -> tuple[list[ShardHeader], list[SkippedShard]]:
    """Keep the shards that agree with the majority; reorder channels given in another order.

    Parameters
    ----------
    headers : list of ShardHeader
        The headers of every shard found, in shard name order; a tie between groups goes to the
        group of the first (:func:`~biofound_cli.store.majority.first_of_most`).

    Returns
    -------
    kept : list of ShardHeader
        Shards to pack, with ``channel_order`` set where their channels must be reordered.
    skipped : list of SkippedShard
        Shards that disagree with the majority, and on what.
    """
    if not headers:
        return [], []
    keys = [header.compatibility_key() for header in headers]
    reference_key, tied = first_of_most(keys)
    reference, n_kept = headers[keys.index(reference_key)], keys.count(reference_key)
    # Said in every reason: in a tie the skipped shards are as many as those packed, and which won is not obvious.
    kept_by = f"the {counted(n_kept, 'shard')} packed"
    if tied > 1:
        kept_by += (
            f" (a tie of {tied} groups of {counted(n_kept, 'shard')}, won by the group of the first shard in "
            f"name order, {reference.path})"
        )
    kept: list[ShardHeader] = []
    skipped: list[SkippedShard] = []
    for header, key in zip(headers, keys, strict=True):
        if key != reference_key:
            field_name = next(name for name, a, b in zip(_KEY_FIELDS, key, reference_key, strict=True) if a != b)
            skipped.append(header.skipped(_disagreement(field_name, header, reference, kept_by)))
            continue
        if header.ch_names != reference.ch_names:
            position = {name: i for i, name in enumerate(header.ch_names)}
            header.channel_order = np.array([position[name] for name in reference.ch_names])
            header.ch_names = list(reference.ch_names)
        kept.append(header)
    return kept, skipped


def _disagreement(field_name: str, header: ShardHeader, reference: ShardHeader, kept_by: str) -> str:
    """Why ``header`` is not packed with ``reference``'s group (``kept_by`` names that group), and what to do."""
    if field_name == "channel names":
        extra = sorted(set(header.ch_names) - set(reference.ch_names))
        missing = sorted(set(reference.ch_names) - set(header.ch_names))
        detail = f"missing {missing}" if missing else ""
        detail += ("; " if detail and extra else "") + (f"extra {extra}" if extra else "")
        return (
            f"channel names differ from {kept_by} ({detail}); set preprocess.channels (or preprocess.montage) "
            "to channels every file has and re-run preprocess with --force"
        )
    if field_name == "sfreq":
        # A folder of recordings at their native rates (the edf corpus keeps them by default) meets this.
        return f"sfreq {header.sfreq:g} Hz differs from {reference.sfreq:g} Hz of {kept_by}; {resample_advice(reference.sfreq)}"
    if field_name == "window length":
        return f"windows of {header.n_times} samples differ from {reference.n_times} of {kept_by}"
    if field_name in ("task", "label names"):
        return (
            f"task/label names {header.task!r} {header.label_names} differ from "
            f"{reference.task!r} {reference.label_names} of {kept_by}; pack each task separately"
        )
    return f"{field_name} of 'y' ({header.y_shape}, {header.y_kind}) differs from {kept_by}"
