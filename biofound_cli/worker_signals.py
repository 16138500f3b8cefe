"""Stop signals and worker processes: the main process decides, workers never act on them.

A terminal's Ctrl-C, torchrun's forwarding and a job-wide ``scancel`` signal a whole process
group, workers included. Both the training loop (DataLoader workers) and preprocess (a process
pool) start their workers inside :func:`signals_held_back`, and each worker calls
:func:`ignore_in_worker` first thing, so a signal sent while a worker starts waits until the
worker has said it ignores it, instead of killing it half-born.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator, Sequence


@contextmanager
def signals_held_back(signals: Sequence[int]) -> Iterator[None]:
    """Block ``signals`` in this thread while worker processes start; deliver them after.

    Forked and spawned children inherit the blocked mask (and a forked child the main process's
    handlers, which must not run in a worker). Outside the main thread this does nothing.

    Parameters
    ----------
    signals : sequence of int
        The stop signals the main process handles.
    """
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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
