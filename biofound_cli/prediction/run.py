"""The ``predict`` stage: raw recordings → the model's chain → window scores, a table and a PNG each.

Each recording is read by the corpus reader and windowed by :func:`~biofound_cli.signals.chain.run_chain`
with the chain recorded with the model (:mod:`~biofound_cli.prediction.chain`), the code path of
``preprocess``; with ``workers > 1`` that happens in a process pool while this process runs the
model, a few recordings ahead, so memory stays bounded by a few recordings whatever their number.
A recording that cannot be used is skipped with its reason, as in ``preprocess``, and so is one
the model's scores are NaN or inf for on some window (``nonfinite_scores``: no table of it is written); the run fails
(exit status 1) only when every recording failed. ``OUT/summary.json`` holds the per-recording
aggregate (the mean of the window probabilities, as ``evaluate`` scores recordings) and the
counts; a re-run skips the recordings it lists as predicted by a model with the same content hash
while each one's table is still the file that run wrote and its recording the file that run read
(each entry records both files' size and time: a run of another model into the same folder may
have rewritten the table since, and a recording rewritten since needs predicting again).
As each table moves in, a line for it is appended to ``OUT/journal.jsonl`` (the model and its
summary entry), so a run killed before its summary (SIGKILL, a node lost) is resumed from there
too, by the same check, passing over a line a kill cut short; the journal is removed once the summary
is written.
With ``shard`` (an array-job task, :mod:`~biofound_cli.store.slices`), the run predicts its slice of
the recordings only, into the same folder, and writes ``OUT/summary.slice-I-of-N.json`` instead, so
slices never overwrite each other's summary; a re-run reads every summary in the folder.
One run at a time writes each summary and journal: a run holds ``OUT/.predict.lock`` (a slice
``.predict.slice-I-of-N.lock``, and ``.predict.lock`` shared with the slices of its count, so whole runs, slices and
slices of another count refuse each other: :func:`predict_out_held`, which ``biofound predict`` takes before the model
loads, and whose folder :func:`run_predict` takes), and a second one is refused.
A summary lists every table of the folder: a run on some of the recordings keeps the entries its earlier
summary (or journal) listed for the others, while their tables are the files that run wrote and it was this
model's, run this way (:func:`_earlier_tables`).
The folder holds one table per recording, in the format of the run that last predicted it: a table
of an earlier run in another ``--format`` is removed as this run's table of that recording moves in.
A run first deletes the temporaries (``.<table>.<host>.<pid>.<token>.tmp``) that runs killed outright on
this machine left in ``OUT``; another node's are left alone (:func:`~biofound_cli.atomic.remove_stale_temporaries_in`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import numpy as np

from biofound_cli.atomic import append_line, atomic_paths, read_json_object, remove_stale_temporaries_in, write_json_atomic
from biofound_cli.corpora.base import Corpus, Recording, RecordingRef
from biofound_cli.corpora.not_read import JOURNAL_PATTERN, JOURNAL_STEM, SUMMARY_NAME, SUMMARY_PATTERN
from biofound_cli.errors import AbsentChannels, EveryRecordingSkipped, UnusableRecording, UsageError
from biofound_cli.evaluation.report import aggregate_recordings
from biofound_cli.metrics import nonfinite_scores
from biofound_cli.plural import counted
from biofound_cli.prediction.agreement import Agreement
from biofound_cli.prediction.chain import ADMISSION_SETTINGS, PredictionChain
from biofound_cli.prediction.model import PredictionModel
from biofound_cli.prediction.outputs import FORMATS, check_format, plot_probabilities, score_table, table_path, write_windows
from biofound_cli.progress import NO_PROGRESS, ProgressReporter, ProgressTask
from biofound_cli.signals.chain import FLAT_KEPT, SHORT_EVENTS, ChainConfig, output_channel_names, run_chain
from biofound_cli.signals.quality import absent_channels
from biofound_cli.signals.windowing import window_gaps
from biofound_cli.store.folder_lock import held_out_folder
from biofound_cli.store.output_folder import created_folders_removed_on_failure, prepare_output_folder
from biofound_cli.store.preprocess_plan import RecordingResult
from biofound_cli.store.preprocess_recording import check_name, open_corpus, skipped_result, worker_died
from biofound_cli.store.preprocess_reports import in_current_names, tally_files, with_breakdown
from biofound_cli.store.recording_ids import DUPLICATE_ID, Duplicate
from biofound_cli.store.slices import Slice, per_slice_name, slice_refs
from biofound_cli.store.source_stamp import SOURCE_STAMP, Files, file_stamp, rewritten_since
from biofound_cli.store.worker_lifetime import (
    Stopped,
    how_it_ended,
    signal_of,
    sigterm_as_interrupt,
    sigterm_noted,
    stop_signals_deferred,
)
from biofound_cli.store.worker_pool import pool_results, started_pool
from biofound_cli.tasks import RECONSTRUCTION

logger = logging.getLogger(__name__)

NONFINITE_SCORES = "nonfinite_scores"
"""The skip reason of a recording the model's scores of are NaN or inf for some windows (:func:`_finite_scores`)."""

