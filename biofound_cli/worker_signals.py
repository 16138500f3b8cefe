"""Stop signals and worker processes: the main process decides, workers never act on them.

A terminal's Ctrl-C, torchrun's forwarding and a job-wide ``scancel`` signal a whole process
group, workers included. Both the training loop (DataLoader workers) and preprocess (a process
pool) start their workers inside :func:`signals_held_back`, so a worker holds the stop signals
blocked from its first instruction, under every start method (fork, spawn, forkserver), instead
of being killed half-born; each worker then calls :func:`ignore_in_worker` first thing, which
ignores them and unblocks them.

Job control (Ctrl-Z then ``fg``, ``kill -STOP``/``-CONT`` to the group) stops and continues the
whole group too. A process forked while both signals arrive can be left stopped: the kernel hands
a child the group signals sent during its fork, and a SIGSTOP delivered after its SIGCONT stops
it for good, so its parent would wait for it for ever. :func:`signals_held_back` therefore
continues the workers once more when this process is continued while they start.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any, Iterable, Iterator, Sequence


@contextmanager
def signals_held_back(signals: Sequence[int], start_method: str) -> Iterator[None]:
    """Start worker processes in the block: they are born with ``signals`` blocked; this process gets them after.

    Every start method passes the blocked mask of this thread on: a forked child inherits it, and
    ``exec`` keeps it for a spawned one and for the forkserver, which is started by the first
    worker, so in the block (Python 3.14's default on Linux). A worker thus cannot be killed
    half-born by a signal to the process group while it imports torch, before
    :func:`ignore_in_worker` ignores the signals and unblocks them. This process keeps handling
    them: the mask is per thread, and a signal another thread takes in the block runs a handler
    that notes it, so each one noted is raised again for the previous handlers at the end, as a
    blocked one is delivered then. (Ignoring them for the block instead lost every signal another
    thread took, e.g. a preemption while a training epoch started its loader workers.) A SIGCONT
    that arrives in the block waits for its end too, then continues every worker of this process
    once more (:func:`continue_workers`): one forked as the job was stopped and continued may hold
    the stop. Outside the main thread this does nothing.

    Parameters
    ----------
    signals : sequence of int
        The stop signals the main process handles.
    start_method : str
        How the workers start: ``"fork"``, ``"spawn"`` or ``"forkserver"``.
    """
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [*signals, signal.SIGCONT])
    if start_method != "fork":
        # multiprocessing's resource tracker, started with the first spawned child or queue, is
        # started here, born with the signals blocked: it ignores SIGINT and SIGTERM only, and a
        # SIGUSR1 to its group (torchrun forwarding it, a job-wide signal) killed it: "resource_tracker:
        # process died unexpectedly ... Some resources might leak", then a traceback per semaphore.
        # It unblocks SIGINT and SIGTERM in this thread as it starts: blocked again after.
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    with signals_handled_by(continue_workers, [signal.SIGCONT]):
        try:
            with signals_deferred(signals):
                yield
        finally:
            # Unblocking runs the handlers of what waited, continue_workers included.
            signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


@contextmanager
def signals_handled_by(handler: Any, signums: Iterable[int]) -> Iterator[None]:
    """While the block runs, ``handler`` takes ``signums``; the handlers of before come back after it.

    A handler set outside Python (``None``) comes back as the default action. Elsewhere than in the
    main thread, where no handler can be installed, this does nothing.

    Parameters
    ----------
    handler : callable | signal.Handlers
        A signal handler, or ``signal.SIG_IGN``.
    signums : iterable of int
        The signals it takes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, signal.SIG_DFL if before is None else before)


@contextmanager
def signals_deferred(signums: Iterable[int]) -> Iterator[None]:
    """While the block runs, ``signums`` are noted; as it ends each noted one is raised again, once, for the handlers of before.

    Elsewhere than in the main thread this does nothing.

    Parameters
    ----------
    signums : iterable of int
        The signals that wait for the block's end.
    """
    noted: list[int] = []
    try:
        with signals_handled_by(lambda signum, frame: noted.append(signum), signums):
            yield
    finally:
        for signum in dict.fromkeys(noted):
            signal.raise_signal(signum)


def continue_workers(signum: int | None = None, frame: FrameType | None = None) -> None:
    """Send SIGCONT to every worker process this process started; a signal handler.

    Parameters
    ----------
    signum : int | None
        The signal received (SIGCONT), or ``None`` when called directly.
    frame : FrameType | None
        The frame it interrupted; not used.
    """
    import multiprocessing

    for worker in multiprocessing.active_children():
        if worker.pid is not None:
            with suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGCONT)


def ignore_in_worker(signals: Sequence[int]) -> None:
    """In a worker started under :func:`signals_held_back`: ignore ``signals``, then unblock them and SIGCONT.

    A forked worker also inherited the parent's SIGCONT handler, which it has no use for.

    Parameters
    ----------
    signals : sequence of int
        The stop signals the main process handles.
    """
    for signum in signals:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "SIGCONT"):
        signal.signal(signal.SIGCONT, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [*signals, signal.SIGCONT])
