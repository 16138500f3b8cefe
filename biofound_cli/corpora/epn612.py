"""EMG-EPN612: 612 users, one Myo armband (8 channels, 200 Hz), 5 gestures plus no gesture.

Layout: ``trainingJSON/user<k>/user<k>.json`` (306 training users) and
``testingJSON/user<k>/user<k>.json`` (306 testing users, different people). Each JSON holds
``trainingSamples`` and ``testingSamples``: dicts ``idx_<n>`` → sample, each sample with
``emg`` (``ch1`` .. ``ch8``: integer lists) and ``gestureName``.

Design: one :class:`Recording` per user file. Its signal is the user's samples one after the
other, each truncated or zero-padded to ``sample_seconds`` (as the published preprocessing
does to its window length) and separated by ``gap_seconds`` of zeros so filter edges do not
cross from one gesture into the next; each sample is one :class:`Segment`. The raw Myo values
(−128..127) are divided by 128, as upstream does before filtering.

Labels: noGesture 0, waveIn 1, waveOut 2, pinch 3, open 4, fist 5 (6 classes, noGesture
included). Samples without a label (``notProvided`` or no ``gestureName``) are dropped.

Splits (per sample): training users: ``trainingSamples`` → train, ``testingSamples`` → val.
Testing users: the first 10 ``trainingSamples`` of every gesture → train, the others → test.
"""

from __future__ import annotations

import fnmatch
import json
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
    place_trials,
    text_encoding,
    undecodable_text,
)
from biofound_cli.errors import DataError
from biofound_cli.plural import plural
from biofound_cli.recipes.base import Section

EPN_SFREQ = 200.0
EPN_CHANNELS = tuple(f"EMG{index}" for index in range(1, 9))
GESTURES = ("noGesture", "waveIn", "waveOut", "pinch", "open", "fist")
UNLABELLED = "notProvided"
# How raw Myo integers (int8) are scaled before filtering, as in the published preprocessing.
MYO_SCALE = 128.0
_USER_FOLDERS = {"trainingJSON": "train", "testingJSON": "test"}


class Epn612Options(Section):
    """``[preprocess.options]`` of the ``epn612`` corpus."""

    sample_seconds: float | None = Field(
        5.0, gt=0, description="Every sample is truncated or zero-padded to this length; none keeps each length."
    )
    gap_seconds: float = Field(1.0, ge=0, description="Zeros placed between consecutive samples.")
    train_samples_per_gesture: int = Field(
        10, ge=0, description="Testing users: how many trainingSamples of each gesture go to train (the rest to test)."
    )