MODEL_GEOMETRY_ADVICE = {
    "too_short": ", the model's window; a recording this short cannot be predicted",
    # Readers whose windows stay inside labelled events (trials of a .ts file, gesture runs).
    "events_too_short": ", the model's window; events this short cannot be predicted with this model",
    "missing_channels": "; the model needs every channel it was trained on: give recordings that have them",
}
"""What ``predict`` says, after the fact, for a recording that does not fit the model's window or channels
(a model's own advice for missing channels: :attr:`PredictionModel.advice`)."""

SHORT_EVENTS_LEFT_OUT = "they are left out of the predictions, as the window is the model's"
"""What ``predict`` says of some labelled events (trials of a .ts file) shorter than the model's window, the others kept."""


@dataclass
class Windows:
    """One recording, preprocessed: its windows and where they start."""

    recording_id: str
    source_path: str
    x: np.ndarray
    start_seconds: np.ndarray
    notes: dict[str, int] = field(default_factory=dict)
    """What the chain kept with a warning (:attr:`~biofound_cli.signals.chain.WindowedRecording.notes`):
    ``events_shorter_than_window`` counts the labelled events left out as shorter than the model's window."""
    flat_channels_kept: list[str] = field(default_factory=list)
    """The flat channels the recording is predicted with (the chain warned, naming them)."""
    source_stamp: tuple[int, int] = (0, 0)
    """The recording's files' size and modification time as they were read (:data:`SOURCE_STAMP`)."""
    sfreq: float = 0.0
    """The rate of the windows, as ``preprocess`` reports a shard's."""

    def gaps(self, config: ChainConfig) -> np.ndarray:
        """Where the next window is not adjacent to this one (:func:`~biofound_cli.signals.windowing.window_gaps`).

        Parameters
        ----------
        config : ChainConfig
            The chain the windows were cut by.
        """
        starts = np.round(self.start_seconds * self.sfreq).astype(np.int64)
        return window_gaps(starts, config.window_samples(self.sfreq), config.stride_samples(self.sfreq))


def prepare_recording(
    corpus_name: str,
    options: dict[str, Any],
    ref: RecordingRef,
    config: ChainConfig,
    missing_advice: str = MODEL_GEOMETRY_ADVICE["missing_channels"],
) -> Windows | RecordingResult:
    """Read one recording and run the chain on it; a skip result instead of raising for bad data.

    A module-level function of picklable arguments, so it runs in a worker process.

    Parameters
    ----------
    corpus_name : str
        The corpus's key in ``CORPORA``.
    options : dict
        The corpus's ``[preprocess.options]``, validated in the worker.
    ref : RecordingRef
        The recording.
    config : ChainConfig
        The chain recorded with the model.
    missing_advice : str
        What a recording lacking some of the model's channels is told (``; ...``): for a model that
        takes other channels (LUNA), the way to feed it these recordings' own.
    """
    corpus = open_corpus(corpus_name, options, config)
    source = str(ref.path)
    read, labels = _reading(corpus)
    try:
        check_name(ref)
        # Before reading: a file rewritten meanwhile is predicted again by a re-run.
        stamp = file_stamp(corpus.source_files(ref, labels))
        windowed = run_chain(read(ref), config, source=source, short_events_advice=SHORT_EVENTS_LEFT_OUT)
    except Exception as error:  # noqa: BLE001 - one odd file must not stop the run
        if isinstance(error, AbsentChannels):
            # Leaving them out of preprocess.channels is no fix either: the model needs them (LUNA: a --recipe's).
            error = UnusableRecording(f"{absent_channels(source, error.channels)}{missing_advice}", "missing_channels")
        elif isinstance(error, UnusableRecording) and error.reason in MODEL_GEOMETRY_ADVICE:
            # The chain's advice (a shorter preprocess.window_seconds, other preprocess.channels) is no fix
            # here: the window and the channels are the model's. Its message ends in "; <advice>".
            fact = error.message.rsplit(";", 1)[0]
            advice = missing_advice if error.reason == "missing_channels" else MODEL_GEOMETRY_ADVICE[error.reason]
            error = UnusableRecording(f"{fact}{advice}", error.reason)
        elif isinstance(error, UnusableRecording):
            error = UnusableRecording(_with_predict_setting(error.message, error.reason), error.reason)
        return skipped_result(ref, error)
    assert windowed.x is not None  # no sink was passed: the chain returns the windows
    return Windows(
        ref.recording_id,
        source,
        windowed.x,
        windowed.window_start_seconds,
        dict(windowed.notes),
        windowed.flat_channels_kept,
        stamp,
        float(windowed.sfreq),
    )


def _reading(corpus: Corpus) -> tuple[Callable[[RecordingRef], Recording], bool]:
    """How predict reads a recording of ``corpus``, and whether that reads its labels.

    New recordings carry no labels: a reader that separates the signal from its labels (the TUH
    readers' ``read_signal``) is asked for the signal alone, so an unlabelled EDF is not skipped,
    and a changed annotation file beside it is no reason to predict it again.
    """
    read_signal = getattr(corpus, "read_signal", None)
    return (corpus.read, True) if read_signal is None else (read_signal, False)


def _with_predict_setting(message: str, reason: str) -> str:
    """The chain's advice to change a ``preprocess.`` setting, with how predict takes it (``--set``, no recipe)."""
    named = [key for key, decides in ADMISSION_SETTINGS.items() if decides == reason and f"preprocess.{key}" in message]
    if not named:
        return message
    flags = " or ".join(f"--set preprocess.{key}=VALUE" for key in named)
    return f"{message} (predict: {flags})"


