"""A folder of EMG recordings stored as CSV files, one gesture (or rest) recording per file.

The file name says what each file holds: a regular expression with named groups ``class``,
``repetition`` and ``subject`` is matched against each file's path relative to the root
(``/``-separated). The default pattern fits the bundled Myo sample
(``R_<repetition>_C_<class>_EMG.csv``: 8 channels at 200 Hz, 3 s per file, 5 classes,
4 repetitions, one subject). A file's rows are samples and its columns are channels.

Labels: the ``class`` group gives one label for the whole file. Integer class values are used
as they are; class names are mapped through ``label_names`` (or, without it, numbered in sorted
order). Without a ``class`` group the recordings are unlabelled (pretraining data).

Splits: ``split_by_repetition`` maps each split to the repetitions it holds, e.g.
``{train = [0, 1], val = [2], test = [3]}``; files of other repetitions get no official split.

Discovery and reading are the ``table`` corpus's (:mod:`biofound_cli.corpora.table`); this
module fixes what ``emg-csv`` has always meant: every matched file is delimited text whatever
its suffix, rows are samples, a header row is skipped (its names are not used) and channels
are called ``EMG1``..``EMGn`` unless ``channel_names`` says otherwise.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from biofound_cli.corpora.base import EMG_DOWNSTREAM_DEFAULTS
from biofound_cli.corpora.table import PatternOptions, TableCorpus, TableLayout
from biofound_cli.corpora.table_files import TableRequest
from biofound_cli.recipes.base import Regex, Section

MYO_PATTERN = r"R_(?P<repetition>\d+)_C_(?P<class>\d+)_EMG\.csv"


class EmgCsvOptions(PatternOptions):
    """``[preprocess.options]`` of the ``emg-csv`` corpus."""

    pattern: Regex = Field(
        MYO_PATTERN,
        description="Regex matched against each file's path relative to the root; named groups class, repetition, subject.",
    )
    sfreq: float = Field(200.0, gt=0, description="Sampling rate of the files, in Hz.")
    channel_names: list[str] | None = Field(None, description="Names of the columns; default EMG1..EMGn.")
    delimiter: str = Field(",", description="Column separator.")
    has_header: bool = Field(False, description="Whether the first line of every file is a header row.")


class EmgCsvCorpus(TableCorpus):
    """EMG gesture recordings, one CSV file each, described by a file-name pattern."""

    name: ClassVar[str] = "emg-csv"
    # modality "emg" and task "mcc": the table corpus's.
    # The Myo files are 3 s long: 1 s windows every 0.25 s give 9 windows per file, the same
    # window length as the TinyMyo DB5 setting (200 samples at 200 Hz, stride 50).
    defaults: ClassVar[dict[str, Any]] = {
        **EMG_DOWNSTREAM_DEFAULTS,
        "sfreq": 200.0,
        "window_seconds": 1.0,
        "stride_seconds": 0.25,
    }
    Options: ClassVar[type[Section]] = EmgCsvOptions
    reader_modules: ClassVar[tuple[str, ...]] = ()

    def layout(self) -> TableLayout:
        """Text files, rows are samples, names from the options or ``EMG1``..``EMGn``."""
        options = self.options_as(EmgCsvOptions)
        return TableLayout(
            request=TableRequest(text_only=True, delimiter=options.delimiter, has_header=options.has_header),
            sfreq=options.sfreq,
            channel_names=tuple(options.channel_names) if options.channel_names else None,
            orientation="samples_by_channels",
            header_names=False,
            name_prefix="EMG",
        )
