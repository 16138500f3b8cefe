from __future__ import annotations

import numpy as np
import pytest

from biofound_cli.corpora.base import UnusableRecording
from biofound_cli.signals.channels import channel_rows, normalize_channel_name, normalize_channel_names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("EEG FP1-REF", "FP1"),
        ("EEG Fp1-LE", "FP1"),
        ("eeg fz-ref", "FZ"),
        ("Fp1.", "FP1"),
        ("Cz..", "CZ"),
        ("T7", "T3"),
        ("EEG T8-REF", "T4"),
        ("P7..", "T5"),
        ("p8", "T6"),
        ("T3", "T3"),
        ("EEG A1-REF", "A1"),
        ("EMG1", "EMG1"),
        (" EEG O2-LE ", "O2"),
    ],
)
def test_normalize_channel_name(raw, expected):
    assert normalize_channel_name(raw) == expected


def test_duplicates_after_normalisation_get_a_suffix():
    assert normalize_channel_names(["EEG T3-REF", "T7", "Cz"]) == ["T3", "T3#2", "CZ"]


def test_pick_channels_by_name_in_the_wanted_order():
    data = np.arange(12, dtype=float).reshape(4, 3)
    picked = data[channel_rows(["EEG CZ-REF", "EEG T7-REF", "Fp1.", "EEG EKG1-REF"], ["fp1", "T3", "CZ"])]
    np.testing.assert_array_equal(picked, data[[2, 1, 0]])


def test_pick_channels_names_every_missing_channel():
    with pytest.raises(UnusableRecording) as error:
        channel_rows(["EEG FP1-REF", "EEG CZ-REF"], ["FP1", "A1", "A2"], source="x.edf")
    assert error.value.reason == "missing_channels"
    assert error.value.message == (
        "x.edf: missing required channels A1, A2; the file has FP1, CZ; "
        'use preprocess.montage = "tcp20" for recordings without ear electrodes, or leave this file out'
    )


def test_a_missing_channel_says_what_to_do():
    # The message named the channel and stopped there: one sentence must also say how to go on.
    with pytest.raises(UnusableRecording) as error:
        channel_rows(["EEG FP1-REF", "EEG CZ-REF"], ["FP1", "C3", "A1"], source="x.edf")
    assert error.value.message == (
        "x.edf: missing required channels C3, A1; the file has FP1, CZ; "
        "set preprocess.channels (or preprocess.montage) to channels it has, or leave this file out"
    )
