"""Which recordings one ``preprocess`` run processes, and what it says about the others.

Discovery lists the whole corpus; :func:`~biofound_cli.store.recording_ids.unique_recording_ids`
makes the recording ids unique (before slicing, so every slice of an array job agrees); the
slice of ``--shard I/N`` is taken; then each recording is to do, already done (its shard exists
and was written from this very file, unchanged since, its companion files too: the shard stamps
their size and time, :mod:`~biofound_cli.store.source_stamp`; and discovery still says what the
shard keeps of it, :func:`discovered`: a corrected labels CSV row changes no file of the recording) or
skipped as ``duplicate_id`` (another file of the run has its id, or the shard on disk was written
from another file: ``--force`` overwrites it). A shard
written with other settings stops the run before any work: counting it as done would mix two
preprocessings in one folder under a report that names only the new one.

What the run passes over is said once, in slice 1: the recordings discovery left out on purpose,
by reason (``excluded``), and the other files under the root, by suffix (``not_read``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from biofound_cli.corpora.base import Corpus, RecordingRef, file_pattern, one_walk_per_folder
from biofound_cli.corpora.not_read import EarlierOutputs, count_not_read
from biofound_cli.errors import UsageError, discovering
from biofound_cli.plural import counted, first_few
from biofound_cli.store.recording_ids import DUPLICATE_ID, unique_recording_ids
from biofound_cli.store.shard_scan import as_str, as_str_list
from biofound_cli.store.shards import RECORDING_LABEL, shard_path
from biofound_cli.store.slices import Slice, slice_refs
from biofound_cli.store.source_stamp import SOURCE_STAMP, rewritten_since

logger = logging.getLogger(__name__)

MAX_NAMED = 3
"""Shard names a warning lists before it says how many more there are."""
SETTING_FIELDS = ("corpus", "config", "options")
"""What a run was made with, as its report holds it: shards made with other values do not belong together."""
MAX_NAMED_FIELDS = 4


@dataclass
class RecordingResult:
    """What happened to one recording."""

    recording_id: str
    source_path: str
    status: str
    """``written``, ``already_done`` or ``skipped``."""
    reason: str = ""
    message: str = ""
    windows: int = 0
    clipped_values: int = 0
    shard: str = ""
    notes: dict[str, int] = field(default_factory=dict)
    """What the chain kept with a warning (``truncated_kept``, ``events_outside``, ``events_clipped``,
    ``events_shorter_than_window``, ``flat_channels_kept``)."""
    flat_channels_kept: list[str] = field(default_factory=list)
    """The flat channels the recording was used with (a recording skipped for them names them in ``message``)."""
    sfreq: float = 0.0
    """The rate of its shard (written or already done); 0 when unknown (skipped, or a shard without one)."""


@dataclass
class RunPlan:
    """The recordings of one run (or slice): those to process and those settled up front."""

    found: int
    todo: list[RecordingRef]
    settled: list[RecordingResult] = field(default_factory=list)
    """Already done, or skipped before any work (``duplicate_id``)."""
    excluded: dict[str, int] = field(default_factory=dict)
    """Recordings discovery left out on purpose, by reason (:attr:`~biofound_cli.corpora.base.Corpus.excluded`)."""
    not_read: dict[str, int] = field(default_factory=dict)
    """The files under the root that are not recordings, nor files one is read from, by suffix
    (:func:`~biofound_cli.corpora.not_read.count_not_read`)."""


def plan_run(
    corpus: Corpus, root: Path, out: Path, *, shard: Slice | None, force: bool, settings: dict[str, Any] | None = None
) -> RunPlan:
    """Discover, de-duplicate ids, slice, and sort the recordings into to-do and settled.

    Parameters
    ----------
    corpus : Corpus
        The corpus reader, with its options.
    root, out : Path
        The raw recordings and the shard folder (``--root``, ``--out``).
    shard : Slice | None
        The slice of an array job, or ``None`` for the whole corpus.
    force : bool
        Rewrite shards that exist instead of counting them as done.
    settings : dict | None
        The run's ``corpus``, ``config`` and ``options`` as its report holds them; a shard that
        exists is done only when it was written with these. ``None`` compares nothing.

    Raises
    ------
    UsageError
        When no recording is found under ``root``, or a shard of a recording exists but was
        written with other settings (without ``force``).
    """
    # Decisions about the whole corpus (discovery exclusions, files not read, duplicate ids) count in slice 1 only, so
    # pack's sum is right; the files not read are counted right after the discovery whose exclusions they leave out,
    # from its walk of root.
    # The output folders of predict runs under root (its tables are .csv recordings to some readers) are passed over
    # as predict passes them over: named once, nothing in them read or counted.
    with one_walk_per_folder(), discovering(root):
        refs, earlier = corpus.discover(root), EarlierOutputs(None)
        outputs = [out, *earlier.below(root)] if refs else []
        refs = [ref for ref in refs if not earlier.holds(ref.path)]
        first = shard is None or shard.index == 1
        excluded, not_read = (
            (dict(corpus.excluded), count_not_read(root, refs, corpus, outputs=outputs)) if refs and first else ({}, {})
        )
    if not refs:
        pattern = file_pattern(corpus)
        if pattern:
            raise UsageError(
                f"--root {root}: no file there matches {pattern} (matched against each path below --root); "
                f"check that option and the path (see docs/corpora/{corpus.name}.md)"
            )
        raise UsageError(
            f"--root {root}: no {corpus.name} recordings found there; check the path (see docs/corpora/{corpus.name}.md)"
        )
    refs, duplicates = unique_recording_ids(refs)
    if first:
        _warn_about_unknown_shards(out / corpus.name, {ref.recording_id for ref in refs})
    if shard is not None:
        n_found = len(refs)
        refs = slice_refs(refs, shard)
        logger.info(f"slice {shard}: {len(refs)} of the {n_found} recordings")
    settled = [
        RecordingResult(duplicate.ref.recording_id, str(duplicate.ref.path), "skipped", DUPLICATE_ID, duplicate.message)
        for duplicate in (duplicates if first else [])
    ]
    todo = []
    for ref in refs:
        result = None if force else _existing_shard(ref, root, out, corpus, settings)
        if result is None:
            todo.append(ref)
        else:
            settled.append(result)
    found = len(refs) + len(duplicates if first else [])
    return RunPlan(found=found, todo=todo, settled=settled, excluded=excluded, not_read=not_read)


def _existing_shard(
    ref: RecordingRef, root: Path, out: Path, corpus: Corpus, settings: dict[str, Any] | None
) -> RecordingResult | None:
    """``already_done`` or a ``duplicate_id`` skip when the recording's shard exists; ``None`` to process it."""
    path = shard_path(out, corpus.name, ref.recording_id)
    if not path.exists():
        return None
    attrs = _shard_attrs(path)
    if attrs is None:
        # Shards are renamed into place whole, so this one was damaged later: write it again.
        logger.warning(f"{path}: cannot be read; it is written again")
        return None
    stored = attrs.get("source_path")
    if stored is None or same_source(stored, ref, root):
        differing = settings_differences(stored_settings(attrs.get("preprocess_config")), settings or {})
        if differing:
            raise other_settings(path, "shard", differing)
        if rewritten_since(attrs, corpus.source_files(ref)):
            logger.info(f"{ref.path} or a file it is read with changed since {path} was written; it is processed again")
            return None
        changes = discovery_changes(attrs, ref)
        if changes:
            now, before = (", ".join(f"{key} {values[side]!r}" for key, values in changes.items()) for side in (1, 0))
            logger.info(f"{ref.path} is now given {now} where its shard {path} has {before}; it is processed again")
            return None
        return RecordingResult(
            ref.recording_id,
            str(ref.path),
            "already_done",
            windows=shard_window_count(path),
            shard=str(path),
            sfreq=attrs.get("sfreq", 0.0),
        )
    return RecordingResult(
        ref.recording_id,
        str(ref.path),
        "skipped",
        DUPLICATE_ID,
        f"{ref.path}: its shard {path} holds another file, {stored}; pass --force to overwrite it or use another --out",
    )