@dataclass
class Journal:
    """Lines appended as tables move in, read by a re-run when the summary was never written (SIGKILL)."""

    path: Path
    model: dict[str, Any]
    """``model_sha256``, ``runtime``, ``format`` and ``channels``: which run wrote a line."""
    _whole: bool = field(default=False, init=False, repr=False)
    """Whether the journal ends a line: known once this run has appended to it."""

    def add(self, entry: dict[str, Any]) -> None:
        """Note a recording whose table has just moved in.

        Parameters
        ----------
        entry : dict
            Its summary entry (``output`` is the table, stamped by :func:`_stamp_table`).
        """
        line = json.dumps({**self.model, "entry": entry})
        # A kill leaves at most a last line without its newline, on which this run's first line would run on (both
        # unreadable): that one starts a line of its own. Its lines go in whole or not at all (append_line), so the
        # tail is read once.
        if not self._whole and not _ends_a_line(self.path):
            line = "\n" + line
        append_line(self.path, line)
        self._whole = True

    def remove(self) -> None:
        """Drop the journal once the summary lists what it noted."""
        self.path.unlink(missing_ok=True)


def _ends_a_line(path: Path) -> bool:
    """Whether ``path`` is missing, empty or ends with a newline: not with a line a kill cut short."""
    try:
        with path.open("rb") as file:
            if file.seek(0, os.SEEK_END) == 0:
                return True
            file.seek(-1, os.SEEK_END)
            return file.read(1) == b"\n"
    except FileNotFoundError:
        return True


def _json_line(text: str) -> dict[str, Any] | None:
    try:
        line = json.loads(text)
    except ValueError:
        return None
    return line if isinstance(line, dict) and isinstance(line.get("entry"), dict) else None


def journal_lines(path: Path, *, warn: bool = False) -> list[dict[str, Any]]:
    """The whole lines of the journal ``path``: each a table that moved in, with the run that wrote it.

    A line that is not whole (one a kill cut short, wherever it is: an earlier biofound appended the next run's
    line to it) is passed over, by a re-run and ``biofound info`` alike.

    Parameters
    ----------
    path : Path
        A journal (``journal.jsonl``, ``journal.slice-I-of-N.jsonl``).
    warn : bool
        Say in one warning how many lines were passed over, if any.
    """
    texts = path.read_text(encoding="utf-8", errors="replace").split("\n")
    lines = [_json_line(text) for text in texts if text]
    if warn and None in lines:
        logger.warning(
            f"{path}: {counted(lines.count(None), 'unreadable line')} passed over (cut short by a run killed as "
            "it wrote); a recording noted only there is predicted again"
        )
    return [line for line in lines if line is not None]


def _listed(
    out: Path, summaries: str = SUMMARY_PATTERN, journals: str = JOURNAL_PATTERN, *, warn: bool = False
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Each table the folder's journals and then summaries list (every slice's, or those named): the run that
    wrote it (``model_sha256``, ``runtime``, ``format``, ``channels``) and its entry.

    A summary that cannot be read is passed over; so is a journal line that is not whole (:func:`journal_lines`,
    which ``warn`` passes on).
    """
    for path in sorted(out.glob(journals)):
        for line in journal_lines(path, warn=warn):
            yield line, in_current_names(line["entry"])
    for path in sorted(out.glob(summaries)):
        earlier = read_json_object(path) or {}
        for entry in earlier.get("recordings") or []:
            if isinstance(entry, dict) and entry.get("status") in ("predicted", "already_done"):
                yield earlier, in_current_names(entry)


def _by(run: Mapping[str, Any], model: dict[str, Any]) -> bool:
    """Whether ``run`` (a summary, a journal line) was made as ``model`` says: same weights, runtime, format, channels."""
    return all(run.get(key) == value for key, value in model.items())


TABLE_STAMP = ("table_bytes", "table_mtime_ns")
"""What a summary entry (and journal line) records of its table as it moved in."""


def _stamp_table(entry: dict[str, Any]) -> None:
    """Record in ``entry`` the size and time of its table, which has just moved in."""
    entry.update(zip(TABLE_STAMP, file_stamp(entry["output"]), strict=True))


def _still_current(entry: dict[str, Any], files_of: Callable[[str], Files]) -> bool:
    """Whether the entry's table is still there as it moved in (not rewritten since, e.g. by another model's run)
    and its recording still the files that were read (not rewritten since: a re-recorded or re-exported session).

    ``files_of`` gives the files a recording is read from (its companions too), asked only for the entries
    found. An entry written before tables (or recordings) were stamped, by an older biofound, goes by the
    table being there.
    """
    if not all(key in entry for key in TABLE_STAMP):
        return _table_current(entry)
    return _table_current(entry) and not rewritten_since(entry, files_of(str(entry.get("source_path"))))


def _table_current(entry: dict[str, Any]) -> bool:
    """Whether the entry's table is still the file that moved in (or, unstamped, is there)."""
    table = str(entry.get("output"))
    if not all(key in entry for key in TABLE_STAMP):
        return os.path.isfile(table)
    return not rewritten_since(entry, table, TABLE_STAMP)


