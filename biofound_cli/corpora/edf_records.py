"""EDF data records read straight into float32: MNE's values, without MNE, for plain files.

An EDF file is a header, then ``n_records`` data records of ``samples per record`` little-endian
int16 samples of every signal in turn. A sample ``d`` is ``(d * cal + offset) * unit`` volts,
with ``cal = (physical_max - physical_min) / (digital_max - digital_min)``,
``offset = physical_min - digital_min * cal`` and ``unit`` 1e-6 for µV, 1e-3 for mV, else 1.
:func:`read_edf_records` computes exactly that, in float64 and in the same order of operations as
``mne.io.read_raw_edf(...).get_data()``, then rounds to float32: its values are MNE's, bit for bit
(the tests compare them). It reads whole blocks of records with one ``numpy.fromfile`` each.

It reads only files where MNE does nothing more than that, and returns ``None`` for any other
(the caller then reads through MNE): BDF, a header that does not add up, a stim channel
(``status``/``trigger``), repeated channel names (MNE renames them), a picked channel with an
undefined physical or digital range. The ``EDF Annotations`` channel is skipped, as MNE keeps it
out of the channels. Like MNE, the number of records is what the file holds, whatever the header
says. Unlike MNE, the picked channels are read at their own rate, which must be one rate
(:func:`check_one_rate`): MNE upsamples every signal to the file's fastest, so a file with an
EKG at 1024 Hz would turn 256 Hz EEG into 1024 Hz; for files left to MNE the other signals are
excluded from its reading (:func:`signals_to_exclude`). The header itself is
parsed by :func:`~biofound_cli.corpora.edf_header.read_edf_header`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from biofound_cli.corpora.edf_header import FIXED_HEADER_BYTES, SIGNAL_HEADER_BYTES, EdfHeader, read_edf_header
from biofound_cli.errors import UnusableRecording
from biofound_cli.signals.channels import channel_rows, normalize_channel_name

ANNOTATION_CHANNELS = ("EDF Annotations", "BDF Annotations")
STIM_NAMES = ("status", "trigger", "auto")
"""Channel names MNE's ``stim_channel = "auto"`` makes stim channels (any case; ``auto`` it refuses)."""
UNIT_SCALE = {"\u03bcV": 1e-6, "\u00b5V": 1e-6, "\x83\xcaV": 1e-6, "uV": 1e-6, "mV": 1e-3}
BLOCK_BYTES = 8 * 2**20
"""Records are read in blocks of about this many bytes, so the int16 copy of a long file is never whole."""


@dataclass(frozen=True)
class EdfLayout:
    """Where each signal lies in a data record and how its samples scale, for the channels that are signals."""

    header: EdfHeader
    ch_names: list[str]
    """The signals (annotation channels left out), as MNE names them."""
    first_sample: list[int]
    """Where each signal starts within a record, in samples."""
    n_samps: list[int]
    cal: list[float]
    offset: list[float]
    unit: list[float]


