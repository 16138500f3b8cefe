"""TUSL, the TUH EEG Slowing Corpus (v2): background, seizure and slowing events.

Layout: ``<subject>/<session>/<montage folder>/<subject>_s<NNN>_t<NNN>.edf`` with a
``<same stem>.csv`` beside each EDF (v2: ``channel,start_time,stop_time,label,confidence``)
or, in older releases, a ``.tse`` / ``.tse_agg`` file (``start stop label probability``).
Every montage folder is read (upstream read whichever one the file system listed first).
There is no official split; ``biofound pack`` splits by subject.

Labels: a time line at 256 Hz starts at 0 ("not annotated"), then each event writes
``bckg`` → 1, ``seiz`` → 2, ``slow`` → 3 whatever its channel; the window label is the most
frequent value (ties: the smaller). A recording without an annotation file is skipped
(upstream silently labelled it all 0).
"""

from __future__ import annotations

import functools
from typing import ClassVar, Sequence

import numpy as np

from biofound_cli.corpora.base import Recording, RecordingRef, UnusableRecording
from biofound_cli.corpora.tuh import (
    LABEL_SFREQ,
    Event,
    TUHCorpus,
    event_overrun,
    read_csv_annotations,
    read_tse_annotations,
)
from biofound_cli.signals.windowing import events_to_samples, majority_label, raster_windows

LABEL_CODES = {"bckg": 1, "seiz": 2, "slow": 3}
ANNOTATION_SUFFIXES = (".csv", ".tse", ".tse_agg")


class TUSLCorpus(TUHCorpus):
    """Slowing / seizure / background labels from CSV or ``.tse`` annotations."""

    name: ClassVar[str] = "tusl"
    task: str = "mcc"
    label_names: tuple[str, ...] = ("none", "bckg", "seiz", "slow")
    annotation_suffixes: ClassVar[tuple[str, ...]] = ANNOTATION_SUFFIXES

    def read(self, ref: RecordingRef) -> Recording:
        annotation = self.annotation(ref)
        if annotation is None:
            raise UnusableRecording(
                f"{ref.path}: no annotation file ({', '.join(ref.path.stem + s for s in ANNOTATION_SUFFIXES)}) beside it; "
                "TUSL labels need one",
                "bad_annotations",
            )
        events = read_csv_annotations(annotation) if annotation.suffix.lower() == ".csv" else read_tse_annotations(annotation)
        recording = self.read_signal(ref)
        recording.meta.update(event_overrun(events, recording.data.shape[1] / recording.sfreq, 1.0 / recording.sfreq))
        recording.window_labeler = functools.partial(slowing_labels, events)
        recording.meta["annotation_file"] = annotation.name
        return recording


def slowing_labels(events: Sequence[Event], starts: np.ndarray, window_seconds: float, ch_names: Sequence[str]) -> np.ndarray:
    """Majority label per window over a 1-D raster of TUSL events (channels merged).

    With ``events`` bound (:func:`functools.partial`), a :data:`~biofound_cli.signals.records.WindowLabeler`.

    Parameters
    ----------
    events : sequence of Event
        The recording's annotations.
    starts : ndarray
        Window starts, in seconds.
    window_seconds : float
        Window length, in seconds.
    ch_names : sequence of str
        The final channel names (not used: TUSL labels hold for every channel).
    """
    window_samples = int(round(window_seconds * LABEL_SFREQ))
    label_starts = np.round(np.asarray(starts) * LABEL_SFREQ).astype(np.int64)
    n_samples = int(label_starts.max()) + window_samples if len(label_starts) else 0
    raster = np.zeros(n_samples, dtype=np.int64)
    for event in events:
        code = LABEL_CODES.get(event.label)
        if code is not None:
            first, last = events_to_samples(event.start, event.stop, LABEL_SFREQ, n_samples)
            raster[first:last] = code
    return majority_label(raster_windows(raster, label_starts, window_samples), len(LABEL_CODES) + 1)
