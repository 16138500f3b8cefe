"""The process pool that runs one recording per task, for ``preprocess`` and ``predict``.

Its workers are started before any work, forked on Linux from a process that already imported
what they need, leave stop signals to the main process and die with it
(:mod:`~biofound_cli.store.worker_lifetime`). What they log comes back to this process's
``biofound_cli`` logger (:class:`RelogHandler`), so a warning about one recording is shown as
the command shows its own, whatever the start method; so do the Python warnings raised in them
and what MNE logs there (:data:`WORKER_LOGGERS`), which would otherwise print from the worker:
MNE's own handler writes to stdout, past ``--json``.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from logging.handlers import QueueHandler
from multiprocessing.queues import Queue
from typing import Any, Callable, Iterable, Iterator, TypeVar

from biofound_cli import PACKAGE_LOGGER
from biofound_cli.corpora.base import Corpus
from biofound_cli.plural import counted
from biofound_cli.python_warnings import WARNINGS_LOGGER, log_warning
from biofound_cli.stop_signals import a_second_signal, stop_name
from biofound_cli.store.worker_lifetime import STOP_SIGNALS, die_with_parent, signal_of, stop_kept_through_a_wait
from biofound_cli.worker_signals import ignore_in_worker, signals_held_back

logger = logging.getLogger(__name__)

Result = TypeVar("Result")

WORKER_LOGGERS = (WARNINGS_LOGGER, "mne")
"""Loggers of a worker whose records go to the parent besides the package's: Python warnings
(as :func:`~biofound_cli.python_warnings.log_warning` logs them) and MNE's (reading a recording warns about its annotations,
channel names, ...)."""

WORKER_MODULES = ("scipy.fft", "h5py")
"""What every worker imports beyond the modules of the caller that submits its work (the chain,
the shard writer), loaded in the parent before forking, with the corpus's reader modules."""


def worker_start_method() -> str:
    """``"fork"`` on Linux while this process runs no other thread, ``"spawn"`` otherwise."""
    return "fork" if sys.platform.startswith("linux") and threading.active_count() == 1 else "spawn"


@contextmanager
def started_pool(
    corpus_cls: type[Corpus], workers: int, n_recordings: int, *, written: str
) -> Iterator[AbstractContextManager[WorkerPool | None]]:
    """A process pool whose workers are started now; yields its block, which ends them as it ends.

    ``with started_pool(...) as pool, pool as executor``: ``executor`` is ``None`` for ``workers = 1``.

    A worker that dies (a reading library's crash on a corrupt file, the OOM killer) ends no
    run: :func:`pool_results` retries the recordings that were in flight, each alone, and goes on
    with fresh workers.

    With ``workers = 1`` the recordings are read in this process, and for the block what MNE logs
    goes to this process's ``biofound_cli`` handlers instead of MNE's own (to stdout).

    On Linux the workers are forked from this process after it imported what they need, so
    none of them starts an interpreter or imports MNE, SciPy and h5py again (about half a second
    of CPU each, seconds on a laptop). Forking a process in which other threads run can deadlock,
    so a process that already has threads, and every other OS, spawns fresh interpreters instead.

    The workers leave SIGINT and SIGTERM to this process and die with it
    (:mod:`~biofound_cli.store.worker_lifetime`); they hold those signals blocked from the moment
    they start, forked or spawned, so one sent to the whole process group meanwhile cannot kill
    them half-born (:func:`~biofound_cli.worker_signals.signals_held_back`).

    What the workers log under ``biofound_cli`` is sent here through a queue and logged again
    (:class:`RelogHandler`), at the level this process logs at: a spawned worker has none of
    this process's handlers, and a forked one's would print from the worker, past ``--json``
    and the progress display.

    The workers start before the block, so before another thread does, and end with it, while that
    thread runs: ``preprocess`` and ``predict`` start them before their progress task (a live
    display's refresh thread would have them spawned) and count in that task what they finish as
    the pool shuts down. A block never entered ends them as this one ends.

    Parameters
    ----------
    corpus_cls : type of Corpus
        The corpus reader; the workers import its ``reader_modules`` up front.
    workers : int
        The most worker processes wanted.
    n_recordings : int
        Recordings to process; no more workers than this are started.
    written : str
        What the command writes once the recordings in flight finish (``preprocess_report.tuab.json``,
        ``summary.json``), named as a stop is announced.
    """
    if workers <= 1 or n_recordings == 0:
        # The recordings are read here: MNE's records go to this process's handlers too. With more
        # --workers asked, a pool runs even one recording: a crash reading it ends its worker, not the run.
        saved = _take_library_logs(RelogHandler())
        try:
            yield nullcontext()
        finally:
            _give_back_library_logs(saved)
        return
    pool = WorkerPool((*WORKER_MODULES, *corpus_cls.reader_modules), logging.getLogger(PACKAGE_LOGGER).getEffectiveLevel())
    try:
        pool.start(min(workers, n_recordings))
        yield _pool_in_use(pool, written)
    finally:  # the block ends them as it ends, or this, for a block never entered: the workers end once
        pool.end()


