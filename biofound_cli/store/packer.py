"""Shards → ``PACKED/{train,val,test}.h5``, subject-disjoint, seeded, streamed shard by shard.

The packer reads every shard's header, drops the shards that disagree with the rest (channels,
sfreq, window length, task), decides each window's split (a corpus's official split first,
then a seeded subject split), records that decision in ``PACKED/splits.json`` and then copies
the windows split by split, a block of windows at a time, so the corpus is never in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from biofound_cli import __version__
from biofound_cli.atomic import atomic_path
from biofound_cli.errors import DataError, UsageError
from biofound_cli.progress import NO_PROGRESS, ProgressReporter
from biofound_cli.recipes.pack import PackSection
from biofound_cli.store.shard_scan import ShardHeader, check_compatible, find_shards, read_header
from biofound_cli.store.splits import (
    MANIFEST_NAME,
    MANIFEST_VERSION,
    SPLITS,
    assign_subjects,
    read_manifest,
    write_manifest,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
FLOAT16_MAX = float(np.finfo(np.float16).max)
# Aim for chunks of about this many bytes: one window for EEG-sized windows, a few for tiny ones.
CHUNK_TARGET_BYTES = 128 * 1024
MAX_CHUNK_ROWS = 32


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
    """
    fractions = section.fractions
    fingerprint = _fingerprint(headers)
    same_settings = (
        existing is not None
        and existing.get("seed") == section.seed
        and existing.get("fractions") == fractions
        and existing.get("official_splits") == section.official_splits
    )

    windows_per_subject: Counter[str] = Counter()
    official_per_subject: dict[str, Counter[str]] = {}
    for header in headers:
        windows_per_subject[header.subject] += header.n_windows
        if header.official is not None:
            marked = Counter(s for s in header.official if s)
            if marked:
                official_per_subject.setdefault(header.subject, Counter()).update(marked)

    official_counts: Counter[str] = Counter()
    for counter in official_per_subject.values():
        official_counts.update(counter)
    fill_official = {subject: counter.most_common(1)[0][0] for subject, counter in official_per_subject.items()}
    # Without official val windows, val is carved out of the officially-train subjects (TUAB-like).
    carve_val = official_counts and official_counts["val"] == 0 and fractions["val"] > 0
    free_counts: dict[str, int] = {}
    allowed: dict[str, tuple[str, ...]] = {}
    fixed: Counter[str] = Counter()
    for subject, n_windows in windows_per_subject.items():
        counter = official_per_subject.get(subject)
        if counter is None:
            free_counts[subject] = n_windows
        elif carve_val and set(counter) == {"train"}:
            free_counts[subject] = n_windows
            allowed[subject] = ("train", "val")
        else:
            fixed[fill_official[subject]] += n_windows - sum(counter.values())
            fixed.update(counter)

    locked: dict[str, str] = {}
    if same_settings and existing.get("fingerprint") == fingerprint:
        status = "reused"
        message = f"reusing {MANIFEST_NAME}: same seed {section.seed}, fractions and shards as when it was written"
        locked = dict(existing.get("assignments", {}))
    elif same_settings:
        status = "updated"
        previous = existing.get("assignments", {})
        locked = {s: split for s, split in previous.items() if s in free_counts and split in allowed.get(s, SPLITS)}
        new = len(free_counts) - len(locked)
        old_recordings = set(existing.get("recordings", {}))
        now_recordings = {h.recording_id for h in headers}
        message = (
            f"shards changed since {MANIFEST_NAME} was written "
            f"(+{len(now_recordings - old_recordings)}/-{len(old_recordings - now_recordings)} recordings): "
            f"{len(locked)} known subject(s) keep their split, {new} new subject(s) placed with seed {section.seed}"
        )
    elif existing is not None:
        status = "replaced"
        message = (
            f"{MANIFEST_NAME} was written with seed {existing.get('seed')} and fractions {existing.get('fractions')}; "
            f"splitting again with seed {section.seed} and fractions {fractions} (models trained on the old split "
            "must not be evaluated on the new one)"
        )
    else:
        status = "new"
        message = f"new subject-disjoint split with seed {section.seed}"

    result = assign_subjects(free_counts, fractions, section.seed, fixed_counts=fixed, allowed=allowed, locked=locked)
    warnings = list(result.warnings)
    if len(windows_per_subject) == 1 and not official_per_subject:
        warnings.append("only one subject: every window goes to train, val and test are empty")

    window_splits: dict[str, np.ndarray] = {}
    recordings: dict[str, Any] = {}
    for header in headers:
        if header.subject in result.splits:
            splits = np.full(header.n_windows, result.splits[header.subject], dtype=object)
        else:
            splits = np.full(header.n_windows, fill_official[header.subject], dtype=object)
            if header.official is not None:
                marked = header.official != ""
                splits[marked] = header.official[marked]
        window_splits[header.recording_id] = splits
        per_split = Counter(splits.tolist())
        recordings[header.recording_id] = {
            "subject": header.subject,
            "n_windows": header.n_windows,
            "split": next(iter(per_split)) if len(per_split) == 1 else dict(sorted(per_split.items())),
        }

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


