"""The ``preprocess`` stage: discover recordings → run the signal chain in a process pool → shards.

Resumable by construction: each shard is written to a temporary name and renamed when whole,
finished shards are skipped unless ``force``, and temporary files of a killed run are removed
at the start of the next. A recording that cannot be used is skipped with a one-line reason and
counted; the run fails (exit status 1) only when every recording failed. The tally is printed
and written to ``OUT/preprocess_report.json``.

An array job runs one slice of the recordings per task (``--shard I/N``, see
:mod:`~biofound_cli.store.slices`); the slices write into the same folder and each writes its
own ``OUT/preprocess_report.slice-I-of-N.json``, which ``pack`` sums with the others.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from biofound_cli.atomic import write_text_atomic
from biofound_cli.corpora import get_corpus
from biofound_cli.corpora.base import Corpus, RecordingRef, UnusableRecording
from biofound_cli.errors import DataError, RecipeError, UsageError
from biofound_cli.progress import NO_PROGRESS, ProgressReporter
from biofound_cli.recipes.base import Section
from biofound_cli.recipes.loading import format_validation_error
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.signals.chain import ChainConfig, run_chain
from biofound_cli.store.shards import ShardMeta, ShardWriter, remove_partial_shards, shard_path
from biofound_cli.store.slices import Slice, slice_refs

logger = logging.getLogger(__name__)

REPORT_NAME = "preprocess_report.json"

BUILTIN_DEFAULTS: dict[str, Any] = {
    "l_freq": None,
    "h_freq": None,
    "notch_hz": None,
    "sfreq": None,
    "window_seconds": None,
    "stride_seconds": None,
    "montage": "none",
    "channels": None,
    "units": None,  # by modality: uV for EEG, file for EMG
    "filter_method": "fir",
    "resample_method": "mne",
    "iir_order": 4,
    "notch_q": 30.0,
    "zscore": False,
    "max_nan_fraction": 0.0,
    "flat_std": 1e-6,
    "max_flat_fraction": 0.5,
    "dtype": "float32",
}
"""What a step does when neither the corpus nor the recipe says: nothing, or the safe choice."""

# Recipe fields where 0 (or an empty list) means "switch this step off".
_ZERO_MEANS_OFF = ("l_freq", "h_freq", "notch_hz", "sfreq")


# -- resolving the recipe -----------------------------------------------------------------------


def resolve_options(section: PreprocessSection, corpus_cls: type[Corpus], source: str = "recipe") -> Section | None:
    """Validate ``[preprocess.options]`` against the corpus's options model.

    Raises
    ------
    RecipeError
        One line per bad option, named ``preprocess.options.<field>``.
    """
    if corpus_cls.Options is None:
        if section.options:
            raise RecipeError(
                [f"{source}: preprocess.options: the {corpus_cls.name} corpus takes no options; remove the section"]
            )
        return None
    try:
        return corpus_cls.Options.model_validate(dict(section.options))
    except ValidationError as error:
        lines = format_validation_error(source, error)
        raise RecipeError([line.replace(f"{source}: ", f"{source}: preprocess.options.", 1) for line in lines]) from None


def resolve_chain_config(section: PreprocessSection, corpus_cls: type[Corpus], source: str = "recipe") -> ChainConfig:
    """Built-in defaults ← the corpus's ``defaults`` ← the recipe's non-empty fields."""
    settings = dict(BUILTIN_DEFAULTS)
    settings.update({key: value for key, value in corpus_cls.defaults.items() if key in BUILTIN_DEFAULTS})
    for key in BUILTIN_DEFAULTS:
        value = getattr(section, key)
        if value is None:
            continue
        if key in _ZERO_MEANS_OFF and (value == 0 or value == []):
            value = None
        settings[key] = value
    if settings["units"] in (None, "native"):
        settings["units"] = "uV" if corpus_cls.modality == "eeg" else "file"
    if settings["montage"] is None:
        settings["montage"] = "none"
    notch_hz = settings["notch_hz"]
    notch_list = [] if notch_hz is None else [notch_hz] if isinstance(notch_hz, (int, float)) else list(notch_hz)
    settings["notch_hz"] = tuple(float(freq) for freq in notch_list if freq)
    if settings["channels"] is not None:
        settings["channels"] = tuple(settings["channels"])
    problems = []
    if settings["window_seconds"] is None:
        problems.append(f"{source}: preprocess.window_seconds: the {corpus_cls.name} corpus has no default window length; set it")
    sfreq = settings["sfreq"]
    for key in ("window_seconds", "stride_seconds"):
        seconds = settings.get(key)
        if sfreq and seconds is not None and seconds * sfreq < 1:
            problems.append(
                f"{source}: preprocess.{key} = {seconds:g} s is shorter than one sample at {sfreq:g} Hz; "
                f"use at least {1 / sfreq:g} s"
            )
    l_freq, h_freq = settings["l_freq"], settings["h_freq"]
    if l_freq is not None and h_freq is not None and l_freq >= h_freq:
        problems.append(f"{source}: preprocess.l_freq = {l_freq:g}: must be below h_freq = {h_freq:g}")
    if problems:
        raise RecipeError(problems)
    return ChainConfig(**settings)


# -- one recording (runs in a worker process) ---------------------------------------------------


@dataclass
class RecordingResult:
    """What happened to one recording."""

    recording_id: str
    source_path: str
    status: str
    """``written``, ``already_done`` or ``skipped``."""
    reason: str = ""
    message: str = ""
    n_windows: int = 0
    n_clipped: int = 0
    shard: str = ""


def _init_worker(modules: tuple[str, ...]) -> None:
    """Prepare a pool worker: SIGINT ignored, imports done (already, when forked)."""
    import importlib

    # Ctrl-C is handled once, by the parent, which lets running recordings finish cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in modules:
        importlib.import_module(module)


def process_recording(
    corpus_name: str, options: dict[str, Any] | None, ref: RecordingRef, config: ChainConfig, out: str
) -> RecordingResult:
    """Read, run the chain on and write the shard of one recording; never raises for bad data.

    A module-level function of picklable arguments, so it runs under the ``spawn`` start method.
    """
    corpus_cls = get_corpus(corpus_name)
    corpus = corpus_cls(corpus_cls.Options.model_validate(options) if corpus_cls.Options is not None else None)
    source = str(ref.path)
    if hasattr(corpus, "read_channels"):
        # Readers that can read a subset of channels (EDF) skip the ones the chain drops.
        corpus.read_channels = config.input_channels()
    path = shard_path(Path(out), corpus_name, ref.recording_id)
    # The chain hands each channel's windows to the writer, so a worker never holds them all;
    # leaving this block without commit() deletes the partial file.
    with ShardWriter(path) as writer:
        try:
            recording = corpus.read(ref)
            windowed = run_chain(recording, config, source=source, sink=writer)
        except UnusableRecording as error:
            return RecordingResult(ref.recording_id, source, "skipped", error.reason, error.message)
        except DataError as error:
            return RecordingResult(ref.recording_id, source, "skipped", "unusable", error.message)
        except MemoryError:
            return RecordingResult(
                ref.recording_id, source, "skipped", "out_of_memory", f"{source}: ran out of memory; use fewer --workers"
            )
        except Exception as error:  # noqa: BLE001 - one odd file must not stop a day-long run
            return RecordingResult(ref.recording_id, source, "skipped", "error", f"{source}: {type(error).__name__}: {error}")
        label_names = recording.meta.get("label_names") or corpus.label_names
        del recording
        extra = {key: _attr_value(value) for key, value in windowed.meta.items() if key != "label_names"}
        meta = ShardMeta(
            corpus=corpus_name,
            subject=ref.subject,
            session=ref.session,
            source_path=source,
            sfreq=windowed.sfreq,
            channel_names=windowed.ch_names,
            label_names=[str(name) for name in label_names],
            task=corpus.task,
            window_seconds=config.window_seconds,
            stride_seconds=config.stride_seconds or config.window_seconds,
            preprocess_config={"corpus": corpus_name, "options": options or {}, **config.to_json_dict()},
            split=ref.split,
            extra=extra,
        )
        writer.commit(windowed.y, meta, split=windowed.split)
    return RecordingResult(
        ref.recording_id, source, "written", n_windows=windowed.n_windows, n_clipped=windowed.n_clipped, shard=str(path)
    )


def _attr_value(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    return json.dumps(value, default=str, sort_keys=True)


# -- the whole run ----------------------------------------------------------------------------


@dataclass
class PreprocessReport:
    """The tally of one run, written to ``OUT/preprocess_report.json``."""

    corpus: str
    root: str
    out: str
    config: dict[str, Any]
    options: dict[str, Any]
    found: int = 0
    written: int = 0
    already_done: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    slice: str | None = None
    """``"I/N"`` when this run was one slice of an array job."""
    n_windows: int = 0
    n_clipped: int = 0
    elapsed_seconds: float = 0.0
    interrupted: bool = False
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Every recording found failed: nothing written and nothing already done."""
        return self.found > 0 and self.written == 0 and self.already_done == 0

    def summary(self) -> dict[str, Any]:
        """The short form shown at the end of the command."""
        return {
            "corpus": self.corpus,
            "out": self.out,
            "found": self.found,
            "written": self.written,
            "already_done": self.already_done,
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "windows_written": self.n_windows,
            "slice": self.slice,
            "report": str(Path(self.out) / self.report_name),
        }

    @property
    def report_name(self) -> str:
        """``preprocess_report.json``, or ``preprocess_report.slice-I-of-N.json`` for one slice."""
        return REPORT_NAME if self.slice is None else f"preprocess_report.slice-{self.slice.replace('/', '-of-')}.json"


