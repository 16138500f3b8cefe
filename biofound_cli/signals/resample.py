"""Resampling to the model's rate, computing what ``raw.resample(sfreq)`` computes (FFT, ``npad="auto"``).

MNE pads each channel (``reflect_limited``) to the next power of two, takes its spectrum, cuts or
zero-pads it to ``new_len = round(ratio * padded_len)`` bins and inverts it, then trims the
padding. Its output grid is therefore ``padded_len / new_len`` input samples apart, which is not
exactly ``sfreq / new_sfreq`` (``new_len`` is rounded), and it starts ``round(ratio * pad) /
ratio - pad`` samples late: for 10 min at 250 → 256 Hz the published windows sit 0.36 input
samples (1.4 ms) off the ideal 256 Hz grid at the start and 0.62 (2.5 ms) at the end. An exact-grid resampler
(``scipy.signal.resample_poly``) therefore differs from the published data by tens of µV on
alpha-band signals, and so would any other FFT length: to agree with the published
preprocessing the transform must keep MNE's lengths. For 250 → 256 Hz these are
awkward (``new_len`` has a large prime factor) and a plain inverse FFT of that length is ten
times slower than a 5-smooth one. :func:`resample_row` therefore evaluates only the output samples
that survive the trim, with Bluestein's chirp-z algorithm on fast FFT sizes, and agrees with
``mne.filter.resample`` to ~1e-12 relative (``tests/unit/signals/test_filters.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from biofound_cli.signals.fir import fft_transforms, reflect_limited_pad, zero_phase_response


@dataclass(frozen=True)
class ResamplePlan:
    """MNE's padding and lengths for one (input length, rate ratio)."""

    n_times: int
    ratio: float
    final_len: int
    """Output samples kept."""
    pad_before: int
    pad_after: int
    padded_len: int
    new_len: int
    """Length of the inverse transform, before the trim."""
    trim_before: int
    """Output samples dropped at the start (the padding)."""


