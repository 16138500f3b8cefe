"""``resample_method = "grid"``: FIR + resampling onto the exact output grid in one spectral pass.

The references are independent of the implementation: sinusoids evaluated at ``k / new_sfreq``,
and MNE's own ``raw.filter`` + ``notch_filter`` followed by ``scipy.signal.resample`` at the exact
rate ratio on a long reflection of the filtered signal.
"""

from __future__ import annotations

import mne
import numpy as np
import pytest
import scipy.signal
from fixtures.tuh import _sample_signal
from scipy.fft import next_fast_len

from biofound_cli.corpora.base import Recording
from biofound_cli.signals.chain import ChainConfig, run_chain
from biofound_cli.signals.filters import fir_kernels
from biofound_cli.signals.fir import reflect_limited_pad
from biofound_cli.signals.grid_resample import filter_resample_rows, plan_grid, rate_ratio
from biofound_cli.signals.resample import plan_resample

TOLERANCE_UV = 1e-3


@pytest.fixture(scope="module")
def eeg_uv() -> np.ndarray:
    """60 s of the bundled EEG recording at 250 Hz, 3 channels in µV, with a DC offset and a drift."""
    data, _ = _sample_signal(250.0)
    n_times = int(60 * 250)
    return data[:3, :n_times] * 1e6 + 3000.0 + np.linspace(0.0, 400.0, n_times)


@pytest.mark.parametrize(
    ("sfreq", "new_sfreq", "terms"),
    [
        (250.0, 256.0, (128, 125)),
        (512.0, 256.0, (1, 2)),
        (500.0, 256.0, (64, 125)),
        (200.0, 256.0, (32, 25)),
        (256.0, 256.0, (1, 1)),
    ],
)
def test_rate_ratio_in_lowest_terms(sfreq, new_sfreq, terms):
    assert rate_ratio(sfreq, new_sfreq) == terms


def test_rate_ratio_without_a_small_fraction_is_none():
    assert rate_ratio(250.0123457, 256.0) is None
    assert plan_grid(15000, 250.0123457, 256.0) is None


@pytest.mark.parametrize(("sfreq", "new_sfreq"), [(250.0, 256.0), (500.0, 256.0), (512.0, 256.0), (200.0, 256.0), (256.0, 250.0)])
def test_plan_keeps_mnes_sample_count_on_fast_lengths(sfreq, new_sfreq):
    n_times = int(600 * sfreq)
    plan = plan_grid(n_times, sfreq, new_sfreq, 9901)
    assert plan.final_len == plan_resample(n_times, sfreq, new_sfreq).final_len
    assert plan.n_in * plan.up == plan.n_out * plan.down
    assert plan.pad_before % plan.down == 0 and plan.first * plan.down == plan.pad_before * plan.up
    assert min(plan.pad_before, plan.pad_after) >= 9900 // 2
    assert plan.first + plan.final_len <= plan.n_out
    assert next_fast_len(plan.n_in, real=True) == plan.n_in and next_fast_len(plan.n_out, real=True) == plan.n_out


@pytest.mark.parametrize(("sfreq", "new_sfreq"), [(250.0, 256.0), (500.0, 256.0), (512.0, 256.0), (200.0, 256.0)])
@pytest.mark.parametrize("single", [False, True])
def test_a_sinusoid_lands_exactly_on_the_new_grid(sfreq, new_sfreq, single):
    # 7.3 Hz, 20 µV on a 50 µV offset: below every Nyquist here, so the resampled signal is the sinusoid itself.
    seconds = 40.0
    times = np.arange(int(seconds * sfreq)) / sfreq
    signal = 50.0 + 20.0 * np.sin(2 * np.pi * 7.3 * times + 0.4)
    plan = plan_grid(len(signal), sfreq, new_sfreq)
    (result,) = filter_resample_rows([signal], 1, plan, single=single)
    new_times = np.arange(plan.final_len) / new_sfreq
    expected = 50.0 + 20.0 * np.sin(2 * np.pi * 7.3 * new_times + 0.4)
    # Away from the ends, where the reflection padding is not the sinusoid's continuation. Going
    # down, the spectrum is cut at the new Nyquist frequency, leakage included: ~1e-6 of the amplitude.
    interior = slice(int(2 * new_sfreq), -int(2 * new_sfreq))
    tolerance = 1e-3 if single else 1e-6 if new_sfreq > sfreq else 1e-4
    assert result.dtype == (np.float32 if single else np.float64)
    assert np.abs(result - expected)[interior].max() < tolerance


