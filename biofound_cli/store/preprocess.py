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
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydantic import ValidationError

from biofound_cli.atomic import write_text_atomic
from biofound_cli.corpora import get_corpus
from biofound_cli.corpora.base import Corpus, RecordingRef, UnusableRecording
from biofound_cli.errors import BiofoundError, DataError, ExitStatus, RecipeError, UsageError
from biofound_cli.progress import NO_PROGRESS, ProgressReporter
from biofound_cli.recipes.base import Section
from biofound_cli.recipes.loading import format_validation_error
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.signals.chain import ChainConfig, run_chain
from biofound_cli.store.output_folder import prepare_output_folder
from biofound_cli.store.preprocess_plan import RecordingResult, RunPlan, plan_run
from biofound_cli.store.shards import ShardMeta, ShardWriter, remove_partial_shards, shard_path
from biofound_cli.store.slices import Slice, per_slice_name
from biofound_cli.store.worker_lifetime import (
    Terminated,
    die_with_parent,
    ignore_stop_signals,
    sigterm_as_interrupt,
    stop_signals_blocked,
)

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
    "on_truncated": "skip",
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
    """Built-in defaults ← the corpus's ``defaults`` ← the recipe's non-empty fields.

    The step between windows follows the window: a recipe (or ``--set``) that sets
    ``window_seconds`` but not ``stride_seconds`` gets windows one after the other, as MNE's
    ``make_fixed_length_epochs`` and braindecode do; the corpus's own stride (e.g. 75 % overlap for
    the EMG corpora) goes with the corpus's own window only.

    Parameters
    ----------
    section : PreprocessSection
        The ``[preprocess]`` section.
    corpus_cls : type[Corpus]
        The corpus reader, whose ``defaults`` fill the fields the recipe leaves out.
    source : str
        The recipe file, named in messages.

    Raises
    ------
    RecipeError
        One line per setting the chain cannot run with (no window length, a window or stride
        shorter than one sample at the output rate, band edges in the wrong order).
    """
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
    settings["stride_seconds"] = _resolve_stride(
        section, corpus_cls, settings["window_seconds"], settings["stride_seconds"], source
    )
    problems = _chain_problems(settings, corpus_cls, source)
    if problems:
        raise RecipeError(problems)
    return ChainConfig(**settings)


def _resolve_stride(
    section: PreprocessSection, corpus_cls: type[Corpus], window: float | None, stride: float | None, source: str
) -> float | None:
    """The step between windows: the recipe's, else the window when the recipe set the window."""
    if window is None:
        return stride
    if section.stride_seconds is None and (section.window_seconds is not None or stride is None):
        default_window, default_stride = corpus_cls.defaults.get("window_seconds"), corpus_cls.defaults.get("stride_seconds")
        if default_stride is not None and default_window is not None and default_stride != default_window:
            logger.info(
                f"{source}: preprocess.stride_seconds follows window_seconds = {window:g} s (the {corpus_cls.name} corpus's "
                f"{default_stride:g} s step goes with its own {default_window:g} s window); set stride_seconds for overlap"
            )
        return window
    if stride is not None and stride > window:
        logger.warning(
            f"{source}: preprocess.stride_seconds = {stride:g} s is longer than window_seconds = {window:g} s, so "
            f"{unused_fraction(window, stride):.0%} of every recording lies between windows and is not used"
        )
    return stride


def unused_fraction(window_seconds: float | None, stride_seconds: float | None) -> float:
    """The fraction of a recording no window covers when the stride is longer than the window.

    Parameters
    ----------
    window_seconds, stride_seconds : float | None
        Window length and step; a missing step means the window length.
    """
    if not window_seconds or not stride_seconds or stride_seconds <= window_seconds:
        return 0.0
    return round(1.0 - window_seconds / stride_seconds, 6)


def _chain_problems(settings: dict[str, Any], corpus_cls: type[Corpus], source: str) -> list[str]:
    """What makes the resolved settings unusable, one line each."""
    problems = []
    if settings["window_seconds"] is None:
        problems.append(f"{source}: preprocess.window_seconds: the {corpus_cls.name} corpus has no default window length; set it")
    sfreq = settings["sfreq"]
    for key in ("window_seconds", "stride_seconds"):
        seconds = settings.get(key)
        if key == "stride_seconds" and seconds == settings["window_seconds"]:
            continue  # a stride that follows the window has the window's problem, said once
        if sfreq and seconds is not None and seconds * sfreq < 1:
            problems.append(
                f"{source}: preprocess.{key} = {seconds:g} s is shorter than one sample at {sfreq:g} Hz; "
                f"use at least {1 / sfreq:g} s"
            )
    l_freq, h_freq = settings["l_freq"], settings["h_freq"]
    if l_freq is not None and h_freq is not None and l_freq >= h_freq:
        problems.append(f"{source}: preprocess.l_freq = {l_freq:g}: must be below h_freq = {h_freq:g}")
    return problems


