"""How a long loop reports how far it got, without knowing who watches.

The core (preprocess, pack, training, evaluation, export, downloads) takes a
:class:`ProgressReporter` and opens one :meth:`~ProgressReporter.task` per loop; messages go
through :mod:`logging` instead (the ``biofound_cli`` logger, as MNE-Python does). The command
line passes a reporter that draws rich progress bars or writes plain log lines
(:class:`biofound_cli.output.Output`); a library caller passes nothing and gets
:data:`NO_PROGRESS`, which does nothing. This module imports no UI library.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import Iterator, Protocol


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
            there, and a rate or time left counts only the units done since.

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
