"""Our filters and resampling against MNE's ``raw.filter`` / ``notch_filter`` / ``resample``.

Documented tolerance (docs/preprocess.md): the published chain is reproduced to within 1e-3 µV
on EEG of tens of µV (the chain transforms in single precision: ~1e-4 µV); the float64 functions
agree with MNE to rounding (~1e-12 relative).
"""

from __future__ import annotations

import mne
import numpy as np
import pytest
from fixtures.tuh import _sample_signal
from scipy.fft import next_fast_len

from biofound_cli.corpora.base import Recording, UnusableRecording
from biofound_cli.signals.chain import ChainConfig, run_chain
from biofound_cli.signals.filters import fir_kernels, make_filter
from biofound_cli.signals.fir import apply_fir, bandpass_kernel, notch_kernel
from biofound_cli.signals.montage import TCP_PAIRS
from biofound_cli.signals.resample import can_fold, plan_resample, resample_row

TOLERANCE_UV = 1e-3


@pytest.fixture(scope="module")
def eeg_uv() -> np.ndarray:
    """60 s of the bundled EEG recording at 250 Hz, 21 channels, in µV."""
    data, _ = _sample_signal(250.0)
    return data[:, : int(60 * 250)] * 1e6


def _resample(data: np.ndarray, sfreq: float, new_sfreq: float) -> np.ndarray:
    """Every channel through ``resample_row``, in float64, as the chain resamples them."""
    plan = plan_resample(data.shape[1], sfreq, new_sfreq)
    return np.stack([resample_row(row, plan) for row in data])


@pytest.fixture
def raw():
    rng = np.random.default_rng(0)
    sfreq = 250.0
    data = rng.normal(0, 20e-6, (3, int(12 * sfreq)))
    return mne.io.RawArray(data, mne.create_info(["C3", "C4", "CZ"], sfreq, "eeg"), verbose="error")


@pytest.mark.parametrize("sfreq", [200.0, 250.0, 256.0, 512.0])
@pytest.mark.parametrize("band", [(0.1, 75.0), (1.0, 40.0), (0.5, None), (None, 30.0)])
def test_kernels_are_mnes(sfreq, band):
    l_freq, h_freq = band
    expected = mne.filter.create_filter(None, sfreq, l_freq, h_freq, verbose="error")
    np.testing.assert_allclose(bandpass_kernel(sfreq, l_freq, h_freq), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(("sfreq", "freqs"), [(250.0, (60.0,)), (256.0, (50.0,)), (512.0, (50.0, 100.0))])
def test_notch_kernels_are_mnes(sfreq, freqs):
    centres = np.array(freqs)
    lows, highs = centres - centres / 400 - 0.5, centres + centres / 400 + 0.5
    expected = mne.filter.create_filter(None, sfreq, highs, lows, l_trans_bandwidth=0.5, h_trans_bandwidth=0.5, verbose="error")
    np.testing.assert_allclose(notch_kernel(sfreq, freqs), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("target", [1, 7, 11, 97, 1000, 174751, 268435])
def test_next_fast_length_is_mnes(target):
    # The FFT sizes used throughout: scipy's real-transform sizes, MNE's 5-smooth lengths.
    assert next_fast_len(target, real=True) == mne.filter.next_fast_len(target)


def test_bandpass_matches_raw_filter_defaults(raw):
    expected = raw.copy().filter(0.1, 75.0, verbose="error").get_data() * 1e6
    filtered = make_filter(250.0, raw.n_times, 0.1, 75.0)(raw.get_data() * 1e6)
    np.testing.assert_allclose(filtered, expected, rtol=0, atol=1e-9)


def test_notch_matches_raw_notch_filter_defaults(raw):
    expected = raw.copy().notch_filter(60.0, verbose="error").get_data() * 1e6
    notched = make_filter(250.0, raw.n_times, None, None, (60.0,))(raw.get_data() * 1e6)
    np.testing.assert_allclose(notched, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("n_times", "sfreq", "new_sfreq"), [(3000, 250.0, 256.0), (4000, 512.0, 256.0), (999, 200.0, 256.0)])
def test_resample_matches_raw_resample(n_times, sfreq, new_sfreq):
    rng = np.random.default_rng(1)
    data = rng.normal(0, 20.0, (3, n_times))
    raw = mne.io.RawArray(data, mne.create_info(3, sfreq, "eeg"), verbose="error")
    expected = raw.copy().resample(new_sfreq, verbose="error").get_data()
    result = _resample(data, sfreq, new_sfreq)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-9)


def test_band_pass_and_notch_as_one_kernel_is_exact(eeg_uv):
    expected = apply_fir(apply_fir(eeg_uv[:3], bandpass_kernel(250.0, 0.1, 75.0)), notch_kernel(250.0, (60.0,)))
    assert len(fir_kernels(250.0, eeg_uv.shape[1], 0.1, 75.0, (60.0,))) == 1
    result = make_filter(250.0, eeg_uv.shape[1], 0.1, 75.0, (60.0,))(eeg_uv[:3])
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-9)


