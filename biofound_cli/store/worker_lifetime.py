"""Pool workers that never outlive the run, and SIGTERM or SIGUSR1 that stops a run the way Ctrl-C does.

``timeout``, ``kill``, a scheduler or the OOM killer signal the main process, and often only it.
A pool worker is a child process: left alone it would go on with the recordings queued to it,
then wait for more that never come. So a worker dies with its parent: on Linux the kernel sends
it SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``), and on every OS a watchdog thread
exits it within :data:`WATCH_SECONDS` once its parent is gone. What it was writing stays a
temporary file, which the next run deletes.

The stop signals themselves are the main process's to handle: workers ignore SIGINT and the
preemption signals, SIGTERM and SIGUSR1 (a terminal's Ctrl-C, a job-wide SIGTERM, and the SIGUSR1
of ``sbatch --signal=USR1@N`` reach the whole process group), and the main process turns a
preemption signal into :class:`Terminated`, a ``KeyboardInterrupt``, so a run stops the one way
it stops on Ctrl-C: the recordings in flight finish, the report is written.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import sys
import threading
import time
from contextlib import AbstractContextManager, contextmanager
from types import FrameType
from typing import Callable, Iterator, NoReturn

from biofound_cli.atomic import process_alive
from biofound_cli.errors import BiofoundError, ExitStatus
from biofound_cli.stop_signals import (
    PREEMPTION_SIGNALS,
    came_as_the_work_finished,
    exit_on_a_second_ctrl_c,
    noted_at_start,
    stop_name,
)
from biofound_cli.worker_signals import signals_deferred, signals_handled_by

logger = logging.getLogger(__name__)

WATCH_SECONDS = 1.0
"""How often a worker's watchdog checks that its parent still runs."""

PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal the kernel sends this process when its parent dies (linux/prctl.h)."""

TERMINATING_SIGNALS = tuple(signal.Signals[name] for name in PREEMPTION_SIGNALS)
"""The signals that stop a command other than training with status 143: what preempts training."""

STOP_SIGNALS = (signal.SIGINT, *TERMINATING_SIGNALS)
"""The signals pool workers leave to the main process (:mod:`biofound_cli.worker_signals`)."""


class Terminated(KeyboardInterrupt):
    """A terminating signal received by the main process; raised where Ctrl-C raises ``KeyboardInterrupt``.

    Parameters
    ----------
    signal_name : str
        The signal's name, ``"SIGTERM"`` or ``"SIGUSR1"``.
    """

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class Stopped(BiofoundError):
    """A run stopped by Ctrl-C (status 130) or a terminating signal (143), in one line saying what it left.

    Parameters
    ----------
    signal_name : str
        The signal that stopped it: ``"SIGINT"`` for Ctrl-C, or one of :data:`TERMINATING_SIGNALS`.
    consequence : str
        What the stop left and what to do, following "stopped by SIGTERM".
    details : dict | None
        Extra fields of the ``--json`` failure object.
    """

    def __init__(self, signal_name: str, consequence: str, *, details: dict | None = None) -> None:
        status = ExitStatus.INTERRUPTED if signal_name == "SIGINT" else ExitStatus.TERMINATED
        super().__init__(f"stopped by {stop_name(signal_name)}{consequence}", status=status, details=details)
        self.signal_name = signal_name


def signal_of(stop: KeyboardInterrupt) -> str:
    """The name of the signal behind ``stop``: a :class:`Terminated`'s own, ``"SIGINT"`` for Ctrl-C.

    Parameters
    ----------
    stop : KeyboardInterrupt
        The stop on its way out of the work.
    """
    return stop.signal_name if isinstance(stop, Terminated) else "SIGINT"


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process exit as soon as ``parent_pid``, its parent, is gone.

    Parameters
    ----------
    parent_pid : int
        The main process's pid, taken before the worker started.
    """
    if sys.platform.startswith("linux"):
        _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:
        # The parent died before the death signal was armed: the kernel will not send it.
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="biofound-parent-watch", daemon=True).start()