@contextmanager
def _pool_in_use(pool: WorkerPool, written: str) -> Iterator[WorkerPool]:
    """The block of :func:`started_pool`: its stop line, naming what is ``written`` then, then the end of the workers."""
    try:
        yield pool
    except KeyboardInterrupt as stop:  # the wait below may take a recording's time: say why, and how to cut it short
        name = signal_of(stop)
        logger.info(
            f"stopping on {stop_name(name)}: the recordings in progress finish, then {written} is written; "
            f"{a_second_signal(name)}"
        )
        raise
    finally:
        pool.end()


class WorkerPool:
    """The running workers of :func:`started_pool`; :meth:`start` replaces them by fresh ones (after one died).

    Parameters
    ----------
    modules : tuple of str
        What every worker imports up front.
    level : int
        The level the workers log at (this process's).
    """

    def __init__(self, modules: tuple[str, ...], level: int) -> None:
        self._modules = modules
        self._level = level
        self._running: tuple[ProcessPoolExecutor, threading.Thread, Queue[Any]] | None = None
        self._processes: list[Any] = []
        self.n_workers = 0
        """How many workers run."""
        self.start_method = ""
        """How the workers running started: ``"fork"`` or ``"spawn"`` (:func:`worker_start_method`)."""
        self.death = ""
        """How a worker of the pool :meth:`end` ended had died: ``"killed by SIGSEGV"``."""

    def start(self, n_workers: int) -> None:
        """End the workers running, if any, and start ``n_workers`` fresh ones.

        Forked while this process runs no other thread, spawned otherwise (:func:`worker_start_method`):
        a pool started again after a worker died forks as the first did, the last one's log
        listener ended (:func:`_stop_listening`).

        Parameters
        ----------
        n_workers : int
            How many.
        """
        self.end()
        self.n_workers = n_workers
        self.start_method = method = worker_start_method()
        if method == "fork":
            for module in self._modules:
                importlib.import_module(module)
        context = multiprocessing.get_context(method)
        log_queue = context.Queue()
        # The workers hold Ctrl-C and SIGTERM blocked from birth; this process gets them once they have started.
        with signals_held_back(STOP_SIGNALS, method):
            executor = ProcessPoolExecutor(
                max_workers=n_workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self._modules, os.getpid(), log_queue, self._level),
            )
            # Starts the workers now: all of them when forking; submitted together, every spawned one too.
            wait([executor.submit(int) for _ in range(n_workers)])
            self._processes = list((getattr(executor, "_processes", None) or {}).values())
            # Only now: a thread running while the workers fork could leave them a lock held for ever.
            listener = threading.Thread(target=_relog_until_closed, args=(log_queue,), name="biofound-worker-logs", daemon=True)
            listener.start()
            self._running = (executor, listener, log_queue)  # before a stop held back comes: the block's end ends them

    def submit(self, work: Callable[..., Result], /, *args: Any) -> Future[Result]:
        """``work(*args)`` in a worker; a future failed with ``BrokenProcessPool`` where a worker has died.

        Parameters
        ----------
        work : callable
            A module-level function.
        *args
            Its arguments, picklable.
        """
        assert self._running is not None
        try:
            return self._running[0].submit(work, *args)
        except BrokenProcessPool as error:  # one died since the last result: this call is retried like those in flight
            failed: Future[Result] = Future()
            failed.set_exception(error)
            return failed

    def end(self) -> None:
        """Let the recordings in flight finish, end the workers, then show what they logged last.

        For a pool one of whose workers died, :attr:`death` then says how.
        """
        if self._running is None:
            return
        (executor, listener, log_queue), self._running = self._running, None
        # Those dead already, by their pipes (race-free: the pool's own thread may be reaping them).
        dead = multiprocessing.connection.wait([process.sentinel for process in self._processes], timeout=0)
        broken = _kill_workers_of_broken_pool(executor)
        executor.shutdown(wait=True, cancel_futures=True)  # reaps them all: their exit codes are known
        _stop_listening(listener, log_queue)
        codes = [process.exitcode for process in self._processes if process.sentinel in dead]
        self.death = _death(codes[0]) if broken and codes and codes[0] is not None else "ended without a word"


def _death(exitcode: int) -> str:
    """How a worker that ended with ``exitcode`` died: ``"killed by SIGSEGV"``, ``"exited with status 3"``."""
    return f"killed by {signal.Signals(-exitcode).name}" if exitcode < 0 else f"exited with status {exitcode}"


