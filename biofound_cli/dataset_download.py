"""Open data sets over HTTP (resumable, verified, extracted) and the TUH corpora over rsync.

Every download goes to ``<name>.part`` beside its final name; an interrupted transfer keeps the
part file and the next run continues it with an HTTP Range request, conditional (``If-Range``)
on the file's version being the one the part file holds. Only a file whose size,
sha256 (where recorded) and format (a zip or tar archive where one is expected; an HTML page, a
server's error or login page, is named as such) check out is renamed to its final name, so a
corrupt file never sits there. Archives are then unpacked, refusing any member that would land
outside the destination folder.

The HTTP GET itself (requests, streaming, chunked writes, progress) is :class:`pooch.HTTPDownloader`
and the sha256 is :func:`pooch.file_hash`. Written here, each with the reason in its docstring:
the resumable ``.part`` file and Range request (:func:`_transfer`; pooch's :func:`pooch.retrieve`
deletes a partial download) and the archive extraction (:func:`extract`; pooch's ``Unzip`` /
``Untar`` do not refuse members outside the folder).

The URL table records only published facts. Where no size or sha256 is recorded the size
announced by the server and the archive's structure are checked instead, and the command says so;
a body sent with no length is confirmed whole by asking the host for the byte after it
(:func:`_end_confirmed`), and one that nothing can check is left as its ``.part`` file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import http.client
import json
import logging
import lzma
import os
import shutil
import subprocess
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import pooch

from biofound_cli import __version__
from biofound_cli.atomic import read_json_object
from biofound_cli.download_retries import (
    BUSY_STATUSES,
    TIMEOUT_VARIABLE,
    MisplacedRange,
    check_resumed,
    connect_timeout,
    download_timeout,
    wait_to_retry,
)
from biofound_cli.errors import DownloadError, UsageError, asked_wait, first_line, rate_limited, unknown_name
from biofound_cli.hub_files import drop_partial, is_html_page, note_stopped, one_writer, partial_named_on_stop, version_record
from biofound_cli.progress import NO_PROGRESS, ProgressReporter, open_task
from biofound_cli.server_address import server_address
from biofound_cli.store.output_folder import prepare_output_folder

CHUNK_BYTES = 8 << 10
"""Bytes per read and write of a download. requests passes a chunk on only once it is full, so a
dropped connection loses up to this many received bytes from the part file (the resume fetches
them again); 8 KiB keeps that loss small and still streams hundreds of MB/s."""
logger = logging.getLogger(__name__)
BASE_URL_VARIABLE = "BIOFOUND_DATA_BASE_URL"
"""Environment variable that replaces every data-set URL's scheme and host (a local mirror)."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: where it is and what is known about it.

    ``size`` and ``sha256`` are ``None`` where they are not recorded; the download then checks the
    size the server announces. ``archive`` (``"zip"`` or ``"tar"``) is the format the file must
    have: anything else (an HTML page, an archive cut short) is refused before it gets its name.
    """

    url: str
    filename: str
    size: int | None = None
    sha256: str | None = None
    archive: str | None = None


@dataclasses.dataclass(frozen=True)
class OpenDataset:
    """An openly downloadable data set."""

    name: str
    title: str
    files: tuple[RemoteFile, ...]
    terms: str
    citation: str
    page: str


OPEN_DATASETS: dict[str, OpenDataset] = {
    dataset.name: dataset
    for dataset in (
        OpenDataset(
            name="siena",
            title="Siena Scalp EEG Database 1.0.0 (PhysioNet)",
            files=(
                RemoteFile(
                    "https://physionet.org/static/published-projects/siena-scalp-eeg/siena-scalp-eeg-database-1.0.0.zip",
                    "siena-scalp-eeg-database-1.0.0.zip",
                    archive="zip",
                ),
            ),
            terms="Creative Commons Attribution 4.0 International, as stated on the PhysioNet project page",
            citation="Detti P. (2020), Siena Scalp EEG Database (version 1.0.0), PhysioNet; and the PhysioNet citation",
            page="https://physionet.org/content/siena-scalp-eeg/1.0.0/",
        ),
        OpenDataset(
            name="uci-emg",
            title="EMG data for gestures (UCI Machine Learning Repository #481)",
            files=(
                RemoteFile(
                    "https://archive.ics.uci.edu/static/public/481/emg+data+for+gestures.zip",
                    "emg+data+for+gestures.zip",
                    archive="zip",
                ),
            ),
            terms="Creative Commons Attribution 4.0 International, as stated on the UCI data set page",
            citation="Lobov S., Krilova N., Kastalskiy I., Kazantsev V., Makarov V. (2018), UCI ML Repository #481",
            page="https://archive.ics.uci.edu/dataset/481/emg+data+for+gestures",
        ),
        OpenDataset(
            name="epn612",
            title="EMG-EPN-612 (Zenodo record 4421500)",
            files=(
                RemoteFile(
                    "https://zenodo.org/records/4421500/files/EMG-EPN612%20Dataset.zip?download=1",
                    "EMG-EPN612 Dataset.zip",
                    archive="zip",
                ),
            ),
            terms="the licence shown on the Zenodo record; read it there before use",
            citation="Benalcázar M. et al., EMG-EPN-612 dataset, Zenodo, doi:10.5281/zenodo.4421500",
            page="https://zenodo.org/records/4421500",
        ),
        OpenDataset(
            name="db5",
            title="NinaPro DB5, pre-processed files of 10 subjects",
            files=tuple(
                RemoteFile(f"https://ninapro.hevs.ch/files/DB5_Preproc/s{subject}.zip", f"s{subject}.zip", archive="zip")
                for subject in range(1, 11)
            ),
            terms="the NinaPro terms of use (research use, cite the data set paper); read them on the NinaPro site",
            citation="Pizzolato S. et al. (2017), PLoS ONE 12(10): e0186132",
            page="https://ninapro.hevs.ch/instructions/DB5.html",
        ),
    )
}


# -- one file, resumable -----------------------------------------------------------------------
def _effective_url(url: str) -> str:
    base = server_address(BASE_URL_VARIABLE, "a data-set mirror", "for each data set's own host")
    if base is None:
        return url
    parts = urlsplit(url)
    return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


RETRIES = 2
"""Extra attempts at a file after a dropped connection or a busy answer, each resuming where the last stopped."""


def fetch_file(
    remote: RemoteFile,
    folder: str | os.PathLike[str],
    *,
    reporter: ProgressReporter = NO_PROGRESS,
    retries: int = RETRIES,
    timeout: float | None = None,
) -> Path:
    """Download ``remote`` into ``folder``, resuming a ``.part`` file left by an earlier run.

    Parameters
    ----------
    remote : RemoteFile
        What to fetch; its ``sha256`` and ``size`` are checked where known.
    folder : str | os.PathLike
        Destination folder; the file keeps ``remote.filename``.
    reporter : ProgressReporter
        Shows the bytes received; by default nothing is shown.
    retries : int
        Extra attempts, each resuming where the last stopped, after a dropped connection.
    timeout : float | None
        Seconds to wait for the server's answer and each next bytes before giving up on an attempt
        (connecting: :func:`~biofound_cli.download_retries.connect_timeout`); ``None`` reads it with
        :func:`~biofound_cli.download_retries.download_timeout` (``BIOFOUND_DOWNLOAD_TIMEOUT``, else 60).

    Returns
    -------
    pathlib.Path
        The verified file under its final name.

    Raises
    ------
    DownloadError
        A host that cannot be reached or a dropped connection (a non-empty part file is kept), an
        HTTP error status, an unusable URL, a full disk, or a size or checksum mismatch (the part
        file is removed). Each message is one sentence naming the file or host and what to do.
    """
    return _fetch(remote, folder, reporter, retries, timeout)[0]


def _fetch(
    remote: RemoteFile, folder: str | os.PathLike[str], reporter: ProgressReporter, retries: int, timeout: float | None
) -> tuple[Path, str, str | None]:
    """:func:`fetch_file`, and for the summary how the file was had (``ALREADY_THERE``, ``FETCHED`` or
    resumed, :func:`_download_part`) and how its size was known where none is recorded (:func:`_transfer`;
    ``None`` for a file already there, whose size nothing announced)."""
    read_timeout = download_timeout() if timeout is None else timeout
    folder = Path(folder)
    final = folder / remote.filename
    # A final file that fails a check (e.g. an HTML page an older version kept) is fetched again.
    if final.is_file() and _problem(final, remote, remote.size) is None:
        return final, ALREADY_THERE, None
    folder.mkdir(parents=True, exist_ok=True)
    # One writer per part file: a second run at once (another terminal, a job array) would append
    # to it too. It waits here, then finds the file whole. The lock file stays (see one_writer).
    part = final.with_name(final.name + ".part")
    # A stop names the part file kept and its bytes, during a retry's wait and the final check too.
    with one_writer(remote.filename, final.with_name(final.name + ".lock")), partial_named_on_stop(part):
        if final.is_file() and _problem(final, remote, remote.size) is None:
            return final, ALREADY_THERE, None
        return _download_part(remote, final, part, reporter, retries, read_timeout)


def _download_part(
    remote: RemoteFile, final: Path, part: Path, reporter: ProgressReporter, retries: int, timeout: float
) -> tuple[Path, str, str]:
    """Fill ``part`` (resuming it, retrying a dropped connection), check it and rename it to ``final``.

    Returns ``final``, how it was had (``FETCHED``, or ``resumed from byte N`` where the last
    transfer continued bytes kept, by an earlier run or an earlier attempt) and how its size was
    known (:func:`_transfer`).
    """
    for attempt in range(retries + 1):
        try:
            total, known, start = _transfer(remote, part, reporter, timeout)
            break
        except _Busy as busy:
            if attempt == retries:
                raise busy.error from None
            wait_to_retry(busy.error.message.split(";")[0], attempt, retries, busy.retry_after)
        except _Dropped as dropped:
            if attempt < retries:
                # Each attempt may wait the whole timeout again: say so, or the command looks hung.
                problem = f"the connection to {dropped.host} was lost during {remote.filename} ({dropped})"
                wait_to_retry(problem, attempt, retries, None, busy=False)
            else:
                kept = part.stat().st_size if part.exists() else 0
                if not kept:
                    drop_partial(part)
                    raise DownloadError(
                        f"the connection to {dropped.host} was lost before any of {remote.filename} was "
                        f"saved ({dropped}); check the network connection and re-run the same command"
                    ) from None
                if dropped.restarted:  # "re-run to resume" would send the user round the same loop
                    raise DownloadError(
                        f"the connection to {dropped.host} was lost after {kept} bytes of {remote.filename} ({dropped}), "
                        "and the host cannot resume a transfer (it answered the request for the rest with the whole file), "
                        f"so a re-run starts again from byte 0; re-run from a steadier network connection, or fetch "
                        f"{_effective_url(remote.url)} with another tool and put it at {final}"
                    ) from None
                raise DownloadError(
                    f"the connection to {dropped.host} was lost after {kept} bytes of "
                    f"{remote.filename} ({dropped}); {part} is kept, so re-run the same command to resume"
                ) from None
    if total is None and remote.size is None and remote.sha256 is None and remote.archive != "zip":
        # Nothing tells a cut body from the file (a zip's end record is its last bytes; a tar has none).
        raise _FileFailed(
            f"{_host(remote.url)} sent {remote.filename} without announcing its length and would not say whether more "
            f"follows the {part.stat().st_size} bytes received, and no sha256 is recorded for it, so a connection "
            f"closed early cannot be told from its end; {part} is kept, not named {final.name}: compare its size "
            "with the one the data set's page gives and rename it if they match, or re-run to fetch it again"
        )
    _check_complete(part, remote, total)
    os.replace(part, final)
    version_record(part).unlink(missing_ok=True)
    return final, f"resumed from byte {start}" if start else FETCHED, known


class _Dropped(Exception):
    """A transfer that stopped part way; the part file holds what arrived. ``host``: the one that was sending (:func:`_where`).

    ``restarted``: the host answered a request for the rest of the file with all of it (it ignores
    Range requests), so the bytes kept cannot be continued: a re-run starts from byte 0 again.
    """

    def __init__(self, reason: str, host: str, restarted: bool = False) -> None:
        super().__init__(reason)
        self.host = host
        self.restarted = restarted


class _FileFailed(DownloadError):
    """One file that cannot be had as it is: refused, missing (an HTTP 4xx other than 408 and 429) or failing a check.

    Its host answers, so :func:`download_dataset` goes on with the set's other files: one file a
    server lost or locked kept every file after it from being fetched, on every re-run.
    """


class _Busy(Exception):
    """A server error status (``BUSY_STATUSES``) worth another attempt; ``error`` is the message if none is left."""

    def __init__(self, error: DownloadError, retry_after: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


def _host(url: str) -> str:
    return urlsplit(_effective_url(url)).netloc


def _where(remote: RemoteFile, final: str | None) -> str:
    """The host an answer (or a failed connection) came from, and the one that redirected there if it is another.

    Data-set hosts redirect to storage elsewhere (Zenodo, PhysioNet's mirrors): a connection lost
    there, a 503 from there, was blamed on the host the user's URL names, which answered fine.
    """
    asked = _host(remote.url)
    served = urlsplit(final).netloc if final else ""
    return asked if served in ("", asked) else f"{served} (where {asked} redirected {remote.filename})"


ANNOUNCED = "size announced by the server"
"""How the size of a file with none recorded was known when the server said it (Content-Length, Content-Range)."""
FETCHED = "fetched"
"""How a file was had, in the summary: every byte by this run's transfer (else ``resumed from byte N``)."""
ALREADY_THERE = "already there"
"""How a file was had, in the summary: under its final name from an earlier run, checked again, nothing asked of the host."""


def _transfer(remote: RemoteFile, part: Path, reporter: ProgressReporter, timeout: float) -> tuple[int | None, str, int]:
    """Append the missing bytes to ``part`` with one GET; return the full size the server announced or confirmed, if any.

    And how that size was known, in words for the summary: ``ANNOUNCED``, or, for a body sent
    without a length, the bytes received and what ended them (the chunked encoding's last chunk,
    the host answering 416 for the byte after them, or nothing that could be checked); and the
    byte the kept bytes of ``part`` were continued from (0: the file came from its first byte).

    The GET (requests, streaming, chunked writes, progress) is :class:`pooch.HTTPDownloader`. The
    resuming around it is written here because pooch 1.9 cannot resume (read in its source):
    :func:`pooch.retrieve` goes through ``pooch.core.stream_download``, which streams into a fresh
    ``tempfile.NamedTemporaryFile`` that ``pooch.utils.temporary_file`` deletes on any exception,
    and ``Pooch.fetch(retry_if_failed=...)`` restarts from byte 0; ``HTTPDownloader`` opens a path
    with mode ``"w+b"`` and sends no Range header. An interrupted 5 GB archive would be fetched
    again from the start. ``test_resume_after_a_dropped_connection`` (the part file survives a
    failed run and the next run asks for ``bytes=8192-``) and ``test_retry_resumes_within_one_call``
    show the behaviour that needs this. So the downloader gets the ``.part`` file opened for
    appending, a ``Range: bytes=N-`` header, and a requests response hook (``hooks=``, passed on
    to :func:`requests.get`) that reads the status and size before the body arrives: a server that
    ignores the Range and answers 200 makes it empty the part file first
    (``test_server_ignoring_range_starts_again``), and 416 means the part file is already whole
    (``test_part_file_already_complete``), unless it names a smaller size: the part file then holds
    bytes of another version and is fetched again (``test_a_part_file_longer_than_the_file_is_fetched_again``).
    The ``ETag`` / ``Last-Modified`` of the answer that
    started the part file are kept beside it (``<file>.part.version``) and sent back as
    ``If-Range``, so a file replaced on the server since comes whole (200) instead of its tail
    being appended to the old head
    (``test_a_resume_asks_if_range_and_starts_again_when_the_file_changed``).
    """
    import requests

    url = _effective_url(remote.url)
    offset = _resume_offset(remote, part)
    headers = {"User-Agent": f"biofound/{__version__}", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        version = _remembered_version(part)
        if version is not None:  # a file changed on the server since is sent whole (200), not spliced
            headers["If-Range"] = version
    progress = _Progress(reporter, remote.filename)
    # Once a success (2xx) has arrived: the full size, who sent it, and whether only a closed connection ends its body.
    answered: list[tuple[int | None, str, bool, int]] = []
    try:
        with part.open("ab") as handle:
            downloader = pooch.HTTPDownloader(
                progressbar=progress,
                chunk_size=CHUNK_BYTES,
                timeout=(connect_timeout(timeout), timeout),
                headers=headers,
                hooks={"response": _response_hook(remote, handle, part, offset, progress, answered)},
            )
            downloader(url, handle, None)
    except MisplacedRange as misplaced:  # the part file's bytes do not line up with the answer's: start again
        logger.info(str(misplaced))
        drop_partial(part)
        return _transfer(remote, part, reporter, timeout)
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else 0
        if status == 416 and offset:
            full = _range_total(error.response.headers if error.response is not None else {})
            if full is None or full == offset:  # the part file already holds every byte: check it as it is
                known = ANNOUNCED if full else _unannounced(offset, True)
                return (remote.size if remote.size is not None else offset), known, offset
            # More bytes than the file has (an earlier, longer version of it): they are not this file.
            logger.info(f"{remote.filename} now has {full} bytes, fewer than the {offset} an earlier run kept; fetching it again")
            drop_partial(part)
            return _transfer(remote, part, reporter, timeout)
        _discard_if_empty(part)
        retry_after = error.response.headers.get("Retry-After") if error.response is not None else None
        final = error.response.url if error.response is not None else None  # where a redirect sent the request
        if status in BUSY_STATUSES:
            raise _Busy(_http_error(status, remote, final, retry_after, part), retry_after) from None
        raise _http_error(status, remote, final, retry_after, part) from None
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as error:
        if answered:
            reason = f"no data for {timeout:g} s" if _timed_out(error) else _reason(error)
            raise _Dropped(reason, answered[-1][1], restarted=bool(offset) and not answered[-1][3]) from None
        _discard_if_empty(part)
        asked = getattr(error, "request", None)  # the redirected request, where a redirect came first
        raise _unanswered(error, remote, part, timeout, getattr(asked, "url", None)) from None
    except requests.TooManyRedirects as error:
        _discard_if_empty(part)
        raise DownloadError(
            f"{_host(url)} redirected {remote.filename} in a loop ({_reason(error)}; a server fault: try again later)"
        ) from None
    except requests.RequestException as error:  # InvalidURL, InvalidSchema, ...
        _discard_if_empty(part)
        where = f" (set by {BASE_URL_VARIABLE})" if os.environ.get(BASE_URL_VARIABLE) else ""
        raise DownloadError(
            f"cannot download {remote.filename} from {url}{where} ({_reason(error)}); check the address"
        ) from None
    except OSError as error:  # writing the part file (requests' own errors are caught above)
        if error.errno == errno.ENOSPC:
            raise DownloadError(
                f"the disk holding {part.parent} is full; free some space and re-run to resume {remote.filename}"
            ) from None
        raise DownloadError(f"could not write {part} ({error.strerror or error}); check the folder") from None
    finally:
        progress.close()
    total, sender, close_ended, start = answered[-1] if answered else (None, _host(url), False, 0)
    if total is not None and part.stat().st_size < total:
        raise _Dropped(f"{part.stat().st_size} of {total} bytes", sender, restarted=bool(offset) and not start)
    if total is not None:
        return total, ANNOUNCED, start
    size = part.stat().st_size
    if close_ended:  # a connection closed early looked like the end of the file: ask the host
        confirmed = _end_confirmed(url, headers, part, timeout, sender)
        return confirmed, _unannounced(size, confirmed is not None), start
    return size, f"no size announced; {size} bytes received up to the chunked body's last chunk", start  # urllib3 checked it


def _unannounced(size: int, confirmed: bool) -> str:
    """How the size of a body sent without a length is known: ``size`` bytes received, confirmed whole by a 416 or not."""
    return f"no size announced; {size} bytes received" + (", confirmed whole by the host" if confirmed else "")


def _end_confirmed(url: str, headers: dict[str, str], part: Path, timeout: float, sender: str) -> int | None:
    """The size of ``part`` where the host says no byte follows it; ``None`` where it does not say.

    A body sent without a Content-Length and not chunked ends when the host closes the
    connection, so a connection closed early (a reset, a proxy's timeout) looked like the end of
    the file, and the file was named complete where no sha256 is recorded. One Range request for
    the byte after it tells them apart: 416 (none follows) confirms the size; 206 means the body
    was cut, raised as :class:`_Dropped` so that the retry loop resumes it. Any other answer (a
    host that ignores Range requests, a failure) leaves it unknown.
    """
    import requests

    size = part.stat().st_size
    asked = {**{key: value for key, value in headers.items() if key != "If-Range"}, "Range": f"bytes={size}-{size}"}
    try:
        with requests.get(url, headers=asked, stream=True, timeout=(connect_timeout(timeout), timeout)) as response:
            status, full = response.status_code, _range_total(response.headers)
    except requests.RequestException:
        return None
    if status == 416 and full in (None, size):
        return size
    if status == 206:
        raise _Dropped("it announced no length, and more bytes follow", sender)
    return None


def _timed_out(error: BaseException) -> bool:
    """Whether a requests error is a timeout: a ``Timeout``, or the ``ReadTimeoutError`` it wraps while streaming a body."""
    import requests
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    return isinstance(error, requests.Timeout) or any(isinstance(arg, Urllib3Timeout) for arg in error.args)


def _unanswered(error: BaseException, remote: RemoteFile, part: Path, timeout: float, final: str | None) -> DownloadError:
    """A connection that failed before the server answered, in one line naming the host (:func:`_where`), file and timeout."""
    import requests

    host = _where(remote, final)
    kept = f"; {part} is kept for resuming" if part.exists() else ""
    if isinstance(error, requests.ConnectTimeout):
        return DownloadError(
            f"cannot reach {host} for {remote.filename}: no connection within {connect_timeout(timeout):g} s; "
            f"check the network connection and re-run{kept}"
        )
    if _timed_out(error):
        return DownloadError(
            f"{host} accepted the connection but sent no answer for {remote.filename} within {timeout:g} s; the host "
            f"may be overloaded: re-run later, or wait longer with {TIMEOUT_VARIABLE}=SECONDS{kept}"
        )
    return DownloadError(
        f"cannot reach {host} for {remote.filename} ({_reason(error)}); check the network connection and re-run{kept}"
    )


def _resume_offset(remote: RemoteFile, part: Path) -> int:
    """The bytes already in ``part``; a part file longer than the announced size is removed (0)."""
    offset = part.stat().st_size if part.exists() else 0
    if remote.size is not None and offset > remote.size:
        drop_partial(part)
        offset = 0
    return offset


def _remember_version(part: Path, headers: Any) -> None:
    """Keep the ``ETag`` and ``Last-Modified`` of the answer whose bytes go into ``part`` from byte 0."""
    version = {key: headers[key] for key in ("ETag", "Last-Modified") if headers.get(key)}
    if version:
        version_record(part).write_text(json.dumps(version) + "\n")
    else:
        version_record(part).unlink(missing_ok=True)


def _remembered_version(part: Path) -> str | None:
    """The ``If-Range`` value for resuming ``part``: its strong ETag, else its Last-Modified date.

    ``None`` (resume unconditionally, as before) when nothing was remembered: a part file of an
    older version, or a server that names no version. A weak ETag (``W/"..."``) may not be sent
    in ``If-Range`` (RFC 9110, 13.1.5).
    """
    version = read_json_object(version_record(part)) or {}
    etag = version.get("ETag")
    if etag and not etag.startswith("W/"):
        return str(etag)
    modified = version.get("Last-Modified")
    return str(modified) if modified else None


def _response_hook(
    remote: RemoteFile,
    handle: Any,
    part: Path,
    offset: int,
    progress: _Progress,
    answered: list[tuple[int | None, str, bool, int]],
) -> Callable[..., Any]:
    """A requests response hook that reads the status and size before the body is written to ``handle``.

    The body is written as sent: requests would undo a ``Content-Encoding`` (a ``.tar.gz`` stored
    on S3 with ``Content-Encoding: gzip`` arrived as the ``.tar``, longer than its Content-Length,
    and failed the size check on every run), so urllib3 is not told of it before the body is read.
    A 200 for a resumed request (a server that ignores the Range header, or a file that changed
    since, which ``If-Range`` makes it send whole) empties the part file first, and a 200 has
    its version remembered beside ``part``; the full size it announces, with the host that
    sends it (:func:`_where`), and whether only the connection's close ends the body (no
    Content-Length, not chunked: :func:`_end_confirmed`), is appended to ``answered`` and starts
    ``progress``. Any other
    success for a resumed request (a proxy's 203 with the whole file), or a 206 whose bytes do
    not start at ``offset`` (the part file's size) or that names another size than ``remote``'s
    recorded one, raises :class:`~biofound_cli.download_retries.MisplacedRange`
    (:func:`~biofound_cli.download_retries.check_resumed`) before any of it is written.
    """

    def on_response(response: Any, *args: Any, **kwargs: Any) -> Any:
        if not 200 <= response.status_code < 300:
            return response  # a redirect, or an error that raise_for_status reports
        resumed = response.status_code == 206
        try:
            host = urlsplit(response.url).netloc
            check_resumed(response.status_code, response.headers, offset, remote.size, host=host, name=remote.filename)
        except MisplacedRange:
            response.close()
            raise
        # The bytes as stored: Content-Length, Range and a recorded sha256 count those, not a decoded body.
        response.raw.headers.pop("Content-Encoding", None)
        if offset and not resumed:
            handle.truncate(0)  # start again from byte 0
        if not resumed:
            _remember_version(part, response.headers)
        total = _announced_total(response.status_code, response.headers, offset if resumed else 0)
        close_ended = total is None and "chunked" not in response.headers.get("Transfer-Encoding", "").lower()
        answered.append((total, _where(remote, response.url), close_ended, offset if resumed else 0))
        progress.start(total, offset if resumed else 0, handle)
        return response

    return on_response


def _discard_if_empty(part: Path) -> None:
    """Remove a part file that an answer without a body left empty (it was opened for appending)."""
    if part.exists() and part.stat().st_size == 0:
        drop_partial(part)


def _reason(error: BaseException) -> str:
    """The innermost cause of a requests error in a few words ("Connection refused", "timed out").

    requests wraps urllib3, which wraps the socket error; the chain is followed through
    ``reason``, exception arguments, ``__cause__`` and ``__context__`` (unless raised ``from None``:
    urllib3 raises a chunked body's end that never came so, over the ``ValueError`` of parsing an
    empty chunk length, whose words the line gave). A body that ended before its ``Content-Length``
    (urllib3's ``IncompleteRead``), within a chunk (http.client's) or before the last chunk is said
    in words.
    """
    from urllib3.exceptions import IncompleteRead, ProtocolError

    chain = [error]
    while True:
        current = chain[-1]
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in current.args if isinstance(arg, BaseException)), None)
        inner = inner or current.__cause__ or (None if current.__suppress_context__ else current.__context__)
        if inner is None or any(inner is seen for seen in chain):
            break
        chain.append(inner)
    innermost = chain[-1]
    if isinstance(innermost, http.client.IncompleteRead) and isinstance(innermost.expected, int):
        # urllib3 checks the body against Content-Length, http.client a chunk against its length
        # line; their reprs are no sentence for the user.
        if isinstance(innermost, IncompleteRead):
            return f"the host closed it {innermost.expected} bytes short of the length it announced"
        return f"the host closed it {innermost.expected} bytes short of the end of a chunk of the body"
    if isinstance(innermost, ProtocolError) and str(innermost) == "Response ended prematurely":
        return "the host closed it before the chunked body's last chunk"  # urllib3's words for an empty length line
    return getattr(innermost, "strerror", None) or first_line(innermost)


