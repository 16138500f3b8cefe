"""Runs of constant per-sample labels: how EMG corpora with a label column become segments."""

from __future__ import annotations

import numpy as np


def constant_runs(*columns: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` sample ranges over which every column keeps one value.

    Parameters
    ----------
    *columns : ndarray, shape (n_samples,)
        Per-sample label columns of equal length (e.g. stimulus and repetition); a run ends
        wherever any of them changes.

    Returns
    -------
    list of (int, int)
        The runs in order, covering every sample exactly once.
    """
    n_samples = len(columns[0])
    if n_samples == 0:
        return []
    # A run starts at the first sample and wherever any column differs from the sample before.
    changes = np.ones(n_samples, dtype=bool)
    changes[1:] = np.any([column[1:] != column[:-1] for column in columns], axis=0)
    starts = np.flatnonzero(changes)
    stops = np.append(starts[1:], n_samples)
    return [(int(start), int(stop)) for start, stop in zip(starts, stops, strict=True)]
