"""Reading one numeric table from a delimited text, MATLAB (v5 and v7.3) or NumPy file.

:func:`load_table` returns the matrix as it is stored (rows × columns, in MATLAB's view for
``.mat`` files), the CSV header if there is one, and what the named MATLAB variables hold:
channel descriptions and the sampling rate. Which axis holds the samples, which columns are
kept and what the channels are called is decided by the caller
(:mod:`biofound_cli.corpora.table`).

MATLAB v7.3 files are HDF5 files whose datasets hold each matrix transposed (column-major
order written as is); they are read with h5py and transposed back. Every problem with a file
is a :class:`~biofound_cli.errors.DataError` of one sentence naming the file.
"""

from __future__ import annotations

import itertools
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from biofound_cli.corpora.base import text_encoding, undecodable_text
from biofound_cli.corpora.mat_variables import MatVariables, open_mat
from biofound_cli.errors import DataError, first_line

MISSING_CELLS = ("", "null", "nan")
"""Cells read as missing (NaN), compared after stripping blanks, in any letter case."""


@dataclass(frozen=True)
class TableRequest:
    """What to read from one file (the resolved reading options)."""

    text_only: bool = False
    """Read every file as delimited text whatever its suffix (``emg-csv``)."""
    delimiter: str = ","
    has_header: bool | None = None
    """``None``: the first line is a header when one of its cells is not a number."""
    variable: str | None = None
    """The MATLAB variable holding the samples; ``None``: the file's only numeric matrix."""
    names_variable: str | None = None
    sfreq_variable: str | None = None


@dataclass
class LoadedTable:
    """One file's matrix as stored, with what the file says about it."""

    data: np.ndarray
    """2-D floating-point array, rows × columns as stored."""
    header: list[str] | None = None
    """CSV header cells, one per column."""
    names: list[str] | None = None
    """The strings of ``names_variable``."""
    sfreq: float | None = None
    """The value of ``sfreq_variable``, when the file has it."""
    variables: str = ""
    """The file's variables with their shapes, for messages (MATLAB files only)."""


def load_table(path: Path, request: TableRequest) -> LoadedTable:
    """Read ``path`` by its suffix (``.mat``, ``.npy``; anything else as delimited text).

    Parameters
    ----------
    path : Path
        The file.
    request : TableRequest
        Delimiter and header of text files, variable names of MATLAB files.

    Raises
    ------
    DataError
        Unreadable file, missing variable, non-numeric cells, no samples; one sentence naming
        the file.
    """
    suffix = path.suffix.lower()
    if request.text_only or suffix not in (".mat", ".npy"):
        header, data = read_text_table(path, request.delimiter, request.has_header)
        return LoadedTable(data=data, header=header)
    if suffix == ".npy":
        return LoadedTable(data=read_npy(path))
    return read_mat(path, request)


# -- delimited text -----------------------------------------------------------------------------

_CHUNK_LINES = 8192
"""Lines parsed at once on the slow path, so a large file never exists as one array of strings."""


def load_numbers(source: Path | list[str], delimiter: str | None = None, skiprows: int = 0, **options: Any) -> np.ndarray:
    """:func:`numpy.loadtxt` as a 2-D float64 matrix, quietly: a file with no rows gives an empty matrix.

    numpy warns (``UserWarning``, with a source line) about input without data; the readers say
    it in their own one-line message (``the file holds no samples``) instead.

    Parameters
    ----------
    source : Path or list of str
        The file, or its lines.
    delimiter : str | None
        The column separator; ``None`` splits on blanks.
    skiprows : int
        Lines skipped first (a header).
    **options
        Further :func:`numpy.loadtxt` arguments (``quotechar``).

    Raises
    ------
    ValueError
        From :func:`numpy.loadtxt`, for a cell that is not a number or a ragged row.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="loadtxt: input contained no data", category=UserWarning)
        return np.loadtxt(source, delimiter=delimiter, skiprows=skiprows, ndmin=2, dtype=np.float64, **options)


def read_text_table(path: Path, delimiter: str, has_header: bool | None) -> tuple[list[str] | None, np.ndarray]:
    """The header (or ``None``) and the numbers of a delimited text file; missing cells are NaN.

    Parameters
    ----------
    path : Path
        The file.
    delimiter : str
        The column separator.
    has_header : bool | None
        Whether the first line holds column names; ``None`` guesses from its cells.
    """
    first = next(_content_lines(path), None)
    if first is None:
        raise DataError(f"{path}: the file holds no samples")
    first_number, first_line = first
    if has_header is None:
        has_header = not all(_is_number_or_missing(cell) for cell in first_line.split(delimiter))
    header = [_unquoted(cell) for cell in first_line.split(delimiter)] if has_header else None
    skip = first_number + 1 if has_header else 0
    try:
        # The C parser is fast and enough for clean files; cells it refuses (empty, NULL) go the slow way.
        data = load_numbers(path, delimiter, skip, encoding=text_encoding(path))
    except ValueError:
        data = _parse_cells(path, delimiter, skip)
    if data.size == 0:
        raise DataError(f"{path}: the file holds no samples")
    if header is not None and len(header) != data.shape[1]:
        raise DataError(
            f"{path}: the header names {len(header)} columns but the rows hold {data.shape[1]}; "
            "give the header one name per column"
        )
    return header, data


DELIMITERS = (",", "\t", ";", " ")
"""The column separators :func:`guess_delimiter` tells apart, the readers' default first."""