@dataclass
class PredictReport:
    """The tally of one run, written to ``OUT/summary.json`` with the entries of the earlier tables it keeps."""

    model: str
    model_sha256: str
    runtime: str
    chain_from: str
    model_description: str
    """What the model is (:attr:`~biofound_cli.prediction.model.PredictionModel.description`: a LoRA fine-tuning says so)."""
    license: str | None
    out: str
    format: str
    label_names: list[str]
    channels: list[str] | None = None
    """The channels the model was fed, in order: those it was trained on, or a LUNA checkpoint's ``--recipe`` ones."""
    found: int = 0
    not_read: dict[str, int] = field(default_factory=dict)
    """The files of the folders given that are not recordings (nor a recording's other files), by suffix:
    passed over, and named in a warning (:func:`~biofound_cli.prediction.recordings.find_recordings`)."""
    elapsed_seconds: float = 0.0
    interrupted: bool = False
    slice: str | None = None
    """``"I/N"`` when this run was one slice of an array job."""
    int8_agreement: dict[str, Any] | None = None
    """For an int8 graph: its agreement with the float graph beside it over the recordings predicted, now or already
    (those by their entries' own), as ``windows`` counts them."""
    recordings: list[dict[str, Any]] = field(default_factory=list)
    """The entries of the recordings of this run, found done or predicted now or skipped, by recording id."""

    @property
    def counts(self) -> EntryCounts:
        """What its recordings count (:func:`entry_counts`), as ``info`` of the folder counts them."""
        return entry_counts(self.recordings)

    @property
    def failed(self) -> bool:
        """Every recording found failed."""
        return self.found > 0 and self.counts.predicted == 0 and self.counts.already_done == 0

    @property
    def summary_name(self) -> str:
        """The file name this run's summary is written under."""
        return per_slice_name(SUMMARY_NAME.removesuffix(".json"), self.slice)

    @property
    def journal(self) -> Journal:
        """Where this run notes each table as it moves in (``journal.jsonl``, or one per slice)."""
        name = per_slice_name(JOURNAL_STEM, self.slice).removesuffix(".json") + ".jsonl"
        # The channels too: a LUNA checkpoint fed another recipe's channels gives other tables.
        key = {"model_sha256": self.model_sha256, "runtime": self.runtime, "format": self.format, "channels": self.channels}
        return Journal(Path(self.out) / name, key)

    def short_events_by_recording(self) -> dict[str, int]:
        """Each predicted recording that lost labelled events as shorter than the window: how many it lost."""
        counts = {entry["recording_id"]: (entry.get("notes") or {}).get(SHORT_EVENTS, 0) for entry in self.recordings}
        return {recording: count for recording, count in counts.items() if count}

    def flat_channels_by_recording(self) -> dict[str, list[str]]:
        """Each recording predicted (now or already) with flat channels: their names."""
        return {
            entry["recording_id"]: entry["flat_channels_kept"] for entry in self.recordings if entry.get("flat_channels_kept")
        }

    def summary(self) -> dict[str, Any]:
        """The run's record, in one vocabulary: ``summary.json`` (which adds its ``recordings``) and ``--json`` alike.

        Counts are totals (``skipped``, ``not_read``) beside their breakdowns (``skipped_by_reason``,
        ``not_read_by_suffix``), ``windows`` those of the recordings found with a table (now or already done, as
        ``preprocess`` counts its shards' windows) and ``windows_predicted`` this run's (``preprocess``'s
        ``windows_written``).
        """
        counts = self.counts
        return {
            "model": self.model,
            "model_sha256": self.model_sha256,
            "model_description": self.model_description,
            "license": self.license,
            "runtime": self.runtime,
            "format": self.format,
            "out": self.out,
            "found": self.found,
            "predicted": counts.predicted,
            "already_done": counts.already_done,
            **with_breakdown("skipped", "reason", counts.skipped),
            **with_breakdown("not_read", "suffix", self.not_read),
            "windows": counts.windows,
            "windows_predicted": counts.windows_predicted,
            "notes": dict(counts.notes),
            SHORT_EVENTS: counts.notes.get(SHORT_EVENTS, 0),
            FLAT_KEPT: counts.notes.get(FLAT_KEPT, 0),
            **{key: count for key, count in counts.notes.items() if key not in (SHORT_EVENTS, FLAT_KEPT)},
            "short_events_by_recording": self.short_events_by_recording(),
            "flat_channels_by_recording": self.flat_channels_by_recording(),
            "interrupted": self.interrupted,
            "slice": self.slice,
            "chain_from": self.chain_from,
            "channels": self.channels,
            "label_names": self.label_names,
            "int8_agreement": self.int8_agreement,
            "elapsed_seconds": self.elapsed_seconds,
            "summary": str(Path(self.out) / self.summary_name),
        }


STOPPED_BEFORE_ANY = "; before any recording was predicted, so re-run the same command"
"""How a stop line of ``predict`` ends when no table was written yet (the model loading, the recordings listed, the
first ones read)."""


@dataclass(frozen=True)
class PredictFolder:
    """An output folder held for one predict (:func:`predict_out_held`): what :func:`run_predict` writes into."""

    path: Path
    shard: Slice | None
    """The slice the run predicts (balanced by file size, with its own summary), None for a whole run."""


