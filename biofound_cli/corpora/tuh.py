"""What the TUH EEG corpora (TUAB, TUAR, TUSL, TUEG) share: file names, EDF reading, annotations.

* File names are ``<subject>_s<NNN>_t<NNN>.edf`` (subject, session, token).
* Annotations are CSV files (``#`` comment lines, then the header
  ``channel,start_time,stop_time,label,confidence``, one event per row, times in seconds) or,
  in older releases, ``.tse`` files (``version = tse_v1.0.0`` then ``start stop label
  probability`` lines, shared by every channel).
* The published preprocessing of all four (FEMBA/LUNA): 0.1–75 Hz FIR band-pass and a 60 Hz
  notch at the native rate, resampling to 256 Hz, the TCP bipolar montage in µV and 5 s
  non-overlapping windows: :data:`TUH_DEFAULTS`.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

from biofound_cli.corpora.base import Corpus, Modality, Recording, RecordingRef, Segment, UnusableRecording, files_under
from biofound_cli.corpora.edf_header import read_raw_as_its_header_says, truncation_meta
from biofound_cli.corpora.edf_records import header_rate, read_edf_records, signals_to_exclude
from biofound_cli.errors import reading_as
from biofound_cli.signals.windowing import clip_segments

TUH_DEFAULTS: dict[str, Any] = {
    "l_freq": 0.1,
    "h_freq": 75.0,
    "notch_hz": 60.0,
    "sfreq": 256.0,
    "window_seconds": 5.0,
    "stride_seconds": 5.0,
    "montage": "tcp",
    "units": "uV",
    "filter_method": "fir",
}
"""The published TUH preprocessing (FEMBA/LUNA ``process_raw_eeg.py``)."""

LABEL_SFREQ = 256.0
"""Rate of the TUAR and TUSL label rasters (the published labels were rasterised at the output rate, 256 Hz)."""

_NAME = re.compile(r"^(?P<subject>[A-Za-z0-9]+)_s(?P<session>\d+)_t(?P<token>\d+)$")
CSV_HEADER = ("channel", "start_time", "stop_time", "label", "confidence")


@dataclass(frozen=True)
class TUHName:
    """The parts of a TUH file name."""

    subject: str
    session: str
    token: str


def parse_tuh_name(stem: str) -> TUHName:
    """Split ``aaaaamye_s001_t000`` into subject ``aaaaamye``, session ``s001``, token ``t000``.

    A name that does not follow the pattern keeps everything before its first ``_`` as the
    subject, so a renamed file still lands with its patient.

    Parameters
    ----------
    stem : str
        The file name without its extension.
    """
    match = _NAME.match(stem)
    if match:
        return TUHName(match["subject"], f"s{match['session']}", f"t{match['token']}")
    return TUHName(stem.split("_", 1)[0], "", "")


@dataclass(frozen=True)
class Event:
    """One annotated span; ``channel`` is a TCP name like ``FP1-F7`` or ``""`` for all channels."""

    channel: str
    start: float
    stop: float
    label: str
    confidence: float = 1.0


def read_csv_annotations(path: Path) -> list[Event]:
    """Read a TUH ``.csv`` annotation file.

    Parameters
    ----------
    path : Path
        The ``.csv`` file: ``channel,start_time,stop_time,label,confidence`` after
        ``#`` comment lines.

    Raises
    ------
    UnusableRecording
        (reason ``bad_annotations``) when the header is missing or a row does not parse; the
        message names the file and line.
    """
    lines = _annotation_lines(path)
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise UnusableRecording(f"{path}: annotation file holds no header and no events", "bad_annotations")
    header_number, header_line = numbered[0]
    header = tuple(cell.strip().lower() for cell in next(csv.reader([header_line])))
    if header[: len(CSV_HEADER)] != CSV_HEADER:
        raise UnusableRecording(
            f"{path}: line {header_number}: expected the header {','.join(CSV_HEADER)}, found {header_line.strip()!r}",
            "bad_annotations",
        )
    events = []
    for number, line in numbered[1:]:
        cells = [cell.strip() for cell in next(csv.reader([line]))]
        try:
            channel, start, stop, label, confidence = cells[:5]
            event = Event(channel.upper(), float(start), float(stop), label.lower(), float(confidence))
        except ValueError:
            raise UnusableRecording(
                f"{path}: line {number}: expected channel,start_time,stop_time,label,confidence, found {line.strip()!r}",
                "bad_annotations",
            ) from None
        if event.stop < event.start:
            raise UnusableRecording(f"{path}: line {number}: stop_time is before start_time", "bad_annotations")
        events.append(event)
    return events


def read_tse_annotations(path: Path) -> list[Event]:
    """Read a TUH ``.tse`` / ``.tse_agg`` file: ``start stop label probability`` lines for all channels.

    Parameters
    ----------
    path : Path
        The annotation file; its events carry no channel (``""``).
    """
    events = []
    for number, line in enumerate(_annotation_lines(path), 1):
        text = line.strip()
        if not text or text.startswith("#") or text.lower().startswith("version"):
            continue
        parts = text.split()
        try:
            start, stop, label = float(parts[0]), float(parts[1]), parts[2].lower()
            confidence = float(parts[3]) if len(parts) > 3 else 1.0
        except (ValueError, IndexError):
            raise UnusableRecording(
                f"{path}: line {number}: expected 'start stop label probability', found {text!r}", "bad_annotations"
            ) from None
        if stop < start:
            raise UnusableRecording(f"{path}: line {number}: stop is before start", "bad_annotations")
        events.append(Event("", start, stop, label, confidence))
    return events


def _annotation_lines(path: Path) -> list[str]:
    try:
        # utf-8-sig: a file saved by a Windows editor starts with a byte-order mark, which would
        # otherwise hide its first comment or header line.
        return Path(path).read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as error:
        raise UnusableRecording(f"{path}: annotation file cannot be read ({error.strerror})", "bad_annotations") from None


def annotation_beside(edf: Path, suffixes: Sequence[str]) -> Path | None:
    """The annotation file beside ``edf``: its stem with the first of ``suffixes`` found, in any letter case.

    EDF files are found whatever the case of ``.edf``; a tree copied through a case-changing file
    system (``X.EDF`` beside ``X.CSV``) keeps its annotations too.

    Parameters
    ----------
    edf : Path
        The recording.
    suffixes : sequence of str
        Annotation suffixes in order of preference (``.csv``, ``.tse``, ...).
    """
    exact = next((edf.with_suffix(suffix) for suffix in suffixes if edf.with_suffix(suffix).is_file()), None)
    if exact is not None:
        return exact
    try:
        siblings = {path.name.casefold(): path for path in edf.parent.iterdir() if path.is_file()}
    except OSError:
        return None
    return next((siblings[key] for suffix in suffixes if (key := (edf.stem + suffix).casefold()) in siblings), None)


READ_CHUNK_SECONDS = 60.0
"""The EDF is decoded this many seconds at a time, so float64 exists only for one chunk."""


def read_edf(path: Path, channels: Sequence[str] | None = None) -> tuple[Any, float, list[str]]:
    """Load an EDF file in volts as float32: ``(data, sfreq, ch_names)``.

    Plain EDF files (TUH's) are read straight from their records
    (:func:`~biofound_cli.corpora.edf_records.read_edf_records`, MNE's values bit for bit, without
    importing MNE); any other file through MNE.

    Parameters
    ----------
    path : Path
        The EDF file.
    channels : sequence of str | None
        Read only these channels (any spelling, looked up by normalised name), in this order;
        ``None`` reads every channel. float32 holds the 16-bit EDF samples without loss that
        matters (relative 6e-8) at half the memory of MNE's float64.

    Raises
    ------
    UnusableRecording
        (reason ``unreadable``) when MNE cannot read the file; (reason ``missing_channels``)
        when a requested channel is absent, naming every channel the file has; (reason
        ``mixed_rates``) when the channels read are stored at different rates (each is read
        at its own rate, never upsampled to the file's fastest).
    """
    direct = read_edf_records(path, channels)
    if direct is not None:
        return direct
    import numpy as np

    from biofound_cli.signals.channels import channel_rows

    # Left out before reading: MNE reads every signal at the rate of the fastest one it reads.
    exclude = signals_to_exclude(path, channels)
    with reading_as(path, "EDF file"):  # the file's fault; any other error is ours and stops the run
        # A BDF file named .edf is read as its header says (then preloaded), as every EDF reader does.
        raw = read_raw_as_its_header_says(path, preload=False, exclude=exclude, verbose="error")
    ch_names = list(raw.ch_names)
    picks = channel_rows(ch_names, channels, source=str(path))
    sfreq = float(raw.info["sfreq"])
    n_times = raw.n_times
    data = np.empty((len(picks), n_times), dtype=np.float32)
    step = max(int(READ_CHUNK_SECONDS * sfreq), 1)
    with reading_as(path, "EDF file"):  # a truncated or corrupt data section
        for start in range(0, n_times, step):
            stop = min(start + step, n_times)
            data[:, start:stop] = raw.get_data(picks=picks, start=start, stop=stop)
    return data, sfreq, [ch_names[pick] for pick in picks]


def event_overrun(events: Sequence[Event], duration: float, tolerance: float = 0.0) -> dict[str, int]:
    """How many events lie wholly outside ``[0, duration]`` seconds, and how many run past its edges.

    Label rasters clip events to the recording without a word; these counts go into the
    recording's meta (``events_outside``, ``events_clipped``, only when non-zero), so the chain
    warns and the shard keeps them.

    Parameters
    ----------
    events : sequence of Event
    duration : float
        Length of the recording in seconds.
    tolerance : float
        Overrun not counted (one sample: annotations often end exactly on the last sample).
    """
    _, outside, clipped = clip_segments([Segment(event.start, event.stop, 0) for event in events], duration, tolerance)
    counts = {"events_outside": outside, "events_clipped": clipped}
    return {key: count for key, count in counts.items() if count}


def discover_edfs(root: Path) -> list[Path]:
    """Every ``*.edf`` under ``root`` (any case).

    Parameters
    ----------
    root : Path
        The folder searched, recursively.
    """
    return [path for path in files_under(Path(root)) if path.suffix.lower() == ".edf"]


def recording_ids(paths: Sequence[Path], root: Path) -> list[str]:
    """File stems as recording ids; where two files share a stem, their relative paths (``/`` → ``__``).

    Parameters
    ----------
    paths : sequence of Path
        The recordings, each below ``root``.
    root : Path
        The corpus folder the relative paths start from.
    """
    stems = [path.stem for path in paths]
    clashes = {stem for stem in stems if stems.count(stem) > 1}
    return ["__".join(path.relative_to(root).with_suffix("").parts) if path.stem in clashes else path.stem for path in paths]


class TUHCorpus(Corpus):
    """Shared reading of TUH EDF files; subclasses add discovery and labels."""

    modality: ClassVar[Modality] = "eeg"
    defaults: ClassVar[dict[str, Any]] = TUH_DEFAULTS
    # No reader modules: plain EDF files are read without MNE, which a worker imports only for another file.
    reader_modules: ClassVar[tuple[str, ...]] = ()
    read_channels: tuple[str, ...] | None = None
    """The channels the signal chain will use, set by the pipeline: only these are read
    (TUH files carry 30+ channels, the TCP montage needs 21). ``None`` reads them all."""
    annotation_suffixes: ClassVar[tuple[str, ...]] = ()
    """The endings of the annotation file beside each EDF the labels come from, in order of preference
    (:func:`annotation_beside`); none for a corpus whose labels come from elsewhere (TUAB's folders)."""

    def make_refs(self, root: Path, paths: Sequence[Path]) -> list[RecordingRef]:
        """One :class:`RecordingRef` per path, named from the TUH file name.

        Parameters
        ----------
        root : Path
            The corpus folder, where clashing file stems are made unique from (see :func:`recording_ids`).
        paths : sequence of Path
            The EDF files found below ``root``.
        """
        names = [parse_tuh_name(path.stem) for path in paths]
        refs = [
            RecordingRef(path=path, recording_id=recording_id, subject=name.subject, session=name.session)
            for path, recording_id, name in zip(paths, recording_ids(paths, Path(root)), names, strict=True)
        ]
        return sorted(refs, key=lambda ref: ref.recording_id)

    def discover(self, root: Path) -> list[RecordingRef]:
        return self.make_refs(root, discover_edfs(root))

    def annotation(self, ref: RecordingRef) -> Path | None:
        """The annotation file the labels of ``ref`` are read from; ``None`` when there is none.

        Parameters
        ----------
        ref : RecordingRef
            The recording.
        """
        return annotation_beside(ref.path, self.annotation_suffixes) if self.annotation_suffixes else None

    def source_files(self, ref: RecordingRef, labels: bool = True) -> list[Path]:
        annotation = self.annotation(ref) if labels else None
        return [ref.path] if annotation is None else [ref.path, annotation]

    def channels_read(self, ref: RecordingRef) -> Sequence[str] | None:
        """The channels :meth:`read` reads of ``ref``: ``read_channels``, the chain's (``None``: every one).

        Parameters
        ----------
        ref : RecordingRef
            The recording (a corpus choosing its montage per recording reads that montage's electrodes).
        """
        return self.read_channels

    def header_rate(self, ref: RecordingRef) -> float | None:
        # The EDF rule (edf.py's too): the rate of the channels read, as their header gives it.
        return header_rate(ref.path, self.channels_read(ref))

    def read_signal(self, ref: RecordingRef) -> Recording:
        """The EDF signal of ``ref`` with no labels yet; a file cut short says so in its meta.

        ``preprocess`` reads a recording through :meth:`read`, which adds its labels to this; ``predict``
        through this alone, so both read the same channels (:meth:`channels_read`) and meta.

        Parameters
        ----------
        ref : RecordingRef
            The recording; only the channels of :meth:`channels_read` are read when it names some.

        Raises
        ------
        UnusableRecording
            (reason ``empty``) for a header without data; see also :func:`read_edf`.
        """
        truncation = truncation_meta(ref.path)
        data, sfreq, ch_names = read_edf(ref.path, self.channels_read(ref))
        return Recording(
            data=data, sfreq=sfreq, ch_names=ch_names, meta={"montage_folder": montage_folder(ref.path), **truncation}
        )


def montage_folder(path: Path) -> str:
    """The TUH montage folder (``01_tcp_ar``, ``03_tcp_ar_a``, ...) a file lies under; ``""`` for none.

    Parameters
    ----------
    path : Path
        The EDF file.
    """
    return next((part for part in path.parts if re.match(r"^0\d_tcp_", part)), "")
