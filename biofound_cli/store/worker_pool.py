"""The process pool that runs one recording per task, for ``preprocess`` and ``predict``.

Its workers are started before any work, forked on Linux from a process that already imported
what they need, leave stop signals to the main process and die with it
(:mod:`~biofound_cli.store.worker_lifetime`).
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Iterator

from biofound_cli.corpora.base import Corpus
from biofound_cli.store.worker_lifetime import die_with_parent, ignore_stop_signals, stop_signals_blocked

WORKER_MODULES = ("scipy.fft", "h5py")
"""What every worker imports beyond the modules of the caller that submits its work (the chain,
the shard writer), loaded in the parent before forking, with the corpus's reader modules."""


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
    (:mod:`~biofound_cli.store.worker_lifetime`); they ignore those signals from the moment
    they start, forked or spawned, so one sent to the whole process group meanwhile cannot kill
    them half-born (:func:`~biofound_cli.worker_signals.signals_held_back`).

    Parameters
    ----------
    corpus_cls : type of Corpus
        The corpus reader; the workers import its ``reader_modules`` up front.
    workers : int
        The most worker processes wanted.
    n_recordings : int
        Recordings to process; no more workers than this are started.
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
    with stop_signals_blocked(method):
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


def _init_worker(modules: tuple[str, ...], parent_pid: int) -> None:
    """Prepare a pool worker: stop signals left to the parent, death with it, imports done (already, when forked)."""
    import importlib

    # Ctrl-C and SIGTERM are handled once, by the parent, which lets running recordings finish cleanly.
    ignore_stop_signals()
    die_with_parent(parent_pid)
    for module in modules:
        importlib.import_module(module)


__all__ = ["WORKER_MODULES", "worker_pool", "worker_start_method"]