def other_settings(path: Path, what: str, differing: str) -> UsageError:
    """The refusal of a run into an ``--out`` whose shard or report ``path`` another chain made: what differs, what to do.

    Parameters
    ----------
    path : Path
        The shard or report written with other settings.
    what : str
        What it is, as the parentheses name it (``shard``, ``report``).
    differing : str
        :func:`settings_differences` of the two.
    """
    return UsageError(
        f"{path} was written with other preprocess settings ({what} vs this run: {differing}), so its shards cannot "
        "count as done in this run; pass --force to rewrite the shards with these settings, or use another --out"
    )


def stored_source(path: Path) -> str | None:
    """The ``source_path`` the shard was written from; ``None`` when it has none or does not open.

    Parameters
    ----------
    path : Path
        A shard (``*.h5``).
    """
    return (_shard_attrs(path) or {}).get("source_path")


def shard_window_count(path: Path) -> int:
    """How many windows a shard holds; 0 when it does not open.

    Parameters
    ----------
    path : Path
        The shard file.
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return int(handle["x"].shape[0])
    except (OSError, KeyError):
        return 0


def _plain(value: Any) -> Any:
    """A numpy number as the Python number it holds; anything else as it is."""
    # A numpy number would be stored as text, and never equal the label found next time.
    return value.item() if isinstance(value, np.generic) else value


_SHARD_ATTRS: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys(("source_path", "preprocess_config", "subject", "session"), as_str),
    **dict.fromkeys(SOURCE_STAMP, int),
    "sfreq": float,
    "label_names": as_str_list,
    RECORDING_LABEL: _plain,
}
"""The attributes :func:`_shard_attrs` reads, each with how it is read."""


def _shard_attrs(path: Path) -> dict[str, Any] | None:
    """The shard's ``source_path``, ``preprocess_config``, ``sfreq``, source stamp and :func:`discovered` attributes (those it
    has; ``split`` is ``""`` when absent, as the writer leaves it out for none); ``None`` when it does not open."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            stored = handle.attrs
            attrs = {name: read(stored[name]) for name, read in _SHARD_ATTRS.items() if name in stored}
            attrs["split"] = as_str(stored.get("split", ""))
            return attrs
    except OSError:
        return None