def _range_total(headers: Any) -> int | None:
    """The file's full size a ``Content-Range`` names (a 206's ``bytes 0-9/N``, a 416's ``bytes */N``); else ``None``."""
    total = (headers.get("Content-Range") or "").rsplit("/", 1)[-1]
    return int(total) if total.isdigit() else None


def _announced_total(status: int, headers: Any, offset: int) -> int | None:
    if status == 206 and "/" in (headers.get("Content-Range") or ""):
        return _range_total(headers)
    length = headers.get("Content-Length")
    if length is None or not length.isdigit():
        return None
    return int(length) + (offset if status == 206 else 0)


def _http_error(status: int, remote: RemoteFile, final: str | None, retry_after: str | None, part: Path) -> DownloadError:
    """The one-line error for an HTTP error ``status``; it says so when ``part`` holds bytes an earlier attempt received.

    A status met on a resume (a connection dropped, then the host failed) leaves those bytes for
    the re-run, as a dropped connection does: without a word the user may delete the folder.
    """
    kept = part.stat().st_size if part.is_file() else 0
    resumes = f"; the {kept} bytes received are kept in {part}, so the re-run resumes" if kept else ""
    this_file = 400 <= status < 500 and status not in (*BUSY_STATUSES, 429)  # the host answers; the file is amiss
    return (_FileFailed if this_file else DownloadError)(_status_problem(status, remote, final, retry_after) + resumes)


