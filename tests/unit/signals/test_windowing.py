from __future__ import annotations

import numpy as np
import pytest

from biofound_cli.corpora.base import Segment
from biofound_cli.errors import UnusableRecording
from biofound_cli.signals.chain import ChainConfig, run_chain
from biofound_cli.signals.records import Recording
from biofound_cli.signals.windowing import (
    clip_segments,
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
    starts, labels, splits, without_window = segment_window_starts(segments, 10.0, 100, 10, 10)
    np.testing.assert_array_equal(starts, [0, 10, 30])
    np.testing.assert_array_equal(labels, [1, 1, 2])
    assert splits == ["train", "train", "test"]
    assert without_window == [Segment(4.0, 4.4, 0)]


def test_label_rules():
    assert events_to_samples(-1.0, 2.0, 10.0, 15) == (0, 15)
    windows = np.array([[1, 1, 1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(fraction_label(windows, 0.3), [1, 0])
    np.testing.assert_array_equal(majority_label(np.array([[2, 2, 3, 3, 0]]), 4), [2])
    np.testing.assert_array_equal(majority_label(np.array([[2, 2, 2, 1, 1, 1, 1, 5, 5, 5]]), 6, min_fraction=0.3), [1])
    np.testing.assert_array_equal(majority_label(np.array([[1, 2, 3, 4, 5]]), 6, min_fraction=0.3), [0])


def test_segments_are_clipped_to_the_recording_and_counted():
    segments = [
        Segment(-1.0, 2.0, 0),
        Segment(3.0, 4.0, 1),
        Segment(9.0, 12.0, 1),
        Segment(10.0, 11.0, 0),
        Segment(-3.0, -1.0, 0),
    ]
    kept, n_outside, n_clipped = clip_segments(segments, 10.0, tolerance=0.01)
    assert kept == [Segment(0.0, 2.0, 0), Segment(3.0, 4.0, 1), Segment(9.0, 10.0, 1)]
    assert (n_outside, n_clipped) == (2, 2)
    # Ending on the last sample (within the tolerance) is inside.
    assert clip_segments([Segment(0.0, 10.005, 0)], 10.0, tolerance=0.01)[1:] == (0, 0)


def _recording(segments=None, labeler=None, seconds=20.0):
    data = np.random.default_rng(0).normal(0, 1e-5, (2, int(seconds * 100)))
    return Recording(data=data, sfreq=100.0, ch_names=["CZ", "PZ"], segments=segments, window_labeler=labeler)


@pytest.mark.parametrize(
    ("segments", "reason", "message"),
    [
        ([], "no_events", "rec.edf: the recording has no labelled event; there is nothing to cut windows from"),
        ([Segment(21.0, 30.0, 0), Segment(-5.0, -1.0, 1)], "events_outside",
         "rec.edf: all 2 labelled events lie outside the recording (0-20.0 s); check the annotation times"),
        ([Segment(1.0, 2.5, 0), Segment(4.0, 8.0, 1)], "events_too_short",
         "rec.edf: the longest of the 2 labelled events lasts 4.000 s, shorter than the 5 s window; "
         "lower preprocess.window_seconds to 4 or less"),
    ],
)  # fmt: skip
def test_events_that_give_no_window_say_why(segments, reason, message):
    with pytest.raises(UnusableRecording) as error:
        run_chain(_recording(segments), ChainConfig(window_seconds=5.0, flat_std=0.0), source="rec.edf")
    assert (error.value.reason, error.value.message) == (reason, message)


@pytest.mark.parametrize(
    ("advice", "said"),
    [({}, "lower preprocess.window_seconds to keep them"), ({"short_events_advice": "they are left out"}, "they are left out")],
)
def test_events_shorter_than_the_window_are_warned_of_with_the_callers_advice(caplog, advice, said):
    """preprocess can lower its window; a caller whose window is fixed (predict) says what it does instead."""
    segments = [Segment(1.0, 2.5, 0), Segment(4.0, 10.0, 1)]
    with caplog.at_level("WARNING", logger="biofound_cli"):
        windowed = run_chain(_recording(segments), ChainConfig(window_seconds=5.0, flat_std=0.0), source="rec.edf", **advice)
    assert windowed.n_windows == 1 and windowed.notes == {"events_shorter_than_window": 1}
    assert [record.getMessage() for record in caplog.records] == [
        f"rec.edf: 1 of the 2 labelled events (label 0) lasts less than the 5 s window and give no window; {said}"
    ]


def test_window_starts_survive_dropped_windows_and_resampling():
    # A labeler that drops windows 1 and 2 (no class), as TUAR's mcc mode does.
    def labeler(starts, window_seconds, ch_names):
        return np.array([0, -1, -1, 1])

    windowed = run_chain(_recording(labeler=labeler), ChainConfig(window_seconds=5.0, sfreq=256.0, flat_std=0.0))
    assert windowed.window_start_seconds.dtype == np.float64
    assert windowed.window_start_seconds.tolist() == [0.0, 15.0] and windowed.y.tolist() == [0, 1]
    strided = run_chain(_recording(seconds=3.0), ChainConfig(window_seconds=1.0, stride_seconds=0.25, sfreq=200.0, flat_std=0.0))
    np.testing.assert_allclose(strided.window_start_seconds, np.arange(9) * 0.25)
