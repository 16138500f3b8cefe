"""Subject-disjoint, seeded train/val/test splits and the ``splits.json`` manifest.

The unit of splitting is the subject: every window of a subject goes to one split, so a
patient recorded under two labels (TUAB has 54 of them) never straddles train and test.
Subjects are taken from large to small (shuffled by the seed within each power-of-two size
class) and each goes to the split furthest below its target share of windows, which balances
the splits by window count, not by subject count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from biofound_cli.errors import DataError
from biofound_cli.plural import counted

SPLITS = ("train", "val", "test")
MANIFEST_NAME = "splits.json"
MANIFEST_VERSION = 1


def is_packed_folder(path: Path) -> bool:
    """Whether ``path`` is a folder ``biofound pack`` wrote (it holds ``splits.json``).

    Parameters
    ----------
    path : Path
        A folder named on the command line, or one below a shard folder.
    """
    return (Path(path) / MANIFEST_NAME).is_file()


def split_file(folder: Path, split: str) -> Path:
    """The packed file of ``split`` in a ``pack --out`` folder: ``FOLDER/<split>.h5``.

    Parameters
    ----------
    folder : Path
        The folder ``pack`` writes.
    split : str
        One of :data:`SPLITS`.
    """
    return Path(folder) / f"{split}.h5"


@dataclass
class SubjectAssignment:
    """The outcome of :func:`assign_subjects`."""

    splits: dict[str, str]
    """Subject → split for every subject that was free to be placed (new or kept)."""
    warnings: list[str] = field(default_factory=list)


def assign_subjects(
    window_counts: Mapping[str, int],
    fractions: Mapping[str, float],
    seed: int,
    *,
    fixed_counts: Mapping[str, int] | None = None,
    allowed: Mapping[str, Sequence[str]] | None = None,
    locked: Mapping[str, str] | None = None,
    split_options: Mapping[str, Sequence[str]] | None = None,
) -> SubjectAssignment:
    """Place subjects into train/val/test, balanced by window count.

    Parameters
    ----------
    window_counts : mapping of str to int
        Windows per subject to place (subjects with an official split are not in it).
    fractions : mapping of str to float
        Target share of all windows per split (``fixed_counts`` included).
    seed : int
        Seed of the random subject order; the same seed and counts give the same result.
    fixed_counts : mapping of str to int | None
        Windows already in each split by a corpus's official split.
    allowed : mapping of str to sequence of str | None
        Splits a subject may go to (default: all three); an official-train subject may go to
        train or val only.
    locked : mapping of str to str | None
        Subjects whose split is already decided (kept from an earlier ``splits.json``); those not in
        ``window_counts`` are gone (their shards removed), named when the split they held stays empty.
    split_options : mapping of str to sequence of str | None
        Per split, the reader options that give the packed recordings that official split
        (``ts: preprocess.options.val_fraction``), named when it stays empty.

    Returns
    -------
    SubjectAssignment
        Subject → split, and warnings about splits left empty.
    """
    fixed_counts = dict(fixed_counts or {})
    allowed = dict(allowed or {})
    locked = dict(locked or {})
    counts = {name: float(fixed_counts.get(name, 0)) for name in SPLITS}
    result: dict[str, str] = {}
    for subject, name in locked.items():
        if subject in window_counts:
            result[subject] = name
            counts[name] += window_counts[subject]
    total = sum(counts.values()) + sum(n for s, n in window_counts.items() if s not in result)

    # Sorting first makes the order depend on the seed only, not on dict insertion order. Big
    # subjects go first (by power-of-two size class) so the greedy fill stays balanced; the
    # seed shuffles subjects within a size class.
    free = sorted(s for s in window_counts if s not in result)
    shuffled = [free[i] for i in np.random.default_rng(seed).permutation(len(free))]
    order = sorted(shuffled, key=lambda s: -int(np.log2(max(window_counts[s], 1))))
    rank = {subject: i for i, subject in enumerate(order)}
    for subject in order:
        choices = allowed.get(subject, SPLITS)
        name = max(choices, key=lambda s: (fractions[s] * total - counts[s], -SPLITS.index(s)))
        result[subject] = name
        counts[name] += window_counts[subject]

    # With few subjects the greedy fill can leave val or test empty; move the smallest newly
    # placed subject from the most crowded split so each wanted split has at least one.
    empty: list[str] = []
    for name in SPLITS:
        if fractions[name] <= 0 or counts[name] > 0:
            continue
        members = {s: [m for m in order if result[m] == s] for s in SPLITS}
        donors = [s for s in SPLITS if len(members[s]) > 1]
        candidates = [
            m for s in sorted(donors, key=lambda s: -len(members[s])) for m in members[s] if name in allowed.get(m, SPLITS)
        ]
        if not candidates:
            empty.append(name)
            continue
        moved = min(candidates, key=lambda m: (window_counts[m], rank[m]))
        counts[result[moved]] -= window_counts[moved]
        result[moved] = name
        counts[name] += window_counts[moved]
    has_official = any(n > 0 for n in fixed_counts.values())
    # Kept subjects matter only where splits.json had placed subjects in an empty split that are gone now:
    # re-packing the same few recordings leaves the split empty as the first run did, for the same reason.
    gone = any(name in empty and subject not in window_counts for subject, name in locked.items())
    n_kept = sum(1 for subject in locked if subject in window_counts) if gone else 0
    if not empty:
        # Official splits place windows by the corpus's rule, not by the fractions.
        return SubjectAssignment(result, [] if has_official else _far_from_fractions(counts, fractions, len(window_counts)))
    hints = sorted({option for name in empty for option in (split_options or {}).get(name, ())})
    return SubjectAssignment(result, [_empty_split_warning(empty, len(window_counts), has_official, n_kept, hints)])


FRACTION_TOLERANCE = 0.1
"""How far a split's share of the windows may be from its ``pack`` fraction before ``pack`` warns (0.1: 10 points)."""


