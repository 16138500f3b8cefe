"""Cutting recordings into fixed-length windows, and turning event annotations into window labels.

A window is ``window_samples`` long and starts every ``stride_samples``; the tail that does
not fill a whole window is dropped (no padding), as in the published preprocessing. When a
corpus gives labelled segments, windows are cut inside each segment only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from biofound_cli.signals.records import Segment, Split


def window_starts(
    n_samples: int, window_samples: int, stride_samples: int, *, start: int = 0, stop: int | None = None
) -> np.ndarray:
    """Start samples of every whole window in ``[start, stop)``.

    Parameters
    ----------
    n_samples : int
        Length of the recording; ``stop`` is clipped to it.
    window_samples, stride_samples : int
        Window length and the step between window starts, in samples (both > 0).
    start, stop : int
        The span to cut, in samples; ``stop=None`` means the end of the recording.

    Returns
    -------
    ndarray of int64, shape (n_windows,)
    """
    stop = n_samples if stop is None else min(stop, n_samples)
    start = max(start, 0)
    # No start at all when not one window fits: arange then gives an empty int64 array too.
    return np.arange(start, stop - window_samples + 1, stride_samples, dtype=np.int64)


def window_gaps(starts: np.ndarray, window_samples: int, stride_samples: int) -> np.ndarray:
    """Where consecutive windows are not adjacent in time: ``(n_windows - 1,)`` booleans, True before a gap.

    Windows one stride apart are adjacent (however long the stride), as are windows that touch or
    overlap (the last window of a labelled segment and the first of one that follows it without a
    pause). A pause between segments (gesture runs, trials) or windows left out (a labeler's
    unlabelled ones) is a gap.

    Parameters
    ----------
    starts : ndarray of int, shape (n_windows,)
        Window starts in samples, in time order.
    window_samples, stride_samples : int
        Window length and the step between window starts, in samples.
    """
    return np.diff(np.asarray(starts, dtype=np.int64)) > max(window_samples, stride_samples)


def segment_window_starts(
    segments: Sequence[Segment], sfreq: float, n_samples: int, window_samples: int, stride_samples: int
) -> tuple[np.ndarray, np.ndarray, list[Split | None], list[Segment]]:
    """Windows cut inside each labelled segment, and the segments too short to hold one.

    Parameters
    ----------
    segments : sequence of Segment
        The labelled spans, in seconds from the recording's start.
    sfreq : float
        Sampling rate of the windows, in Hz.
    n_samples : int
        Length of the recording, in samples; windows end within it.
    window_samples, stride_samples : int
        Window length and the step between window starts, in samples.

    Returns
    -------
    starts : ndarray of int64, shape (n_windows,)
    labels : ndarray of int64, shape (n_windows,)
        The label of the segment each window lies in.
    splits : list of str or None
        The segment's official split for each window (``None`` where the corpus gives none).
    without_window : list of Segment
        The segments no whole window fits in, in order: none is cut from them.
    """
    per_segment = [_segment_starts(segment, sfreq, n_samples, window_samples, stride_samples) for segment in segments]
    # Each segment's label and split, once per window cut from it.
    counts = [len(starts) for starts in per_segment]
    labels = np.repeat(np.array([segment.label for segment in segments], dtype=np.int64), counts)
    splits = [segment.split for segment, count in zip(segments, counts, strict=True) for _ in range(count)]
    without_window = [segment for segment, count in zip(segments, counts, strict=True) if count == 0]
    # The empty int64 array first, so that no segment (or no window) gives an empty int64 array too.
    return np.concatenate([np.zeros(0, dtype=np.int64), *per_segment]), labels, splits, without_window


def _segment_starts(segment: Segment, sfreq: float, n_samples: int, window_samples: int, stride_samples: int) -> np.ndarray:
    first = int(round(segment.start * sfreq))
    stop = int(round(segment.stop * sfreq))
    return window_starts(n_samples, window_samples, stride_samples, start=first, stop=stop)


def clip_segments(segments: Sequence[Segment], duration: float, tolerance: float = 0.0) -> tuple[list[Segment], int, int]:
    """Segments cut to the recording ``[0, duration]`` seconds, and how many had to be touched.

    Parameters
    ----------
    segments : sequence of Segment
        Labelled spans in seconds from the first sample.
    duration : float
        Length of the recording in seconds.
    tolerance : float
        Overrun (seconds) not counted, e.g. one sample: a span that ends on the last sample is inside.

    Returns
    -------
    kept : list of Segment
        The segments that overlap the recording, clipped to it.
    n_outside : int
        Segments wholly outside the recording (dropped).
    n_clipped : int
        Segments that start before 0 or end after ``duration`` (cut to it).
    """
    kept: list[Segment] = []
    n_outside = n_clipped = 0
    for segment in segments:
        if segment.start >= duration - tolerance or segment.stop <= tolerance:
            n_outside += 1
            continue
        if segment.start < -tolerance or segment.stop > duration + tolerance:
            n_clipped += 1
        start, stop = max(segment.start, 0.0), min(segment.stop, duration)
        kept.append(segment if (start, stop) == (segment.start, segment.stop) else replace(segment, start=start, stop=stop))
    return kept, n_outside, n_clipped


# -- label rasterisation: the building blocks of a corpus's window_labeler ---------------------


def events_to_samples(start_seconds: float, stop_seconds: float, sfreq: float, n_samples: int) -> tuple[int, int]:
    """``[start, stop)`` in seconds → sample indices ``round(t * sfreq)`` clipped to ``[0, n_samples]``.

    Parameters
    ----------
    start_seconds, stop_seconds : float
        The span, in seconds from the recording's first sample.
    sfreq : float
        Sampling rate, in Hz.
    n_samples : int
        Length of the recording, in samples.
    """
    first = min(max(int(round(start_seconds * sfreq)), 0), n_samples)
    last = min(max(int(round(stop_seconds * sfreq)), 0), n_samples)
    return first, last


def raster_windows(raster: np.ndarray, starts: np.ndarray, window_samples: int) -> np.ndarray:
    """Slices of a label raster (``(..., n_samples)``) per window → ``(n_windows, ..., window_samples)``.

    Parameters
    ----------
    raster : np.ndarray
        (..., n_samples) a label per sample (per channel, where there is a leading axis).
    starts : np.ndarray
        First sample of each window.
    window_samples : int
        Window length, in samples.
    """
    return (
        np.stack([raster[..., start : start + window_samples] for start in starts])
        if len(starts)
        else np.zeros((0, *raster.shape[:-1], window_samples), dtype=raster.dtype)
    )


def fraction_label(windows: np.ndarray, threshold: float) -> np.ndarray:
    """1 where the fraction of non-zero samples in a window reaches ``threshold``, else 0 (last axis is time).

    Parameters
    ----------
    windows : np.ndarray
        (..., window_samples) raster slices from :func:`raster_windows`; non-zero marks an event.
    threshold : float
        Smallest fraction of non-zero samples, 0 to 1, that labels a window 1.
    """
    return (np.count_nonzero(windows, axis=-1) / windows.shape[-1] >= threshold).astype(np.int64)


def majority_label(windows: np.ndarray, n_values: int, *, min_fraction: float = 0.0) -> np.ndarray:
    """The most frequent value along the last axis; ties go to the smallest value.

    Values covering less than ``min_fraction`` of the window are not candidates; when none is,
    the label is 0.

    Parameters
    ----------
    windows : np.ndarray
        (..., window_samples) integer raster slices from :func:`raster_windows`.
    n_values : int
        The labels are ``0 .. n_values - 1``.
    min_fraction : float
        Smallest share of the window, 0 to 1, a value must cover to be the label.
    """
    counts = np.stack([(windows == value).sum(axis=-1) for value in range(n_values)], axis=-1)
    counts = np.where(counts / windows.shape[-1] >= min_fraction, counts, -1)
    labels = counts.argmax(axis=-1)
    labels[counts.max(axis=-1) < 0] = 0
    return labels.astype(np.int64)