def die_with(manager_pid: int) -> None:
    """Make this worker exit as soon as ``manager_pid``, the process it works for, is gone, when that is not its parent.

    A DataLoader worker the forkserver forked (a rank's: :mod:`~biofound_cli.training.loader_start`)
    has the forkserver for parent, and the forkserver runs as long as one of its children does (each
    holds its "alive" pipe): a rank killed with SIGKILL left both running for ever, and whatever
    waited for the job's output with them. The worker therefore watches the rank itself. A worker
    the process it serves forked (or spawned) needs nothing more: the DataLoader's own watchdog
    ends it once its parent is gone.

    Parameters
    ----------
    manager_pid : int
        The pid of the process the worker serves, taken before the worker started.
    """
    if os.getppid() != manager_pid:
        threading.Thread(target=_watch_process, args=(manager_pid,), name="biofound-manager-watch", daemon=True).start()


def _watch_process(pid: int) -> None:
    """Exit this process once process ``pid`` has ended."""
    try:
        handle = os.pidfd_open(pid)  # readable once the process has ended (Linux 5.3)
    except (AttributeError, OSError):  # another OS, an older kernel, or already gone
        while process_alive(pid):
            time.sleep(WATCH_SECONDS)
    else:
        select.select([handle], [], [])
    os._exit(1)


def _set_parent_death_signal(signum: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, signum)`` through the C library; False where that is not possible."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signum), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    # An orphan is re-parented (to init or a subreaper), so its parent pid changes.
    while os.getppid() == parent_pid:
        time.sleep(WATCH_SECONDS)
    os._exit(1)


class StopRequest:
    """The command's one stop request, shared by its nested stop blocks (training's by its preemption guard).

    The signal that made it, and whether it was raised.
    """

    def __init__(self) -> None:
        self.name: str | None = None
        """The first stop signal's name (``"SIGINT"`` for Ctrl-C), once one came."""
        self.at = 0.0
        """When it came, by ``time.monotonic()``: a second Ctrl-C a while after it stops at once."""
        self.raised = False
        self.settled = False
        """Whether the stage's work is settled (:func:`stops_settled`): a stop now is noted, not raised."""

    def take(self, signum: int) -> bool:
        """Take a stop signal: the first is the request (True); later copies are the same one, but a second Ctrl-C ends at once.

        Parameters
        ----------
        signum : int
            The signal received (:func:`~biofound_cli.stop_signals.exit_on_a_second_ctrl_c` for the second Ctrl-C).
        """
        if self.name is not None:
            exit_on_a_second_ctrl_c(signum, self.at)
            return False
        self.name, self.at = signal.Signals(signum).name, time.monotonic()
        return True

    def raise_it(self) -> NoReturn:
        """Raise the stop where the work runs: ``KeyboardInterrupt`` for Ctrl-C, :class:`Terminated` otherwise."""
        assert self.name is not None
        self.raised = True
        raise KeyboardInterrupt if self.name == "SIGINT" else Terminated(self.name)

    def noted_ctrl_c(self) -> KeyboardInterrupt | None:
        """A Ctrl-C that was noted and never raised (it came as the report was written): the run's stop, or ``None``."""
        return KeyboardInterrupt() if self.name == "SIGINT" and not self.raised else None


class _StopTaker:
    """The handler of a :func:`sigterm_as_interrupt` (``raises``) or :func:`sigterm_noted` block: it takes the stop."""

    def __init__(self, request: StopRequest, raises: bool) -> None:
        self.request = request
        self.raises = raises

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        # One stop is one request for the whole command; once the stage is settled it is noted only.
        if self.request.take(signum) and self.raises and not self.request.settled:
            self.request.raise_it()


def sigterm_as_interrupt() -> AbstractContextManager[StopRequest]:
    """While the block runs, SIGTERM or SIGUSR1 (:data:`TERMINATING_SIGNALS`) raises :class:`Terminated` in the main thread.

    One stop is one request for the whole command: the blocks of one command, nested, share the
    stop the first of them took, further terminating signals are ignored (a second Ctrl-C a while
    after it ends the process at once: :func:`~biofound_cli.stop_signals.exit_on_a_second_ctrl_c`,
    announced as a pool's recordings in flight finish), and a block that starts
    once it was taken raises it as it starts. A stop that work let finish (:func:`sigterm_noted`:
    its last recordings) thus stops the quick start as its next stage starts; after its last stage
    there is nothing left to stop. A signal noted as the command started
    (:func:`~biofound_cli.stop_signals.noted_at_start`) stops the outermost block as it starts.
    Within a :func:`sigterm_noted` block, Ctrl-C is one such stop too (raised as ``KeyboardInterrupt``).
    The handlers of before come back after the block, for a Python caller as for the command line
    (whose :func:`sigterm_ignored_once_settled` then ignores them). Elsewhere than in the main
    thread, where no handler can be installed, this does nothing.
    """
    return _stops_taken(raises=True)