class Epn612Corpus(Corpus):
    """EMG-EPN612 JSON files, one recording per user, one segment per gesture sample."""

    name: ClassVar[str] = "epn612"
    modality: ClassVar[Modality] = "emg"
    own_channels: ClassVar[tuple[str, ...]] = EPN_CHANNELS
    task: str = "mcc"
    label_names: tuple[str, ...] = GESTURES
    # TinyMyo's best EPN setting: one 5 s window (1000 samples) per gesture sample.
    defaults: ClassVar[dict[str, Any]] = {
        **EMG_DOWNSTREAM_DEFAULTS,
        "sfreq": EPN_SFREQ,
        "window_seconds": 5.0,
        "stride_seconds": 5.0,
    }
    Options: ClassVar[type[Section]] = Epn612Options

    def recording_of(self, path: Path, root: Path) -> RecordingRef | None:
        group = next((part for part in path.relative_to(root).parts if part in _USER_FOLDERS), None)
        if group is None or not fnmatch.fnmatchcase(path.name, "user*.json"):
            return None
        role = _USER_FOLDERS[group]
        return RecordingRef(path=path, recording_id=f"{role}-{path.stem}", subject=f"{role}-{path.stem}", extra={"role": role})

    def read(self, ref: RecordingRef) -> Recording:
        options = self.options_as(Epn612Options)
        try:
            # A user file edited on Windows may hold a name in its code page (text_encoding reads it).
            with open(ref.path, encoding=text_encoding(ref.path)) as handle:
                user = json.load(handle)
        except UnicodeDecodeError as error:
            raise DataError(f"{undecodable_text(ref.path, error)}; save it as UTF-8") from None
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"{ref.path}: not a readable JSON file ({error})") from None
        if not isinstance(user, dict) or "trainingSamples" not in user:
            raise DataError(f"{ref.path}: no 'trainingSamples'; is this an EMG-EPN612 user file?")
        samples = self._labelled_samples(ref, user)
        if not samples:
            raise DataError(f"{ref.path}: no labelled gesture samples")
        length = None if options.sample_seconds is None else int(round(options.sample_seconds * EPN_SFREQ))
        emgs = [emg for emg, _, _ in samples]
        if length is not None:  # every sample truncated or zero-padded to sample_seconds
            emgs = [np.pad(emg[:, :length], ((0, 0), (0, length - min(emg.shape[1], length)))) for emg in emgs]
        data, spans = place_trials(emgs, options.gap_seconds, EPN_SFREQ)
        segments = [
            Segment(start=start, stop=stop, label=label, split=split)
            for (start, stop), (_, label, split) in zip(spans, samples, strict=True)
        ]
        return Recording(
            data=data,
            sfreq=EPN_SFREQ,
            ch_names=list(EPN_CHANNELS),
            segments=segments,
            meta={"role": ref.extra["role"]},
        )

    def _labelled_samples(self, ref: RecordingRef, user: dict) -> list[tuple[np.ndarray, int, Split]]:
        """Every labelled sample as (emg scaled by 1/128, label, split), in file order."""
        options = self.options_as(Epn612Options)
        result = []
        training_user = ref.extra["role"] == "train"
        sources: tuple[tuple[str, Split], ...] = (("trainingSamples", "train"), ("testingSamples", "val"))
        # Testing users' testingSamples carry no labels.
        for key, default_split in sources if training_user else sources[:1]:
            seen_per_gesture: dict[int, int] = {}
            for sample_id, sample in sorted((user.get(key) or {}).items(), key=lambda item: _sample_number(item[0])):
                gesture = sample.get("gestureName", UNLABELLED)
                if gesture == UNLABELLED:
                    continue
                if gesture not in GESTURES:
                    raise DataError(
                        f"{ref.path}: {key}.{sample_id}: unknown gestureName {gesture!r}; expected one of {', '.join(GESTURES)}"
                    )
                label = GESTURES.index(gesture)
                if training_user:
                    split: Split = default_split
                else:
                    count = seen_per_gesture.get(label, 0)
                    seen_per_gesture[label] = count + 1
                    split = "train" if count < options.train_samples_per_gesture else "test"
                result.append((_sample_emg(ref.path, f"{key}.{sample_id}", sample), label, split))
        return result


def _sample_number(sample_id: str) -> tuple[int, str]:
    """Sort ``idx_2`` before ``idx_10``."""
    match = re.search(r"(\d+)$", sample_id)
    return (int(match.group(1)) if match else -1, sample_id)


def _sample_emg(path: Path, where: str, sample: dict) -> np.ndarray:
    emg = sample.get("emg")
    if not isinstance(emg, dict):
        raise DataError(f"{path}: {where}: no 'emg' channels")
    missing = [f"ch{index}" for index in range(1, 9) if f"ch{index}" not in emg]
    if missing:
        raise DataError(f"{path}: {where}: missing EMG {plural(len(missing), 'channel')} {', '.join(missing)}")
    try:
        rows = [np.asarray(emg[f"ch{index}"], dtype=np.float64) for index in range(1, 9)]
    except (TypeError, ValueError):
        raise DataError(f"{path}: {where}: EMG values are not numbers") from None
    if len({row.size for row in rows}) != 1 or rows[0].ndim != 1 or rows[0].size == 0:
        raise DataError(f"{path}: {where}: the EMG channels are empty or of different lengths")
    return np.stack(rows) / MYO_SCALE
