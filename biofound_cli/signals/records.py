"""What a corpus reader hands to the signal chain: one recording and its labels.

The types live here, below the corpora, because the signal chain (:mod:`biofound_cli.signals`)
consumes them and must not depend on any corpus; :mod:`biofound_cli.corpora.base` re-exports
them for the readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np

Split = Literal["train", "val", "test"]


@dataclass(frozen=True)
class Segment:
    """A labelled span of a recording, in seconds from its start."""

    start: float
    stop: float
    label: int
    split: Split | None = None
    """An official split for this span only (NinaPro DB5 splits by repetition)."""


WindowLabeler = Callable[[np.ndarray, float, Sequence[str]], np.ndarray]
"""``labeler(window_starts_seconds, window_seconds, channel_names) -> y``.

Returns ``(n_windows,)`` int64 labels, or ``(n_windows, n_channels)`` for per-channel tasks.
A ``-1`` in a ``(n_windows,)`` result drops that window (it belongs to no class).
"""


@dataclass
class Recording:
    """One recording loaded by :meth:`Corpus.read`, before the signal chain."""

    data: np.ndarray
    """``(n_channels, n_samples)`` float array; EEG in volts (as MNE gives it), EMG in the file's units."""
    sfreq: float
    ch_names: list[str]
    label: int | None = None
    segments: list[Segment] | None = None
    window_labeler: WindowLabeler | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Extra attributes worth keeping in the shard (e.g. montage folder, gesture names)."""
    names_option: str | None = None
    """The option that names the channels where the reader read no name from the file and numbered them (a CSV
    without a header row: ``EMG1``..``EMGn``); a missing channel's advice names it."""