def _status_problem(status: int, remote: RemoteFile, final: str | None, retry_after: str | None) -> str:
    """What an HTTP error ``status`` for ``remote`` means and what to do, in words; ``final``: the address that answered it."""
    asked = _effective_url(remote.url)
    url = asked if not final or final == asked else f"{final} (where {asked} redirected it)"
    host = _where(remote, final)
    if status == 429:
        return f"{host} answered {rate_limited(retry_after)} for {remote.filename}; re-run the same command after that wait"
    if status == 404:
        if os.environ.get(BASE_URL_VARIABLE):  # the mirror lacks it: the data set has not moved
            return (
                f"{url} was not found (HTTP 404): the mirror {BASE_URL_VARIABLE} names does not hold {remote.filename}; "
                f"put {remote.url} there at that path, or unset {BASE_URL_VARIABLE} to fetch it from its source"
            )
        return f"{url} was not found (HTTP 404); the data set may have moved"  # download_dataset names its page
    if status in (401, 403):
        return f"{host} refused {remote.filename} (HTTP {status}); the data set may need a login or acceptance of its terms"
    wait = asked_wait(retry_after)  # a 503's Retry-After, which the retries within the run may not have waited out
    return f"{host} answered HTTP {status} for {remote.filename}; try again later" + (f" ({wait})" if wait else "")