# -- one recording (runs in a worker process) ---------------------------------------------------

WINDOW_TOO_SHORT = "window_too_short"
"""A recording at a native rate (``sfreq = 0``) too low for one sample per window: a recipe error."""


def _init_worker(modules: tuple[str, ...], parent_pid: int) -> None:
    """Prepare a pool worker: stop signals left to the parent, death with it, imports done (already, when forked)."""
    import importlib

    # Ctrl-C and SIGTERM are handled once, by the parent, which lets running recordings finish cleanly.
    ignore_stop_signals()
    die_with_parent(parent_pid)
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
            too_short = _window_below_one_sample(config, recording.sfreq, source)
            if too_short:
                return RecordingResult(ref.recording_id, source, "skipped", WINDOW_TOO_SHORT, too_short)
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
        ref.recording_id,
        source,
        "written",
        n_windows=windowed.n_windows,
        n_clipped=windowed.n_clipped,
        shard=str(path),
        notes=dict(windowed.notes),
    )


def _window_below_one_sample(config: ChainConfig, native_sfreq: float, source: str) -> str:
    """The recipe error when the windows of a native-rate recording would hold no sample; ``""`` otherwise.

    With ``sfreq`` set, :func:`resolve_chain_config` refused such a window before any work.
    """
    if config.sfreq is not None or config.window_seconds * native_sfreq >= 1:
        return ""
    return (
        f"preprocess.window_seconds = {config.window_seconds:g} s is shorter than one sample of {source} at its "
        f"native {native_sfreq:g} Hz; use at least {1 / native_sfreq:g} s or set preprocess.sfreq"
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
    notes: dict[str, int] = field(default_factory=dict)
    """Totals of what the chain kept with a warning: ``truncated_kept`` recordings, event
    segments ``events_outside`` the recording or ``events_clipped`` at its end."""
    unused_fraction: float = 0.0
    """The part of every recording between windows, when the stride is longer than the window."""
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
            **self.notes,
            "signal_unused_fraction": self.unused_fraction,
            "slice": self.slice,
            "report": str(Path(self.out) / self.report_name),
        }

    @property
    def report_name(self) -> str:
        """``preprocess_report.json``, or ``preprocess_report.slice-I-of-N.json`` for one slice."""
        return per_slice_name(REPORT_NAME.removesuffix(".json"), self.slice)


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
    assert section.corpus is not None  # required above, with or without the paths
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
        The tally, also written into ``out``; it counts exactly the shards on disk.

    Raises
    ------
    RecipeError, UsageError
        Before any work: bad options, a missing ``root``/``out``, an ``out`` that cannot be
        written, an unknown corpus, no recordings; and a window shorter than one sample of a
        native-rate recording (when the first such recording is read).
    DataError
        After the run, when every recording failed, or when a worker process died (exit
        status 1). The report is written first.
    KeyboardInterrupt
        On Ctrl-C, after the running recordings finished and the report was written.
    BiofoundError
        With status 143 (``ExitStatus.TERMINATED``), the same way on SIGTERM.
    """
    with sigterm_as_interrupt():
        try:
            return _preprocess(section, source, shard, reporter)
        except Terminated:
            # Stopped outside the processing loop (while discovering, most likely), which reports its own stop.
            raise BiofoundError(
                "stopped by SIGTERM; finished shards are kept and re-running the same command resumes",
                status=ExitStatus.TERMINATED,
            ) from None


def _preprocess(section: PreprocessSection, source: str, shard: Slice | None, reporter: ProgressReporter) -> PreprocessReport:
    """:func:`run_preprocess`, inside its SIGTERM handling."""
    corpus_cls, options, config = check_preprocess(section, source)
    assert section.corpus is not None and section.root is not None and section.out is not None  # checked just above
    root, out = Path(section.root), Path(section.out)
    if not root.is_dir():
        raise UsageError(f"--root {root}: not a folder; give the folder holding the raw {section.corpus} recordings")
    prepare_output_folder(out)
    plan = plan_run(corpus_cls(options), root, out, shard=shard, force=section.force)
    removed = remove_partial_shards(out / section.corpus, None if shard is None else [ref.recording_id for ref in plan.todo])
    if removed:
        logger.info(f"removed {removed} partial shard(s) left by an interrupted run")
    options_dict = options.model_dump(mode="json") if options is not None else {}
    report = PreprocessReport(
        corpus=section.corpus,
        root=str(root),
        out=str(out),
        config=config.to_json_dict(),
        options=options_dict,
        found=plan.found,
        excluded=plan.excluded,
        slice=None if shard is None else str(shard),
        unused_fraction=unused_fraction(config.window_seconds, config.stride_seconds),
    )
    results: dict[str, RecordingResult] = {}
    for result in plan.settled:
        _record(results, result)
    n_settled = len(plan.settled)
    logger.info(
        f"{section.corpus}: {plan.found} recordings found, {len(plan.todo)} to process, {n_settled} already done or skipped"
    )
    stop = _run_and_report(section, options_dict, plan, config, report, results, reporter)
    if stop is not None:
        if isinstance(stop, Terminated):
            raise BiofoundError(
                f"stopped by SIGTERM after {report.written} new shard(s); finished shards are kept, "
                f"{out / report.report_name} says which, and re-running the same command resumes",
                status=ExitStatus.TERMINATED,
            )
        raise stop
    if report.failed:
        which = f"recordings of slice {shard}" if shard is not None else f"recordings under {root}"
        raise DataError(
            f"every one of the {report.found} {which} was skipped "
            f"({', '.join(f'{reason}: {n}' for reason, n in sorted(report.skipped.items()))}); "
            f"see {out / report.report_name} for the reason per file"
        )
    return report


def _run_and_report(
    section: PreprocessSection,
    options: dict[str, Any],
    plan: RunPlan,
    config: ChainConfig,
    report: PreprocessReport,
    results: dict[str, RecordingResult],
    reporter: ProgressReporter,
) -> KeyboardInterrupt | None:
    """Process the plan's recordings and write the report whatever happens; the stop request, if any."""
    assert section.corpus is not None and section.out is not None  # check_preprocess required them
    out = Path(section.out)
    start, started_at = time.monotonic(), time.time()
    stop: KeyboardInterrupt | None = None
    try:
        _process_all(section, options, plan.todo, config, results, reporter)
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM as Terminated
        stop = error
        report.interrupted = True
    except BrokenProcessPool:
        raise DataError(
            "a worker process died (killed from outside, most often by the system when memory ran out); "
            f"finished shards are kept in {out}: re-run with fewer --workers to resume"
        ) from None
    finally:
        report.elapsed_seconds = round(time.monotonic() - start, 3)
        # The pool is gone: a temporary file left now is a recording that was dropped (a worker that died).
        remove_partial_shards(out / section.corpus, [ref.recording_id for ref in plan.todo])
        _count_what_is_on_disk(results, plan.todo, out, section.corpus, started_at)
        _tally(report, list(results.values()))
        write_report(out / report.report_name, report)
    return stop


