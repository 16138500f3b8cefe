"""Shards → ``PACKED/{train,val,test}.h5``, subject-disjoint, seeded, streamed shard by shard.

The packer reads every shard's header, drops the shards that disagree with the rest (channels,
sfreq, window length, task), decides each window's split (a corpus's official split first,
then a seeded subject split: :mod:`~biofound_cli.store.split_plan`), records that decision in
``PACKED/splits.json`` and then copies the windows split by split, a block of windows at a
time, so the corpus is never in memory.
Each packed window keeps its way back to the raw data: ``recordings[recording_index]``,
``window_index`` and ``window_start_seconds`` (NaN for shards older than that dataset).

Nothing is read before the usage checks pass (seed range, shard folder, a writable ``--out``,
preprocess reports that agree), and a split that leaves train empty fails before anything is
written: a run that exits 0 always leaves a ``train.h5``.

One pack at a time holds ``--out`` (:data:`LOCK_FILE`), and the new ``splits.json`` and split files are written
in a staging folder and swapped in together at the end (:func:`~biofound_cli.atomic.staged_files`): a pack
stopped or failed leaves the earlier pack's files whole, never a new ``train.h5`` beside an old ``test.h5``.
Jobs reading a packed folder hold the same lock in its shared form (:func:`held_for_reading`), so a pack into
the folder is refused while they read it; a pack holds the shard folder it reads likewise, with the shared form of
preprocess's lock, so a preprocess into it and a pack of it refuse each other.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import h5py
import numpy as np

from biofound_cli import __version__
from biofound_cli.atomic import atomic_path, disk_full_error, remove_staging_leftovers, staged_files, write_json_atomic
from biofound_cli.errors import DataError, UsageError
from biofound_cli.plural import counted
from biofound_cli.progress import NO_PROGRESS, ProgressReporter
from biofound_cli.recipes.pack import PackSection
from biofound_cli.store.folder_lock import READING, held_lock, held_to_read
from biofound_cli.store.output_folder import created_folders_removed_on_failure, prepare_output_folder
from biofound_cli.store.preprocess_reports import (
    PreprocessSummary,
    read_preprocess_reports,
    set_aside_other_runs,
    shards_no_report_lists,
    with_breakdown,
)
from biofound_cli.store.raw_chunks import read_shard_windows
from biofound_cli.store.shard_scan import (
    CLASS_LABELS,
    DAMAGED_ADVICE,
    ShardHeader,
    SkippedShard,
    as_str,
    check_compatible,
    counts_by_class_name,
    find_shards,
    label_kind,
    read_header,
)
from biofound_cli.store.shards import WINDOW_STARTS
from biofound_cli.store.split_plan import SplitPlan, plan_splits
from biofound_cli.store.splits import MANIFEST_NAME, SPLITS, read_manifest, split_file, split_options
from biofound_cli.store.virtual_layout import LAYOUT_ATTR, SHARD_PATHS, SHARD_SIZES, map_runs, relative_source
from biofound_cli.store.worker_lifetime import stop_reported, stops_settled

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CHAINS_ATTR = "preprocess_configs"
"""The attribute of a packed split whose shards disagree on their chain (``preprocess_config``): the distinct
ones (a JSON list, most shards first, at most :data:`MAX_CHAINS`), so a model trained on it can say why it records none."""
MAX_CHAINS = 8
LOCK_FILE = ".pack.lock"
"""Held in ``--out`` by the one pack writing there (:func:`~biofound_cli.store.folder_lock.held_lock`), then removed."""


@dataclass
class PackResult:
    """What :func:`pack_shards` did, for the command's summary."""

    out: Path
    files: dict[str, Path]
    windows: dict[str, int]
    subjects: dict[str, int]
    recordings: dict[str, int]
    labels: str
    """How the windows are labelled (:func:`~biofound_cli.store.shard_scan.label_kind`): ``none`` for pre-training data."""
    class_counts: dict[str, dict[str, int]]
    """Windows per class name, by split; empty counts unless ``labels`` are classes."""
    split_status: str
    split_message: str
    skipped: list[SkippedShard]
    clipped_values: int
    nonfinite_values: int | None
    """``None`` for the virtual layout, which reads no window."""
    dtype: str
    seed: int
    preprocess: PreprocessSummary | None = None
    warnings: list[str] = field(default_factory=list)
    windows_without_start: int = 0
    layout: str = "copy"
    """Windows from shards written before ``window_start_seconds`` existed (NaN in the packed files)."""

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "out": str(self.out),
            "files": {name: str(path) for name, path in self.files.items()},
            "windows": self.windows,
            "subjects": self.subjects,
            "recordings": self.recordings,
            "labels": self.labels,
        }
        if self.labels in CLASS_LABELS:  # as `info`: no row of empty counts for unlabelled or regression windows
            data["class_counts"] = self.class_counts
        data |= {
            "splits_json": self.split_status,
            "splits_note": self.split_message,
            "seed": self.seed,
            "dtype": self.dtype,
            "layout": self.layout,
            "clipped_values": self.clipped_values,
            "nonfinite_values": self.nonfinite_values,
            # As preprocess and predict say a count: the total, and beside it what each skip was for.
            "skipped": len(self.skipped),
            "skipped_by_shard": {shard.named(): shard.reason for shard in self.skipped},
            "windows_without_start_time": self.windows_without_start,
        }
        if self.preprocess is not None:
            # Clipping and exclusions at the top level: a nested count is easy to miss.
            data["preprocess_clipped_values"] = self.preprocess.n_clipped
            data |= with_breakdown("preprocess_excluded", "reason", self.preprocess.excluded)
            data["preprocess"] = self.preprocess.as_dict()
        return data


