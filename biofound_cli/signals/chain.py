"""The signal chain for one recording: pick → clean → µV → band-pass → notch → resample → montage → windows.

:class:`ChainConfig` holds every number of the chain, fully resolved (built-in defaults ←
the corpus's ``defaults`` ← the recipe). :func:`run_chain` applies it to one
:class:`~biofound_cli.corpora.base.Recording` and returns the windows and their labels.
Filtering happens at the native rate, before resampling, as in the published preprocessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from biofound_cli.corpora.base import Recording, UnusableRecording
from biofound_cli.signals.channels import normalize_channel_names, pick_channels
from biofound_cli.signals.filters import bandpass, notch
from biofound_cli.signals.montage import MONTAGES, apply_bipolar, montage_electrodes
from biofound_cli.signals.quality import check_flat, fill_nans
from biofound_cli.signals.resample import resample
from biofound_cli.signals.windowing import cut_windows, segment_window_starts, window_starts

FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class ChainConfig:
    """Every setting of the signal chain; ``None`` / empty switches a step off."""

    window_seconds: float
    stride_seconds: float | None = None
    """Step between window starts; ``None`` means ``window_seconds`` (no overlap)."""
    l_freq: float | None = None
    h_freq: float | None = None
    notch_hz: tuple[float, ...] = ()
    sfreq: float | None = None
    """Output rate in Hz; ``None`` keeps the native rate."""
    montage: str = "none"
    """``"tcp"`` (22 bipolar), ``"tcp20"``, ``"auto"`` (the corpus picks per recording via
    ``Recording.meta["montage"]``) or ``"none"`` (referential channels)."""
    channels: tuple[str, ...] | None = None
    """Referential channels to keep, in this order (any spelling); ``None`` keeps all (or the
    ones the montage needs)."""
    units: Literal["uV", "native"] = "uV"
    """``"uV"`` multiplies volts by 1e6 (EEG); ``"native"`` keeps the file's units (EMG)."""
    filter_method: Literal["fir", "iir"] = "fir"
    iir_order: int = 4
    notch_q: float = 30.0
    zscore: bool = False
    """Standardise each channel over the whole recording (after the flat check)."""
    max_nan_fraction: float = 0.0
    flat_std: float = 1e-3
    max_flat_fraction: float = 0.5
    dtype: Literal["float32", "float16"] = "float32"

    def to_json_dict(self) -> dict[str, Any]:
        """The config as plain JSON values (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


@dataclass
class WindowedRecording:
    """What the chain makes of one recording."""

    x: np.ndarray
    """``(n_windows, n_channels, n_samples)`` in ``config.dtype``."""
    y: np.ndarray | None
    split: list[str] | None
    """Per-window official split, only when the corpus gave segment splits."""
    ch_names: list[str]
    sfreq: float
    n_clipped: int = 0
    """Samples clipped to the float16 range."""
    meta: dict[str, Any] = field(default_factory=dict)


def run_chain(recording: Recording, config: ChainConfig, *, source: str = "recording") -> WindowedRecording:
    """Apply the whole chain to one recording.

    Raises
    ------
    UnusableRecording
        Missing channels, a rate too low for the filter, too many NaNs, flat channels, or a
        recording shorter than one window; the message names ``source`` and the fix.
    """
    montage = recording.meta.get("montage", "tcp") if config.montage == "auto" else config.montage
    data = np.asarray(recording.data)
    ch_names = list(recording.ch_names)
    if config.channels:
        data = pick_channels(data, ch_names, config.channels, source=source)
        ch_names = normalize_channel_names(config.channels)
    elif montage in MONTAGES:
        electrodes = montage_electrodes(MONTAGES[montage])
        data = pick_channels(data, ch_names, electrodes, source=source)
        ch_names = electrodes
    # One float64 working copy of the picked channels; every step below may change it in place.
    data = np.array(data, dtype=np.float64)
    data = fill_nans(data, config.max_nan_fraction, source=source)
    if config.units == "uV":
        data *= 1e6
    sfreq = float(recording.sfreq)
    data = bandpass(
        data, sfreq, config.l_freq, config.h_freq, method=config.filter_method, iir_order=config.iir_order, source=source
    )
    if config.notch_hz:
        data = notch(data, sfreq, config.notch_hz, method=config.filter_method, notch_q=config.notch_q, source=source)
    if config.sfreq is not None:
        data = resample(data, sfreq, config.sfreq)
        sfreq = float(config.sfreq)
    if montage in MONTAGES:
        data, ch_names = apply_bipolar(data, ch_names, montage, source=source)
    else:
        ch_names = normalize_channel_names(ch_names)
    check_flat(data, ch_names, config.flat_std, config.max_flat_fraction, source=source)
    if config.zscore:
        std = data.std(axis=1, ddof=1, keepdims=True)
        data = (data - data.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)

    window_samples = int(round(config.window_seconds * sfreq))
    stride_seconds = config.stride_seconds or config.window_seconds
    stride_samples = max(int(round(stride_seconds * sfreq)), 1)
    n_samples = data.shape[1]
    y: np.ndarray | None = None
    split: list[str] | None = None
    if recording.segments is not None:
        starts, y, segment_splits = segment_window_starts(
            recording.segments, sfreq, n_samples, window_samples, stride_samples
        )
        if any(s is not None for s in segment_splits):
            split = [s or "" for s in segment_splits]
    else:
        starts = window_starts(n_samples, window_samples, stride_samples)
    if len(starts) == 0:
        raise UnusableRecording(
            f"{source}: {n_samples / sfreq:.1f} s of signal gives no whole {config.window_seconds:g} s window; "
            "lower preprocess.window_seconds or drop this file",
            "too_short",
        )
    if recording.label is not None and recording.segments is None:
        y = np.full(len(starts), int(recording.label), dtype=np.int64)
    if recording.window_labeler is not None:
        y = np.asarray(recording.window_labeler(starts / sfreq, config.window_seconds, ch_names), dtype=np.int64)
        if y.ndim == 1 and (y < 0).any():
            # A labeler marks windows that belong to no class with -1 (TUAR mcc): drop them.
            keep = y >= 0
            starts, y = starts[keep], y[keep]
            split = [s for s, k in zip(split, keep) if k] if split is not None else None
            if len(starts) == 0:
                raise UnusableRecording(f"{source}: no window carries a label in this mode", "no_labelled_windows")

    n_clipped = 0
    if config.dtype == "float16":
        n_clipped = int(np.count_nonzero(np.abs(data) > FLOAT16_MAX))
        data = np.clip(data, -FLOAT16_MAX, FLOAT16_MAX)
    x = cut_windows(data, starts, window_samples, dtype=config.dtype)
    return WindowedRecording(x=x, y=y, split=split, ch_names=list(ch_names), sfreq=sfreq, n_clipped=n_clipped, meta=dict(recording.meta))