@contextmanager
def sigterm_noted(left: Callable[[], int]) -> Iterator[StopRequest]:
    """While the block runs, Ctrl-C, SIGTERM or SIGUSR1 is noted, not raised (unless in a :func:`sigterm_as_interrupt` within).

    For a run whose work (its recordings) runs in such a block, with its report written around it:
    a stop while the report is written, the run done or failing (a full disk, a bug of ours),
    leaves it whole, and the run's outcome, its error and status, stands. A Ctrl-C then, the run
    done, is the run's stop all the same (:meth:`StopRequest.noted_ctrl_c`, after the block): the
    run ends with 130 once its report is written. A SIGTERM or SIGUSR1 with no recording
    ``left`` as the block ends, raised or noted, came once the work was done
    (:func:`how_it_ended`): the block then logs a warning naming it, once, and it stays the
    command's, to stop the quick start before its next stage (:func:`sigterm_as_interrupt`).

    Parameters
    ----------
    left : callable
        How many recordings of the work have no result yet.
    """
    with _stops_taken(raises=False) as request:
        yield request
    if request.name not in (None, "SIGINT") and not left():
        logger.warning(came_as_the_work_finished(request.name))


@contextmanager
def _stops_taken(raises: bool) -> Iterator[StopRequest]:
    """While the block runs, a :class:`_StopTaker` takes the stop signals; yields the command's stop request."""
    if threading.current_thread() is not threading.main_thread():
        yield StopRequest()
        return
    outer = signal.getsignal(signal.SIGTERM)
    take = _StopTaker(outer.request if isinstance(outer, _StopTaker) else StopRequest(), raises)
    # Ctrl-C where a noting block writes the report, and in the work within it; elsewhere Python's own handler.
    ctrl_c = not raises or isinstance(signal.getsignal(signal.SIGINT), _StopTaker)
    signums = (*TERMINATING_SIGNALS, signal.SIGINT) if ctrl_c else TERMINATING_SIGNALS
    take.request.settled = False  # a block that starts is work again (the quick start's next stage)
    with signals_handled_by(take, signums):
        for signum in [] if isinstance(outer, _StopTaker) else noted_at_start():
            take(signum, None)
        if take.request.name is not None and raises:  # one an enclosing block holds: work before this block finished under it
            take.request.raise_it()
        yield take.request
    if not isinstance(outer, _StopTaker) and take.request.settled and take.request.name is not None:
        logger.warning(came_as_the_work_finished(take.request.name))


@contextmanager
def stop_reported(consequence: str | Callable[[KeyboardInterrupt], str], *, ctrl_c: bool = False) -> Iterator[None]:
    """Run the block under :func:`sigterm_as_interrupt`; a stop leaves it as one line saying what it left.

    Parameters
    ----------
    consequence : str | callable
        What the stop left and what to do, following "stopped by SIGTERM" in the message, e.g.
        ``"; finished shards are kept and re-running the same command resumes"``; or a function of
        the stop that says it, where what was left is known only once it came (a download's part file).
    ctrl_c : bool
        Report Ctrl-C the same way (status 130). Otherwise ``KeyboardInterrupt`` goes on to the
        command line's generic Ctrl-C message, and only the terminating signals are reported here.

    Raises
    ------
    Stopped
        With status 143 (``ExitStatus.TERMINATED``) on SIGTERM or SIGUSR1, 130 on Ctrl-C when ``ctrl_c``.
    """
    try:  # around the block: a signal noted as the command started stops it as it starts
        with sigterm_as_interrupt():
            yield
    except KeyboardInterrupt as stop:
        if not (isinstance(stop, Terminated) or ctrl_c):
            raise
        raise Stopped(signal_of(stop), consequence if isinstance(consequence, str) else consequence(stop)) from None


