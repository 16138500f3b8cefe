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

Splits: by subject, as published: subjects 1–24 train, 25–30 val, 31–36 test (:data:`SUBJECT_SPLITS`).
A numbered folder outside 01..36, or a folder not numbered (``extra/``), holds no subject of the data set:
its files (in the latter, those named as the data set names recordings, :data:`RECORDING_NAME`) are left
out (``not_a_subject``) with one warning naming the folder.
"""

from __future__ import annotations

import logging
import re
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
from biofound_cli.plural import counted, first_few, plural
from biofound_cli.recipes.base import Section

logger = logging.getLogger(__name__)

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


SUBJECT_SPLITS: dict[Split, range] = {"train": range(1, 25), "val": range(25, 31), "test": range(31, 37)}
"""The data set's 36 subjects (folders ``01``..``36``) and their published subject-disjoint split."""


RECORDING_NAME = re.compile(r"\d+_raw_data", re.IGNORECASE)
"""How the data set names a recording's file (``1_raw_data_13-12_22.03.16.txt``): in a folder of no subject, such a
file is left out as ``not_a_subject``; any other ``.txt`` there is no recording."""


def subject_split(subject: int) -> Split | None:
    """The published split of ``subject`` (1–24 train, 25–30 val, 31–36 test); ``None`` for a number of no subject.

    Parameters
    ----------
    subject : int
        The number of a subject folder.
    """
    return next((split for split, subjects in SUBJECT_SPLITS.items() if subject in subjects), None)


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

    @classmethod
    def official_split_source(cls, split: str) -> str | None:
        # No option moves a recording to another split: the published split is by subject, so its subjects give one.
        subjects = next((numbers for name, numbers in SUBJECT_SPLITS.items() if name == split), None)
        return f"the recordings of subjects {subjects[0]:02d}..{subjects[-1]:02d}" if subjects else None

    def discover(self, root: Path) -> list[RecordingRef]:
        refs = super().discover(root)
        # A folder 37 (a lab's own subject, a copy) was passed over as "not a uci-emg recording", without saying why.
        outside = [ref for ref in refs if ref.split is None]
        self.left_out = {"not_a_subject": outside}
        if outside:
            folders = sorted({ref.path.parent.relative_to(root).as_posix() for ref in outside})
            last = max(subjects.stop for subjects in SUBJECT_SPLITS.values()) - 1
            logger.warning(
                f"{root}: {counted(len(outside), '.txt file')} in {first_few(folders, 5)}, outside UCI EMG's subject folders "
                f"01..{last:02d}: not read (excluded as not_a_subject); the data set has no such subject, so move them "
                "out of the root"
            )
        return [ref for ref in refs if ref.split is not None]

    def recording_of(self, path: Path, root: Path) -> RecordingRef | None:
        folder = path.parent.name
        if path.suffix.lower() != ".txt":
            return None
        if not folder.isdigit():
            # A recording's file in a folder of no subject (extra/) was passed over as "no uci-emg recording";
            # it is left out as not_a_subject (split None), as one in folder 37 is. Another .txt (a README) is none.
            is_recording = RECORDING_NAME.match(path.name) is not None and path.parent != root
            return RecordingRef(path=path, recording_id=f"{folder}_{path.stem}", subject=folder) if is_recording else None
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
            raise DataError(f"{ref.path}: unknown class {plural(len(unknown), 'value')} {unknown}; UCI EMG classes are 0..7")
        segments = [
            Segment(start=start / options.sfreq, stop=stop / options.sfreq, label=int(classes[start]) - 1)
            for start, stop in constant_runs(classes)
            if 1 <= classes[start] <= highest
        ]
        return Recording(
            data=np.ascontiguousarray(table[:, 1:-1].T), sfreq=options.sfreq, ch_names=list(UCI_CHANNELS), segments=segments
        )