def check_preprocess(
    section: PreprocessSection, source: str = "recipe", *, require_paths: bool = True
) -> tuple[type[Corpus], Section | None, ChainConfig]:
    """The checks ``preprocess`` runs before any work, which ``biofound validate`` runs too.

    Parameters
    ----------
    section : PreprocessSection
    source : str
        The recipe file, named in messages.
    require_paths : bool
        Whether ``root`` and ``out`` must be set (``validate`` cannot know the command-line flags).

    Returns
    -------
    corpus_cls, options, config
        The corpus reader, its validated options and the resolved signal chain.

    Raises
    ------
    RecipeError
        One line per problem: a missing corpus (or root/out), an unknown corpus, a bad corpus
        option, a signal chain that cannot run.
    """
    flags = {"corpus": "the CORPUS argument", "root": "--root", "out": "--out"}
    required = flags if require_paths else {"corpus": flags["corpus"]}
    problems = [
        f"{source}: preprocess.{name}: required; pass {flag} or set it in the recipe"
        for name, flag in required.items()
        if getattr(section, name) is None
    ]
    if problems:
        raise RecipeError(problems)
    try:
        corpus_cls = get_corpus(section.corpus)
    except UsageError as error:
        raise RecipeError([f"{source}: preprocess.corpus: {error.message}"]) from None
    options = resolve_options(section, corpus_cls, source)
    return corpus_cls, options, resolve_chain_config(section, corpus_cls, source)