def _process_all(
    section: PreprocessSection,
    options: dict[str, Any],
    todo: list[RecordingRef],
    config: ChainConfig,
    results: dict[str, RecordingResult],
    reporter: ProgressReporter,
) -> None:
    """Run every recording of ``todo``; results land in ``results`` even when the run stops."""
    assert section.corpus is not None and section.out is not None  # check_preprocess required them
    corpus_cls = get_corpus(section.corpus)
    pending: set[Future[RecordingResult]] = set()
    try:
        with (
            worker_pool(corpus_cls, section.workers, len(todo)) as executor,
            reporter.task(len(todo), f"preprocess {section.corpus}", unit="files") as task,
        ):
            for result in _run_all(section.corpus, options, todo, config, Path(section.out), executor, section.workers, pending):
                _record(results, result)
                task.advance()
                if result.reason == WINDOW_TOO_SHORT:
                    raise UsageError(result.message)
    finally:
        # The pool has shut down: recordings its workers finished while the run stopped are on disk.
        for future in pending:
            if future.done() and not future.cancelled() and future.exception() is None:
                _record(results, future.result())


def _record(results: dict[str, RecordingResult], result: RecordingResult) -> None:
    """Keep one result per source file (a result may be seen twice when a run stops); log a skip once."""
    if result.status == "skipped" and result.source_path not in results:
        logger.warning(f"skipped ({result.reason}): {result.message}")
    results[result.source_path] = result


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

    The workers leave SIGINT and SIGTERM to this process and die with it
    (:mod:`~biofound_cli.store.worker_lifetime`); they start with those signals blocked, so a
    signal sent to the whole process group meanwhile waits until they ignore it.
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
    with stop_signals_blocked():
        executor = ProcessPoolExecutor(
            max_workers=n_workers, mp_context=context, initializer=_init_worker, initargs=(modules, os.getpid())
        )
        # Starts the workers now: all of them when forking; submitted together, every spawned one too.
        wait([executor.submit(int) for _ in range(n_workers)])
    try:
        yield executor
    finally:
        _kill_workers_of_broken_pool(executor)
        executor.shutdown(wait=True, cancel_futures=True)


