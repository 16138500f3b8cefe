from __future__ import annotations

import numpy as np

from biofound_cli.corpora.base import Segment
from biofound_cli.signals.windowing import (
    cut_windows,
    events_to_samples,
    fraction_label,
    majority_label,
    segment_window_starts,
    window_starts,
)


def test_non_overlapping_windows_drop_the_tail():
    np.testing.assert_array_equal(window_starts(1280 * 3 + 100, 1280, 1280), [0, 1280, 2560])


def test_overlapping_windows_and_too_short():
    np.testing.assert_array_equal(window_starts(10, 4, 2), [0, 2, 4, 6])
    assert len(window_starts(3, 4, 2)) == 0


def test_windows_are_cut_inside_segments_only():
    segments = [Segment(0.0, 2.5, 1, "train"), Segment(3.0, 4.0, 2, "test"), Segment(4.0, 4.4, 0)]
    starts, labels, splits = segment_window_starts(segments, 10.0, 100, 10, 10)
    np.testing.assert_array_equal(starts, [0, 10, 30])
    np.testing.assert_array_equal(labels, [1, 1, 2])
    assert splits == ["train", "train", "test"]


def test_cut_windows_shape_and_values():
    data = np.arange(20, dtype=np.float64).reshape(2, 10)
    windows = cut_windows(data, np.array([0, 5]), 5)
    assert windows.shape == (2, 2, 5) and windows.dtype == np.float32
    np.testing.assert_array_equal(windows[1, 0], [5, 6, 7, 8, 9])


def test_label_rules():
    assert events_to_samples(-1.0, 2.0, 10.0, 15) == (0, 15)
    windows = np.array([[1, 1, 1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(fraction_label(windows, 0.3), [1, 0])
    np.testing.assert_array_equal(majority_label(np.array([[2, 2, 3, 3, 0]]), 4), [2])
    np.testing.assert_array_equal(majority_label(np.array([[2, 2, 2, 1, 1, 1, 1, 5, 5, 5]]), 6, min_fraction=0.3), [1])
    np.testing.assert_array_equal(majority_label(np.array([[1, 2, 3, 4, 5]]), 6, min_fraction=0.3), [0])
