"""The variables of a MATLAB file, v5 (scipy) or v7.3 (HDF5, h5py), behind one interface.

Everything is returned in MATLAB's view: a ``Data`` matrix of 30720 samples × 65 columns is a
``(30720, 65)`` array whichever version wrote it. In a v7.3 file that matrix is a dataset of
shape ``(65, 30720)`` (MATLAB's column-major order written as is) with a ``MATLAB_class``
attribute; text is stored as UTF-16 code units and a cell array as references to datasets
under ``#refs#``. v5 files are read one variable at a time, so a large matrix the table does
not use is never loaded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
import scipy.io

from biofound_cli.errors import DataError, first_line, reading_as

NUMERIC_CLASSES = frozenset(
    {"double", "single", "logical", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}
)
_HDF5_INTERNAL = ("#refs#", "#subsystem#")


class MatVariables(ABC):
    """Named variables of one MATLAB file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @abstractmethod
    def names(self) -> list[str]:
        """The variable names, in file order."""

    @abstractmethod
    def describe(self, name: str) -> tuple[tuple[int, ...], str]:
        """MATLAB shape and class of one variable, without reading its values.

        Parameters
        ----------
        name : str
            The variable's name, one of :meth:`names`.
        """

    @abstractmethod
    def numeric(self, name: str) -> np.ndarray:
        """The values of a numeric variable (MATLAB's view).

        Parameters
        ----------
        name : str
            The variable's name, one of :meth:`names`.
        """

    @abstractmethod
    def strings(self, name: str) -> list[str]:
        """A char matrix (one string per row) or a cell array of char, in MATLAB's order.

        Parameters
        ----------
        name : str
            The variable's name, one of :meth:`names`.
        """

    @abstractmethod
    def field_text(self, name: str, field: str) -> str | None:
        """The text of one char field of a 1×1 struct variable; ``None`` when the field is missing or not text.

        A v7.3 file is read for that field alone; scipy reads a v5 struct whole (every field, a
        large matrix in it too), as :func:`scipy.io.loadmat` cannot read part of a variable.

        Parameters
        ----------
        name : str
            The struct variable's name, one of :meth:`names`.
        field : str
            The field.
        """

    def listing(self) -> str:
        """``Data (30720×65 double), SamplingFrequency (1×1 double)``: for messages."""
        described = [(name, *self.describe(name)) for name in self.names()]
        parts = [f"{name} ({'×'.join(str(size) for size in shape)} {kind})" for name, shape, kind in described]
        return ", ".join(parts) if parts else "no variables"

    def is_matrix(self, name: str) -> bool:
        """Numeric, 2-D, with more than one row and more than one column.

        Parameters
        ----------
        name : str
            The variable's name, one of :meth:`names`.
        """
        shape, kind = self.describe(name)
        return kind in NUMERIC_CLASSES and len(shape) == 2 and min(shape) > 1

    def scalar(self, name: str) -> float:
        """A numeric variable holding one positive finite number (a sampling rate).

        Parameters
        ----------
        name : str
            The variable's name, one of :meth:`names`; a :class:`DataError` naming it when it is not one
            positive finite number.
        """
        shape, kind = self.describe(name)
        values = self.numeric(name) if kind in NUMERIC_CLASSES else np.empty(0)
        value = float(values.ravel()[0]) if values.size == 1 else float("nan")
        if not (np.isfinite(value) and value > 0):
            raise DataError(
                f"{self.path}: variable {name!r} ({'×'.join(map(str, shape))} {kind}) is not one positive "
                "sampling rate in Hz; name another variable in preprocess.options.sfreq_variable or set sfreq"
            )
        return value

    def _not_numeric(self, name: str, kind: str) -> DataError:
        return DataError(f"{self.path}: variable {name!r} is a {kind}, not a numeric matrix; name a numeric variable")

    def _not_text(self, name: str, kind: str) -> DataError:
        return DataError(
            f"{self.path}: variable {name!r} is a {kind}, not channel names; name a char matrix or a cell array of "
            "char in preprocess.options.names_variable (MATLAB string arrays: save them with cellstr)"
        )


@contextmanager
def open_mat(path: Path) -> Iterator[MatVariables]:
    """Open a MATLAB file of either version.

    Parameters
    ----------
    path : Path
        A ``.mat`` file.

    Raises
    ------
    DataError
        If the file is neither a MATLAB v5 file nor an HDF5 (v7.3) file.
    """
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError:
        is_hdf5 = False
    if not is_hdf5:
        yield _V5Variables(path)
        return
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: not a readable MATLAB v7.3 (HDF5) file ({first_line(error)})") from None
    with handle:
        yield _Hdf5Variables(path, handle)