def _common_attrs(headers: list[ShardHeader]) -> dict[str, Any]:
    """Attributes that every shard carries with the same value."""
    common = dict(headers[0].attrs)
    for header in headers[1:]:
        for key in list(common):
            if key not in header.attrs or not np.array_equal(np.asarray(common[key]), np.asarray(header.attrs[key])):
                del common[key]
    return common


def _chains_attr(headers: list[ShardHeader]) -> dict[str, Any]:
    """The distinct chains of the shards, most shards first, when they disagree (several corpora packed together).

    ``preprocess_config`` is kept only when every shard has the same one (:func:`_common_attrs`); without it a model
    trained on the split records no chain, and ``predict`` says why from these (:data:`CHAINS_ATTR`).
    """
    counts = Counter(as_str(header.attrs["preprocess_config"]) for header in headers if "preprocess_config" in header.attrs)
    if len(counts) < 2:
        return {}
    return {CHAINS_ATTR: json.dumps([json.loads(text) for text, _ in counts.most_common(MAX_CHAINS)])}


def _count_nonfinite(x: np.ndarray) -> int:
    """NaN and infinite values in ``x``; one float64 sum when there are none (the common case):
    a float64 sum of float32 or float16 values cannot overflow, so it is finite exactly when they all are."""
    return 0 if np.isfinite(np.sum(x, dtype=np.float64)) else int(x.size - np.count_nonzero(np.isfinite(x)))


@dataclass
class _SplitOutput:
    """The datasets of one packed file being written, and the tallies of what went into it."""

    x: Any
    y: Any
    recording_index: Any
    window_index: Any
    subject: Any
    start: Any
    clipped: int = 0
    nonfinite: int = 0
    class_counts: Counter = field(default_factory=Counter)
    no_start: list[str] = field(default_factory=list)
    """Recordings whose shard has no (usable) ``window_start_seconds``."""
    layout: Any = None
    """The ``h5py.VirtualLayout`` of ``x`` in the virtual layout (``x`` is then created last); ``None`` for copies."""
    sources: list[str] = field(default_factory=list)
    """Each recording's shard relative to the packed file's folder (virtual layout)."""


def _create_datasets(out: Any, n_total: int, reference: ShardHeader, dtype: np.dtype, layout: str) -> _SplitOutput:
    n_channels, n_times = len(reference.ch_names), reference.n_times
    y = None
    if reference.y_shape is not None:
        y_dtype = np.float32 if reference.y_kind == "f" else np.int64
        y = out.create_dataset("y", (n_total, *reference.y_shape), dtype=y_dtype)
    shape = (n_total, n_channels, n_times)
    virtual = layout == "virtual"
    return _SplitOutput(
        # Contiguous: written and read as runs of whole windows, with no chunk index to build or search.
        x=None if virtual else out.create_dataset("x", shape, dtype=dtype),
        y=y,
        recording_index=out.create_dataset("recording_index", (n_total,), dtype=np.int32),
        window_index=out.create_dataset("window_index", (n_total,), dtype=np.int32),
        subject=out.create_dataset("subject", (n_total,), dtype=np.int32),
        # NaN until a shard gives the start: older shards never do.
        start=out.create_dataset(WINDOW_STARTS, (n_total,), dtype=np.float64, fillvalue=np.nan),
        layout=h5py.VirtualLayout(shape, dtype) if virtual else None,
    )


def _shard_starts(shard: Any, header: ShardHeader) -> Any:
    """The shard's ``window_start_seconds`` dataset, or ``None`` when absent or of the wrong shape."""
    if WINDOW_STARTS not in shard:
        return None
    starts = shard[WINDOW_STARTS]
    if starts.shape != (header.n_windows,):
        logger.warning(
            f"{header.path}: {WINDOW_STARTS} has shape {starts.shape} for {header.n_windows} windows; "
            "its windows are packed without start times (re-run preprocess --force for it)"
        )
        return None
    return starts