def _kill_workers_of_broken_pool(executor: ProcessPoolExecutor) -> None:
    """SIGKILL the workers of a pool one of whose workers died.

    The pool then stops the others with SIGTERM and waits for them, but they ignore SIGTERM
    (the main process decides when to stop), so without this the wait would never end.
    """
    if not getattr(executor, "_broken", False):
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()


def _run_all(
    corpus_name: str,
    options: dict[str, Any],
    refs: list[RecordingRef],
    config: ChainConfig,
    out: Path,
    executor: ProcessPoolExecutor | None,
    workers: int,
    pending: set[Future[RecordingResult]],
) -> Iterator[RecordingResult]:
    """Results in completion order; in this process without an executor, in its workers otherwise.

    ``pending`` holds the submitted recordings whose result the caller has not taken yet: a
    future leaves it only after its result was handed over, so one that finishes while the run
    stops is still there for the caller to count.
    """
    if executor is None:
        for ref in refs:
            yield process_recording(corpus_name, options, ref, config, str(out))
        return
    queue = iter(refs)
    # Keep only a few recordings queued per worker so Ctrl-C stops soon after.
    for ref in queue:
        pending.add(executor.submit(process_recording, corpus_name, options, ref, config, str(out)))
        if len(pending) >= 2 * workers:
            break
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            yield future.result()
            pending.discard(future)
            next_ref = next(queue, None)
            if next_ref is not None:
                pending.add(executor.submit(process_recording, corpus_name, options, next_ref, config, str(out)))


def _count_what_is_on_disk(
    results: dict[str, RecordingResult], todo: list[RecordingRef], out: Path, corpus_name: str, started_at: float
) -> None:
    """Make the results say what is on disk: no shard counted that is not there, none there uncounted.

    A run stopped by a signal may have renamed a shard into place an instant before it could
    take the result (in this process, or a submission cut short); such a shard, newer than the
    run, is counted as written. A written or already-done shard that is not there (removed
    meanwhile) is not counted.
    """
    for ref in todo:
        source = str(ref.path)
        path = shard_path(out, corpus_name, ref.recording_id)
        if source in results:
            continue
        try:
            # File-system clocks may lag the system clock a little; a second is far more than that.
            newer = path.stat().st_mtime >= started_at - 1.0
        except OSError:
            continue
        if newer:
            results[source] = RecordingResult(ref.recording_id, source, "written", n_windows=_n_windows(path), shard=str(path))
    for source, result in results.items():
        if result.status in ("written", "already_done") and not Path(result.shard).is_file():
            results[source] = RecordingResult(
                result.recording_id,
                source,
                "skipped",
                "not_on_disk",
                f"{result.shard}: not on disk at the end of the run; re-run to write it",
            )


def _n_windows(path: Path) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return int(handle["x"].shape[0])
    except (OSError, KeyError):
        return 0


def _tally(report: PreprocessReport, results: list[RecordingResult]) -> None:
    results = sorted(results, key=lambda result: (result.recording_id, result.source_path))
    report.files = [asdict(result) for result in results]
    report.written = sum(result.status == "written" for result in results)
    report.already_done = sum(result.status == "already_done" for result in results)
    report.n_windows = sum(result.n_windows for result in results)
    report.n_clipped = sum(result.n_clipped for result in results)
    notes: dict[str, int] = {}
    for result in results:
        for key, count in result.notes.items():
            notes[key] = notes.get(key, 0) + count
    report.notes = dict(sorted(notes.items()))
    skipped: dict[str, int] = {}
    for result in results:
        if result.status == "skipped":
            skipped[result.reason] = skipped.get(result.reason, 0) + 1
    report.skipped = dict(sorted(skipped.items()))


def write_report(path: Path, report: PreprocessReport) -> None:
    """Write the report atomically (temporary file, then ``os.replace``).

    Parameters
    ----------
    path : Path
        ``OUT/preprocess_report.json`` or a slice's report.
    report : PreprocessReport
        The tally to write.
    """
    write_text_atomic(Path(path), json.dumps(asdict(report), indent=2, default=str) + "\n")


__all__ = [
    "BUILTIN_DEFAULTS",
    "PreprocessReport",
    "RecordingResult",
    "check_preprocess",
    "process_recording",
    "resolve_chain_config",
    "resolve_options",
    "run_preprocess",
    "unused_fraction",
    "write_report",
]