def pool_results(
    pool: WorkerPool | None,
    work: Callable[..., Result],
    calls: Iterable[tuple[Any, ...]],
    ahead: int,
    *,
    died: Callable[[tuple[Any, ...], str], Result],
    in_order: bool = False,
    pending: list[Future[Result]] | None = None,
) -> Iterator[Result]:
    """``work(*args)`` for each ``args`` of ``calls``: in this process without a pool, in its workers otherwise.

    Few items are queued, so that a stop comes soon after the recordings in flight finish, and
    results waiting for this process (``predict``'s windows) stay few in memory.

    A worker that dies (a reading library's crash in C on a corrupt file, the OOM killer) breaks
    the pool and fails every call in it. Those calls are then retried one at a time, each alone
    in a fresh worker: one that dies again is the one at fault, and its result is ``died``'s
    (a skip); one that passes alone (memory shared by fewer) gives its own. The run then goes on
    with fresh workers. A stop meanwhile stops it as any other: the call being retried finishes.

    Parameters
    ----------
    pool : WorkerPool | None
        The pool (:func:`started_pool`), or ``None`` to work here.
    work : callable
        A module-level function, so that it runs in a worker process.
    calls : iterable of tuple
        Its arguments (one recording's, picklable), one tuple a call, submitted in order.
    ahead : int
        How many calls the pool holds at once.
    died : callable
        The result of a call whose worker died with it alone, from its arguments and how the
        worker died (``"killed by SIGSEGV"``).
    in_order : bool
        Hand the results over in the order of ``calls`` (``predict``'s journal and lines), rather than as they finish.
    pending : list of Future | None
        Filled with the submitted calls whose result was not handed over yet: a future leaves it
        only after its result was, so one that finishes while the run stops is still there for
        the caller to count (``preprocess``'s shards).
    """
    if pool is None:
        yield from (work(*args) for args in calls)
        return
    queue = iter(calls)
    pending = [] if pending is None else pending
    args_of: dict[Future[Result], tuple[Any, ...]] = {}

    def submit(count: int) -> None:
        for args in itertools.islice(queue, count):
            future = pool.submit(work, *args)
            args_of[future] = args
            pending.append(future)

    n_workers = pool.n_workers  # the pool may be started again with one, to retry calls alone
    submit(ahead)
    while pending:
        with stop_kept_through_a_wait():
            done, _ = wait(pending[:1] if in_order else pending, return_when=FIRST_COMPLETED)
        if any(isinstance(future.exception(), BrokenProcessPool) for future in done):
            yield from _retried_alone(pool, work, pending, args_of, died)
            pool.start(n_workers)
            submit(ahead)
            continue
        for future in done:
            # The next is submitted first: the pool works on it while this result is taken.
            submit(1)
            yield future.result()
            pending.remove(future)
            del args_of[future]


def _retried_alone(
    pool: WorkerPool,
    work: Callable[..., Result],
    pending: list[Future[Result]],
    args_of: dict[Future[Result], tuple[Any, ...]],
    died: Callable[[tuple[Any, ...], str], Result],
) -> Iterator[Result]:
    """After a worker died: the results of ``pending``'s calls, in order, those it failed retried one at a time alone."""
    with stop_kept_through_a_wait():
        wait(pending)  # a broken pool fails every call it held
    failed = [future for future in pending if isinstance(future.exception(), BrokenProcessPool)]
    pool.end()
    logger.warning(
        f"a worker process died ({pool.death}) with {counted(len(failed), 'recording')} in progress or queued; "
        "retrying each alone in a fresh worker"
    )
    alone = False  # whether a one-worker pool runs, which a call that passed left whole
    while pending:
        future = pending[0]
        if isinstance(future.exception(), BrokenProcessPool):
            if not alone:
                pool.start(1)
            args = args_of.pop(future)
            retry = pool.submit(work, *args)
            args_of[retry] = args
            pending[0] = future = retry  # in its place: a stop while it runs still counts it when it finishes
            with stop_kept_through_a_wait():
                wait([future])
            alone = not isinstance(future.exception(), BrokenProcessPool)
            if not alone:  # it killed its worker alone: the file's fault, whatever the memory
                pool.end()
                yield died(args_of.pop(future), pool.death)
                pending.pop(0)
                continue
        yield future.result()
        pending.pop(0)
        del args_of[future]