def guess_delimiter(path: Path) -> str:
    """The separator a text table's first line holds most often (``,`` when it holds none: one column).

    For ``info``, which reads a table no recipe describes yet; the readers take theirs from their options.

    Parameters
    ----------
    path : Path
        A delimited text file.
    """
    first = next(_content_lines(path), None)
    line = "" if first is None else first[1].strip()
    return max(DELIMITERS, key=line.count) if line else DELIMITERS[0]


def _content_lines(path: Path, skip: int = 0) -> Iterator[tuple[int, str]]:
    """``(line index, text)`` of the lines holding something after the first ``skip``, comments (``#``) dropped."""
    try:
        with open(path, encoding=text_encoding(path)) as handle:
            for number, line in enumerate(handle):
                content = line.split("#", 1)[0]
                if number >= skip and content.strip():
                    yield number, content.rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise DataError(f"{undecodable_text(path, error)}; save it as UTF-8") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read as a text table ({first_line(error)})") from None


def _unquoted(cell: str) -> str:
    return cell.strip().strip('"').strip()


def _is_number_or_missing(cell: str) -> bool:
    text = _unquoted(cell)
    if text.lower() in MISSING_CELLS:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_cells(path: Path, delimiter: str, skip: int) -> np.ndarray:
    """Chunk by chunk: blank, NULL and NaN cells become NaN; anything else must be a number."""
    marker = re.escape(delimiter)
    # Lines that may hold a missing cell: two delimiters with only blanks between, a blank first or
    # last cell, or a letter n (NaN, NULL); only those are split into cells in Python.
    suspect = re.compile(rf"{marker}\s*{marker}|^\s*{marker}|{marker}\s*$|[nN]")
    blocks: list[np.ndarray] = []
    lines = _content_lines(path, skip)
    while chunk := list(itertools.islice(lines, _CHUNK_LINES)):
        texts = [_fill_missing(line, delimiter) if suspect.search(line) else line for _, line in chunk]
        try:
            blocks.append(load_numbers(texts, delimiter, quotechar='"'))
        except ValueError:
            raise _bad_row(path, delimiter, chunk, blocks[0].shape[1] if blocks else None) from None
    return np.concatenate(blocks) if blocks else np.empty((0, 0))


def _fill_missing(line: str, delimiter: str) -> str:
    return delimiter.join("nan" if _unquoted(cell).lower() in MISSING_CELLS else cell for cell in line.split(delimiter))


def text_table_error(path: Path, delimiter: str | None, skip: int, width: int | None = None) -> DataError:
    """Why :func:`numpy.loadtxt` refused a text table: its first ragged row or non-numeric cell, as one sentence.

    numpy's own message counts rows after the skipped ones and advises ``usecols``; this one
    names the line of the file and what to change.

    Parameters
    ----------
    path : Path
        The file numpy refused.
    delimiter : str | None
        The column separator; ``None`` for blanks.
    skip : int
        Lines before the rows (a header).
    width : int | None
        Cells every row must hold; ``None``: as many as the first row.
    """
    return _bad_row(path, delimiter, _content_lines(path, skip), width)