class _Progress:
    """Byte progress on a :class:`~biofound_cli.progress.ProgressReporter` through pooch's custom progress-bar protocol.

    :class:`pooch.HTTPDownloader` sets ``total`` to the Content-Length of the response body (0
    without one), calls ``update(chunk_size)`` after writing and flushing each chunk and, once
    complete, ``reset()``, ``update(total)`` and ``close()``. Its amounts are not the bytes
    written: it passes the chunk size it asked for, and a body's last chunk is shorter (without a
    Content-Length no cap applies, and the bar ended up to 8 KiB past the bytes received). So
    :meth:`update` advances the bar to the bytes the part file holds, read from the open file,
    and pooch's final ``update(total)`` adds nothing. The bar is opened by :meth:`start`, called
    from the response hook, which knows the full size, the bytes the part file already holds
    and the file the body goes to.
    """

    def __init__(self, reporter: ProgressReporter, name: str) -> None:
        self.total = 0  # set by pooch; the bytes counted are read from the file instead
        self._reporter = reporter
        self._name = name
        self._handle: Any = None
        self._held = 0  # the part file's bytes the bar has counted
        self._bar = contextlib.ExitStack()  # holds the reporter's task while the bar is open
        self._task: Any = None

    def start(self, full: int | None, already: int, handle: Any) -> None:
        if self._task is not None:
            return
        # The bytes kept from an earlier try are counted, but not in this try's rate (advanced, they
        # showed as received in the first instant).
        self._task = self._bar.enter_context(open_task(self._reporter, full, f"downloading {self._name}", "bytes", done=already))
        self._handle, self._held = handle, already

    def update(self, amount: int) -> None:
        """Advance to the bytes ``handle`` holds (pooch flushed it); ``amount``, pooch's chunk size, is not the count."""
        if self._task is None:
            return
        held = self._handle.tell()
        if held > self._held:
            self._task.advance(held - self._held)
            self._held = held

    def reset(self) -> None:
        """pooch calls this before its final ``update(total)``, which finds no new bytes in the file."""

    def close(self) -> None:
        self._bar.close()
        self._task = None


