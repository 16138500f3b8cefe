"""What an EDF/BDF header promises, checked against the file's size: cut copies are found before reading.

An EDF file is a 256-byte header, 256 more bytes per signal, then ``n_records`` data records;
each record holds ``samples per record`` samples of every signal, 2 bytes each (3 in BDF,
whose first byte is ``0xFF`` followed by ``BIOSEMI``). An interrupted copy (of a TUH corpus,
say) is shorter than that. MNE then reads the whole records that are there and only warns,
and the readers silence MNE's warnings, so without this check a cut file would become a shorter
recording without a word. The readers put :func:`truncation_meta` into the recording's meta
and the signal chain applies ``preprocess.on_truncated`` to it
(:func:`~biofound_cli.signals.quality.check_truncated`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biofound_cli.errors import UnusableRecording

FIXED_HEADER_BYTES = 256
SIGNAL_HEADER_BYTES = 256
SAMPLES_FIELD_OFFSET = 216
"""Where, within the signal part of the header, the 8-byte "samples per record" fields start (× n_signals)."""


@dataclass(frozen=True)
class EdfSize:
    """The sizes an EDF/BDF header declares, and the file's real size."""

    header_bytes: int
    n_records: int
    """Data records declared by the header; ``-1`` means "unknown" (allowed while recording)."""
    record_seconds: float
    record_bytes: int
    file_bytes: int

    @property
    def records_in_file(self) -> int:
        """Whole data records the file holds."""
        return max(self.file_bytes - self.header_bytes, 0) // self.record_bytes

    @property
    def truncated(self) -> bool:
        """Whether the file holds fewer records than its header declares."""
        return self.n_records > 0 and self.records_in_file < self.n_records


def read_edf_size(path: Path) -> EdfSize | None:
    """The declared sizes of an EDF/BDF file, or ``None`` when its header does not parse.

    ``None`` leaves the verdict to MNE, which then says why the file is unreadable.

    Parameters
    ----------
    path : Path
        An ``.edf`` or ``.bdf`` file.
    """
    try:
        with open(path, "rb") as handle:
            fixed = handle.read(FIXED_HEADER_BYTES)
            if len(fixed) < FIXED_HEADER_BYTES:
                return None
            n_signals = int(fixed[252:256].decode("ascii"))
            signals = handle.read(n_signals * SIGNAL_HEADER_BYTES)
        file_bytes = Path(path).stat().st_size
        header_bytes = int(fixed[184:192].decode("ascii"))
        n_records = int(fixed[236:244].decode("ascii"))
        record_seconds = float(fixed[244:252].decode("ascii"))
        first = SAMPLES_FIELD_OFFSET * n_signals
        samples = [int(signals[first + 8 * index : first + 8 * index + 8].decode("ascii")) for index in range(n_signals)]
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    bytes_per_sample = 3 if fixed[:8] == b"\xffBIOSEMI" else 2
    record_bytes = sum(samples) * bytes_per_sample
    if n_signals <= 0 or record_bytes <= 0 or len(signals) < n_signals * SIGNAL_HEADER_BYTES:
        return None
    return EdfSize(header_bytes, n_records, record_seconds, record_bytes, file_bytes)


def truncation_meta(path: Path) -> dict[str, Any]:
    """Recording meta that says whether an EDF/BDF file was cut short; ``{}`` for a whole file.

    A cut file gets ``truncated = True``, ``seconds_expected`` (what the header declares),
    ``seconds_in_file``, ``records_in_header`` and ``records_in_file``: the keys
    :func:`~biofound_cli.signals.quality.check_truncated` reads.

    Parameters
    ----------
    path : Path
        An ``.edf`` or ``.bdf`` file.

    Raises
    ------
    UnusableRecording
        (reason ``empty``) when the file holds no whole data record: a header alone.
    """
    size = read_edf_size(path)
    if size is None:
        return {}
    if size.records_in_file == 0:
        if size.n_records > 0:
            raise UnusableRecording(
                f"{path}: the file stops after its header, without any of the {size.n_records} data records "
                f"({size.n_records * size.record_seconds:g} s) the header declares, as after an interrupted copy; "
                "copy the file again",
                "empty",
            )
        raise UnusableRecording(f"{path}: the file holds a header and no data record; there is no signal to read", "empty")
    if not size.truncated:
        return {}
    return {
        "truncated": True,
        "seconds_expected": size.n_records * size.record_seconds,
        "seconds_in_file": size.records_in_file * size.record_seconds,
        "records_in_header": size.n_records,
        "records_in_file": size.records_in_file,
    }