def label_attr(ref: RecordingRef) -> dict[str, Any]:
    """``{"label": ...}``: the whole-recording label discovery gave ``ref`` (its ``extra["label"]``), for its shard; ``{}``
    for none.

    Parameters
    ----------
    ref : RecordingRef
        The recording; a labels CSV row (``edf``), a TUAB folder or a file name's class gave its label.
    """
    label = ref.extra.get("label")
    return {} if label is None else {RECORDING_LABEL: _plain(label)}


def discovered(ref: RecordingRef) -> dict[str, Any]:
    """What discovery says about ``ref`` that its shard keeps: subject, session, official split and, when discovery
    labels the whole recording, that label and the label names.

    A labels CSV (the ``edf`` corpus's ``labels_csv``) can change any of them with no file of the recording
    rewritten, and the corpus options hold only the CSV's path: a re-run compares these with the shard
    (:func:`discovery_changes`) so that only the recordings whose rows changed are processed again. Changed label
    names renumber the labels and stop ``pack`` mixing shards, so they count too.

    Parameters
    ----------
    ref : RecordingRef
        The recording found now.
    """
    facts: dict[str, Any] = {"subject": str(ref.subject), "session": str(ref.session), "split": ref.split or ""}
    facts.update(label_attr(ref))
    if RECORDING_LABEL in facts and "label_names" in ref.extra:
        facts["label_names"] = [str(name) for name in ref.extra["label_names"]]
    return facts


