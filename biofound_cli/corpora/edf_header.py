"""The EDF/BDF header, parsed once: what it declares, checked against the file's size.

An EDF file is a 256-byte header, 256 more bytes per signal, then ``n_records`` data records;
each record holds ``samples per record`` samples of every signal, 2 bytes each (3 in BDF,
whose first byte is ``0xFF`` followed by ``BIOSEMI``). :func:`read_edf_header` reads both parts
of the header; the truncation check below and the direct record reader
(:mod:`~biofound_cli.corpora.edf_records`) both work from what it returns.

An interrupted copy (of a TUH corpus, say) is shorter than the header declares. MNE then reads
the whole records that are there and only warns, and the readers silence MNE's warnings, so
without this check a cut file would become a shorter recording without a word. The readers put
:func:`truncation_meta` into the recording's meta and the signal chain applies
``preprocess.on_truncated`` to it (:func:`~biofound_cli.signals.quality.check_truncated`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biofound_cli.errors import UnusableRecording, is_reading_error

FIXED_HEADER_BYTES = 256
SIGNAL_HEADER_BYTES = 256
BDF_VERSION = b"\xffBIOSEMI"
EDF_ENDINGS = (".edf", ".bdf")
"""The endings of the files whose header is read here (any letter case); MNE reads the other formats alone."""
FIXED_FIELDS = {
    "version": (0, 8), "header_bytes": (184, 192), "n_records": (236, 244), "record_seconds": (244, 252), "n_signals": (252, 256),
}  # fmt: skip
"""Byte ranges of the fixed-header fields read here (the others name the patient and the recording)."""
SIGNAL_FIELD_WIDTHS = {
    "label": 16, "transducer": 80, "unit": 8, "physical_min": 8, "physical_max": 8,
    "digital_min": 8, "digital_max": 8, "prefiltering": 80, "samples": 8, "reserved": 32,
}  # fmt: skip
"""The per-signal fields in the order they are stored: each one for every signal in turn, then the next."""


@dataclass(frozen=True)
class EdfHeader:
    """What an EDF/BDF header declares, field by field, and the file's real size."""

    version: bytes
    header_bytes: int
    n_records: int
    """Data records declared by the header; ``-1`` means "unknown" (allowed while recording)."""
    record_seconds: float
    labels: list[str]
    units: list[str]
    physical_min: list[float]
    physical_max: list[float]
    digital_min: list[float]
    digital_max: list[float]
    n_samps: list[int]
    """Samples per record of each signal."""
    file_bytes: int

    @property
    def record_samples(self) -> int:
        """Samples of all signals, annotations included, in one record."""
        return sum(self.n_samps)

    @property
    def record_bytes(self) -> int:
        """Bytes of one data record: 2 per sample, 3 in BDF."""
        return self.record_samples * (3 if self.version == BDF_VERSION else 2)

    @property
    def records_in_file(self) -> int:
        """Whole data records the file holds."""
        return max(self.file_bytes - self.header_bytes, 0) // self.record_bytes

    @property
    def truncated(self) -> bool:
        """Whether the file holds fewer records than its header declares."""
        return self.n_records > 0 and self.records_in_file < self.n_records


def format_in_header(path: Path) -> str | None:
    """``"edf"`` or ``"bdf"`` as the file's first bytes say (whatever its name ends with), or ``None``.

    MNE picks its reader by the name's ending: a BDF file named ``.edf`` (24-bit samples) is read
    as EDF and fails on its annotations, so the readers ask the header.

    Parameters
    ----------
    path : Path
        Any file.
    """
    try:
        with open(path, "rb") as handle:
            return _format_of(handle.read(8))
    except OSError:
        return None


def _format_of(start: bytes) -> str | None:
    """``"edf"`` or ``"bdf"`` as a file's first bytes ``start`` (its version field and on) say, or ``None``."""
    if start[:8] == BDF_VERSION:
        return "bdf"
    return "edf" if len(start) >= 8 and _text(start[:8]).strip() == "0" else None


def read_raw_as_its_header_says(path: Path, **kwargs: Any) -> Any:
    """``mne.io.read_raw(path, **kwargs)``, except that an ``.edf``/``.bdf`` file is read as :func:`format_in_header` says.

    MNE takes a file object with the reader asked for whatever the name, but then only preloaded.
    Every reader of EDF files (``edf``, the TUH corpora, ``siena``, ``biofound info``) reads
    through here, so a misnamed BDF file, and a file of another format named ``.edf``, read
    and fail alike in all of them.

    Raises
    ------
    UnusableRecording
        (reason ``unreadable``) when MNE cannot read an ``.edf``/``.bdf`` file that does not
        start as EDF or BDF: what its first bytes are instead. MNE's other errors pass through.

    Parameters
    ----------
    path : Path
        A recording.
    **kwargs
        MNE's reader arguments (``preload``, ``exclude``, ``verbose``).
    """
    import mne

    name = Path(path).name.lower()
    named_edf = name.endswith(EDF_ENDINGS)
    kind = format_in_header(path) if named_edf else None
    try:
        if kind is None or name.endswith(f".{kind}"):
            return mne.io.read_raw(path, **kwargs)
        with open(path, "rb") as handle:
            read = mne.io.read_raw_bdf if kind == "bdf" else mne.io.read_raw_edf
            return read(handle, **{**kwargs, "preload": True})
    except Exception as error:
        if named_edf and kind is None and is_reading_error(error):
            _refuse_another_format(path)
        raise


