"""Checks that reject recordings a model should never see: too many NaNs, flat channels."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from biofound_cli.corpora.base import UnusableRecording


def fill_nans(data: np.ndarray, max_nan_fraction: float, *, source: str = "recording") -> np.ndarray:
    """Replace NaN samples by 0, or reject the recording when there are too many.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
    max_nan_fraction : float
        Largest tolerated fraction of NaN samples over the whole array.

    Raises
    ------
    DataError
        When the NaN fraction exceeds ``max_nan_fraction``.
    """
    nan_mask = ~np.isfinite(data)
    n_bad = int(nan_mask.sum())
    if n_bad == 0:
        return data
    fraction = n_bad / data.size
    if fraction > max_nan_fraction:
        raise UnusableRecording(
            f"{source}: {fraction:.2%} of the samples are NaN or infinite, above max_nan_fraction="
            f"{max_nan_fraction:g}; raise preprocess.max_nan_fraction to keep it (NaNs become 0)",
            "too_many_nans",
        )
    # Zero-filling before filtering keeps the FIR from spreading NaN over the whole channel.
    data = data.copy()
    data[nan_mask] = 0.0
    return data


def check_flat(
    data: np.ndarray, ch_names: Sequence[str], flat_std: float, max_flat_fraction: float, *, source: str = "recording"
) -> None:
    """Reject a recording whose share of flat channels (std below ``flat_std``) exceeds ``max_flat_fraction``.

    ``data`` is the final signal (after filters, montage and unit conversion), so ``flat_std``
    is in output units (µV for EEG).
    """
    if data.shape[0] == 0 or data.shape[1] == 0:
        return
    flat = np.asarray(data.std(axis=1) < flat_std)
    if flat.mean() > max_flat_fraction:
        names = [name for name, is_flat in zip(ch_names, flat) if is_flat]
        raise UnusableRecording(
            f"{source}: {len(names)} of {len(ch_names)} channels are flat (std < {flat_std:g}): "
            f"{', '.join(names)}; raise preprocess.max_flat_fraction or lower preprocess.flat_std to keep it",
            "flat_channels",
        )
