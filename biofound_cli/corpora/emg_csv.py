"""A folder of EMG recordings stored as CSV files, one gesture (or rest) recording per file.

The file name says what each file holds: a regular expression with named groups ``class``,
``repetition`` and ``subject`` is matched against each file's path relative to the root
(``/``-separated). The default pattern fits the bundled Myo sample
(``R_<repetition>_C_<class>_EMG.csv``: 8 channels at 200 Hz, 3 s per file, 5 classes,
4 repetitions, one subject). A file's rows are samples and its columns are channels.

Labels: the ``class`` group gives one label for the whole file. Integer class values are used
as they are; class names are mapped through ``label_names`` (or, without it, numbered in sorted
order). Without a ``class`` group the recordings are unlabelled (pretraining data).

Splits: ``split_by_repetition`` maps each split to the repetitions it holds, e.g.
``{train = [0, 1], val = [2], test = [3]}``; files of other repetitions get no official split.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from biofound_cli.corpora.base import Corpus, EMG_DOWNSTREAM_DEFAULTS, Recording, RecordingRef, Split
from biofound_cli.errors import DataError, UsageError
from biofound_cli.recipes.base import Section

MYO_PATTERN = r"R_(?P<repetition>\d+)_C_(?P<class>\d+)_EMG\.csv"


class EmgCsvOptions(Section):
    """``[preprocess.options]`` of the ``emg-csv`` corpus."""

    pattern: str = Field(
        MYO_PATTERN,
        description="Regex matched against each file's path relative to the root; named groups class, repetition, subject.",
    )
    sfreq: float = Field(200.0, gt=0, description="Sampling rate of the files, in Hz.")
    channel_names: list[str] | None = Field(None, description="Names of the columns; default EMG1..EMGn.")
    delimiter: str = Field(",", description="Column separator.")
    has_header: bool = Field(False, description="Whether the first line of every file is a header row.")
    split_by_repetition: dict[Split, list[int]] | None = Field(
        None, description="Official split of each repetition, e.g. {train = [0, 1], val = [2], test = [3]}."
    )
    label_names: list[str] | None = Field(None, description="Name of each class label, in label order.")
    subject: str = Field("subject", description="Subject id used when the pattern has no subject group.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a valid regular expression ({error})") from None
        return value


class EmgCsvCorpus(Corpus):
    """EMG gesture recordings, one CSV file each, described by a file-name pattern."""

    name: ClassVar[str] = "emg-csv"
    modality: ClassVar[str] = "emg"
    task: ClassVar[str] = "mcc"
    # The Myo files are 3 s long: 1 s windows every 0.25 s give 9 windows per file, the same
    # window length as the TinyMyo DB5 setting (200 samples at 200 Hz, stride 50).
    defaults: ClassVar[dict[str, Any]] = {
        **EMG_DOWNSTREAM_DEFAULTS,
        "sfreq": 200.0,
        "window_seconds": 1.0,
        "stride_seconds": 0.25,
    }
    Options: ClassVar[type[Section]] = EmgCsvOptions

    def __init__(self, options: EmgCsvOptions | None = None) -> None:
        super().__init__(options or EmgCsvOptions())
        self.label_names = tuple(self.options.label_names or ())

    def discover(self, root: Path) -> list[RecordingRef]:
        options: EmgCsvOptions = self.options
        pattern = re.compile(options.pattern)
        if options.split_by_repetition and "repetition" not in pattern.groupindex:
            raise UsageError(
                "preprocess.options.split_by_repetition needs a 'repetition' group in preprocess.options.pattern; "
                "add (?P<repetition>...) to the pattern or remove split_by_repetition"
            )
        repetition_split = _repetition_splits(options.split_by_repetition)
        matches = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            match = pattern.fullmatch(path.relative_to(root).as_posix())
            if match is not None:
                matches.append((path, match.groupdict()))
        class_index = self._class_index([groups.get("class") for _, groups in matches])
        refs = []
        for path, groups in matches:
            relative = path.relative_to(root).with_suffix("").as_posix()
            repetition = groups.get("repetition")
            split = repetition_split.get(int(repetition)) if repetition is not None and repetition.isdigit() else None
            label = class_index[groups["class"]] if groups.get("class") is not None else None
            refs.append(
                RecordingRef(
                    path=path,
                    recording_id=relative.replace("/", "-"),
                    subject=groups.get("subject") or options.subject,
                    session=repetition or "",
                    split=split,
                    # The label names travel with the ref: worker processes build a fresh corpus.
                    extra={"label": label, "repetition": repetition, "label_names": list(self.label_names)},
                )
            )
        return sorted(refs, key=lambda ref: ref.recording_id)

    def _class_index(self, classes: list[str | None]) -> dict[str, int]:
        """Label of every class string: integers as they are, names by ``label_names`` or sorted order."""
        values = sorted({value for value in classes if value is not None})
        if all(value.isdigit() for value in values):
            return {value: int(value) for value in values}
        if self.label_names:
            unknown = [value for value in values if value not in self.label_names]
            if unknown:
                raise UsageError(
                    f"class name(s) {', '.join(unknown)} in the file names are not in preprocess.options.label_names; "
                    "add them to label_names"
                )
            return {value: self.label_names.index(value) for value in values}
        self.label_names = tuple(values)
        return {value: index for index, value in enumerate(values)}

    def read(self, ref: RecordingRef) -> Recording:
        options: EmgCsvOptions = self.options
        try:
            table = np.loadtxt(
                ref.path, delimiter=options.delimiter, skiprows=1 if options.has_header else 0, ndmin=2, dtype=np.float64
            )
        except (ValueError, OSError) as error:
            raise DataError(f"{ref.path}: not a numeric {options.delimiter!r}-separated table ({_first_line(error)})") from None
        if table.size == 0:
            raise DataError(f"{ref.path}: the file holds no samples")
        n_channels = table.shape[1]
        ch_names = options.channel_names or [f"EMG{index + 1}" for index in range(n_channels)]
        if len(ch_names) != n_channels:
            raise DataError(
                f"{ref.path}: the file has {n_channels} columns but preprocess.options.channel_names names "
                f"{len(ch_names)}; give one name per column"
            )
        meta = {"repetition": ref.extra.get("repetition")}
        label_names = ref.extra.get("label_names") or list(self.label_names)
        if label_names:
            meta["label_names"] = label_names
        return Recording(
            data=np.ascontiguousarray(table.T), sfreq=options.sfreq, ch_names=list(ch_names), label=ref.extra.get("label"), meta=meta
        )


def _repetition_splits(split_by_repetition: dict[Split, list[int]] | None) -> dict[int, Split]:
    """Invert ``{split: [repetitions]}``; a repetition listed under two splits is a usage error."""
    result: dict[int, Split] = {}
    for split, repetitions in (split_by_repetition or {}).items():
        for repetition in repetitions:
            if repetition in result:
                raise UsageError(
                    f"preprocess.options.split_by_repetition lists repetition {repetition} under both "
                    f"{result[repetition]} and {split}; give each repetition one split"
                )
            result[repetition] = split
    return result


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