def _html_page(path: Path, remote: RemoteFile) -> str | None:
    """The message for a ``path`` that is an HTML page (a server's error or login page, sent with status 200); else ``None``."""
    if not is_html_page(path):
        return None
    wanted = f"the {remote.archive} archive" if remote.archive else "the file"
    return (
        f"{_host(remote.url)} sent an HTML page (an error or login page), not {wanted} {remote.filename}; "
        f"open {_effective_url(remote.url)} in a browser to see why"
    )


def _format_problem(path: Path, remote: RemoteFile) -> str | None:
    """Why ``path`` is not the ``remote.archive`` it should be; ``None`` when it is (or no format is expected).

    :func:`zipfile.is_zipfile` looks for the end-of-archive record, which a zip cut short lacks.
    """
    if remote.archive is None or (zipfile.is_zipfile(path) if remote.archive == "zip" else tarfile.is_tarfile(path)):
        return None
    return (
        f"{remote.filename} is not a complete {remote.archive} archive ({path.stat().st_size} bytes; cut short or not an archive)"
    )


def _check_complete(part: Path, remote: RemoteFile, announced: int | None) -> None:
    """Remove ``part`` and raise when it fails a check; the size expected is the recorded one, else the announced one."""
    problem = _problem(part, remote, remote.size if remote.size is not None else announced)
    if problem is not None:
        drop_partial(part)
        raise _FileFailed(problem)


