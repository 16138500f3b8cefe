"""Python warnings as one line on the ``py.warnings`` logger, in the main process and in pool workers alike.

Python prints a warning as two lines on stderr (``/path/file.py:123: UserWarning: text`` and
the source line), past the command's own ``warning:`` lines and past ``--json``'s ``warnings``
list. :func:`log_warning` logs it instead, as one record on :data:`WARNINGS_LOGGER` (the logger
:func:`logging.captureWarnings` uses too), whose records the command shows as it shows its own:
a pool worker sends them to the main process (``store/worker_pool.py``), and the command line
routes them to its output (``cli/log_handler.py``).
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from typing import Iterator, TextIO

WARNINGS_LOGGER = "py.warnings"
"""The logger :func:`log_warning` logs on."""


def log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A ``warnings.showwarning``: one record on :data:`WARNINGS_LOGGER` instead of two lines on stderr.

    The record reads ``text (UserWarning in file.py:123)``, on one line however many the text has.

    Parameters
    ----------
    message : Warning | str
        The warning.
    category : type of Warning
        Its class, named in the record.
    filename : str
        The file that raised it; its name alone is given.
    lineno : int
        The line that raised it.
    file : TextIO | None
        Where Python would have printed it (unused).
    line : str | None
        The source line Python would have printed (unused).
    """
    text = " ".join(str(message).split())
    logging.getLogger(WARNINGS_LOGGER).warning(f"{text} ({category.__name__} in {os.path.basename(filename)}:{lineno})")


@contextmanager
def warnings_logged() -> Iterator[None]:
    """Python warnings raised in the block are logged by :func:`log_warning`, each once; the previous hook afterwards.

    Python shows a warning once per place that raises it, but forgets what it showed whenever a
    ``warnings.catch_warnings`` block ends (the metrics use one at every evaluation), so torch's
    notice about loader workers came once per epoch (and from two places in the loader); a
    warning of the same text and class is logged once per command here.
    """
    shown = warnings.showwarning
    seen: set[tuple[str, type[Warning]]] = set()

    def log_once(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        key = (str(message), category)
        if key not in seen:
            seen.add(key)
            log_warning(message, category, filename, lineno)

    warnings.showwarning = log_once
    try:
        yield
    finally:
        warnings.showwarning = shown