def _copy_window_facts(
    target: _SplitOutput,
    shard: Any,
    header: ShardHeader,
    starts: Any,
    block: slice,
    keep: np.ndarray,
    span: slice,
    number: int,
    subject_number: int,
) -> None:
    """Copy the per-window arrays (labels, start times, provenance) of the kept windows of ``block``."""
    if target.y is not None:
        y = shard["y"][block][keep]
        if header.channel_order is not None and y.ndim == 2:
            y = y[:, header.channel_order]
        target.y[span] = y
        if header.y_kind != "f":
            target.class_counts.update(np.asarray(y).ravel().tolist())
    if starts is not None:
        target.start[span] = starts[block][keep]
    target.recording_index[span] = number
    target.window_index[span] = np.flatnonzero(keep) + block.start
    target.subject[span] = subject_number


def _copy_recording(
    target: _SplitOutput,
    header: ShardHeader,
    mask: np.ndarray,
    number: int,
    subject_number: int,
    position: int,
    section: PackSection,
    advance: Callable[[int], None],
) -> int:
    """Copy the windows of one shard selected by ``mask`` to ``position`` on; returns the next position.

    With ``target.layout`` (the virtual layout) ``x`` is mapped, not read: only the per-window arrays are copied.
    """
    dtype = np.dtype(section.dtype)
    with h5py.File(header.path, "r") as shard:
        starts = _shard_starts(shard, header)
        if starts is None:
            target.no_start.append(header.recording_id)
        if target.layout is not None:
            map_runs(target.layout, target.sources[-1], shard["x"], mask, position, header.channel_order)
        for start in range(0, header.n_windows, section.block_windows):
            stop = min(start + section.block_windows, header.n_windows)
            keep = mask[start:stop]
            count = int(keep.sum())
            if count == 0:
                continue
            span = slice(position, position + count)
            if target.layout is None:
                target.x[span] = _read_windows(shard, header, slice(start, stop), keep, count, dtype, target)
            _copy_window_facts(target, shard, header, starts, slice(start, stop), keep, span, number, subject_number)
            position += count
            advance(count)
    return position


def _read_windows(
    shard: Any, header: ShardHeader, block: slice, keep: np.ndarray, count: int, dtype: np.dtype, target: _SplitOutput
) -> np.ndarray:
    """The kept windows of ``block`` in the packed channel order and ``dtype``, counted for NaN and clipping."""
    try:
        x = read_shard_windows(shard["x"], block)
    except (OSError, RuntimeError) as error:  # damaged past what read_header checks
        raise DataError(
            f"{header.path}: windows {block.start}-{block.stop - 1} cannot be read ({error}); {DAMAGED_ADVICE}, then pack again"
        ) from None
    if count < len(keep):
        x = x[keep]
    if header.channel_order is not None:
        x = x[:, header.channel_order]
    target.nonfinite += _count_nonfinite(x)
    if dtype == np.float16:
        from biofound_cli.signals.chain import FLOAT16_MAX  # here: pack needs no more of the chain

        # Clip explicitly: a plain cast turns |x| > 65504 into inf.
        target.clipped += int(np.count_nonzero(np.abs(x[np.isfinite(x)]) > FLOAT16_MAX))
        x = np.clip(x, -FLOAT16_MAX, FLOAT16_MAX)
    return x.astype(dtype, copy=False)


def _write_split(
    path: Path,
    name: str,
    headers: list[ShardHeader],
    plan: SplitPlan,
    section: PackSection,
    common: dict[str, Any],
    advance: Callable[[int], None],
    folder: Path,
) -> dict[str, Any]:
    """Stream the windows of split ``name`` into ``path`` (temp file, renamed when complete).

    ``path`` is in the staging folder; ``folder`` is where the file will live, against which the
    virtual layout's shard paths are made relative (HDF5 resolves them from the file's own folder).
    """
    selected = [(h, plan.window_splits[h.recording_id] == name) for h in headers]
    selected = [(h, mask) for h, mask in selected if mask.any()]
    n_total = int(sum(mask.sum() for _, mask in selected))
    reference = headers[0]
    subjects = sorted({h.subject for h, _ in selected})
    subject_index = {s: i for i, s in enumerate(subjects)}
    string = h5py.string_dtype()

    with atomic_path(path) as temp, h5py.File(temp, "w") as out, _full_disk_named(path, temp):
        target = _create_datasets(out, n_total, reference, np.dtype(section.dtype), section.layout)
        recording_ids = np.array([h.recording_id for h, _ in selected], dtype=object)
        out.create_dataset("recordings", data=recording_ids, dtype=string)
        out.create_dataset("subjects", data=np.array(subjects, dtype=object), dtype=string)
        position = 0
        for number, (header, mask) in enumerate(selected):
            target.sources.append(relative_source(header.path, folder))
            position = _copy_recording(target, header, mask, number, subject_index[header.subject], position, section, advance)
        if target.layout is not None:
            # NaN, not 0, wherever a shard cannot be read: check_sources refuses a missing one up front.
            out.create_virtual_dataset("x", target.layout, fillvalue=np.nan)
            out.create_dataset(SHARD_PATHS, data=np.array(target.sources, dtype=object), dtype=string)
            out.create_dataset(SHARD_SIZES, data=np.array([h.path.stat().st_size for h, _ in selected], dtype=np.int64))
        class_counts = _write_attrs(out.attrs, name, reference, section, common, target, len(subjects), len(selected))
    missing_starts = set(target.no_start)
    return {
        "windows": n_total,
        "subjects": len(subjects),
        "recordings": len(selected),
        "class_counts": class_counts,
        "clipped": target.clipped,
        "nonfinite": target.nonfinite,
        "no_start_recordings": target.no_start,
        "no_start_windows": int(sum(mask.sum() for h, mask in selected if h.recording_id in missing_starts)),
    }


