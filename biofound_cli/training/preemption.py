"""Stop requests: finish the step, write a resumable checkpoint, exit 75 (or 130 for Ctrl-C).

Cluster schedulers announce a preemption with a signal (SLURM: SIGTERM, or SIGUSR1 with
``--signal``), and a person presses Ctrl-C (SIGINT). The first signal only raises a flag; the
loop checks it after each optimiser step, all ranks agree, rank 0 writes a checkpoint and the
run raises :class:`~biofound_cli.errors.PreemptedError` (exit 75) or
:class:`~biofound_cli.errors.InterruptedRunError` (exit 130, SIGINT).

One stop request often arrives as several copies: a job-wide ``scancel`` or preemption signals
every process, and torchrun forwards its own copy to each rank's whole process group. Copies
are one request; only a second Ctrl-C means "now" (exit 130 at once), as for every command
(:data:`~biofound_cli.stop_signals.SECOND_INTERRUPT_SECONDS`). Checkpoints are written under a temporary name
and renamed, so an exit mid-write leaves the last good one intact.

DataLoader workers share the process group, so they receive the same signals; they leave
them to the main process (:func:`ignore_stop_signals_in_worker`), which is the one that
decides. The loop creates its worker pools inside :func:`~biofound_cli.worker_signals.signals_held_back` so that a
signal arriving while a worker starts cannot kill it before it has said so.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from biofound_cli.store.worker_lifetime import StopRequest, die_with
from biofound_cli.training.loader_start import choose_start_method
from biofound_cli.worker_signals import ignore_in_worker, signals_held_back

if TYPE_CHECKING:
    from torch.utils.data import DataLoader


def stop_signals(signal_names: Sequence[str]) -> list[signal.Signals]:
    """The recipe's preemption signals plus SIGINT, which also stops with a checkpoint.

    Parameters
    ----------
    signal_names : sequence of str
        Names of ``signal.Signals`` members, e.g. ``SIGUSR1``.
    """
    return list(dict.fromkeys([*(signal.Signals[name] for name in signal_names), signal.SIGINT]))


class PreemptionGuard:
    """Installs handlers for ``signal_names`` and SIGINT while the ``with`` block runs.

    Signal handlers can only be installed from the main thread; elsewhere the guard does
    nothing (``request.name`` stays ``None``).

    Parameters
    ----------
    signal_names : sequence of str
        The recipe's ``train.preemption_signals``; SIGINT is always added.
    hold_after_stop : bool
        Once a stop was requested, or the block ends with an error, ignore further copies of
        the preemption signals after the block instead of restoring the previous handlers. For
        a process that exits after the block (the CLI): copies may still arrive, e.g. torchrun
        forwards its own when it next gets CPU time, or stops every rank with SIGTERM as soon as
        one rank has exited with an error, and under the default action such a signal would
        kill the process (exit 143) before or while it reports the stop or the error.
    arrived : list of int
        Signals :func:`stops_noted` noted before the guard could be built (the command starting);
        the guard acts on them as it starts, as if they came then.
    """

    INTERRUPT = "SIGINT"
    """The signal whose stop is an interruption (exit 130) rather than a preemption (exit 75)."""

    def __init__(self, signal_names: Sequence[str], *, hold_after_stop: bool = False, arrived: Sequence[int] = ()) -> None:
        self.signals = stop_signals(signal_names)
        self.hold_after_stop = hold_after_stop
        self.arrived = arrived
        self.request = StopRequest()
        """The first stop signal (``request.name``, none until one came); copies after it are the same request."""
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request.take(signum)

    def __enter__(self) -> "PreemptionGuard":
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
            for number in dict.fromkeys(self.arrived):
                if number in self.signals:
                    self._handle(number, None)
                else:  # not a preemption in this recipe: the action it has without the guard
                    signal.raise_signal(number)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        hold = self.hold_after_stop and (self.request.name is not None or exc_type is not None)
        for signum, previous in self._previous.items():
            if not hold:
                signal.signal(signum, previous)
            elif signum != signal.SIGINT:
                # Ignored rather than handled: at interpreter exit Python resets its own handlers to
                # the default action, but keeps an ignored signal ignored. SIGINT keeps the handler,
                # so a deliberate second Ctrl-C still ends a slow exit at once.
                signal.signal(signum, signal.SIG_IGN)
        self._previous.clear()


@contextmanager
def stops_noted(signal_names: Sequence[str]) -> Iterator[list[int]]:
    """While the block runs, ``signal_names`` are noted, not acted on: give the list to the :class:`PreemptionGuard`.

    For a command's start, before its recipe names the preemption signals: importing torch and
    reading the recipe take seconds (tens on a cluster's network file system), and a preemption
    then killed the job with no line and status 143, which a requeue that waits for 75 passed over.
    A guard entered inside the block acts on what was noted as it starts (a checkpoint after the
    first step, status 75); a signal that arrives after the guard ends is dropped, and one the
    guard left ignored after a stop stays ignored. Outside the main thread this notes nothing.

    Parameters
    ----------
    signal_names : sequence of str
        The signals to note (the default ``train.preemption_signals``).
    """
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return

    def note(number: int, frame: FrameType | None) -> None:
        noted.append(number)

    previous = {signum: signal.signal(signum, note) for signum in map(signal.Signals.__getitem__, signal_names)}
    try:
        yield noted
    finally:
        for signum, handler in previous.items():
            # A guard that held the signal ignored after a stop keeps it so: late copies must not kill the report.
            if signal.getsignal(signum) is note:
                signal.signal(signum, handler)


def ignore_stop_signals_in_worker(signal_names: Sequence[str], manager_pid: int | None = None, worker_id: int = 0) -> None:
    """A DataLoader ``worker_init_fn``: leave stop signals to the main process, and end with it.

    Use with :func:`functools.partial` to bind ``signal_names`` and ``manager_pid``. The worker
    ends when the main process ends, however it ends (SIGKILL included): the DataLoader's watchdog
    ends a worker whose parent it is, and a worker the forkserver forked watches it
    (:func:`~biofound_cli.store.worker_lifetime.die_with`).

    Parameters
    ----------
    signal_names : sequence of str
        The recipe's preemption signals (e.g. ``SIGUSR1``); SIGINT is always included.
    manager_pid : int | None
        The main process's pid; ``None`` leaves the worker's end to the DataLoader's watchdog,
        which watches its parent.
    worker_id : int
        The worker's number, passed by the DataLoader; not used.
    """
    ignore_in_worker(stop_signals(signal_names))
    if manager_pid is not None:
        die_with(manager_pid)


def iterate_leaving_signals_to_main(loader: DataLoader, signal_names: Sequence[str]) -> Iterator[Any]:
    """``iter(loader)`` whose worker processes ignore the stop signals the main process handles.

    The workers start as :func:`~biofound_cli.training.loader_start.choose_start_method` decides:
    by the forkserver while a process group runs, so none can hang half-born.

    Parameters
    ----------
    loader : DataLoader
        The loader; its ``worker_init_fn`` is replaced when it has workers, and its
        ``multiprocessing_context`` set while a process group runs.
    signal_names : sequence of str
        The recipe's preemption signals; SIGINT is always included.
    """
    if loader.num_workers == 0:
        return iter(loader)
    loader.worker_init_fn = partial(ignore_stop_signals_in_worker, list(signal_names), os.getpid())
    with signals_held_back(stop_signals(signal_names), choose_start_method(loader)):
        return iter(loader)


def stop_workers(loader: DataLoader) -> None:
    """End the worker processes of ``loader`` (one with ``persistent_workers``, kept between its epochs), if any run.

    A persistent loader keeps its workers until its iterator is collected, and they ignore the
    stop signals, so the run ends them itself on every way out: none is left behind to outlive it
    or hold the interpreter's exit. Calling it again (or on a loader that never started) does nothing.

    Parameters
    ----------
    loader : DataLoader
        The loader; its next ``iter`` starts new workers.
    """
    iterator = getattr(loader, "_iterator", None)  # torch keeps a persistent loader's workers there
    if iterator is not None:
        loader._iterator = None
        iterator._shutdown_workers()
