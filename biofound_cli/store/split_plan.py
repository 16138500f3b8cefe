"""Which split every window goes to: official splits first, then seeded subject-disjoint ones.

:func:`plan_splits` reads the shard headers only. A corpus's official split wins (a per-window
``split`` dataset, else the shard's ``split`` attribute); the other subjects are placed by
:func:`~biofound_cli.store.splits.assign_subjects`. The decision is recorded in the
``splits.json`` manifest, and an earlier manifest is kept as far as it still holds (same seed,
fractions and shards), so re-packing after adding recordings moves no known subject.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from biofound_cli import __version__
from biofound_cli.plural import counted
from biofound_cli.recipes.pack import PackSection
from biofound_cli.store.shard_scan import ShardHeader, as_str
from biofound_cli.store.splits import MANIFEST_NAME, MANIFEST_VERSION, SPLITS, assign_subjects, split_options


@dataclass
class SplitPlan:
    """Which split every window goes to, and how that was decided."""

    window_splits: dict[str, np.ndarray]
    """recording_id → (n_windows,) array of split names."""
    manifest: dict[str, Any]
    status: str
    """``new``, ``reused``, ``updated`` (shards changed) or ``replaced`` (seed/fractions changed)."""
    message: str
    warnings: list[str] = field(default_factory=list)


def _fingerprint(headers: list[ShardHeader]) -> str:
    digest = hashlib.sha256()
    for header in headers:
        official = "" if header.official is None else json.dumps(sorted(Counter(header.official).items()))
        digest.update(f"{header.recording_id}\t{header.subject}\t{header.n_windows}\t{official}\n".encode())
    return digest.hexdigest()


def plan_splits(headers: list[ShardHeader], section: PackSection, existing: dict[str, Any] | None) -> SplitPlan:
    """Decide the split of every window of ``headers`` (already checked for compatibility).

    Official splits win: a per-window ``split`` dataset, else the shard's ``split`` attribute.
    A subject with some official windows puts its other windows where most of its official
    ones are. The remaining subjects are placed by :func:`assign_subjects`; when the official
    splits have no val windows, subjects that are officially train-only may be moved to val.

    Parameters
    ----------
    headers : list of ShardHeader
        The shards to pack, as :func:`~biofound_cli.store.shard_scan.check_compatible` kept them.
    section : PackSection
        The recipe's ``[pack]`` section: fractions, seed, whether official splits are used.
    existing : dict | None
        The manifest of an earlier ``pack`` into the same folder: with the same settings its
        subjects keep their split; None when there is none.
    """
    fractions = section.fractions
    fingerprint = _fingerprint(headers)
    windows_per_subject, official_per_subject = _count_subject_windows(headers)
    fill_official = {subject: counter.most_common(1)[0][0] for subject, counter in official_per_subject.items()}
    free_counts, allowed, fixed = _free_subjects(windows_per_subject, official_per_subject, fill_official, fractions)
    status, message, locked = _reuse_existing(existing, section, fingerprint, headers, free_counts, allowed)

    options = split_options(as_str(header.attrs.get("corpus", "")) for header in headers)
    result = assign_subjects(
        free_counts, fractions, section.seed, fixed_counts=fixed, allowed=allowed, locked=locked, split_options=options
    )
    warnings = list(result.warnings)

    window_splits, recordings = _split_windows(headers, result.splits, fill_official)
    subjects: dict[str, set[str]] = {name: set() for name in SPLITS}
    windows: Counter[str] = Counter()
    for header in headers:
        for name, count in Counter(window_splits[header.recording_id].tolist()).items():
            subjects[name].add(header.subject)
            windows[name] += count
    manifest = {
        "schema_version": MANIFEST_VERSION,
        "seed": section.seed,
        "fractions": fractions,
        "official_splits": section.official_splits,
        "fingerprint": fingerprint,
        "biofound_version": __version__,
        "windows": {name: windows[name] for name in SPLITS},
        "subjects": {name: sorted(subjects[name]) for name in SPLITS},
        "assignments": dict(sorted(result.splits.items())),
        "official_subjects": sorted(s for s in official_per_subject if s not in result.splits),
        "recordings": recordings,
    }
    return SplitPlan(window_splits, manifest, status, message, warnings)


def _count_subject_windows(headers: list[ShardHeader]) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """Windows per subject, and per subject the official splits of those that have one."""
    windows_per_subject: Counter[str] = Counter()
    official_per_subject: dict[str, Counter[str]] = {}
    for header in headers:
        windows_per_subject[header.subject] += header.n_windows
        if header.official is not None:
            marked = Counter(s for s in header.official if s)
            if marked:
                official_per_subject.setdefault(header.subject, Counter()).update(marked)
    return windows_per_subject, official_per_subject


def _free_subjects(
    windows_per_subject: Counter[str],
    official_per_subject: dict[str, Counter[str]],
    fill_official: dict[str, str],
    fractions: dict[str, float],
) -> tuple[dict[str, int], dict[str, tuple[str, ...]], Counter[str]]:
    """The subjects :func:`assign_subjects` places (with the splits each may go to) and the windows already fixed."""
    official_counts: Counter[str] = sum(official_per_subject.values(), Counter())
    # Without official val windows, val is carved out of the officially-train subjects (TUAB-like).
    carve_val = official_counts and official_counts["val"] == 0 and fractions["val"] > 0
    free_counts: dict[str, int] = {}
    allowed: dict[str, tuple[str, ...]] = {}
    fixed: Counter[str] = Counter()
    for subject, n_windows in windows_per_subject.items():
        official = official_per_subject.get(subject)
        if official is None:
            free_counts[subject] = n_windows
        elif carve_val and set(official) == {"train"}:
            free_counts[subject] = n_windows
            allowed[subject] = ("train", "val")
        else:
            fixed[fill_official[subject]] += n_windows - sum(official.values())
            fixed.update(official)
    return free_counts, allowed, fixed


def _reuse_existing(
    existing: dict[str, Any] | None,
    section: PackSection,
    fingerprint: str,
    headers: list[ShardHeader],
    free_counts: dict[str, int],
    allowed: dict[str, tuple[str, ...]],
) -> tuple[str, str, dict[str, str]]:
    """How much of an earlier manifest still holds: its status, the message saying so, the subjects it locks."""
    fractions = section.fractions
    if existing is None:
        return "new", _new_split(section.seed, free_counts, headers), {}
    same_settings = (
        existing.get("seed") == section.seed
        and existing.get("fractions") == fractions
        and existing.get("official_splits") == section.official_splits
    )
    if same_settings and existing.get("fingerprint") == fingerprint:
        message = f"reusing {MANIFEST_NAME}: same seed {section.seed}, fractions and shards as when it was written"
        return "reused", message, dict(existing.get("assignments", {}))
    if same_settings:
        previous = existing.get("assignments", {})
        kept = {s: split for s, split in previous.items() if s in free_counts and split in allowed.get(s, SPLITS)}
        new = len(free_counts) - len(kept)
        # Subjects whose shards were removed stay locked too, so an empty split can say they are gone.
        present = {h.subject for h in headers}
        locked = {**{s: split for s, split in previous.items() if s not in present}, **kept}
        old_recordings = set(existing.get("recordings", {}))
        now_recordings = {h.recording_id for h in headers}
        added, removed = len(now_recordings - old_recordings), len(old_recordings - now_recordings)
        # "+0/-0 recordings" read as nothing changed: the same recordings were preprocessed again (another window, say).
        what = f"+{added}/-{removed} recordings" if added or removed else "the same recordings, their windows or splits changed"
        message = (
            f"shards changed since {MANIFEST_NAME} was written ({what}): "
            f"{counted(len(kept), 'known subject')} {'keeps its' if len(kept) == 1 else 'keep their'} split, "
            f"{counted(new, 'new subject')} placed with seed {section.seed}"
        )
        return "updated", message, locked
    message = (
        f"{MANIFEST_NAME} was written with seed {existing.get('seed')} and fractions {existing.get('fractions')}; "
        f"splitting again with seed {section.seed} and fractions {fractions} (models trained on the old split "
        "must not be evaluated on the new one)"
    )
    return "replaced", message, {}


def _new_split(seed: int, free_counts: dict[str, int], headers: list[ShardHeader]) -> str:
    """How a new split was made: by seed, subject-disjoint, or (partly) by the shards' official splits.

    Official splits may put one subject in several splits (a corpus split by repetition), so a split
    the seed placed no subject of is not called subject-disjoint.
    """
    official = len({header.subject for header in headers} - set(free_counts))
    if not official:
        return f"new subject-disjoint split with seed {seed}"
    if not free_counts:
        return f"new split by the shards' official splits alone ({counted(official, 'subject')}); the seed places none"
    return (
        f"new split: {counted(official, 'subject')} placed by the shards' official splits, "
        f"{len(free_counts)} subject-disjoint with seed {seed}"
    )


def _split_windows(
    headers: list[ShardHeader], assigned: dict[str, str], fill_official: dict[str, str]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every recording's per-window splits, and its manifest entry (subject, windows, split or splits)."""
    window_splits: dict[str, np.ndarray] = {}
    recordings: dict[str, Any] = {}
    for header in headers:
        if header.subject in assigned:
            splits = np.full(header.n_windows, assigned[header.subject], dtype=object)
        else:
            splits = np.full(header.n_windows, fill_official[header.subject], dtype=object)
            if header.official is not None:
                marked = header.official != ""
                splits[marked] = header.official[marked]
        window_splits[header.recording_id] = splits
        per_split = Counter(splits.tolist())
        recordings[header.recording_id] = {
            "subject": header.subject,
            "windows": header.n_windows,
            "split": next(iter(per_split)) if len(per_split) == 1 else dict(sorted(per_split.items())),
        }
    return window_splits, recordings