def how_it_ended(stop: KeyboardInterrupt | None, left: int) -> tuple[KeyboardInterrupt | None, bool]:
    """The stop that ends a ``preprocess`` or ``predict`` run, and whether its report (summary) says ``interrupted``.

    Both let the recordings in flight finish on a stop. When those were the last, the run exited
    143 though it was done: a scheduler requeued finished work, and the report said interrupted.
    So a SIGTERM or SIGUSR1 with no recording ``left`` is no stop: the run ends as a finished one
    (status 0, or 1 when every recording failed), with the warning of :func:`sigterm_noted`, as
    does a stop that comes once they are done, while the report is written. Ctrl-C stays a stop.
    The report says ``interrupted`` for every way a run ends before its work is done: a stop, a
    full disk, a bug of ours; a re-run does the rest.

    Parameters
    ----------
    stop : KeyboardInterrupt | None
        The stop that came during the run, if any.
    left : int
        How many recordings of the run have no result.

    Returns
    -------
    tuple
        The stop, or ``None``; and whether the run ended early (stopped, or recordings ``left``).
    """
    stop = None if isinstance(stop, Terminated) and not left else stop
    return stop, stop is not None or left > 0


@contextmanager
def sigterm_ignored_once_settled() -> Iterator[None]:
    """Run the command's work in the block; once it ends, done or failed, SIGTERM or SIGUSR1 changes nothing.

    For the command-line process, which only prints its summary or its error and exits after the
    block. Left to the default action, a SIGTERM then (a job's time limit reached as the work
    ended, a job-wide ``scancel``) killed the process without a word: status 143 after a complete
    run, its ``--json`` summary already printed. An ignored signal stays ignored through the
    interpreter's exit. Elsewhere than in the main thread this does nothing.
    """
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for signum in TERMINATING_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)


def stop_signals_deferred() -> AbstractContextManager[None]:
    """While the block runs, the stop signals (:data:`STOP_SIGNALS`) wait; their handlers run, once each, when it ends.

    For steps that must happen together or not at all, such as moving a file in and recording it
    in the summary that a re-run trusts. Python runs a handler between any two bytecodes, so a
    stop raised in the middle would leave the file without its entry. Elsewhere than in the main
    thread, where no handler can be installed, this does nothing.
    """
    return signals_deferred(STOP_SIGNALS)


@contextmanager
def stops_settled() -> Iterator[None]:
    """From the block on, the stage's work is settled: a stop lets it finish and end as a finished one.

    For the last step of work that is settled once it starts, such as moving a verified export or
    an evaluation's report and plots in, and what must follow it (the other export's files, the
    earlier run's plots, removed). A stop in the middle left half of it; one after it, before the
    command's stop blocks ended, said "nothing was written" beside the whole result and exited
    143. So the one rule, as for ``preprocess``'s stop after its last recordings
    (:func:`how_it_ended`) and training's after its last step: once settled, a SIGTERM or
    SIGUSR1 is noted, not raised, until the stage's stop blocks end (a quick start's next stage
    then stops as it starts: :func:`sigterm_as_interrupt`), and Ctrl-C is ignored within the
    block. Without a stop block around it, the block ignores the stop signals
    (:data:`STOP_SIGNALS`); elsewhere than in the main thread it does nothing.
    """
    taker = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if isinstance(taker, _StopTaker):
        taker.request.settled = True
    with signals_handled_by(signal.SIG_IGN, [signal.SIGINT] if isinstance(taker, _StopTaker) else STOP_SIGNALS):
        yield


@contextmanager
def stop_kept_through_a_wait() -> Iterator[None]:
    """Around a wait on worker processes' results: a stop that comes as the wait ends stays a stop.

    CPython's ``threading.Condition.wait`` (under ``concurrent.futures.wait`` and ``Future.result``)
    re-takes its lock in a Python function; a Ctrl-C or :class:`Terminated` raised as that function
    starts leaves the lock not taken, and the ``with`` around the wait then raises
    ``RuntimeError: release unlocked lock`` in its place: a traceback and status 1 where the stop
    line and 130/143 belonged (seen in ``preprocess`` stopped with Ctrl-C). The stop comes out here.
    """
    try:
        yield
    except RuntimeError as error:
        if isinstance(error.__context__, KeyboardInterrupt):
            raise error.__context__ from None
        raise
