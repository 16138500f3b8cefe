"""Trial files in the sktime/aeon ``.ts`` format (the UEA multivariate time-series archive).

A ``.ts`` file (optionally gzip-compressed, ``.ts.gz``) starts with ``#`` comments and ``@``
header lines (``@dimensions 6``, ``@classLabel true negativity positivity``, ...), then a
``@data`` line and one trial per line: the channels separated by ``:``, the samples of a channel
by ``,``, and the class label last.

Design: each file is one :class:`Recording` whose signal is its trials placed one after
another in time, separated by ``gap_seconds`` of zeros; each trial is one :class:`Segment`.
The pipeline cuts windows inside segments only, so no window mixes two trials, and the gap
keeps filter edges of one trial out of the next. The class label is the trial's position in
the ``@classLabel`` list.

Which file is which split is a file-name pattern (``split_patterns``); for the BCI Competition
II SCP1 data set the ``*_TEST.ts*`` file is the official test set. The file-level split of an
archive is official: when some file matches a pattern, the files that match none are the
archive's training files (UEA: ``X_TRAIN.ts`` beside ``X_TEST.ts``) and are marked ``train``, so
``pack`` keeps them out of test even though the archive holds one subject. Within the training
files (and within files of an archive without any official split), ``val_fraction`` of the trials
of each class (the last ones of that class, in file order) can be set aside as validation, for
single-subject data sets that cannot be split by subject; taking them per class keeps both
classes in val when a file lists its trials sorted by class (SCP1 does).
"""

from __future__ import annotations

import gzip
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from biofound_cli.corpora.base import (
    CHANNEL_NAMES_OPTION,
    CHANNEL_POSITIONS_HELP,
    ChannelPositions,
    Corpus,
    Modality,
    Recording,
    RecordingRef,
    Segment,
    Split,
    channel_positions_meta,
    file_ending,
    files_under,
    name_matches,
    place_trials,
)
from biofound_cli.errors import DataError, UsageError
from biofound_cli.recipes.base import Section

logger = logging.getLogger(__name__)

TS_ENDINGS = (".ts", ".ts.gz")
"""Names of ``.ts`` files, in any letter case; the split patterns are matched the same way."""


class TsOptions(Section):
    """``[preprocess.options]`` of the ``ts`` corpus."""

    sfreq: float | None = Field(None, gt=0, description="Sampling rate of the trials, in Hz (SCP1: 256).")
    channel_names: list[str] | None = Field(None, description="Name of each dimension; default CH1..CHn.")
    channel_positions: ChannelPositions = Field(None, description=CHANNEL_POSITIONS_HELP)
    split_patterns: dict[Split, str] = Field(
        {"test": "*_TEST.ts*"},
        description="Official split of every file whose name matches the glob pattern (in any letter case); "
        "when one matches, the files matching none are train.",
    )
    val_fraction: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Fraction of the trials of each class of training (or unsplit) files set aside as val (the last ones).",
    )
    gap_seconds: float = Field(1.0, ge=0.0, description="Zeros placed between consecutive trials.")
    subject: str = Field("subject", description="Subject id of every file (the UEA files hold one subject).")