def plan_resample(n_times: int, sfreq: float, new_sfreq: float) -> ResamplePlan:
    """MNE's ``npad="auto"`` plan for resampling ``n_times`` samples from ``sfreq`` to ``new_sfreq``.

    Parameters
    ----------
    n_times : int
        Length of the input signal, in samples.
    sfreq, new_sfreq : float
        The input and output sampling rates, in Hz.
    """
    ratio = float(new_sfreq) / float(sfreq)
    final_len = max(int(round(ratio * n_times)), 1)
    min_add = min(n_times // 8, 100) * 2
    n_pad = 2 ** int(np.ceil(np.log2(n_times + min_add))) - n_times
    pad_before, extra = divmod(n_pad, 2)
    padded_len = n_times + 2 * pad_before + extra
    new_len = max(int(round(ratio * padded_len)), 1)
    return ResamplePlan(
        n_times=n_times,
        ratio=ratio,
        final_len=final_len,
        pad_before=pad_before,
        pad_after=pad_before + extra,
        padded_len=padded_len,
        new_len=new_len,
        trim_before=int(round(ratio * pad_before)),
    )


FOLD_MARGIN = 32768
"""Samples of MNE's resampling padding needed beyond the FIR's reach before the FIR may be
applied inside the resampling transform (see :func:`can_fold`)."""


def can_fold(plan: ResamplePlan, n_taps: int) -> bool:
    """Whether an ``n_taps`` zero-phase FIR can be applied inside the resampling transform of ``plan``.

    MNE filters, then pads the filtered signal by odd reflection. With a symmetric kernel that
    is the filter applied to the reflected raw signal (a point-symmetric extension stays one),
    so filtering the padded signal by multiplying its spectrum gives MNE's padded signal exactly,
    except within the kernel's reach of the transform's wrap-around, deep in the padding. The
    kept samples feel that zone only through the band-limited interpolation's tails: with at
    least :data:`FOLD_MARGIN` samples between it and the signal, ~1e-4 µV on EEG of hundreds of µV
    (``tests/unit/signals/test_filters.py``). The reflection must also be pure (not limited by
    the signal's length).

    Parameters
    ----------
    plan : ResamplePlan
        The resampling plan, from :func:`plan_resample`.
    n_taps : int
        Length of the FIR kernel.
    """
    reach = (n_taps - 1) // 2
    return min(plan.pad_before, plan.pad_after) - reach >= FOLD_MARGIN and plan.pad_after <= plan.n_times - 1


def resample_row(signal: np.ndarray, plan: ResamplePlan, *, single: bool = False, kernel: np.ndarray | None = None) -> np.ndarray:
    """Resample one channel (1-D) according to ``plan``; returns ``plan.final_len`` samples.

    float64, or float32 with ``single`` (transforms in single precision through ``scipy.fft``
    after taking out the mean, which FFT resampling keeps exactly; see
    :func:`~biofound_cli.signals.fir.fft_transforms`). With ``kernel`` (only where
    :func:`can_fold` allows), the signal is filtered by it in the same transform first: the
    result of ``apply_fir`` then ``resample_row`` with two FFTs fewer.

    Parameters
    ----------
    signal : np.ndarray
        (n_times,) one channel, ``plan.n_times`` samples long.
    plan : ResamplePlan
        From :func:`plan_resample` for this length and these rates.
    single : bool
        Transform in float32 and return float32 (float64 where the padding is not a pure reflection).
    kernel : np.ndarray | None
        A symmetric odd-length FIR to apply first, where :func:`can_fold` allows; None resamples only.
    """
    samples, offset = resample_parts(signal, plan, single=single, kernel=kernel)
    if offset:
        samples += samples.dtype.type(offset)
    return samples


def resample_parts(
    signal: np.ndarray, plan: ResamplePlan, *, single: bool = False, kernel: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """:func:`resample_row` as two parts whose sum it is: the samples without the channel's mean, and that mean.

    The mean comes through FFT resampling (and the FIR, scaled by its gain) exactly, so it is
    kept in float64 apart from the float32 samples: the chain adds the means of the two
    electrodes of a bipolar pair as one difference, so a DC offset of millivolts costs the
    pair no precision although each electrode is transformed once for all its pairs. The mean
    is 0.0 where it is not taken out (float64 without a kernel).

    Parameters
    ----------
    signal : np.ndarray
        (n_times,) one channel, ``plan.n_times`` samples long.
    plan : ResamplePlan
        From :func:`plan_resample` for this length and these rates.
    single : bool
        As :func:`resample_row`'s.
    kernel : np.ndarray | None
        As :func:`resample_row`'s.
    """
    # The mean trick needs the padding to be a pure reflection, as it is beyond ~400 samples.
    pure = plan.pad_after <= plan.n_times - 1
    single = single and pure
    transforms, dtype = fft_transforms(single)
    offset = float(np.mean(signal)) if single or kernel is not None else 0.0
    # An odd total padding puts the extra sample after, as MNE pads.
    padded = reflect_limited_pad(signal - offset if offset else signal, plan.pad_before, dtype, n_pad_after=plan.pad_after)
    spectrum = transforms.rfft(padded)
    del padded
    if kernel is not None:
        spectrum *= zero_phase_response(kernel, plan.padded_len, spectrum.real.dtype.str)
        offset *= float(np.sum(kernel, dtype=np.float64))
    shorter = plan.new_len < plan.padded_len
    use_len = plan.new_len if shorter else plan.padded_len
    if use_len % 2 == 0:
        # The bin at the shorter length's Nyquist frequency, as scipy's resample treats it.
        spectrum[use_len // 2] *= 2.0 if shorter else 0.5
    from scipy.fft import next_fast_len

    if shorter or next_fast_len(plan.new_len, real=True) == plan.new_len:
        spectrum *= plan.new_len / plan.padded_len
        samples = transforms.irfft(spectrum, plan.new_len)[plan.trim_before : plan.trim_before + plan.final_len]
    else:
        samples = _upsample_bluestein(spectrum, plan, transforms)
    return samples, offset


def _upsample_bluestein(spectrum: np.ndarray, plan: ResamplePlan, transforms) -> np.ndarray:
    """``irfft(spectrum, new_len)[trim_before : trim_before + final_len]``, scaled, on fast FFT sizes.

    With ``w = exp(2 pi i / new_len)`` each kept sample is ``Re(sum_m a_m w^(m k)) / padded_len``
    (``a_m`` the spectrum, doubled above DC). Writing ``m k = (m^2 + k^2 - (k - m)^2) / 2`` turns
    the sum over ``m`` into a convolution with a chirp, done by one FFT product. ``transforms``
    is ``numpy.fft`` or ``scipy.fft``; the precision follows ``spectrum``.
    """
    in_chirp, lag_spectrum, out_chirp, n_fft = _bluestein_factors(
        len(spectrum), plan.new_len, plan.trim_before, plan.final_len, spectrum.dtype.str
    )
    buffer = np.zeros(n_fft, dtype=spectrum.dtype)
    np.multiply(spectrum, in_chirp, out=buffer[: len(spectrum)])
    buffer[1 : len(spectrum)] *= 2.0
    # In place: this buffer is the largest temporary of the whole chain.
    buffer = transforms.fft(buffer, overwrite_x=True) if transforms is not np.fft else np.fft.fft(buffer, out=buffer)
    buffer *= lag_spectrum
    buffer = transforms.ifft(buffer, overwrite_x=True) if transforms is not np.fft else np.fft.ifft(buffer, out=buffer)
    samples = buffer[: plan.final_len]
    samples *= out_chirp
    return samples.real / buffer.real.dtype.type(plan.padded_len)


@lru_cache(maxsize=2)
def _bluestein_factors(
    n_bins: int, new_len: int, first: int, n_out: int, dtype: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The chirps of :func:`_upsample_bluestein` in complex ``dtype``; cached, since every channel
    of a recording shares them.

    Phases are exact integers (in units of ``pi / new_len``, reduced modulo ``2 new_len``), turned
    into unit phasors in float64 and stored in ``dtype`` straight away; the lag spectrum is
    transformed in ``dtype`` in place. For 10-min recordings this keeps the one-off cost of a
    new recording length to a few MB instead of ~20 MB of complex128 temporaries.
    """
    complex_dtype = np.dtype(dtype)
    two_n = 2 * new_len

    def squares(n: np.ndarray) -> np.ndarray:
        # n^2 modulo 2N: the phase of exp(i pi n^2 / N) in units of pi / N.
        return (n * n) % two_n

    def phasors(units: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        # exp(i pi units / N), computed in float64 and written into ``out`` (complex ``dtype``).
        values = np.exp((1j * np.pi / new_len) * units)
        if out is None:
            return values.astype(complex_dtype, copy=False)
        out[...] = values
        return out

    bins = np.arange(n_bins, dtype=np.int64)
    # exp(2 pi i (m * first mod N) / N) times the chirp of m, as one integer phase.
    in_chirp = phasors((2 * ((bins * first) % new_len) + squares(bins)) % two_n)
    from scipy.fft import next_fast_len

    # 5-smooth, as for the real transforms. real=False would allow factors 7 and 11 (285 120
    # instead of 288 000 points for 10 min at 250 -> 256 Hz), measured no faster for these
    # complex transforms: 7.3 against 7.4 ms in complex128, 2.5 against 2.2 ms in complex64.
    n_fft = next_fast_len(n_out + n_bins, real=True)
    lags = np.zeros(n_fft, dtype=complex_dtype)
    # The conjugate chirp: the negated phase.
    phasors((two_n - squares(np.arange(n_out, dtype=np.int64))) % two_n, out=lags[:n_out])
    phasors((two_n - squares(np.arange(-(n_bins - 1), 0, dtype=np.int64))) % two_n, out=lags[n_fft - (n_bins - 1) :])
    out_chirp = phasors(squares(np.arange(n_out, dtype=np.int64)))
    if complex_dtype == np.complex64:
        import scipy.fft

        lag_spectrum = scipy.fft.fft(lags, overwrite_x=True)
    else:
        lag_spectrum = np.fft.fft(lags, out=lags)
    return in_chirp, lag_spectrum, out_chirp, n_fft
