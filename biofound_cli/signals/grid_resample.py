"""Filtering and resampling onto the exact output grid in one spectral pass (``resample_method = "grid"``).

MNE's ``raw.resample`` (the published preprocessing, :mod:`~biofound_cli.signals.resample`) pads
to a power of two, so its output samples sit a fraction of an input sample off the ``k /
new_sfreq`` grid (0.36 input samples at the start of 10 min at 250 → 256 Hz, 0.62 at the end),
and the awkward inverse length makes it the most expensive step of the chain. This module
resamples by the exact rate ratio ``up / down`` instead: the channel is padded by reflection to
``n_in = down * m`` samples (``m`` chosen so both transform lengths are fast), transformed once,
multiplied by the zero-phase FIR's frequency response, cut or zero-padded to ``n_out = up * m``
bins and transformed back, which puts output sample ``k`` exactly at input time ``k * down / up``.

Two transforms per channel instead of five, and the result is what MNE's filter followed by an
FFT resampling onto the true grid gives: the FIR part is MNE's to rounding (the reflection
padding and a centred circular convolution compute its linear convolution exactly), and the
resampling is band-limited (trigonometric) interpolation of the reflected, filtered signal, as
MNE's, evaluated at the right times. Against the published data it differs by the time shift
above (tens of µV at alpha peaks), which is why it is an option and not the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Iterable

import numpy as np

from biofound_cli.signals.fir import fft_transforms, read_only, reflect_limited_pad, zero_phase_response

EDGE_MARGIN = 256
"""Samples of padding beyond the FIR's reach on each side, tapered to the signal's mean so that
the transform's periodic extension has no jump where its two ends meet."""

MAX_RATIO_TERM = 1 << 16
"""Largest numerator or denominator of the rate ratio the grid method handles; beyond it the
transforms would have to be at least that long."""


@dataclass(frozen=True)
class GridPlan:
    """Lengths and padding for one (input length, rate ratio, FIR length)."""

    n_times: int
    up: int
    down: int
    final_len: int
    """Output samples kept: ``round(n_times * up / down)``, as MNE keeps."""
    pad_before: int
    """Reflected samples before the signal; a multiple of ``down``."""
    pad_after: int
    reach: int
    """Padding next to the signal that the FIR reads, kept untouched; beyond it the padding is tapered."""
    n_in: int
    """Forward transform length, ``down * m``."""
    n_out: int
    """Inverse transform length, ``up * m``."""
    first: int
    """Index of output sample 0 in the inverse transform: ``pad_before * up / down``."""


def rate_ratio(sfreq: float, new_sfreq: float) -> tuple[int, int] | None:
    """``(up, down)`` with ``new_sfreq / sfreq == up / down`` in lowest terms, or ``None`` when the
    rates' decimal forms give no ratio with terms up to :data:`MAX_RATIO_TERM`.

    Parameters
    ----------
    sfreq, new_sfreq : float
        The input and output sampling rates, in Hz.
    """
    ratio = Fraction(repr(float(new_sfreq))) / Fraction(repr(float(sfreq)))
    return None if max(ratio.numerator, ratio.denominator) > MAX_RATIO_TERM else (ratio.numerator, ratio.denominator)


