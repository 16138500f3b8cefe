"""What ``biofound info`` says about a raw recording (EDF, BDF, FIF, BrainVision, EEGLAB; a CSV, MATLAB or NumPy table).

The facts an MNE user checks before writing a recipe's ``channels``, ``sfreq``,
``window_seconds`` and ``[preprocess.options] event_labels``: channel names and types, the
sampling rate, the duration, the filters the recording already went through and how many
annotations of each description it holds. The file is opened with ``preload=False``, so only
its header (and annotation table) is read, whatever its size. A table (what the ``table``,
``emg-csv`` and ``db5`` readers take) holds no sampling rate or channel types: ``info`` gives its
shape, its column names where it has a header, and a MATLAB file's variables, the facts a recipe's
``[preprocess.options]`` are written from.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from biofound_cli.corpora.base import files_under
from biofound_cli.corpora.edf import EXTENSIONS
from biofound_cli.corpora.edf_header import (
    EDF_ENDINGS,
    format_in_header,
    read_edf_header,
    read_raw_as_its_header_says,
    truncation_meta,
)
from biofound_cli.corpora.mat_variables import open_mat
from biofound_cli.corpora.table_files import guess_delimiter, read_npy, read_text_table
from biofound_cli.errors import DataError, existing_file, reading_as, reading_bug


def is_recording(path: Path) -> bool:
    """Whether ``path`` has the name of a recording :func:`describe_recording` reads.

    Parameters
    ----------
    path : Path
        Any file; only its name is looked at (the endings the ``edf`` corpus reads, any case).
    """
    return Path(path).name.lower().endswith(EXTENSIONS)


def _open_raw(path: Path) -> tuple[Any, list[str]]:
    """The recording opened without its samples, and MNE's warnings while reading its header."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if path.suffix.lower() in EDF_ENDINGS:
                truncation_meta(path)  # a header alone, or cut short: said as preprocess says it
            with reading_as(path, "recording"):  # the file's fault: a DataError, exit 1
                raw = read_raw_as_its_header_says(path, preload=False, verbose="error")
        except DataError:
            raise
        except Exception as error:  # a bug of ours: one line that asks for a report, not a traceback
            raise reading_bug(path, error) from error
    return raw, [str(warning.message).splitlines()[0] for warning in caught]


def describe_recording(path: Path) -> dict[str, Any]:
    """Summarise a raw recording from its header, without reading its samples.

    Parameters
    ----------
    path : Path
        An ``.edf``, ``.bdf``, ``.fif``, ``.vhdr`` or ``.set`` file.

    Returns
    -------
    dict
        ``kind`` (``recording``), ``format``, ``n_channels``, ``ch_names`` (in file order),
        ``channel_types`` (channels per MNE type), ``sfreq``, ``n_samples``, ``duration_seconds``,
        ``highpass``/``lowpass`` (Hz, as the header states), ``meas_date``, ``n_annotations``,
        ``annotations`` (count per description), ``truncated`` (EDF/BDF: whether the file holds
        fewer records than its header declares), ``warnings`` (what MNE said while reading) and
        ``size_bytes``.

    Raises
    ------
    UsageError
        For a missing file.
    DataError
        For a file MNE cannot read.
    """
    path = existing_file(path)
    raw, messages = _open_raw(path)
    info = raw.info
    annotations = Counter(str(description) for description in raw.annotations.description)
    facts: dict[str, Any] = {
        "path": str(path),
        "kind": "recording",
        "format": format_in_header(path) or path.name.lower().split(".", 1)[-1],
        "n_channels": len(raw.ch_names),
        "ch_names": list(raw.ch_names),
        "channel_types": dict(Counter(raw.get_channel_types())),
        "sfreq": float(info["sfreq"]),
        "n_samples": int(raw.n_times),
        "duration_seconds": round(raw.n_times / float(info["sfreq"]), 3),
        "highpass": float(info["highpass"]),
        "lowpass": float(info["lowpass"]),
        "meas_date": None if info["meas_date"] is None else info["meas_date"].isoformat(),
        "n_annotations": int(sum(annotations.values())),
        "annotations": dict(sorted(annotations.items())),
    }
    if path.suffix.lower() in EDF_ENDINGS:
        header = read_edf_header(path)
        facts["truncated"] = bool(header and header.truncated)
    facts["warnings"] = messages
    facts["size_bytes"] = path.stat().st_size
    return facts