def _bad_row(path: Path, delimiter: str | None, lines: Iterable[tuple[int, str]], width: int | None) -> DataError:
    """The first ragged row or non-numeric cell among ``lines`` (index, text), as one sentence."""
    separated = "blank-separated" if delimiter is None else f"{delimiter!r}-separated"
    for number, line in lines:
        cells = line.split(delimiter)
        width = width or len(cells)
        if len(cells) != width:
            return DataError(
                f"{path}: line {number + 1} has {len(cells)} cells where the table has {width}; "
                "every row needs one cell per column (complete or delete the line)"
            )
        for column, cell in enumerate(cells):
            if not _is_number_or_missing(cell):
                return DataError(
                    f"{path}: not a numeric {separated} table (line {number + 1}, column {column + 1} "
                    f"holds {_unquoted(cell)!r}; only numbers and empty, NULL or NaN cells are read)"
                )
    return DataError(f"{path}: not a numeric {separated} table; check its delimiter and cells")


# -- NumPy -------------------------------------------------------------------------------------


def read_npy(path: Path) -> np.ndarray:
    """A 1-D (one channel) or 2-D numeric array saved with :func:`numpy.save`.

    Parameters
    ----------
    path : Path
        The ``.npy`` file; pickled (object) arrays are refused.
    """
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array ({first_line(error)})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: holds several arrays (an .npz archive), not one; save one array with numpy.save")
    return as_float_matrix(path, array, "the array")


def as_float_matrix(path: Path, array: np.ndarray, what: str) -> np.ndarray:
    """``array`` as a 2-D floating-point matrix (1-D becomes one column); other shapes are refused.

    Parameters
    ----------
    path : Path
        The file, named in messages.
    array : ndarray
        The values as read; floating-point types are kept, integers and booleans become float64.
    what : str
        What the array is in the file (``"variable 'Data'"``), named in messages.
    """
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: {what} holds {array.dtype} values, not numbers; store the samples as a numeric matrix")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.size == 0:
        raise DataError(f"{path}: {what} has shape {array.shape}; store the samples as a non-empty 2-D matrix")
    return array if array.dtype.kind == "f" else array.astype(np.float64)


# -- MATLAB ------------------------------------------------------------------------------------


def read_mat(path: Path, request: TableRequest) -> LoadedTable:
    """The samples, channel descriptions and sampling rate of a MATLAB file (v5 or v7.3).

    Parameters
    ----------
    path : Path
        The ``.mat`` file.
    request : TableRequest
        The variables to read; a missing ``sfreq_variable`` leaves ``sfreq`` unset, a missing
        ``variable`` or ``names_variable`` is an error listing the file's variables.
    """
    with open_mat(path) as mat:
        if not mat.names():
            raise DataError(f"{path}: the file holds no variable, only its header, as after an interrupted copy; copy it again")
        listing = mat.listing()
        name = request.variable or _only_matrix(path, mat)
        data = as_float_matrix(path, mat.numeric(_present(path, mat, name, "variable", listing)), f"variable {name!r}")
        names = None
        if request.names_variable is not None:
            names = mat.strings(_present(path, mat, request.names_variable, "names_variable", listing))
        sfreq = None
        if request.sfreq_variable is not None and request.sfreq_variable in mat.names():
            sfreq = mat.scalar(request.sfreq_variable)
    return LoadedTable(data=data, names=names, sfreq=sfreq, variables=listing)


def _present(path: Path, mat: MatVariables, name: str, option: str, listing: str) -> str:
    if name not in mat.names():
        raise DataError(
            f"{path}: no variable {name!r} (preprocess.options.{option}); the file holds {listing}; set {option} to one of them"
        )
    return name


def _only_matrix(path: Path, mat: MatVariables) -> str:
    """The one numeric matrix with more than one row and column, when there is exactly one."""
    candidates = [name for name in mat.names() if mat.is_matrix(name)]
    if len(candidates) != 1:
        raise DataError(
            f"{path}: {'several' if candidates else 'no'} numeric matrices among {mat.listing()}; "
            "set preprocess.options.variable to the one holding the samples"
        )
    return candidates[0]
