"""What every corpus reader provides to the preprocessing pipeline.

A corpus does two things:

1. :meth:`Corpus.discover` lists the recordings under a root folder as :class:`RecordingRef`
   (cheap: paths and names only, no signal is read), sorted so every run sees the same order;
2. :meth:`Corpus.read` loads one recording as a :class:`Recording`: the signal in physical
   units, its channel names and sampling rate, and its labels in one of three forms:

   * ``label``: one label for the whole recording (TUAB: the folder says normal/abnormal);
   * ``segments``: labelled spans in seconds (trials, gesture runs); windows are cut inside
     each span only and take its label;
   * ``window_labeler``: a function that rasterises annotations for any set of windows
     (TUAR, TUSL), called after filtering, resampling and montage, with the final channel names.

   None of the three means an unlabelled recording (pretraining corpora).

The shared signal chain (channel renaming and picking, filters, resampling, montage,
windowing) lives in :mod:`biofound_cli.signals` and is applied by the pipeline, not here.
A reader raises :class:`~biofound_cli.errors.DataError` with a message naming the file
and the reason when a recording cannot be used; the pipeline skips it and counts the reason.
"""

from __future__ import annotations

import codecs
import fnmatch
import json
import logging
import os
import re
from abc import ABC, abstractmethod
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Iterator, Literal, Mapping, Sequence, TypeVar

import numpy as np
from pydantic import AfterValidator

from biofound_cli.errors import UnusableRecording, UsageError
from biofound_cli.plural import counted, plural
from biofound_cli.recipes.base import Section
from biofound_cli.signals.records import Recording, Segment, Split, WindowLabeler

if TYPE_CHECKING:  # the chain (filters, resampling) is imported where it runs: pack reads reports, not recordings
    from biofound_cli.signals.chain import ChainConfig

logger = logging.getLogger(__name__)

Modality = Literal["eeg", "emg"]
OptionsT = TypeVar("OptionsT", bound=Section)

__all__ = [
    "CHANNEL_NAMES_OPTION",
    "CHANNEL_POSITIONS_HELP",
    "ChannelPositions",
    "Corpus",
    "EMG_DOWNSTREAM_DEFAULTS",
    "Modality",
    "Recording",
    "RecordingRef",
    "RepetitionSplits",
    "Segment",
    "Split",
    "UnusableRecording",
    "WindowLabeler",
    "channel_positions_meta",
    "file_ending",
    "files_under",
    "label_indices",
    "name_matches",
    "one_walk_per_folder",
    "place_trials",
    "split_of_repetition",
    "text_encoding",
    "undecodable_line",
    "undecodable_text",
]


@dataclass(frozen=True)
class RecordingRef:
    """One recording found by :meth:`Corpus.discover`."""

    path: Path
    """The main file (EDF, CNT, MAT, CSV, ...)."""
    recording_id: str
    """Unique within the corpus; the shard is written as ``<recording_id>.h5``."""
    subject: str
    """Subject (patient) identifier, used for subject-disjoint splits."""
    session: str = ""
    split: Split | None = None
    """The corpus's official split for the whole recording, if it has one."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Corpus-specific facts found while discovering (annotation file, class from the path, ...)."""


EMG_DOWNSTREAM_DEFAULTS: dict[str, Any] = {
    "l_freq": 20.0,
    "h_freq": 90.0,
    "notch_hz": 50.0,
    "montage": None,
    "channels": None,
    "units": "file",
    # The published EMG chain: 4th-order Butterworth band-pass and a Q=30 notch, both run
    # forwards and backwards, then a per-channel z-score of the recording.
    "filter_method": "iir",
    "iir_order": 4,
    "notch_q": 30.0,
    "zscore": True,
}
"""Signal-chain defaults shared by the downstream EMG corpora (TinyMyo's fine-tuning data)."""