@contextmanager
def predict_out_held(out: Path, shard: Slice | None = None) -> Iterator[PredictFolder]:
    """Make ``out`` (or check it can be written) and hold it for one predict of ``shard`` while the block runs.

    ``biofound predict`` takes it before the model loads, so a second run of the same slice (a resubmitted array task,
    a big model or ``--compile`` loading for minutes) is refused at once. A block that raises leaves no empty ``out``
    it made.

    Parameters
    ----------
    out : Path
        The output folder.
    shard : Slice | None
        The slice the run predicts, None for a whole run (:func:`held_out_folder`'s ``part``).

    Yields
    ------
    PredictFolder
        The folder held, for :func:`run_predict`.

    Raises
    ------
    UsageError
        ``out`` cannot be written, or another predict of the same slice (or, without ``shard``, another whole run)
        is predicting into it.
    """
    out = Path(out)
    with created_folders_removed_on_failure(out):
        prepare_output_folder(out)
        # One run per journal: two runs of one slice (or two whole runs) into one folder would append to one journal and
        # each move in the other's recordings again; the slices of an array job each hold their own.
        with held_out_folder(out, "predict", "predicted into", shard):
            yield PredictFolder(out, shard)


def run_predict(
    model: PredictionModel,
    chain: PredictionChain,
    refs: list[RecordingRef],
    folder: PredictFolder,
    *,
    fmt: str = "csv",
    batch_size: int = 64,
    workers: int = 1,
    force: bool = False,
    duplicates: list[Duplicate] | None = None,
    not_read: Mapping[str, int] | None = None,
    reporter: ProgressReporter = NO_PROGRESS,
) -> PredictReport:
    """Predict every recording of ``refs`` (of ``folder``'s slice) into ``folder``, held by :func:`predict_out_held`.

    Parameters
    ----------
    model : PredictionModel
        What scores the windows.
    chain : PredictionChain
        The reader and chain the recordings go through.
    refs : list of RecordingRef
        The recordings (:func:`~biofound_cli.prediction.recordings.find_recordings`).
    folder : PredictFolder
        The output folder, held, and the slice of ``refs`` to predict (each slice writes its own summary).
    fmt : {"csv", "jsonl", "parquet"}
        The window table's format (parquet needs pyarrow).
    batch_size, workers : int
        Windows per model call; recordings preprocessed in parallel.
    force : bool
        Predict recordings the summary lists as done by this model again.
    duplicates : list of Duplicate | None
        Recordings left out for another one's id: found and skipped (``duplicate_id``), in slice 1 only.
    not_read : mapping of str to int | None
        The files of the folders given that are not recordings, by suffix; counted in slice 1 only.
    reporter : ProgressReporter
        Shows the recordings done.

    Raises
    ------
    UsageError
        For a bad format, batch size or worker count.
    DataError
        When every recording failed (after ``summary.json`` is written); a recording whose pool worker
        died, also alone, is one such skip (``worker_died``).
    BiofoundError
        With status 130 (``ExitStatus.INTERRUPTED``) on Ctrl-C, 143 (``ExitStatus.TERMINATED``) on SIGTERM
        or SIGUSR1, after the summary of the recordings predicted so far is written.
    """
    check_format(fmt)
    if batch_size < 1 or workers < 1:
        raise UsageError(f"--batch-size {batch_size} / --workers {workers}: both must be at least 1")
    out, shard = folder.path, folder.shard
    _remove_stale_temporaries(out)
    # Like preprocess, decisions about every recording found count in slice 1 only, so the slices add up.
    first_slice = shard is None or shard.index == 1
    duplicates = list(duplicates or []) if first_slice else []
    if shard is not None:
        refs = slice_refs(refs, shard)
    report = _new_report(model, chain, out, fmt, found=len(refs) + len(duplicates), shard=shard)
    report.not_read = dict(not_read or {}) if first_slice else {}
    summary_path = out / report.summary_name
    journal = report.journal
    done = {} if force else _done(out, journal.model, chain, refs)
    entries, todo = _skip_done(refs, done)
    # A recording this run finds done may still have its table of an earlier run in another format beside it.
    replaced = [path for entry in entries.values() for path in _remove_tables(out, entry["recording_id"], _other_formats(fmt))]
    for duplicate in duplicates:
        message = duplicate.message_for(f"one table in {out}", "predict them into separate --out folders")
        _skip(RecordingResult(duplicate.ref.recording_id, str(duplicate.ref.path), "skipped", DUPLICATE_ID, message), entries)
    logger.info(
        f"{counted(report.found, 'recording')} found, {len(todo)} to predict, "
        f"{len(refs) - len(todo)} already predicted by this model"
        + (f", {len(duplicates)} skipped ({DUPLICATE_ID})" if duplicates else "")
    )
    agreement = _agreement(model, entries)
    started, stop = time.monotonic(), None

    def left() -> int:
        return sum(str(ref.path) not in entries for ref in todo)

    advice = model.advice.missing_channels
    calls = [(chain.corpus_cls.name, chain.options_dict, ref, chain.config, advice) for ref in todo]
    # A stop ends the work as Ctrl-C does, the summary written whole; the pool outside the raising block, as preprocess's.
    # The task outlives the pool's block, as preprocess's: its stopped line comes after the stop's, once in flight is done.
    with sigterm_noted(left) as request:
        try:
            with (
                started_pool(chain.corpus_cls, workers, len(todo), written=report.summary_name) as pool,
                reporter.task(len(todo), "predict", unit="files") as task,
                pool as executor,
                sigterm_as_interrupt(),
            ):
                # At most `workers` recordings wait in memory besides the one the model runs on.
                for prepared in pool_results(executor, prepare_recording, calls, workers, died=worker_died, in_order=True):
                    _finish(prepared, model, chain.config, out, fmt, batch_size, entries, journal, agreement, task, replaced)
        except KeyboardInterrupt as error:
            stop = error
        finally:
            report.elapsed_seconds = round(time.monotonic() - started, 3)
            report.int8_agreement = agreement.summary() if agreement is not None else None
            report.recordings = sorted(entries.values(), key=_by_recording)
            stop, report.interrupted = how_it_ended(stop, left())
            listed = sorted([*report.recordings, *_earlier_tables(out, report, entries)], key=_by_recording)
            write_json_atomic(summary_path, {**report.summary(), "recordings": listed})
            journal.remove()
            _say_replaced(out, fmt, replaced)
    stop, counts = stop or request.noted_ctrl_c(), report.counts
    if stop is not None:  # Ctrl-C says what SIGTERM says: what was predicted, where the summary is, what to do
        # A stop before the first table (workers starting, the first recording read) kept no tables to speak of.
        raise Stopped(
            signal_of(stop),
            f" after {counted(counts.predicted, 'recording')} predicted; their tables are kept, {summary_path} lists them, "
            "and re-running the same command predicts the rest"
            if counts.predicted
            else STOPPED_BEFORE_ANY,
        )
    if report.failed:
        raise EveryRecordingSkipped(report.found, counts.skipped, summary_path)
    return report


