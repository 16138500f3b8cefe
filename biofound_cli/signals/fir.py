"""MNE's default zero-phase FIR filters, designed once and applied to many channels at once.

``raw.filter(l_freq, h_freq)`` and ``raw.notch_filter(freqs)`` with their defaults (the published
TUH preprocessing) design a windowed-sinc FIR (``fir_design="firwin"``, Hamming window,
automatic transition bands and length) and apply it with ``reflect_limited`` edge padding and
FFT overlap-add, one channel at a time. This module computes the same kernels with numpy alone
and caches them per ``(sfreq, band)``; :func:`apply_fir` then filters a block of channels with
one FFT product, with exactly MNE's padding and alignment. The kernels are bit for bit
``mne.filter.create_filter``'s and the filtered signals agree with ``raw.filter`` to ~1e-12
relative (``tests/unit/signals/test_fir.py``, ``tests/unit/signals/test_filters.py``).

Why the design is written out here instead of calling ``scipy.signal.firwin`` (or
``mne.filter.create_filter``, which calls it): the kernels are designed in every preprocessing
worker, which otherwise never imports ``scipy.signal``, and that import alone costs a worker
~0.6-0.7 s of CPU and ~48 MB of resident memory. Measured with the ``biofound-preprocess``
phase of ``benchmarks/preprocess.py`` (8 recordings x 10 min at 250 Hz, 2 workers, 6 runs
each, :func:`_lowpass_firwin` swapped for ``scipy.signal.firwin``): CPU time 2.64-2.81 s with
this module, 3.59-4.21 s with scipy's (+43 % at the median), peak RSS 100 MB against 146 MB.
Designing the 8251-tap 0.1-75 Hz kernel itself takes 0.2 ms here and 0.55 ms through scipy
(once imported). ``test_fir.py`` checks that the design equals scipy's exactly and that the
filter path never imports ``scipy.signal``. FFT sizes come from ``scipy.fft.next_fast_len``
(``scipy.fft`` is loaded by every worker anyway).
"""

from __future__ import annotations

from functools import lru_cache
from math import ceil
from typing import Any, Callable

import numpy as np

HAMMING_LENGTH_FACTOR = 3.3
"""MNE's filter length, in transition-band periods, for a Hamming window (~53 dB stop band)."""

NOTCH_TRANSITION_HZ = 1.0
"""MNE's default ``trans_bandwidth`` of ``notch_filter``."""


def _lowpass_firwin(n_taps: int, cutoff: float) -> np.ndarray:
    """A Hamming-windowed sinc low-pass, normalised to unit DC gain; ``cutoff`` relative to Nyquist.

    Bit for bit ``scipy.signal.firwin(n_taps, cutoff, window="hamming", fs=2.0)``: the same
    operations in the same order (scipy's window is ``0.54 + (1 - 0.54) cos`` over
    ``linspace(-pi, pi)``, which differs from ``np.hamming`` in the last bit). Hand-written only
    to keep ``scipy.signal`` out of the workers (see the module docstring for the benchmark);
    ``tests/unit/signals/test_fir.py`` checks the equality.
    """
    taps = np.arange(n_taps) - 0.5 * (n_taps - 1)
    window = 0.54 + (1.0 - 0.54) * np.cos(np.linspace(-np.pi, np.pi, n_taps)) if n_taps > 1 else np.ones(1)
    kernel = cutoff * np.sinc(cutoff * taps) * window
    return kernel / kernel.sum()


