"""A folder of numeric tables — CSV, MATLAB (v5 or v7.3) or NumPy files — one recording per file.

For array recordings exported by acquisition software (e.g. a 64-channel HD-sEMG grid saved
by OT BioLab as a MATLAB ``Data`` matrix with auxiliary columns and a ``SamplingFrequency``
variable) and any other matrix of samples. What each file is comes from its path, as for
``emg-csv``: a regular expression with the optional named groups ``class``, ``repetition``
and ``subject`` is matched against the path relative to the root.

Reading one file: the matrix (the CSV cells, the ``.npy`` array, or the MATLAB ``variable``),
then its orientation (samples × channels or channels × samples; by default the longer axis
holds the samples), then the channel names (``channel_names``, else the MATLAB
``names_variable``, else the CSV header, else ``CH1``..``CHn``), then the columns kept
(``columns`` and ``drop_columns``, by index, ``"start:stop"`` range or name). Empty, ``NULL``
and ``NaN`` cells are missing samples (NaN): the signal chain's ``max_nan_fraction`` decides
whether the recording is kept, and they become 0 if it is. The sampling rate comes from the
MATLAB ``sfreq_variable`` when the file has it, else from ``sfreq``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal, Sequence

import numpy as np
from pydantic import Field, field_validator

from biofound_cli.corpora.base import (
    CHANNEL_NAMES_OPTION,
    Corpus,
    Modality,
    Recording,
    RecordingRef,
    RepetitionSplits,
    Split,
    files_under,
    label_indices,
    split_of_repetition,
)
from biofound_cli.corpora.table_files import LoadedTable, TableRequest, load_table
from biofound_cli.errors import DataError, UsageError
from biofound_cli.plural import first_few, plural
from biofound_cli.recipes.base import Regex, Section
from biofound_cli.signals.channels import numbered_advice

logger = logging.getLogger(__name__)

TABLE_PATTERN = r"(?:.+/)?[^/]+\.(?i:csv|mat|npy)"
_RANGE = re.compile(r"(-?\d*):(-?\d*)")
Orientation = Literal["auto", "samples_by_channels", "channels_by_samples"]


class PatternOptions(Section):
    """What the file names say: the options shared by ``table`` and ``emg-csv``."""

    pattern: Regex | None = Field(
        None,
        description="Regex matched against each file's path relative to the root; named groups class, repetition, "
        "subject; unset: every .csv, .mat and .npy file.",
    )
    split_by_repetition: RepetitionSplits | None = Field(
        None, description="Official split of each repetition, e.g. {train = [0, 1], val = [2], test = [3]}."
    )
    label_names: list[str] | None = Field(None, description="Name of each class label, in label order.")
    subject: str = Field("subject", description="Subject id used when the pattern has no subject group.")


class TableOptions(PatternOptions):
    """``[preprocess.options]`` of the ``table`` corpus."""

    sfreq: float | None = Field(
        None, gt=0, description="Sampling rate of the files in Hz (MATLAB files: unless sfreq_variable is in the file)."
    )
    sfreq_variable: str | None = Field(None, description="MATLAB variable holding the sampling rate, e.g. SamplingFrequency.")
    variable: str | None = Field(
        None, description="MATLAB variable holding the samples, e.g. Data; default: the file's only numeric matrix."
    )
    names_variable: str | None = Field(None, description="MATLAB char or cell array naming each channel, e.g. Description.")
    channel_names: list[str] | None = Field(
        None, description="Name of every channel of the file, before columns/drop_columns (overrides the file's names)."
    )
    columns: list[int | str] | None = Field(
        None, description='Channels to keep, in order: 0-based index, "start:stop" range or name; default all.'
    )
    drop_columns: list[int | str] = Field(
        default_factory=list, description='Channels to leave out (index, "start:stop" range or name), e.g. ["Time"].'
    )
    orientation: Orientation = Field(
        "auto", description="samples_by_channels, channels_by_samples, or auto (the longer axis holds the samples)."
    )
    delimiter: str = Field(",", description="Column separator of text files.")
    has_header: bool | None = Field(
        None, description="Whether text files start with a header row; default: when a first-line cell is not a number."
    )

    @field_validator("sfreq_variable", "variable", "names_variable")
    @classmethod
    def _a_variable_name(cls, value: str | None) -> str | None:
        # An empty name counted as set: sfreq_variable = "" passed validate with no rate, then failed on every file.
        if value is not None and not value.strip():
            raise ValueError("expected a MATLAB variable name, not an empty string; name one, or remove the field")
        return value


@dataclass(frozen=True)
class TableLayout:
    """Every reading option, resolved: what to read, how it is laid out, what the channels are."""

    request: TableRequest
    sfreq: float | None
    channel_names: tuple[str, ...] | None = None
    columns: tuple[int | str, ...] | None = None
    drop_columns: tuple[int | str, ...] = ()
    orientation: Orientation = "auto"
    header_names: bool = True
    """Whether a CSV header names the channels."""
    name_prefix: str = "CH"
    """Channels without a name are called ``<prefix>1`` .. ``<prefix>n``."""


class TableCorpus(Corpus):
    """Numeric tables, one recording per file, described by a file-name pattern."""

    name: ClassVar[str] = "table"
    modality: ClassVar[Modality] = "emg"
    task: str = "mcc"
    # No published chain fits every table: the recipe says which filters, rate and windows to use.
    defaults: ClassVar[dict[str, Any]] = {}
    Options: ClassVar[type[Section]] = TableOptions
    official_split_options: ClassVar[dict[str, str]] = dict.fromkeys(("train", "val", "test"), "split_by_repetition")
    file_option: ClassVar[str | None] = "pattern"
    reader_modules: ClassVar[tuple[str, ...]] = ("scipy.io",)

    def __init__(self, options: PatternOptions | None = None) -> None:
        super().__init__(options or self.Options())
        self.label_names = tuple(self.options_as(PatternOptions).label_names or ())

    def layout(self) -> TableLayout:
        """How every file is read, from the options."""
        options = self.options_as(TableOptions)
        request = TableRequest(
            delimiter=options.delimiter,
            has_header=options.has_header,
            variable=options.variable,
            names_variable=options.names_variable,
            sfreq_variable=options.sfreq_variable,
        )
        return TableLayout(
            request=request,
            sfreq=options.sfreq,
            channel_names=tuple(options.channel_names) if options.channel_names else None,
            columns=tuple(options.columns) if options.columns else None,
            drop_columns=tuple(options.drop_columns),
            orientation=options.orientation,
        )

    def discover(self, root: Path) -> list[RecordingRef]:
        options = self.options_as(PatternOptions)
        layout = self.layout()
        if layout.sfreq is None and layout.request.sfreq_variable is None:
            raise UsageError(
                f"the {self.name} corpus needs the files' sampling rate; set preprocess.options.sfreq "
                "(or sfreq_variable for MATLAB files that hold it)"
            )
        pattern = re.compile(options.pattern or TABLE_PATTERN)
        if options.split_by_repetition and "repetition" not in pattern.groupindex:
            raise UsageError(
                "preprocess.options.split_by_repetition needs a 'repetition' group in preprocess.options.pattern; "
                "add (?P<repetition>...) to the pattern or remove split_by_repetition"
            )
        repetition_split = split_of_repetition(options.split_by_repetition)
        found = ((path, pattern.fullmatch(path.relative_to(root).as_posix())) for path in files_under(root))
        matches = [(path, match.groupdict()) for path, match in found if match is not None]
        _warn_unmatched_repetitions(repetition_split, [groups.get("repetition") for _, groups in matches], root)
        classes = [groups["class"] for _, groups in matches if groups.get("class") is not None]
        class_index, self.label_names = label_indices(
            classes, self.label_names, f"the class group of the file names under {root}"
        )
        refs: dict[str, RecordingRef] = {}
        for path, groups in matches:
            recording_id = path.relative_to(root).with_suffix("").as_posix().replace("/", "-")
            if recording_id in refs:
                raise UsageError(
                    f"{refs[recording_id].path} and {path} would both be recording {recording_id}; "
                    "narrow preprocess.options.pattern so that it matches one of them"
                )
            repetition = groups.get("repetition")
            split = repetition_split.get(int(repetition)) if repetition is not None and repetition.isdigit() else None
            label = class_index[groups["class"]] if groups.get("class") is not None else None
            refs[recording_id] = RecordingRef(
                path=path,
                recording_id=recording_id,
                subject=groups.get("subject") or options.subject,
                session=repetition or "",
                split=split,
                # The label names travel with the ref: worker processes build a fresh corpus.
                extra={"label": label, "repetition": repetition, "label_names": list(self.label_names)},
            )
        return [refs[key] for key in sorted(refs)]

    def named_channels(self) -> list[str] | None:
        """``channel_names`` as ``columns`` and ``drop_columns`` keep them; ``None`` without names (the files give them)."""
        layout = self.layout()
        if not layout.channel_names:
            return None
        names = _numbered(layout.channel_names, layout.name_prefix)
        try:
            rows = select_rows(CHANNEL_NAMES_OPTION, names, layout.columns, layout.drop_columns)
        except DataError:
            return None  # every file is refused naming the column, when it is read
        return names if rows is None else [names[row] for row in rows]

    @property
    def declared_sfreq(self) -> float | None:
        """``preprocess.options.sfreq``, unless ``sfreq_variable`` is set: a MATLAB file holding it says its own rate."""
        layout = self.layout()
        return layout.sfreq if layout.request.sfreq_variable is None else None

    def read(self, ref: RecordingRef) -> Recording:
        layout = self.layout()
        loaded = load_table(ref.path, layout.request)
        samples_first = _samples_first(loaded.data.shape, layout.orientation)
        # Channels as rows: a view, copied once below, after the columns are picked.
        matrix = loaded.data.T if samples_first else loaded.data
        names = _channel_names(ref.path, matrix.shape[0], layout, loaded, samples_first)
        # Channels the file does not name are numbered: the advice for one not found names the option that names them.
        names_option = None if names else CHANNEL_NAMES_OPTION
        names = names or [f"{layout.name_prefix}{index + 1}" for index in range(matrix.shape[0])]
        rows = select_rows(ref.path, names, layout.columns, layout.drop_columns, names_option=names_option)
        if rows is not None:
            matrix, names = matrix[rows], [names[row] for row in rows]
        return Recording(
            data=np.ascontiguousarray(matrix),
            sfreq=_sfreq(ref.path, layout, loaded),
            ch_names=names,
            label=ref.extra.get("label"),
            meta={"repetition": ref.extra.get("repetition"), **self.label_names_meta(ref)},
            names_option=names_option,
        )


def _warn_unmatched_repetitions(repetition_split: dict[int, Split], repetitions: list[str | None], root: Path) -> None:
    """Warn of repetitions ``split_by_repetition`` lists that no file has: their split gets no official recording.

    A typo (``test = [9]`` for 4 repetitions numbered from 0) otherwise shows up only as an empty
    split in ``pack``, whose advice is about subjects.
    """
    found = sorted({int(value) for value in repetitions if value is not None and value.isdigit()})
    unmatched = [(repetition, split) for repetition, split in repetition_split.items() if repetition not in found]
    if not unmatched or not repetitions:
        return
    listed = ", ".join(f"{repetition} ({split})" for repetition, split in unmatched)
    logger.warning(
        f"preprocess.options.split_by_repetition lists {plural(len(unmatched), 'repetition')} {listed} that no file "
        f"under {root} has "
        f"(the files hold {plural(len(found), 'repetition')} {', '.join(map(str, found)) or 'none'}); fix the "
        f"numbers, or those splits "
        "get no recording from them"
    )


def _samples_first(shape: tuple[int, ...], orientation: Orientation) -> bool:
    """Whether the rows of the stored matrix are samples."""
    return shape[0] >= shape[1] if orientation == "auto" else orientation == "samples_by_channels"


def _channel_names(
    path: Path, n_channels: int, layout: TableLayout, loaded: LoadedTable, samples_first: bool
) -> list[str] | None:
    """The options' names, else the MATLAB names variable, else the CSV header; ``None`` when none names the channels."""
    axis = "columns" if samples_first else "rows"
    if layout.channel_names:
        names, source = list(layout.channel_names), CHANNEL_NAMES_OPTION
    elif loaded.names is not None:
        names, source = loaded.names, f"variable {layout.request.names_variable!r} (preprocess.options.names_variable)"
    elif loaded.header is not None and samples_first and layout.header_names:
        names, source = loaded.header, "the header"
    else:
        return None
    if len(names) != n_channels:
        raise DataError(f"{path}: the file has {n_channels} {axis} but {source} names {len(names)}; give one name per column")
    return _numbered(names, layout.name_prefix)