def _refuse_another_format(path: Path) -> None:
    """Raise ``unreadable`` for a file named ``.edf``/``.bdf`` that does not start as EDF or BDF (a CSV, an HTML page).

    MNE's own word for it, "Bad EDF file provided", reads as a damaged recording. An empty file
    is left to the caller, which says it is empty.
    """
    try:
        with open(path, "rb") as handle:
            start = handle.read(8)
    except OSError:
        return
    if start:
        raise UnusableRecording(
            f"{path}: not an EDF or BDF file (its first bytes, {start!r}, are neither EDF's b'0       ' nor BDF's "
            f"{BDF_VERSION!r}); check what the file is, and give it the ending of its format",
            "unreadable",
        )


def read_edf_header(path: Path) -> EdfHeader | None:
    """The header of an EDF/BDF file, or ``None`` when it does not parse.

    ``None`` leaves the verdict to MNE, which then says why the file is unreadable. Fields are
    read as MNE reads them: latin-1 up to the first NUL, a decimal comma in the signal ranges.

    Parameters
    ----------
    path : Path
        An ``.edf`` or ``.bdf`` file.
    """
    try:
        with open(path, "rb") as handle:
            fixed = handle.read(FIXED_HEADER_BYTES)
            field = {name: fixed[start:stop] for name, (start, stop) in FIXED_FIELDS.items()}
            n_signals = int(_text(field["n_signals"])) if len(fixed) == FIXED_HEADER_BYTES else 0
            if n_signals <= 0:
                return None
            signals = handle.read(n_signals * SIGNAL_HEADER_BYTES)
            if len(signals) < n_signals * SIGNAL_HEADER_BYTES:
                return None
        column = _signal_columns(signals, n_signals)

        def numbers(name: str) -> list[float]:
            return [float(_text(raw).replace(",", ".")) for raw in column[name]]

        header = EdfHeader(
            version=field["version"],
            header_bytes=int(_text(field["header_bytes"])),
            n_records=int(_text(field["n_records"])),
            record_seconds=float(_text(field["record_seconds"])),
            labels=[raw.strip().decode("latin-1") for raw in column["label"]],
            units=[raw.strip().decode("latin-1") for raw in column["unit"]],
            physical_min=numbers("physical_min"),
            physical_max=numbers("physical_max"),
            digital_min=numbers("digital_min"),
            digital_max=numbers("digital_max"),
            n_samps=[int(_text(raw)) for raw in column["samples"]],
            file_bytes=Path(path).stat().st_size,
        )
    except (OSError, ValueError):
        return None
    return header if header.record_bytes > 0 else None


def _signal_columns(signals: bytes, n_signals: int) -> dict[str, list[bytes]]:
    """Each per-signal field's raw bytes, one entry per signal."""
    columns, start = {}, 0
    for name, width in SIGNAL_FIELD_WIDTHS.items():
        columns[name] = [signals[start + width * index : start + width * (index + 1)] for index in range(n_signals)]
        start += width * n_signals
    return columns


def _text(raw: bytes) -> str:
    """A header field as MNE reads it: latin-1, up to the first NUL."""
    return raw.decode("latin-1").split("\x00")[0]


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
        (reason ``empty``) when the file holds no whole data record: a header alone, or less.
    """
    header = read_edf_header(path)
    if header is None:
        _refuse_a_cut_header(path)
        return {}
    if header.records_in_file == 0:
        if header.n_records > 0:
            raise UnusableRecording(
                f"{path}: the file stops after its header, without any of the {header.n_records} data records "
                f"({header.n_records * header.record_seconds:g} s) the header declares, as after an interrupted copy; "
                "copy the file again",
                "empty",
            )
        raise UnusableRecording(f"{path}: the file holds a header and no data record; there is no signal to read", "empty")
    if not header.truncated:
        return {}
    return {
        "truncated": True,
        "seconds_expected": header.n_records * header.record_seconds,
        "seconds_in_file": header.records_in_file * header.record_seconds,
        "records_in_header": header.n_records,
        "records_in_file": header.records_in_file,
    }


def _refuse_a_cut_header(path: Path) -> None:
    """Raise ``empty`` for an EDF/BDF file that stops inside its header, as an interrupted copy does.

    Such a file starts as EDF/BDF does but is shorter than the header it declares (256 bytes
    when the fixed part is cut too). MNE's errors on it name no cause ("invalid literal for
    int()", a bare ``AssertionError``), so it is said here; a file that does not start as
    EDF/BDF is left to the reader, which says it is another format.
    """
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as handle:
            fixed = handle.read(FIXED_HEADER_BYTES)
    except OSError:
        return
    if _format_of(fixed) is None:
        return
    start, stop = FIXED_FIELDS["header_bytes"]
    try:
        declared = max(int(_text(fixed[start:stop])), FIXED_HEADER_BYTES)
    except ValueError:  # the fixed part is cut before the field
        declared = FIXED_HEADER_BYTES
    if size < declared:
        of = f"{declared}" if len(fixed) == FIXED_HEADER_BYTES else f"{FIXED_HEADER_BYTES} or more"
        raise UnusableRecording(
            f"{path}: the file stops inside its header, after {size} of its header's {of} bytes, before any data record, "
            "as after an interrupted copy; copy the file again",
            "empty",
        )