@dataclass
class PackResult:
    """What :func:`pack_shards` did, for the command's summary."""

    out: Path
    files: dict[str, Path]
    windows: dict[str, int]
    subjects: dict[str, int]
    recordings: dict[str, int]
    class_counts: dict[str, dict[str, int]]
    split_status: str
    split_message: str
    skipped: list[tuple[str, str]]
    clipped_values: int
    nonfinite_values: int
    dtype: str
    seed: int
    preprocess: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "out": str(self.out),
            "files": {name: str(path) for name, path in self.files.items()},
            "windows": self.windows,
            "subjects": self.subjects,
            "recordings": self.recordings,
            "class_counts": self.class_counts,
            "splits_json": self.split_status,
            "splits_note": self.split_message,
            "seed": self.seed,
            "dtype": self.dtype,
            "clipped_values": self.clipped_values,
            "nonfinite_values": self.nonfinite_values,
            "skipped": len(self.skipped),
            "skipped_reasons": [f"{rid}: {reason}" for rid, reason in self.skipped],
        }
        if self.preprocess is not None:
            data["preprocess"] = self.preprocess
        return data


def _merge_counts(target: dict[str, Any], source: dict[str, Any]) -> None:
    """Add the numbers (and nested tables of numbers) of one preprocess report into ``target``."""
    for key, value in source.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            target[key] = target.get(key, 0) + value
        elif isinstance(value, dict):
            child = target.setdefault(key, {})
            if isinstance(child, dict):
                _merge_counts(child, value)


def read_preprocess_reports(shards: Path) -> dict[str, Any] | None:
    """The summed counts of ``SHARDS/preprocess_report*.json``, or ``None`` when there are none."""
    reports = sorted(Path(shards).glob("preprocess_report*.json"))
    if not reports:
        return None
    merged: dict[str, Any] = {"reports": len(reports)}
    for path in reports:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            _merge_counts(merged, data)
    return merged


def _common_attrs(headers: list[ShardHeader]) -> dict[str, Any]:
    """Attributes that every shard carries with the same value."""
    common = dict(headers[0].attrs)
    for header in headers[1:]:
        for key in list(common):
            if key not in header.attrs or not np.array_equal(np.asarray(common[key]), np.asarray(header.attrs[key])):
                del common[key]
    return common


def _count_nonfinite(x: np.ndarray) -> int:
    """NaN and infinite values in ``x``; one float64 sum when there are none (the common case):
    a float64 sum of float32 or float16 values cannot overflow, so it is finite exactly when they all are."""
    if np.isfinite(np.sum(x, dtype=np.float64)):
        return 0
    return int(x.size - np.count_nonzero(np.isfinite(x)))