def _piecewise_firwin(n_taps: int, freq: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """MNE's ``firwin`` design of a 0/1 gain curve: a sum of low-passes, one per gain step.

    ``freq`` runs from 0 to 1 (Nyquist). Walking down from Nyquist, every change of gain adds or
    subtracts a low-pass whose cutoff is the middle of that transition band and whose length is
    what that band needs, centred in the ``n_taps`` kernel.

    This is MNE's private ``mne.filter._firwin_design``; SciPy has no equivalent. One
    ``scipy.signal.firwin`` call with all the edges uses one length for every transition band
    (0.015 off MNE's 0.1-75 Hz kernel at 250 Hz, whose peak is 0.67), and ``scipy.signal.firwin2``
    is a frequency-sampling design (0.0095 off).
    """
    kernel = np.zeros(n_taps)
    if gain[-1] == 1:
        kernel[n_taps // 2] = 1.0
    prev_freq, prev_gain = freq[-1], gain[-1]
    for this_freq, this_gain in zip(freq[::-1][1:], gain[::-1][1:], strict=True):
        if this_gain != prev_gain:
            transition = (prev_freq - this_freq) / 2.0
            step_taps = int(round(HAMMING_LENGTH_FACTOR / transition))
            step_taps += 1 - step_taps % 2
            if step_taps > n_taps:
                raise ValueError(f"a {n_taps}-tap filter is too short for a transition band needing {step_taps} taps")
            offset = (n_taps - step_taps) // 2
            lowpass = _lowpass_firwin(step_taps, (prev_freq + this_freq) / 2.0)
            kernel[offset : n_taps - offset] += lowpass if this_gain == 1 else -lowpass
        prev_freq, prev_gain = this_freq, this_gain
    return kernel


def _auto_length(sfreq: float, narrowest_transition: float) -> int:
    # MNE formats the length as "<seconds>s" and parses it back; repr round-trips exactly.
    n_taps = max(int(ceil(float(f"{HAMMING_LENGTH_FACTOR / float(narrowest_transition)}") * sfreq)), 1)
    return n_taps + (n_taps - 1) % 2


@lru_cache(maxsize=32)
def bandpass_kernel(sfreq: float, l_freq: float | None, h_freq: float | None) -> np.ndarray:
    """The kernel of ``raw.filter(l_freq, h_freq)`` (band-, high- or low-pass) at ``sfreq``.

    Transition bands are MNE's ``"auto"``: ``min(max(l_freq / 4, 2), l_freq)`` below and
    ``min(max(h_freq / 4, 2), sfreq / 2 - h_freq)`` above. Cached: the result is read-only.

    Parameters
    ----------
    sfreq : float
        Sampling rate, in Hz.
    l_freq, h_freq : float | None
        Band edges in Hz, below Nyquist; None leaves that side open (both None give the identity kernel).
    """
    if l_freq is None and h_freq is None:
        return read_only(np.ones(1))
    nyquist = sfreq / 2.0
    transitions = []
    # The gain curve from 0 Hz to Nyquist: a stop band below l_freq and above h_freq, each
    # edge point left out where the stop band is empty.
    freq, gain = [0.0], [1]
    if l_freq is not None:
        l_trans = min(max(0.25 * l_freq, 2.0), l_freq)
        l_stop = l_freq - l_trans
        transitions.append(l_trans)
        freq, gain = ([0.0] if l_stop != 0 else []) + [l_stop, l_freq], ([0] if l_stop != 0 else []) + [0, 1]
    if h_freq is not None:
        h_trans = min(max(0.25 * h_freq, 2.0), nyquist - h_freq)
        h_stop = h_freq + h_trans
        transitions.append(h_trans)
        freq, gain = freq + [h_freq, h_stop], gain + [1, 0]
    if freq[-1] != nyquist:
        freq, gain = freq + [nyquist], gain + [gain[-1]]
    n_taps = _auto_length(sfreq, min(transitions))
    return read_only(_piecewise_firwin(n_taps, np.asarray(freq, dtype=float) / nyquist, np.asarray(gain)))


@lru_cache(maxsize=32)
def notch_kernel(sfreq: float, freqs: tuple[float, ...]) -> np.ndarray:
    """The kernel of ``raw.notch_filter(freqs)`` at ``sfreq``: stop bands ``f / 200`` wide, 1 Hz transitions.

    Parameters
    ----------
    sfreq : float
        Sampling rate, in Hz.
    freqs : tuple of float
        Notch centres in Hz, each below Nyquist (a tuple so the design can be cached).
    """
    centres = np.asarray(freqs, dtype=float)
    widths = centres / 200.0
    half_transition = NOTCH_TRANSITION_HZ / 2.0
    # The same float operations as MNE, in the same order, so the band edges agree to the bit.
    lows = np.array([f - w / 2.0 - half_transition for f, w in zip(centres, widths, strict=True)])
    highs = np.array([f + w / 2.0 + half_transition for f, w in zip(centres, widths, strict=True)])
    pass_low = lows - half_transition + half_transition
    stop_low = lows + half_transition
    pass_high = highs + half_transition - half_transition
    stop_high = highs - half_transition
    freq = np.r_[pass_low, stop_low, stop_high, pass_high]
    gain = np.r_[np.ones_like(pass_low), np.zeros_like(stop_low), np.zeros_like(stop_high), np.ones_like(pass_high)]
    order = np.argsort(freq)
    freq, gain = freq[order], gain[order]
    nyquist = sfreq / 2.0
    if freq[0] != 0:
        freq, gain = np.r_[0.0, freq], np.r_[1.0, gain]
    if freq[-1] != nyquist:
        freq, gain = np.r_[freq, nyquist], np.r_[gain, 1.0]
    n_taps = _auto_length(sfreq, half_transition)
    return read_only(_piecewise_firwin(n_taps, freq / nyquist, gain))


def read_only(array: np.ndarray) -> np.ndarray:
    """``array`` itself, made read-only: a cached design or table shared by every caller must not be changed by one.

    Parameters
    ----------
    array : np.ndarray
        The array to protect (changed in place).
    """
    array.flags.writeable = False
    return array


def reflect_limited_pad(
    data: np.ndarray,
    n_pad: int,
    dtype: np.dtype | type = np.float64,
    *,
    n_pad_after: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Pad the last axis the way MNE does (``pad="reflect_limited"``): ``n_pad`` samples before,
    ``n_pad_after`` (default ``n_pad``) after.

    Odd reflection about the edge sample (``2 x[0] - x[k]``), limited to the signal length, with
    zeros beyond that. Written into ``out`` when given (its last axis ``n_pad + n_times +
    n_pad_after`` long), else into a new array of ``dtype``; returns it.

    Parameters
    ----------
    data : np.ndarray
        (..., n_times) signals to pad along the last axis.
    n_pad : int
        Samples added before the signal.
    dtype : numpy dtype
        Type of the new array (unused with ``out``).
    n_pad_after : int | None
        Samples added after the signal; None means ``n_pad``.
    out : np.ndarray | None
        Array to write into, its last axis ``n_pad + n_times + n_pad_after`` long; None makes a new one.
    """
    n_times = data.shape[-1]
    after = n_pad if n_pad_after is None else n_pad_after
    if out is None:
        out = np.empty(data.shape[:-1] + (n_pad + n_times + after,), dtype=dtype)
    out[..., n_pad : n_pad + n_times] = data
    reflect = min(n_pad, n_times - 1)
    out[..., : n_pad - reflect] = 0.0
    np.subtract(2.0 * data[..., :1], data[..., reflect:0:-1], out=out[..., n_pad - reflect : n_pad])
    reflect = min(after, n_times - 1)
    end = n_pad + n_times
    np.subtract(2.0 * data[..., -1:], data[..., -2 : -reflect - 2 : -1], out=out[..., end : end + reflect])
    out[..., end + reflect :] = 0.0
    return out


def apply_fir(data: np.ndarray, kernel: np.ndarray, *, single: bool = False) -> np.ndarray:
    """Zero-phase filter each row of ``data`` with a symmetric odd-length ``kernel``, as MNE does.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_times) or (n_times,)
    kernel : ndarray, shape (n_taps,)
        From :func:`bandpass_kernel` or :func:`notch_kernel`.
    single : bool
        Transform in single precision (see :func:`fft_transforms`); float64 otherwise.

    Returns
    -------
    ndarray, the shape of ``data``; float64, or float32 with ``single``
        ``reflect_limited`` padding of ``n_taps - 1`` samples each side (at most the signal
        length), linear convolution by one FFT product per row, delay ``(n_taps - 1) / 2``
        removed: the result of ``mne.filter.filter_data`` up to rounding.
    """
    n_taps = len(kernel)
    if n_taps == 1:
        return np.asarray(data, dtype=np.float64) * kernel[0]
    n_times = data.shape[-1]
    n_edge = max(min(n_taps, n_times) - 1, 0)
    # A constant passes the filter scaled by the kernel's sum, as long as the padding is a pure
    # reflection; taking the mean out first keeps single precision for the part that varies.
    single = single and n_edge == n_taps - 1
    transforms, dtype = fft_transforms(single)
    offset = np.mean(data, axis=-1, keepdims=True) if single else 0.0
    padded = reflect_limited_pad(data - offset, n_edge, dtype=dtype)
    from scipy.fft import next_fast_len

    n_fft = next_fast_len(padded.shape[-1] + n_taps - 1, real=True)
    spectrum = transforms.rfft(padded, n=n_fft, axis=-1)
    del padded
    spectrum *= _kernel_spectrum(kernel, n_fft, spectrum.dtype)
    shift = (n_taps - 1) // 2 + n_edge
    filtered = transforms.irfft(spectrum, n=n_fft, axis=-1)[..., shift : shift + n_times]
    if single:
        filtered += (offset * kernel.sum()).astype(dtype)
    return filtered


def fft_transforms(single: bool) -> tuple[Any, type[np.floating]]:
    """The FFT module and working dtype: ``(scipy.fft, float32)`` when ``single``, else ``(numpy.fft, float64)``.

    scipy's float32 transforms are several times faster than float64 ones (numpy's are not).
    Used by the signal chain, which stores float32 anyway: on EEG of tens of µV the results stay
    within ~1e-4 µV of the float64 ones (``tests/unit/signals/test_filters.py``).

    Parameters
    ----------
    single : bool
        Transform in single precision.
    """
    if single:
        import scipy.fft

        return scipy.fft, np.float32
    return np.fft, np.float64


def derived_from_kernels(kernels: tuple[np.ndarray, ...], key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, cached (read-only) per (the kernels' identity, ``key``).

    The kernels are the designs :func:`bandpass_kernel` and :func:`notch_kernel` cache, so their
    identity names them; each entry holds them, so an id reused after one is freed cannot match.
    A few entries only: the recordings of a corpus share a handful of rates and lengths.

    Parameters
    ----------
    kernels : tuple of np.ndarray
        The cached kernel designs the value derives from.
    key : tuple
        What else the value depends on (e.g. a name, an FFT length, a precision).
    compute : callable
        Makes the value when it is not cached; it is made read-only.
    """
    entry_key = (*map(id, kernels), *key)
    entry = _DERIVED.get(entry_key)
    if entry is None or any(held is not kernel for held, kernel in zip(entry[0], kernels, strict=True)):
        if len(_DERIVED) >= 16:
            _DERIVED.clear()
        entry = (kernels, read_only(compute()))
        _DERIVED[entry_key] = entry
    return entry[1]


_DERIVED: dict[tuple, tuple[tuple[np.ndarray, ...], np.ndarray]] = {}


def _kernel_spectrum(kernel: np.ndarray, n_fft: int, dtype: np.dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    return derived_from_kernels((kernel,), ("spectrum", n_fft, dtype.str), lambda: np.fft.rfft(kernel, n=n_fft).astype(dtype))


def zero_phase_response(kernel: np.ndarray, n_fft: int, dtype: str) -> np.ndarray:
    """The real frequency response of the centred ``kernel`` at the ``n_fft // 2 + 1`` bins of a
    length-``n_fft`` transform, in ``dtype``: multiplying a spectrum by it is a circular,
    zero-phase convolution. Cached (read-only) for a few (kernel, length, precision).

    Parameters
    ----------
    kernel : np.ndarray
        An odd-length symmetric FIR kernel, centred on its middle tap.
    n_fft : int
        Length of the transform, at least the kernel's length.
    dtype : str
        ``"float32"`` or ``"float64"``, the precision of the transform and of the result.
    """

    def compute() -> np.ndarray:
        centre = (len(kernel) - 1) // 2
        wrapped = np.zeros(n_fft, dtype=np.dtype(dtype))
        wrapped[: len(kernel) - centre] = kernel[centre:]
        wrapped[n_fft - centre :] = kernel[:centre]
        # In the working precision (float32 through scipy.fft: a quarter of the float64 temporaries).
        # A symmetric kernel centred on sample 0 has a real spectrum; the imaginary part is rounding.
        return np.ascontiguousarray(fft_transforms(wrapped.dtype == np.float32)[0].rfft(wrapped).real)

    return derived_from_kernels((kernel,), ("zero-phase response", n_fft, dtype), compute)
