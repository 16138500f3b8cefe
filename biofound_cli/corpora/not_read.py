"""The files of a corpus folder a run passes over, counted by suffix and named in one warning per folder.

``preprocess`` (its ``--root``) and ``predict`` (each folder of its ``RECORDINGS``) count them
alike. A file passed over is one the reader does not take for a recording, that no recording
is read from (:meth:`~biofound_cli.corpora.base.Corpus.unread_files`), and that discovery did
not leave out on purpose: a recording the recipe leaves out (a file ``labels_csv`` does not
list, a TUEG subject of ``exclude_roots``) is counted under its reason instead
(:attr:`~biofound_cli.corpora.base.Corpus.left_out`), so it is never called "not a recording".

The output folders of ``predict`` runs inside a corpus folder (``--out RAW/pred1``) are known here, by
what predict writes there (its summary or journal: :func:`is_predict_folder`), so that both
commands pass over them alike (:class:`EarlierOutputs`): none of their files is a recording or counted.
"""

from __future__ import annotations

import fnmatch
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Sequence, TypeGuard

from biofound_cli.atomic import read_json_object
from biofound_cli.corpora.base import Corpus, RecordingRef, files_under
from biofound_cli.plural import counted

logger = logging.getLogger(__name__)

NO_SUFFIX = "(none)"
"""The key of files without a suffix (``README``) among the files not read."""

SUMMARY_NAME = "summary.json"
JOURNAL_STEM = "journal"
SUMMARY_PATTERN = "summary*.json"
"""The names of a predict folder's summaries: ``summary.json``, ``summary.slice-I-of-N.json``."""
JOURNAL_PATTERN = f"{JOURNAL_STEM}*.jsonl"
"""The names of its journals: ``journal.jsonl``, ``journal.slice-I-of-N.jsonl``."""
SUMMARY_KEYS = ("model", "model_sha256", "runtime", "format", "recordings")
"""What makes a JSON object a predict summary rather than another tool's ``summary.json``."""


