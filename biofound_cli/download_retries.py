"""How long a download waits for a server, when it asks again, and how each retry is told: one rule for weights and data sets.

Every attempt waits :func:`download_timeout` seconds (``BIOFOUND_DOWNLOAD_TIMEOUT``, else
``READ_TIMEOUT_SECONDS``) for the server's answer and for each next bytes of the body; every host,
the hub's and the data sets', must accept the connection within :func:`connect_timeout`.

A server or gateway briefly unable to answer (``BUSY_STATUSES``) is asked again ``BUSY_RETRIES``
times, after :func:`busy_wait` (the server's ``Retry-After``, up to ``RETRY_AFTER_LIMIT_SECONDS``);
each retry, a busy server's or a data set's transfer that broke off, is one line (:func:`wait_to_retry`). huggingface_hub's own
retries on a status are kept out of the hub's requests (:func:`asked_again_while_busy`,
:func:`library_retries_as_ours`), and the warnings of the one it keeps, ``http_get`` resuming a
dropped transfer, become one line of ours each.

A resumed transfer continues a partial file only with the bytes that follow it: a 206 answer
that says it starts elsewhere, names another size, or does not say where it starts raises
:class:`MisplacedRange` (:func:`check_resumed`), and the caller fetches the file from the start.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import os
import re
import time
from email.utils import parsedate_to_datetime
from time import sleep
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlsplit

from biofound_cli.errors import UsageError

BUSY_STATUSES = (408, 500, 502, 503, 504)
"""HTTP statuses of a server or gateway briefly unable to answer (or, 408, that gave up waiting for
the request): asked again within the run (weights and data sets alike, every request of theirs).
429, rate-limiting, is not: asking again adds to it."""
BUSY_RETRIES = 2
"""How many times a busy server is asked again before the download fails."""
RETRY_WAIT_SECONDS = 2.0
"""Seconds before the first retry of a busy server, doubled for the next, where it sends no ``Retry-After``."""
RETRY_AFTER_LIMIT_SECONDS = 60.0
"""The longest wait a ``Retry-After`` gets before a retry within the run: a server asking for an hour is asked again
after a minute, and the final error names the wait it asked for."""
RESUMES_WITHOUT_PROGRESS = 5
"""How many times in a row ``http_get`` may resume a transfer that broke off without getting
further than before (huggingface_hub's own count) before the transfer fails."""
READ_TIMEOUT_SECONDS = 60.0
"""Seconds to wait for a host's answer, and then for each next bytes of a body, before an attempt
is given up (weights and data sets alike); ``BIOFOUND_DOWNLOAD_TIMEOUT`` replaces it."""
TIMEOUT_VARIABLE = "BIOFOUND_DOWNLOAD_TIMEOUT"
"""Environment variable: seconds to wait for a host's answer and each next bytes (a slow mirror:
more; a test or an impatient script: less)."""
CONNECT_TIMEOUT_SECONDS = 10.0
"""Seconds to wait for a host, the hub or a data-set host, to accept the connection (at most the read
timeout): one that has not within this is down, blocked or unreachable, and waiting longer does not
help. Unlike the read wait it does not grow with a slow mirror, so no setting of its own; the hub
got the read wait here too only because huggingface_hub passes one number for every wait
(:func:`~biofound_cli.hub_files.client_timeout`)."""
logger = logging.getLogger(__name__)
_T = TypeVar("_T")


def download_timeout() -> float:
    """Seconds to wait for a host's answer and each next bytes: ``BIOFOUND_DOWNLOAD_TIMEOUT``, else 60.

    One setting for every transfer of ``biofound download``: the data-set hosts, and the hub, where
    it replaces huggingface_hub's ``HF_HUB_ETAG_TIMEOUT`` and ``HF_HUB_DOWNLOAD_TIMEOUT`` (10 s each,
    each one wait for connecting and reading alike; huggingface_hub has no setting for the connect wait).

    Raises
    ------
    UsageError
        For a value that is not a positive number of seconds.
    """
    value = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not value:
        return READ_TIMEOUT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise UsageError(f"{TIMEOUT_VARIABLE}={value} is not a number of seconds; set it to e.g. 120, or unset it for 60")
    return seconds


def connect_timeout(read_timeout: float) -> float:
    """Seconds to wait for a host to accept the connection: ``CONNECT_TIMEOUT_SECONDS``, or ``read_timeout`` if shorter.

    Parameters
    ----------
    read_timeout : float
        The attempt's wait for an answer and each next bytes (:func:`download_timeout`).
    """
    return min(CONNECT_TIMEOUT_SECONDS, read_timeout)


def busy_wait(attempt: int, retry_after: str | None) -> float:
    """Seconds before asking a busy server again after attempt ``attempt`` (0 for the first).

    The wait the server's ``Retry-After`` asks for (seconds or an HTTP date, RFC 9110, 10.2.3; a
    date is GMT, named so or not, and one gone by means now), at most ``RETRY_AFTER_LIMIT_SECONDS``;
    without one (or one that is neither), ``RETRY_WAIT_SECONDS`` doubled at each attempt.

    Parameters
    ----------
    attempt : int
        The attempt that was answered with a busy status, counted from 0.
    retry_after : str | None
        The answer's ``Retry-After`` header.
    """
    asked = (retry_after or "").strip()
    if asked.isdigit():
        seconds = float(asked)
    else:
        try:
            when = parsedate_to_datetime(asked)
        except (TypeError, ValueError, IndexError):  # no header, or not a date
            return RETRY_WAIT_SECONDS * 2**attempt
        # An HTTP date is GMT (RFC 9110, 5.6.7), also in the asctime form, which names no zone:
        # read without one, it was taken as local time, hours off east or west of Greenwich.
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = max(0.0, when.timestamp() - time.time())  # a date gone by: at once
    return min(seconds, RETRY_AFTER_LIMIT_SECONDS)


def wait_to_retry(problem: str, attempt: int, retries: int, retry_after: str | None, *, busy: bool = True) -> None:
    """Log a retry in one line (``PROBLEM; retrying (2/3) in 2 s``) and wait :func:`busy_wait` seconds.

    The one wording of every retry within a run, a busy server's and a dropped connection's.

    Parameters
    ----------
    problem : str
        What the failed attempt met, e.g. ``HOST answered HTTP 503 for FILE``.
    attempt : int
        The attempt that failed, counted from 0.
    retries : int
        How many retries there are in all.
    retry_after : str | None
        The answer's ``Retry-After`` header.
    busy : bool
        False for a transfer that broke off: it is resumed at once (``retrying (2/3)``, no wait), as
        the attempt may already have waited the whole timeout.
    """
    wait = busy_wait(attempt, retry_after) if busy else 0.0
    logger.warning(f"{problem}; retrying ({attempt + 2}/{retries + 1})" + (f" in {wait:g} s" if busy else ""))
    sleep(wait)


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
            retry_after = error.response.headers.get("Retry-After")
            wait_to_retry(f"{host} answered HTTP {status} for {what}", attempt, BUSY_RETRIES, retry_after)
            attempt += 1


class NoProgress(Exception):
    """A transfer resumed ``RESUMES_WITHOUT_PROGRESS`` times in a row without getting further."""


class MisplacedRange(Exception):
    """An answer to a Range request whose bytes cannot be appended to the partial file; the message is the one line to log."""


_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


def check_resumed(status: int, headers: Any, start: int, size: int | None, *, host: str, name: str) -> None:
    """Raise :class:`MisplacedRange` for a success answer to ``Range: bytes=START-`` that does not continue byte ``start``.

    Only a 206 carries part of a file, and only one whose ``Content-Range`` starts at ``start``
    continues the partial file. HTTP lets a server answer a Range request with other bytes than
    asked for, as long as its ``Content-Range`` says which, and a proxy may send a 206 without
    one, or the whole file with another success status (a 203, "non-authoritative"). Appended at
    ``start``, such bytes made a file of the wrong content, which only a recorded sha256 catches
    (a data set has none yet); the callers emptied the partial file for a 200 alone. A total
    other than the ``size`` known for the file means the bytes kept belong to another version of
    it. A 200 passes: both callers start the file again from its first byte in the same answer.
    Nothing is checked when nothing was kept.

    Parameters
    ----------
    status : int
        The answer's HTTP status; only a success (2xx) other than 200 is checked.
    headers : mapping
        The answer's headers (case-insensitive, as requests' and httpx's are).
    start : int
        The byte asked for: how many bytes the partial file holds.
    size : int | None
        The file's size, where known before the answer (the hub's listing, a recorded size).
    host : str
        Who answered, for the message.
    name : str
        The file, for the message.
    """
    if not start or not 200 < status < 300:
        return
    if status != 206:
        raise MisplacedRange(
            f"{host} answered the request for the rest of {name} with HTTP {status} and the whole file (not 206 and "
            f"the bytes from {start}); dropping the {start} bytes kept and fetching it from the start"
        )
    named = (headers.get("Content-Range") or "").strip()
    found = _CONTENT_RANGE.fullmatch(named)
    if found is not None and int(found[1]) == start and (size is None or found[2] in ("*", str(size))):
        return
    said = f"Content-Range {named!r}" if named else "no Content-Range"
    wanted = f"bytes {start}-" + ("" if size is None else f"{size - 1}/{size}")
    raise MisplacedRange(
        f"{host} answered the request for the rest of {name} with HTTP 206 and {said} (not {wanted}); "
        f"dropping the {start} bytes kept and fetching it from the start"
    )


_RESUMING = re.compile(
    r"Error while downloading from (?P<url>\S+): (?P<error>.*)\n(?P<then>Trying to resume download|Max retries)", re.S
)


def _resume_lines(name: str, record: logging.LogRecord) -> bool:
    """A log filter (with ``name`` bound): ``http_get``'s two-line warning about a broken-off transfer as one line of ours.

    ``Error while downloading from URL: ERROR\nTrying to resume download...`` becomes ``the
    transfer of FILE from HOST broke off (ERROR); resuming it``. ``Max retries exceeded`` is
    dropped: the error that follows is worded by the caller. Any other record passes unchanged.
    """
    resuming = _RESUMING.match(record.getMessage())
    if resuming is None:
        return True
    if resuming["then"].startswith("Trying"):
        problem = (resuming["error"].strip().splitlines() or ["no more bytes"])[0]
        host = urlsplit(resuming["url"]).netloc
        logger.warning(f"the transfer of {name} from {host} broke off ({problem}); resuming it")
    return False


@contextlib.contextmanager
def library_retries_as_ours(name: str, size: int | None = None) -> Iterator[None]:
    """While the block runs, huggingface_hub's transfer of ``name`` retries only by our rule, in lines of ours.

    ``http_get`` resumes a transfer that broke off as long as each attempt brings new bytes, even
    when the server ignores the Range request and each attempt starts again from byte 0: here
    ``RESUMES_WITHOUT_PROGRESS`` such resumes in a row raise :class:`NoProgress`. It also asks again
    on 408 and 429 itself, five times, each time waiting as long as the
    answer's ``Retry-After`` says (an hour, if it says an hour), past ``BUSY_RETRIES`` and
    :func:`busy_wait`; here each of its requests is made once, and an error status goes to the
    caller (:func:`asked_again_while_busy`, which does not ask a 429 again). Its resume of a dropped
    connection stays, each one line of ours (:func:`_resume_lines`). Like a data set's transfer,
    it appends a 206 answer at the byte it asked for, whatever the answer says; here such an
    answer raises :class:`MisplacedRange` (:func:`check_resumed`), before any of it is written.

    Parameters
    ----------
    name : str
        The file being fetched (``REPO FILE``).
    size : int | None
        Its size as the listing says, which a resumed answer's ``Content-Range`` must name.
    """
    from huggingface_hub import file_download

    asked_once = file_download.http_stream_backoff
    furthest, stuck = -1, 0

    @contextlib.contextmanager
    def ask_once(*args: Any, **kwargs: Any) -> Iterator[Any]:
        nonlocal furthest, stuck
        asked = re.match(r"bytes=(\d+)-", (kwargs.get("headers") or {}).get("Range", ""))
        start = int(asked[1]) if asked else 0
        stuck = stuck + 1 if start <= furthest else 0
        furthest = max(furthest, start)
        if stuck > RESUMES_WITHOUT_PROGRESS:
            raise NoProgress(f"the transfer of {name} broke off {stuck} times in a row at byte {furthest} or before")
        with asked_once(*args, **{**kwargs, "retry_on_status_codes": ()}) as response:
            check_resumed(response.status_code, response.headers, start, size, host=urlsplit(str(response.url)).netloc, name=name)
            yield response

    library_logger = logging.getLogger(file_download.__name__)
    # logging takes any callable as a filter: the name is bound, no Filter subclass is needed.
    lines = functools.partial(_resume_lines, name)
    file_download.http_stream_backoff = ask_once  # type: ignore[assignment]  # same signature
    library_logger.addFilter(lines)
    try:
        yield
    finally:
        library_logger.removeFilter(lines)
        file_download.http_stream_backoff = asked_once
