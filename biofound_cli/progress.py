"""How a long loop reports how far it got, without knowing who watches.

The core (preprocess, pack, training, evaluation, export, downloads) takes a
:class:`ProgressReporter` and opens one :meth:`~ProgressReporter.task` per loop; messages go
through :mod:`logging` instead (the ``biofound_cli`` logger, as MNE-Python does). The command
line passes a reporter that draws rich progress bars or writes plain log lines
(:class:`biofound_cli.output.Output`); a library caller passes nothing and gets
:data:`NO_PROGRESS`, which does nothing. This module imports no UI library.
"""

from __future__ import annotations

import functools
import inspect
from contextlib import AbstractContextManager, contextmanager
from typing import Callable, Iterator, Protocol


class ProgressTask(Protocol):
    """One unit of tracked work, as handed out by :meth:`ProgressReporter.task`."""

    def advance(self, amount: int = 1) -> None:
        """Record that ``amount`` more units are done.

        Parameters
        ----------
        amount : int
            Units done since the last call.
        """

    def set_description(self, description: str) -> None:
        """Replace the text shown beside the count.

        Parameters
        ----------
        description : str
            The new text.
        """


class ProgressReporter(Protocol):
    """Something that can show the progress of a loop of known or unknown length."""

    def task(
        self, total: int | None, description: str, unit: str = "items", *, done: int = 0
    ) -> AbstractContextManager[ProgressTask]:
        """Track ``total`` units of work (``None``: unknown) until the ``with`` block ends.

        Parameters
        ----------
        total : int | None
            Units of work expected, or ``None`` when not known in advance.
        description : str
            What the work is, e.g. ``"preprocess tuab"``.
        unit : str
            Name of one unit, e.g. ``"files"``, ``"windows"``, ``"bytes"``.
        done : int
            Units of ``total`` done before this start (a resumed run's steps): the count starts
            there, and a rate or time left counts only the units done since. Optional for a
            reporter: the core opens tasks through :func:`open_task`, which advances the task of
            one without it by ``done`` instead.

        Returns
        -------
        AbstractContextManager[ProgressTask]
            A context manager yielding the task to :meth:`~ProgressTask.advance`.
        """


class _SilentTask:
    """A task that counts nothing and shows nothing."""

    def advance(self, amount: int = 1) -> None:
        """Do nothing."""

    def set_description(self, description: str) -> None:
        """Do nothing."""


class NoProgress:
    """A :class:`ProgressReporter` that shows nothing: the default of every core function."""

    @contextmanager
    def task(self, total: int | None, description: str, unit: str = "items", *, done: int = 0) -> Iterator[ProgressTask]:
        """Yield a task whose methods do nothing.

        Parameters
        ----------
        total : int | None
            Ignored.
        description : str
            Ignored.
        unit : str
            Ignored.
        done : int
            Ignored.

        Yields
        ------
        ProgressTask
            A task that records nothing.
        """
        yield _SilentTask()


NO_PROGRESS: ProgressReporter = NoProgress()
"""The do-nothing reporter: library calls and non-main DDP ranks show no progress."""


def open_task(
    reporter: ProgressReporter, total: int | None, description: str, unit: str = "items", *, done: int = 0
) -> AbstractContextManager[ProgressTask]:
    """``reporter.task(...)``, for a reporter whose ``task`` takes ``done=`` and for one written before it did.

    ``done`` came to the protocol later than the reporters users wrote to it: passed to one
    without it, every training run ended in a ``TypeError``. Such a reporter is called without
    ``done`` and its task advanced by ``done`` at the start (its count is right; its rate counts
    those units as this start's).

    Parameters
    ----------
    reporter : ProgressReporter
        The reporter of the command or of the library caller.
    total : int | None
        Units of work expected, or ``None`` when not known in advance.
    description : str
        What the work is.
    unit : str
        Name of one unit.
    done : int
        Units of ``total`` done before this start (a resumed run's steps, a resumed download's bytes).
    """
    if not done:
        return reporter.task(total, description, unit)
    if _takes_done(getattr(reporter.task, "__func__", reporter.task)):  # the function, so each reporter's is read once
        return reporter.task(total, description, unit, done=done)
    return _advanced(reporter.task(total, description, unit), done)


@functools.cache
def _takes_done(task: Callable[..., object]) -> bool:
    try:
        parameters = inspect.signature(task).parameters.values()
    except (TypeError, ValueError):  # a signature Python cannot read: take the protocol at its word
        return True
    return any(parameter.name == "done" or parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters)


@contextmanager
def _advanced(task: AbstractContextManager[ProgressTask], done: int) -> Iterator[ProgressTask]:
    with task as opened:
        opened.advance(done)
        yield opened