def run_preprocess(
    section: PreprocessSection,
    source: str = "recipe",
    *,
    shard: Slice | None = None,
    reporter: ProgressReporter = NO_PROGRESS,
) -> PreprocessReport:
    """Run the whole stage for a validated ``[preprocess]`` section.

    ``shard`` restricts the run to one slice of the recordings (an array-job task); the
    report then counts that slice only and is written as ``preprocess_report.slice-I-of-N.json``.
    Counts and skipped recordings are logged on this module's logger.

    Parameters
    ----------
    section : PreprocessSection
        The ``[preprocess]`` section, with ``root`` and ``out`` set.
    source : str
        The recipe file, named in messages.
    shard : Slice | None
        The slice of the recordings to process, or ``None`` for all of them.
    reporter : ProgressReporter
        Shows the recordings done; by default nothing is shown.

    Returns
    -------
    PreprocessReport
        The tally, also written into ``out``.

    Raises
    ------
    RecipeError, UsageError
        Before any work: bad options, a missing ``root``/``out``, an unknown corpus, no recordings.
    DataError
        After the run, when every recording failed (exit status 1). The report is written first.
    KeyboardInterrupt
        On Ctrl-C, after the running recordings finished and the report was written.
    """
    corpus_cls, options, config = check_preprocess(section, source)
    root, out = Path(section.root), Path(section.out)
    if not root.is_dir():
        raise UsageError(f"--root {root}: not a folder; give the folder holding the raw {section.corpus} recordings")
    corpus = corpus_cls(options)
    refs = corpus.discover(root)
    if not refs:
        raise UsageError(
            f"--root {root}: no {section.corpus} recordings found there; check the path (see docs/corpora/{section.corpus}.md)"
        )
    excluded = dict(getattr(corpus, "excluded", {}) or {})
    if shard is not None:
        n_found = len(refs)
        refs = slice_refs(refs, shard)
        logger.info(f"slice {shard}: {len(refs)} of the {n_found} recordings")
        # Discovery-time exclusions concern the whole corpus: count them in slice 1 only, so pack's sum is right.
        excluded = excluded if shard.index == 1 else {}
    out.mkdir(parents=True, exist_ok=True)
    removed = remove_partial_shards(out / section.corpus, None if shard is None else [ref.recording_id for ref in refs])
    if removed:
        logger.info(f"removed {removed} partial shard(s) left by an interrupted run")
    options_dict = options.model_dump(mode="json") if options is not None else {}
    report = PreprocessReport(
        corpus=section.corpus, root=str(root), out=str(out), config=config.to_json_dict(), options=options_dict,
        found=len(refs), excluded=excluded, slice=None if shard is None else str(shard),
    )
    todo = []
    results: list[RecordingResult] = []
    for ref in refs:
        path = shard_path(out, section.corpus, ref.recording_id)
        if path.exists() and not section.force:
            results.append(RecordingResult(ref.recording_id, str(ref.path), "already_done", shard=str(path)))
        else:
            todo.append(ref)
    logger.info(f"{section.corpus}: {len(refs)} recordings found, {len(todo)} to process, {len(refs) - len(todo)} already done")
    start = time.monotonic()
    try:
        with (
            worker_pool(corpus_cls, section.workers, len(todo)) as executor,
            reporter.task(len(todo), f"preprocess {section.corpus}", unit="files") as task,
        ):
            for result in _run_all(section.corpus, options_dict, todo, config, out, executor, section.workers):
                results.append(result)
                if result.status == "skipped":
                    logger.warning(f"skipped ({result.reason}): {result.message}")
                task.advance()
    except KeyboardInterrupt:
        report.interrupted = True
        raise
    finally:
        report.elapsed_seconds = round(time.monotonic() - start, 3)
        _tally(report, results)
        write_report(out / report.report_name, report)
    if report.failed:
        which = f"recordings of slice {shard}" if shard is not None else f"recordings under {root}"
        raise DataError(
            f"every one of the {report.found} {which} was skipped "
            f"({', '.join(f'{reason}: {n}' for reason, n in sorted(report.skipped.items()))}); "
            f"see {out / report.report_name} for the reason per file"
        )
    return report