def _problem(path: Path, remote: RemoteFile, expected: int | None) -> str | None:
    """Why ``path`` is not ``remote`` (its size, its sha256 where recorded, its format); ``None`` when it checks out.

    A file that fails any check and is an HTML page is named as one, whichever check it failed
    first: a size or sha256 mismatch alone would send the user to report a bug instead of
    opening the page. The message goes on to say that the file is removed, which the caller of
    a failed download does.
    """
    problem = _mismatch(path, remote, expected)
    if problem is None:
        return None
    page = _html_page(path, remote)
    return problem if page is None else f"{page}; the download was removed and nothing was unpacked"


def _mismatch(path: Path, remote: RemoteFile, expected: int | None) -> str | None:
    """The first check ``path`` fails (size, sha256 where recorded, format), in words; ``None`` when none."""
    size = path.stat().st_size
    if expected is not None and size != expected:
        return (
            f"{remote.filename} has {size} bytes, not the expected {expected}; the partial file was removed, "
            "re-run to download it again"
        )
    if remote.sha256 is not None and pooch.file_hash(str(path), alg="sha256") != remote.sha256.lower():
        # Without a length a connection closed early looks like the end of the file: say so.
        unannounced = "" if expected is not None else f"; {size} bytes arrived and the host announced no length"
        return (
            f"{remote.filename} failed its sha256 check (expected {remote.sha256}{unannounced}); the file was removed, "
            "re-run to download it again and report it if this repeats"
        )
    problem = _format_problem(path, remote)
    return None if problem is None else f"{problem}; the download was removed and nothing was unpacked"


# -- extraction --------------------------------------------------------------------------------
def extract(archive: Path, folder: Path) -> Path:
    """Unpack a zip or tar archive into ``folder`` once; a marker file records that it is done.

    Written here rather than with pooch's ``Unzip`` / ``Untar`` processors because those do not
    refuse a member that points outside the folder (checked in pooch 1.9's ``processors.py`` and
    by running them): ``Untar`` passes ``filter="data"`` to ``extractall`` only on Python >= 3.12,
    so on 3.11 a member ``../../x`` is written outside its folder; ``Unzip`` relies on
    :mod:`zipfile`, which silently rewrites ``../x`` to ``x`` inside it instead of reporting an
    unsafe archive. Here every member is checked first and the whole archive is refused
    (``test_extract_zip_once_and_refuse_escapes``, ``test_extract_tar_refuses_escapes``); tar
    members are also unpacked with ``filter="data"`` (no device files, no absolute links).

    Parameters
    ----------
    archive : Path
        The downloaded file; one that is neither zip nor tar is left as it is.
    folder : Path
        Where the members go; created when missing.

    Raises
    ------
    DownloadError
        For an archive that is damaged (it is removed, so that a re-run fetches it again) or
        holds a member outside ``folder``.
    """
    marker = _marker(archive, folder)
    if marker.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    # Two runs at once (the second waited for the download's lock, then found the file whole) must
    # not unpack into one folder together: each would truncate the members the other has written.
    with one_writer(archive.name, archive.with_name(archive.name + ".lock")):
        if marker.exists():
            return folder
        try:
            unpacked = _unpack(archive, folder)
        except KeyboardInterrupt as stop:
            note_stopped(
                stop,
                f" while unpacking {archive} into {folder}; the archive is whole and kept, the member being written was "
                "removed: re-run the same command to unpack it again (nothing is downloaded again)",
            )
            raise
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as error:
            raise _damaged(archive, error) from None
        except OSError as error:
            if error.errno is None:  # a decompressor's (gzip's CRC check, bzip2's 'Invalid data stream'), not the disk's
                raise _damaged(archive, error) from None
            if error.errno == errno.ENOSPC:
                raise DownloadError(
                    f"the disk holding {folder} is full while unpacking {archive.name}; free space and re-run"
                ) from None
            raise
        if unpacked:
            marker.write_text("done\n")
    return folder