def _mne_filter_then_exact_resample(data_uv: np.ndarray, n_out: int) -> np.ndarray:
    """MNE's published filters, then FFT resampling 250 → 256 Hz at the exact ratio on a long reflection."""
    raw = mne.io.RawArray(data_uv * 1e-6, mne.create_info(data_uv.shape[0], 250.0, "eeg"), verbose="error")
    filtered = raw.filter(0.1, 75.0, verbose="error").notch_filter(60.0, verbose="error").get_data(units="uV")
    pad = (data_uv.shape[1] - 1) // 125 * 125  # as long as the reflection can be
    padded = reflect_limited_pad(filtered, pad)
    resampled = scipy.signal.resample(padded, padded.shape[1] * 128 // 125, axis=-1)
    first = pad * 128 // 125
    return resampled[:, first : first + n_out]


@pytest.mark.parametrize("single", [False, True])
def test_filter_and_resample_match_mnes_filter_on_the_exact_grid(eeg_uv, single):
    n_times = eeg_uv.shape[1]
    (kernel,) = fir_kernels(250.0, n_times, 0.1, 75.0, (60.0,))
    plan = plan_grid(n_times, 250.0, 256.0, len(kernel))
    result = filter_resample_rows(eeg_uv, len(eeg_uv), plan, kernel, single=single)
    expected = _mne_filter_then_exact_resample(eeg_uv, plan.final_len)
    assert np.abs(result - expected).max() < TOLERANCE_UV


def test_the_chain_with_grid_resampling(eeg_uv):
    names = ["FP1", "FP2", "F3"]
    recording = Recording(data=(eeg_uv * 1e-6).astype(np.float32), sfreq=250.0, ch_names=[f"EEG {n}-REF" for n in names])
    config = ChainConfig(window_seconds=5.0, l_freq=0.1, h_freq=75.0, notch_hz=(60.0,), sfreq=256.0, resample_method="grid")
    windowed = run_chain(recording, config)
    expected = _mne_filter_then_exact_resample(recording.data.astype(np.float64) * 1e6, 12 * 1280)
    assert windowed.x.shape == (12, 3, 1280)
    assert np.abs(windowed.x - expected.reshape(3, 12, 1280).transpose(1, 0, 2)).max() < TOLERANCE_UV
    # The published grid is a fraction of a sample away: the default method gives other numbers.
    published = run_chain(recording, ChainConfig(**{**config.__dict__, "resample_method": "mne"}))
    assert published.x.shape == windowed.x.shape
    assert np.abs(published.x - windowed.x).max() > 1.0


def test_short_recordings_filter_in_two_passes_then_fuse_the_notch():
    # 20 s is shorter than band-pass and notch kernels together: the band-pass runs on its own.
    rng = np.random.default_rng(3)
    data = np.cumsum(rng.normal(0, 2.0, (2, 5000)), axis=1)
    assert len(fir_kernels(250.0, 5000, 0.1, 75.0, (60.0,))) == 2
    recording = Recording(data=(data * 1e-6).astype(np.float32), sfreq=250.0, ch_names=["C3", "C4"])
    config = ChainConfig(window_seconds=4.0, l_freq=0.1, h_freq=75.0, notch_hz=(60.0,), sfreq=256.0, resample_method="grid")
    windowed = run_chain(recording, config)
    raw = mne.io.RawArray(recording.data.astype(np.float64), mne.create_info(2, 250.0, "eeg"), verbose="error")
    filtered = raw.filter(0.1, 75.0, verbose="error").notch_filter(60.0, verbose="error").get_data(units="uV")
    # Grid resampling alone on MNE's filtered signal; the edges differ by their padding, so compare the middle.
    plan = plan_grid(5000, 250.0, 256.0)
    expected = filter_resample_rows(filtered, len(filtered), plan)[:, : 5 * 1024]
    got = windowed.x.transpose(1, 0, 2).reshape(2, -1)
    assert got.shape == expected.shape
    middle = slice(1024, 4 * 1024)
    assert np.abs(got[:, middle] - expected[:, middle]).max() < 0.05


def test_a_rate_ratio_without_a_small_fraction_falls_back_to_mnes_method(eeg_uv):
    sfreq = 250.0123457
    recording = Recording(data=(eeg_uv[:1] * 1e-6).astype(np.float32), sfreq=sfreq, ch_names=["CZ"])
    grid = ChainConfig(window_seconds=5.0, sfreq=256.0, resample_method="grid")
    published = ChainConfig(window_seconds=5.0, sfreq=256.0, resample_method="mne")
    np.testing.assert_array_equal(run_chain(recording, grid).x, run_chain(recording, published).x)


def test_iir_filters_resample_on_the_grid_too():
    times = np.arange(20 * 1000) / 1000.0
    signal = 1e-3 * np.sin(2 * np.pi * 40.0 * times)
    recording = Recording(data=signal[None].astype(np.float32), sfreq=1000.0, ch_names=["EMG1"])
    config = ChainConfig(
        window_seconds=1.0,
        l_freq=20.0,
        h_freq=90.0,
        sfreq=200.0,
        units="native",
        filter_method="iir",
        resample_method="grid",
        flat_std=0.0,
    )
    windowed = run_chain(recording, config)
    result = windowed.x.reshape(-1)
    expected = 1e-3 * np.sin(2 * np.pi * 40.0 * np.arange(len(result)) / 200.0)
    # A 40 Hz tone inside a 20–90 Hz Butterworth band-pass (filtfilt: zero phase) keeps its phase.
    assert np.abs(result - expected)[200:-200].max() < 5e-5


class _ListSink:
    def __init__(self):
        self.shape, self.dtype, self.channels, self.starts = None, None, {}, None

    def open(self, n_windows, n_channels, n_samples, dtype, *, window_start_seconds):
        self.shape, self.dtype, self.starts = (n_windows, n_channels, n_samples), dtype, window_start_seconds

    def write_channel(self, index, windows):
        self.channels[index] = np.array(windows)


@pytest.mark.parametrize("method", ["mne", "grid"])
def test_a_sink_gets_the_same_windows_one_channel_at_a_time(eeg_uv, method):
    recording = Recording(data=(eeg_uv * 1e-6).astype(np.float32), sfreq=250.0, ch_names=["FP1", "FP2", "F3"])
    config = ChainConfig(window_seconds=5.0, l_freq=0.1, h_freq=75.0, notch_hz=(60.0,), sfreq=256.0, resample_method=method)
    in_memory = run_chain(recording, config)
    sink = _ListSink()
    streamed = run_chain(recording, config, sink=sink)
    assert streamed.x is None and streamed.n_windows == in_memory.n_windows == 12
    assert sink.shape == in_memory.x.shape and sink.dtype == np.float32 and sorted(sink.channels) == [0, 1, 2]
    np.testing.assert_array_equal(np.stack([sink.channels[i] for i in range(3)], axis=1), in_memory.x)
    np.testing.assert_array_equal(sink.starts, np.arange(12) * 5.0)
    np.testing.assert_array_equal(in_memory.window_start_seconds, sink.starts)