class _V5Variables(MatVariables):
    """A MATLAB v4/v5/v7 file read with :func:`scipy.io.loadmat`."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._table = {name: (tuple(shape), kind) for name, shape, kind in self._call(scipy.io.whosmat, path)}

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        # scipy's parser fails on a damaged or foreign file with whatever its byte reading hits (IndexError,
        # KeyError, struct.error, ...), raised inside scipy: the file's fault by is_reading_error's rule, an
        # unreadable file; any other error is ours and stops the run.
        with reading_as(self.path, "MATLAB file"):
            return function(*args, **kwargs)

    def names(self) -> list[str]:
        return list(self._table)

    def describe(self, name: str) -> tuple[tuple[int, ...], str]:
        return self._table[name]

    def _load(self, name: str) -> Any:
        return self._call(scipy.io.loadmat, self.path, variable_names=[name])[name]

    def numeric(self, name: str) -> np.ndarray:
        kind = self._table[name][1]
        if kind not in NUMERIC_CLASSES:
            raise self._not_numeric(name, kind)
        return np.asarray(self._load(name))

    def strings(self, name: str) -> list[str]:
        kind = self._table[name][1]
        value = self._load(name)
        if kind == "char":
            return [str(row).strip() for row in np.atleast_1d(value)]
        if kind != "cell":
            raise self._not_text(name, kind)
        result = []
        for element in value.ravel(order="F"):
            if not (isinstance(element, np.ndarray) and element.dtype.kind == "U"):
                raise self._not_text(name, "cell array holding other things than char")
            result.append(" ".join(str(row).strip() for row in element.ravel()))
        return result

    def field_text(self, name: str, field: str) -> str | None:
        struct = self._call(scipy.io.loadmat, self.path, variable_names=[name], squeeze_me=True, struct_as_record=False).get(name)
        value = getattr(struct, field, None)
        return value if isinstance(value, str) else None


class _Hdf5Variables(MatVariables):
    """A MATLAB v7.3 file: an HDF5 file whose datasets hold each variable transposed."""

    def __init__(self, path: Path, handle: h5py.File) -> None:
        super().__init__(path)
        self._handle = handle

    def names(self) -> list[str]:
        return [name for name in self._handle.keys() if name not in _HDF5_INTERNAL]

    def describe(self, name: str) -> tuple[tuple[int, ...], str]:
        node = self._handle[name]
        kind = _matlab_class(node)
        if not isinstance(node, h5py.Dataset):
            return (1, 1), kind
        if node.attrs.get("MATLAB_empty", 0):
            return (0, 0), kind
        return tuple(reversed(node.shape)), kind

    def numeric(self, name: str) -> np.ndarray:
        node = self._handle[name]
        kind = _matlab_class(node)
        if kind not in NUMERIC_CLASSES or not isinstance(node, h5py.Dataset):
            raise self._not_numeric(name, kind or "HDF5 group")
        if node.dtype.kind not in "biuf":
            raise self._not_numeric(name, f"complex {kind}")
        if node.attrs.get("MATLAB_empty", 0):
            return np.empty((0, 0))
        return np.asarray(node[()]).T

    def strings(self, name: str) -> list[str]:
        node = self._handle[name]
        kind = _matlab_class(node)
        if kind == "char" and isinstance(node, h5py.Dataset):
            return _char_rows(node)
        if kind != "cell" or not isinstance(node, h5py.Dataset):
            raise self._not_text(name, kind or "HDF5 group")
        result = []
        # The dataset is the cell array transposed: its C order is MATLAB's column-major order.
        for reference in np.asarray(node[()]).ravel():
            target = self._handle[reference]
            if _matlab_class(target) != "char" or not isinstance(target, h5py.Dataset):
                raise self._not_text(name, "cell array holding other things than char")
            result.append(" ".join(_char_rows(target)))
        return result

    def field_text(self, name: str, field: str) -> str | None:
        struct = self._handle[name]
        node = struct.get(field) if isinstance(struct, h5py.Group) else None
        if not isinstance(node, h5py.Dataset) or _matlab_class(node) != "char":
            return None
        return "".join(_char_rows(node))


def _matlab_class(node: h5py.HLObject) -> str:
    value = node.attrs.get("MATLAB_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _char_rows(dataset: h5py.Dataset) -> list[str]:
    """A v7.3 char matrix: UTF-16 code units stored transposed, one string per MATLAB row."""
    if dataset.attrs.get("MATLAB_empty", 0):
        return [""]
    codes = np.atleast_2d(np.asarray(dataset[()])).T
    return ["".join(chr(int(code)) for code in row).strip() for row in codes]