def plan_grid(n_times: int, sfreq: float, new_sfreq: float, n_taps: int = 1) -> GridPlan | None:
    """The grid plan for ``n_times`` samples at ``sfreq`` → ``new_sfreq`` through an ``n_taps`` FIR.

    ``None`` when the rate ratio has no small fraction (see :func:`rate_ratio`).

    Parameters
    ----------
    n_times : int
        Length of the input signal, in samples.
    sfreq, new_sfreq : float
        The input and output sampling rates, in Hz.
    n_taps : int
        Length of the FIR filtered in the same pass (1: none); its reach sets the padding.
    """
    terms = rate_ratio(sfreq, new_sfreq)
    if terms is None:
        return None
    up, down = terms
    reach = (max(n_taps, 1) - 1) // 2
    pad_before = -(-(reach + EDGE_MARGIN) // down) * down
    needed = n_times + pad_before + reach + EDGE_MARGIN
    m = _fast_multiplier(up, down, -(-needed // down))
    n_in = down * m
    return GridPlan(
        n_times=n_times,
        up=up,
        down=down,
        final_len=max(int(round(n_times * up / down)), 1),
        pad_before=pad_before,
        pad_after=n_in - n_times - pad_before,
        reach=reach,
        n_in=n_in,
        n_out=up * m,
        first=pad_before // down * up,
    )


def _fast_multiplier(up: int, down: int, minimum: int) -> int:
    """The smallest ``m >= minimum`` with ``up * m`` and ``down * m`` both fast FFT lengths, when
    the ratio's terms allow it (they are 5-smooth); otherwise the smallest 5-smooth ``m``.

    Fast lengths are ``scipy.fft.next_fast_len(n, real=True)``'s: the 5-smooth numbers, as
    both transforms are real."""
    from scipy.fft import next_fast_len

    m = next_fast_len(minimum, real=True)
    if next_fast_len(up, real=True) != up or next_fast_len(down, real=True) != down:
        return m
    while next_fast_len(up * m, real=True) != up * m or next_fast_len(down * m, real=True) != down * m:
        m = next_fast_len(m + 1, real=True)
    return m


BLOCK_ROWS = 4
"""Channels transformed together: pocketfft vectorises across rows, four float32 rows at a time
(~1.6x faster per channel than one by one), for ~3.5 MB more temporaries than a single channel."""


def filter_resample_rows(
    signals: Iterable[np.ndarray], count: int, plan: GridPlan, kernel: np.ndarray | None = None, *, single: bool = False
) -> np.ndarray:
    """Filter ``count`` channels with the zero-phase ``kernel`` (if any) and resample them by
    ``plan``, taken one by one from ``signals`` so that a caller can form them lazily (up to
    :data:`BLOCK_ROWS` at once is fastest).

    Parameters
    ----------
    signals : iterable of ndarray
        At least ``count`` channels, each of shape (n_times,); only the first ``count`` are read.
    count : int
        How many channels to transform.
    plan : GridPlan
        From :func:`plan_grid` with this kernel's length.
    kernel : ndarray | None
        A symmetric odd-length FIR (:func:`~biofound_cli.signals.fir.bandpass_kernel`, or the
        band-pass and notch convolved) applied before resampling; ``None`` resamples only.
    single : bool
        Transform in single precision after taking out the mean (kept exactly: scaled by the
        kernel's sum, and resampling keeps a constant), as the rest of the chain does; needs
        the padding to be a pure reflection, so shorter signals stay in float64.

    Returns
    -------
    ndarray, shape (count, plan.final_len); float32 with ``single``, float64 otherwise
        Output sample ``k`` at input time ``k * down / up``.
    """
    # With the padding a pure reflection, each mean can be taken out first and added back at the
    # end (the FIR scales a constant by its sum, resampling keeps it).
    pure = max(plan.pad_before, plan.pad_after) <= plan.n_times - 1
    single = single and pure
    transforms, dtype = fft_transforms(single)
    padded = np.empty((count, plan.n_in), dtype=dtype)
    offsets = np.zeros(count)
    # The first count rows of signals, which may go on: range first, so no row past them is drawn.
    for row, signal in zip(range(count), signals, strict=False):
        if pure:
            offsets[row] = np.mean(signal)
            signal = signal - offsets[row]
        # Shorter than the padding, the reflection is limited and zeros follow, as MNE pads.
        reflect_limited_pad(signal, plan.pad_before, n_pad_after=plan.pad_after, out=padded[row])
    _taper_outer_padding(padded, plan)
    spectrum = transforms.rfft(padded, axis=-1)
    del padded
    n_in_bins = plan.n_in // 2 + 1
    n_out_bins = plan.n_out // 2 + 1
    if plan.n_out > plan.n_in:
        resampled = np.zeros((count, n_out_bins), dtype=spectrum.dtype)
        resampled[:, :n_in_bins] = spectrum
        del spectrum
        if plan.n_in % 2 == 0:
            # The input's Nyquist bin stands for +f and -f alike: half of it goes to each.
            resampled[:, n_in_bins - 1] *= 0.5
    else:
        resampled = spectrum[:, :n_out_bins]
        del spectrum
        if plan.n_out % 2 == 0:
            resampled[:, n_out_bins - 1] *= 2.0
    if kernel is not None and len(kernel) > 1:
        shared = min(n_in_bins, n_out_bins)
        resampled[:, :shared] *= zero_phase_response(kernel, plan.n_in, resampled.real.dtype.str)[:shared]
    resampled *= plan.n_out / plan.n_in
    samples = transforms.irfft(resampled, plan.n_out, axis=-1)
    del resampled
    samples = samples[:, plan.first : plan.first + plan.final_len]
    if pure:
        gain = float(np.sum(kernel, dtype=np.float64)) if kernel is not None else 1.0
        samples += (offsets * gain).astype(dtype)[:, None]
    return samples


def _taper_outer_padding(padded: np.ndarray, plan: GridPlan) -> None:
    """Fade the padding beyond the FIR's reach to zero (the mean, once it is taken out) with a
    half-cosine, in place: the two ends then meet smoothly, and the band-limited interpolation
    does not ring from a jump there. What the FIR reads next to the signal is left as it is."""
    left = plan.pad_before - plan.reach
    right = plan.pad_after - plan.reach
    padded[..., :left] *= _half_cosine(left, padded.dtype.str)
    padded[..., padded.shape[-1] - right :] *= _half_cosine(right, padded.dtype.str)[::-1]


@lru_cache(maxsize=8)
def _half_cosine(length: int, dtype: str) -> np.ndarray:
    """``length`` samples rising from 0 towards 1 (excluded): 0.5 - 0.5 cos(pi t)."""
    return read_only((0.5 - 0.5 * np.cos(np.pi * np.arange(length) / length)).astype(dtype))
