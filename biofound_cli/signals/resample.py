"""Resampling to the model's rate, the way ``raw.resample(sfreq)`` does it (FFT, ``npad="auto"``)."""

from __future__ import annotations

import numpy as np


def resample(data: np.ndarray, sfreq: float, new_sfreq: float) -> np.ndarray:
    """Resample every channel of ``data`` from ``sfreq`` to ``new_sfreq`` Hz.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
    sfreq, new_sfreq : float
        Current and wanted sampling rates in Hz.

    Returns
    -------
    ndarray, shape (n_channels, round(n_samples * new_sfreq / sfreq))
        ``data`` itself when the rates are equal.
    """
    if np.isclose(sfreq, new_sfreq, rtol=0, atol=1e-9):
        return data
    import mne

    return mne.filter.resample(np.asarray(data, dtype=np.float64), up=new_sfreq, down=sfreq, npad="auto", verbose="error")