def _chunk_rows(window_bytes: int, n_windows: int) -> int:
    return int(max(1, min(MAX_CHUNK_ROWS, n_windows, CHUNK_TARGET_BYTES // max(window_bytes, 1))))


def _write_split(
    path: Path,
    name: str,
    headers: list[ShardHeader],
    plan: SplitPlan,
    section: PackSection,
    common: dict[str, Any],
    advance: Callable[[int], None],
) -> dict[str, Any]:
    """Stream the windows of split ``name`` into ``path`` (temp file, renamed when complete)."""
    import h5py

    selected = [(h, plan.window_splits[h.recording_id] == name) for h in headers]
    selected = [(h, mask) for h, mask in selected if mask.any()]
    n_total = int(sum(mask.sum() for _, mask in selected))
    reference = headers[0]
    n_channels, n_times = len(reference.ch_names), reference.n_times
    dtype = np.dtype(section.dtype)
    subjects = sorted({h.subject for h, _ in selected})
    subject_index = {s: i for i, s in enumerate(subjects)}
    string = h5py.string_dtype()
    stats = {"clipped": 0, "nonfinite": 0, "class_counts": Counter()}

    with atomic_path(path) as temp:
        with h5py.File(temp, "w") as out:
            rows = _chunk_rows(n_channels * n_times * dtype.itemsize, n_total)
            x_out = out.create_dataset(
                "x", (n_total, n_channels, n_times), dtype=dtype, chunks=(rows, n_channels, n_times)
            )
            y_out = None
            if reference.y_shape is not None:
                y_dtype = np.float32 if reference.y_kind == "f" else np.int64
                y_out = out.create_dataset("y", (n_total, *reference.y_shape), dtype=y_dtype)
            recording_index = out.create_dataset("recording_index", (n_total,), dtype=np.int32)
            window_index = out.create_dataset("window_index", (n_total,), dtype=np.int32)
            subject_out = out.create_dataset("subject", (n_total,), dtype=np.int32)
            recording_ids = np.array([h.recording_id for h, _ in selected], dtype=object)
            out.create_dataset("recordings", data=recording_ids, dtype=string)
            out.create_dataset("subjects", data=np.array(subjects, dtype=object), dtype=string)
            position = 0
            for number, (header, mask) in enumerate(selected):
                with h5py.File(header.path, "r") as shard:
                    for start in range(0, header.n_windows, section.block_windows):
                        stop = min(start + section.block_windows, header.n_windows)
                        keep = mask[start:stop]
                        count = int(keep.sum())
                        if count == 0:
                            continue
                        x = shard["x"][start:stop]
                        if count < len(keep):
                            x = x[keep]
                        if header.channel_order is not None:
                            x = x[:, header.channel_order]
                        stats["nonfinite"] += _count_nonfinite(x)
                        if dtype == np.float16:
                            # Clip explicitly: a plain cast turns |x| > 65504 into inf.
                            stats["clipped"] += int(np.count_nonzero(np.abs(x[np.isfinite(x)]) > FLOAT16_MAX))
                            x = np.clip(x, -FLOAT16_MAX, FLOAT16_MAX)
                        span = slice(position, position + count)
                        x_out[span] = x.astype(dtype, copy=False)
                        if y_out is not None:
                            y = shard["y"][start:stop][keep]
                            if header.channel_order is not None and y.ndim == 2:
                                y = y[:, header.channel_order]
                            y_out[span] = y
                            if reference.y_kind != "f":
                                stats["class_counts"].update(np.asarray(y).ravel().tolist())
                        recording_index[span] = number
                        window_index[span] = np.flatnonzero(keep) + start
                        subject_out[span] = subject_index[header.subject]
                        position += count
                        advance(count)
            label_names = list(reference.label_names)
            class_counts = {
                (label_names[int(k)] if 0 <= int(k) < len(label_names) else str(k)): v
                for k, v in sorted(stats["class_counts"].items())
            }
            attrs = out.attrs
            for key, value in common.items():
                attrs[key] = value
            attrs["split"] = name
            attrs["seed"] = section.seed
            attrs["task"] = reference.task
            attrs["channel_names"] = list(reference.ch_names)
            attrs["sfreq"] = reference.sfreq
            attrs["label_names"] = label_names
            if reference.y_shape is None:
                num_classes = 0
            elif reference.y_kind == "f":
                num_classes = 0
            else:
                seen = max((int(k) for k in stats["class_counts"]), default=-1) + 1
                num_classes = max(len(label_names), seen)
            attrs["num_classes"] = num_classes
            attrs["schema_version"] = SCHEMA_VERSION
            attrs["dtype"] = section.dtype
            attrs["clipped_values"] = stats["clipped"]
            attrs["nonfinite_values"] = stats["nonfinite"]
            attrs["class_counts"] = json.dumps(class_counts)
            attrs["n_subjects"] = len(subjects)
            attrs["n_recordings"] = len(selected)
            attrs["packed_with"] = __version__
    return {
        "windows": n_total,
        "subjects": len(subjects),
        "recordings": len(selected),
        "class_counts": class_counts,
        "clipped": stats["clipped"],
        "nonfinite": stats["nonfinite"],
    }


def pack_shards(
    shards: Path, out: Path, section: PackSection, *, reporter: ProgressReporter = NO_PROGRESS
) -> PackResult:
    """Pack the shards under ``shards`` into ``out/{train,val,test}.h5`` and ``out/splits.json``.

    The split decision, warnings and skipped shards are logged on this module's logger.

    Parameters
    ----------
    shards : Path
        Folder of shards (``SHARDS/<corpus>/<id>.h5`` or ``SHARDS/<id>.h5``).
    out : Path
        Folder for the packed files; created if needed.
    section : PackSection
        Seed, split fractions, storage dtype.
    reporter : ProgressReporter
        Shows the windows copied; by default nothing is shown.

    Returns
    -------
    PackResult
        Counts per split, skipped shards with their reasons, and whether splits.json was reused.
    """
    shards, out = Path(shards), Path(out)
    if not shards.is_dir():
        raise UsageError(f"{shards}: shard folder not found; pass the --out folder of `biofound preprocess`")
    paths = find_shards(shards, exclude=out)
    if not paths:
        raise UsageError(f"{shards}: no .h5 shards found; run `biofound preprocess ... --out {shards}` first")

    headers: list[ShardHeader] = []
    skipped: list[tuple[str, str]] = []
    for path in paths:
        try:
            headers.append(read_header(path, shards, use_official=section.official_splits))
        except ValueError as error:
            skipped.append((path.relative_to(shards).with_suffix("").as_posix(), str(error)))
    kept, incompatible = check_compatible(headers)
    skipped.extend(incompatible)
    if not kept:
        raise DataError(f"{shards}: none of the {len(paths)} shard(s) can be packed; first reason: {skipped[0][1]}")
    warnings: list[str] = []
    no_subject = [h for h in kept if not h.subject]
    for header in no_subject:
        header.subject = header.recording_id
    if no_subject:
        warnings.append(f"{len(no_subject)} shard(s) have no subject attribute; each counts as its own subject")

    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST_NAME
    plan = plan_splits(kept, section, read_manifest(manifest_path))
    warnings.extend(plan.warnings)
    logger.log(logging.WARNING if plan.status == "replaced" else logging.INFO, plan.message)
    for warning in warnings:
        logger.warning(warning)
    for recording_id, reason in skipped:
        logger.warning(f"skipped {recording_id}: {reason}")
    manifest = dict(plan.manifest)
    manifest["skipped"] = [{"recording": rid, "reason": reason} for rid, reason in skipped]
    write_manifest(manifest_path, manifest)

    common = _common_attrs(kept)
    files: dict[str, Path] = {}
    per_split: dict[str, dict[str, Any]] = {}
    total = sum(h.n_windows for h in kept)
    with reporter.task(total, "packing", unit="windows") as task:
        for name in SPLITS:
            path = out / f"{name}.h5"
            if plan.manifest["windows"][name] == 0:
                # A stale file from an earlier split would leak windows; an empty split has no file.
                if path.exists():
                    path.unlink()
                continue
            per_split[name] = _write_split(path, name, kept, plan, section, common, task.advance)
            files[name] = path
    nonfinite = sum(s["nonfinite"] for s in per_split.values())
    if nonfinite:
        logger.warning(f"{nonfinite} NaN/inf value(s) in the packed windows; check the preprocess report of those shards")

    return PackResult(
        out=out,
        files=files,
        windows={name: per_split.get(name, {}).get("windows", 0) for name in SPLITS},
        subjects={name: per_split.get(name, {}).get("subjects", 0) for name in SPLITS},
        recordings={name: per_split.get(name, {}).get("recordings", 0) for name in SPLITS},
        class_counts={name: per_split[name]["class_counts"] for name in per_split},
        split_status=plan.status,
        split_message=plan.message,
        skipped=skipped,
        clipped_values=sum(s["clipped"] for s in per_split.values()),
        nonfinite_values=nonfinite,
        dtype=section.dtype,
        seed=section.seed,
        preprocess=read_preprocess_reports(shards),
        warnings=warnings,
    )