class TsCorpus(Corpus):
    """Trials from ``.ts`` / ``.ts.gz`` files, one recording per file and one segment per trial."""

    name: ClassVar[str] = "ts"
    modality: ClassVar[Modality] = "eeg"
    task: str = "mcc"
    # The files' names give each file its split (an archive's X_TEST.ts: test, X_TRAIN.ts: train); val is carved from trials.
    official_split_options: ClassVar[dict[str, str]] = {
        "train": "split_patterns",
        "val": "val_fraction",
        "test": "split_patterns",
    }
    # The archive's trials are already cut, band-limited and at their final rate, and a long FIR
    # on 3.5 s trials would only add edge effects: no filter and no resampling by default. The
    # window length depends on the trial length, so a recipe sets it (recipes/preprocess_scp1.toml).
    defaults: ClassVar[dict[str, Any]] = {
        "l_freq": None,
        "h_freq": None,
        "notch_hz": None,
        "sfreq": None,
        "window_seconds": None,
        "stride_seconds": None,
        "montage": None,
        "channels": None,
        # UEA files are in their physical units already (SCP1: µV), not volts.
        "units": "file",
    }
    Options: ClassVar[type[Section]] = TsOptions

    def discover(self, root: Path) -> list[RecordingRef]:
        options = self.options_as(TsOptions)
        sfreq = _sampling_rate(options)  # fail before any file is read
        paths = [path for path in files_under(root) if file_ending(path.name, TS_ENDINGS)]
        for path in paths:
            _warn_if_the_comments_state_another_rate(path, sfreq)
        matched = {path: self._file_split(path) for path in paths}
        # An archive with an official split (X_TEST.ts) holds its training trials in the files that
        # match no pattern (X_TRAIN.ts): mark them train, or pack would put the one subject's
        # unmarked windows with its test windows and leave train empty.
        rest: Split | None = "train" if any(split is not None for split in matched.values()) else None
        refs = []
        for path, split in matched.items():
            # The path below the root without its ending, folders joined by '-' (X_TEST, subject1-X_TEST).
            relative = path.relative_to(root).as_posix()
            recording_id = relative[: -len(file_ending(relative, TS_ENDINGS) or "")].replace("/", "-")
            refs.append(RecordingRef(path=path, recording_id=recording_id, subject=options.subject, split=split or rest))
        return sorted(refs, key=lambda ref: ref.recording_id)

    def _file_split(self, path: Path) -> Split | None:
        """The split whose ``split_patterns`` glob matches the file name in any letter case, or ``None``."""
        patterns = self.options_as(TsOptions).split_patterns
        splits = [split for split, pattern in patterns.items() if name_matches(path.name, pattern)]
        if len(splits) > 1:
            raise UsageError(
                f"{path.name} matches the patterns of splits {', '.join(splits)} in preprocess.options.split_patterns; "
                "make the patterns exclusive"
            )
        return splits[0] if splits else None

    def read(self, ref: RecordingRef) -> Recording:
        options = self.options_as(TsOptions)
        class_labels, trials, labels = read_ts(ref.path)
        n_channels = trials[0].shape[0]
        ch_names = options.channel_names or [f"CH{index + 1}" for index in range(n_channels)]
        if len(ch_names) != n_channels:
            raise DataError(
                f"{ref.path}: the trials have {n_channels} dimensions but {CHANNEL_NAMES_OPTION} names "
                f"{len(ch_names)}; give one name per dimension"
            )
        sfreq = _sampling_rate(options)
        # val is carved out of training files (and files of an archive without official splits).
        carve = ref.split in (None, "train")
        val_trials = _last_of_each_class(labels, options.val_fraction) if carve else set()
        # The other trials take the file's split; with val carved out of an unsplit file, they are train.
        rest: Split | None = ref.split or ("train" if options.val_fraction > 0 else None)
        data, spans = place_trials(trials, options.gap_seconds, sfreq)
        segments = [
            Segment(start=start, stop=stop, label=label, split="val" if index in val_trials else rest)
            for index, ((start, stop), label) in enumerate(zip(spans, labels, strict=True))
        ]
        meta: dict[str, Any] = {
            "label_names": class_labels,
            "n_trials": len(trials),
            **channel_positions_meta(self.channel_positions),
        }
        # Without channel_names the dimensions are numbered: the advice for a channel not found names the option.
        names_option = None if options.channel_names else CHANNEL_NAMES_OPTION
        return Recording(data=data, sfreq=sfreq, ch_names=list(ch_names), segments=segments, meta=meta, names_option=names_option)


@dataclass
class _Header:
    """What a ``.ts`` header says before ``@data``: the class names and, when given, the trials' shape."""

    class_labels: list[str] | None = None
    dimensions: int | None = None
    series_length: int | None = None
    equal_length: bool | None = None