def _numbered(names: Sequence[str], prefix: str) -> list[str]:
    """``names``, each empty one called ``<prefix><its number from 1>``."""
    return [name or f"{prefix}{index + 1}" for index, name in enumerate(names)]


def select_rows(
    path: Path | str,
    names: list[str],
    columns: tuple[int | str, ...] | None,
    drop: tuple[int | str, ...],
    *,
    names_option: str | None = None,
) -> list[int] | None:
    """The channels kept, in order; ``None`` when every channel is kept as it is.

    Parameters
    ----------
    path : Path | str
        The file (or the option naming the channels), named in messages.
    names : list of str
        Every channel's name, in file order.
    columns : tuple or None
        Channels to keep (index, ``"start:stop"`` range or name); ``None`` keeps all.
    drop : tuple
        Channels to leave out, in the same forms.
    names_option : str | None
        The option that names the channels where ``names`` are numbered (the file names none); a name not
        found is then refused naming it.

    Raises
    ------
    DataError
        A name or index the file does not have, or nothing left.
    """
    if not columns and not drop:
        return None
    resolve = partial(_resolve, path, names, names_option=names_option)
    keep = [row for item in columns for row in resolve(item, "columns")] if columns else list(range(len(names)))
    dropped = {row for item in drop for row in resolve(item, "drop_columns")}
    rows = [row for row in keep if row not in dropped]
    if not rows:
        raise DataError(
            f"{path}: preprocess.options.columns and drop_columns leave none of its {len(names)} channels; keep at least one"
        )
    return rows