@contextmanager
def _full_disk_named(path: Path, temp: Path) -> Iterator[None]:
    """Turn a write of split file ``path`` (being written at ``temp``) that failed for want of space
    into the ``OSError`` (ENOSPC) naming ``path``, the CLI's one line for a full disk.

    Entered inside the ``h5py.File`` of ``temp``: the temporary is emptied before HDF5 closes the
    file, so the close finds room for its last metadata. Without that the close failed too (a
    ``RuntimeError`` hiding the full disk: a traceback), and the half-closed file crashed the
    interpreter when it was collected (a segmentation fault, status 139).
    """
    try:
        yield
    except OSError as error:
        full = disk_full_error(error, temp)
        if full is None:
            raise
        os.truncate(temp, 0)
        raise OSError(full.errno, full.strerror, str(path)) from None


def _write_attrs(
    attrs: Any,
    name: str,
    reference: ShardHeader,
    section: PackSection,
    common: dict[str, Any],
    target: _SplitOutput,
    n_subjects: int,
    n_recordings: int,
) -> dict[str, int]:
    """Write the packed file's attributes; returns its windows per class name."""
    label_names = list(reference.label_names)
    class_counts = counts_by_class_name(target.class_counts, label_names)
    attrs.update(common)
    attrs.update(
        {
            "split": name,
            "seed": section.seed,
            "task": reference.task,
            "channel_names": list(reference.ch_names),
            "sfreq": reference.sfreq,
            "label_names": label_names,
            "schema_version": SCHEMA_VERSION,
            "dtype": section.dtype,
            "clipped_values": target.clipped,
            LAYOUT_ATTR: section.layout,
            "class_counts": json.dumps(class_counts),
            "n_subjects": n_subjects,
            "n_recordings": n_recordings,
            "packed_with": __version__,
        }
    )
    if section.layout == "copy":  # the virtual layout reads no window, so it counts none
        attrs["nonfinite_values"] = target.nonfinite
    return class_counts


def check_pack_paths(shards: Path, out: Path) -> None:
    """The checks of ``pack``'s folders that read nothing: the shard folder is there, and ``out`` is not in it.

    ``biofound pack`` runs them as it loads the recipe (its warnings wait for them); :func:`pack_shards`
    runs them before :func:`pack_checked_shards`.

    Parameters
    ----------
    shards : Path
        The shard folder.
    out : Path
        The folder the packed files go to.

    Raises
    ------
    UsageError
        Either is wrong (exit status 2), naming the folder and what to pass.
    """
    shards, out = Path(shards), Path(out)
    if not shards.is_dir():
        raise UsageError(f"{shards}: shard folder not found; pass the --out folder of `biofound preprocess`")
    # Every .h5 under --out is a packed file to find_shards: with the shards there too, none would be packed, and
    # the line would say that preprocess wrote none.
    if out.resolve() == shards.resolve() or out.resolve() in shards.resolve().parents:
        raise UsageError(
            f"--out {out} is the shard folder {shards} or holds it, and pack reads no .h5 file under its --out as a "
            f"shard; give the packed files a folder of their own, such as {shards.parent / 'packed'}"
        )


def _read_headers(
    shards: Path, paths: list[Path], section: PackSection, preprocess: PreprocessSummary | None
) -> tuple[list[ShardHeader], list[SkippedShard]]:
    """The compatible shard headers, and the skipped shards with their reasons."""
    headers: list[ShardHeader] = []
    skipped: list[SkippedShard] = []
    for path in paths:
        try:
            headers.append(read_header(path, shards, use_official=section.official_splits))
        except ValueError as error:
            skipped.append(SkippedShard(path, path.relative_to(shards).with_suffix("").as_posix(), str(error)))
    headers, stale = set_aside_other_runs(headers, preprocess)
    skipped.extend(stale)
    kept, incompatible = check_compatible(headers)
    skipped.extend(incompatible)
    if not kept:
        raise DataError(
            f"{shards}: {'the one shard cannot' if len(paths) == 1 else f'none of the {len(paths)} shards can'} be "
            f"packed; the first: {skipped[0].line()}"
        )
    return kept, skipped


