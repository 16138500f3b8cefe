"""The core's log records, shown through the command's :class:`~biofound_cli.output.Output`.

The core modules log to ``logging.getLogger(__name__)`` under the ``biofound_cli`` logger and
never print. For the length of one command :func:`forward_logs` hangs an :class:`OutputHandler`
on that logger, so each record reaches the user exactly as a direct call on the ``Output``
would: INFO on stdout (hidden by ``--quiet``), WARNING as ``warning: …`` and ERROR as
``error: …`` on stderr. Python warnings raised meanwhile (a library's ``UserWarning``) take the
same way, one ``warning: …`` line each that ``--json`` lists too, as they do from a pool worker
(:mod:`biofound_cli.python_warnings`). The handler is removed again when the command ends, since
tests run many commands in one process.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack, contextmanager
from typing import Iterator

from biofound_cli import PACKAGE_LOGGER
from biofound_cli.output import Output
from biofound_cli.python_warnings import WARNINGS_LOGGER, warnings_logged


class OutputHandler(logging.Handler):
    """Forward log records to an :class:`Output`: INFO → ``info``, WARNING → ``warn``, ERROR → ``error``.

    Parameters
    ----------
    output : Output
        The command's output; with ``quiet`` set, records below WARNING are dropped.
    """

    def __init__(self, output: Output) -> None:
        super().__init__(level=logging.WARNING if output.quiet else logging.INFO)
        self.output = output
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Show one record on the output, as the message alone (no level or logger name).

        Parameters
        ----------
        record : logging.LogRecord
            The record; ERROR and above go to ``error``, WARNING to ``warn``, the rest to ``info``.
        """
        try:
            message = self.format(record)
        except Exception:  # a bad format string in a log call must not end the command
            self.handleError(record)
            return
        # Printing errors (a closed pipe, as in `biofound ... | head`) propagate as they did
        # when the core printed directly; run_command turns them into the right exit status.
        if record.levelno >= logging.ERROR:
            self.output.error(message)
        elif record.levelno >= logging.WARNING:
            self.output.warn(message)
        else:
            self.output.info(message)


@contextmanager
def forward_logs(output: Output) -> Iterator[OutputHandler]:
    """Route the records of the ``biofound_cli`` loggers, and Python warnings, to ``output`` until the block ends.

    The logger's level is set to the handler's (INFO, or WARNING with ``--quiet``) and it stops
    propagating to the root logger, so a handler another library installed there cannot print
    the same message twice; all three are restored afterwards. Python warnings are logged on
    :data:`~biofound_cli.python_warnings.WARNINGS_LOGGER` meanwhile, which the handler hears too.

    Parameters
    ----------
    output : Output
        Where the records go.

    Yields
    ------
    OutputHandler
        The installed handler.
    """
    handler = OutputHandler(output)
    with ExitStack() as stack:
        for logger_name in (PACKAGE_LOGGER, WARNINGS_LOGGER):
            stack.enter_context(_heard_by(logging.getLogger(logger_name), handler))
        stack.enter_context(warnings_logged())
        yield handler


@contextmanager
def _heard_by(logger: logging.Logger, handler: logging.Handler) -> Iterator[None]:
    """``handler`` hears ``logger`` at its level until the block ends, and the root logger's handlers do not; then as before."""
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(handler.level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
