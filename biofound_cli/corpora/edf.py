"""Any folder of EEG/EMG files MNE can read, or a BIDS data set: the corpus for your own data.

Files: ``.edf``, ``.bdf``, ``.fif`` / ``.fif.gz``, ``.vhdr`` (BrainVision) and ``.set`` (EEGLAB),
found recursively under the root. A root holding ``dataset_description.json`` is read as
BIDS through ``mne-bids`` (installed separately: ``pip install mne-bids``), which also turns
``*_events.tsv`` into annotations.

Labels, one of:

* ``labels_csv``: a CSV with a header and the columns ``file`` (path relative to the root, or
  the BIDS base name) and ``label``, optionally ``subject``, ``session`` and ``split``; only
  the files it lists are used (the others are named in one warning and counted as excluded,
  ``not_in_labels_csv``), and a listed file that is not there is an error;
* ``event_labels``: annotation description → label, e.g. ``{T1 = 0, T2 = 1}``; every such
  annotation becomes a labelled :class:`Segment` spanning its own duration, or
  ``event_window = [tmin, tmax]`` seconds around its onset;
* neither: unlabelled recordings, for pretraining.

Labels may be integers or class names; names are numbered by their place in ``label_names``,
or in sorted order without it. Subjects come from the CSV, from BIDS, from the
``subject_pattern`` regex (group ``subject``, optionally ``session``, searched in the path
relative to the root), or else from the first folder under the root (the file name for files
directly in the root). Channels are chosen with ``[preprocess] channels``.
"""

from __future__ import annotations

import csv
import logging
import posixpath
import re
import warnings
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
from pydantic import Field, field_validator

from biofound_cli.corpora.base import (
    CHANNEL_POSITIONS_HELP,
    ChannelPositions,
    Corpus,
    Modality,
    Recording,
    RecordingRef,
    Segment,
    Split,
    UnusableRecording,
    channel_positions_meta,
    file_ending,
    files_under,
    label_indices,
    text_encoding,
    undecodable_text,
)
from biofound_cli.corpora.edf_header import EDF_ENDINGS, read_raw_as_its_header_says, truncation_meta
from biofound_cli.corpora.edf_records import header_rate, signals_to_exclude
from biofound_cli.corpora.eeglab_files import data_files
from biofound_cli.corpora.fif_splits import is_fif, later_parts, split_parts
from biofound_cli.errors import DataError, UsageError, reading_as
from biofound_cli.plural import counted, first_few, plural
from biofound_cli.recipes.base import Regex, Section
from biofound_cli.signals.chain import ChainConfig
from biofound_cli.tasks import RECONSTRUCTION

# File name endings MNE reads as one recording (``mne.io.read_raw`` picks the reader by ending);
# `biofound info` describes the same files.
EXTENSIONS = (*EDF_ENDINGS, ".fif", ".fif.gz", ".vhdr", ".set")
_SPLITS: tuple[Split, ...] = ("train", "val", "test")

logger = logging.getLogger(__name__)


class EdfOptions(Section):
    """``[preprocess.options]`` of the ``edf`` corpus."""

    labels_csv: Path | None = Field(None, description="CSV with columns file, label[, subject, session, split].")
    event_labels: dict[str, int | str] | None = Field(None, description="Annotation description -> label (int or class name).")
    event_window: tuple[float, float] | None = Field(
        None, description="[tmin, tmax] seconds around each event onset; default: the annotation's own duration."
    )
    label_names: list[str] | None = Field(None, description="Name of each label, in label order.")
    subject_pattern: Regex | None = Field(
        None, description="Regex with group 'subject' (and optionally 'session') searched in the relative path."
    )
    bids: bool | None = Field(None, description="Read the root as BIDS; default: when it holds dataset_description.json.")
    extensions: list[str] = Field(list(EXTENSIONS), description="File name endings to read.")
    channel_positions: ChannelPositions = Field(None, description=CHANNEL_POSITIONS_HELP)

    @field_validator("subject_pattern")
    @classmethod
    def _has_subject_group(cls, value: str | None) -> str | None:
        # Runs after Regex, which has refused a pattern that does not compile.
        if value is not None and "subject" not in re.compile(value).groupindex:
            raise ValueError("needs a named group (?P<subject>...)")
        return value

    @field_validator("event_window")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] >= value[1]:
            raise ValueError(f"tmin {value[0]:g} must be below tmax {value[1]:g}")
        return value