def _far_from_fractions(counts: Mapping[str, float], fractions: Mapping[str, float], n_subjects: int) -> list[str]:
    """One warning naming each split whose share of the windows is far from its fraction; none when all are near.

    Subjects are kept whole, so a few of them cannot give 0.8/0.1/0.1: 3 subjects gave 1/1/1 (a
    third of the windows each) without a word. A split left empty has its own warning instead.
    """
    total = sum(counts.values())
    off = [
        f"{name} got {counts[name] / total:.0%} of the windows (pack.{name} = {fractions[name]:g})"
        for name in SPLITS
        if total and abs(counts[name] / total - fractions[name]) > FRACTION_TOLERANCE
    ]
    if not off:
        return []
    return [
        f"the splits are far from pack's fractions: {'; '.join(off)}, as {counted(n_subjects, 'subject')}, each kept "
        f"whole in one "
        "split, cannot come nearer; add recordings of more subjects, or set the fractions to what these can give"
    ]


def _empty_split_warning(names: list[str], n_free: int, has_official: bool, n_kept: int = 0, hints: Sequence[str] = ()) -> str:
    """Why the splits ``names`` stay empty, in the terms of the subjects that could have filled them (one warning).

    ``n_kept`` subjects kept the split an earlier ``splits.json`` gave them: when the split's own
    subjects are gone (their shards removed), those could fill it but are not moved. ``hints`` name the
    reader options that would give the recordings such an official split (``ts: preprocess.options.val_fraction``).
    """
    which = " and ".join(repr(name) for name in names)
    split_is = f"split {which} is" if len(names) == 1 else f"splits {which} are"
    fractions = " and ".join(f"pack.{name}" for name in names)
    if n_kept:
        return (
            f"{split_is} empty: splits.json placed no remaining subject there (its subjects' shards are gone) and the "
            f"{counted(n_kept, 'subject')} it placed elsewhere {'keeps its' if n_kept == 1 else 'keep their'} split; "
            f"delete splits.json in the packed folder to split "
            "every subject anew (models trained on the old split must not be evaluated on the new one), or add recordings"
        )
    if has_official and n_free == 0:
        # Only what the packed readers really take: "give the corpus such a split" sent UCI EMG's users looking for an option.
        give = f"give recordings such a split ({', '.join(hints)}), or " if hints else "no reader packed here gives one; "
        return (
            f"{split_is} empty: every subject's windows have an official split and none is {which}; "
            f"{give}set {fractions} = 0 and the other fractions to add up to 1"
        )
    # With official splits, the subjects pack places are those of no official split and those officially train
    # alone (rule 2 of docs/pack.md): UCI EMG's subject 01 was said to have no official split.
    free = counted(n_free, "subject") + (" whose split pack chooses (officially train, or of no split)" if has_official else "")
    return (
        f"{split_is} empty: {free} cannot fill train, val and test without sharing a subject; "
        f"add recordings or set {fractions} to 0"
    )


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path``, or ``None`` if there is none.

    Parameters
    ----------
    path : Path
        Where the manifest would be (``splits.json`` of the packed folder).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable split manifest ({error}); delete it to split again") from None
    if not isinstance(data, dict) or data.get("schema_version") != MANIFEST_VERSION:
        raise DataError(f"{path}: unknown split manifest version; delete it to split again")
    return data