class Corpus(ABC):
    """A data set reader. Subclasses set the class attributes and implement :meth:`read` and :meth:`recording_of`.

    A corpus whose files must be seen together implements :meth:`discover` instead of :meth:`recording_of`.
    """

    name: ClassVar[str]
    """The name used on the command line (``biofound preprocess NAME``)."""
    modality: ClassVar[Modality]
    task: str
    """Task type of the labels: ``bc``, ``ml``, ``mc``, ``mcc``, ``mmc``, ``reconstruction``
    (:mod:`biofound_cli.tasks`); a corpus whose task depends on its options sets it per instance."""
    label_names: tuple[str, ...] = ()
    """Class names, by label index; a corpus whose names come from its options or files sets them per instance."""
    defaults: ClassVar[dict[str, Any]] = {}
    """Signal-chain defaults of this corpus, keyed by ``[preprocess]`` field names
    (``l_freq``, ``h_freq``, ``notch_hz``, ``sfreq``, ``window_seconds``, ``stride_seconds``,
    ``montage``, ``channels``, ...); the recipe overrides any of them."""
    Options: ClassVar[type[Section] | None] = None
    """Corpus-specific options (``[preprocess.options]`` in a recipe), e.g. the TUAR label mode."""
    left_out: Mapping[str, Sequence[RecordingRef]] = MappingProxyType({})
    """The recordings the last :meth:`discover` left out on purpose, by reason: TUEG's ``excluded_subject``, TUAR's
    ``outside_folders``, a file the ``edf`` corpus's ``labels_csv`` does not list (``not_in_labels_csv``), a BIDS
    recording's copy in another format (``other_format``). They are counted in the run's report (:attr:`excluded`),
    not among the files a run passes over (:mod:`~biofound_cli.corpora.not_read`). A corpus that leaves some out
    assigns its own dict in :meth:`discover`; this empty one, shared by the others, is read-only so that none can add
    to it in place."""
    training_data_options: ClassVar[tuple[str, ...]] = ()
    """Options that describe the training data set (the subjects it leaves out) rather than how a recording is read,
    besides those that give its splits (:attr:`official_split_options`, ``edf``'s ``labels_csv`` among them):
    ``predict`` empties both, since new recordings are in no labels CSV or split of the training data
    (:meth:`~biofound_cli.prediction.chain.PredictionChain.corpus`)."""
    official_split_options: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """The option that gives this reader's recordings each official split (``ts``'s ``split_patterns`` gives train and
    test, its ``val_fraction`` val, ``db5``'s ``split_by_repetition`` all three): ``pack`` names it when such a split
    stays empty, and ``predict`` empties it."""
    file_option: ClassVar[str | None] = None
    """The option (of :attr:`Options`) that says which files below a folder are recordings: ``table``'s and
    ``emg-csv``'s ``pattern``, ``edf``'s ``extensions``. ``predict --set preprocess.options.<it>=...`` changes it
    for new recordings named otherwise, and a folder where it takes no file is refused naming it (:func:`file_pattern`)."""
    reader_modules: ClassVar[tuple[str, ...]] = ()
    """Modules :meth:`read` imports, loaded once before worker processes are forked so that each
    worker does not import them again."""
    own_channels: ClassVar[tuple[str, ...]] = ()
    """The channels every file of the data set holds, in order (``db5``, ``epn612``, ``uci-emg``): what
    :meth:`named_channels` gives before a file is read; empty where the files or the options say."""

    def __init__(self, options: Section | None = None) -> None:
        if options is None and self.Options is not None:
            options = self.Options()
        self.options = options

    @classmethod
    def official_split_source(cls, split: str) -> str | None:
        """What gives this reader's recordings the official split ``split``, as ``pack``'s advice for a split left empty
        names it: the option of :attr:`official_split_options` (``preprocess.options.val_fraction``), overridden by a
        reader whose split no option sets (``uci-emg``: its subjects); ``None`` where nothing does.

        Parameters
        ----------
        split : str
            ``train``, ``val`` or ``test``.
        """
        option = cls.official_split_options.get(split)
        return f"preprocess.options.{option}" if option else None

    @property
    def excluded(self) -> dict[str, int]:
        """How many recordings the last :meth:`discover` left out on purpose, by reason (:attr:`left_out`)."""
        # A reason no recording had (every file listed in labels_csv) is not one: it would read `not_in_labels_csv=0`.
        return {reason: len(refs) for reason, refs in self.left_out.items() if refs}

    def options_as(self, kind: type[OptionsT]) -> OptionsT:
        """The options, typed as ``kind``: the corpus's ``Options`` class or a base of it.

        Parameters
        ----------
        kind : type
            The options class the calling method reads fields of.
        """
        # The pipeline builds the options from ``Options`` (or ``__init__`` does), so this holds.
        assert isinstance(self.options, kind), f"{self.name}: options are {type(self.options).__name__}, not {kind.__name__}"
        return self.options

    def label_names_meta(self, ref: RecordingRef) -> dict[str, Any]:
        """``{"label_names": ...}`` for the meta of ``ref``'s recording: the names discovery gave it, else the
        corpus's own; ``{}`` when there are none.

        Discovery numbers the class names it finds in the whole corpus (a labels CSV, file-name groups) and
        puts them on each ref, since a worker process reads the recording with a fresh corpus that has not
        discovered them.

        Parameters
        ----------
        ref : RecordingRef
            One of the recordings :meth:`discover` listed.
        """
        label_names = ref.extra.get("label_names") or list(self.label_names)
        return {"label_names": label_names} if label_names else {}

    def discover(self, root: Path) -> list[RecordingRef]:
        """List the recordings under ``root``, sorted by ``recording_id``.

        By default, every file below ``root`` (:func:`files_under`) that :meth:`recording_of`
        takes for a recording; a corpus whose files must be seen together (names that clash, a
        labels file, an official split of the whole archive) overrides this instead.

        Parameters
        ----------
        root : Path
            The corpus folder (a recipe's ``preprocess.root``).
        """
        refs = (self.recording_of(path, root) for path in files_under(root))
        return sorted((ref for ref in refs if ref is not None), key=lambda ref: ref.recording_id)

    def recording_of(self, path: Path, root: Path) -> RecordingRef | None:
        """The recording the file ``path`` is, or ``None`` for a file of another kind (asked by :meth:`discover`).

        Parameters
        ----------
        path : Path
            A file below ``root``.
        root : Path
            The corpus folder.
        """
        raise NotImplementedError(f"{type(self).__name__} overrides neither discover nor recording_of")

    def source_files(self, ref: RecordingRef, labels: bool = True) -> list[Path]:
        """The files :meth:`read` reads ``ref`` from: its own file first, then each other one that is there.

        A re-run processes the recording again when any of them was rewritten since
        (:mod:`~biofound_cli.store.source_stamp`); a corpus that reads more than ``ref.path`` overrides this.

        Parameters
        ----------
        ref : RecordingRef
            One of the recordings :meth:`discover` listed.
        labels : bool
            Whether the labels are read too; ``predict`` reads a TUH recording's signal alone.
        """
        return [ref.path]

    def unread_files(self, root: Path, refs: Sequence[RecordingRef]) -> list[Path]:
        """The files below ``root`` that are no recording ``refs`` lists and no file one of them is read from.

        What :meth:`discover` listed (``refs``) decides what a recording is; the rest, less each
        recording's other files (:meth:`source_files`, its labels' too), hidden files (a name
        starting with a dot: ``.DS_Store``, a ``.git`` folder) and the data set's own documentation
        (``README``, ``DESCRIPTION.txt``, ``LICENSE``: :data:`DOCUMENTATION_NAMES`), is what a run passes over.
        ``preprocess`` and ``predict`` count them (:func:`~biofound_cli.corpora.not_read.count_not_read`,
        which passes the recordings discovery left out on purpose among ``refs``), so a file of another
        format beside the recordings is named rather than passed over in silence. Only the recordings
        in a folder holding such a file are asked for their other files (a BrainVision header is read
        to name them). A corpus whose folders hold files of its own besides the recordings (a BIDS data
        set's sidecars) overrides this.

        Parameters
        ----------
        root : Path
            A folder :meth:`discover` listed.
        refs : sequence of RecordingRef
            What it listed (and what it left out on purpose, whose files are not counted either).
        """
        taken = {ref.path.resolve() for ref in refs}
        files = files_under(root, name_broken_links=False)  # discover named them
        left = [path for path in files if path.resolve() not in taken and not _hidden(path, root) and not _documentation(path)]
        folders = {path.parent.resolve() for path in left}
        for ref in refs:
            if ref.path.parent.resolve() in folders:
                taken.update(path.resolve() for path in self.source_files(ref))
        return [path for path in left if path.resolve() not in taken]

    def named_channels(self) -> list[str] | None:
        """Every channel :meth:`read` gives, in its order, where the options name them without a file being read;
        ``None`` (the default) where only the files say.

        ``biofound validate`` checks them against the model (their count, LUNA's positions and vocabulary)
        when the recipe's chain keeps a recording's channels as they are, before any data exist
        (:meth:`chain_channels`). The default: the data set's :attr:`own_channels`, else the options'
        ``channel_names``, where they have that field.
        """
        return list(self.own_channels) or getattr(self.options, "channel_names", None)

    def chain_channels(self, config: ChainConfig) -> list[str] | None:
        """The channels of the windows ``config`` cuts from this reader's recordings, where they are known before a
        file is read: the montage's pairs, ``preprocess.channels``, else (without a montage) :meth:`named_channels`.

        Parameters
        ----------
        config : ChainConfig
            The resolved chain of the recipe's ``[preprocess]``.
        """
        # A montage derives its own channels, and with "auto" the files decide: the reader's names count without one.
        named = self.named_channels() if config.montage == "none" else None
        from biofound_cli.signals.chain import output_channel_names

        return output_channel_names(config.channels or named, config.montage)

    @property
    def declared_sfreq(self) -> float | None:
        """The rate every recording is read at, as the options state it before any file is read
        (``preprocess.options.sfreq``); ``None`` (the default) where the files say."""
        return getattr(self.options, "sfreq", None)

    @property
    def channel_positions(self) -> dict[str, list[float]] | None:
        """The electrode positions the options give (``preprocess.options.channel_positions``), name -> [x, y, z]
        in metres; ``None`` (the default) for a reader that takes none or options that give none."""
        return getattr(self.options, "channel_positions", None)

    def window_problem(self, config: ChainConfig) -> str | None:
        """Why the windows ``config`` cuts cannot come from this reader's recordings, as its options say before a file
        is read (``edf``: longer than the span ``event_window`` cuts around each event); ``None`` (the default) when
        nothing is known against them.

        Parameters
        ----------
        config : ChainConfig
            The resolved chain of the recipe's ``[preprocess]``.
        """
        return None

    def header_rate(self, ref: RecordingRef) -> float | None:
        """The rate :meth:`read` will give ``ref`` at, known from its header alone; ``None`` where that is not cheap.

        ``preprocess`` at native rates asks it of every recording before any work, to warn of rates
        ``pack`` cannot put together before they are processed (:mod:`~biofound_cli.store.sampling_rates`).
        By default nothing is known: the warning waits for a second rate to be written.

        Parameters
        ----------
        ref : RecordingRef
            One of the recordings :meth:`discover` listed.
        """
        return None

    @abstractmethod
    def read(self, ref: RecordingRef) -> Recording:
        """Load one recording; raise :class:`~biofound_cli.errors.DataError` if it cannot be used.

        Parameters
        ----------
        ref : RecordingRef
            One of the recordings :meth:`discover` listed.
        """