def _no_shards(shards: Path, preprocess: PreprocessSummary | None) -> UsageError | DataError:
    """The error for a shard folder without shards: preprocess never ran there, or it skipped every recording."""
    found = preprocess.counts.get("found", 0) if preprocess is not None else 0
    if preprocess is None or not found:
        return UsageError(f"{shards}: no .h5 shards found; run `biofound preprocess ... --out {shards}` first")
    skipped = ", ".join(f"{reason}: {n}" for reason, n in sorted(preprocess.tallies.get("skipped", {}).items()))
    # Running preprocess "first" again would skip them again: the reasons are in its report.
    return DataError(
        f"{shards}: no shard to pack: preprocess wrote none of the {counted(found, 'recording')} it found (skipped: "
        f"{skipped or 'none'}); "
        f"{shards}/{' and '.join(preprocess.report_files)} gives each file's reason: fix those and run preprocess again"
    )


def _check_train_is_filled(
    plan: SplitPlan, headers: list[ShardHeader], section: PackSection, shards: Path, preprocess: PreprocessSummary | None
) -> None:
    """A pack without training windows is a failure unless the recipe asked for none."""
    windows = plan.manifest["windows"]
    if windows["train"] > 0 or section.fractions["train"] <= 0:
        return
    where = ", ".join(f"{n} in {name}" for name, n in windows.items() if n)
    n_subjects = len({h.subject for h in headers})
    official = sum(1 for h in headers if h.official is not None and (h.official != "").any())
    if official:
        why = (
            f"the official splits put every window of the {counted(n_subjects, 'subject')} elsewhere ({where}; {official} of "
            f"{counted(len(headers), 'shard')} carry one, and a subject's unmarked recordings follow it); "
            f"{_mark_train(preprocess)}, "
            "or set pack.official_splits = false"
        )
    else:
        why = f"{counted(n_subjects, 'subject')} {'gives' if n_subjects == 1 else 'give'} {where}; add recordings"
    raise DataError(f"{shards}: no window goes to train, so no train.h5 can be written: {why}")


def _mark_train(preprocess: PreprocessSummary | None) -> str:
    """How to give training recordings the official split train: where each corpus's recipe sets splits, there, else
    what its reader says gives that split (:func:`~biofound_cli.store.splits.split_options`: UCI EMG's subjects 01..24).

    With several corpora packed together, any of them may give train recordings: each is named with its own fix.
    """
    settings = preprocess.settings_by_corpus if preprocess is not None else {}
    fixes = {corpus: _train_fix(corpus_settings.get("options") or {}) for corpus, corpus_settings in settings.items()}
    if len(fixes) == 1 and None not in fixes.values():
        return f"{next(iter(fixes.values()))} and run preprocess again"
    named = [f"{corpus}: {fix}" for corpus, fix in fixes.items() if fix is not None]
    if len(fixes) > 1 and named:
        return f"give one corpus's training recordings split 'train' ({'; '.join(named)}) and run preprocess again"
    given = split_options(fixes).get("train")  # what each reader says gives its recordings train (uci-emg: subjects)
    if given:
        return f"give recordings split 'train' ({'; '.join(given)}) and run preprocess again"
    return "re-run preprocess --force so the training recordings are marked train"


def _train_fix(options: dict[str, Any]) -> str | None:
    """The one change to a corpus's preprocess options that marks its training recordings train; ``None`` when its
    options set no split (the reader marks them itself)."""
    if options.get("labels_csv"):
        # The rows decide: preprocess --force alone would mark the same recordings again.
        return f"give the training recordings split 'train' in {options['labels_csv']}"
    if options.get("split_by_repetition"):
        return "list the training repetitions under preprocess.options.split_by_repetition.train"
    return None


def _log_preprocess(summary: PreprocessSummary | None, shards: Path) -> None:
    """Say what the preprocessing changed that the packed windows do not show: clipping, exclusions."""
    if summary is None:
        return
    if summary.n_clipped:
        worst = sorted(summary.clipped_by_recording.items(), key=lambda item: (-item[1], item[0]))[:3]
        named = f" (most in {', '.join(f'{rid}: {n}' for rid, n in worst)})" if worst else ""
        recordings = counted(len(summary.clipped_by_recording), "recording") if worst else "some recordings"
        logger.warning(
            f"preprocess clipped {counted(summary.n_clipped, 'value')} to the float16 range ±65504 in "
            f"{recordings}{named}; see {shards}/preprocess_report*.json, "
            "or preprocess with dtype = float32"
        )
    if summary.excluded:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in summary.excluded.items())
        logger.info(f"preprocess excluded {counted(sum(summary.excluded.values()), 'recording')} from the corpus ({reasons})")


