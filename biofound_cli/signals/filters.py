"""Band-pass and notch filters on ``(n_channels, n_samples)`` arrays or single channels.

``method="fir"`` is MNE's default zero-phase FIR (firwin, Hamming window, automatic length and
transition bands, ``reflect_limited`` padding): what ``raw.filter(l_freq, h_freq)`` and
``raw.notch_filter(freq)`` compute, which is the published TUH preprocessing. The kernels are
designed once per ``(sfreq, band)`` and applied by FFT (:mod:`~biofound_cli.signals.fir`).
``method="iir"`` is the EMG recipe: a Butterworth band-pass applied forward and backward
(``filtfilt``, so the effective order doubles) and an ``iirnotch`` with quality factor ``notch_q``.

:func:`make_filter` designs the whole band-pass + notch step for one recording and returns a
function that filters one channel at a time, so a worker holds one channel's temporaries only.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import numpy as np

from biofound_cli.errors import UnusableRecording
from biofound_cli.signals.fir import apply_fir, bandpass_kernel, derived_from_kernels, notch_kernel

FilterMethod = Literal["fir", "iir"]


def check_filterable(
    sfreq: float, l_freq: float | None, h_freq: float | None, *, source: str = "recording", otherwise: str = "drop this file"
) -> None:
    """Raise :class:`UnusableRecording` when the band edges do not fit below Nyquist at ``sfreq``.

    Parameters
    ----------
    sfreq : float
        Sampling rate, in Hz.
    l_freq, h_freq : float | None
        Band edges in Hz; None is not checked.
    source : str
        The file the signal came from, named in the error.
    otherwise : str
        The other way out the error names, after lowering the band edge.
    """
    nyquist = sfreq / 2.0
    for name, freq in (("h_freq", h_freq), ("l_freq", l_freq)):
        if freq is not None and freq >= nyquist:
            raise UnusableRecording(
                f"{source}: sampling rate {sfreq:g} Hz is too low for {name}={freq:g} Hz "
                f"(it must stay below Nyquist, {nyquist:g} Hz); lower {name} in the recipe or {otherwise}",
                "sfreq_too_low",
            )


def _butterworth(sfreq: float, l_freq: float | None, h_freq: float | None, iir_order: int) -> np.ndarray:
    from scipy.signal import butter

    if l_freq is not None and h_freq is not None:
        return butter(iir_order, [l_freq, h_freq], btype="bandpass", fs=sfreq, output="sos")
    if l_freq is not None:
        return butter(iir_order, l_freq, btype="highpass", fs=sfreq, output="sos")
    return butter(iir_order, h_freq, btype="lowpass", fs=sfreq, output="sos")


def _notch_freqs(sfreq: float, freqs: float | Sequence[float]) -> list[float]:
    # At or above Nyquist there is nothing to remove.
    return [float(f) for f in np.atleast_1d(freqs) if 0 < float(f) < sfreq / 2.0]


def make_filter(
    sfreq: float,
    n_times: int,
    l_freq: float | None,
    h_freq: float | None,
    notch_hz: Sequence[float] = (),
    *,
    method: FilterMethod = "fir",
    iir_order: int = 4,
    notch_q: float = 30.0,
    single: bool = False,
    source: str = "recording",
) -> Callable[[np.ndarray], np.ndarray]:
    """Design the band-pass + notch step for ``n_times``-sample signals at ``sfreq`` once.

    ``single`` runs the FIR transforms in single precision and returns float32 (see
    :func:`~biofound_cli.signals.fir.fft_transforms`); IIR filters stay float64.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the signals, in Hz.
    n_times : int
        Length of the signals in samples (it decides whether band-pass and notch merge into one kernel).
    l_freq, h_freq : float | None
        Band edges in Hz: high-pass above ``l_freq``, low-pass below ``h_freq``; None leaves that side open,
        both None filter nothing but the notch.
    notch_hz : sequence of float
        Line-noise frequencies to remove, in Hz; those at or above Nyquist are skipped.
    method : {"fir", "iir"}
        ``fir``: MNE's default zero-phase FIR design; ``iir``: a Butterworth band-pass of ``iir_order``
        and ``iirnotch`` notches, run forwards and backwards.
    iir_order : int
        Order of the Butterworth filter (``iir`` only).
    notch_q : float
        Quality factor of each IIR notch (``iir`` only).
    single : bool
        Run the FIR transforms in float32 and return float32.
    source : str
        The file the signals came from, named in the error.

    Returns
    -------
    callable
        ``filter_signal(x)`` for a 1-D channel (or a 2-D block): the band-pass, then the notch.

    Notes
    -----
    For the FIR method the band-pass and notch kernels are convolved into one, applied in one
    FFT pass. This is exact, not an approximation: an odd (point-symmetric) reflection stays
    point-symmetric through a symmetric kernel, so the second filter's padding of the first
    filter's output equals the first filter applied to the longer padding. It holds while the
    signal is at least as long as the combined kernel (MNE limits the reflection to the signal
    length); shorter signals get the two passes.

    Raises
    ------
    UnusableRecording
        When a band edge is not below Nyquist (reason ``sfreq_too_low``).
    """
    check_filterable(sfreq, l_freq, h_freq, source=source)
    freq_list = _notch_freqs(sfreq, notch_hz)
    if method == "fir":
        return fir_filter(fir_kernels(sfreq, n_times, l_freq, h_freq, freq_list), single=single)
    from scipy.signal import filtfilt, iirnotch, sosfiltfilt

    sos = _butterworth(sfreq, l_freq, h_freq, iir_order) if l_freq is not None or h_freq is not None else None
    notches = [iirnotch(freq, notch_q, fs=sfreq) for freq in freq_list]

    def filter_iir(signal: np.ndarray) -> np.ndarray:
        signal = np.asarray(signal, dtype=np.float64)
        if sos is not None:
            signal = sosfiltfilt(sos, signal, axis=-1)
        for b, a in notches:
            signal = filtfilt(b, a, signal, axis=-1)
        return signal

    return filter_iir


def fir_filter(kernels: Sequence[np.ndarray], *, single: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """``filter_signal(x)`` applying ``kernels`` (from :func:`fir_kernels`) in turn, as MNE's passes;
    float64 in, float64 out (float32 with ``single``).

    Parameters
    ----------
    kernels : sequence of np.ndarray
        The kernels to apply, in order, as :func:`fir_kernels` returns them.
    single : bool
        Run the transforms in float32 and return float32.
    """

    def filter_fir(signal: np.ndarray) -> np.ndarray:
        signal = np.asarray(signal, dtype=np.float64)
        for kernel in kernels:
            signal = apply_fir(signal, kernel, single=single)
        return signal

    return filter_fir


def fir_kernels(
    sfreq: float, n_times: int, l_freq: float | None, h_freq: float | None, notch_hz: Sequence[float] = ()
) -> list[np.ndarray]:
    """The FIR kernels :func:`make_filter` applies in turn: none, one, or (short signals) two.

    Band-pass and notch become one kernel when the signal is at least as long as their
    convolution (see :func:`make_filter`). The edges must already be checked against Nyquist.

    Parameters
    ----------
    sfreq : float
        Sampling rate, in Hz.
    n_times : int
        Length of the signals in samples.
    l_freq, h_freq : float | None
        Band edges in Hz; None leaves that side open (both None: no band-pass kernel).
    notch_hz : sequence of float
        Line-noise frequencies in Hz; those at or above Nyquist are skipped.
    """
    kernels = []
    if l_freq is not None or h_freq is not None:
        kernels.append(bandpass_kernel(float(sfreq), l_freq, h_freq))
    freq_list = _notch_freqs(sfreq, notch_hz)
    if freq_list:
        kernels.append(notch_kernel(float(sfreq), tuple(freq_list)))
    if len(kernels) == 2 and n_times >= len(kernels[0]) + len(kernels[1]) - 1:
        # One design per (sfreq, band, notch): the two kernels are cached designs themselves.
        first, second = kernels
        kernels = [derived_from_kernels((first, second), ("convolved",), lambda: np.convolve(first, second))]
    return kernels