def place_trials(trials: Sequence[np.ndarray], gap_seconds: float, sfreq: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The trials one after another in time, ``gap_seconds`` of zeros between two, and where each one lies.

    How a corpus of trials already cut (``ts``, ``epn612``) becomes one recording: a segment per
    trial keeps every window inside one trial, and the gap keeps the filter edges of one trial out
    of the next.

    Parameters
    ----------
    trials : sequence of ndarray, shape (n_channels, n_samples)
        The trials in order, each with the same channels.
    gap_seconds : float
        Zeros placed between two consecutive trials, in seconds (rounded to whole samples).
    sfreq : float
        Sampling rate of the trials, in Hz.

    Returns
    -------
    data : ndarray, shape (n_channels, n_total)
    spans : list of (float, float)
        ``(start, stop)`` of every trial, in seconds from the first sample.
    """
    pieces: list[np.ndarray] = []
    spans, cursor, gap = [], 0, int(round(gap_seconds * sfreq))
    for trial in trials:
        if pieces and gap:
            pieces.append(np.zeros((trial.shape[0], gap)))
            cursor += gap
        pieces.append(trial)
        spans.append((cursor / sfreq, (cursor + trial.shape[1]) / sfreq))
        cursor += trial.shape[1]
    return np.concatenate(pieces, axis=1), spans


_WALKS: ContextVar[dict[str, list[Path]] | None] = ContextVar("biofound_walks", default=None)
"""The folders :func:`files_under` walked inside :func:`one_walk_per_folder`, by the path as given."""


@contextmanager
def one_walk_per_folder() -> Iterator[None]:
    """While the block runs, :func:`files_under` walks each folder once and gives the same list again after.

    Discovery walks a corpus folder, then counting the files it did not take
    (:func:`~biofound_cli.corpora.not_read.count_not_read`) walked it a second time: every
    file's ``stat`` twice, minutes on a network file system holding a large corpus.
    """
    token = _WALKS.set({})
    try:
        yield
    finally:
        _WALKS.reset(token)


def files_under(root: Path, *, name_broken_links: bool = True) -> list[Path]:
    """Every file below ``root``, sorted, following symbolic links to folders and files.

    Data sets are often assembled from links (a subject folder linked in from scratch space); a
    plain ``Path.rglob`` does not enter a linked folder, so its recordings were silently not
    found. A folder reached twice (a link loop) is walked once; a broken link is logged and left out.
    Inside :func:`one_walk_per_folder` a folder walked before is not walked again.

    Parameters
    ----------
    root : Path
        The corpus folder (``--root``); the paths returned start with it.
    name_broken_links : bool
        Log each broken link; ``False`` for a second walk of a folder whose discovery has named them.
    """
    walks = _WALKS.get()
    if walks is not None and str(root) in walks:
        return list(walks[str(root)])
    found = _walk(root, name_broken_links)
    if walks is not None:
        walks[str(root)] = found
    return list(found)


def _walk(root: Path, name_broken_links: bool) -> list[Path]:
    """:func:`files_under`'s walk of ``root``."""
    found: list[Path] = []
    walked: set[str] = set()
    # A folder that cannot be listed (no permission) was passed over in silence, and its recordings with it.
    for folder, subfolders, names in os.walk(root, onerror=_unlisted, followlinks=True):
        real = os.path.realpath(folder)
        if real in walked:
            subfolders.clear()
            continue
        walked.add(real)
        for name in names:
            path = Path(folder, name)
            if path.is_file():
                found.append(path)
            elif name_broken_links and path.is_symlink() and not path.exists():
                logger.warning("%s: a broken symbolic link (to %s); left out", path, os.readlink(path))
    return sorted(found)


def _unlisted(error: OSError) -> None:
    """Name a folder the walk of :func:`files_under` cannot list: the recordings in it are left out."""
    reason = error.strerror or type(error).__name__
    logger.warning(f"{error.filename}: cannot be listed ({reason}); any recordings in it are left out, so fix its permissions")


DOCUMENTATION_NAMES = frozenset({"readme", "description", "license", "licence", "changes", "changelog", "citation", "notice"})
"""Names (before the first dot, any case) of the files a data set documents itself with: never called
files a run did not read (the bundled SCP1 sample's ``DESCRIPTION.txt`` was, on every quick start)."""


def _documentation(path: Path) -> bool:
    """Whether ``path`` is one of a data set's own documentation files (:data:`DOCUMENTATION_NAMES`)."""
    return path.name.split(".", 1)[0].lower() in DOCUMENTATION_NAMES


def _hidden(path: Path, root: Path) -> bool:
    """Whether ``path`` or a folder between ``root`` and it is hidden (its name starts with a dot)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def text_encoding(path: Path) -> str:
    """How to decode a text file: UTF-8 (a byte-order mark allowed), or Latin-1 when its start is not UTF-8.

    Acquisition software on Windows writes headers in its local code page (``Temps (µs)``,
    ``Fp1 Référence``); the numbers are ASCII either way, and Latin-1 decodes any byte, so such
    a file is read rather than refused.

    Parameters
    ----------
    path : Path
        The file; its first 64 KiB are checked.

    Raises
    ------
    OSError
        If the file cannot be opened.
    """
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8-sig"


def undecodable_line(path: Path) -> int:
    """The line (from 1) holding a file's first byte that is not UTF-8; 0 when the whole file is UTF-8.

    :func:`text_encoding` judges a file by its start; a file it found UTF-8 can still hold a
    Latin-1 byte further on, and the error of that read should name the line to fix. Lines are
    decoded one at a time: the newline byte is never part of a UTF-8 character, so a line
    decodes alone exactly when it decodes within the whole file.

    Parameters
    ----------
    path : Path
        The file, read line by line.

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def undecodable_text(path: Path, error: UnicodeDecodeError) -> str:
    """Why a text file :func:`text_encoding` found UTF-8 could not be decoded, naming the line (no advice).

    Parameters
    ----------
    path : Path
        The file being read.
    error : UnicodeDecodeError
        The error its reading raised.
    """
    return f"{path}: line {undecodable_line(path)} is not UTF-8 text ({error.reason}), though the file starts as UTF-8"


def file_ending(name: str, endings: Sequence[str]) -> str | None:
    """The first of ``endings`` that ``name`` ends with in any letter case, spelled as in ``name``.

    File names are matched without regard to case everywhere a corpus looks for its files
    (``X.EDF``, ``S1_E1_A1.MAT``, ``X_TEST.TS``): copies from Windows or older tools upper-case them.

    Parameters
    ----------
    name : str
        A file name (or a relative path).
    endings : sequence of str
        Endings such as ``.edf`` or ``.ts.gz``.
    """
    lowered = name.lower()
    return next((name[len(name) - len(ending) :] for ending in endings if lowered.endswith(ending.lower())), None)


def name_matches(name: str, pattern: str) -> bool:
    """Whether a file name matches a glob pattern from a recipe, in any letter case (as :func:`file_ending`).

    Parameters
    ----------
    name : str
        A file name.
    pattern : str
        An ``fnmatch`` pattern such as ``*_TEST.ts*``.
    """
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def split_of_repetition(split_by_repetition: dict[Split, list[int]] | None) -> dict[int, Split]:
    """Invert ``split_by_repetition`` (``{split: [repetitions]}``) into ``{repetition: split}``.

    The options of the corpora that split by repetition (``db5``, ``table``) run it as a
    validator (their field is a :data:`RepetitionSplits`), so a recipe listing one repetition
    under two splits is refused when it is loaded (and by ``biofound validate``).

    Parameters
    ----------
    split_by_repetition : dict | None
        The recipe's ``preprocess.options.split_by_repetition``; ``None`` for no splits.

    Raises
    ------
    ValueError
        If a repetition is listed under two splits.
    """
    result: dict[int, Split] = {}
    for split, repetitions in (split_by_repetition or {}).items():
        for repetition in repetitions:
            if repetition in result:
                raise ValueError(
                    f"repetition {repetition} is listed under both {result[repetition]} and {split}; "
                    "give each repetition one split"
                )
            result[repetition] = split
    return result


def _one_split_per_repetition(split_by_repetition: dict[Split, list[int]]) -> dict[Split, list[int]]:
    """``split_by_repetition`` as it is, once :func:`split_of_repetition` has found no repetition under two splits."""
    split_of_repetition(split_by_repetition)
    return split_by_repetition


RepetitionSplits = Annotated[dict[Split, list[int]], AfterValidator(_one_split_per_repetition)]
"""The type of a ``split_by_repetition`` option (``{split: [repetitions]}``): a recipe listing one
repetition under two splits is refused when it is loaded (and by ``biofound validate``)."""


def _three_coordinates(positions: dict[str, list[float]] | None) -> dict[str, list[float]] | None:
    """``channel_positions`` as it is, once every position is three numbers."""
    for name, position in (positions or {}).items():
        if len(position) != 3:
            raise ValueError(f"position of {name} must be [x, y, z] in metres, got {counted(len(position), 'value')}")
    return positions


ChannelPositions = Annotated[dict[str, list[float]] | None, AfterValidator(_three_coordinates)]
"""The type of a ``channel_positions`` option (name -> [x, y, z] in metres): checked when the recipe is loaded."""

CHANNEL_NAMES_OPTION = "preprocess.options.channel_names"
"""The option of a reader whose files may name no channel (a CSV without a header row), as a recipe and ``--set``
spell it: where it is unset the reader numbers the channels and says so (``Recording.names_option``)."""
CHANNEL_POSITIONS_HELP = "Electrode positions, name -> [x, y, z] in metres, for channels outside the standard montages."
"""The option's description, the same for every corpus that takes it."""


def channel_positions_meta(positions: dict[str, list[float]] | None) -> dict[str, Any]:
    """What a recording records of ``channel_positions`` (nothing when none are given): shards, packed files
    and checkpoints carry it, so LUNA places those channels alike in training, evaluation, export and prediction.

    Parameters
    ----------
    positions : dict | None
        The corpus option.
    """
    return {"channel_positions": {name: list(position) for name, position in positions.items()}} if positions else {}


def label_indices(values: Sequence[Any], label_names: Sequence[str], where: str) -> tuple[dict[Any, int], tuple[str, ...]]:
    """The integer label of every value: whole numbers as they are, names by ``label_names`` or in sorted order.

    Parameters
    ----------
    values : sequence
        The labels as a corpus states them (a labels file's column, file-name groups, events).
    label_names : sequence of str
        ``preprocess.options.label_names``, or empty to number the names in sorted order.
    where : str
        The file or field the values come from, named when one is not in ``label_names``.

    Returns
    -------
    indices : dict
        Each value's integer label.
    label_names : tuple of str
        The names in label order: those given, or the sorted names (empty for whole numbers).

    Raises
    ------
    UsageError
        If a name is not in the given ``label_names``.
    """
    texts = {value: str(value).strip() for value in values}
    if all(re.fullmatch(r"-?\d+", text) for text in texts.values()):
        return {value: int(text) for value, text in texts.items()}, tuple(label_names)
    names = tuple(label_names) or tuple(sorted(set(texts.values())))
    unknown = sorted({text for text in texts.values() if text not in names})
    if unknown:
        raise UsageError(
            f"{where}: {plural(len(unknown), 'label')} {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} "
            f"not in preprocess.options.label_names; add them"
        )
    return {value: names.index(text) for value, text in texts.items()}, names


def file_pattern(corpus: Corpus) -> str | None:
    """``preprocess.options.pattern = "..."`` (the reader's :attr:`~Corpus.file_option` as set), named where it took
    no file; ``None`` for a reader that picks no files by an option, or one left unset.

    Parameters
    ----------
    corpus : Corpus
        The reader that found no recording.
    """
    name = corpus.file_option
    value = getattr(corpus.options, name, None) if name else None
    if not value:
        return None
    return f"preprocess.options.{name} = " + (f'"{value}"' if isinstance(value, str) else json.dumps(value))