def _mne_chain(data_uv: np.ndarray) -> np.ndarray:
    raw = mne.io.RawArray(data_uv * 1e-6, mne.create_info(data_uv.shape[0], 250.0, "eeg"), verbose="error")
    raw.filter(0.1, 75.0, verbose="error").notch_filter(60.0, verbose="error").resample(256.0, verbose="error")
    return raw.get_data(units="uV")


@pytest.mark.parametrize("offset_uv", [0.0, 3000.0])
def test_resampling_only_the_kept_samples_matches_mne(eeg_uv, offset_uv):
    # 60 s at 250 Hz: MNE's inverse transform has an awkward length, so the chirp-z path runs.
    data = eeg_uv[:2] + offset_uv + np.linspace(0, 400.0, eeg_uv.shape[1])
    plan = plan_resample(data.shape[1], 250.0, 256.0)
    assert next_fast_len(plan.new_len, real=True) != plan.new_len
    expected = mne.filter.resample(data, up=256.0, down=250.0, npad="auto", verbose="error")
    np.testing.assert_allclose(_resample(data, 250.0, 256.0), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("offset_uv", [0.0, 3000.0])
def test_chain_reproduces_the_published_tuh_chain(eeg_uv, offset_uv):
    # A DC offset and a slow drift, as raw EEG has, must not cost precision.
    eeg_uv = eeg_uv + offset_uv + np.linspace(0, 400.0, eeg_uv.shape[1])
    names = [
        "FP1",
        "FP2",
        "F3",
        "F4",
        "C3",
        "C4",
        "P3",
        "P4",
        "O1",
        "O2",
        "F7",
        "F8",
        "T3",
        "T4",
        "T5",
        "T6",
        "A1",
        "A2",
        "FZ",
        "CZ",
        "PZ",
    ]
    recording = Recording(data=(eeg_uv * 1e-6).astype(np.float32), sfreq=250.0, ch_names=[f"EEG {name}-REF" for name in names])
    config = ChainConfig(window_seconds=5.0, l_freq=0.1, h_freq=75.0, notch_hz=(60.0,), sfreq=256.0, montage="tcp")
    windowed = run_chain(recording, config)
    # The published order: filter the referential channels, resample, then take bipolar differences.
    referential = _mne_chain(recording.data.astype(np.float64) * 1e6)
    row = {name: index for index, name in enumerate(names)}
    bipolar = np.stack([referential[row[a]] - referential[row[c]] for a, c in TCP_PAIRS])
    n_windows = bipolar.shape[1] // 1280
    expected = bipolar[:, : n_windows * 1280].reshape(22, n_windows, 1280).transpose(1, 0, 2)
    assert windowed.x.shape == expected.shape == (12, 22, 1280)
    assert np.abs(windowed.x - expected).max() < TOLERANCE_UV


def test_short_recordings_filter_in_two_passes_exactly():
    rng = np.random.default_rng(2)
    data = rng.normal(0, 20.0, (2, 3000))
    kernels = fir_kernels(250.0, 3000, 0.1, 75.0, (60.0,))
    assert len(kernels) == 2  # shorter than the combined kernel: MNE's reflection is limited
    expected = mne.filter.notch_filter(
        mne.filter.filter_data(data, 250.0, 0.1, 75.0, verbose="error"), 250.0, 60.0, verbose="error"
    )
    np.testing.assert_allclose(make_filter(250.0, 3000, 0.1, 75.0, (60.0,))(data), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        apply_fir(data, kernels[0]), mne.filter.filter_data(data, 250.0, 0.1, 75.0, verbose="error"), atol=1e-9
    )


def test_rate_too_low_for_the_low_pass_is_a_named_error():
    with pytest.raises(UnusableRecording) as error:
        make_filter(128.0, 1000, 0.1, 75.0, source="slow.edf")
    assert error.value.reason == "sfreq_too_low"
    assert "slow.edf: sampling rate 128 Hz is too low for h_freq=75 Hz" in error.value.message


def test_iir_bandpass_and_notch_attenuate_out_of_band_tones():
    sfreq = 200.0
    t = np.arange(int(10 * sfreq)) / sfreq
    in_band, line, drift = np.sin(2 * np.pi * 40 * t), np.sin(2 * np.pi * 50 * t), np.sin(2 * np.pi * 2 * t)
    filtered = make_filter(sfreq, len(t), 20.0, 90.0, method="iir")((in_band + drift)[None])
    middle = slice(400, -400)
    np.testing.assert_allclose(filtered[0, middle], in_band[middle], atol=0.05)
    notched = make_filter(sfreq, len(t), None, None, (50.0,), method="iir", notch_q=30.0)((in_band + line)[None])
    np.testing.assert_allclose(notched[0, middle], in_band[middle], atol=0.05)
    both = make_filter(sfreq, len(t), 20.0, 90.0, (50.0,), method="iir")((in_band + line + drift)[None])
    np.testing.assert_allclose(both[0, middle], in_band[middle], atol=0.05)


@pytest.mark.parametrize("sfreq", [250.0, 512.0])
def test_the_fir_inside_the_resampling_transform_gives_mnes_numbers(sfreq):
    # 10 min: MNE pads the resampling's input by 56 072 samples at 250 Hz (108 544 at 512 Hz),
    # room to fold the FIR into it; 512 Hz is the downsampling case of some TUH files.
    n_times = int(600 * sfreq)
    data, _ = _sample_signal(sfreq)
    eeg_uv = np.tile(data[:3] * 1e6, 11)[:, :n_times] + 3000.0 + np.linspace(0.0, 400.0, n_times)
    (kernel,) = fir_kernels(sfreq, n_times, 0.1, 75.0, (60.0,))
    assert can_fold(plan_resample(n_times, sfreq, 256.0), len(kernel))
    assert not can_fold(plan_resample(int(60 * sfreq), sfreq, 256.0), len(kernel))  # 60 s: the filter runs first
    recording = Recording(data=(eeg_uv * 1e-6).astype(np.float32), sfreq=sfreq, ch_names=["FP1", "FP2", "F3"])
    config = ChainConfig(window_seconds=5.0, l_freq=0.1, h_freq=75.0, notch_hz=(60.0,), sfreq=256.0)
    windowed = run_chain(recording, config)
    raw = mne.io.RawArray(recording.data.astype(np.float64), mne.create_info(3, sfreq, "eeg"), verbose="error")
    raw.filter(0.1, 75.0, verbose="error").notch_filter(60.0, verbose="error").resample(256.0, verbose="error")
    expected = raw.get_data(units="uV")
    assert windowed.x.shape == (120, 3, 1280)
    assert np.abs(windowed.x - expected.reshape(3, 120, 1280).transpose(1, 0, 2)).max() < TOLERANCE_UV


def test_a_bipolar_montage_transforms_each_electrode_once_with_the_published_numbers(monkeypatch):
    # 10 min, so that the FIR runs inside the resampling transform (the default chain on TUH files);
    # DC offsets of up to 20 mV, different per electrode, as raw referential EEG has.
    import scipy.fft

    n_times = 600 * 250
    data, names = _sample_signal(250.0)
    offsets_uv = np.linspace(-20000.0, 20000.0, len(names))[:, None]
    eeg_uv = np.tile(data * 1e6, 11)[:, :n_times] + offsets_uv + np.linspace(0.0, 400.0, n_times)
    recording = Recording(data=(eeg_uv * 1e-6).astype(np.float32), sfreq=250.0, ch_names=[f"EEG {name}-REF" for name in names])
    config = ChainConfig(window_seconds=5.0, l_freq=0.1, h_freq=75.0, notch_hz=(60.0,), sfreq=256.0, montage="tcp")
    run_chain(recording, config)  # the kernels' responses, computed once and cached, are not counted below
    transforms = []
    real_rfft = scipy.fft.rfft

    def counted_rfft(x, *args, **kwargs):
        transforms.append(x.shape)
        return real_rfft(x, *args, **kwargs)

    monkeypatch.setattr(scipy.fft, "rfft", counted_rfft)
    windowed = run_chain(recording, config)
    monkeypatch.undo()
    # The 22 TCP pairs use 19 electrodes: one forward transform each, not one per pair.
    assert len(transforms) == len({name for pair in TCP_PAIRS for name in pair}) == 19
    referential = _mne_chain(recording.data.astype(np.float64) * 1e6)
    row = {name: index for index, name in enumerate(names)}
    bipolar = np.stack([referential[row[a]] - referential[row[c]] for a, c in TCP_PAIRS])
    expected = bipolar.reshape(22, 120, 1280).transpose(1, 0, 2)
    assert windowed.x.shape == expected.shape
    assert np.abs(windowed.x - expected).max() < TOLERANCE_UV
