"""SEED-V: emotion recognition from 62-channel EEG, 16 subjects × 3 sessions × 15 film clips.

Layout: the unzipped ``EEG_raw/`` folder of Neuroscan files ``<subject>_<session>_<date>.cnt``
(1000 Hz), read with :func:`mne.io.read_raw_cnt`. The reference and eye channels M1, M2,
VEO and HEO are dropped, leaving the 62 EEG channels of :data:`SEEDV_CHANNELS`.

Trials: each session shows the same 15 clips at published times (seconds from the start of
the recording, :data:`TRIAL_SECONDS`); each clip is one :class:`Segment` labelled with its
emotion (:data:`SESSION_LABELS`): disgust 0, fear 1, sad 2, neutral 3, happy 4.

Splits (``trial_split``):

* ``cross-trial`` (default): clips 1–5 of every session → train, 6–10 → val, 11–15 → test,
  the 5/5/5 split the LUNA configuration asks for;
* ``upstream``: what the published code actually does (0-based trial ≤ 5 → train, ≤ 10 → val,
  the rest → test, i.e. 6/5/4);
* ``none``: no official split, so ``pack`` can split by subject (subject-independent).

The published pipeline decimates 1000 → 200 Hz by taking every 5th sample without an
anti-alias filter; here the signal chain resamples properly (default 200 Hz) after a 1–75 Hz
band-pass; 1 s windows without overlap as in the LUNA fine-tuning.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from biofound_cli.corpora.base import Corpus, Modality, Recording, RecordingRef, Segment, Split
from biofound_cli.errors import DataError, reading_as
from biofound_cli.recipes.base import Section

SEEDV_CHANNELS = (
    "FP1", "FPZ", "FP2", "AF3", "AF4", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8", "FT7", "FC5",
    "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8", "T7", "C5", "C3", "C1", "CZ", "C2", "C4", "C6", "T8",
    "TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8", "P7", "P5", "P3", "P1", "PZ", "P2", "P4",
    "P6", "P8", "PO7", "PO5", "PO3", "POZ", "PO4", "PO6", "PO8", "CB1", "O1", "OZ", "O2", "CB2",
)  # fmt: skip
DROPPED_CHANNELS = ("M1", "M2", "VEO", "HEO")
EMOTIONS = ("disgust", "fear", "sad", "neutral", "happy")

# Emotion of each of the 15 clips, per session (sessions 2 and 3 share one order).
SESSION_LABELS = {
    1: (4, 1, 3, 2, 0, 4, 1, 3, 2, 0, 4, 1, 3, 2, 0),
    2: (2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0),
    3: (2, 1, 3, 0, 4, 4, 0, 3, 2, 1, 3, 4, 1, 2, 0),
}
# (start, end) of each clip in seconds from the start of the recording, per session,
# as published with the data set.
TRIAL_SECONDS = {
    1: tuple(zip(
        (30, 132, 287, 555, 773, 982, 1271, 1628, 1730, 2025, 2227, 2435, 2667, 2932, 3204),
        (102, 228, 524, 742, 920, 1240, 1568, 1697, 1994, 2166, 2401, 2607, 2901, 3172, 3359),
        strict=True,
    )),
    2: tuple(zip(
        (30, 299, 548, 646, 836, 1000, 1091, 1392, 1657, 1809, 1966, 2186, 2333, 2490, 2741),
        (267, 488, 614, 773, 967, 1059, 1331, 1622, 1777, 1908, 2153, 2302, 2428, 2709, 2817),
        strict=True,
    )),
    3: tuple(zip(
        (30, 353, 478, 674, 825, 908, 1200, 1346, 1451, 1711, 2055, 2307, 2457, 2726, 2888),
        (321, 418, 643, 764, 877, 1147, 1284, 1418, 1679, 1996, 2275, 2425, 2664, 2857, 3066),
        strict=True,
    )),
}  # fmt: skip
_FILE_NAME = re.compile(r"(?P<subject>\d+)_(?P<session>[123])_(?P<date>\d+)\.cnt", re.IGNORECASE)


def trial_split(trial: int, scheme: str) -> Split | None:
    """Official split of the 0-based ``trial`` (0..14) under ``scheme`` (see the module docstring).

    Parameters
    ----------
    trial : int
        The clip's 0-based index within its session, 0 to 14.
    scheme : str
        ``cross-trial``, ``upstream`` or ``none`` (no official split: returns None).
    """
    if scheme == "none":
        return None
    if scheme == "upstream":
        return "train" if trial <= 5 else "val" if trial <= 10 else "test"
    return "train" if trial < 5 else "val" if trial < 10 else "test"


class SeedVOptions(Section):
    """``[preprocess.options]`` of the ``seedv`` corpus."""

    trial_split: Literal["cross-trial", "upstream", "none"] = Field(
        "cross-trial",
        description="cross-trial: clips 1-5/6-10/11-15; upstream: 6/5/4 as published; none: split by subject in pack.",
    )


class SeedVCorpus(Corpus):
    """SEED-V ``.cnt`` recordings, one per subject and session, one segment per film clip."""

    name: ClassVar[str] = "seedv"
    modality: ClassVar[Modality] = "eeg"
    task: str = "mcc"
    label_names: tuple[str, ...] = EMOTIONS
    defaults: ClassVar[dict[str, Any]] = {
        "l_freq": 1.0,
        "h_freq": 75.0,
        "notch_hz": None,
        "sfreq": 200.0,
        "window_seconds": 1.0,
        "stride_seconds": 1.0,
        "montage": None,
        "channels": list(SEEDV_CHANNELS),
        "units": "uV",
    }
    Options: ClassVar[type[Section]] = SeedVOptions

    def recording_of(self, path: Path, root: Path) -> RecordingRef | None:
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            return None
        subject, session = int(match["subject"]), int(match["session"])
        return RecordingRef(
            path=path, recording_id=path.stem, subject=f"{subject:02d}", session=str(session), extra={"session": session}
        )

    def read(self, ref: RecordingRef) -> Recording:
        import mne

        with reading_as(ref.path, "Neuroscan CNT file"):  # the file's fault; any other error is ours and stops the run
            raw = mne.io.read_raw_cnt(ref.path, preload=True, verbose="error")
        raw.drop_channels([name for name in raw.ch_names if name.upper() in DROPPED_CHANNELS])
        sfreq = float(raw.info["sfreq"])
        duration = raw.n_times / sfreq
        session = ref.extra["session"]
        last_end = TRIAL_SECONDS[session][-1][1]
        if duration < last_end:
            raise DataError(
                f"{ref.path}: the recording lasts {duration:.0f} s but session {session}'s last clip ends at {last_end} s; "
                "the file is truncated or not a SEED-V recording"
            )
        scheme = self.options_as(SeedVOptions).trial_split
        segments = [
            Segment(start=float(start), stop=float(stop), label=SESSION_LABELS[session][trial], split=trial_split(trial, scheme))
            for trial, (start, stop) in enumerate(TRIAL_SECONDS[session])
        ]
        return Recording(
            data=np.asarray(raw.get_data(), dtype=np.float64),
            sfreq=sfreq,
            ch_names=list(raw.ch_names),
            segments=segments,
            meta={"session": session},
        )
