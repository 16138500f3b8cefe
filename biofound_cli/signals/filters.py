"""Band-pass and notch filters on ``(n_channels, n_samples)`` arrays.

``method="fir"`` is MNE's default zero-phase FIR (firwin, Hamming window, automatic length and
transition bands, ``reflect_limited`` padding): exactly what ``raw.filter(l_freq, h_freq)`` and
``raw.notch_filter(freq)`` do, which is the published TUH preprocessing. ``method="iir"`` is
the EMG recipe: a Butterworth band-pass applied forward and backward (``filtfilt``, so the
effective order doubles) and an ``iirnotch`` with quality factor ``notch_q``.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from biofound_cli.corpora.base import UnusableRecording

FilterMethod = Literal["fir", "iir"]


def check_filterable(sfreq: float, l_freq: float | None, h_freq: float | None, *, source: str = "recording") -> None:
    """Raise :class:`DataError` when the band edges do not fit below Nyquist at ``sfreq``."""
    nyquist = sfreq / 2.0
    for name, freq in (("h_freq", h_freq), ("l_freq", l_freq)):
        if freq is not None and freq >= nyquist:
            raise UnusableRecording(
                f"{source}: sampling rate {sfreq:g} Hz is too low for {name}={freq:g} Hz "
                f"(it must stay below Nyquist, {nyquist:g} Hz); lower {name} in the recipe or drop this file",
                "sfreq_too_low",
            )


def bandpass(
    data: np.ndarray,
    sfreq: float,
    l_freq: float | None,
    h_freq: float | None,
    *,
    method: FilterMethod = "fir",
    iir_order: int = 4,
    source: str = "recording",
) -> np.ndarray:
    """Band-pass (or high-/low-pass when one edge is ``None``) filter every channel.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
    sfreq : float
        Sampling rate in Hz.
    l_freq, h_freq : float | None
        Lower and upper pass-band edges in Hz; ``None`` leaves that side open.
    method : {"fir", "iir"}
        MNE's default FIR, or a Butterworth filter applied with ``filtfilt``.
    iir_order : int
        Butterworth order for ``method="iir"`` (before doubling by ``filtfilt``).
    source : str
        The file the data came from, named in errors.

    Returns
    -------
    ndarray, float64, same shape as ``data``; a float64 ``data`` is filtered in place.
    """
    if l_freq is None and h_freq is None:
        return np.asarray(data, dtype=np.float64)
    check_filterable(sfreq, l_freq, h_freq, source=source)
    data = np.asarray(data, dtype=np.float64)
    if method == "fir":
        import mne

        return mne.filter.filter_data(data, sfreq, l_freq, h_freq, copy=False, verbose="error")
    from scipy.signal import butter, sosfiltfilt

    if l_freq is not None and h_freq is not None:
        sos = butter(iir_order, [l_freq, h_freq], btype="bandpass", fs=sfreq, output="sos")
    elif l_freq is not None:
        sos = butter(iir_order, l_freq, btype="highpass", fs=sfreq, output="sos")
    else:
        sos = butter(iir_order, h_freq, btype="lowpass", fs=sfreq, output="sos")
    return sosfiltfilt(sos, data, axis=-1)


def notch(
    data: np.ndarray,
    sfreq: float,
    freqs: float | Sequence[float],
    *,
    method: FilterMethod = "fir",
    notch_q: float = 30.0,
    source: str = "recording",
) -> np.ndarray:
    """Remove line noise at ``freqs`` (Hz) from every channel.

    With ``method="fir"`` the notch width is MNE's default, ``freq / 200``, with a 1 Hz
    transition band. Frequencies at or above Nyquist are skipped: there is nothing to remove.
    """
    freq_list = [float(f) for f in np.atleast_1d(freqs) if 0 < float(f) < sfreq / 2.0]
    data = np.asarray(data, dtype=np.float64)
    if not freq_list:
        return data
    if method == "fir":
        import mne

        return mne.filter.notch_filter(data, sfreq, freq_list, copy=False, verbose="error")
    from scipy.signal import filtfilt, iirnotch

    for freq in freq_list:
        b, a = iirnotch(freq, notch_q, fs=sfreq)
        data = filtfilt(b, a, data, axis=-1)
    return data