def _marker(archive: Path, folder: Path) -> Path:
    """The file :func:`extract` writes once ``archive`` is unpacked into ``folder``."""
    return folder / f".{archive.name}.extracted"


def _unpacked(archive: Path, folder: Path) -> bool:
    """Whether ``archive`` was downloaded and unpacked into ``folder`` by an earlier run (checked again by :func:`fetch_file`)."""
    return archive.is_file() and _marker(archive, folder).exists()


def _unpack(archive: Path, folder: Path) -> bool:
    """Check every member of a zip or tar ``archive``, then unpack it into ``folder``; ``False`` for neither.

    The member being written when anything stops the unpacking (a full disk, a damaged member,
    Ctrl-C) is removed: a file cut short must not sit among the data, where a later stage would
    read it as whole. The members before it are whole, and the re-run unpacks them all again.
    """
    root = folder.resolve()
    writing: list[Path] = []  # the member being written now
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for name in zipped.namelist():
                    _inside(root, name, archive)
                for info in zipped.infolist():  # extractall, one member at a time
                    writing[:] = [folder / info.filename]
                    zipped.extract(info, folder)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tarred:
                _check_tar_members(tarred, root, archive)

                def data_only(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
                    writing[:] = [Path(path) / member.name]  # called just before the member is written
                    return tarfile.data_filter(member, path)

                tarred.extractall(folder, filter=data_only)
                writing.clear()
                _read_to_the_end(tarred)
        else:
            return False  # not an archive: the file itself is the data
    except BaseException:
        for member in writing:
            if member.is_file() and not member.is_symlink():
                member.unlink()
        raise
    return True


def _check_tar_members(bundle: tarfile.TarFile, root: Path, archive: Path) -> None:
    """Refuse a tar whose member, or a link's target, points outside ``root``."""
    for member in bundle.getmembers():
        _inside(root, member.name, archive)
        if member.issym():  # a link's target counts too (relative to the link's folder)
            _inside(root, str(Path(member.name).parent / member.linkname), archive)
        elif member.islnk():
            _inside(root, member.linkname, archive)


def _read_to_the_end(bundle: tarfile.TarFile) -> None:
    """Read a tar's compressed stream past the end-of-archive blocks, so that its own check runs.

    tarfile stops at those blocks and never reads the gzip trailer (CRC-32 and length) or the end
    of a bzip2 or xz stream: a damaged member of a ``.tar.gz`` was unpacked without a word. With
    no sha256 recorded that check is the only one of the content.
    """
    stream = bundle.fileobj
    while stream is not None and stream.read(1 << 20):
        pass


def _damaged(archive: Path, error: BaseException) -> DownloadError:
    """Remove ``archive`` and say so in one line; the re-run fetches it again instead of trusting it.

    A member's data that does not decompress or fails its CRC: the archive's structure checked
    out, so only unpacking finds it. Removed, as a file that fails a check before it is renamed
    is. A library's message may span lines (tarfile lists every compression it tried): joined.
    """
    archive.unlink(missing_ok=True)
    reason = " ".join(str(error).split()) or type(error).__name__
    return _FileFailed(f"{archive} is damaged ({reason}); it was removed, so re-run the same command to download it again")


def _inside(root: Path, member: str, archive: Path) -> None:
    if not (root / member).resolve().is_relative_to(root):
        raise _FileFailed(f"{archive} holds {member!r}, which points outside {root}; the archive is not safe to unpack")


def download_dataset(name: str, dest: str | os.PathLike[str], *, reporter: ProgressReporter = NO_PROGRESS) -> dict[str, Any]:
    """Download, verify and unpack the open data set ``name`` into ``dest/<name>``.

    Parameters
    ----------
    name : str
        A key of ``OPEN_DATASETS``.
    dest : str | os.PathLike
        The data folder; the set goes into ``dest/<name>``.
    reporter : ProgressReporter
        Shows the bytes of each file received; by default nothing is shown.

    Returns
    -------
    dict
        ``dataset``, ``folder``, ``files``, ``checks`` (per file, what was checked), ``terms``,
        ``citation`` and ``page``.

    Raises
    ------
    DownloadError
        For a host that cannot be reached or fails (at the first such file; files already whole are
        kept), or, once every other file is there, for the files refused, missing or failing a check.
    UsageError
        For an unknown data set, or a ``dest`` that cannot be created or written.
    """
    dataset = OPEN_DATASETS.get(name)
    if dataset is None:
        raise UsageError(unknown_name("data set", name, (*OPEN_DATASETS, *TUH_CORPORA)))
    folder = Path(dest) / dataset.name
    archives = folder / "archives"
    # A set fetched on a login node into a folder compute nodes mount read-only is read there as it
    # is: the folder must be writable only when something is still to fetch or unpack.
    if not all(_unpacked(archives / remote.filename, folder) for remote in dataset.files):
        prepare_output_folder(Path(dest), "--dest")
    files, checks = _fetch_all(dataset, archives, folder, reporter)
    return {
        "dataset": dataset.name,
        "folder": str(folder),
        "files": files,
        "checks": checks,
        "terms": dataset.terms,
        "citation": dataset.citation,
        "page": dataset.page,
    }


def _fetch_all(dataset: OpenDataset, archives: Path, folder: Path, reporter: ProgressReporter) -> tuple[list[str], list[str]]:
    """Fetch and unpack every file of ``dataset``: the files and what was checked of each (:func:`_checks_done`).

    A file refused, missing or failing a check is named in a warning and the others are fetched
    before the one error, which names the set's page (so does the error of a set of one file); a
    host that cannot be reached or fails stops the run at once, as each other file would wait on it
    again.
    """
    files, checks, failed = [], [], []
    for remote in dataset.files:
        try:
            path, how, known = _fetch(remote, archives, reporter, RETRIES, None)
            extract(path, folder)
        except _FileFailed as error:
            if len(dataset.files) == 1:
                raise _FileFailed(f"{error.message}; see {dataset.page}") from None
            logger.warning(error.message)
            failed.append(remote.filename)
            continue
        files.append(str(path))
        checks.append(_checks_done(remote, how, known))
    if failed:
        raise DownloadError(_files_failed(dataset, failed, folder))
    return files, checks


def _files_failed(dataset: OpenDataset, failed: list[str], folder: Path) -> str:
    """One line for the files of ``dataset`` that failed (each named in a warning before it) and what to do."""
    fetched = len(dataset.files) - len(failed)
    rest = f"; the other {fetched} are in {folder}" if fetched else ""
    return (
        f"{len(failed)} of the {len(dataset.files)} files of {dataset.name} could not be downloaded "
        f"({', '.join(failed)}: each named above){rest}; see {dataset.page}, then re-run the same command, "
        "which fetches only what is missing"
    )


def _checks_done(remote: RemoteFile, how: str, known: str | None) -> str:
    """How :func:`fetch_file` had the file and what it checked, in words (``fetched: sha256, size, zip structure``).

    ``how``: ``FETCHED``, ``resumed from byte N`` or ``ALREADY_THERE``; ``known``: how a size with
    none recorded was known (``None`` for a file already there: its size is not checked, a file
    already there was said to be of the "size announced by the server" with nothing asked).
    """
    done = ["sha256"] if remote.sha256 else []
    if remote.size is not None or known is not None:
        done.append("size" if remote.size is not None else str(known))
    if remote.archive:
        done.append(f"{remote.archive} structure")
    return f"{how}: " + (", ".join(done) or "nothing checked") + ("" if remote.sha256 else " (no sha256 recorded)")


# -- TUH corpora over rsync --------------------------------------------------------------------
TUH_HOST = "www.isip.piconepress.com"
TUH_USER = "nedc-tuh-eeg"
TUH_REGISTRATION = "https://isip.piconepress.com/projects/nedc/html/tuh_eeg/"
TUH_KEY_VARIABLE = "BIOFOUND_TUH_SSH_KEY"
TUH_USER_VARIABLE = "BIOFOUND_TUH_USER"

TUH_CORPORA: dict[str, tuple[str, str]] = {
    "tuab": ("TUH Abnormal EEG Corpus", "tuh_eeg_abnormal/v3.0.1"),
    "tuar": ("TUH Artifact Corpus", "tuh_eeg_artifact/v3.0.1"),
    "tusl": ("TUH Slowing Corpus", "tuh_eeg_slowing/v2.0.1"),
    "tueg": ("TUH EEG Corpus", "tuh_eeg/v2.0.2"),
}


def tuh_rsync_command(corpus: str, dest: str | os.PathLike[str], ssh_key: str | None = None, user: str = TUH_USER) -> list[str]:
    """The NEDC-documented ``rsync -auxvL`` command for ``corpus``, as an argument list.

    Parameters
    ----------
    corpus : str
        A key of ``TUH_CORPORA`` (``tuab``, ``tuar``, ``tusl``, ``tueg``).
    dest : str | os.PathLike
        The data folder; the corpus goes into ``dest/<corpus>/``.
    ssh_key : str | None
        The SSH key registered with NEDC, passed to ssh with ``-i``; None lets ssh choose.
    user : str
        The rsync user name NEDC gave.
    """
    if corpus not in TUH_CORPORA:
        raise UsageError(unknown_name("TUH corpus", corpus, TUH_CORPORA))
    command = ["rsync", "-auxvL"]
    if ssh_key:
        command += ["-e", f"ssh -i {ssh_key}"]
    command += [f"{user}@{TUH_HOST}:data/tuh_eeg/{TUH_CORPORA[corpus][1]}/", str(Path(dest) / corpus) + "/"]
    return command


def tuh_registration_steps(corpus: str) -> list[str]:
    """What to do, line by line, to get NEDC credentials for ``corpus`` and run the download.

    Parameters
    ----------
    corpus : str
        A key of ``TUH_CORPORA``.
    """
    title = TUH_CORPORA[corpus][0]
    return [
        f"The {title} is free for research but needs NEDC credentials.",
        f"1. Fill in and sign the data-sharing form linked from {TUH_REGISTRATION} and email it as the page says.",
        "2. NEDC registers your SSH public key (or sends a password) and the rsync user name.",
        f"3. Set {TUH_KEY_VARIABLE}=~/.ssh/<your key> (and {TUH_USER_VARIABLE} if NEDC gave another user name),",
        "   then run this command again; or run the rsync command below yourself.",
    ]


def download_tuh(
    corpus: str,
    dest: str | os.PathLike[str],
    *,
    environ: dict[str, str] | None = None,
    run: Callable[[Sequence[str]], int] | None = None,
) -> dict[str, Any]:
    """Run the documented rsync for a TUH corpus when credentials are in the environment.

    Without ``BIOFOUND_TUH_SSH_KEY`` nothing runs: the result carries the registration steps and
    the command to run by hand. ``run`` (for tests) replaces :func:`subprocess.call`.

    Parameters
    ----------
    corpus : str
        A key of ``TUH_CORPORA``.
    dest : str | os.PathLike
        The data folder; the corpus goes into ``dest/<corpus>/``.
    environ : dict of str to str | None
        Where ``BIOFOUND_TUH_SSH_KEY`` and ``BIOFOUND_TUH_USER`` are read; None reads ``os.environ``.
    run : callable | None
        Runs the command and returns its exit status; None uses :func:`subprocess.call`.

    Raises
    ------
    DownloadError
        If rsync is missing or exits with an error.
    """
    environ = dict(os.environ if environ is None else environ)
    key = environ.get(TUH_KEY_VARIABLE)
    command = tuh_rsync_command(corpus, dest, ssh_key=key, user=environ.get(TUH_USER_VARIABLE) or TUH_USER)
    result = {
        "dataset": corpus,
        "folder": str(Path(dest) / corpus),
        "command": command,
        "steps": tuh_registration_steps(corpus),
        "ran": False,
    }
    if not key:
        return result
    if not Path(key).expanduser().is_file():
        raise UsageError(f"{TUH_KEY_VARIABLE}={key} is not a file; point it at the SSH key registered with NEDC")
    if run is None and shutil.which("rsync") is None:
        raise DownloadError("rsync is not installed; install it (e.g. apt install rsync) and re-run")
    Path(dest, corpus).mkdir(parents=True, exist_ok=True)
    status = (run or subprocess.call)(command)
    if status != 0:
        raise DownloadError(
            f"rsync from {TUH_HOST} exited with status {status}; check the SSH key in {TUH_KEY_VARIABLE} and "
            "the network, then re-run (rsync resumes)"
        )
    result["ran"] = True
    return result