def _resolve(path: Path | str, names: list[str], item: int | str, option: str, *, names_option: str | None) -> list[int]:
    """The rows one ``columns`` / ``drop_columns`` entry stands for."""
    n = len(names)
    if isinstance(item, int):
        if not -n <= item < n:
            raise DataError(
                f"{path}: channel index {item} (preprocess.options.{option}) is out of range; "
                f"the file has {n} channels, numbered 0 to {n - 1}"
            )
        return [item % n]
    if item in names:
        return [names.index(item)]
    folded = [name.strip().casefold() for name in names]
    if item.strip().casefold() in folded:
        return [folded.index(item.strip().casefold())]
    match = _RANGE.fullmatch(item.strip())
    if match is not None:
        start, stop = (int(bound) if bound else None for bound in match.groups())
        if any(bound is not None and not -n <= bound <= n for bound in (start, stop)):
            raise DataError(
                f"{path}: range {item!r} (preprocess.options.{option}) reaches beyond the file's {n} channels (0 to {n - 1})"
            )
        return list(range(n))[start:stop]
    shown = first_few(names, 24)
    fix = f"; {numbered_advice(names_option)}, or pick the column by its index" if names_option else ""
    raise DataError(f"{path}: no channel named {item!r} (preprocess.options.{option}); the file's channels are {shown}{fix}")


def _sfreq(path: Path, layout: TableLayout, loaded: LoadedTable) -> float:
    """The file's own rate (``sfreq_variable``) when it has one, else ``sfreq``."""
    if loaded.sfreq is not None:
        return loaded.sfreq
    if layout.sfreq is not None:
        return float(layout.sfreq)
    variable = layout.request.sfreq_variable
    if loaded.variables:
        raise DataError(
            f"{path}: no variable {variable!r} (preprocess.options.sfreq_variable) and no preprocess.options.sfreq; "
            f"the file holds {loaded.variables}; set one of them"
        )
    raise DataError(f"{path}: the file does not say its sampling rate; set preprocess.options.sfreq")
