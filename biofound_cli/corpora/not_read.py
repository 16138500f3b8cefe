"""The files of a corpus folder a run passes over, counted by suffix and named in one warning per folder.

``preprocess`` (its ``--root``) and ``predict`` (each folder of its ``RECORDINGS``) count them
alike. A file passed over is one the reader does not take for a recording, that no recording
is read from (:meth:`~biofound_cli.corpora.base.Corpus.unread_files`), and that discovery did
not leave out on purpose: a recording the recipe leaves out (a file ``labels_csv`` does not
list, a TUEG subject of ``exclude_roots``) is counted under its reason instead
(:attr:`~biofound_cli.corpora.base.Corpus.left_out`), so it is never called "not a recording".
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Sequence

from biofound_cli.corpora.base import Corpus, RecordingRef
from biofound_cli.plural import counted

logger = logging.getLogger(__name__)

NO_SUFFIX = "(none)"
"""The key of files without a suffix (``README``) among the files not read."""


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
        (``--out RAW/shards``: a re-run called its shards and report files it did not read), and for
        ``predict`` those of earlier predict runs there (``--out RAW/pred1``, then ``--out RAW/pred2``).
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


__all__ = ["NO_SUFFIX", "count_not_read"]
