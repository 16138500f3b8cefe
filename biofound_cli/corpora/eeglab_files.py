"""Which file an EEGLAB set's samples are read from: the ``.set`` itself, or the data file its ``data`` field names.

EEGLAB saves a data set either whole in the ``.set`` (a MATLAB file) or as a ``.set`` header and a
``.fdt`` data file; then the header's ``data`` field holds the data file's name, which need not be
the header's own (a set renamed, saved under another name). MNE reads the samples from the file
named there, beside the header, and from ``<set name>.fdt`` when that file is not there; so does
:func:`data_files`, so a re-run notices a rewritten data file whatever its name.

The field is read without the samples where the file allows it: from a v7.3 (HDF5) file alone,
and from a v5 file whose fields are saved as variables (EEGLAB's newer layout) by loading the
``data`` variable only when it is text. A v5 file holding one ``EEG`` struct is loaded whole
(:func:`scipy.io.loadmat` reads no part of a variable), its samples too when they are in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from biofound_cli.errors import DataError

if TYPE_CHECKING:
    from biofound_cli.corpora.mat_variables import MatVariables

DATA_FIELD = "data"
"""The field (or variable) that holds the samples, or the name of the file holding them."""


def data_files(path: Path) -> list[Path]:
    """The files MNE may read the samples of the EEGLAB set ``path`` from, besides ``path``; none when they are in it.

    The file the set names first, then, when that one is not there, ``<set name>.fdt``, which MNE
    reads instead (one of them newly there changes what is read). A set that cannot be read names
    ``<set name>.fdt`` alone (MNE will refuse it, or read that file).

    Parameters
    ----------
    path : Path
        The ``.set`` file.
    """
    # Imported here: scipy.io and h5py are not loaded for the corpora that read no MATLAB file.
    from biofound_cli.corpora.mat_variables import open_mat

    beside = path.with_suffix(".fdt")
    try:
        with open_mat(path) as variables:
            named = _named_data_file(variables)
    except (DataError, OSError, KeyError, ValueError):
        return [beside]
    if named is None:
        return []
    data = path.parent / named
    if data == path:
        return []
    return [data] if data.is_file() or data == beside else [data, beside]


def _named_data_file(variables: MatVariables) -> str | None:
    """The data file name the set's ``data`` holds; ``None`` when ``data`` holds the samples."""
    names = variables.names()
    if DATA_FIELD in names:  # the fields saved as variables
        return variables.strings(DATA_FIELD)[0] if variables.describe(DATA_FIELD)[1] == "char" else None
    if "EEG" in names:
        return variables.field_text("EEG", DATA_FIELD)
    return None
