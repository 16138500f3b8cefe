"""The FIR designs of :mod:`biofound_cli.signals.fir` against SciPy's and MNE's, and why they are ours.

The kernels are written with numpy so that a preprocessing worker never imports ``scipy.signal``
(see the module docstring for the benchmark); these tests pin that they are still bit for bit
the library's kernels, and that the filter path indeed keeps ``scipy.signal`` out.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import mne
import numpy as np
import pytest
import scipy.fft
import scipy.signal

from biofound_cli.signals.fir import _lowpass_firwin, bandpass_kernel, notch_kernel

PUBLISHED_BAND = (0.1, 75.0)
"""The published TUH band-pass, ``raw.filter(0.1, 75.0)``."""


def _mne_notch(sfreq: float, freqs: tuple[float, ...]) -> np.ndarray:
    """``raw.notch_filter(freqs)``'s kernel: MNE designs it as this band-stop (``_prep_for_filtering``)."""
    centres = np.array(freqs)
    lows, highs = centres - centres / 400 - 0.5, centres + centres / 400 + 0.5
    return mne.filter.create_filter(None, sfreq, highs, lows, l_trans_bandwidth=0.5, h_trans_bandwidth=0.5, verbose="error")


@pytest.mark.parametrize("n_taps", [1, 3, 5, 65, 111, 113, 221, 825, 1651, 1691, 3301, 8251, 8449, 16501, 33001])
@pytest.mark.parametrize("cutoff", [0.0008, 0.0123, 0.1, 0.25, 0.5, 0.6205, 0.9])
def test_lowpass_is_scipy_firwin_bit_for_bit(n_taps, cutoff):
    expected = scipy.signal.firwin(n_taps, cutoff, window="hamming", pass_zero=True, fs=2.0)
    np.testing.assert_array_equal(_lowpass_firwin(n_taps, cutoff), expected)


@pytest.mark.parametrize("sfreq", [250.0, 256.0, 500.0, 512.0, 1000.0])
def test_published_band_pass_is_mnes_bit_for_bit(sfreq):
    expected = mne.filter.create_filter(None, sfreq, *PUBLISHED_BAND, verbose="error")
    np.testing.assert_array_equal(bandpass_kernel(sfreq, *PUBLISHED_BAND), expected)


@pytest.mark.parametrize("sfreq", [250.0, 256.0, 500.0, 512.0, 1000.0])
@pytest.mark.parametrize("freqs", [(50.0,), (60.0,)])
def test_published_notch_is_mnes_bit_for_bit(sfreq, freqs):
    np.testing.assert_array_equal(notch_kernel(sfreq, freqs), _mne_notch(sfreq, freqs))


def test_one_scipy_call_is_not_mnes_design():
    # MNE sums one low-pass per transition band, each as long as that band needs; neither a
    # single firwin call (one length for all edges) nor firwin2 (frequency sampling) gives it.
    sfreq, (l_freq, h_freq) = 250.0, PUBLISHED_BAND
    expected = bandpass_kernel(sfreq, l_freq, h_freq)
    nyquist = sfreq / 2.0
    h_stop = h_freq + h_freq / 4.0
    edges = np.array([l_freq, (h_freq + h_stop) / 2.0]) / nyquist
    single = scipy.signal.firwin(len(expected), edges, pass_zero=False, window="hamming")
    freq = np.array([0.0, l_freq, h_freq, h_stop, nyquist]) / nyquist
    sampled = scipy.signal.firwin2(len(expected), freq, [0, 1, 1, 0, 0], window="hamming")
    assert np.abs(single - expected).max() > 1e-3
    assert np.abs(sampled - expected).max() > 1e-3


def test_fft_sizes_are_5_smooth():
    # The FFT sizes of apply_fir, the grid planner and the resampler: scipy's real-transform
    # sizes are the smallest 5-smooth number at or above the target (what MNE uses too); the
    # complex ones (real=False) also take factors 7 and 11, e.g. 7 itself.
    smooth = np.unique([2**a * 3**b * 5**c for a in range(19) for b in range(12) for c in range(9)])
    targets = np.arange(1, 200_001)
    expected = smooth[np.searchsorted(smooth, targets)]
    assert [scipy.fft.next_fast_len(int(n), real=True) for n in targets] == expected.tolist()
    assert scipy.fft.next_fast_len(7, real=False) == 7 != scipy.fft.next_fast_len(7, real=True)


def test_the_filter_path_does_not_import_scipy_signal():
    # The reason the designs are written out here: scipy.signal costs each worker ~0.6 s of CPU
    # and ~48 MB (fir.py's docstring). Both resampling methods, the FIR kernels, float32 chain.
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from biofound_cli.corpora.base import Recording
        from biofound_cli.signals.chain import ChainConfig, run_chain

        names = "FP1 FP2 F3 F4 C3 C4 P3 P4 O1 O2 F7 F8 T3 T4 T5 T6 A1 A2 FZ CZ PZ".split()
        data = np.random.default_rng(0).normal(0, 20e-6, (21, 250 * 30)).astype(np.float32)
        for method in ("mne", "grid"):
            recording = Recording(data=data, sfreq=250.0, ch_names=[f"EEG {name}-REF" for name in names])
            config = ChainConfig(
                window_seconds=5.0, l_freq=0.1, h_freq=75.0, notch_hz=(60.0,), sfreq=256.0, montage="tcp", resample_method=method
            )
            assert run_chain(recording, config).x.shape == (6, 22, 1280)
        print(sorted(name for name in sys.modules if name == "scipy.signal" or name.startswith("scipy.signal.")))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
