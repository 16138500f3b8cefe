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
(``status``/``trigger``), repeated channel names (MNE renames them), a picked channel stored at a
lower rate than the fastest signal (MNE resamples it) or with an undefined physical or digital
range. The ``EDF Annotations`` channel is skipped, as MNE keeps it out of the channels. Like MNE,
the number of records is what the file holds, whatever the header says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from biofound_cli.signals.channels import channel_rows

ANNOTATION_CHANNELS = ("EDF Annotations", "BDF Annotations")
STIM_NAMES = ("status", "trigger", "auto")
"""Channel names MNE's ``stim_channel = "auto"`` makes stim channels (any case; ``auto`` it refuses)."""
UNIT_SCALE = {"\u03bcV": 1e-6, "\u00b5V": 1e-6, "\x83\xcaV": 1e-6, "uV": 1e-6, "mV": 1e-3}
BLOCK_BYTES = 8 * 2**20
"""Records are read in blocks of about this many bytes, so the int16 copy of a long file is never whole."""


@dataclass(frozen=True)
class EdfLayout:
    """What the header says about the data records, for the channels that are signals."""

    header_bytes: int
    n_records: int
    """Whole records in the file (MNE's count when the header disagrees with the file size)."""
    record_seconds: float
    record_samples: int
    """Samples of all signals, annotations included, in one record."""
    ch_names: list[str]
    """The signals (annotation channels left out), as MNE names them."""
    first_sample: list[int]
    """Where each signal starts within a record, in samples."""
    n_samps: list[int]
    cal: list[float]
    offset: list[float]
    unit: list[float]
    max_samp: int


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
        (reason ``missing_channels``) when a requested channel is absent, naming every channel the file has.
    """
    layout = read_edf_layout(path)
    if layout is None:
        return None
    picks = list(range(len(layout.ch_names))) if channels is None else channel_rows(layout.ch_names, channels, source=str(path))
    if any(not np.isfinite(layout.cal[pick]) or layout.n_samps[pick] != layout.max_samp for pick in picks):
        return None
    n = layout.max_samp
    data = np.empty((len(picks), layout.n_records * n), dtype=np.float32)
    per_block = max(BLOCK_BYTES // (2 * layout.record_samples), 1)
    scratch = np.empty((min(per_block, layout.n_records), n), dtype=np.float64)
    for first in range(0, layout.n_records, per_block):
        count = min(per_block, layout.n_records - first)
        offset = layout.header_bytes + 2 * first * layout.record_samples
        records = np.fromfile(path, dtype="<i2", count=count * layout.record_samples, offset=offset)
        records = records.reshape(count, layout.record_samples)
        work = scratch[:count]
        for row, pick in enumerate(picks):
            start = layout.first_sample[pick]
            # MNE's order of operations in float64: (digital * cal + offset) * unit.
            np.multiply(records[:, start : start + n], layout.cal[pick], out=work)
            work += layout.offset[pick]
            work *= layout.unit[pick]
            data[row, first * n : (first + count) * n] = work.reshape(-1)
    sfreq = n * 1.0 / layout.record_seconds
    return data, sfreq, [layout.ch_names[pick] for pick in picks]


def read_edf_layout(path: Path) -> EdfLayout | None:
    """The record layout of a plain EDF file, or ``None`` for a file :func:`read_edf_records` leaves to MNE.

    Parameters
    ----------
    path : Path
        The ``.edf`` file.
    """
    try:
        with open(path, "rb") as handle:
            fixed = handle.read(256)
            n_signals = int(_text(fixed[252:256]))
            header = handle.read(256 * n_signals)
            handle.seek(0, 2)
            file_bytes = handle.tell()
        header_bytes = int(_text(fixed[184:192]))
        record_seconds = float(_text(fixed[244:252]))
        fields = _signal_fields(header, n_signals)
    except (OSError, ValueError, IndexError):
        return None
    if fixed[:1] == b"\xff" or n_signals <= 0 or header_bytes != 256 * (n_signals + 1) or not record_seconds > 0:
        return None
    labels, units, physical_min, physical_max, digital_min, digital_max, n_samps = fields
    signals = [index for index, label in enumerate(labels) if label not in ANNOTATION_CHANNELS]
    names = [labels[index] for index in signals]
    if not signals or len(set(names)) < len(names) or any(name.lower() in STIM_NAMES for name in names):
        return None
    if min(n_samps) <= 0:
        return None
    record_samples = sum(n_samps)
    starts = np.concatenate([[0], np.cumsum(n_samps)])
    cal, offset = [], []
    for index in signals:
        physical_range = physical_max[index] - physical_min[index]
        digital_range = digital_max[index] - digital_min[index]
        # MNE substitutes 1 for an undefined range (with a warning); such a channel is left to it.
        defined = np.isfinite(digital_range) and digital_range != 0 and physical_range != 0
        scale = physical_range / digital_range if defined else float("nan")
        cal.append(scale)
        offset.append(physical_min[index] - digital_min[index] * scale)
    return EdfLayout(
        header_bytes=header_bytes,
        n_records=(file_bytes - header_bytes) // 2 // record_samples,
        record_seconds=record_seconds,
        record_samples=record_samples,
        ch_names=names,
        first_sample=[int(starts[index]) for index in signals],
        n_samps=[n_samps[index] for index in signals],
        cal=cal,
        offset=offset,
        unit=[UNIT_SCALE.get(units[index], 1.0) for index in signals],
        max_samp=max(n_samps[index] for index in signals),
    )


def _signal_fields(
    header: bytes, n_signals: int
) -> tuple[list[str], list[str], list[float], list[float], list[float], list[float], list[int]]:
    """Labels, units, physical/digital min/max and samples per record of every signal, parsed as MNE does."""
    if len(header) < 256 * n_signals:
        raise ValueError("short header")

    def column(offset: int, width: int) -> list[bytes]:
        start = offset * n_signals
        return [header[start + width * index : start + width * (index + 1)] for index in range(n_signals)]

    def numbers(offset: int) -> list[float]:
        return [float(_text(raw).replace(",", ".")) for raw in column(offset, 8)]

    labels = [raw.strip().decode("latin-1") for raw in column(0, 16)]
    units = [raw.strip().decode("latin-1") for raw in column(16 + 80, 8)]
    n_samps = [int(_text(raw)) for raw in column(16 + 80 + 8 + 4 * 8 + 80, 8)]
    return labels, units, numbers(104), numbers(112), numbers(120), numbers(128), n_samps


def _text(raw: bytes) -> str:
    """A header field as MNE reads it: latin-1, up to the first NUL."""
    return raw.decode("latin-1").split("\x00")[0]