def split_options(corpora: Iterable[str]) -> dict[str, list[str]]:
    """Per split, what of these readers gives recordings that official split (``ts: preprocess.options.val_fraction``,
    ``uci-emg: the recordings of subjects 25..30``), as each reader says it
    (:meth:`~biofound_cli.corpora.base.Corpus.official_split_source`); a name that is no reader's is passed over.

    A split left empty names them: an advice naming one reader's option (``ts``'s) sent the users of
    another (``emg-csv``, which splits by repetition) to an option their reader does not take.

    Parameters
    ----------
    corpora : iterable of str
        The readers of the shards packed (their ``corpus`` attribute).
    """
    from biofound_cli.corpora import CORPORA, get_corpus

    options: dict[str, list[str]] = {}
    for corpus in sorted(set(corpora) & set(CORPORA)):
        for split in SPLITS:
            source = get_corpus(corpus).official_split_source(split)
            if source is not None:
                options.setdefault(split, []).append(f"{corpus}: {source}")
    return options


def _filling(manifest: dict[str, Any], split: str) -> str:
    """What fills the empty ``split`` of a packed folder, from its ``splits.json``: more subjects, or, when no subject
    was free to place (every one had an official split), recordings the corpus gives that split."""
    if manifest.get("assignments") or not manifest.get("official_subjects"):
        return "add recordings of more subjects and pack again"
    # A recording's id is its shard's path below SHARDS, SHARDS/<corpus>/<id>.h5 as preprocess writes it.
    hints = split_options(recording.partition("/")[0] for recording in manifest.get("recordings") or {}).get(split)
    return (
        f"every subject's windows have an official split and none is '{split}': give recordings that split"
        + (f" ({', '.join(hints)})" if hints else "")
        + " and preprocess and pack again"
    )


def missing_split_advice(path: Path, leave_out: str = "") -> str:
    """What to do about a packed split file that is not there, said after its path.

    ``pack`` writes no file for a split it left empty (too few subjects, ``pack.val = 0``), so
    "run pack" would give the same folder again: when the folder's ``splits.json`` says the split
    is empty, the advice says so instead.

    Parameters
    ----------
    path : Path
        The missing file (``PACKED/val.h5``, say).
    leave_out : str
        How the stage reading it goes on without an empty split, after "or leave this split out"
        (training's ``--unset data.val``; ``evaluate --split val`` has none to give).
    """
    path = Path(path)
    try:
        manifest = read_manifest(path.parent / MANIFEST_NAME) or {}
    except DataError:
        manifest = {}
    windows = manifest.get("windows")
    if path.name in {f"{name}.h5" for name in SPLITS} and isinstance(windows, dict) and windows.get(path.stem) == 0:
        held = ", ".join(f"{n} in {name}" for name, n in windows.items() if n)
        return (
            f"pack left split '{path.stem}' empty, so it wrote no file ({path.parent / MANIFEST_NAME}: windows {held}); "
            f"{_filling(manifest, path.stem)}, or leave this split out{leave_out}"
        )
    moved = (
        f", or, if it was moved (a run copied from another machine), --set data.{path.stem}=ITS_PATH"
        if path.stem in SPLITS
        else ""
    )
    return f"packed file not found; run `biofound pack SHARDS --out {path.parent}` first{moved}"
