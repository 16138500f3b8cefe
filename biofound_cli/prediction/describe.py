"""What ``biofound info`` says about a ``predict --out`` folder: the model, the counts, the tables and the summary.

``predict`` writes one table (and PNG) per recording and ``summary.json`` (``summary.slice-I-of-N.json``
for each slice of an array job) listing them; a run killed before its summary leaves
``journal.jsonl`` instead, one line per table moved in (:mod:`biofound_cli.prediction.run`). The
description reads every summary of the folder, as a re-run reads them all, counts each recording
once (by its path, as a re-run does), as the newest summary listing it says, and says which tables
are still there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biofound_cli.atomic import read_json_object
from biofound_cli.corpora.not_read import JOURNAL_PATTERN, SUMMARY_KEYS, SUMMARY_PATTERN, is_predict_summary
from biofound_cli.errors import DataError
from biofound_cli.prediction.run import entry_counts, journal_lines
from biofound_cli.store.folder_lock import out_folder_running
from biofound_cli.store.preprocess_reports import in_current_names, with_breakdown


def describe_predict_folder(folder: Path) -> dict[str, Any]:
    """The model, counts, tables and summary files of a ``predict --out`` folder, summed over its slices' summaries.

    Parameters
    ----------
    folder : Path
        A folder :func:`~biofound_cli.corpora.not_read.is_predict_folder` accepts.

    Raises
    ------
    DataError
        When it holds a summary file that cannot be read (cut short, not JSON) or is not a predict summary.
    """
    folder = Path(folder)
    documents: dict[Path, dict[str, Any]] = {}
    # Its summaries (summary.json, summary.slice-I-of-N.json), oldest first.
    for path in sorted(folder.glob(SUMMARY_PATTERN), key=lambda path: (path.stat().st_mtime_ns, path.name)):
        document = read_json_object(path)
        if document is None:
            # predict passes over such a file: the recordings it listed are predicted again and it is rewritten.
            raise DataError(
                f"{path}: unreadable (cut short, or not JSON), so the tables it lists are unknown; re-run the predict "
                "command that wrote it (same --out, and --shard for a slice's summary), which predicts those "
                "recordings again and rewrites it"
            )
        if not is_predict_summary(document):
            missing = next(key for key in SUMMARY_KEYS if key not in document)
            raise DataError(
                f"{path}: not a predict summary (no {missing!r} field); move it out of {folder}, or re-run the "
                "predict command that wrote it"
            )
        documents[path] = document
    # The slices of an array job and a whole run after them (a re-run, --force) list the same recordings:
    # each counts once, as the newest summary listing it says, as a re-run keys them by path.
    latest = {
        str(entry.get("source_path")): entry
        for document in documents.values()
        for entry in map(in_current_names, document["recordings"])
        if entry
    }
    entries = list(latest.values())
    tables = [Path(entry["output"]) for entry in entries if entry.get("status") in ("predicted", "already_done")]
    counts = entry_counts(entries)  # as the run's summary counts its own
    not_read: dict[str, int] = {}
    for document in documents.values():
        # Each run counts the files of the folders it was given (a slice: slice 1 only), so runs into one
        # --out over the same folders count the same files.
        # A summary of an older biofound wrote the breakdown as ``not_read`` itself.
        by_suffix = document.get("not_read_by_suffix", document.get("not_read"))
        for suffix, count in (by_suffix if isinstance(by_suffix, dict) else {}).items():
            not_read[suffix] = max(not_read.get(suffix, 0), int(count))
    described: dict[str, Any] = {
        "path": str(folder),
        "kind": "predictions",
        **_facts(documents),
        "found": len(entries),
        "predicted": counts.predicted,
        "already_done": counts.already_done,
        **with_breakdown("skipped", "reason", counts.skipped),
        **with_breakdown("not_read", "suffix", not_read),
        "windows": counts.windows,
        "windows_predicted": counts.windows_predicted,
        "tables": len(tables),
        "tables_missing": [str(table) for table in tables if not table.is_file()],
        "interrupted": any(document.get("interrupted") for document in documents.values()),
        # Whether a predict writes into it now: its lock held (a stale lock file, of a predict killed, is not).
        "predicting": out_folder_running(folder, "predict"),
        "summaries": [str(path) for path in documents],
    }
    journals = sorted(folder.glob(JOURNAL_PATTERN))
    if journals:
        # A run killed before its summary: its tables are listed in the journal, and a re-run counts them.
        described["journals"] = [str(path) for path in journals]
        # The lines a re-run reads: not one a kill cut short, last in the file or (followed by a newline) before.
        described["journal_tables"] = sum(len(journal_lines(path)) for path in journals)
    return described


def _facts(documents: dict[Path, dict[str, Any]]) -> dict[str, Any]:
    """Model, weights hash, runtime, chain, channels, format and classes: one value when every summary agrees, else each one."""
    facts: dict[str, Any] = {}
    for key in ("model", "model_sha256", "runtime", "chain_from", "channels", "format", "label_names", "slice"):
        values = [document.get(key) for document in documents.values()]
        distinct = [value for index, value in enumerate(values) if value not in values[:index]]
        if key == "slice":
            distinct = [value for value in distinct if value is not None]
            if distinct:
                facts["slices"] = distinct
        elif distinct:
            facts[key] = distinct[0] if len(distinct) == 1 else distinct
    return facts
