"""What ``biofound info`` says about the folders the data stages write: ``preprocess --out`` and ``pack --out``.

A shard folder is known by its preprocess reports (``preprocess_report*.json``, merged as ``pack``
merges them: :func:`~biofound_cli.store.preprocess_reports.read_preprocess_reports`) and the
shards on disk beside them; a packed folder by its ``splits.json`` and split files, each described
as ``info`` describes one (:func:`~biofound_cli.store.describe.describe_h5`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from biofound_cli.errors import DataError
from biofound_cli.store.describe import describe_h5
from biofound_cli.store.folder_lock import out_folder_running
from biofound_cli.store.preprocess_reports import REPORT_GLOB, read_preprocess_reports
from biofound_cli.store.splits import MANIFEST_NAME, SPLITS, is_packed_folder, split_file


def is_shard_folder(path: Path) -> bool:
    """Whether ``path`` is a folder ``biofound preprocess`` wrote into (it holds a preprocess report).

    Parameters
    ----------
    path : Path
        A folder named on the command line.
    """
    return Path(path).is_dir() and any(Path(path).glob(REPORT_GLOB))


def describe_shard_folder(folder: Path) -> dict[str, Any]:
    """The preprocess runs that wrote into ``folder``, their reports summed, and the shards there now.

    Parameters
    ----------
    folder : Path
        A ``preprocess --out`` folder.

    Raises
    ------
    UsageError
        When its reports were written with different settings (as ``pack`` refuses them).
    DataError
        When none of its reports can be read.
    """
    folder = Path(folder)
    summary = read_preprocess_reports(folder)
    if summary is None:
        raise DataError(
            f"{folder}: its preprocess report cannot be read (cut short, or not JSON); re-run the preprocess command "
            "that wrote it (recordings already done are counted, not processed again)"
        )
    # One listing per corpus folder: a TUEG run holds tens of thousands of shards.
    # A pack --out inside it holds split files, not shards (as pack passes it over).
    on_disk = {
        child.name: sum(1 for _ in child.glob("*.h5"))
        for child in sorted(folder.iterdir())
        if child.is_dir() and not is_packed_folder(child)
    }
    return {
        "path": str(folder),
        "kind": "shards",
        **summary.as_dict(),
        "shards_on_disk": {corpus: count for corpus, count in on_disk.items() if count},
        # Whether a preprocess (or its slices) writes into it now; a pack reading it is not one.
        "preprocessing": out_folder_running(folder, "preprocess"),
    }


def describe_packed_folder(folder: Path) -> dict[str, Any]:
    """How ``pack`` split the windows (seed, fractions, and windows, subjects and recordings per split, as
    ``pack --json`` counts them) and each split file there.

    Parameters
    ----------
    folder : Path
        A ``pack --out`` folder.

    Raises
    ------
    DataError
        When ``splits.json`` cannot be read.
    """
    folder = Path(folder)
    try:
        plan = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{folder / MANIFEST_NAME}: cannot be read ({error}); re-run pack into {folder}") from None
    if not isinstance(plan, dict):
        raise DataError(f"{folder / MANIFEST_NAME}: not a pack split plan; re-run pack into {folder}")
    files = {split: split_file(folder, split) for split in SPLITS}
    info: dict[str, Any] = {
        "path": str(folder),
        "kind": "packed_folder",
        "seed": plan.get("seed"),
        "fractions": plan.get("fractions"),
        "official_splits": plan.get("official_splits"),
        "windows": plan.get("windows"),
        "subjects": {split: len(names) for split, names in (plan.get("subjects") or {}).items()},
        "recordings": _recordings_per_split(plan.get("recordings")),
        "skipped": len(plan.get("skipped") or []),
        "missing_splits": [split for split, path in files.items() if not path.is_file()],
    }
    for split, path in files.items():
        if path.is_file():
            described = describe_h5(path)
            info[split] = {key: described[key] for key in SPLIT_COUNTS if key in described}
    return info


SPLIT_COUNTS = ("windows", "subjects", "recordings", "class_counts")
"""What ``info`` shows of each split file of a packed folder: its counts, in the words of ``pack --json``."""


def _recordings_per_split(recordings: Any) -> dict[str, int]:
    """How many recordings have windows in each split, as ``pack --json`` counts them, from ``splits.json``'s entries.

    An entry's ``split`` is one name, or windows per split for a recording the official splits divide; an entry
    without one (a plan written by hand) is counted in none.
    """
    counts = dict.fromkeys(SPLITS, 0)
    for entry in (recordings or {}).values() if isinstance(recordings, dict) else ():
        where = entry.get("split") if isinstance(entry, dict) else None
        for split in [where] if isinstance(where, str) else list(where or ()):
            if split in counts:
                counts[split] += 1
    return counts
