from __future__ import annotations

import mne
import numpy as np
import pytest

from biofound_cli.corpora.base import UnusableRecording
from biofound_cli.signals.filters import bandpass, notch
from biofound_cli.signals.resample import resample


@pytest.fixture
def raw():
    rng = np.random.default_rng(0)
    sfreq = 250.0
    data = rng.normal(0, 20e-6, (3, int(12 * sfreq)))
    return mne.io.RawArray(data, mne.create_info(["C3", "C4", "CZ"], sfreq, "eeg"), verbose="error")


def test_bandpass_matches_raw_filter_defaults(raw):
    expected = raw.copy().filter(0.1, 75.0, verbose="error").get_data()
    np.testing.assert_allclose(bandpass(raw.get_data(), 250.0, 0.1, 75.0), expected, rtol=0, atol=1e-15)


def test_notch_matches_raw_notch_filter_defaults(raw):
    expected = raw.copy().notch_filter(60.0, verbose="error").get_data()
    np.testing.assert_allclose(notch(raw.get_data(), 250.0, 60.0), expected, rtol=0, atol=1e-15)


def test_resample_matches_raw_resample(raw):
    expected = raw.copy().resample(256.0, verbose="error").get_data()
    result = resample(raw.get_data(), 250.0, 256.0)
    assert result.shape == expected.shape == (3, 3072)
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-15)


def test_rate_too_low_for_the_low_pass_is_a_named_error():
    with pytest.raises(UnusableRecording) as error:
        bandpass(np.zeros((1, 1000)), 128.0, 0.1, 75.0, source="slow.edf")
    assert error.value.reason == "sfreq_too_low"
    assert "slow.edf: sampling rate 128 Hz is too low for h_freq=75 Hz" in error.value.message


def test_iir_bandpass_and_notch_attenuate_out_of_band_tones():
    sfreq = 200.0
    t = np.arange(int(10 * sfreq)) / sfreq
    in_band, line, drift = np.sin(2 * np.pi * 40 * t), np.sin(2 * np.pi * 50 * t), np.sin(2 * np.pi * 2 * t)
    filtered = bandpass((in_band + drift)[None], sfreq, 20.0, 90.0, method="iir")
    middle = slice(400, -400)
    np.testing.assert_allclose(filtered[0, middle], in_band[middle], atol=0.05)
    notched = notch((in_band + line)[None], sfreq, 50.0, method="iir", notch_q=30.0)
    np.testing.assert_allclose(notched[0, middle], in_band[middle], atol=0.05)