def _new_report(
    model: PredictionModel, chain: PredictionChain, out: Path, fmt: str, *, found: int, shard: Slice | None
) -> PredictReport:
    """The report of a run of ``model`` through ``chain`` into ``out``, before any recording is predicted."""
    return PredictReport(
        model=str(model.path),
        model_sha256=model.sha256(),
        runtime=model.runtime,
        chain_from=chain.origin,
        model_description=model.description,
        license=model.license,
        channels=output_channel_names(chain.config.channels, chain.config.montage),
        out=str(out),
        format=fmt,
        label_names=list(model.label_names),
        found=found,
        slice=None if shard is None else str(shard),
    )


def _agreement(model: PredictionModel, entries: dict[str, dict[str, Any]]) -> Agreement | None:
    """For an int8 graph, what counts its agreement: over the recordings already done too (by their entries' own), as
    the summary's windows are; a resumed run reported the part it predicted last."""
    if model.reference is None:
        return None
    agreement = Agreement(model.reference_name, model.task)
    for entry in entries.values():
        if isinstance(entry.get("int8_agreement"), dict):
            agreement.add_recorded(entry["int8_agreement"])
    return agreement


def _remove_stale_temporaries(out: Path) -> None:
    """Delete the hidden temporaries (tables, PNGs, summaries) of runs into ``out`` killed outright on this machine.

    SIGKILL (the out-of-memory killer, a scheduler's hard limit) leaves the table being written under
    its temporary name, which may be large, and nothing else ever removes it. Those of another node
    writing into a shared ``out`` (array-job slices) are left alone: their process ids mean nothing here.
    """
    removed = remove_stale_temporaries_in(out)
    if removed:
        logger.info(f"{out}: removed {counted(len(removed), 'temporary file')} of a predict run on this machine that was killed")


def _done(out: Path, model: dict[str, Any], chain: PredictionChain, refs: list[RecordingRef]) -> dict[str, dict[str, Any]]:
    """The entries of the folder's journals and summaries by ``model`` still current, by recording path.

    A recording's companion files are listed only for the entries found (a BrainVision header is read to
    name them); a recording not in this run is checked by its own file.
    """
    corpus = open_corpus(chain.corpus_cls.name, chain.options_dict, chain.config)
    labels = _reading(corpus)[1]
    refs_by_path = {str(ref.path): ref for ref in refs}

    def files_of(source: str) -> Files:
        ref = refs_by_path.get(source)
        return source if ref is None else corpus.source_files(ref, labels)

    listed = _listed(out, warn=True)
    return {entry["source_path"]: entry for run, entry in listed if _by(run, model) and _still_current(entry, files_of)}


def _skip_done(refs: list[RecordingRef], done: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[RecordingRef]]:
    """The summary entries of the recordings this model already predicted, and the recordings left to do."""
    entries: dict[str, dict[str, Any]] = {}
    todo = []
    for ref in refs:
        previous = done.get(str(ref.path))
        if previous is not None:
            entries[str(ref.path)] = {**previous, "status": "already_done"}
        else:
            todo.append(ref)
    return entries, todo


