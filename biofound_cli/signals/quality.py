"""Checks that reject recordings a model should never see: too many NaNs, flat channels, a cut file."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from biofound_cli.errors import AbsentChannels, UnusableRecording
from biofound_cli.plural import plural
from biofound_cli.signals.channels import normalize_channel_name
from biofound_cli.signals.montage import MONTAGES

logger = logging.getLogger(__name__)

MAX_SAMPLE = 1e30
"""The largest magnitude a sample may have in output units (µV for EEG); one beyond it is missing, as a NaN is.

No recording holds such a value: it is a missing-value marker (float32's largest, 3.4e38) or a corrupt number,
and taken as a signal it overflowed float32 in the shard (inf after the µV conversion or the filters' sums,
then a NaN loss in training). Below it, the chain's sums of a channel stay within float32.
"""


def missing_samples(values: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Where ``values`` hold no sample: NaN, infinite, or beyond :data:`MAX_SAMPLE` once multiplied by ``scale``.

    The one rule for bad samples: :func:`check_nan_fraction` counts them and the chain sets them to 0.

    Parameters
    ----------
    values : np.ndarray
        Samples in the file's units.
    scale : float
        The factor to output units (1e6 from V to µV).
    """
    # NaN compares False, so one comparison finds all three.
    return ~(np.abs(values) <= MAX_SAMPLE / scale)


def check_nan_fraction(
    data: np.ndarray,
    rows: Sequence[int],
    max_nan_fraction: float,
    *,
    source: str = "recording",
    ch_names: Sequence[str] | None = None,
    montage: str = "none",
    channels: Sequence[str] | None = None,
    scale: float = 1.0,
) -> int:
    """Count the missing samples (:func:`missing_samples`) of ``data[rows]``; reject the recording when there are too many.

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
    rows : sequence of int
        The channels the chain uses.
    max_nan_fraction : float
        Largest tolerated fraction of NaN samples over those channels; the chain sets them to 0.
    source : str
        The file the data came from, named in the error.
    ch_names : sequence of str | None
        The name of every row of ``data``; a channel with no finite sample at all is named in the error.
    montage : str
        The chain's montage (resolved, not ``auto``): a named one needs fixed electrodes, so the
        advice for a channel NaN throughout differs.
    channels : sequence of str | None
        The chain's ``preprocess.channels`` list, if any.
    scale : float
        The factor from the file's units to output units, which :data:`MAX_SAMPLE` is in.

    Returns
    -------
    int
        How many samples are missing (NaN, infinite or beyond :data:`MAX_SAMPLE`).

    Raises
    ------
    UnusableRecording
        (reason ``too_many_nans``) when the NaN fraction exceeds ``max_nan_fraction``, or whole
        channels are NaN whatever it is: the error names them and says how to leave them out
        (:func:`_empty_channel_advice`).
    """
    bad_per_row = {row: int(np.count_nonzero(missing_samples(data[row], scale))) for row in rows}
    n_bad = sum(bad_per_row.values())
    if n_bad == 0:
        return 0
    fraction = n_bad / (len(rows) * data.shape[1])
    # A channel NaN throughout is absent from the recording: no max_nan_fraction makes it a signal
    # (under a high one it became a channel of zeros the model was fed without a word).
    empty = [row for row, count in bad_per_row.items() if count == data.shape[1]]
    if fraction <= max_nan_fraction and not empty:
        return n_bad
    above = f"{fraction:.2%} of the samples are NaN, infinite or beyond ±{MAX_SAMPLE:g}"
    above += f", above max_nan_fraction={max_nan_fraction:g}" if fraction > max_nan_fraction else ""
    if empty and ch_names is not None:
        names = [normalize_channel_name(ch_names[row]) for row in empty]
        others = [normalize_channel_name(ch_names[row]) for row in rows if row not in empty]
        raise AbsentChannels(
            f"{absent_channels(source, names)}, so {above}; {_empty_channel_advice(names, others, montage, channels)}",
            tuple(names),
        )
    if fraction <= max_nan_fraction:
        return n_bad
    raise UnusableRecording(
        f"{source}: {above}; raise preprocess.max_nan_fraction to keep it (they become 0)",
        "too_many_nans",
    )


def absent_channels(source: str, names: Sequence[str]) -> str:
    """What a recording whose channels ``names`` are NaN throughout is said to lack.

    Parameters
    ----------
    source : str
        The recording, named in the message.
    names : sequence of str
        The channels NaN throughout.
    """
    holds = "holds" if len(names) == 1 else "hold"
    return (
        f"{source}: {plural(len(names), 'channel')} {', '.join(names)} {holds} no value at all "
        "(NaN throughout: absent from the recording)"
    )


def _empty_channel_advice(names: list[str], others: list[str], montage: str, channels: Sequence[str] | None) -> str:
    """How to leave out channels that are NaN throughout, given what chose the chain's channels.

    A named montage needs its electrodes (a ``channels`` list without them is refused), so the
    advice names the pairs lost and the way out of the montage; a ``channels`` list loses them;
    with neither, the channels to keep are listed for ``preprocess.channels``.
    """
    if montage in MONTAGES:
        lost = [f"{anode}-{cathode}" for anode, cathode in MONTAGES[montage] if {anode, cathode} & set(names)]
        return (
            f"montage {montage} needs them for {', '.join(lost)}, so this file cannot give those pairs; "
            f'to use it, set preprocess.montage = "none" and list the channels to keep in preprocess.channels'
        )
    if channels:
        return "remove them from preprocess.channels"
    keep = ", ".join(f'"{name}"' for name in others) if len(others) <= 32 else f"the other {len(others)} channels"
    return f"leave them out by listing the channels to keep in preprocess.channels ({keep})"


def check_flat_std(
    stds: np.ndarray, ch_names: Sequence[str], flat_std: float, max_flat_fraction: float, *, source: str = "recording"
) -> list[str]:
    """The flat channels (std below ``flat_std``) of a recording: too many reject it, a few are kept with a warning.

    ``stds`` are the standard deviations of the final channels (after filters, resampling,
    montage and unit conversion), so ``flat_std`` is in output units (µV for EEG).

    Parameters
    ----------
    stds : np.ndarray
        (n_channels,) standard deviation of each final channel.
    ch_names : sequence of str
        Names of those channels, listed in the error or the warning.
    flat_std : float
        A channel whose std is below this is flat, in output units.
    max_flat_fraction : float
        Largest tolerated fraction of flat channels, 0 to 1.
    source : str
        The file the recording came from, named in the error or the warning.

    Returns
    -------
    list of str
        The flat channels kept (at most ``max_flat_fraction`` of them): one warning names them,
        as a recording used with dead channels is otherwise indistinguishable from a sound one.

    Raises
    ------
    UnusableRecording
        (reason ``flat_channels``) when the share of flat channels exceeds ``max_flat_fraction``.
    """
    names = [name for name, std in zip(ch_names, np.asarray(stds), strict=True) if std < flat_std]
    if not names:
        return []
    fact = (
        f"{source}: {len(names)} of {len(ch_names)} channels {'is' if len(names) == 1 else 'are'} flat "
        f"(std < {flat_std:g}): {', '.join(names)}"
    )
    if len(names) / len(ch_names) > max_flat_fraction:
        raise UnusableRecording(
            f"{fact}; raise preprocess.max_flat_fraction or lower preprocess.flat_std to keep it", "flat_channels"
        )
    logger.warning(
        f"{fact}; the recording is used all the same, as preprocess.max_flat_fraction = {max_flat_fraction:g} "
        "allows (0 skips such recordings)"
    )
    return names


def check_truncated(meta: Mapping[str, Any], on_truncated: str, *, source: str = "recording") -> bool:
    """Skip, or keep with a warning, a recording its reader found cut short.

    A reader that knows how long a recording should be sets ``meta["truncated"] = True`` with
    ``seconds_expected`` and ``seconds_in_file`` (and, for EDF/BDF, ``records_in_header`` and
    ``records_in_file``; see :func:`biofound_cli.corpora.edf_header.truncation_meta`).

    Parameters
    ----------
    meta : mapping
        The recording's meta.
    on_truncated : {"skip", "keep"}
        ``preprocess.on_truncated``.
    source : str
        The file, named in messages.

    Returns
    -------
    bool
        Whether a truncated recording is kept (a warning was logged).

    Raises
    ------
    UnusableRecording
        (reason ``truncated``) for a truncated recording when ``on_truncated`` is ``"skip"``.
    """
    if not meta.get("truncated"):
        return False
    in_file, expected = float(meta.get("seconds_in_file", 0.0)), float(meta.get("seconds_expected", 0.0))
    records = (
        f" ({meta['records_in_file']} of the {meta['records_in_header']} data records its header declares)"
        if "records_in_header" in meta
        else ""
    )
    what = f"truncated: the file holds {in_file:g} s of the {expected:g} s expected{records}, as after an interrupted copy"
    if on_truncated != "keep":
        raise UnusableRecording(
            f'{source}: {what}; copy the file again, or set preprocess.on_truncated = "keep" to use the part that is there',
            "truncated",
        )
    logger.warning(f"{source}: {what}; kept the {in_file:g} s there (preprocess.on_truncated = keep)")
    return True
