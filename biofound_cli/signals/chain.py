"""The signal chain for one recording: pick → clean → µV → band-pass → notch → resample → montage → windows.

:class:`ChainConfig` holds every number of the chain, fully resolved (built-in defaults ←
the corpus's ``defaults`` ← the recipe). :func:`run_chain` applies it to one
:class:`~biofound_cli.corpora.base.Recording` and returns the windows and their labels.
Filtering happens at the native rate, before resampling, as in the published preprocessing.

The work runs one output channel at a time (a few at a time with ``resample_method = "grid"``,
whose transforms vectorise across channels): the channel is formed (a picked channel, or the
anode minus cathode of a bipolar pair) in float64, filtered and resampled in single precision
and cut into windows, which go to a :class:`WindowSink` (the shard being written) or into one
window array. Filters and resampling are linear and act on each channel alone, so taking the
bipolar difference first gives the published result (which filtered the referential channels)
up to rounding, while the worker never holds a second full-size copy of the recording: with a
sink its peak memory is the recording as read and a few channels' temporaries.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterable, Iterator, Literal, Protocol, Sequence

import numpy as np

from biofound_cli.errors import UnusableRecording
from biofound_cli.plural import counted, plural
from biofound_cli.signals.channels import channel_rows, normalize_channel_names
from biofound_cli.signals.filters import check_filterable, fir_filter, fir_kernels, make_filter
from biofound_cli.signals.grid_resample import BLOCK_ROWS, filter_resample_rows, plan_grid
from biofound_cli.signals.montage import (
    MONTAGES,
    bipolar_names,
    bipolar_rows,
    channels_lack_message,
    electrodes_not_listed,
    montage_electrodes,
)
from biofound_cli.signals.quality import check_flat_std, check_nan_fraction, check_truncated, missing_samples
from biofound_cli.signals.records import Recording, Segment
from biofound_cli.signals.resample import can_fold, plan_resample, resample_parts, resample_row
from biofound_cli.signals.windowing import clip_segments, segment_window_starts, window_starts

logger = logging.getLogger(__name__)

SHORT_EVENTS = "events_shorter_than_window"
"""The note (:attr:`WindowedRecording.notes`) counting labelled events too short to give one window."""
FLAT_KEPT = "flat_channels_kept"
"""The note (:attr:`WindowedRecording.notes`) counting the flat channels a recording was kept with
(:attr:`WindowedRecording.flat_channels_kept` names them)."""
LOWER_WINDOW_FOR_SHORT_EVENTS = "lower preprocess.window_seconds to keep them"
"""What :func:`run_chain` advises, by default, for labelled events too short for a window when others give windows."""

FLOAT16_MAX = float(np.finfo(np.float16).max)


ADMISSION_SETTINGS = {
    "max_nan_fraction": "too_many_nans",
    "flat_std": "flat_channels",
    "max_flat_fraction": "flat_channels",
    "on_truncated": "truncated",
}
"""The chain's settings that decide which recordings are used, not what their windows hold (→ the skip
reason each decides): the ones ``predict --set`` may change, the rest being the model's."""


def samples_of(seconds: float, sfreq: float) -> int:
    """Samples a span of ``seconds`` holds at ``sfreq`` Hz, as windows and strides are cut (rounded): the one rule
    both the cut and the checks that refuse a window below one sample use.

    Parameters
    ----------
    seconds : float
        The span.
    sfreq : float
        The rate, Hz.
    """
    return int(round(seconds * sfreq))


