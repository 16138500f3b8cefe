"""When a download asks a server again, and how each retry is told: one rule for weights and data sets.

A server or gateway briefly unable to answer (``BUSY_STATUSES``) is asked again ``BUSY_RETRIES``
times, after :func:`busy_wait`; each retry is one line (:func:`retrying`). huggingface_hub's own
retries are kept out of the hub's requests (:func:`asked_again_while_busy`), and the warnings of
the one it keeps, ``http_get`` resuming a dropped transfer, become one line of ours each
(:func:`library_retries_as_ours`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from typing import Callable, Iterator, TypeVar
from urllib.parse import urlsplit

BUSY_STATUSES = (500, 502, 503, 504)
"""HTTP statuses of a server or gateway briefly unable to answer: asked again within the run
(weights and data sets alike). 429, rate-limiting, is not: asking again adds to it."""
BUSY_RETRIES = 2
"""How many times a busy server is asked again before the download fails."""
RETRY_WAIT_SECONDS = 2.0
"""Seconds before the first retry of a busy server, doubled for the next; a shorter ``Retry-After`` is waited instead."""
logger = logging.getLogger(__name__)
_T = TypeVar("_T")


def busy_wait(attempt: int, retry_after: str | None) -> float:
    """Seconds before asking a busy server again after attempt ``attempt`` (0 for the first).

    ``RETRY_WAIT_SECONDS`` doubled at each attempt, or the server's ``Retry-After`` (in seconds)
    when it asks for less.

    Parameters
    ----------
    attempt : int
        The attempt that was answered with a busy status, counted from 0.
    retry_after : str | None
        The answer's ``Retry-After`` header.
    """
    backoff = RETRY_WAIT_SECONDS * 2**attempt
    asked = (retry_after or "").strip()
    return min(float(asked), backoff) if asked.isdigit() else backoff


def retrying(problem: str, attempt: int, retries: int, wait: float) -> str:
    """The one line logged before a retry: ``PROBLEM; retrying (2/3) in 2 s``.

    Parameters
    ----------
    problem : str
        What the failed attempt met, e.g. ``HOST answered HTTP 503 for FILE``.
    attempt : int
        The attempt that failed, counted from 0.
    retries : int
        How many retries there are in all.
    wait : float
        Seconds before the retry.
    """
    return f"{problem}; retrying ({attempt + 2}/{retries + 1}) in {wait:g} s"


def asked_again_while_busy(what: str, host: str, call: Callable[[], _T]) -> _T:
    """``call()``, made again up to ``BUSY_RETRIES`` times while the hub answers one of ``BUSY_STATUSES``.

    huggingface_hub's own retries (``retry_on_errors``) are not used: they also wait out a 429
    (rate-limiting) for up to ~23 s, and log two lines of their own per retry.

    Parameters
    ----------
    what : str
        What the request is for, in the logged line (``REPO FILE``, ``the file list of REPO``).
    host : str
        The host asked, in the logged line.
    call : callable
        The request; it raises huggingface_hub's ``HfHubHTTPError`` for an error status.
    """
    from huggingface_hub.errors import HfHubHTTPError

    attempt = 0
    while True:
        try:
            return call()
        except HfHubHTTPError as error:
            status = getattr(error.response, "status_code", None)
            if status not in BUSY_STATUSES or attempt == BUSY_RETRIES:
                raise
            wait = busy_wait(attempt, error.response.headers.get("Retry-After"))
            logger.warning(retrying(f"{host} answered HTTP {status} for {what}", attempt, BUSY_RETRIES, wait))
            time.sleep(wait)
            attempt += 1


_LIBRARY_RETRY_LOGGERS = ("huggingface_hub.file_download", "huggingface_hub.utils._http")
_RESUMING = re.compile(
    r"Error while downloading from (?P<url>\S+): (?P<error>.*)\n(?P<then>Trying to resume download|Max retries)", re.S
)
_BACKOFF_STATUS = re.compile(r"HTTP Error (?P<status>\d+) thrown while requesting \S+ (?P<url>\S+)")
_BACKOFF_WAIT = re.compile(r"(?:Rate limited\. Waiting|Retrying in) (?P<wait>[\d.]+)s.*\[Retry (?P<n>\d+)/(?P<of>\d+)\]")


class _LibraryRetries(logging.Filter):
    """Replace huggingface_hub's retry warnings during a transfer with one line of ours each.

    ``http_get`` logs ``Error while downloading from URL: ERROR\nTrying to resume download...``
    for a dropped or stalled connection, and its request logs ``HTTP Error 429 thrown while
    requesting GET URL`` then ``Retrying in 1s [Retry 1/5].``: two lines of the library's each,
    printed past our one-line messages. ``Max retries exceeded`` is dropped: the error that
    follows is worded by :func:`_transfer_problem`. Any other record passes unchanged.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name_of_file = name
        self.answer = ""  # "HOST answered HTTP N", from the line before the wait

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        resuming = _RESUMING.match(message)
        if resuming is not None:
            if resuming["then"].startswith("Trying"):
                problem = (resuming["error"].strip().splitlines() or ["no more bytes"])[0]
                host = urlsplit(resuming["url"]).netloc
                logger.warning(f"the transfer of {self.name_of_file} from {host} broke off ({problem}); resuming it")
            return False
        status = _BACKOFF_STATUS.match(message)
        if status is not None:
            self.answer = f"{urlsplit(status['url']).netloc} answered HTTP {status['status']}"
            return False
        wait = _BACKOFF_WAIT.match(message)
        if wait is not None:
            problem = f"{self.answer or 'the hub asked to wait'} for {self.name_of_file}"
            logger.warning(retrying(problem, int(wait["n"]) - 1, int(wait["of"]), float(wait["wait"])))
            return False
        return True


@contextlib.contextmanager
def library_retries_as_ours(name: str) -> Iterator[None]:
    """While the block runs, huggingface_hub's retry warnings for ``name`` are logged as one line of ours each.

    Parameters
    ----------
    name : str
        The file being fetched (``REPO FILE``).
    """
    retries = _LibraryRetries(name)
    loggers = [logging.getLogger(logger_name) for logger_name in _LIBRARY_RETRY_LOGGERS]
    for library_logger in loggers:
        library_logger.addFilter(retries)
    try:
        yield
    finally:
        for library_logger in loggers:
            library_logger.removeFilter(retries)