class EdfCorpus(Corpus):
    """A folder of EDF/BDF/FIF/BrainVision/EEGLAB files or a BIDS root, labelled by CSV or by events."""

    name: ClassVar[str] = "edf"
    official_split_options: ClassVar[dict[str, str]] = dict.fromkeys(("train", "val", "test"), "labels_csv")  # its split column
    file_option: ClassVar[str | None] = "extensions"
    modality: ClassVar[Modality] = "eeg"
    task: str = "mcc"
    # No corpus-specific chain: a broad EEG band-pass, native rate, 5 s windows.
    defaults: ClassVar[dict[str, Any]] = {
        "l_freq": 0.1,
        "h_freq": None,
        "notch_hz": None,
        "sfreq": None,
        "window_seconds": 5.0,
        "stride_seconds": 5.0,
        "montage": None,
        "channels": None,
        "units": "uV",
    }
    Options: ClassVar[type[Section]] = EdfOptions
    read_channels: tuple[str, ...] | None = None
    """The channels the signal chain will use, set by the pipeline: an EDF/BDF file's other signals
    are not read, so the kept ones come at their own rate. ``None`` reads them all."""

    def __init__(self, options: EdfOptions | None = None) -> None:
        options = options or EdfOptions()
        super().__init__(options)
        if options.labels_csv is not None and options.event_labels is not None:
            raise UsageError(
                "preprocess.options.labels_csv and preprocess.options.event_labels both give labels; keep one of them"
            )
        self.label_names = tuple(options.label_names or ())
        if options.labels_csv is None and options.event_labels is None:
            self.task = RECONSTRUCTION
        if options.event_labels is not None:
            self._event_label = self._label_index(list(options.event_labels.values()), "preprocess.options.event_labels")

    def window_problem(self, config: ChainConfig) -> str | None:
        """A window longer than the span ``event_window`` cuts around every event: every file would be skipped later."""
        event_window = self.options_as(EdfOptions).event_window
        if event_window is None or config.window_seconds is None:
            return None
        span = event_window[1] - event_window[0]
        # One output sample of slack: the recording's own rounding decides a window that just fits.
        slack = 1.0 / config.sfreq if config.sfreq else 0.0
        if config.window_seconds <= span + slack:
            return None
        return (
            f"preprocess.window_seconds = {config.window_seconds:g} s is longer than the "
            f"{span:g} s that preprocess.options.event_window = [{event_window[0]:g}, {event_window[1]:g}] "
            "cuts around each event, so every recording would be skipped; shorten the window or widen the event window"
        )

    # -- discovery ------------------------------------------------------------------------------

    def discover(self, root: Path) -> list[RecordingRef]:
        options = self.options_as(EdfOptions)
        self.left_out = {}
        refs = self._discover_bids(root) if self._is_bids(root) else self._discover_files(root)
        if options.labels_csv is not None:
            refs = self._apply_labels_csv(refs, options.labels_csv, root)
        return sorted(refs, key=lambda ref: ref.recording_id)

    def _is_bids(self, root: Path) -> bool:
        """Whether ``root`` is read as a BIDS data set (``options.bids``, else: it holds ``dataset_description.json``)."""
        bids = self.options_as(EdfOptions).bids
        return bids if bids is not None else (root / "dataset_description.json").is_file()

    def unread_files(self, root: Path, refs: Sequence[RecordingRef]) -> list[Path]:
        # A BIDS data set's other files (sidecars, events.tsv, participants.tsv) are its own: mne-bids reads them.
        if self._is_bids(root):
            return []
        # labels.csv beside the recordings is read: it says what they are.
        labels_csv = self.options_as(EdfOptions).labels_csv
        read = labels_csv.resolve() if labels_csv is not None else None
        return [path for path in super().unread_files(root, refs) if path.resolve() != read]

    def _discover_files(self, root: Path) -> list[RecordingRef]:
        options = self.options_as(EdfOptions)
        pattern = re.compile(options.subject_pattern) if options.subject_pattern else None
        refs = []
        files = files_under(root)
        parts = later_parts(files)  # raw-1.fif is read with raw.fif, as MNE does: no recording of its own
        for path in files:
            ending = file_ending(path.name, options.extensions)
            if ending is None or (parts and path.resolve() in parts):
                continue
            relative = path.relative_to(root).as_posix()
            key = relative[: -len(ending)]
            subject, session = _subject_of(relative, key, pattern)
            refs.append(
                RecordingRef(path=path, recording_id=key.replace("/", "-"), subject=subject, session=session, extra={"key": key})
            )
        if not refs and files:
            raise UsageError(
                # No flag named: the folder is preprocess's --root or one of predict's RECORDINGS.
                f"{root}: no file there ends in {', '.join(options.extensions)}; "
                "check the folder or preprocess.options.extensions"
            )
        return refs

    def _discover_bids(self, root: Path) -> list[RecordingRef]:
        try:
            import mne_bids
        except ImportError:
            raise UsageError(
                f"{root} is a BIDS data set and reading it needs mne-bids; run `pip install mne-bids` "
                "or set preprocess.options.bids = false to read the files directly"
            ) from None
        extensions = [ending for ending in self.options_as(EdfOptions).extensions if ending != ".fif.gz"]
        paths = mne_bids.find_matching_paths(root, datatypes=["eeg", "emg", "meg"], suffixes=None, extensions=extensions)
        kept, copies = _one_format_each(paths, extensions)
        # Copies in another format count in the run's report as excluded by discovery.
        self.left_out = {"other_format": [_bids_ref(bids_path) for bids_path in copies]}
        return [_bids_ref(bids_path) for bids_path in kept]

    def _apply_labels_csv(self, refs: list[RecordingRef], csv_path: Path, root: Path) -> list[RecordingRef]:
        """The recordings ``csv_path`` lists, with its labels; those it does not list are left out (``not_in_labels_csv``)."""
        rows = read_labels_csv(csv_path)
        label_of = self._label_index([row["label"] for row in rows], f"{csv_path}")
        extensions = self.options_as(EdfOptions).extensions
        by_key: dict[str, RecordingRef] = {}
        for ref in refs:
            by_key[ref.extra["key"]] = ref
            if ref.path.is_relative_to(root):
                # A BIDS recording, keyed by its base name, is named by its path too, as the docs and the unlisted warning do.
                by_key.setdefault(_strip_ending(ref.path.relative_to(root).as_posix(), extensions), ref)
            by_key.setdefault(ref.path.name, ref)
        labelled: list[RecordingRef] = []
        missing: list[str] = []
        for row in rows:
            # As `find .` or Windows write paths: ./sub1/a.edf, sub1\a.edf.
            file_key = posixpath.normpath(row["file"].replace("\\", "/"))
            found = by_key.get(file_key) or by_key.get(_strip_ending(file_key, extensions))
            if found is None:
                missing.append(row["file"])
                continue
            labelled.append(
                RecordingRef(
                    path=found.path,
                    recording_id=found.recording_id,
                    subject=row.get("subject") or found.subject,
                    session=row.get("session") or found.session,
                    # read_labels_csv refused any other split name.
                    split=next((split for split in _SPLITS if split == row.get("split")), None),
                    # The label names travel with the ref: worker processes build a fresh corpus.
                    extra={**found.extra, "label": label_of[row["label"]], "label_names": list(self.label_names)},
                )
            )
        if missing:
            shown = first_few(missing, 5)
            raise UsageError(
                f"{csv_path}: {counted(len(missing), 'listed file')} not found under the root: {shown}; fix the "
                f"'file' column or the root"
            )
        listed = {ref.path for ref in labelled}
        self.left_out = {**self.left_out, "not_in_labels_csv": [ref for ref in refs if ref.path not in listed]}
        _warn_unlisted(self.left_out["not_in_labels_csv"], csv_path, root)
        return labelled

    def _label_index(self, values: list[Any], where: str) -> dict[Any, int]:
        """Integer label of every value (:func:`~biofound_cli.corpora.base.label_indices`); names found become ``label_names``."""
        indices, self.label_names = label_indices(values, self.label_names, where)
        return indices

    # -- reading --------------------------------------------------------------------------------

    def source_files(self, ref: RecordingRef, labels: bool = True) -> list[Path]:
        files = [ref.path, *(path for path in companion_files(ref.path) if path.is_file())]
        bids_path = ref.extra.get("bids_path")
        if bids_path is not None:
            # Events decide the windows and their labels only through event_labels.
            files += bids_sidecars(bids_path, events=labels and self.options_as(EdfOptions).event_labels is not None)
        return files

    def header_rate(self, ref: RecordingRef) -> float | None:
        # Only EDF/BDF: MNE's header reading of the others may load the data (an EEGLAB .set holding it).
        if not ref.path.name.lower().endswith(EDF_ENDINGS):
            return None
        return header_rate(ref.path, self.read_channels)

    def read(self, ref: RecordingRef) -> Recording:
        # EDF/BDF say how long they should be: a header alone is "empty", a cut file is flagged
        # for preprocess.on_truncated (MNE would read what is there with a warning only).
        truncation = truncation_meta(ref.path) if ref.path.suffix.lower() in EDF_ENDINGS else {}
        raw, dropped = self._read_raw(ref)
        keep = [index for index, kind in enumerate(raw.get_channel_types()) if kind != "stim"]
        if not keep:
            raise DataError(f"{ref.path}: the file has no signal channels")
        raw.pick(keep)
        sfreq = float(raw.info["sfreq"])
        recording = Recording(
            data=np.asarray(raw.get_data(), dtype=np.float64),
            sfreq=sfreq,
            ch_names=list(raw.ch_names),
            label=ref.extra.get("label"),
            meta={
                **truncation,
                **channel_positions_meta(self.channel_positions),
                **self.label_names_meta(ref),
            },
        )
        event_labels = self.options_as(EdfOptions).event_labels
        if event_labels is not None:
            recording.segments = self._event_segments(ref, raw, event_labels, dropped["events_outside"])
            # Annotations MNE dropped or cut to the recording while reading it.
            recording.meta.update({key: count for key, count in dropped.items() if count})
        return recording

    def _read_raw(self, ref: RecordingRef) -> tuple[Any, dict[str, int]]:
        """The recording, preloaded, and how many annotations MNE dropped or clipped to it.

        MNE only warns when it omits annotations outside the data or limits those that run past
        it; those warnings are caught and counted here (``events_outside``, ``events_clipped``).
        """

        bids_path = ref.extra.get("bids_path")
        name = ref.path.name.lower()
        # MNE reads an EDF/BDF's signals at the rate of the fastest it reads: the unused ones are left out.
        exclude = {"exclude": signals_to_exclude(ref.path, self.read_channels)} if name.endswith(EDF_ENDINGS) else {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with reading_as(ref.path, "recording"):  # the file's fault; any other error is ours and stops the run
                if bids_path is not None:
                    import mne_bids

                    raw = mne_bids.read_raw_bids(bids_path, extra_params=exclude, verbose="warning").load_data(verbose="error")
                else:
                    # mne.io.read_raw picks the reader by the file's ending; a BDF file named .edf is read as BDF.
                    raw = read_raw_as_its_header_says(ref.path, preload=True, verbose="warning", **exclude)
        messages = [str(warning.message) for warning in caught]
        return raw, {"events_outside": _warned_count(messages, _OMITTED), "events_clipped": _warned_count(messages, _LIMITED)}

    def _event_segments(self, ref: RecordingRef, raw: Any, wanted: dict[str, int | str], n_dropped: int = 0) -> list[Segment]:
        """One segment per annotation named in ``wanted`` (``event_labels``), in seconds from the first sample.

        ``n_dropped`` annotations (any name) lay outside the recording and were dropped by MNE.

        Raises
        ------
        UnusableRecording
            (reason ``no_events``) when no annotation has one of those names; the message lists
            the names the file has.
        """
        annotations = raw.annotations
        if not any(description in wanted for description in annotations.description):
            found = sorted(set(annotations.description))
            shown = first_few(found, 8)
            outside = (
                f", and {counted(n_dropped, 'annotation')} lying outside the recording "
                f"{'was' if n_dropped == 1 else 'were'} dropped"
                if n_dropped
                else ""
            )
            raise UnusableRecording(
                f"{ref.path}: no annotation named {', '.join(wanted)} "
                f"({'the file has ' + shown if found else 'the file has no annotations'}{outside}); "
                "check preprocess.options.event_labels",
                "no_events",
            )
        onsets = raw.time_as_index(annotations.onset, use_rounding=True, origin=annotations.orig_time) / raw.info["sfreq"]
        window = self.options_as(EdfOptions).event_window
        segments = []
        for onset, duration, description in zip(onsets, annotations.duration, annotations.description, strict=True):
            if description not in wanted:
                continue
            if window is not None:
                start, stop = onset + window[0], onset + window[1]
            elif duration > 0:
                start, stop = onset, onset + duration
            else:
                raise DataError(
                    f"{ref.path}: event {description!r} at {onset:.3f} s has no duration; "
                    "set preprocess.options.event_window = [tmin, tmax]"
                )
            label = self._event_label[wanted[description]]
            segments.append(Segment(start=float(start), stop=float(stop), label=label))
        return segments


def companion_files(path: Path) -> list[Path]:
    """The other files MNE reads a recording from: those a BrainVision header names, the data file an
    EEGLAB set names (:func:`~biofound_cli.corpora.eeglab_files.data_files`), a split FIF file's later parts.

    Parameters
    ----------
    path : Path
        The recording's own file (``.vhdr``, ``.set``, ``.fif``, ...); a header that cannot be read names none.
    """
    name = path.name.lower()
    if name.endswith(".set"):
        return data_files(path)
    if is_fif(path):
        return split_parts(path)
    if not name.endswith(".vhdr"):
        return []
    try:
        text = path.read_text(encoding=text_encoding(path), errors="replace")
    except OSError:
        return []
    # MNE reads the data and marker files named in the header's [Common Infos], beside the header.
    return [path.parent / match.strip() for match in _HEADER_FILES.findall(text)]


def bids_sidecars(bids_path: Any, *, events: bool) -> list[Path]:
    """The sidecar files ``mne_bids.read_raw_bids`` reads a BIDS recording with, found as mne-bids finds them
    (BIDS inheritance: a file one folder up, or at the root, counts).

    The ``_eeg.json`` (or ``_emg.json``, ``_meg.json``), ``_channels.tsv`` (channel types, bad channels),
    ``_electrodes.tsv`` and ``_coordsystem.json``, and with ``events`` the ``_events.tsv`` and ``_events.json``.
    Not ``_scans.tsv`` and ``participants.tsv``: they say when and whom, not what the windows hold, and one
    row edited would process every recording of the session or the data set again.

    Parameters
    ----------
    bids_path : mne_bids.BIDSPath
        The recording, as discovery found it (``ref.extra["bids_path"]``).
    events : bool
        Whether the events are read for labels (``event_labels``).
    """
    wanted = [(bids_path.datatype, ".json"), ("channels", ".tsv"), ("electrodes", ".tsv"), ("coordsystem", ".json")]
    if events:
        wanted += [("events", ".tsv"), ("events", ".json")]
    found = (bids_path.find_matching_sidecar(suffix, extension, on_error="ignore") for suffix, extension in wanted)
    return [Path(path) for path in found if path is not None]


def _bids_ref(bids_path: Any) -> RecordingRef:
    """The recording a BIDS path found by ``mne_bids.find_matching_paths`` is, named by its entities."""
    key = bids_path.basename.removesuffix(bids_path.extension or "")
    return RecordingRef(
        path=bids_path.fpath,
        recording_id=key,
        subject=bids_path.subject,
        session=bids_path.session or "",
        extra={"key": key, "bids_path": bids_path},
    )


def _warn_unlisted(unlisted: Sequence[RecordingRef], csv_path: Path, root: Path) -> None:
    """One warning naming the recordings under ``root`` that ``labels_csv`` leaves out (a mistyped row, most often)."""
    if not unlisted:
        return
    # As the CSV's file column names them (relative to the root), so that a row can be written for each.
    names = [ref.path.relative_to(root).as_posix() if ref.path.is_relative_to(root) else str(ref.path) for ref in unlisted]
    shown = first_few(names, 5)
    verbs = ("is", "was") if len(names) == 1 else ("are", "were")
    logger.warning(
        f"{counted(len(names), 'recording')} under {root} {verbs[0]} not listed in {csv_path} and {verbs[1]} left out "
        f"({shown}); add a row for each one to use"
    )


def _one_format_each(paths: list[Any], extensions: list[str]) -> tuple[list[Any], list[Any]]:
    """One BIDS path per recording, and the copies left out: a recording stored in several formats is read in the
    first of ``extensions``.

    BIDS names a recording by its entities, so ``sub-01_task-rest_eeg.edf`` and
    ``sub-01_task-rest_eeg.set`` are one recording twice; reading both would double its windows
    (and put the same subject in the data twice). The copies left out are named in one warning.
    """
    recordings = [bids_path for bids_path in paths if bids_path.suffix in ("eeg", "emg", "meg")]
    chosen: dict[str, Any] = {}
    for bids_path in sorted(recordings, key=lambda bids_path: _preference(bids_path, extensions)):
        chosen.setdefault(_without_extension(bids_path), bids_path)
    copies = [bids_path for bids_path in recordings if chosen[_without_extension(bids_path)] is not bids_path]
    if copies:
        shown = first_few([f"{path.fpath.name} (read as {chosen[_without_extension(path)].fpath.name})" for path in copies], 5)
        logger.warning(
            f"{counted(len(copies), 'BIDS recording')} {'is' if len(copies) == 1 else 'are'} stored in more than one "
            f"format; each is read once, in the first format "
            f"of preprocess.options.extensions, and these copies are left out: {shown}"
        )
    return list(chosen.values()), copies


def _without_extension(bids_path: Any) -> str:
    """The recording's file path without its format's extension."""
    return str(bids_path.fpath).removesuffix(bids_path.extension or "")


def _preference(bids_path: Any, extensions: list[str]) -> int:
    """Where a BIDS file's format stands in ``extensions`` (lower is preferred)."""
    extension = (bids_path.extension or "").lower()
    return next((place for place, ending in enumerate(extensions) if ending.lower() == extension), len(extensions))


_HEADER_FILES = re.compile(r"^\s*(?:DataFile|MarkerFile)\s*=\s*(.+)$", re.MULTILINE)
_OMITTED = re.compile(r"Omitted (\d+) annotation\(s\) that were outside data range")
_LIMITED = re.compile(r"Limited (\d+) annotation\(s\) that were expanding outside the\s+data range")


def _warned_count(messages: list[str], pattern: re.Pattern[str]) -> int:
    """The count in MNE's warning that matches ``pattern``, summed over warnings."""
    return sum(int(match.group(1)) for message in messages if (match := pattern.search(message)))


def read_labels_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a labels CSV (header with ``file`` and ``label``; ``subject``, ``session``, ``split`` optional).

    Parameters
    ----------
    path : Path
        The CSV file (UTF-8, a byte-order mark allowed, or Latin-1: :func:`~biofound_cli.corpora.base.text_encoding`;
        blank lines skipped), as ``preprocess.options.labels_csv`` names it.

    Raises
    ------
    UsageError
        If the file is missing or unreadable, lacks a required column, or has an empty cell or unknown split.
    """
    try:
        with open(path, newline="", encoding=text_encoding(path)) as handle:
            reader = csv.reader(handle)
            # Blank lines (spaces or empty cells only, as a spreadsheet exports an emptied row) are
            # skipped, before the header too; the reader counts lines, so each row's number is the
            # one an editor shows.
            rows = (row for row in reader if any(cell.strip() for cell in row))
            columns = [name.strip() for name in next(rows, [])]
            numbered = [(reader.line_num, {key: value.strip() for key, value in zip(columns, row, strict=False)}) for row in rows]
    except UnicodeDecodeError as error:
        raise UsageError(f"{undecodable_text(path, error)}; save the labels CSV as UTF-8") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read the labels CSV ({error.strerror}); check preprocess.options.labels_csv") from None
    missing = [name for name in ("file", "label") if name not in columns]
    if missing:
        raise UsageError(
            f"{path}: missing {plural(len(missing), 'column')} {', '.join(missing)}; the header must name file and label"
        )
    for line_number, row in numbered:
        if not row.get("file") or not row.get("label"):
            raise UsageError(f"{path}: line {line_number}: empty file or label; fill in both or delete the line")
        if row.get("split") and row["split"] not in _SPLITS:
            raise UsageError(f"{path}: line {line_number}: split {row['split']!r} is not one of {', '.join(_SPLITS)}")
    return [row for _, row in numbered]


def _strip_ending(name: str, extensions: list[str]) -> str:
    ending = file_ending(name, extensions)
    return name[: -len(ending)] if ending else name


def _subject_of(relative: str, key: str, pattern: re.Pattern[str] | None) -> tuple[str, str]:
    """(subject, session) of a file from the pattern, or its top folder, or its name."""
    if pattern is not None:
        match = pattern.search(relative)
        if match is None:
            raise UsageError(
                f"preprocess.options.subject_pattern {pattern.pattern!r} does not match {relative}; adjust the pattern"
            )
        groups = match.groupdict()
        return groups["subject"], groups.get("session") or ""
    return key.split("/")[0], ""