def read_ts(path: Path) -> tuple[list[str], list[np.ndarray], list[int]]:
    """Parse one ``.ts`` or ``.ts.gz`` file.

    Parameters
    ----------
    path : Path
        The file; a name ending in ``.gz`` is read through gzip.

    Returns
    -------
    class_labels : list of str
        The ``@classLabel`` names; a trial's label is its class's index in this list.
    trials : list of ndarray, shape (n_channels, n_samples)
    labels : list of int

    Raises
    ------
    DataError
        If the file cannot be read, has no ``@classLabel`` or ``@data`` header, or a trial line is
        malformed or disagrees with the header's ``@dimensions`` or (``@equalLength true``)
        ``@seriesLength``.
    """
    opener = gzip.open if file_ending(path.name, (".gz",)) else open
    header = _Header()
    trials: list[np.ndarray] = []
    labels: list[int] = []
    in_data = False
    try:
        # utf-8-sig: Notepad saves a byte-order mark, which hid a first '@classLabel' line.
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
            for line_number, raw_line in enumerate(handle, start=1):
                line = raw_line.strip()
                if not line or line.startswith("#"):
                    continue
                if not in_data:
                    in_data = _read_header_line(header, line.split(), path, line_number)
                    continue
                assert header.class_labels is not None  # '@data' is accepted only after '@classLabel'
                trial, label = _parse_trial(line, header.class_labels, path, line_number)
                _check_trial_shape(trial, header, trials[0] if trials else None, f"{path}: line {line_number}")
                trials.append(trial)
                labels.append(label)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: cannot be read ({error})") from None
    if not in_data or header.class_labels is None:  # '@data' is accepted only after '@classLabel'
        raise DataError(f"{path}: no '@data' line; not a .ts file")
    if not trials:
        raise DataError(f"{path}: the file holds no trials")
    return header.class_labels, trials, labels


def _read_header_line(header: _Header, words: list[str], path: Path, line_number: int) -> bool:
    """Take one ``@`` header line into ``header``; ``True`` at ``@data``, where the trials start."""
    keyword, where = words[0].lower(), f"{path}: line {line_number}"
    if keyword == "@classlabel":
        if len(words) < 3 or words[1].lower() != "true":
            raise DataError(f"{where}: '@classLabel' must be 'true' followed by the class names")
        header.class_labels = words[2:]
    elif keyword in ("@dimensions", "@serieslength"):
        if len(words) != 2 or not words[1].isdigit() or int(words[1]) == 0:
            raise DataError(f"{where}: '{words[0]}' must be followed by one positive whole number, got {' '.join(words[1:])!r}")
        if keyword == "@dimensions":
            header.dimensions = int(words[1])
        else:
            header.series_length = int(words[1])
    elif keyword == "@equallength":
        header.equal_length = len(words) > 1 and words[1].lower() == "true"
    elif keyword == "@data":
        if header.class_labels is None:
            raise DataError(f"{path}: no '@classLabel true ...' header before '@data'; the trials have no labels")
        return True
    return False


def _check_trial_shape(trial: np.ndarray, header: _Header, first: np.ndarray | None, where: str) -> None:
    """Refuse a trial whose channels or samples disagree with the header (or, without one, the first trial).

    A file whose rows disagree with its own header is damaged or mislabelled: read silently, a short
    trial would give fewer windows and a long one windows the header says do not exist.
    """
    if header.dimensions is not None and trial.shape[0] != header.dimensions:
        raise DataError(f"{where}: trial has {trial.shape[0]} dimensions, the header's '@dimensions' says {header.dimensions}")
    if first is not None and trial.shape[0] != first.shape[0]:
        raise DataError(f"{where}: trial has {trial.shape[0]} dimensions, the first had {first.shape[0]}")
    if header.equal_length is False:
        return
    if header.series_length is not None and trial.shape[1] != header.series_length:
        raise DataError(
            f"{where}: trial has {trial.shape[1]} samples per channel, the header's '@seriesLength' says "
            f"{header.series_length}; fix the file or its header"
        )
    if header.equal_length and first is not None and trial.shape[1] != first.shape[1]:
        raise DataError(
            f"{where}: trial has {trial.shape[1]} samples per channel, the first had {first.shape[1]}, "
            "but the header says '@equalLength true'"
        )


