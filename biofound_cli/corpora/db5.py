"""NinaPro DB5: 10 subjects, two Myo armbands (16 channels, 200 Hz), 52 hand movements.

Layout: ``s<k>/S<k>_E<e>_A1.mat`` for subjects k = 1..10 and exercises e = 1..3; each file holds
``emg`` (n_samples, 16), ``restimulus`` and ``rerepetition`` (n_samples, 1).

Labels: ``restimulus`` is the movement number within its exercise; the exercise offset makes it
global (E1 → 1–12, E2 → 13–29, E3 → 30–52), so the label space is 0..52 (53 classes, 0 = rest)
as in the published TinyMyo setting. Rest (restimulus 0 or rerepetition 0) is dropped, as
upstream drops it through the repetition split; class 0 therefore has no windows.

Splits: within each file, by repetition (``rerepetition``): train {1, 2, 5}, val {4, 6},
test {3}. Every uninterrupted movement repetition becomes one :class:`Segment` carrying its
label and split; windows are cut inside segments only.
"""

from __future__ import annotations

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
    RepetitionSplits,
    Segment,
    split_of_repetition,
)
from biofound_cli.corpora.label_runs import constant_runs
from biofound_cli.errors import DataError, reading_as
from biofound_cli.plural import plural
from biofound_cli.recipes.base import Section

DB5_SFREQ = 200.0
DB5_CHANNELS = tuple(f"EMG{index}" for index in range(1, 17))
# First global label of each exercise minus one: E1 movements 1-12, E2 13-29, E3 30-52.
EXERCISE_OFFSETS = {1: 0, 2: 12, 3: 29}
_FILE_NAME = re.compile(r"S(?P<subject>\d+)_E(?P<exercise>[123])_A1\.mat", re.IGNORECASE)


class Db5Options(Section):
    """``[preprocess.options]`` of the ``db5`` corpus."""

    split_by_repetition: RepetitionSplits = Field(
        {"train": [1, 2, 5], "val": [4, 6], "test": [3]},
        description="Official split of each repetition (1..6); repetitions not listed are dropped.",
    )


class Db5Corpus(Corpus):
    """NinaPro DB5 ``.mat`` files, one recording per subject and exercise."""

    name: ClassVar[str] = "db5"
    official_split_options: ClassVar[dict[str, str]] = dict.fromkeys(("train", "val", "test"), "split_by_repetition")
    modality: ClassVar[Modality] = "emg"
    own_channels: ClassVar[tuple[str, ...]] = DB5_CHANNELS
    task: str = "mcc"
    label_names: tuple[str, ...] = ("rest",) + tuple(f"movement {index}" for index in range(1, 53))
    # TinyMyo's best DB5 setting: 1 s windows (200 samples) every 0.25 s (50 samples).
    defaults: ClassVar[dict[str, Any]] = {
        **EMG_DOWNSTREAM_DEFAULTS,
        "sfreq": DB5_SFREQ,
        "window_seconds": 1.0,
        "stride_seconds": 0.25,
    }
    Options: ClassVar[type[Section]] = Db5Options

    def recording_of(self, path: Path, root: Path) -> RecordingRef | None:
        # The name in any letter case (S1_E1_A1.MAT too), as the pattern says.
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            return None
        subject, exercise = int(match["subject"]), int(match["exercise"])
        return RecordingRef(
            path=path,
            recording_id=f"S{subject}_E{exercise}",
            subject=f"S{subject}",
            session=f"E{exercise}",
            extra={"exercise": exercise},
        )

    def read(self, ref: RecordingRef) -> Recording:
        from scipy.io import loadmat

        # scipy meets a corrupt file with many types (a TypeError among them), all raised inside scipy: the
        # file's fault by is_reading_error's rule; any other error is ours and stops the run.
        with reading_as(ref.path, "MATLAB file"):
            contents = loadmat(ref.path, variable_names=["emg", "restimulus", "rerepetition"])
        missing = [key for key in ("emg", "restimulus", "rerepetition") if key not in contents]
        if missing:
            raise DataError(
                f"{ref.path}: missing {plural(len(missing), 'variable')} {', '.join(missing)}; is this a NinaPro DB5 file?"
            )
        emg = np.asarray(contents["emg"], dtype=np.float64)
        stimulus = np.asarray(contents["restimulus"]).reshape(-1).astype(np.int64)
        repetition = np.asarray(contents["rerepetition"]).reshape(-1).astype(np.int64)
        if emg.ndim != 2 or emg.shape[1] != len(DB5_CHANNELS):
            raise DataError(f"{ref.path}: 'emg' has shape {emg.shape}, expected (n_samples, {len(DB5_CHANNELS)})")
        if not (len(stimulus) == len(repetition) == emg.shape[0]):
            raise DataError(
                f"{ref.path}: 'emg', 'restimulus' and 'rerepetition' have different lengths "
                f"({emg.shape[0]}, {len(stimulus)}, {len(repetition)})"
            )
        offset = EXERCISE_OFFSETS[ref.extra["exercise"]]
        split_of = split_of_repetition(self.options_as(Db5Options).split_by_repetition)
        segments = [
            Segment(start=start / DB5_SFREQ, stop=stop / DB5_SFREQ, label=int(stimulus[start]) + offset, split=split_of[rep])
            for start, stop in constant_runs(stimulus, repetition)
            if stimulus[start] != 0 and (rep := int(repetition[start])) in split_of
        ]
        return Recording(
            data=np.ascontiguousarray(emg.T),
            sfreq=DB5_SFREQ,
            ch_names=list(DB5_CHANNELS),
            segments=segments,
            meta={"exercise": ref.extra["exercise"]},
        )