def _finish(
    prepared: Windows | RecordingResult,
    model: PredictionModel,
    config: ChainConfig,
    out: Path,
    fmt: str,
    batch_size: int,
    entries: dict[str, dict[str, Any]],
    journal: Journal,
    agreement: Agreement | None,
    task: ProgressTask,
    replaced: list[Path],
) -> None:
    """Score one preprocessed recording, write its PNG and its table, add its summary entry and advance ``task``.

    The table is the file a re-run goes by (:func:`_done`): the PNG and it move in together, the table last
    (one that does not fit leaves the earlier PNG and table as they were), and the PNG, the table and the
    entry that lists them are added, and noted in the journal, before a stop signal is let through,
    so a stopped run never leaves a table its summary does not list, and a killed one none its
    journal does not (but the one whose line the kill cut short).
    A recording skipped now loses the table and PNG an earlier run made of it (of its content then,
    or by another model, in any format), so the folder holds no table its summary calls skipped. A
    recording predicted loses its table of an earlier run in another ``--format`` once the new table
    moves in (added to ``replaced``, to be told), so the folder holds no table its summary does not list.
    The count and that list change with the entry, before the stop: the stopped line counts what the summary does.
    """
    scores = prepared if isinstance(prepared, RecordingResult) else _finite_scores(prepared, model, batch_size)
    if isinstance(scores, RecordingResult):
        with stop_signals_deferred():
            _remove_tables(out, scores.recording_id, FORMATS)
            (out / f"{scores.recording_id}.png").unlink(missing_ok=True)
            _skip(scores, entries)
            task.advance()
        return
    assert isinstance(prepared, Windows)
    reference = (
        _scores(model.reference, prepared.x, batch_size) if agreement is not None and model.reference is not None else None
    )
    table = score_table(model.task, scores, _column_names(model), model.ch_names)
    windows = counted(len(prepared.start_seconds), "window")
    # By its id, as its PNG, its table and the summary name it: subjects 01 and 31 may each hold a 1_raw_data.txt.
    title = f"{model.description} ({model.path.name}) on {prepared.recording_id}, {windows}"
    path = table_path(out, prepared.recording_id, fmt)
    result = RecordingResult(
        prepared.recording_id,
        prepared.source_path,
        "predicted",
        windows=len(scores),
        shard=str(path),
        notes=prepared.notes,
        flat_channels_kept=prepared.flat_channels_kept,
        sfreq=prepared.sfreq,
    )
    aggregate = _aggregate(model, scores)
    figure = out / f"{prepared.recording_id}.png"
    with stop_signals_deferred():  # the PNG too: one moved in as a stop came stood beside no table and no entry
        # Both or neither: a table that did not fit (a full disk) left this run's PNG beside the earlier table.
        with atomic_paths([figure, path]) as (png, written):
            plot_probabilities(png, prepared.start_seconds, config.window_seconds, table, title, prepared.gaps(config))
            write_windows(written, fmt, prepared.recording_id, prepared.start_seconds, config.window_seconds, table)
        entry = {**_entry(result), "figure": str(figure), **aggregate}
        _stamp_table(entry)
        entry.update(zip(SOURCE_STAMP, prepared.source_stamp, strict=True))
        if agreement is not None and reference is not None:
            entry["int8_agreement"] = agreement.add(scores, reference)
        entries[prepared.source_path] = entry
        journal.add(entry)
        # Once the new table and its line are in: a kill before this leaves both, and the re-run removes the old one.
        replaced += _remove_tables(out, prepared.recording_id, _other_formats(fmt))
        task.advance()


def _other_formats(fmt: str) -> tuple[str, ...]:
    """The table formats other than this run's: an earlier run's tables in them are replaced by this run's."""
    return tuple(other for other in FORMATS if other != fmt)


def _remove_tables(out: Path, recording_id: str, formats: tuple[str, ...]) -> list[Path]:
    """Remove the recording's tables in ``formats`` from ``out``; those that were there."""
    removed = []
    for fmt in formats:
        path = table_path(out, recording_id, fmt)
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def _say_replaced(out: Path, fmt: str, replaced: list[Path]) -> None:
    """One line for the tables of an earlier run in another format that this run's replaced."""
    if replaced:
        suffixes = ", ".join(sorted({path.suffix for path in replaced}))
        logger.info(
            f"{out}: removed {counted(len(replaced), 'table')} ({suffixes}) an earlier run wrote in another "
            f"--format; this run's .{fmt} tables replace them"
        )


def _skip(result: RecordingResult, entries: dict[str, dict[str, Any]]) -> None:
    """Warn about a recording skipped, with its reason, and add its summary entry to ``entries``."""
    logger.warning(f"skipped ({result.reason}): {result.message}")
    entries[result.source_path] = _entry(result)


def _finite_scores(prepared: Windows, model: PredictionModel, batch_size: int) -> np.ndarray | RecordingResult:
    """The model's scores of the recording's windows, or its skip when some are NaN or inf (no table of them is written)."""
    scores = _scores(model.score, prepared.x, batch_size)
    overflow = nonfinite_scores(scores, prepared.source_path)
    if overflow is None:
        return scores
    message = (
        f"{model.path}: {overflow}; compare that recording's amplitudes with the training data's, and check the "
        "checkpoint (the chain already sets inf and values beyond ±1e30 to 0)"
    )
    return RecordingResult(prepared.recording_id, prepared.source_path, "skipped", NONFINITE_SCORES, message)


