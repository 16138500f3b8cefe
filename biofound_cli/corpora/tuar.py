"""TUAR, the TUH EEG Artifact Corpus (v3): artifact labels per TCP channel and time span.

Layout: ``edf/{01_tcp_ar,02_tcp_le,03_tcp_ar_a}/<subject>_s<NNN>_t<NNN>.edf``, each with a
``<same stem>.csv`` of events (``channel,start_time,stop_time,label,confidence``, channel a TCP
name such as ``FP1-F7``). Only ``01_tcp_ar`` and ``02_tcp_le`` are read by default, as upstream
(``03_tcp_ar_a`` has no ear electrodes). There is no official split.

Labels (``options.mode``; events are rasterised at 256 Hz, channels looked up by name, rows
naming a channel outside the montage ignored; a span "covers" a window when it flags at least
``options.threshold`` = 30 % of the window's samples):

* ``bc``: 1 if the union over channels of artifact events covers the window, else 0.
* ``mc``: per channel, 1 if that channel's artifact events cover the window: ``(22,)`` 0/1.
* ``mmc``: per channel, the family code (0 none, 1 chew, 2 elec, 3 eyem, 4 musc, 5 shiv) with
  the most samples among codes covering the window; later rows overwrite earlier ones, and
  ``elpp``, ``bckg`` and seizure labels write 0: ``(22,)`` values 0..5, as upstream.
* ``mcc`` (not in upstream, which only describes it): one label per window among the 5
  artifact families, 0 chew, 1 elec (``elpp`` included: electrode pop/static/lead), 2 eyem,
  3 musc, 4 shiv. A pair label such as ``eyem_chew`` counts for its first family. Families that
  cover the window on at least one channel compete; the one with the most flagged
  channel-samples wins (ties: the lower code). Windows no family covers are dropped, so every
  window holds a single artifact type.

The artifact set of ``bc``/``mc`` includes the seizure labels ``cpsz fnsz gnsz tcsz`` as
upstream did; ``options.seizures_as_artifacts = false`` leaves them out.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import ClassVar, Literal, Sequence

import numpy as np
from pydantic import Field

from biofound_cli.corpora.base import Recording, RecordingRef, UnusableRecording
from biofound_cli.corpora.tuh import (
    LABEL_SFREQ,
    Event,
    TUHCorpus,
    discover_edfs,
    event_overrun,
    read_csv_annotations,
)
from biofound_cli.recipes.base import Section
from biofound_cli.signals.windowing import events_to_samples, fraction_label, majority_label, raster_windows

ARTIFACT_LABELS = frozenset(
    "chew chew_elec chew_musc elec elpp eyem eyem_chew eyem_elec eyem_musc eyem_shiv musc musc_elec shiv shiv_elec".split()
)
SEIZURE_LABELS = frozenset({"cpsz", "fnsz", "gnsz", "tcsz"})
MMC_FAMILIES = {
    "chew": 1, "chew_elec": 1, "chew_musc": 1,
    "elec": 2,
    "eyem": 3, "eyem_chew": 3, "eyem_elec": 3, "eyem_musc": 3, "eyem_shiv": 3,
    "musc": 4, "musc_elec": 4,
    "shiv": 5, "shiv_elec": 5,
}  # fmt: skip
MCC_FAMILIES = {**{label: code - 1 for label, code in MMC_FAMILIES.items()}, "elpp": 1}

MODE_LABEL_NAMES: dict[str, tuple[str, ...]] = {
    "bc": ("clean", "artifact"),
    "mc": ("clean", "artifact"),
    "mmc": ("none", "chew", "elec", "eyem", "musc", "shiv"),
    "mcc": ("chew", "elec", "eyem", "musc", "shiv"),
}


class TUAROptions(Section):
    """``[preprocess.options]`` of the ``tuar`` corpus."""

    mode: Literal["bc", "mc", "mmc", "mcc"] = Field("bc", description="Label mode (see docs/corpora/tuar.md).")
    threshold: float = Field(0.3, gt=0, le=1, description="Fraction of a window an event must cover to count.")
    seizures_as_artifacts: bool = Field(True, description="Count seizure labels as artifacts in bc/mc (upstream did).")
    folders: list[str] = Field(["01_tcp_ar", "02_tcp_le"], description="Montage folders to read.")


class TUARCorpus(TUHCorpus):
    """Artifact annotations per channel; the label mode decides the task."""

    name: ClassVar[str] = "tuar"
    task: str = "bc"
    label_names: tuple[str, ...] = MODE_LABEL_NAMES["bc"]
    Options: ClassVar[type[Section]] = TUAROptions
    annotation_suffixes: ClassVar[tuple[str, ...]] = (".csv",)

    def __init__(self, options: TUAROptions | None = None) -> None:
        super().__init__(options or TUAROptions())
        # The task and the label names follow the mode chosen for this run (each mode is named after its task).
        mode = self.options_as(TUAROptions).mode
        self.task = mode
        self.label_names = MODE_LABEL_NAMES[mode]

    def discover(self, root: Path) -> list[RecordingRef]:
        folders = set(self.options_as(TUAROptions).folders)
        paths = discover_edfs(root)
        inside = {path: bool(folders & set(path.relative_to(root).parts[:-1])) for path in paths}
        # The montage folders the recipe leaves out (03_tcp_ar_a by default) hold recordings all the same.
        self.left_out = {"outside_folders": self.make_refs(root, [path for path in paths if not inside[path]])}
        return self.make_refs(root, [path for path in paths if inside[path]])

    def read(self, ref: RecordingRef) -> Recording:
        annotation = self.annotation(ref)
        if annotation is None:
            raise UnusableRecording(
                f"{ref.path}: no annotation file {ref.path.stem}.csv beside it; TUAR labels need it", "bad_annotations"
            )
        events = read_csv_annotations(annotation)
        recording = self.read_signal(ref)
        recording.meta.update(event_overrun(events, recording.data.shape[1] / recording.sfreq, 1.0 / recording.sfreq))
        recording.window_labeler = functools.partial(artifact_labels, events, self.options_as(TUAROptions))
        return recording


def artifact_labels(
    events: Sequence[Event], options: TUAROptions, starts: np.ndarray, window_seconds: float, ch_names: Sequence[str]
) -> np.ndarray:
    """Window labels from TUAR events, for the mode in ``options`` (see the module docstring).

    With ``events`` and ``options`` bound (:func:`functools.partial`), a
    :data:`~biofound_cli.signals.records.WindowLabeler`.

    Parameters
    ----------
    events : sequence of Event
        The recording's annotations, each on one TCP channel.
    options : TUAROptions
        The label mode, threshold and artifact set.
    starts : ndarray
        Window starts, in seconds.
    window_seconds : float
        Window length, in seconds.
    ch_names : sequence of str
        The final channel names (TCP pairs); events on other channels are ignored.
    """
    mode, threshold = options.mode, options.threshold
    window_samples = int(round(window_seconds * LABEL_SFREQ))
    label_starts = np.round(np.asarray(starts) * LABEL_SFREQ).astype(np.int64)
    n_samples = int(label_starts.max()) + window_samples if len(label_starts) else 0
    rows = {name.upper(): index for index, name in enumerate(ch_names)}
    events = [event for event in events if event.channel in rows]
    if mode in ("bc", "mc"):
        artifacts = ARTIFACT_LABELS | (SEIZURE_LABELS if options.seizures_as_artifacts else frozenset())
        raster = np.zeros((len(ch_names), n_samples), dtype=np.uint8)
        for event in events:
            if event.label in artifacts:
                first, last = events_to_samples(event.start, event.stop, LABEL_SFREQ, n_samples)
                raster[rows[event.channel], first:last] = 1
        # bc: the union over channels; mc: each channel's own.
        flagged = raster.max(axis=0) if mode == "bc" else raster
        return fraction_label(raster_windows(flagged, label_starts, window_samples), threshold)
    if mode == "mmc":
        raster = np.zeros((len(ch_names), n_samples), dtype=np.uint8)
        for event in events:
            first, last = events_to_samples(event.start, event.stop, LABEL_SFREQ, n_samples)
            raster[rows[event.channel], first:last] = MMC_FAMILIES.get(event.label, 0)
        return majority_label(raster_windows(raster, label_starts, window_samples), 6, min_fraction=threshold)
    # mcc: one boolean raster per family, no overwriting.
    families = np.zeros((5, len(ch_names), n_samples), dtype=bool)
    for event in events:
        code = MCC_FAMILIES.get(event.label)
        if code is not None:
            first, last = events_to_samples(event.start, event.stop, LABEL_SFREQ, n_samples)
            families[code, rows[event.channel], first:last] = True
    windows = raster_windows(families, label_starts, window_samples)  # (n_windows, 5, C, T)
    coverage = windows.sum(axis=-1) / window_samples  # (n_windows, 5, C)
    covers = (coverage >= threshold).any(axis=-1)
    totals = np.where(covers, windows.sum(axis=(-1, -2)), -1)
    labels = totals.argmax(axis=-1).astype(np.int64)
    labels[~covers.any(axis=-1)] = -1
    return labels