def pack_shards(shards: Path, out: Path, section: PackSection, *, reporter: ProgressReporter = NO_PROGRESS) -> PackResult:
    """:func:`check_pack_paths`, then :func:`pack_checked_shards`, for a Python caller.

    Parameters
    ----------
    shards : Path
        The preprocessed shard folder.
    out : Path
        The packed folder to write.
    section : PackSection
        The recipe's ``[pack]`` section.
    reporter : ProgressReporter
        Receives progress.

    Returns
    -------
    PackResult
        As :func:`pack_checked_shards` returns it.
    """
    check_pack_paths(shards, out)
    return pack_checked_shards(shards, out, section, reporter=reporter)


def pack_checked_shards(shards: Path, out: Path, section: PackSection, *, reporter: ProgressReporter = NO_PROGRESS) -> PackResult:
    """Pack the shards under ``shards`` into ``out/{train,val,test}.h5`` and ``out/splits.json``.

    ``shards`` and ``out`` are paths :func:`check_pack_paths` passed. The split decision, warnings and
    skipped shards are logged on this module's logger.

    Parameters
    ----------
    shards : Path
        Folder of shards (``SHARDS/<corpus>/<id>.h5`` or ``SHARDS/<id>.h5``).
    out : Path
        Folder for the packed files; created if needed, and removed again (with the parents this call
        created) when the call fails before writing anything there.
    section : PackSection
        Seed, split fractions, storage dtype.
    reporter : ProgressReporter
        Shows the windows copied; by default nothing is shown.

    Returns
    -------
    PackResult
        Counts per split, skipped shards with their reasons, and whether splits.json was reused.

    Raises
    ------
    UsageError
        Before any work: a negative seed, an output folder that cannot be
        written or that another pack is writing into, preprocess reports of slices run with different
        settings, no shard at all.
    DataError
        No shard can be packed, or no window can go to train (while its fraction is above 0).
    BiofoundError
        With status 130 (``ExitStatus.INTERRUPTED``) on Ctrl-C, and 143 (``ExitStatus.TERMINATED``)
        on SIGTERM (``timeout``, ``kill``, a scheduler), which would otherwise kill the process and
        leave a temporary behind; nothing of the pack is written either way, and an earlier pack in ``out`` is
        left whole.
    """
    stopped = (
        f"; nothing of this pack was written to {out} (an earlier pack there is left whole, as it was): re-run the same command"
    )
    # A failed pack leaves no empty --out it created: it would look like a packed folder.
    shards, out = Path(shards), Path(out)
    with stop_reported(stopped, ctrl_c=True), created_folders_removed_on_failure(out):
        prepare_output_folder(out)
        with _held(out), held_to_read(shards, "preprocess", "pack", lambda holder: _writing_shards(shards, holder)):
            return _pack_into(shards, out, section, reporter)


def _writing_shards(shards: Path, holder: str) -> str:
    """Why a pack of ``shards`` is refused while a preprocess (or its slices, ``holder``) writes into it."""
    return (
        f"{shards} is being preprocessed into by {holder}; wait for that preprocess to end, then run the pack again "
        "(a pack now would miss or half-read the shards it is writing)"
    )


def _held(out: Path) -> Any:
    """Hold ``out`` for this pack: a second pack into it (a requeued job, two shells) is refused in one line.

    Two packs would interleave their split files, or one would replace the files the other just wrote.
    """
    return held_lock(
        out / LOCK_FILE,
        lambda holder: _refusal(out, holder),
        "the packed folder is not held; make sure no other pack writes into it",
        remove=True,
    )


def _refusal(out: Path, holder: str) -> str:
    """Why a pack into ``out`` is refused, given who holds it: the jobs reading it, or another pack."""
    readers = holder.count(READING)
    if readers > 1:
        return (
            f"{out} is read by {readers} running jobs ({holder}), whose loader workers would read this pack's files "
            "mixed with the pack they started on; pack into a new --out (or wait for those jobs to end)"
        )
    if readers:
        return (
            f"{out} is read by a running job, {holder}, whose loader workers would read this pack's files mixed with "
            "the pack they started on; pack into a new --out (or wait for that job to end)"
        )
    return f"{out} is being packed into by {holder}; wait for that pack to end (or stop it), or choose another --out"


@contextmanager
def held_for_reading(splits: list[Path], job: str) -> Iterator[None]:
    """Hold the packed folders of ``splits`` for reading while the block runs: a pack into one is refused meanwhile.

    Loader workers reopen the split files every epoch, so a pack swapping its files in while a job trains would
    give the job two packs' windows without a word. The lock is the shared form of pack's own (:data:`LOCK_FILE`):
    any number of jobs read a folder at once, and a job started while a pack writes it is refused. A folder that
    is missing (a finished run's requeue whose data is gone) is not held, nor one this user may not write that
    holds no lock file yet (a read-only copy, which no pack of this user can write either).

    Parameters
    ----------
    splits : list of Path
        The packed files the job reads; each folder is held once.
    job : str
        The stage (``finetune``), named to a pack refused meanwhile.

    Raises
    ------
    UsageError
        A pack writes into one of the folders now.
    """
    with ExitStack() as held:
        for folder in dict.fromkeys(Path(split).parent for split in splits):
            held.enter_context(held_to_read(folder, "pack", job, partial(_being_packed, folder, job)))
        yield