def _scores(score: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int) -> np.ndarray:
    """``score`` over every window, ``batch_size`` at a time."""
    batches = [
        score(np.ascontiguousarray(x[first : first + batch_size], dtype=np.float32)) for first in range(0, len(x), batch_size)
    ]
    return np.concatenate(batches)


def _entry(result: RecordingResult) -> dict[str, Any]:
    """A recording's summary entry: the result as ``preprocess`` reports it, the table as ``output``."""
    entry = asdict(result)
    entry["output"] = entry.pop("shard")
    return entry


def _aggregate(model: PredictionModel, scores: np.ndarray) -> dict[str, Any]:
    """The recording's mean scores and label(s), as ``evaluate`` aggregates windows into recordings (summed in float64)."""
    index = np.zeros(len(scores), dtype=np.int64)
    if model.task == RECONSTRUCTION:
        # Averaged as a regression's predictions: a float32 mean was the table's mean rounded to float32.
        _, error, _, _ = aggregate_recordings("regression", index, scores, index)
        return {"mean_reconstruction_error": float(error.item())}
    _, mean, _, _ = aggregate_recordings(model.task, index, scores, index)
    table = score_table(model.task, mean, _column_names(model), model.ch_names)
    if model.task == "regression":
        # Every output's mean over the windows and steps, as evaluate scores every output.
        if table.label_columns == ["predicted_label"]:
            return {"mean_prediction": table.labels[0][0]}
        return {
            "mean_predictions": {
                name.removeprefix("predicted_"): value for name, value in zip(table.label_columns, table.labels[0], strict=True)
            }
        }
    probabilities = {
        name.removeprefix("p_"): float(value) for name, value in zip(table.value_columns, table.values[0], strict=True)
    }
    if table.label_columns == ["predicted_label"]:
        return {"mean_probabilities": probabilities, "predicted_label": table.labels[0][0]}
    labels = {name.removeprefix("predicted_"): label for name, label in zip(table.label_columns, table.labels[0], strict=True)}
    return {"mean_probabilities": probabilities, "predicted_labels": labels}


def _column_names(model: PredictionModel) -> list[str]:
    """What names the score columns: the classes, or a regression head's outputs."""
    return model.output_names if model.task == "regression" else model.label_names


def _earlier_tables(out: Path, report: PredictReport, entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of the tables this run's summary (or journal) listed before, of recordings this run left alone.

    A run on some of the recordings (one file again, a new one, fewer after a ``--shard`` re-slicing) wrote its
    summary over the earlier one, and the other recordings' tables, still in ``out``, were listed nowhere. An
    entry is kept while its table is the file that moved in and its run was this model's, run this way: a re-run
    goes by the summary's model, so another's tables would pass for this one's. Those are counted in one line.
    """
    ids = {entry["recording_id"] for entry in entries.values()}
    kept: dict[str, dict[str, Any]] = {}
    others: set[str] = set()
    for run, entry in _listed(out, report.summary_name, report.journal.path.name):
        if entry.get("source_path") in entries or entry.get("recording_id") in ids:
            continue
        if not _by(run, report.journal.model):
            others.add(str(entry.get("output")))
        elif _table_current(entry):
            kept[entry["source_path"]] = entry
    others = {table for table in others if os.path.isfile(table)} - {str(entry["output"]) for entry in kept.values()}
    if others:
        logger.warning(
            f"{out}: {report.summary_name} lists this run's tables, not the {counted(len(others), 'table')} an earlier "
            "run with another model, --format, runtime or channels left there; predict their recordings again into "
            f"{out}, or move them out (give each model its own --out)"
        )
    return list(kept.values())


def _by_recording(entry: dict[str, Any]) -> tuple[str, str]:
    """The order of a summary's entries: by recording id, then path."""
    return entry["recording_id"], entry["source_path"]


class EntryCounts(NamedTuple):
    """What a predict summary's entries count: a run's summary and ``info`` of its folder count alike."""

    predicted: int
    already_done: int
    windows: int
    """The windows of the recordings with a table, predicted now or found already done (``preprocess``'s ``windows``)."""
    windows_predicted: int
    """The windows of the recordings predicted, not found already done (``preprocess``'s ``windows_written``)."""
    notes: dict[str, int]
    """Totals over the recordings with a table (predicted now or already) of what the chain kept with a warning, as in
    ``preprocess``'s report: ``events_shorter_than_window`` (labelled events left out, each entry's ``notes`` saying
    whose), ``flat_channels_kept`` (flat channels predicted with, each entry's ``flat_channels_kept`` naming them),
    ``events_outside``, ``events_clipped``, ``truncated_kept``."""
    skipped: dict[str, int]
    """The recordings skipped, by reason."""


def entry_counts(entries: list[dict[str, Any]]) -> EntryCounts:
    """The counts of a summary's ``recordings`` (or those of several, each recording once).

    Parameters
    ----------
    entries : list of dict
        The summary entries (:func:`~biofound_cli.store.preprocess_reports.in_current_names` for an older biofound's).
    """
    windows, notes, skipped = tally_files(entries)
    predicted = [entry for entry in entries if entry.get("status") == "predicted"]
    return EntryCounts(
        len(predicted),
        sum(entry.get("status") == "already_done" for entry in entries),
        windows,
        sum(int(entry.get("windows") or 0) for entry in predicted),
        notes,
        skipped,
    )