def read_edf_records(path: Path, channels: Sequence[str] | None = None) -> tuple[np.ndarray, float, list[str]] | None:
    """``(data, sfreq, ch_names)`` of an EDF file in volts as float32, or ``None`` when MNE must read it.

    Parameters
    ----------
    path : Path
        The ``.edf`` file.
    channels : sequence of str | None
        Read only these channels (any spelling, looked up by normalised name), in this order;
        ``None`` reads every signal.

    Raises
    ------
    UnusableRecording
        (reason ``missing_channels``) when a requested channel is absent, naming every channel the file has;
        (reason ``ambiguous_channels``) when two channels name one picked electrode; (reason
        ``mixed_rates``) when the picked channels are stored at different rates.
    """
    layout = read_edf_layout(path)
    if layout is None:
        return None
    picks = channel_rows(layout.ch_names, channels, source=str(path))
    header = layout.header
    check_one_rate(
        [layout.ch_names[pick] for pick in picks], [layout.n_samps[pick] / header.record_seconds for pick in picks], str(path)
    )
    if any(not np.isfinite(layout.cal[pick]) for pick in picks):
        return None
    # The picked signals' own rate, which may be below the file's fastest (MNE would upsample them to it).
    n_records, record_samples, n = header.records_in_file, header.record_samples, layout.n_samps[picks[0]]
    data = np.empty((len(picks), n_records * n), dtype=np.float32)
    per_block = max(BLOCK_BYTES // header.record_bytes, 1)
    scratch = np.empty((min(per_block, n_records), n), dtype=np.float64)
    for first in range(0, n_records, per_block):
        count = min(per_block, n_records - first)
        offset = header.header_bytes + first * header.record_bytes
        records = np.fromfile(path, dtype="<i2", count=count * record_samples, offset=offset).reshape(count, record_samples)
        work = scratch[:count]
        for row, pick in enumerate(picks):
            start = layout.first_sample[pick]
            # MNE's order of operations in float64: (digital * cal + offset) * unit.
            np.multiply(records[:, start : start + n], layout.cal[pick], out=work)
            work += layout.offset[pick]
            work *= layout.unit[pick]
            data[row, first * n : (first + count) * n] = work.reshape(-1)
    return data, n / header.record_seconds, [layout.ch_names[pick] for pick in picks]


def read_edf_layout(path: Path) -> EdfLayout | None:
    """The record layout of a plain EDF file, or ``None`` for a file :func:`read_edf_records` leaves to MNE.

    Parameters
    ----------
    path : Path
        The ``.edf`` file.
    """
    header = read_edf_header(path)
    if header is None or header.version[:1] == b"\xff" or not header.record_seconds > 0:
        return None
    if header.header_bytes != FIXED_HEADER_BYTES + SIGNAL_HEADER_BYTES * len(header.labels):
        return None
    signals = [index for index, label in enumerate(header.labels) if label not in ANNOTATION_CHANNELS]
    names = [header.labels[index] for index in signals]
    if not signals or len(set(names)) < len(names) or any(name.lower() in STIM_NAMES for name in names):
        return None
    if min(header.n_samps) <= 0:
        return None
    starts = np.concatenate([[0], np.cumsum(header.n_samps)])
    cal, offset = [], []
    for index in signals:
        physical_range = header.physical_max[index] - header.physical_min[index]
        digital_range = header.digital_max[index] - header.digital_min[index]
        # MNE substitutes 1 for an undefined range (with a warning); such a channel is left to it.
        defined = np.isfinite(digital_range) and digital_range != 0 and physical_range != 0
        scale = physical_range / digital_range if defined else float("nan")
        cal.append(scale)
        offset.append(header.physical_min[index] - header.digital_min[index] * scale)
    return EdfLayout(
        header=header,
        ch_names=names,
        first_sample=[int(starts[index]) for index in signals],
        n_samps=[header.n_samps[index] for index in signals],
        cal=cal,
        offset=offset,
        unit=[UNIT_SCALE.get(header.units[index], 1.0) for index in signals],
    )


def check_one_rate(ch_names: Sequence[str], rates: Sequence[float], source: str) -> None:
    """Refuse channels stored at different sampling rates: a recording has one rate.

    The chain filters and resamples a recording at one rate; MNE would upsample the slower
    channels to the fastest without a word (an EKG at 1024 Hz turning 256 Hz EEG into 1024 Hz).

    Parameters
    ----------
    ch_names : sequence of str
        The channels to be read, as the file names them.
    rates : sequence of float
        The sampling rate of each, in Hz.
    source : str
        The file, named in the error.

    Raises
    ------
    UnusableRecording
        (reason ``mixed_rates``) naming the channels at each rate and what to do.
    """
    by_rate: dict[float, list[str]] = {}
    for name, rate in zip(ch_names, rates, strict=True):
        by_rate.setdefault(rate, []).append(normalize_channel_name(name))
    if len(by_rate) < 2:
        return
    listed = "; ".join(f"{', '.join(names)} at {rate:g} Hz" for rate, names in sorted(by_rate.items()))
    raise UnusableRecording(
        f"{source}: the channels read have different sampling rates ({listed}); "
        "set preprocess.channels to channels of one rate, or leave this file out",
        "mixed_rates",
    )


def signals_to_exclude(path: Path, channels: Sequence[str] | None) -> list[str]:
    """The signals of an EDF/BDF file MNE should leave out so that it reads ``channels`` at their own rate.

    MNE reads every signal at the rate of the fastest one it reads, so the ones the chain drops
    are excluded from reading (``exclude=``); the ones it keeps must share one rate.

    Parameters
    ----------
    path : Path
        The ``.edf`` or ``.bdf`` file.
    channels : sequence of str | None
        The channels the chain uses (any spelling); ``None`` reads every signal.

    Returns
    -------
    list of str
        Signal labels as the header spells them (empty when the header cannot be parsed: MNE
        then says what is wrong with the file).

    Raises
    ------
    UnusableRecording
        (reason ``mixed_rates``) when the channels read have different rates; ``missing_channels``
        or ``ambiguous_channels`` as :func:`~biofound_cli.signals.channels.channel_rows` raises them.
    """
    read = _signals_read(path, channels)
    if read is None:
        return []
    header, signals, kept = read
    check_one_rate([header.labels[index] for index in kept], [_rate(header, index) for index in kept], str(path))
    return [header.labels[index] for index in signals if index not in kept]


def header_rate(path: Path, channels: Sequence[str] | None) -> float | None:
    """The rate ``channels`` of an EDF/BDF file are read at, from its header alone; ``None`` when there is none.

    It is the rate of the recording :func:`signals_to_exclude` has MNE read: ``None`` for a file
    whose header does not parse or whose channels the reading refuses (absent, or at several
    rates), which is skipped and gives no shard.

    Parameters
    ----------
    path : Path
        The ``.edf`` or ``.bdf`` file.
    channels : sequence of str | None
        The channels the chain uses (any spelling); ``None`` reads every signal.
    """
    try:
        read = _signals_read(path, channels)
    except UnusableRecording:
        return None
    rates = {_rate(read[0], index) for index in read[2]} if read else set()
    return rates.pop() if len(rates) == 1 else None


def _signals_read(path: Path, channels: Sequence[str] | None) -> tuple[EdfHeader, list[int], list[int]] | None:
    """The header, the indices of its signals (no annotation or stim channel) and those of ``channels``, in their order.

    ``None`` when the header does not parse; ``channels`` missing or ambiguous raise as
    :func:`~biofound_cli.signals.channels.channel_rows` does.
    """
    header = read_edf_header(path)
    if header is None or not header.record_seconds > 0:
        return None
    signals = [
        index
        for index, label in enumerate(header.labels)
        if label not in ANNOTATION_CHANNELS and label.lower() not in STIM_NAMES and index < len(header.n_samps)
    ]
    names = [header.labels[index] for index in signals]
    # With every signal read, MNE's names for repeated labels are the chain's to judge.
    picks = channel_rows(names, channels, source=str(path)) if channels is not None else list(range(len(names)))
    return header, signals, [signals[pick] for pick in picks]


def _rate(header: EdfHeader, index: int) -> float:
    """The sampling rate of signal ``index``, in Hz."""
    return header.n_samps[index] / header.record_seconds