def _being_packed(folder: Path, job: str, holder: str) -> str:
    """Why a ``job`` reading the packed ``folder`` is refused while a pack (``holder``) writes into it."""
    return (
        f"{folder} is being packed into by {holder}; wait for that pack to end, then start the {job} again "
        "(or train on another packed folder)"
    )


def _pack_into(shards: Path, out: Path, section: PackSection, reporter: ProgressReporter) -> PackResult:
    """:func:`pack_shards` once ``out`` is checked and held."""
    preprocess = read_preprocess_reports(shards)
    paths = find_shards(shards, exclude=out)
    if not paths:
        raise _no_shards(shards, preprocess)

    kept, skipped = _read_headers(shards, paths, section, preprocess)
    warnings = _fill_missing_subjects(kept)
    unlisted = shards_no_report_lists(kept, preprocess) if preprocess is not None else ""
    if unlisted:
        warnings.append(unlisted)

    manifest_path = out / MANIFEST_NAME
    plan = plan_splits(kept, section, read_manifest(manifest_path))
    _check_train_is_filled(plan, kept, section, shards, preprocess)
    warnings.extend(plan.warnings)
    logger.log(logging.WARNING if plan.status == "replaced" else logging.INFO, plan.message)
    for warning in warnings:
        logger.warning(warning)
    for shard in skipped:
        logger.warning(f"skipped {shard.line()}")
    _log_preprocess(preprocess, shards)
    manifest = dict(plan.manifest)
    manifest["skipped"] = [shard.as_json() for shard in skipped]

    per_split = _write_splits(out, kept, plan, section, reporter, manifest)
    nonfinite = sum(s["nonfinite"] for s in per_split.values())
    _log_written(per_split, nonfinite)
    corpora = {as_str(header.attrs.get("corpus", "")) for header in kept}
    for warning in filter(None, [_classes_train_lacks(per_split, kept[0]), *_one_class_splits(per_split, kept[0], corpora)]):
        logger.warning(warning)
        warnings.append(warning)
    return PackResult(
        out=out,
        files={name: split_file(out, name) for name in per_split},
        windows={name: per_split.get(name, {}).get("windows", 0) for name in SPLITS},
        subjects={name: per_split.get(name, {}).get("subjects", 0) for name in SPLITS},
        recordings={name: per_split.get(name, {}).get("recordings", 0) for name in SPLITS},
        labels=label_kind(kept[0].y_shape, kept[0].y_kind),
        class_counts={name: per_split[name]["class_counts"] for name in per_split},
        split_status=plan.status,
        split_message=plan.message,
        skipped=skipped,
        clipped_values=sum(s["clipped"] for s in per_split.values()),
        nonfinite_values=nonfinite if section.layout == "copy" else None,
        dtype=section.dtype,
        seed=section.seed,
        preprocess=preprocess,
        warnings=warnings,
        windows_without_start=sum(s["no_start_windows"] for s in per_split.values()),
        layout=section.layout,
    )


def _fill_missing_subjects(headers: list[ShardHeader]) -> list[str]:
    """A shard without a subject counts as its own subject; the warning saying how many did."""
    no_subject = [h for h in headers if not h.subject]
    for header in no_subject:
        header.subject = header.recording_id
    return (
        [
            f"{counted(len(no_subject), 'shard')} {'has' if len(no_subject) == 1 else 'have'} no subject attribute; "
            f"each counts as its own subject"
        ]
        if no_subject
        else []
    )


def _classes_train_lacks(per_split: dict[str, dict[str, Any]], reference: ShardHeader) -> str:
    """The warning for classes val or test hold and train does not (a model never sees them); ``""`` if none.

    Few subjects, or an official split that puts a class's only subjects in test, leave train
    without a class; the fit then looks fine and the test metrics fail on that class alone.
    """
    if reference.y_shape is None or reference.y_kind == "f" or "train" not in per_split:
        return ""
    train = per_split["train"]["class_counts"]
    elsewhere: dict[str, list[str]] = {}
    for split in ("val", "test"):
        for name in per_split.get(split, {}).get("class_counts", {}):
            elsewhere.setdefault(name, []).append(split)
    missing = [name for name in elsewhere if name not in train]
    if not missing:
        return ""
    where = ", ".join(f"{name} (in {' and '.join(elsewhere[name])})" for name in missing)
    return (
        f"train holds no window of class(es) {where}: a model trained on it never sees them; "
        "add recordings of those classes, or another pack.seed or split fractions where subjects are split by seed"
    )


