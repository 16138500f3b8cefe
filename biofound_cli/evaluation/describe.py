"""What ``biofound info`` says about an evaluation folder (``runs/NAME/eval/SPLIT``): its ``report.json``, in brief.

The weights evaluated (path and SHA-256), the split file, the numbers of windows and recordings,
the headline metrics of each level, the report's notes and the plots beside it; the full report
stays in the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biofound_cli.atomic import read_json_object
from biofound_cli.errors import DataError
from biofound_cli.evaluation.report import REPORT_FILE
from biofound_cli.store.folder_lock import out_folder_running

_REPORT_KEYS = ("headline", "source", "task")
"""The fields only an evaluation report has together: what tells it from another ``report.json``."""


def is_evaluation_folder(path: Path) -> bool:
    """Whether ``path`` is a folder ``biofound evaluate`` wrote (it holds its ``report.json``).

    A ``report.json`` that cannot be read counts too, so that :func:`describe_evaluation_folder` names it.

    Parameters
    ----------
    path : Path
        A folder named on the command line.
    """
    report = Path(path) / REPORT_FILE
    if not report.is_file():
        return False
    document = read_json_object(report)
    return document is None or all(key in document for key in _REPORT_KEYS)


def describe_evaluation_folder(folder: Path) -> dict[str, Any]:
    """The evaluation in ``folder``: what was evaluated on which split, and its headline numbers.

    Parameters
    ----------
    folder : Path
        A ``biofound evaluate`` output folder (``runs/NAME/eval/SPLIT`` by default).

    Raises
    ------
    DataError
        When its ``report.json`` cannot be read.
    """
    folder = Path(folder)
    report = read_json_object(folder / REPORT_FILE)
    if report is None:
        raise DataError(
            f"{folder / REPORT_FILE}: cannot be read (cut short, or not JSON); run the evaluate command that wrote it again"
        )
    source = report.get("source") or {}
    recordings = report.get("recordings") or {}
    return {
        "path": str(folder),
        "kind": "evaluation",
        "task": report.get("task"),
        "checkpoint": source.get("checkpoint"),
        "checkpoint_sha256": source.get("checkpoint_sha256"),
        "split": source.get("split"),
        "split_file": source.get("split_path"),
        "windows": report.get("n_windows"),
        # `recordings`, as evaluate --json says it (report.json keeps n_recordings beside the ids and metrics).
        "recordings": recordings.get("n_recordings") if isinstance(recordings, dict) else None,
        "headline": report.get("headline"),
        "bootstrap": report.get("bootstrap") is not None,
        "notes": report.get("notes") or [],
        "plots": sorted(path.name for path in folder.glob("*.png")),
        # Whether an evaluate writes into it now (a stale lock file, of an evaluate killed, is not held).
        "evaluating": out_folder_running(folder, "evaluate"),
    }
