"""The ``preprocess`` stage: discover recordings → run the signal chain in a process pool → shards.

Resumable by construction: each shard is written to a temporary name and renamed when whole,
finished shards are skipped unless ``force``, and temporary files of a killed run are removed
at the start of the next. A recording that cannot be used is skipped with a one-line reason and
counted; the run fails (exit status 1) only when every recording failed. The tally is printed
and written to ``OUT/preprocess_report.CORPUS.json``, one report per corpus.

An array job runs one slice of the recordings per task (``--shard I/N``, see
:mod:`~biofound_cli.store.slices`); the slices write into the same folder and each writes its
own ``OUT/preprocess_report.CORPUS.slice-I-of-N.json``, which ``pack`` sums with the others.
One run (or the slices of one array job) at a time holds ``OUT``
(:func:`~biofound_cli.store.folder_lock.held_out_folder`), and a ``pack`` reading it holds it shared.

The parts, one module each: the recipe resolved and checked
(:mod:`~biofound_cli.store.preprocess_config`), which recordings to process
(:mod:`~biofound_cli.store.preprocess_plan`), one recording
(:mod:`~biofound_cli.store.preprocess_recording`) in the pool of
:mod:`~biofound_cli.store.worker_pool`, and the report (:mod:`~biofound_cli.store.preprocess_reports`).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from biofound_cli.atomic import NO_SPACE_ERRNOS
from biofound_cli.corpora.base import Corpus, RecordingRef
from biofound_cli.errors import EveryRecordingSkipped, UsageError
from biofound_cli.plural import counted
from biofound_cli.progress import NO_PROGRESS, ProgressReporter, ProgressTask
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.signals.chain import ChainConfig
from biofound_cli.store.folder_lock import held_out_folder
from biofound_cli.store.output_folder import prepare_output_folder
from biofound_cli.store.preprocess_config import check_preprocess
from biofound_cli.store.preprocess_plan import RecordingResult, RunPlan, plan_run
from biofound_cli.store.preprocess_recording import WINDOW_TOO_SHORT, open_corpus, process_recording, worker_died
from biofound_cli.store.preprocess_reports import PreprocessReport, count_what_is_on_disk, refuse_another_chain, write_report
from biofound_cli.store.sampling_rates import RateWatch, mixed_rates_warning
from biofound_cli.store.shards import remove_partial_shards, shard_path
from biofound_cli.store.slices import Slice
from biofound_cli.store.worker_lifetime import (
    Stopped,
    how_it_ended,
    signal_of,
    sigterm_as_interrupt,
    sigterm_noted,
    stop_reported,
    stop_signals_deferred,
)
from biofound_cli.store.worker_pool import WorkerPool, pool_results, started_pool

logger = logging.getLogger(__name__)


def run_preprocess(
    section: PreprocessSection, source: str = "recipe", *, shard: Slice | None = None, reporter: ProgressReporter = NO_PROGRESS
) -> PreprocessReport:
    """``check_preprocess``, then :func:`run_checked_preprocess`, for a Python caller.

    Parameters
    ----------
    section : PreprocessSection
        The recipe's ``[preprocess]`` section.
    source : str
        The recipe file, named in messages.
    shard : Slice | None
        The slice of the recordings this process preprocesses, if any.
    reporter : ProgressReporter
        Receives progress.

    Returns
    -------
    PreprocessReport
        As :func:`run_checked_preprocess` returns it.
    """
    return run_checked_preprocess(section, check_preprocess(section, source), source, shard=shard, reporter=reporter)


def run_checked_preprocess(
    section: PreprocessSection,
    checked: tuple[Corpus, ChainConfig],
    source: str = "recipe",
    *,
    shard: Slice | None = None,
    reporter: ProgressReporter = NO_PROGRESS,
) -> PreprocessReport:
    """Run the whole stage for a ``[preprocess]`` section that ``check_preprocess`` passed.

    ``shard`` restricts the run to one slice of the recordings (an array-job task); the
    report then counts that slice only and is written as ``preprocess_report.CORPUS.slice-I-of-N.json``.
    Counts and skipped recordings are logged on this module's logger.

    Parameters
    ----------
    section : PreprocessSection
        The ``[preprocess]`` section, with ``root`` and ``out`` set.
    checked : (Corpus, ChainConfig)
        What :func:`~biofound_cli.store.preprocess_config.check_preprocess` returned for ``section`` (the command
        runs it as it loads the recipe, before it says the recipe's warnings).
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
        After the run, when every recording failed (exit status 1; a recording whose worker
        process died, also alone, is one such skip, ``worker_died``). The report is written first.
    BiofoundError
        On SIGTERM or SIGUSR1 (status 143, ``ExitStatus.TERMINATED``) or Ctrl-C (130, ``ExitStatus.INTERRUPTED``),
        after the running recordings finished and the report was written.
    """
    # A stop outside the processing loop (while discovering, most likely), which reports its own.
    with stop_reported("; finished shards are kept and re-running the same command resumes"):
        return _preprocess(section, source, shard, reporter, checked)


def _preprocess(
    section: PreprocessSection,
    source: str,
    shard: Slice | None,
    reporter: ProgressReporter,
    checked: tuple[Corpus, ChainConfig],
) -> PreprocessReport:
    """:func:`run_checked_preprocess`, inside its stop-signal handling."""
    corpus, config = checked
    assert section.corpus is not None and section.root is not None and section.out is not None  # check_preprocess refused others
    root, out = Path(section.root), Path(section.out)  # check_preprocess refused a root that is not a folder
    prepare_output_folder(out)
    with held_out_folder(out, "preprocess", "preprocessed into", shard):
        options_dict = corpus.options.model_dump(mode="json") if corpus.options is not None else {}
        # As the shards store them (JSON), so that a tuple here equals the list read back there.
        settings = json.loads(json.dumps({"corpus": section.corpus, "config": config.to_json_dict(), "options": options_dict}))
        refuse_another_chain(out, settings, section.force)
        plan = plan_run(corpus, root, out, shard=shard, force=section.force, settings=settings)
        removed = remove_partial_shards(out / section.corpus, None if shard is None else [ref.recording_id for ref in plan.todo])
        if removed:
            logger.info(f"removed {counted(removed, 'partial shard')} left by an interrupted run")
        report = PreprocessReport(
            corpus=section.corpus,
            root=str(root),
            out=str(out),
            config=settings["config"],
            options=options_dict,
            found=plan.found,
            excluded=plan.excluded,
            not_read=plan.not_read,
            slice=None if shard is None else str(shard),
            unused_fraction=config.unused_fraction(),
        )
        results: dict[str, RecordingResult] = {}
        # Only a native-rate run can write shards at several rates; a set sfreq gives one.
        watch = RateWatch() if config.sfreq is None else None
        for result in plan.settled:
            _record(results, result, watch)
        if watch is not None:
            _warn_of_rates_in_headers(open_corpus(section.corpus, options_dict, config), plan.todo, watch)
        logger.info(
            f"{section.corpus}: {counted(plan.found, 'recording')} found, {len(plan.todo)} to process, "
            f"{len(plan.settled)} already done or skipped"
        )
        stop = _run_and_report(section, type(corpus), out, options_dict, plan, config, report, results, reporter, watch)
        if watch is not None:
            _warn_of_mixed_rates(results)
        if stop is not None:
            # Ctrl-C says what SIGTERM says: what was written, where the report is, what to do.
            raise Stopped(
                signal_of(stop),
                f" after {counted(report.written, 'new shard')}; "
                f"finished shards are kept, {out / report.report_name} says which, and re-running the same command resumes",
            )
        if report.failed:
            where = f" of slice {shard}" if shard is not None else f" under {root}"
            raise EveryRecordingSkipped(report.found, report.skipped, out / report.report_name, where)
        return report


def _run_and_report(
    section: PreprocessSection,
    corpus_cls: type[Corpus],
    out: Path,
    options: dict[str, Any],
    plan: RunPlan,
    config: ChainConfig,
    report: PreprocessReport,
    results: dict[str, RecordingResult],
    reporter: ProgressReporter,
    watch: RateWatch | None,
) -> KeyboardInterrupt | None:
    """Process the plan's recordings and write the report whatever happens; the stop request, if any."""
    start, started_at = time.monotonic(), time.time()
    stop: KeyboardInterrupt | None = None
    full: OSError | None = None

    def left() -> int:
        return sum(str(ref.path) not in results for ref in plan.todo)

    # The task outlives the work, so its last line (or bar) counts what the report does: the recordings
    # finished while the run stopped, and a shard a worker renamed in as the stop cut its result off.
    # The workers start before it all the same: a live display's thread would have them spawned, not forked.
    with (
        sigterm_noted(left) as request,  # raised in the work alone (_process_all): the report is written whole
        started_pool(corpus_cls, section.workers, len(plan.todo), written=report.report_name) as pool,
        reporter.task(len(plan.todo), f"preprocess {corpus_cls.name}", unit="files") as task,
    ):
        try:
            _process_all(section, pool, corpus_cls, out, options, plan.todo, config, results, task, watch)
        except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM/SIGUSR1 as Terminated
            stop = error
        except OSError as error:  # a full disk (preprocess_recording): stopped before every recording was done
            full = error
            raise
        finally:
            report.elapsed_seconds = round(time.monotonic() - start, 3)
            # The pool is gone: a temporary file left now is a recording that was dropped (a worker killed as it wrote).
            remove_partial_shards(out / corpus_cls.name, [ref.recording_id for ref in plan.todo])
            task.advance(count_what_is_on_disk(results, plan.todo, out, corpus_cls.name, started_at))
            _remove_shards_of_skipped(results, plan.todo, out, corpus_cls.name)
            report.tally(list(results.values()))
            stop, report.interrupted = how_it_ended(stop, left())
            _write_report_unless_full(out / report.report_name, report, full)
    return stop or request.noted_ctrl_c()


def _write_report_unless_full(path: Path, report: PreprocessReport, full: OSError | None) -> None:
    """Write the report; when the disk that stopped the run (``full``) has no room for it either, say so.

    The error naming the shard that did not fit then stays the run's one line, rather than the
    report's own failure replacing it.
    """
    try:
        write_report(path, report)
    except OSError as error:
        if full is None or error.errno not in NO_SPACE_ERRNOS:
            raise
        logger.warning(f"{path}: not written ({error.strerror}); a re-run after freeing space writes it")


def _process_all(
    section: PreprocessSection,
    pool: AbstractContextManager[WorkerPool | None],
    corpus_cls: type[Corpus],
    out: Path,
    options: dict[str, Any],
    todo: list[RecordingRef],
    config: ChainConfig,
    results: dict[str, RecordingResult],
    task: ProgressTask,
    watch: RateWatch | None,
) -> None:
    """Run every recording of ``todo`` in ``pool``'s block; results land in ``results``, and advance ``task``, even if stopped."""
    pending: list[Future[RecordingResult]] = []
    calls = ((corpus_cls.name, options, ref, config, str(out)) for ref in todo)
    try:
        with pool as executor, sigterm_as_interrupt():
            # Twice the workers queued: each has its next recording at hand, and a stop comes soon after.
            results_in = pool_results(executor, process_recording, calls, 2 * section.workers, died=worker_died, pending=pending)
            for result in results_in:
                # A stop between the two left the recording in the report but not in the count.
                with stop_signals_deferred():
                    _record(results, result, watch)
                    task.advance()
                if result.reason == WINDOW_TOO_SHORT:
                    raise UsageError(result.message)
    finally:
        # The pool has shut down: recordings its workers finished while the run stopped are on disk.
        for future in pending:
            if future.done() and not future.cancelled() and future.exception() is None:
                task.advance(int(future.result().source_path not in results))
                _record(results, future.result(), watch)


def _remove_shards_of_skipped(results: dict[str, RecordingResult], todo: list[RecordingRef], out: Path, corpus_name: str) -> None:
    """Remove the shard an earlier run left of a recording this run processed and skipped.

    It holds windows this run would not write (other settings with ``--force``, a file since
    rewritten, cut short or relabelled), and ``pack`` packs every shard in the folder: the folder
    holds what a run into an empty one would.
    """
    for ref in todo:
        result = results.get(str(ref.path))
        path = shard_path(out, corpus_name, ref.recording_id)
        if result is not None and result.status == "skipped" and path.is_file():
            path.unlink()
            logger.warning(f"{path}: removed, an earlier run's shard of {ref.path}, which this run skipped ({result.reason})")


def _record(results: dict[str, RecordingResult], result: RecordingResult, watch: RateWatch | None) -> None:
    """Keep one result per source file (a result may be seen twice when a run stops); log a skip once,
    and the first shard at a second rate of a native-rate run (``watch``)."""
    if result.status == "skipped" and result.source_path not in results:
        logger.warning(f"skipped ({result.reason}): {result.message}")
    second_rate = watch.see(result.source_path, result.sfreq) if watch is not None else ""
    if second_rate:
        logger.warning(second_rate)
    results[result.source_path] = result


def _warn_of_rates_in_headers(corpus: Corpus, todo: list[RecordingRef], watch: RateWatch) -> None:
    """Warn before any work when the headers of the recordings to do (where the corpus reads them cheaply) give a second rate.

    A header is a few hundred bytes (about 0.1 ms), against the whole file processing reads; the
    first second rate ends the look. Rates no header tells are watched as the shards are written.
    A worker reads the header again with its recording, and would even if the plan carried this
    rate: it reads which signals to leave out and whether the file was cut short from it, and
    the look stops at the second rate, so most recordings have none to carry.
    """
    for ref in todo:
        second_rate = watch.see(str(ref.path), corpus.header_rate(ref) or 0.0)
        if second_rate:
            logger.warning(second_rate)
            return


def _warn_of_mixed_rates(results: dict[str, RecordingResult]) -> None:
    """Name every recording of a native-rate run whose shard ``pack`` will skip for its rate, and what to set."""
    shards = [result for result in results.values() if result.status in ("written", "already_done") and result.sfreq]
    # In pack's order (the shard's path, every one under ``out``), so a tie is settled as pack settles it.
    shards.sort(key=lambda result: Path(result.shard).as_posix())
    warning = mixed_rates_warning([(result.shard, result.source_path, result.sfreq) for result in shards])
    if warning:
        logger.warning(warning)