def _one_class_splits(per_split: dict[str, dict[str, Any]], reference: ShardHeader, corpora: set[str]) -> list[str]:
    """One warning for each of val and test holding windows of one class alone, where the packed windows have more.

    Balanced accuracy, AUROC and kappa of such a split are undefined or say nothing; of val, the early stopping that
    watches it watches nothing useful, all run, without a word. Train of one class is :func:`_classes_train_lacks`'s.
    """
    if reference.y_shape is None or reference.y_kind == "f":
        return []
    if len({name for split in per_split.values() for name in split["class_counts"]}) < 2:
        return []  # one class in the whole corpus: finetune refuses it, naming it
    warnings = []
    for split in ("val", "test"):
        counts = per_split.get(split, {}).get("class_counts", {})
        if len(counts) != 1:
            continue
        hints = split_options(corpora).get(split)
        give = f"give recordings of the other classes that split ({', '.join(hints)}), or " if hints else ""
        stopping = ", and early stopping on it watches nothing useful" if split == "val" else ""
        warnings.append(
            f"split {split!r} holds windows of class {next(iter(counts))!r} alone: its balanced accuracy, AUROC and "
            f"kappa are undefined or say nothing{stopping}; {give}pack with another pack.seed or other split "
            "fractions, or add recordings of the other classes"
        )
    return warnings


def _log_written(per_split: dict[str, dict[str, Any]], nonfinite: int) -> None:
    """Warn of NaN/inf values and of shards too old to carry window start times."""
    if nonfinite:
        logger.warning(
            f"{counted(nonfinite, 'NaN/inf value')} in the packed windows; check the preprocess report of those shards"
        )
    no_start = sorted({rid for s in per_split.values() for rid in s["no_start_recordings"]})
    if no_start:
        logger.info(
            f"{counted(len(no_start), 'shard')} {'was' if len(no_start) == 1 else 'were'} written before "
            f"{WINDOW_STARTS} existed (e.g. {no_start[0]}); their windows "
            f"have NaN start times in the packed files (re-run preprocess --force to fill them)"
        )


def _write_splits(
    out: Path,
    headers: list[ShardHeader],
    plan: SplitPlan,
    section: PackSection,
    reporter: ProgressReporter,
    manifest: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Write ``splits.json`` and one file per split that has windows, then swap them in for the earlier pack's, all at once.

    Until the swap ``out`` holds the earlier pack's files untouched, so a pack stopped (SIGTERM, Ctrl-C) or failed
    (a full disk) part-way leaves them whole, and a job reading them meanwhile reads them whole; the earlier split
    files this pack writes none of (a split now empty) go at the swap.
    """
    _clear_leftovers(out)
    common = {**_common_attrs(headers), "num_classes": _num_classes(headers)}
    common.update(_chains_attr(headers))
    per_split: dict[str, dict[str, Any]] = {}
    total = sum(h.n_windows for h in headers)
    settling = ExitStack()  # outermost: once entered, it holds until every file has moved in
    earlier = [split_file(out, name) for name in SPLITS]
    with settling, staged_files(out, "pack", earlier) as staging, reporter.task(total, "packing", unit="windows") as task:
        # First: a full disk is named by the smallest file, and a scan of shards above --out (find_shards) takes the
        # staging folder for a pack's (its splits.json is there) and skips its split files.
        write_json_atomic(staging / MANIFEST_NAME, manifest)
        names = [name for name in SPLITS if plan.manifest["windows"][name] > 0]  # an empty split has no file
        for name in names:
            path = split_file(staging, name)
            per_split[name] = _write_split(path, name, headers, plan, section, common, task.advance, out)
        # Written whole: from here the earlier pack goes and this one moves in, whatever signal comes.
        settling.enter_context(stops_settled())
    return per_split


def _num_classes(headers: list[ShardHeader]) -> int:
    """The classes of the packed data, written alike into every split file (0 without classes).

    The label names, or where the shards name none, 1 + the largest class index of any shard:
    counted per split, a split missing the last classes (few subjects) gave a train file of fewer
    classes than val or test, so the model's head was too small for them.
    """
    reference = headers[0]
    if reference.y_shape is None or reference.y_kind == "f":
        return 0
    return max(len(reference.label_names), *(header.classes_seen for header in headers))


def _clear_leftovers(out: Path) -> None:
    """Remove what a pack killed outright (SIGKILL, the out-of-memory killer) left in ``out``, on any machine.

    Its staging folder (and an older pack's split temporaries) are deleted; a swap it was killed in the instant of
    is finished first (:func:`~biofound_cli.atomic.remove_staging_leftovers`, which says why any machine's go),
    so ``out`` holds that pack whole.
    """
    older = {MANIFEST_NAME, *(split_file(out, name).name for name in SPLITS)}
    for leftover in remove_staging_leftovers(out, "pack", older):
        logger.info(f"{out}: removed {leftover.name}, left by a pack that was killed")
