"""Checks that reject recordings a model should never see: too many NaNs, flat channels."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from biofound_cli.errors import UnusableRecording


def check_nan_fraction(
    data: np.ndarray, rows: Sequence[int], max_nan_fraction: float, *, source: str = "recording"
) -> int:
    """Count the NaN/infinite samples of ``data[rows]``; reject the recording when there are too many.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
    rows : sequence of int
        The channels the chain uses.
    max_nan_fraction : float
        Largest tolerated fraction of NaN samples over those channels; the chain sets them to 0.

    Returns
    -------
    int
        How many samples are not finite.

    Raises
    ------
    DataError
        When the NaN fraction exceeds ``max_nan_fraction``.
    """
    n_bad = sum(int(np.count_nonzero(~np.isfinite(data[row]))) for row in rows)
    if n_bad == 0:
        return 0
    fraction = n_bad / (len(rows) * data.shape[1])
    if fraction > max_nan_fraction:
        raise UnusableRecording(
            f"{source}: {fraction:.2%} of the samples are NaN or infinite, above max_nan_fraction="
            f"{max_nan_fraction:g}; raise preprocess.max_nan_fraction to keep it (NaNs become 0)",
            "too_many_nans",
        )
    return n_bad


def check_flat_std(
    stds: np.ndarray, ch_names: Sequence[str], flat_std: float, max_flat_fraction: float, *, source: str = "recording"
) -> None:
    """Reject a recording whose share of flat channels (std below ``flat_std``) exceeds ``max_flat_fraction``.

    ``stds`` are the standard deviations of the final channels (after filters, resampling,
    montage and unit conversion), so ``flat_std`` is in output units (µV for EEG).
    """
    if len(stds) == 0:
        return
    flat = np.asarray(stds) < flat_std
    if flat.mean() > max_flat_fraction:
        names = [name for name, is_flat in zip(ch_names, flat) if is_flat]
        raise UnusableRecording(
            f"{source}: {len(names)} of {len(ch_names)} channels are flat (std < {flat_std:g}): "
            f"{', '.join(names)}; raise preprocess.max_flat_fraction or lower preprocess.flat_std to keep it",
            "flat_channels",
        )