def window_differences(trained: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """``key a vs b`` for each setting recorded in both chains that shapes the windows differently.

    The settings of :data:`ADMISSION_SETTINGS` (which recordings are used) and ``dtype`` (how the
    windows are stored) are not compared, nor the corpus's options (file names, splits).

    Parameters
    ----------
    trained, other : dict
        Chains as checkpoints and packed files record them (``{"corpus", "options", **ChainConfig}``).
    """
    keys = [item.name for item in fields(ChainConfig) if item.name not in (*ADMISSION_SETTINGS, "dtype")]
    return [
        f"{key} {trained[key]!r} vs {other[key]!r}"
        for key in keys
        if key in trained and key in other and trained[key] != other[key]
    ]


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
    resample_method: Literal["mne", "grid"] = "mne"
    """``"mne"``: MNE's ``raw.resample`` (the published data); ``"grid"``: exactly on the output
    rate's grid, fused with the FIR (:mod:`~biofound_cli.signals.grid_resample`)."""
    iir_order: int = 4
    notch_q: float = 30.0
    zscore: bool = False
    """Standardise each channel over the whole recording (after the flat check)."""
    max_nan_fraction: float = 0.0
    flat_std: float = 1e-6
    """A channel whose std is below this (output units) is flat."""
    max_flat_fraction: float = 0.5
    dtype: Literal["float32", "float16"] = "float32"
    on_truncated: Literal["skip", "keep"] = "skip"
    """A recording its reader found cut short (``meta["truncated"]``): skip it (reason
    ``truncated``) or keep the part that is there, with a warning."""

    def input_channels(self) -> tuple[str, ...] | None:
        """The referential channels the chain reads, when known before reading: ``channels``, or the
        electrodes of a named bipolar montage; ``None`` for all (``montage = "auto"`` or ``"none"``)."""
        if self.channels:
            return tuple(self.channels)
        if self.montage in MONTAGES:
            return tuple(montage_electrodes(MONTAGES[self.montage]))
        return None

    def window_samples(self, sfreq: float) -> int:
        """Samples of one window at ``sfreq`` Hz, as :func:`run_chain` cuts them.

        Parameters
        ----------
        sfreq : float
            The rate of the windows (the output rate).
        """
        return samples_of(self.window_seconds, sfreq)

    @property
    def step_seconds(self) -> float:
        """Seconds between window starts: ``stride_seconds``, else the window's (no overlap)."""
        return self.stride_seconds or self.window_seconds

    def stride_samples(self, sfreq: float) -> int:
        """Samples between window starts at ``sfreq`` Hz (:attr:`step_seconds`); at least 1.

        Parameters
        ----------
        sfreq : float
            The rate of the windows (the output rate).
        """
        return max(samples_of(self.step_seconds, sfreq), 1)

    def unused_fraction(self) -> float:
        """The fraction of a recording no window covers when the stride is longer than the window.

        Counted in the samples the chain cuts when ``sfreq`` is set (0.499 s and 0.5 s at 200 Hz
        are both 100 samples, and nothing lies between windows), else in seconds.
        """
        window, stride = self.window_seconds, self.step_seconds
        if self.sfreq:
            window, stride = self.window_samples(self.sfreq), self.stride_samples(self.sfreq)
        return 0.0 if stride <= window else round(1.0 - window / stride, 6)

    def window_misfit(self, n_times: int | None, multiple: int) -> tuple[int, str, str] | None:
        """Whether a model taking ``n_times`` samples (``None``: any multiple of ``multiple``) takes these windows.

        Parameters
        ----------
        n_times : int or None
            The model's fixed window length in samples, ``None`` when it takes several.
        multiple : int
            The patch every window length must be a multiple of.

        Returns
        -------
        tuple or None
            ``None`` when it takes them (or the output rate is not known before reading); else the
            samples of a window, what the model takes, in words, and the ``window_seconds`` to set
            instead: the nearest lengths the model takes below and above this one, so the user sees both
            choices (``"2.4, or 2.6 if the recordings and their labelled events last that long"``), or the one
            that exists (a model built for one length, or a window shorter than one patch). The longer
            carries that condition: the data hold the shorter wherever they held this one, but a longer
            window skips every recording whose trials are no longer (SCP1's 3.5 s). Predict and ``validate`` word it.
        """
        if not self.sfreq or (n_times is None and multiple <= 1):
            return None
        samples = self.window_samples(self.sfreq)
        if samples == n_times or (not n_times and samples % multiple == 0):
            return None
        below = samples // multiple * multiple
        fits = [n_times] if n_times else [length for length in (below, below + multiple) if length > 0]
        takes = (
            f"{n_times}-sample windows ({n_times / self.sfreq:g} s)"
            if n_times
            else f"windows of a multiple of {multiple} samples (its patch)"
        )
        seconds = ", or ".join(
            f"{length / self.sfreq:g}"
            + (" if the recordings and their labelled events last that long" if length > samples else "")
            for length in fits
        )
        return samples, takes, seconds

    def to_json_dict(self) -> dict[str, Any]:
        """The config as plain JSON values (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_json_dict(cls, values: dict[str, Any]) -> ChainConfig:
        """The config :meth:`to_json_dict` wrote (lists become tuples; keys it does not know are ignored).

        Parameters
        ----------
        values : dict
            A stored chain, e.g. a shard's ``preprocess_config`` or a checkpoint's ``preprocessing``.
        """
        names = {item.name for item in fields(cls)}
        # Stored JSON: the constructor's own type of each field is what the chain wrote.
        kwargs: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value for key, value in values.items() if key in names
        }
        return cls(**kwargs)


class WindowSink(Protocol):
    """Where :func:`run_chain` puts the windows, one channel at a time (e.g. a
    :class:`~biofound_cli.store.shards.ShardWriter`), so they need not all be held in memory."""

    def open(self, n_windows: int, n_channels: int, n_samples: int, dtype: Any, *, window_start_seconds: np.ndarray) -> None:
        """Make room for ``n_windows`` windows of ``n_channels`` x ``n_samples`` values.

        Parameters
        ----------
        n_windows, n_channels, n_samples : int
            The shape of the recording's windows.
        dtype : numpy dtype
            The storage type of the windows (the chain's ``dtype``).
        window_start_seconds : np.ndarray
            (n_windows,) start of each window, in seconds from the recording's first sample.
        """

    def write_channel(self, index: int, windows: np.ndarray) -> None:
        """Take channel ``index`` of every window.

        Parameters
        ----------
        index : int
            The channel's row, ``0 .. n_channels - 1``, in the chain's output order.
        windows : np.ndarray
            (n_windows, n_samples) that channel's samples of each window.
        """


@dataclass
class WindowedRecording:
    """What the chain makes of one recording."""

    x: np.ndarray | None
    """``(n_windows, n_channels, n_samples)`` in ``config.dtype``; ``None`` when a sink took them."""
    n_windows: int
    y: np.ndarray | None
    split: list[str] | None
    """Per-window official split, only when the corpus gave segment splits."""
    ch_names: list[str]
    sfreq: float
    n_clipped: int = 0
    """Samples clipped to the float16 range."""
    meta: dict[str, Any] = field(default_factory=dict)
    """The recording's meta, plus ``events_outside`` / ``events_clipped`` when events had to be
    dropped or cut to the recording (they end up in the shard's attributes)."""
    window_start_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """``(n_windows,)`` float64: where each window starts, in seconds from the first sample."""
    notes: dict[str, int] = field(default_factory=dict)
    """What was kept with a warning, as counts a run can total: ``truncated_kept``,
    ``events_outside``, ``events_clipped``, ``flat_channels_kept`` (only the non-zero ones)."""
    flat_channels_kept: list[str] = field(default_factory=list)
    """The flat channels the recording was kept with (:func:`~biofound_cli.signals.quality.check_flat_std`)."""


def run_chain(
    recording: Recording,
    config: ChainConfig,
    *,
    source: str = "recording",
    sink: WindowSink | None = None,
    short_events_advice: str = LOWER_WINDOW_FOR_SHORT_EVENTS,
) -> WindowedRecording:
    """Apply the whole chain to one recording.

    With a ``sink``, each channel's windows go to it as soon as they are ready and the result's
    ``x`` is ``None``; without, they are gathered in ``x``.

    Parameters
    ----------
    recording : Recording
        What a corpus reader handed over: the data (channels x samples), rate, channel names, events
        and ``meta``.
    config : ChainConfig
        The chain's steps and their settings (channels, montage, filters, rate, windows, labels, ...).
    source : str
        The file the recording came from, named in every error.
    sink : WindowSink | None
        Takes each channel's windows as they are ready; None gathers them in the result's ``x``.
    short_events_advice : str
        What the warning about labelled events shorter than the window (when others give windows)
        tells the user to do; a caller whose window is fixed (``predict``: the model's) passes its own.

    Raises
    ------
    UnusableRecording
        A truncated recording (unless ``on_truncated = "keep"``), missing channels, a rate too
        low for the filter, too many NaNs, a recording shorter than one window, labelled events
        that give no window, or flat channels; the message names ``source`` and the fix.
    """
    notes = {"truncated_kept": 1} if check_truncated(recording.meta, config.on_truncated, source=source) else {}
    montage = recording.meta.get("montage", "tcp") if config.montage == "auto" else config.montage
    data = recording.data
    sfreq = float(recording.sfreq)
    rows, ch_names = _output_rows(recording.ch_names, config.channels, montage, source, recording.names_option)
    used = sorted({row for pair in rows for row in pair if row is not None})
    scale = 1e6 if config.units == "uV" else 1.0
    n_missing = check_nan_fraction(
        data,
        used,
        config.max_nan_fraction,
        source=source,
        ch_names=recording.ch_names,
        montage=montage,
        channels=config.channels,
        scale=scale,
    )
    check_filterable(sfreq, config.l_freq, config.h_freq, source=source)

    out_sfreq = float(config.sfreq) if config.sfreq is not None else sfreq
    transform = _channel_transform(config, sfreq, out_sfreq, data.shape[1], source)

    window_samples = config.window_samples(out_sfreq)
    starts, y, split, event_notes = _window_plan(
        recording, config, out_sfreq, transform.n_samples, window_samples, ch_names, source, short_events_advice
    )
    notes.update(event_notes)
    start_seconds = starts.astype(np.float64) / out_sfreq

    target = sink if sink is not None else _ArraySink()
    target.open(len(starts), len(rows), window_samples, np.dtype(config.dtype), window_start_seconds=start_seconds)
    stds = np.empty(len(rows))
    n_clipped = 0

    for index, signal in _transformed(data, rows, n_missing, scale, transform):
        # In the signal's own precision: numpy's pairwise sums keep float32 accurate to ~1e-7
        # here, and a float64 reduction costs twice as much.
        stds[index] = float(signal.std())
        signal, clipped = _normalise(signal, config)
        n_clipped += clipped
        windows = _windows(signal, starts, window_samples)
        target.write_channel(index, windows.astype(config.dtype, copy=False))
        del signal, windows
    flat = check_flat_std(stds, ch_names, config.flat_std, config.max_flat_fraction, source=source)
    if flat:
        notes[FLAT_KEPT] = len(flat)
    return WindowedRecording(
        x=target.x if isinstance(target, _ArraySink) else None,
        n_windows=len(starts),
        y=y,
        split=split,
        ch_names=list(ch_names),
        sfreq=out_sfreq,
        n_clipped=n_clipped,
        meta={**recording.meta, **event_notes},
        window_start_seconds=start_seconds,
        notes=notes,
        flat_channels_kept=flat,
    )


class _ArraySink:
    """The windows gathered in memory, for :func:`run_chain` without a sink."""

    x: np.ndarray

    def open(self, n_windows: int, n_channels: int, n_samples: int, dtype: Any, *, window_start_seconds: np.ndarray) -> None:
        self.x = np.empty((n_windows, n_channels, n_samples), dtype=dtype)

    def write_channel(self, index: int, windows: np.ndarray) -> None:
        self.x[:, index, :] = windows


def output_channel_names(channels: Sequence[str] | None, montage: str) -> list[str] | None:
    """The channels of a chain's windows when the chain fixes them (a montage's pairs, a channel list), else ``None``.

    Parameters
    ----------
    channels : sequence of str | None
        The chain's ``channels`` setting.
    montage : str
        The chain's montage (a name in ``MONTAGES`` or anything else for none).
    """
    if montage in MONTAGES:
        return bipolar_names(MONTAGES[montage])
    return normalize_channel_names(channels) if channels else None


def _output_rows(
    recording_channels: Sequence[str], channels: Sequence[str] | None, montage: str, source: str, names_option: str | None
) -> tuple[list[tuple[int, int | None]], list[str]]:
    """Each output channel as (anode_row, cathode_row or None) into the recording's data, and its name."""
    if channels or montage not in MONTAGES:
        # The listed channels; without a list every channel, refusing two that name one electrode (see channel_rows).
        rows: list[tuple[int, int | None]] = [
            (row, None) for row in channel_rows(recording_channels, channels or None, source=source, names_option=names_option)
        ]
    if montage in MONTAGES:
        # With channels = [...] and a montage, the pairs are looked up among the picked channels.
        missing = electrodes_not_listed(channels, montage) if channels else []
        if missing:
            raise UnusableRecording(f"{source}: {channels_lack_message(missing, montage)}", "missing_channels")
        picked = [anode for anode, _ in rows] if channels else None
        names = normalize_channel_names(channels) if channels else recording_channels
        pairs = bipolar_rows(names, montage, source=source)
        rows = [(picked[a], picked[c]) if picked is not None else (a, c) for a, c in pairs]
    return rows, output_channel_names(channels, montage) or normalize_channel_names(recording_channels)


def _transformed(
    data: np.ndarray, rows: list[tuple[int, int | None]], n_missing: int, scale: float, transform: _ChannelTransform
) -> Iterator[tuple[int, np.ndarray]]:
    """Each output channel filtered and resampled, with its index, as :func:`run_chain` writes them."""
    if transform.parts is not None and not n_missing and rows and all(cathode is not None for _, cathode in rows):
        yield from _bipolar_by_electrode(data, rows, scale, transform)
        return
    for first in range(0, len(rows), transform.block_rows):
        block = rows[first : first + transform.block_rows]
        yield from enumerate(transform.apply(_formed(data, block, n_missing, scale), len(block)), start=first)


def _bipolar_by_electrode(
    data: np.ndarray, rows: list[tuple[int, int | None]], scale: float, transform: _ChannelTransform
) -> Iterator[tuple[int, np.ndarray]]:
    """A bipolar montage's channels from its electrodes, each transformed once: ``T(a) - T(b)`` for each pair.

    The transform is linear, so this is ``T(a - b)``, and the published order besides (filter and
    resample the referential channels, then take differences). The TCP montage's 22 pairs use 19
    electrodes: 14 % fewer transforms, which take ~85 % of a recording's time with the default
    ``resample_method = "mne"`` (``benchmarks/preprocess.py``). Pairs go in the order of
    :func:`_pair_order`, and each electrode is kept only until its last pair.
    """
    assert transform.parts is not None
    order = _pair_order(rows)
    last_pair = {row: index for index in order for row in rows[index]}
    done: dict[int | None, tuple[np.ndarray, float]] = {}
    for index in order:
        anode, cathode = rows[index]
        for row in (anode, cathode):
            if row not in done and row is not None:
                done[row] = transform.parts(_in_units(_channel(data, row, 0, scale), scale))
        (anode_samples, anode_mean), (cathode_samples, cathode_mean) = done[anode], done[cathode]
        signal = anode_samples - cathode_samples
        # The means apart, in float64: a DC offset of millivolts costs the difference no precision.
        signal += signal.dtype.type(anode_mean - cathode_mean)
        for row in (anode, cathode):
            if last_pair[row] == index:
                del done[row]
        yield index, signal


def _pair_order(rows: list[tuple[int, int | None]]) -> list[int]:
    """The pairs in an order that keeps few electrodes waiting for a later pair: each next pair
    the one that leaves the fewest held (TCP: 4 electrodes at most, pair included, against 8 in
    the montage's own order, i.e. a worker's first recording within 3x its size)."""
    uses = {row: sum(row in pair for pair in rows) for row in {row for pair in rows for row in pair}}
    held: set[int | None] = set()
    left = list(range(len(rows)))
    order = []
    while left:
        index = min(left, key=lambda i: (len(held | set(rows[i])), _held_after(held, rows[i], uses), i))
        left.remove(index)
        order.append(index)
        held |= set(rows[index])
        for row in rows[index]:
            uses[row] -= 1
        held = {row for row in held if uses[row]}
    return order


def _held_after(held: set[int | None], pair: tuple[int, int | None], uses: dict[int | None, int]) -> int:
    """How many electrodes are still held after ``pair``, given each one's pairs to come (``uses``)."""
    return sum(uses[row] - pair.count(row) > 0 for row in held | set(pair))


def _in_units(signal: np.ndarray, scale: float) -> np.ndarray:
    """``signal`` (a float64 copy) scaled to the output units in place."""
    if scale != 1.0:
        signal *= scale
    return signal


def _formed(data: np.ndarray, block: list[tuple[int, int | None]], n_missing: int, scale: float) -> Iterator[np.ndarray]:
    """One channel at a time, as the transform takes them: anode (minus cathode), in output units."""
    for anode, cathode in block:
        if cathode is not None and not n_missing:
            # One float64 array for the difference (the samples are converted on the way).
            signal = np.subtract(data[anode], data[cathode], dtype=np.float64)
        else:
            signal = _channel(data, anode, n_missing, scale)
            if cathode is not None:
                signal -= _channel(data, cathode, n_missing, scale)
        if scale != 1.0:
            signal *= scale
        yield signal


def _normalise(signal: np.ndarray, config: ChainConfig) -> tuple[np.ndarray, int]:
    """Z-score the channel if asked, then clip it to float16's range when stored as float16; the values clipped."""
    if config.zscore:
        std = signal.std(ddof=1, dtype=np.float64)
        signal = (signal - signal.mean(dtype=np.float64)) / (std if std > 0 else 1.0)
    n_clipped = 0
    if config.dtype == "float16":
        n_clipped = int(np.count_nonzero(np.abs(signal) > FLOAT16_MAX))
        signal = np.clip(signal, -FLOAT16_MAX, FLOAT16_MAX)
    return signal, n_clipped


@dataclass(frozen=True)
class _ChannelTransform:
    """Filter + resample, designed once per recording: ``transform.apply(signals, count)`` takes
    ``count`` formed channels (up to ``block_rows``) one by one and returns them transformed."""

    apply: Callable[[Iterator[np.ndarray], int], Iterable[np.ndarray]]
    """Returns the channels in order: a list of rows, or one 2-D array (a block)."""
    n_samples: int
    block_rows: int = 1
    parts: Callable[[np.ndarray], tuple[np.ndarray, float]] | None = None
    """Where the transform is linear and keeps the mean apart (MNE's resampling with the FIR inside it):
    one channel transformed as its samples without its mean, and that mean (float64). A bipolar
    montage's electrodes are then transformed once each (:func:`_bipolar_by_electrode`). Not with
    ``resample_method = "grid"``: its blocks of four electrodes, held until their last pairs, took a
    worker's first recording from 2.5x to 3.4x its size for a smaller gain."""


def _one_by_one(transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[Iterator[np.ndarray], int], Iterable[np.ndarray]]:
    return lambda signals, count: [transform(signal) for signal in signals]


def _channel_transform(config: ChainConfig, sfreq: float, out_sfreq: float, n_times: int, source: str) -> _ChannelTransform:
    """Filter + resample for channels of ``n_times`` samples, run in single precision.

    With ``resample_method = "grid"`` the last FIR kernel is applied inside the resampling's
    transforms, and channels go through in blocks (see :data:`~biofound_cli.signals.grid_resample.BLOCK_ROWS`).
    """

    def design_filter() -> Callable[[np.ndarray], np.ndarray]:
        return make_filter(
            sfreq,
            n_times,
            config.l_freq,
            config.h_freq,
            config.notch_hz,
            method=config.filter_method,
            iir_order=config.iir_order,
            notch_q=config.notch_q,
            single=True,
            source=source,
        )

    resampling = not np.isclose(sfreq, out_sfreq, rtol=0, atol=1e-9)
    fir = config.filter_method == "fir"
    # The FIR's kernels (cached designs); short signals get two (see make_filter).
    kernels = fir_kernels(sfreq, n_times, config.l_freq, config.h_freq, config.notch_hz) if fir else []
    if resampling and config.resample_method == "grid":
        # The last kernel goes inside the transforms; the first of two, or the IIR filter, is applied on its own.
        fused = kernels[-1] if kernels else None
        apply_before = fir_filter(kernels[:-1], single=True) if fir else design_filter()
        grid = plan_grid(n_times, sfreq, out_sfreq, 1 if fused is None else len(fused))
        if grid is not None:

            def grid_block(signals: Iterator[np.ndarray], count: int) -> np.ndarray:
                return filter_resample_rows((apply_before(signal) for signal in signals), count, grid, fused, single=True)

            return _ChannelTransform(grid_block, grid.final_len, BLOCK_ROWS)
    filter_signal = design_filter()
    if not resampling:
        return _ChannelTransform(_one_by_one(filter_signal), n_times)
    plan = plan_resample(n_times, sfreq, out_sfreq)
    if len(kernels) == 1 and can_fold(plan, len(kernels[0])):
        # MNE's numbers with the FIR inside the resampling transform: two FFTs fewer.
        (kernel,) = kernels
        return _ChannelTransform(
            _one_by_one(lambda signal: resample_row(signal, plan, single=True, kernel=kernel)),
            plan.final_len,
            parts=lambda signal: resample_parts(signal, plan, single=True, kernel=kernel),
        )
    return _ChannelTransform(_one_by_one(lambda signal: resample_row(filter_signal(signal), plan, single=True)), plan.final_len)


def _window_plan(
    recording: Recording,
    config: ChainConfig,
    sfreq: float,
    n_samples: int,
    window_samples: int,
    ch_names: list[str],
    source: str,
    short_events_advice: str,
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, dict[str, int]]:
    """Window starts (in output samples), labels, per-window splits and event counts; no signal needed."""
    stride_samples = config.stride_samples(sfreq)
    y: np.ndarray | None = None
    split: list[str] | None = None
    # Events the reader already dropped or clipped (annotations outside the recording), plus the segments' own.
    counts = {key: int(recording.meta.get(key, 0)) for key in ("events_outside", "events_clipped")}
    if recording.segments is not None:
        starts, y, split, segment_counts = _segment_windows(
            recording, config, sfreq, n_samples, window_samples, stride_samples, source, short_events_advice
        )
        counts = {key: counts.get(key, 0) + count for key, count in segment_counts.items()}
    else:
        starts = window_starts(n_samples, window_samples, stride_samples)
    notes = {key: count for key, count in counts.items() if count}
    if counts["events_outside"] or counts["events_clipped"]:
        logger.warning(
            f"{source}: {counted(counts['events_outside'], 'labelled event')} "
            f"{'lies' if counts['events_outside'] == 1 else 'lie'} "
            "outside the recording "
            f"(0-{n_samples / sfreq:.1f} s) and were dropped, {counts['events_clipped']} ran past its edges and were "
            "clipped; check the annotation times"
        )
    if len(starts) == 0:
        raise UnusableRecording(
            # Samples, not a rounded duration: "3.0 s of signal gives no whole 3 s window" read as a contradiction.
            f"{source}: {n_samples / sfreq:g} s of signal ({counted(n_samples, 'sample')} at {sfreq:g} Hz) gives no whole "
            f"{config.window_seconds:g} s window ({window_samples} samples); lower preprocess.window_seconds or drop this file",
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
            split = [s for s, k in zip(split, keep, strict=True) if k] if split is not None else None
            if len(starts) == 0:
                raise UnusableRecording(f"{source}: no window carries a label in this mode", "no_labelled_windows")
    return starts, y, split, notes


def _segment_windows(
    recording: Recording,
    config: ChainConfig,
    sfreq: float,
    n_samples: int,
    window_samples: int,
    stride_samples: int,
    source: str,
    short_events_advice: str,
) -> tuple[np.ndarray, np.ndarray, list[str] | None, dict[str, int]]:
    """Windows inside the labelled segments, and how many segments were dropped, clipped or too short for a window.

    A recording whose segments give no window is rejected with what went wrong: no event
    (``no_events``), events all outside the recording (``events_outside``) or events shorter
    than the window (``events_too_short``), rather than a recording too short. When only some
    segments are shorter than the window, they are counted (``events_shorter_than_window``) and
    a warning names the labels they carried, ending in ``short_events_advice``: a class can
    otherwise vanish without a word.
    """
    segments: list[Segment] = list(recording.segments or [])
    duration = recording.data.shape[1] / float(recording.sfreq)
    # One sample at the coarser rate: a segment that ends on the last sample is inside.
    tolerance = 1.0 / min(float(recording.sfreq), sfreq)
    kept, n_outside, n_clipped = clip_segments(segments, duration, tolerance)
    starts, y, segment_splits, short = segment_window_starts(kept, sfreq, n_samples, window_samples, stride_samples)
    if len(starts) == 0:
        _raise_no_segment_window(segments, kept, duration, config.window_seconds, source)
    if short:
        short_labels = sorted({segment.label for segment in short})
        labels = ", ".join(str(label) for label in short_labels)
        logger.warning(
            f"{source}: {len(short)} of the {counted(len(kept), 'labelled event')} ({plural(len(short_labels), 'label')} "
            f"{labels}) {'lasts' if len(short) == 1 else 'last'} less than the "
            f"{config.window_seconds:g} s window and give no window; {short_events_advice}"
        )
    counts = {"events_outside": n_outside, "events_clipped": n_clipped, SHORT_EVENTS: len(short)}
    split: list[str] | None = [s or "" for s in segment_splits] if any(s is not None for s in segment_splits) else None
    return starts, y, split, counts


def _raise_no_segment_window(
    segments: list[Segment], kept: list[Segment], duration: float, window_seconds: float, source: str
) -> None:
    """Why no labelled segment gives a window: no event, all outside the recording, or all shorter than the window."""
    if not segments:
        raise UnusableRecording(
            f"{source}: the recording has no labelled event; there is nothing to cut windows from", "no_events"
        )
    if not kept:
        raise UnusableRecording(
            f"{source}: {'the' if len(segments) == 1 else 'all'} {counted(len(segments), 'labelled event')} "
            f"{'lies' if len(segments) == 1 else 'lie'} outside the recording (0-{duration:.1f} s); "
            "check the annotation times",
            "events_outside",
        )
    longest = max(segment.stop - segment.start for segment in kept)
    raise UnusableRecording(
        f"{source}: {'the one' if len(kept) == 1 else f'the longest of the {len(kept)}'} labelled "
        f"{plural(len(kept), 'event')} lasts {longest:.3f} s, shorter than the "
        f"{window_seconds:g} s window; "
        f"lower preprocess.window_seconds to {math.floor(longest * 1000) / 1000:g} or less",
        "events_too_short",
    )


def _channel(data: np.ndarray, row: int, n_missing: int, scale: float) -> np.ndarray:
    """One referential channel as a float64 copy, its missing samples (:func:`missing_samples`) set to 0 when the
    recording has any.

    Zero-filling before filtering keeps the FIR from spreading NaN over the whole channel.
    """
    signal = np.array(data[row], dtype=np.float64)
    if n_missing:
        signal[missing_samples(signal, scale)] = 0.0
    return signal


def _windows(signal: np.ndarray, starts: np.ndarray, window_samples: int) -> np.ndarray:
    """``(n_windows, window_samples)`` of one channel; a view when windows tile the signal."""
    n_windows = len(starts)
    if n_windows and starts[0] == 0 and (n_windows == 1 or np.all(np.diff(starts) == window_samples)):
        return signal[: n_windows * window_samples].reshape(n_windows, window_samples)
    return np.lib.stride_tricks.sliding_window_view(signal, window_samples)[starts]
