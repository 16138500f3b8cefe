"""UCI "EMG data for gestures" (UCI repository #481): 36 subjects, one Myo armband (8 channels).

Layout: ``EMG_data_for_gestures-master/<01..36>/<n>_raw_data_<time>_<date>.txt``; every file
has a header row, then tab-separated columns ``time channel1 .. channel8 class``.

Sampling rate: the published TinyMyo preprocessing treats every row as one sample at 200 Hz,
and so does this reader by default (``sfreq``); the ``time`` column (milliseconds) is not used.

Labels: the class column splits each file into runs of constant class; each run is one
:class:`Segment` labelled ``class − 1``. Class 0 (unmarked data between gestures) is dropped.
Class 7 (extended palm) was performed by only a few subjects; upstream keeps it and gets
7 labels against a 6-class model configuration, so here it is dropped by default
(``keep_class_7 = true`` keeps it as label 6).

Splits: by subject, as published: subjects 1–24 train, 25–30 val, 31–36 test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from biofound_cli.corpora.base import (
    EMG_DOWNSTREAM_DEFAULTS,
    Corpus,
    Modality,
    Recording,
    RecordingRef,
    Segment,
    Split,
    text_encoding,
)
from biofound_cli.corpora.label_runs import constant_runs
from biofound_cli.corpora.table_files import load_numbers, text_table_error
from biofound_cli.errors import DataError, first_line
from biofound_cli.recipes.base import Section

UCI_CHANNELS = tuple(f"EMG{index}" for index in range(1, 9))
GESTURE_NAMES = (
    "hand at rest",
    "hand clenched in a fist",
    "wrist flexion",
    "wrist extension",
    "radial deviation",
    "ulnar deviation",
    "extended palm",
)


def subject_split(subject: int) -> Split:
    """The published subject-disjoint split: 1–24 train, 25–30 val, 31–36 test.

    Parameters
    ----------
    subject : int
        The subject's number, 1 to 36.
    """
    return "train" if subject <= 24 else "val" if subject <= 30 else "test"


class UciEmgOptions(Section):
    """``[preprocess.options]`` of the ``uci-emg`` corpus."""

    sfreq: float = Field(200.0, gt=0, description="Sampling rate assigned to the rows, in Hz (published setting: 200).")
    keep_class_7: bool = Field(False, description="Keep class 7 (extended palm, only some subjects) as label 6.")


class UciEmgCorpus(Corpus):
    """UCI EMG ``.txt`` files, one recording per file, one segment per gesture run."""

    name: ClassVar[str] = "uci-emg"
    modality: ClassVar[Modality] = "emg"
    own_channels: ClassVar[tuple[str, ...]] = UCI_CHANNELS
    task: str = "mcc"
    label_names: tuple[str, ...] = GESTURE_NAMES[:6]
    # TinyMyo's best UCI setting: 5 s windows (1000 samples) every 1.25 s (250 samples).
    defaults: ClassVar[dict[str, Any]] = {
        **EMG_DOWNSTREAM_DEFAULTS,
        "sfreq": 200.0,
        "window_seconds": 5.0,
        "stride_seconds": 1.25,
    }
    Options: ClassVar[type[Section]] = UciEmgOptions

    def __init__(self, options: UciEmgOptions | None = None) -> None:
        super().__init__(options or UciEmgOptions())
        if self.options_as(UciEmgOptions).keep_class_7:
            self.label_names = GESTURE_NAMES

    def recording_of(self, path: Path, root: Path) -> RecordingRef | None:
        folder = path.parent.name
        if path.suffix.lower() != ".txt" or not (folder.isdigit() and 1 <= int(folder) <= 36):
            return None
        subject = int(folder)
        return RecordingRef(
            path=path, recording_id=f"{subject:02d}_{path.stem}", subject=f"{subject:02d}", split=subject_split(subject)
        )

    def read(self, ref: RecordingRef) -> Recording:
        options = self.options_as(UciEmgOptions)
        try:
            table = load_numbers(ref.path, skiprows=1, encoding=text_encoding(ref.path))
        except OSError as error:
            raise DataError(f"{ref.path}: cannot be read ({first_line(error)})") from None
        except ValueError:
            raise text_table_error(ref.path, None, skip=1, width=len(UCI_CHANNELS) + 2) from None
        if table.size == 0:
            raise DataError(f"{ref.path}: the file holds no samples after its header row")
        if table.shape[1] != len(UCI_CHANNELS) + 2:
            raise DataError(
                f"{ref.path}: {table.shape[1]} columns, expected {len(UCI_CHANNELS) + 2} (time, channel1..channel8, class)"
            )
        classes = table[:, -1].astype(np.int64)
        highest = 7 if options.keep_class_7 else 6
        unknown = sorted(set(np.unique(classes).tolist()) - set(range(8)))
        if unknown:
            raise DataError(f"{ref.path}: unknown class value(s) {unknown}; UCI EMG classes are 0..7")
        segments = [
            Segment(start=start / options.sfreq, stop=stop / options.sfreq, label=int(classes[start]) - 1)
            for start, stop in constant_runs(classes)
            if 1 <= classes[start] <= highest
        ]
        return Recording(
            data=np.ascontiguousarray(table[:, 1:-1].T), sfreq=options.sfreq, ch_names=list(UCI_CHANNELS), segments=segments
        )