def is_predict_summary(document: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    """Whether a JSON object read from a ``summary*.json`` is one ``biofound predict`` wrote.

    Parameters
    ----------
    document : dict | None
        The file's object (``None``: it could not be read as one).
    """
    return document is not None and all(key in document for key in SUMMARY_KEYS)


def is_predict_folder(path: Path, *, unreadable_counts: bool = True) -> bool:
    """Whether ``path`` is a folder ``biofound predict`` wrote into: it holds a summary of a predict run, or a journal.

    Parameters
    ----------
    path : Path
        Any path.
    unreadable_counts : bool
        Whether a summary file that cannot be read as a JSON object (cut short, not JSON) counts too, so that
        ``biofound info`` names it (no other command writes ``summary*.json``); ``False`` where the answer
        passes over the folder's files (among recordings: another tool's broken ``summary.json`` must not hide them).
    """
    path = Path(path)
    if not path.is_dir():
        return False
    documents = [read_json_object(summary) for summary in path.glob(SUMMARY_PATTERN)]
    return any(path.glob(JOURNAL_PATTERN)) or any(
        (document is None and unreadable_counts) or is_predict_summary(document) for document in documents
    )


class EarlierOutputs:
    """The output folders of predict runs among the recordings: this run's ``--out``, and earlier runs' ones.

    ``predict REC --out REC/pred1`` and then ``--out REC/pred2`` (or ``preprocess --root REC``): the
    second run took ``pred1``'s tables, figures and summary for files of ``REC`` it did not read (a
    reader taking any ``.csv``, for recordings it could not use). An earlier run's folder is known by
    what predict writes there (:func:`is_predict_folder`) and named once, in an info line; nothing
    inside one is read or counted.

    Parameters
    ----------
    output : Path | None
        This run's ``--out`` when it is a predict run's, never read and not named.
    """

    def __init__(self, output: Path | None) -> None:
        self.own = output.resolve() if output is not None else None
        self.named: list[Path] = []
        self._known: dict[Path, bool] = {}

    def below(self, folder: Path) -> list[Path]:
        """The output folders inside ``folder`` (this run's too), each earlier run's named once.

        Parameters
        ----------
        folder : Path
            A folder of recordings: its files are walked once (:func:`files_under`, inside
            :func:`~biofound_cli.corpora.base.one_walk_per_folder`), and only the folders holding a
            file named as a predict summary or journal are looked into.
        """
        names = (SUMMARY_PATTERN, JOURNAL_PATTERN)
        holders = {path.parent for path in files_under(folder, name_broken_links=False) if _named(path.name, names)}
        found = [holder for holder in sorted(holders) if self.look_into(holder)]
        return [*found, *([self.own] if self.own is not None else [])]

    def look_into(self, folder: Path) -> bool:
        """Whether ``folder`` is an earlier run's output folder; named the first time it is found one.

        Parameters
        ----------
        folder : Path
            A folder holding a recording given by name or pattern, or a predict summary or journal.
        """
        resolved = folder.resolve()
        if resolved not in self._known:
            self._known[resolved] = resolved != self.own and is_predict_folder(resolved, unreadable_counts=False)
            if self._known[resolved]:
                self.named.append(folder)
                logger.info(
                    f"{folder}: the output of an earlier biofound predict (its summary or journal is there); "
                    "its files are not read as recordings nor counted among the files not read"
                )
        return self._known[resolved]

    def holds(self, path: Path) -> bool:
        """Whether ``path`` lies in this run's ``--out`` or in an earlier run's output folder looked into.

        Parameters
        ----------
        path : Path
            A recording found.
        """
        parents = path.resolve().parents
        return (self.own is not None and self.own in parents) or any(self._known.get(parent) for parent in parents)


def _named(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def count_not_read(
    folder: Path, found: Sequence[RecordingRef], corpus: Corpus, *, outputs: Sequence[Path] = ()
) -> dict[str, int]:
    """The files of ``folder`` a run passes over, by lower-case suffix; one warning names the folder and counts them.

    Call it right after ``corpus.discover(folder)`` returned ``found``: what that discovery left
    out on purpose (``corpus.left_out``) is not counted, nor are those recordings' own files.

    Parameters
    ----------
    folder : Path
        A folder the corpus discovered recordings in.
    found : sequence of RecordingRef
        What its discovery listed.
    corpus : Corpus
        The reader that listed them.
    outputs : sequence of Path
        Output folders whose files are not counted when they lie inside ``folder``: the run's own
        (``--out RAW/shards``: a re-run called its shards and report files it did not read), and those of
        predict runs there (``--out RAW/pred1``, then ``--out RAW/pred2``: :meth:`EarlierOutputs.below`).
    """
    left_out = [ref for refs in corpus.left_out.values() for ref in refs]
    unread = corpus.unread_files(folder, [*found, *left_out])
    if outputs:
        skipped = {Path(output).resolve() for output in outputs}
        unread = [path for path in unread if skipped.isdisjoint(path.resolve().parents)]
    suffixes = Counter(path.suffix.lower() or NO_SUFFIX for path in unread)
    n = sum(suffixes.values())
    if n:
        by_suffix = ", ".join(
            f"{count} {'without a suffix' if suffix == NO_SUFFIX else suffix}"
            for suffix, count in sorted(suffixes.items(), key=_most_first)
        )
        what = f"is no {corpus.name} recording and was" if n == 1 else f"are not {corpus.name} recordings and were"
        logger.warning(
            f"{counted(n, 'file')} in {folder} {what} not read: {by_suffix}; "
            f"docs/corpora/{corpus.name}.md says which files the reader takes"
        )
    return dict(sorted(suffixes.items()))


def _most_first(item: tuple[str, int]) -> tuple[int, bool, str]:
    """The order suffixes are named in: most files first, then by suffix, files without one last."""
    suffix, count = item
    return -count, suffix == NO_SUFFIX, suffix