WORKER_MODULES = ("scipy.fft", "h5py")
"""What every worker imports beyond this module's own imports (the chain, the shard writer),
loaded in the parent before forking, with the corpus's reader modules."""


def worker_start_method() -> str:
    """``"fork"`` on Linux while this process runs no other thread, ``"spawn"`` otherwise."""
    import threading

    return "fork" if sys.platform.startswith("linux") and threading.active_count() == 1 else "spawn"


@contextmanager
def worker_pool(corpus_cls: type[Corpus], workers: int, n_recordings: int) -> Iterator[ProcessPoolExecutor | None]:
    """A process pool whose workers are already running, or ``None`` for one worker.

    On Linux the workers are forked from this process after it imported what they need, so
    none of them starts an interpreter or imports MNE, SciPy and h5py again (about half a second
    of CPU each). They are started here, before the progress display starts its refresh thread:
    forking a process in which other threads run can deadlock, so a process that already has
    threads, and every other OS, spawns fresh interpreters instead.
    """
    n_workers = min(workers, n_recordings)
    if n_workers <= 1:
        yield None
        return
    import importlib
    import multiprocessing

    modules = (*WORKER_MODULES, *corpus_cls.reader_modules)
    method = worker_start_method()
    if method == "fork":
        for module in modules:
            importlib.import_module(module)
    context = multiprocessing.get_context(method)
    executor = ProcessPoolExecutor(max_workers=n_workers, mp_context=context, initializer=_init_worker, initargs=(modules,))
    try:
        executor.submit(int).result()  # starts the workers now (all of them, when forking)
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _run_all(
    corpus_name: str,
    options: dict[str, Any],
    refs: list[RecordingRef],
    config: ChainConfig,
    out: Path,
    executor: ProcessPoolExecutor | None,
    workers: int,
) -> Iterator[RecordingResult]:
    """Results in completion order; in this process without an executor, in its workers otherwise."""
    if executor is None:
        for ref in refs:
            yield process_recording(corpus_name, options, ref, config, str(out))
        return
    pending: set[Future[RecordingResult]] = set()
    queue = iter(refs)
    # Keep only a few recordings queued per worker so Ctrl-C stops soon after.
    for ref in queue:
        pending.add(executor.submit(process_recording, corpus_name, options, ref, config, str(out)))
        if len(pending) >= 2 * workers:
            break
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            yield future.result()
            next_ref = next(queue, None)
            if next_ref is not None:
                pending.add(executor.submit(process_recording, corpus_name, options, next_ref, config, str(out)))


def _tally(report: PreprocessReport, results: list[RecordingResult]) -> None:
    results = sorted(results, key=lambda result: result.recording_id)
    report.files = [asdict(result) for result in results]
    report.written = sum(result.status == "written" for result in results)
    report.already_done = sum(result.status == "already_done" for result in results)
    report.n_windows = sum(result.n_windows for result in results)
    report.n_clipped = sum(result.n_clipped for result in results)
    skipped: dict[str, int] = {}
    for result in results:
        if result.status == "skipped":
            skipped[result.reason] = skipped.get(result.reason, 0) + 1
    report.skipped = dict(sorted(skipped.items()))


def write_report(path: Path, report: PreprocessReport) -> None:
    """Write the report atomically (temporary file, then ``os.replace``)."""
    write_text_atomic(Path(path), json.dumps(asdict(report), indent=2, default=str) + "\n")


__all__ = [
    "BUILTIN_DEFAULTS",
    "PreprocessReport",
    "RecordingResult",
    "process_recording",
    "resolve_chain_config",
    "resolve_options",
    "run_preprocess",
    "write_report",
]