def _sampling_rate(options: TsOptions) -> float:
    """The trials' sampling rate, which a ``.ts`` file does not hold: the recipe must give it."""
    if options.sfreq is None:
        raise UsageError("the ts corpus needs the sampling rate: set preprocess.options.sfreq (e.g. 256 for SCP1)")
    return float(options.sfreq)


# "#Sampling rate: 256 S/s" (SCP1), "# Sampling frequency = 128 Hz": a comment line that starts by stating the rate.
_STATED_RATE = re.compile(
    r"^#\s*sampling\s+(?:rate|frequency)\s*[:=]?\s*(\d+(?:\.\d+)?)\s*(?:hz|s/s|samples?\s*(?:/|per)\s*s)", re.I
)


def stated_sampling_rate(path: Path) -> float | None:
    """The rate a ``.ts`` file's header comments state (``#Sampling rate: 256 S/s``), if exactly one is.

    The ``.ts`` format has no field for the rate (its header gives ``@seriesLength``, samples per
    trial, not seconds), so the recipe's ``preprocess.options.sfreq`` is taken as given; many UEA
    files describe the data in comments, and a comment line starting with the rate is read here to
    catch a recipe's wrong rate. Only the header (up to ``@data``) is read.

    Parameters
    ----------
    path : Path
        The file; a name ending in ``.gz`` is read through gzip.
    """
    opener = gzip.open if file_ending(path.name, (".gz",)) else open
    rates = set()
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
            for line in handle:
                if line.lstrip().lower().startswith("@data"):
                    break
                found = _STATED_RATE.match(line.strip())
                if found:
                    rates.add(float(found.group(1)))
    except (OSError, EOFError, gzip.BadGzipFile):
        return None  # read() names the file's fault
    return rates.pop() if len(rates) == 1 else None


def _warn_if_the_comments_state_another_rate(path: Path, sfreq: float) -> None:
    """One warning when the file's comments state a rate other than the recipe's (a warning: comments are free text)."""
    stated = stated_sampling_rate(path)
    if stated is not None and abs(stated - sfreq) > 1e-6 * stated:
        logger.warning(
            f"{path}: its header comments state a sampling rate of {stated:g} Hz, but preprocess.options.sfreq is "
            f"{sfreq:g}; the .ts format holds no rate, so windows are cut and timed at {sfreq:g} Hz: set "
            "preprocess.options.sfreq to the trials' real rate"
        )


def _parse_trial(line: str, class_labels: list[str], path: Path, line_number: int) -> tuple[np.ndarray, int]:
    """One data line: ``c1s1,c1s2,...:c2s1,...:label`` → (channels × samples, label index)."""
    *channels, label_text = line.split(":")
    label_text = label_text.strip()
    if not channels or label_text not in class_labels:
        raise DataError(
            f"{path}: line {line_number}: the last field {label_text[:30]!r} is not one of the classes {', '.join(class_labels)}"
        )
    try:
        rows = [np.array(channel.split(","), dtype=np.float64) for channel in channels]
    except ValueError:
        raise DataError(f"{path}: line {line_number}: a sample is not a number (missing values are not supported)") from None
    if len({row.size for row in rows}) != 1:
        raise DataError(f"{path}: line {line_number}: the channels of this trial have different lengths")
    return np.stack(rows), class_labels.index(label_text)


def _last_of_each_class(labels: list[int], fraction: float) -> set[int]:
    """Indices of the last ``fraction`` of the trials of every class, in file order."""
    chosen: set[int] = set()
    for label in sorted(set(labels)):
        indices = [index for index, value in enumerate(labels) if value == label]
        n_val = int(round(fraction * len(indices)))
        chosen.update(indices[len(indices) - n_val :])
    return chosen