TABLE_SUFFIXES = (".csv", ".tsv", ".mat", ".npy")
"""The tables :func:`describe_table` reads: delimited text, MATLAB (v5 or v7.3) and NumPy files. Not ``.txt``, the
ending of notes and READMEs as often as of a recording: those stay an unknown type."""


def is_table(path: Path) -> bool:
    """Whether ``path`` has the name of a table :func:`describe_table` reads.

    Parameters
    ----------
    path : Path
        Any file; only its ending is looked at (any case).
    """
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def describe_table(path: Path) -> dict[str, Any]:
    """Summarise a table of samples: a delimited text file's shape and header, a MATLAB file's variables, a NumPy array's shape.

    Parameters
    ----------
    path : Path
        A ``.csv``, ``.tsv``, ``.mat`` or ``.npy`` file.

    Returns
    -------
    dict
        ``kind`` (``table``), ``format`` and ``size_bytes``; for text ``delimiter`` (guessed), ``rows``,
        ``columns`` and ``column_names`` (``None`` without a header); for MATLAB ``variables`` (``name``:
        ``rows×columns class``, values not read); for NumPy ``shape`` and ``dtype``.

    Raises
    ------
    UsageError
        For a missing file.
    DataError
        For a file that is not such a table (named, with what it holds).
    """
    path = existing_file(path)
    suffix = path.suffix.lower()
    facts: dict[str, Any] = {"path": str(path), "kind": "table", "format": suffix[1:]}
    try:
        if suffix == ".mat":
            with open_mat(path) as variables:
                described = {name: variables.describe(name) for name in variables.names()}
            facts["variables"] = {name: f"{'×'.join(map(str, shape))} {kind}" for name, (shape, kind) in described.items()}
        elif suffix == ".npy":
            array = read_npy(path)
            facts.update(shape=list(array.shape), dtype=str(array.dtype))
        else:
            delimiter = guess_delimiter(path)
            header, data = read_text_table(path, delimiter, None)
            facts.update(delimiter=delimiter, rows=int(data.shape[0]), columns=int(data.shape[1]), column_names=header)
    except DataError:
        raise
    except Exception as error:  # a bug of ours: one line that asks for a report, not a traceback
        raise reading_bug(path, error) from error
    facts["size_bytes"] = path.stat().st_size
    return facts


def _suffix(path: Path) -> str:
    """A file's ending as ``info`` tells kinds by it (``.edf``; a FIF split's ``.fif``), any case."""
    name = path.name.lower()
    return next((ending for ending in EXTENSIONS if name.endswith(ending)), path.suffix.lower() or "(none)")


def describe_recordings_folder(folder: Path) -> dict[str, Any] | None:
    """Summarise a corpus folder (a ``preprocess --root``): the recordings and tables below it, by ending.

    Parameters
    ----------
    folder : Path
        A folder of raw recordings, walked as ``preprocess`` walks its root (links followed).

    Returns
    -------
    dict | None
        ``kind`` (``recordings``), ``recordings`` (files :func:`describe_recording` or :func:`describe_table`
        reads), ``recordings_by_suffix``, ``other_files`` (the rest, by ending), ``size_bytes`` (of the
        recordings) and ``first`` (the first recording, to describe with ``biofound info``); None when no file
        below is one.
    """
    files = files_under(Path(folder))
    recordings = [path for path in files if is_recording(path) or is_table(path)]
    if not recordings:
        return None
    others = set(files) - set(recordings)
    return {
        "path": str(folder),
        "kind": "recordings",
        "recordings": len(recordings),
        "recordings_by_suffix": dict(sorted(Counter(map(_suffix, recordings)).items())),
        "other_files": dict(sorted(Counter(map(_suffix, others)).items())),
        "size_bytes": sum(path.stat().st_size for path in recordings),
        "first": str(recordings[0]),
    }