class RelogHandler(logging.Handler):
    """Log a record that came from a worker again, in this process, on the logger it was logged on.

    The record then reaches this process's handlers (the command's output, a test's ``caplog``)
    as if logged here, once, and only if that logger is enabled for its level.
    """

    def emit(self, record: logging.LogRecord) -> None:
        """Hand ``record`` to its own logger in this process.

        Parameters
        ----------
        record : logging.LogRecord
            A record a worker logged, its message already formatted there.
        """
        # A warning or MNE's word is the package's to show: the command's handlers are there.
        logger = logging.getLogger(record.name if record.name.split(".")[0] == PACKAGE_LOGGER else PACKAGE_LOGGER)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def _relog_until_closed(log_queue: Queue[Any]) -> None:
    """The log listener's thread: log again each record the workers send (:class:`RelogHandler`) until the queue's end.

    Its end comes once every writer has closed the queue's pipe; half a record before it (a worker
    killed while writing one) ends it too, where a sentinel queued after it would be read as its rest.
    """
    handler = RelogHandler()
    with suppress(EOFError, OSError):  # the end; OSError: "got end of file during message" (a handler raises none)
        while True:
            handler.handle(log_queue.get())


def _stop_listening(listener: threading.Thread, log_queue: Queue[Any]) -> None:
    """Show the records still queued and end the listener, once every worker has exited.

    This process's end of the pipe is the last one open: closed, the listener reads to the end and
    returns, so no thread is left running and a pool started again forks its workers. Should another
    process still hold the pipe (a child some library forked from this one while the pool ran), the
    listener is left to the exit after a while, as a daemon, and a pool started again is spawned.
    """
    log_queue._writer.close()  # type: ignore[attr-defined]  # a Queue closes no end of its own but by its feeder thread
    listener.join(timeout=LISTENER_END_SECONDS)
    if not listener.is_alive():
        log_queue._reader.close()  # type: ignore[attr-defined]


LISTENER_END_SECONDS = 10.0
"""How long the end of a pool waits for its log listener to read the last records (they come at once)."""


def _kill_workers_of_broken_pool(executor: ProcessPoolExecutor) -> bool:
    """SIGKILL the workers of a pool one of whose workers died; whether it had.

    The pool then stops the others with SIGTERM and waits for them, but they ignore SIGTERM
    (the main process decides when to stop), so without this the wait would never end.
    """
    if not getattr(executor, "_broken", False):
        return False
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()
    return True


def _init_worker(modules: tuple[str, ...], parent_pid: int, log_queue: Queue[Any], level: int) -> None:
    """Prepare a pool worker: stop signals left to the parent, death with it, logs sent to it, imports done."""
    # Ctrl-C and SIGTERM are handled once, by the parent, which lets running recordings finish cleanly.
    ignore_in_worker(STOP_SIGNALS)
    die_with_parent(parent_pid)
    for module in modules:
        importlib.import_module(module)
    # After the imports: importing MNE installs its own handler.
    _send_logs_to_parent(log_queue, level)


def _send_logs_to_parent(log_queue: Queue[Any], level: int) -> None:
    """In a worker: what ``biofound_cli`` and :data:`WORKER_LOGGERS` log at ``level`` or above goes to ``log_queue`` alone.

    A forked worker inherited the parent's handlers (and a root logger's, through propagation):
    left in place they would print a second copy, from the worker, to a stream the parent may
    have redirected.
    """
    to_parent = QueueHandler(log_queue)
    to_parent.setLevel(level)
    package = logging.getLogger(PACKAGE_LOGGER)
    for handler in list(package.handlers):
        package.removeHandler(handler)
    package.addHandler(to_parent)
    package.setLevel(level)
    package.propagate = False
    _take_library_logs(to_parent)
    warnings.showwarning = log_warning


class _RoutedTo(logging.Filter):
    """A logger's filter that hands every record to ``handler`` alone: the logger's own handlers never see it.

    A filter rather than a swap of handlers, so that nothing has to be imported up front: a
    reader importing MNE later (they all do, lazily) replaces the ``mne`` logger's stream
    handlers with its own, to stdout, but keeps the logger's filters; and the TUH readers, which
    never import MNE, stay free of its import time.
    """

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        """Hand ``record`` to the handler (at its level or above); ``False``: the logger goes no further.

        Parameters
        ----------
        record : logging.LogRecord
            What the library logged.
        """
        if record.levelno >= self.handler.level:
            self.handler.handle(record)
        return False


Routes = list[tuple[logging.Logger, logging.Filter]]


def _take_library_logs(handler: logging.Handler) -> Routes:
    """Send what :data:`WORKER_LOGGERS` log to ``handler`` alone; the routes, for :func:`_give_back_library_logs`."""
    routes: Routes = []
    for name in WORKER_LOGGERS:
        logger, route = logging.getLogger(name), _RoutedTo(handler)
        logger.addFilter(route)
        routes.append((logger, route))
    return routes


def _give_back_library_logs(routes: Routes) -> None:
    """Let the loggers :func:`_take_library_logs` routed use their own handlers again."""
    for logger, route in routes:
        logger.removeFilter(route)
