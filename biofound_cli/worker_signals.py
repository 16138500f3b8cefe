"""Stop signals and worker processes: the main process decides, workers never act on them.

A terminal's Ctrl-C, torchrun's forwarding and a job-wide ``scancel`` signal a whole process
group, workers included. Both the training loop (DataLoader workers) and preprocess (a process
pool) start their workers inside :func:`signals_held_back`, so a worker ignores the stop signals
from its first instruction, under every start method (fork, spawn, forkserver), instead of being
killed half-born; each worker then calls :func:`ignore_in_worker` first thing, which unblocks
what a forked worker inherited blocked.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence


@contextmanager
def signals_held_back(signals: Sequence[int], start_method: str | None = None) -> Iterator[None]:
    """Start worker processes in the block: they ignore ``signals`` from birth; this process gets them after.

    A forked child inherits this thread's signal mask, but a spawned one (macOS, Windows, and
    Linux once a thread runs) or one forked by the forkserver (Python 3.14's default on Linux)
    starts with nothing blocked, and spends seconds importing torch before it can call
    :func:`ignore_in_worker`: a SIGTERM to the process group then would kill it. What every
    start method keeps across ``exec`` is an *ignored* disposition, so for the block the signals
    are both blocked (one that arrives waits for this process) and ignored (what the children
    inherit); the previous handlers come back before the signals are unblocked, and one that was
    already pending when the block began is raised again for them. Outside the main thread this
    does nothing.

    Parameters
    ----------
    signals : sequence of int
        The stop signals the main process handles.
    start_method : str | None
        How the workers start (``"fork"``, ``"spawn"``, ``"forkserver"``); ``None`` for this
        process's default.
    """
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    import multiprocessing

    # The default is the first method listed, until the program sets one.
    if (
        start_method or multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
    ) != "fork":
        # multiprocessing's resource tracker, started with the first spawned child or queue,
        # unblocks SIGINT and SIGTERM in this thread as it starts: inside the block they would then
        # reach this process while ignored, and be lost. Started first, it is already running.
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    # Ignoring a pending signal discards it: note those that came before the block.
    pending = [signum for signum in signals if signum in signal.sigpending()]
    handlers: dict[int, Any] = {}
    try:
        for signum in signals:
            handlers[signum] = signal.signal(signum, signal.SIG_IGN)
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in pending:
            signal.raise_signal(signum)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def ignore_in_worker(signals: Sequence[int]) -> None:
    """In a worker started under :func:`signals_held_back`: ignore ``signals``, then unblock them.

    Parameters
    ----------
    signals : sequence of int
        The stop signals the main process handles.
    """
    for signum in signals:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