def discovery_changes(attrs: dict[str, Any], ref: RecordingRef) -> dict[str, tuple[Any, Any]]:
    """The :func:`discovered` facts the shard holds otherwise: ``{key: (in the shard, now)}``, a label as its class name
    where there are names; empty when it agrees.

    A fact the shard lacks (``label``, in a shard written by an older biofound) is taken as current.

    Parameters
    ----------
    attrs : dict
        The shard's attributes, as :func:`_shard_attrs` reads them.
    ref : RecordingRef
        The recording found now.
    """
    now = discovered(ref)
    changes = {key: (attrs[key], value) for key, value in now.items() if key in attrs and attrs[key] != value}
    if RECORDING_LABEL in changes:
        before, after = changes[RECORDING_LABEL]
        changes[RECORDING_LABEL] = (
            _label_name(before, attrs.get("label_names", [])),
            _label_name(after, now.get("label_names", [])),
        )
    return changes


def _label_name(label: Any, names: list[str]) -> Any:
    """The class name of an integer ``label`` in ``names``, or the label itself."""
    return names[label] if isinstance(label, int) and 0 <= label < len(names) else label


def stored_settings(preprocess_config: str | None) -> dict[str, Any]:
    """A shard's ``preprocess_config`` attribute in its run report's shape; ``{}`` when absent or unreadable.

    Parameters
    ----------
    preprocess_config : str or None
        The attribute as stored (JSON of the chain's fields, the corpus and its options).
    """
    try:
        flat = json.loads(preprocess_config) if preprocess_config else {}
    except ValueError:
        return {}
    if not isinstance(flat, dict) or not flat:
        return {}
    # preprocess_recording writes the corpus and its options beside the chain's fields, in one table.
    return {"corpus": flat.pop("corpus", None), "options": flat.pop("options", None), "config": flat}


def settings_differences(left: dict[str, Any], right: dict[str, Any]) -> str:
    """``name.key a vs b, ...`` for the first few of :data:`SETTING_FIELDS` that differ, one level into tables.

    An empty string when they agree. A field absent from either side (written by an older
    biofound, or not recorded) is not compared.

    Parameters
    ----------
    left, right : dict
        Settings as a run report holds them (``corpus``, ``config``, ``options``).
    """
    differing: list[str] = []
    for name in SETTING_FIELDS:
        first, second = left.get(name), right.get(name)
        if first is None or second is None:
            continue
        if isinstance(first, dict) and isinstance(second, dict):
            shared = sorted(set(first) & set(second), key=str)
            differing.extend(f"{name}.{key} {first[key]!r} vs {second[key]!r}" for key in shared if first[key] != second[key])
        elif first != second:
            differing.append(f"{name} {first!r} vs {second!r}")
    return first_few(differing, MAX_NAMED_FIELDS)


def same_source(stored: str, ref: RecordingRef, root: Path) -> bool:
    """Whether a shard's stored ``source_path`` is the file of ``ref``.

    The same path, or one that ends with the file's path below the root: a corpus read again
    from another mount point or through a relative ``--root`` is the same corpus.

    Parameters
    ----------
    stored : str
        The shard's ``source_path`` attribute.
    ref : RecordingRef
        The recording found now.
    root : Path
        The ``--root`` it was found under.
    """
    if stored == str(ref.path):
        return True
    try:
        below_root = ref.path.relative_to(root).parts
    except ValueError:
        below_root = (ref.path.name,)
    return Path(stored).parts[-len(below_root) :] == below_root


def _warn_about_unknown_shards(folder: Path, ids: set[str]) -> None:
    """Say when the folder holds shards no recording of this run maps to: pack would pack them too."""
    if not folder.is_dir():
        return
    known = {recording_id.casefold() for recording_id in ids}
    unknown = sorted(path.name for path in folder.glob("*.h5") if path.stem.casefold() not in known)
    if unknown:
        shown = first_few(unknown, MAX_NAMED)
        logger.warning(
            f"{folder}: {counted(len(unknown), 'shard')} {'matches' if len(unknown) == 1 else 'match'} no recording "
            f"found under the root this time ({shown}); "
            "biofound pack packs every shard in the folder, so delete them if they are left from another run"
        )
