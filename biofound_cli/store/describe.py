"""What ``biofound info`` says about an HDF5 file: a packed split file or a single shard."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from biofound_cli.errors import DataError
from biofound_cli.store.shard_scan import CLASS_LABELS, as_str, as_str_list, counts_by_class_name, label_kind, open_hdf5
from biofound_cli.store.shards import not_a_shard
from biofound_cli.store.virtual_layout import LAYOUT_ATTR, SHARD_PATHS, check_sources

# Labels are counted in blocks so a packed file of millions of windows is never read whole.
LABEL_BLOCK = 65536
MAX_LISTED_SUBJECTS = 20


def _count_labels(y: Any, label_names: list[str]) -> dict[str, int]:
    counts: Counter[int] = Counter()
    for start in range(0, y.shape[0], LABEL_BLOCK):
        values, numbers = np.unique(y[start : start + LABEL_BLOCK], return_counts=True)
        counts.update(dict(zip(values.tolist(), numbers.tolist(), strict=True)))
    return counts_by_class_name(counts, label_names)


def _start_times(handle: Any) -> str:
    """Whether each packed window can be traced to its recording and start time."""
    if "window_start_seconds" not in handle:
        return "absent (packed by an older biofound; re-run pack)"
    starts = handle["window_start_seconds"]
    unknown = sum(
        int(np.count_nonzero(np.isnan(starts[start : start + LABEL_BLOCK]))) for start in range(0, starts.shape[0], LABEL_BLOCK)
    )
    if unknown == 0:
        return f"all {starts.shape[0]} windows (with recording_index)"
    return f"unknown (NaN) for {unknown} of {starts.shape[0]} windows: shards from an older preprocess"


def describe_h5(path: Path) -> dict[str, Any]:
    """Summarise a packed split file or a shard.

    Parameters
    ----------
    path : Path
        A packed split file or a shard.

    Returns
    -------
    dict
        ``kind`` (``packed`` or ``shard``), ``windows``, ``n_channels``, ``ch_names``, ``n_times``,
        ``sfreq``, ``task``, ``window_seconds`` and ``stride_seconds`` (where recorded), ``labels`` (how the
        windows are labelled), ``class_counts`` (windows per class, for class labels; label entries for per-channel
        tasks), ``subjects`` (how many) and ``subject_names`` (the first few), ``dtype``, ``size_bytes`` and, for
        packed files, ``split``, ``seed``, ``num_classes``, ``clipped_values``, ``recordings`` (how many) and
        ``window_start_seconds`` (whether every window has its start time in its recording), ``layout``
        (``copy`` or ``virtual``) and, for the virtual layout, ``n_shards`` it reads from.

    Raises
    ------
    DataError
        A virtual packed file whose shard is gone (named).
    """
    path = Path(path)
    with open_hdf5(path, "file not found; check the path") as handle:
        if "x" not in handle or handle["x"].ndim != 3:
            raise DataError(f"{path}: no 3-d dataset 'x'; this is not a biofound shard or packed file")
        x = handle["x"]
        attrs = handle.attrs
        packed = "schema_version" in attrs and "recording_index" in handle
        problem = None if packed else not_a_shard(handle)
        if problem is not None:
            raise DataError(
                f"{path}: {problem}, so it is not a biofound shard or packed file; "
                "info describes only the .h5 files preprocess and pack write"
            )
        if packed:
            check_sources(handle, path)
        label_names = as_str_list(attrs.get("label_names"))
        info: dict[str, Any] = {
            "path": str(path),
            "kind": "packed" if packed else "shard",
            "windows": int(x.shape[0]),
            "n_channels": int(x.shape[1]),
            "n_times": int(x.shape[2]),
            "ch_names": as_str_list(attrs.get("channel_names")),
            "sfreq": float(attrs.get("sfreq", 0.0)),
            "task": as_str(attrs.get("task", "")),
            # What preprocess cut the windows with (a packed file: where every shard agrees), so a
            # non-default step shows; n_times alone gives the length, not the step.
            **{key: float(attrs[key]) for key in ("window_seconds", "stride_seconds") if key in attrs},
            "label_names": label_names,
            "dtype": str(x.dtype),
        }
        y = handle["y"] if "y" in handle else None
        info["labels"] = label_kind(None if y is None else y.shape[1:], None if y is None else y.dtype.kind)
        if info["labels"] in CLASS_LABELS:
            if packed and "class_counts" in attrs:
                info["class_counts"] = json.loads(as_str(attrs["class_counts"]))
            else:
                info["class_counts"] = _count_labels(y, label_names)
        if packed:
            subjects = [as_str(s) for s in handle["subjects"][()]] if "subjects" in handle else []
            info.update(
                split=as_str(attrs.get("split", "")),
                seed=int(attrs.get("seed", 0)),
                num_classes=int(attrs.get("num_classes", 0)),
                clipped_values=int(attrs.get("clipped_values", 0)),
                recordings=int(handle["recordings"].shape[0]) if "recordings" in handle else 0,
                schema_version=int(attrs["schema_version"]),
                window_start_seconds=_start_times(handle),
                layout=as_str(attrs.get(LAYOUT_ATTR, "copy")),
            )
            if SHARD_PATHS in handle:
                info["n_shards"] = int(handle[SHARD_PATHS].shape[0])
        else:
            subjects = [as_str(attrs.get("subject", ""))]
            info.update(corpus=as_str(attrs.get("corpus", "")), official_split=as_str(attrs.get("split", "")))
            # Where the shard's windows start in its recording (shards.WINDOW_STARTS).
            starts = handle["window_start_seconds"][()] if "window_start_seconds" in handle else None
            info["window_start_seconds"] = (
                "absent (written by an older preprocess)"
                if starts is None
                else f"{len(starts)} windows, first at {starts[0]:g} s, last at {starts[-1]:g} s"
                if len(starts)
                else "no windows"
            )
        # Counts in pack's words (`subjects`, `recordings`: how many); the names beside them.
        info["subjects"] = len(subjects)
        info["subject_names"] = subjects[:MAX_LISTED_SUBJECTS]
    info["size_bytes"] = path.stat().st_size
    return info
