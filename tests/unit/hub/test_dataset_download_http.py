"""Data-set downloads through pooch's HTTPDownloader against a loopback host: one-line errors, resume edges.

The host here binds 127.0.0.1 and answers what each test sets (an HTTP status, a Range request
answered with 200, a redirect, a hang-up after N bytes); nothing else is contacted.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from fixtures.fake_hub import left_in
from typer.testing import CliRunner

from biofound_cli import dataset_download, download_retries
from biofound_cli.dataset_download import BASE_URL_VARIABLE, CHUNK_BYTES, RemoteFile, fetch_file
from biofound_cli.errors import ExitStatus, UsageError
from biofound_cli.hub import DownloadError

PAYLOAD = bytes(range(256)) * 256  # 64 KiB: several chunks


class LoopbackHost:
    """Plain files on ``http://127.0.0.1:<port>/<name>`` with behaviour set per file.

    Attributes
    ----------
    files : dict
        ``name -> bytes``.
    status : dict
        ``name -> HTTP status`` answered instead of the file.
    ignore_range : dict
        ``name -> status`` (200, or a proxy's 203) answered with the whole file even when a Range is asked for.
    hang_up_after : dict
        ``name -> bytes``: the next full GET announces the whole file, sends that many bytes and hangs up.
    always_hang_up_after : dict
        As ``hang_up_after``, for every GET, a Range asked for or not (a host that ignores Range
        requests behind a link that breaks at the same point each time).
    redirect : dict
        ``name -> other name`` (or another host's ``http://`` address) answered with a 302.
    encoded : set
        Names whose answers carry ``Content-Encoding: gzip``: a gzip file stored so on S3 or GCS.
    trailing : dict
        ``name -> bytes`` sent after the body its Content-Length announces (a server sending more than it says).
    unannounced : dict
        ``name -> bytes``: the next GET sends no Content-Length, that many bytes, and closes the connection.
    chunked : dict
        ``name -> bytes or None``: the next full GET is sent with ``Transfer-Encoding: chunked`` (no
        Content-Length) in chunks of 5000 bytes, whole (``None``) or cut after that many bytes (within
        a chunk or after one), the connection then closed without the last chunk.
    busy : dict
        ``name -> statuses`` answered, one per GET, before the file is served (a server that recovers).
    misplaced : dict
        ``name -> byte or None``: a Range request ``bytes=N-`` is answered with 206 and as many bytes
        as asked for, but from that byte, its ``Content-Range`` saying so (``None``: from byte 0,
        with no ``Content-Range``), as a proxy that mishandles Range requests answers.
    validator : str
        What every file answer carries to tell versions apart: ``ETag`` (the content's sha256,
        quoted), ``Last-Modified`` (set per name in ``modified``) or ``""`` (nothing). A Range
        request with an ``If-Range`` that does not match is answered with 200 and the whole
        file, as HTTP asks.
    modified : dict
        ``name -> Last-Modified`` value.
    requests : list
        ``(path, Range header or None)`` of every request.
    if_range : list
        The ``If-Range`` header of every request (``None`` when absent).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.status: dict[str, int] = {}
        self.ignore_range: dict[str, int] = {}
        self.hang_up_after: dict[str, int] = {}
        self.always_hang_up_after: dict[str, int] = {}
        self.redirect: dict[str, str] = {}
        self.encoded: set[str] = set()
        self.trailing: dict[str, bytes] = {}
        self.unannounced: dict[str, int] = {}
        self.chunked: dict[str, int | None] = {}
        self.busy: dict[str, list[int]] = {}
        self.misplaced: dict[str, int | None] = {}
        self.validator = "ETag"
        self.modified: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.if_range: list[str | None] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        # A client that hangs up mid-body makes the handler thread fail; socketserver would print
        # that traceback to stderr, into the very output the tests check for tracebacks.
        self._server.handle_error = lambda request, client_address: None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def remote(self, name: str = "data.bin", content: bytes = PAYLOAD, sha256: str | None = "auto") -> RemoteFile:
        self.files[name] = content
        digest = hashlib.sha256(content).hexdigest() if sha256 == "auto" else sha256
        return RemoteFile(f"{self.url}/{name}", name, sha256=digest)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(host: LoopbackHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/").split("?", 1)[0]
            asked = self.headers.get("Range")
            host.requests.append((self.path, asked))
            host.if_range.append(self.headers.get("If-Range"))
            if name in host.redirect:
                target = host.redirect[name]  # a name on this host, or another host's address
                self._send(302, b"", {"Location": target if target.startswith("http") else f"/{target}"})
                return
            if host.busy.get(name):
                self._send(host.busy[name].pop(0), b"busy\n", {})
                return
            if name in host.status or name not in host.files:
                self._send(host.status.get(name, 404), b"error page\n", {})
                return
            content = host.files[name]
            version = self._version(name, content)
            if name in host.hang_up_after and asked is None or name in host.always_hang_up_after:
                sent = host.always_hang_up_after.get(name) or host.hang_up_after.pop(name)
                self.send_response(200)
                for key, value in version.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content[:sent])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if name in host.unannounced:
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(content[: host.unannounced.pop(name)])
                self.close_connection = True
                return
            if name in host.chunked and asked is None:
                cut = host.chunked.pop(name)
                self.send_response(200)
                for key, value in {**version, "Transfer-Encoding": "chunked"}.items():
                    self.send_header(key, value)
                self.end_headers()
                for start in range(0, len(content) if cut is None else cut, 5000):
                    piece = content[start : start + 5000]  # announced whole, sent up to the cut
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece[: None if cut is None else cut - start])
                    self.wfile.write(b"\r\n" if cut is None or start + len(piece) <= cut else b"")
                if cut is None:
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            condition = self.headers.get("If-Range")
            unchanged = condition is None or condition in version.values()
            if asked and name not in host.ignore_range and unchanged:
                start = int(asked.removeprefix("bytes=").split("-", 1)[0])
                if name in host.misplaced:
                    self._misplaced(content, start, host.misplaced[name], version)
                    return
                if start >= len(content):
                    self._send(416, b"", {"Content-Range": f"bytes */{len(content)}"})
                    return
                ranged = {"Content-Range": f"bytes {start}-{len(content) - 1}/{len(content)}", **version}
                self._send(206, content[start:], ranged)
                return
            self._send(host.ignore_range.get(name, 200), content, version)

        def _misplaced(self, content: bytes, asked: int, sent: int | None, version: dict[str, str]) -> None:
            """206 and the ``len(content) - asked`` bytes from ``sent`` (``None``: from 0, no ``Content-Range``)."""
            body = content[sent or 0 :][: len(content) - asked]
            ranged = {} if sent is None else {"Content-Range": f"bytes {sent}-{sent + len(body) - 1}/{len(content)}"}
            self._send(206, body, {**ranged, **version})

        def _version(self, name: str, content: bytes) -> dict[str, str]:
            """The headers of every answer with the file's bytes: its version, and its stored encoding."""
            if name in host.encoded:
                return {"Content-Encoding": "gzip", **self._validator(name, content)}
            return self._validator(name, content)

        def _validator(self, name: str, content: bytes) -> dict[str, str]:
            if host.validator == "ETag":
                return {"ETag": f'"{hashlib.sha256(content).hexdigest()}"'}
            if host.validator == "Last-Modified" and name in host.modified:
                return {"Last-Modified": host.modified[name]}
            return {}

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body + host.trailing.get(self.path.lstrip("/"), b""))

    return Handler


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackHost]:
    """A started loopback host; proxies are switched off so requests go straight to it."""
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy", BASE_URL_VARIABLE):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(download_retries, "RETRY_WAIT_SECONDS", 0.0)  # a busy server is retried at once here
    monkeypatch.setattr(download_retries, "RETRY_AFTER_LIMIT_SECONDS", 0.0)  # and a Retry-After is not waited
    server = LoopbackHost()
    try:
        yield server
    finally:
        server.stop()


def _one_line(error: pytest.ExceptionInfo[DownloadError]) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message, message
    assert error.value.status == ExitStatus.FAILED
    return message


# -- HTTP status, connection and URL errors: one line each, nothing left behind ----------------
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, r"was not found \(HTTP 404\); the data set may have moved"),
        (401, r"refused data\.bin \(HTTP 401\); the data set may need a login"),
        (403, r"refused data\.bin \(HTTP 403\); the data set may need a login"),
        (500, r"answered HTTP 500 for data\.bin; try again later"),
        (503, r"answered HTTP 503 for data\.bin; try again later"),
    ],
)
def test_http_error_status_is_one_line(host, tmp_path, status, expected):
    remote = host.remote()
    host.status["data.bin"] = status
    with pytest.raises(DownloadError, match=expected) as error:
        fetch_file(remote, tmp_path)
    assert "127.0.0.1" in _one_line(error)
    assert left_in(tmp_path) == []  # no empty .part file either


def test_a_file_missing_from_the_mirror_names_the_mirror_not_a_move(host, tmp_path, monkeypatch):
    """With BIOFOUND_DATA_BASE_URL, a 404 said the data set may have moved and pointed at its source."""
    monkeypatch.setenv(BASE_URL_VARIABLE, f"{host.url}/mirror")
    remote = RemoteFile("https://data.example/sets/data.bin", "data.bin")
    with pytest.raises(DownloadError) as error:
        fetch_file(remote, tmp_path)
    assert _one_line(error) == (
        f"{host.url}/mirror/sets/data.bin was not found (HTTP 404): the mirror BIOFOUND_DATA_BASE_URL names does not "
        "hold data.bin; put https://data.example/sets/data.bin there at that path, or unset BIOFOUND_DATA_BASE_URL "
        "to fetch it from its source"
    )
    assert left_in(tmp_path) == []


def test_a_busy_server_is_retried_within_the_run(host, tmp_path, caplog):
    """A 503 (or 502, 500, 504) then the file: the download failed at once, though a retry a moment later worked."""
    import logging

    remote = host.remote()
    host.busy["data.bin"] = [503, 502]
    caplog.set_level(logging.WARNING, logger="biofound_cli.dataset_download")
    assert fetch_file(remote, tmp_path).read_bytes() == PAYLOAD
    assert [record.getMessage().split(" answered ", 1)[1] for record in caplog.records] == [
        "HTTP 503 for data.bin; retrying (2/3) in 0 s",
        "HTTP 502 for data.bin; retrying (3/3) in 0 s",
    ]
    assert left_in(tmp_path) == ["data.bin"]


@pytest.mark.parametrize(("status", "requests"), [(503, 3), (404, 1), (429, 1)])
def test_only_a_busy_server_is_asked_again(host, tmp_path, status, requests):
    remote = host.remote()
    host.status["data.bin"] = status
    with pytest.raises(DownloadError):
        fetch_file(remote, tmp_path)
    assert len(host.requests) == requests


def test_http_error_on_resume_keeps_the_part_file(host, tmp_path):
    remote = host.remote()
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:1000])
    host.status["data.bin"] = 500
    with pytest.raises(DownloadError, match="answered HTTP 500"):
        fetch_file(remote, tmp_path)
    assert (tmp_path / "data.bin.part").read_bytes() == PAYLOAD[:1000]


def test_refused_connection_is_one_line(host, tmp_path):
    remote = host.remote()
    host.stop()
    with pytest.raises(
        DownloadError,
        match=r"cannot reach 127\.0\.0\.1:\d+ for data\.bin \(Connection refused\); "
        r"check the network connection and re-run$",
    ) as error:
        fetch_file(remote, tmp_path, timeout=5)
    _one_line(error)
    assert left_in(tmp_path) == []


def test_refused_connection_on_resume_says_part_is_kept(host, tmp_path):
    remote = host.remote()
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:1000])
    host.stop()
    with pytest.raises(DownloadError, match=r"\(Connection refused\).*data\.bin\.part is kept for resuming"):
        fetch_file(remote, tmp_path, timeout=5)
    assert (tmp_path / "data.bin.part").stat().st_size == 1000


def test_a_silent_host_is_given_up_after_biofound_download_timeout_in_one_line(silent_hub, tmp_path, monkeypatch):
    """A host that accepts the connection and never answers: the message names it, the file and the wait.

    It said 'cannot reach HOST (timed out)' after 60 s that no setting changed, as if the host were down.
    """
    from biofound_cli.cli.app import app

    monkeypatch.setenv(BASE_URL_VARIABLE, silent_hub)
    result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error == (
        f"{silent_hub.split('//', 1)[1]} accepted the connection but sent no answer for emg+data+for+gestures.zip within 0.5 s; "
        "the host may be overloaded: re-run later, or wait longer with BIOFOUND_DOWNLOAD_TIMEOUT=SECONDS"
    )
    assert left_in(tmp_path / "uci-emg" / "archives") == []


def test_a_host_that_cannot_resume_and_drops_each_time_is_not_said_to_resume(host, tmp_path, monkeypatch):
    """A host that ignores Range requests and loses the connection at the same point each time: every run
    said "PART is kept, so re-run the same command to resume", and every re-run started from byte 0 again."""
    import io
    import zipfile

    from biofound_cli.cli.app import app

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("set/data.bin", PAYLOAD)
    name = "static/public/481/emg+data+for+gestures.zip"
    host.files[name] = buffer.getvalue()
    host.always_hang_up_after[name] = 3 * CHUNK_BYTES
    monkeypatch.setenv(BASE_URL_VARIABLE, host.url)
    archives = tmp_path / "uci-emg" / "archives"
    for _ in range(2):  # the re-run the message advised meets the same host
        result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
        assert result.exit_code == ExitStatus.FAILED, result.output
        error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
        assert error == (
            f"the connection to {host.url[7:]} was lost after {3 * CHUNK_BYTES} bytes of emg+data+for+gestures.zip "
            f"(the host closed it {len(host.files[name]) - 3 * CHUNK_BYTES} bytes short of the length it announced), "
            "and the host cannot resume a transfer (it answered the request for the rest with the whole file), so a "
            "re-run starts again from byte 0; re-run from a steadier network connection, or fetch "
            f"{host.url}/{name} with another tool and put it at {archives / 'emg+data+for+gestures.zip'}"
        )
        assert left_in(archives) == ["emg+data+for+gestures.zip.part", "emg+data+for+gestures.zip.part.version"]
    assert [asked for _, asked in host.requests] == [None, *[f"bytes={3 * CHUNK_BYTES}-"] * 5]


@pytest.mark.parametrize("value", ["soon", "0", "-3", "inf"])
def test_a_download_timeout_that_is_not_seconds_is_refused_in_one_line(tmp_path, monkeypatch, value):
    from biofound_cli.cli.app import app

    monkeypatch.setenv("BIOFOUND_DOWNLOAD_TIMEOUT", value)
    monkeypatch.setenv(BASE_URL_VARIABLE, "http://127.0.0.1:9")  # nothing is fetched, even if the check went
    result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error == f"BIOFOUND_DOWNLOAD_TIMEOUT={value} is not a number of seconds; set it to e.g. 120, or unset it for 60"


def test_a_host_that_stalls_mid_file_is_retried_on_the_log_and_named_with_the_timeout(fake_hub, tmp_path, caplog, monkeypatch):
    """Each retry of a stalled transfer waits the whole timeout again: the log says which attempt it is."""
    import logging

    fake_hub.files["data.bin"] = PAYLOAD
    stalled = fake_hub.hold["files/data.bin"] = threading.Event()  # half the body, then nothing
    monkeypatch.setenv("BIOFOUND_DOWNLOAD_TIMEOUT", "0.5")
    caplog.set_level(logging.WARNING, logger="biofound_cli.dataset_download")
    try:
        with pytest.raises(DownloadError) as caught:
            fetch_file(RemoteFile(f"{fake_hub.url}/files/data.bin", "data.bin"), tmp_path, retries=2)
    finally:
        stalled.set()
    message = _one_line(caught)
    assert "(no data for 0.5 s)" in message and "data.bin.part is kept, so re-run the same command to resume" in message
    retries = [record.getMessage() for record in caplog.records]
    assert [line.rsplit("; ", 1)[-1] for line in retries] == ["retrying (2/3)", "retrying (3/3)"]
    assert all("no data for 0.5 s" in line and "data.bin" in line for line in retries)


@pytest.mark.parametrize("base", ["htp://127.0.0.1:9/files", "http://[127.0.0.1/files"])
def test_unusable_mirror_url_is_one_line(host, tmp_path, monkeypatch, base):
    monkeypatch.setenv(BASE_URL_VARIABLE, base)
    with pytest.raises(UsageError, match=rf"{BASE_URL_VARIABLE}=.* is not the address of a data-set mirror") as error:
        fetch_file(host.remote(), tmp_path)
    assert error.value.status == ExitStatus.USAGE and "\n" not in str(error.value)
    assert left_in(tmp_path) == []


def test_disk_full_is_one_line(host, tmp_path, monkeypatch):
    real_open = Path.open

    class FullDisk:
        def __init__(self, handle):
            self._handle = handle

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self._handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._handle.close()

    def open_full(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        return FullDisk(handle) if self.name.endswith(".part") else handle

    monkeypatch.setattr(Path, "open", open_full)
    with pytest.raises(
        DownloadError, match=r"the disk holding .* is full; free some space and re-run to resume data\.bin"
    ) as error:
        fetch_file(host.remote(), tmp_path)
    _one_line(error)


# -- hashing --------------------------------------------------------------------------------------
def test_wrong_hash_is_one_line_and_removes_the_part_file(host, tmp_path):
    remote = host.remote(sha256=hashlib.sha256(b"another file").hexdigest())
    with pytest.raises(
        DownloadError,
        match=r"^data\.bin failed its sha256 check \(expected [0-9a-f]{64}\); "
        "the file was removed",
    ) as error:
        fetch_file(remote, tmp_path)
    _one_line(error)
    assert left_in(tmp_path) == []


@pytest.mark.parametrize("recorded", ["sha256", "size"])
def test_an_html_page_in_place_of_a_file_with_a_recorded_sha256_or_size_is_named_as_one(host, tmp_path, recorded):
    """A login or error page sent with status 200 is named as one, whichever check it fails first.

    The sha256 (or size) check came first and said "report it if this repeats", sending the user
    to report a bug instead of opening the page.
    """
    remote = host.remote()
    if recorded == "size":
        remote = dataclasses.replace(remote, sha256=None, size=len(PAYLOAD))
    host.files["data.bin"] = b"<!DOCTYPE html><html><body>Please log in</body></html>"
    with pytest.raises(DownloadError, match=r"sent an HTML page .*not the file data\.bin; open http\S+ in a browser") as error:
        fetch_file(remote, tmp_path)
    _one_line(error)
    assert left_in(tmp_path) == []


def test_a_body_longer_than_announced_is_cut_at_the_announced_length(host, tmp_path):
    """Bytes past the Content-Length are not part of the file (urllib3 reads only what was announced)."""
    remote = host.remote()
    host.trailing["data.bin"] = b"<html>trailing junk</html>" * 100
    assert fetch_file(remote, tmp_path, retries=0).read_bytes() == PAYLOAD


@pytest.mark.parametrize("sha256", ["auto", None], ids=["sha256-recorded", "no-sha256"])
def test_a_body_without_a_length_cut_short_is_found_and_resumed(host, tmp_path, sha256):
    """No Content-Length: a connection closed early looked like the end of the file.

    With a sha256 recorded the file failed it and was fetched again from byte 0; with none, the
    cut file was named complete. A Range request for the byte after the body finds the rest.
    """
    remote = host.remote(sha256=sha256)
    host.unannounced["data.bin"] = 3 * CHUNK_BYTES
    with pytest.raises(DownloadError) as error:
        fetch_file(remote, tmp_path, retries=0)
    assert _one_line(error) == (
        f"the connection to {host.url.removeprefix('http://')} was lost after 24576 bytes of data.bin (it announced "
        f"no length, and more bytes follow); {tmp_path / 'data.bin.part'} is kept, so re-run the same command to resume"
    )
    assert fetch_file(remote, tmp_path, retries=0).read_bytes() == PAYLOAD  # the re-run resumes it
    assert host.requests == [("/data.bin", None), ("/data.bin", "bytes=24576-24576"), ("/data.bin", "bytes=24576-")]

    (tmp_path / "data.bin").unlink()
    host.unannounced["data.bin"] = 3 * CHUNK_BYTES
    assert fetch_file(remote, tmp_path).read_bytes() == PAYLOAD  # within one run: a retry resumes it
    assert left_in(tmp_path) == ["data.bin"]


def test_a_whole_body_without_a_length_is_confirmed_by_the_host(host, tmp_path):
    """The host answers the request for the byte after the body with 416: nothing follows, the file is whole."""
    remote = host.remote(sha256=None)
    host.unannounced["data.bin"] = len(PAYLOAD)
    assert fetch_file(remote, tmp_path, retries=0).read_bytes() == PAYLOAD
    assert host.requests == [("/data.bin", None), ("/data.bin", f"bytes={len(PAYLOAD)}-{len(PAYLOAD)}")]


def test_a_body_without_a_length_nothing_can_check_is_not_named_complete(host, tmp_path, monkeypatch):
    """No length, no sha256, no zip end record, and a host that ignores Range requests: the cut file was named whole."""
    remote = host.remote(sha256=None)
    host.unannounced["data.bin"] = 3 * CHUNK_BYTES
    host.ignore_range["data.bin"] = 200
    with pytest.raises(DownloadError) as error:
        fetch_file(remote, tmp_path, retries=0)
    assert _one_line(error) == (
        f"{host.url.removeprefix('http://')} sent data.bin without announcing its length and would not say whether "
        "more follows the 24576 bytes received, and no sha256 is recorded for it, so a connection closed early cannot "
        f"be told from its end; {tmp_path / 'data.bin.part'} is kept, not named data.bin: compare its size with the "
        "one the data set's page gives and rename it if they match, or re-run to fetch it again"
    )
    assert left_in(tmp_path) == ["data.bin.part"]
    assert (tmp_path / "data.bin.part").read_bytes() == PAYLOAD[: 3 * CHUNK_BYTES]


@pytest.mark.parametrize("dropped", [False, True])
def test_a_file_stored_with_content_encoding_gzip_is_kept_as_stored(host, tmp_path, dropped):
    """A ``.tar.gz`` on S3 with ``Content-Encoding: gzip``: requests decoded it into the ``.tar``.

    That was longer than its Content-Length and failed the size check on every run; its Range
    offsets and a recorded sha256 count the stored bytes too.
    """
    import gzip

    stored = gzip.compress(PAYLOAD, mtime=0)
    remote = host.remote("set.tar.gz", stored)
    host.encoded.add("set.tar.gz")
    if dropped:
        host.hang_up_after["set.tar.gz"] = len(stored) // 2
    assert fetch_file(remote, tmp_path).read_bytes() == stored
    assert left_in(tmp_path) == ["set.tar.gz"]


def test_wrong_hash_after_a_resume_removes_the_part_file(host, tmp_path):
    remote = host.remote()
    (tmp_path / "data.bin.part").write_bytes(b"\xff" * 1000)  # a corrupt start that the resume keeps
    with pytest.raises(DownloadError, match="failed its sha256 check"):
        fetch_file(remote, tmp_path)
    assert host.requests == [("/data.bin", "bytes=1000-")]
    assert left_in(tmp_path) == []


def test_a_final_file_that_fails_its_hash_is_fetched_again(host, tmp_path):
    remote = host.remote()
    (tmp_path / "data.bin").write_bytes(b"stale")
    assert fetch_file(remote, tmp_path).read_bytes() == PAYLOAD
    assert host.requests == [("/data.bin", None)]


# -- resuming (written around pooch, which restarts from byte 0) ----------------------------------
def test_part_file_already_complete(host, tmp_path):
    """A part file holding every byte (a run stopped before the rename): the server answers 416."""
    remote = host.remote()
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    assert fetch_file(remote, tmp_path).read_bytes() == PAYLOAD
    assert host.requests == [("/data.bin", f"bytes={len(PAYLOAD)}-")]
    assert not (tmp_path / "data.bin.part").exists()


def test_a_part_file_longer_than_the_file_is_fetched_again(host, tmp_path):
    """The part file holds more bytes than the file now has (an earlier, longer version; no version recorded).

    The host answers the Range with 416 and the file's size; the part file was taken as whole,
    and with no sha256 or archive to check, the longer bytes were kept as the file.
    """
    remote = host.remote(sha256=None)
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD + b"\xff" * 5000)
    assert fetch_file(remote, tmp_path, retries=0).read_bytes() == PAYLOAD
    assert host.requests == [("/data.bin", f"bytes={len(PAYLOAD) + 5000}-"), ("/data.bin", None)]
    assert left_in(tmp_path) == ["data.bin"]


def test_server_ignoring_range_starts_again(host, tmp_path):
    """A server that answers 200 to a Range request: the part file is emptied, not appended to."""
    remote = host.remote()
    host.ignore_range["data.bin"] = 200
    (tmp_path / "data.bin.part").write_bytes(b"\xff" * 5000)
    assert fetch_file(remote, tmp_path).read_bytes() == PAYLOAD
    assert host.requests == [("/data.bin", "bytes=5000-")]


@pytest.mark.parametrize("sha256", ["auto", None], ids=["sha256-recorded", "no-sha256"])
def test_a_proxys_203_with_the_whole_file_starts_it_again(host, tmp_path, caplog, sha256):
    """A proxy answers ``Range: bytes=5000-`` with 203 and the whole file: only a 200 emptied the part file.

    The whole body was appended to the 5000 bytes kept: the sha256 check (or, with none recorded,
    the size check) removed the file, and the next run fetched it again, through the same proxy.
    """
    import logging

    remote = host.remote(sha256=sha256)
    host.ignore_range["data.bin"] = 203
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:5000])
    caplog.set_level(logging.INFO, logger="biofound_cli.dataset_download")
    assert fetch_file(remote, tmp_path, retries=0).read_bytes() == PAYLOAD
    assert host.requests == [("/data.bin", "bytes=5000-"), ("/data.bin", None)]
    assert left_in(tmp_path) == ["data.bin"]
    assert "with HTTP 203 and the whole file (not 206 and the bytes from 5000); dropping the 5000 bytes kept" in caplog.text


@pytest.mark.parametrize("sent", [0, 9000, None], ids=["from-0", "from-a-later-byte", "no-content-range"])
def test_a_206_from_another_byte_than_asked_is_not_appended(host, tmp_path, caplog, sent):
    """A proxy answers ``Range: bytes=5000-`` with 206 and the right number of bytes, from another byte.

    Appended at byte 5000 they made a file of the right size with the wrong bytes, and with no
    sha256 recorded (as for every open data set today) nothing caught it.
    """
    remote = host.remote(sha256=None)
    host.misplaced["data.bin"] = sent
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:5000])
    with caplog.at_level("INFO", logger=dataset_download.__name__):
        assert fetch_file(remote, tmp_path, retries=0).read_bytes() == PAYLOAD
    assert host.requests == [("/data.bin", "bytes=5000-"), ("/data.bin", None)]
    [line] = [record.getMessage() for record in caplog.records if "data.bin" in record.getMessage()]
    answered = "no Content-Range" if sent is None else f"Content-Range 'bytes {sent}-"
    assert f"with HTTP 206 and {answered}" in line and "(not bytes 5000-)" in line
    assert line.endswith("dropping the 5000 bytes kept and fetching it from the start")
    assert left_in(tmp_path) == ["data.bin"]


def test_a_206_naming_another_size_than_recorded_is_not_appended(host, tmp_path):
    """The Content-Range starts at the byte asked for but names another total than the recorded size: another version."""
    host.files["data.bin"] = PAYLOAD + b"new tail"
    remote = RemoteFile(f"{host.url}/data.bin", "data.bin", size=len(PAYLOAD))
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:5000])
    with pytest.raises(DownloadError, match=f"has {len(PAYLOAD) + 8} bytes, not the expected {len(PAYLOAD)}"):
        fetch_file(remote, tmp_path, retries=0)
    assert host.requests == [("/data.bin", "bytes=5000-"), ("/data.bin", None)]


def test_hang_up_between_chunks_keeps_the_received_prefix(host, tmp_path):
    """requests hands over whole chunks only, so at most one chunk of received bytes is fetched again."""
    remote = host.remote()
    sent = 3 * CHUNK_BYTES + 1234
    host.hang_up_after["data.bin"] = sent
    with pytest.raises(DownloadError, match=r"lost after \d+ bytes of data\.bin .*is kept, so re-run") as error:
        fetch_file(remote, tmp_path, retries=0)
    short = len(PAYLOAD) - sent
    assert f"(the host closed it {short} bytes short of the length it announced)" in _one_line(error)
    kept = (tmp_path / "data.bin.part").read_bytes()
    assert sent - CHUNK_BYTES < len(kept) <= sent and kept == PAYLOAD[: len(kept)]
    assert fetch_file(remote, tmp_path, retries=0).read_bytes() == PAYLOAD
    assert host.requests[-1] == ("/data.bin", f"bytes={len(kept)}-")


@pytest.mark.parametrize("validator", ["ETag", "Last-Modified"])
@pytest.mark.parametrize("changed", [True, False])
def test_a_resume_asks_if_range_and_starts_again_when_the_file_changed(host, tmp_path, validator, changed):
    """The file is replaced on the server between two runs: the resume must not splice the two versions.

    No sha256 is recorded (as for every open data set today), so nothing else would catch it.
    """
    host.validator = validator
    host.modified["data.bin"] = "Mon, 02 Nov 2026 10:00:00 GMT"
    remote = host.remote(sha256=None)
    host.hang_up_after["data.bin"] = 3 * CHUNK_BYTES
    with pytest.raises(DownloadError, match="is kept, so re-run"):
        fetch_file(remote, tmp_path, retries=0)
    kept = (tmp_path / "data.bin.part").stat().st_size
    first_version = f'"{hashlib.sha256(PAYLOAD).hexdigest()}"' if validator == "ETag" else host.modified["data.bin"]
    if changed:  # a new release of the same size
        host.files["data.bin"] = bytes(reversed(PAYLOAD))
        host.modified["data.bin"] = "Tue, 03 Nov 2026 10:00:00 GMT"

    assert fetch_file(remote, tmp_path, retries=0).read_bytes() == host.files["data.bin"]
    assert host.requests[-1] == ("/data.bin", f"bytes={kept}-") and host.if_range[-1] == first_version
    assert left_in(tmp_path) == ["data.bin"]  # nothing left beside it


def test_hang_up_within_the_first_chunk_leaves_no_empty_part_file(host, tmp_path):
    remote = host.remote()
    host.hang_up_after["data.bin"] = CHUNK_BYTES // 2
    with pytest.raises(DownloadError, match=r"lost before any of data\.bin was saved .*re-run the same command$") as error:
        fetch_file(remote, tmp_path, retries=0)
    _one_line(error)
    assert left_in(tmp_path) == []


def test_redirect_is_followed(host, tmp_path):
    remote = host.remote("data.bin")
    host.redirect["mirror.bin"] = "data.bin"
    moved = RemoteFile(f"{host.url}/mirror.bin", "data.bin", sha256=remote.sha256)
    assert fetch_file(moved, tmp_path).read_bytes() == PAYLOAD
    assert [path for path, _ in host.requests] == ["/mirror.bin", "/data.bin"]


@pytest.mark.parametrize("fails", ["HTTP 503", "hang-up", "refused"])
def test_a_failure_where_a_redirect_led_names_that_host_and_the_one_that_redirected(host, tmp_path, fails):
    """Zenodo and PhysioNet redirect to storage elsewhere: a 503, a hang-up or a refused connection there was
    blamed on the host the URL names, which had answered fine with the redirect."""
    import socket

    storage = LoopbackHost()
    try:
        storage.files["data.bin"] = PAYLOAD
        target = f"{storage.url}/data.bin"
        if fails == "HTTP 503":
            storage.status["data.bin"] = 503
        elif fails == "hang-up":
            storage.hang_up_after["data.bin"] = 3 * CHUNK_BYTES
        else:
            with socket.socket() as closed:  # a port nothing listens on
                closed.bind(("127.0.0.1", 0))
                target = f"http://127.0.0.1:{closed.getsockname()[1]}/data.bin"
        host.redirect["data.bin"] = target
        with pytest.raises(DownloadError) as error:
            fetch_file(RemoteFile(f"{host.url}/data.bin", "data.bin"), tmp_path, retries=0)
    finally:
        storage.stop()
    message = _one_line(error)
    asked, sent_to = host.url.removeprefix("http://"), target.removeprefix("http://").split("/")[0]
    assert f"{sent_to} (where {asked} redirected data.bin)" in message, message


def test_user_agent_and_no_compression(host, tmp_path, monkeypatch):
    seen: list[dict[str, str]] = []
    import requests

    real_send = requests.Session.send

    def spy(self, request, **kwargs):
        seen.append(dict(request.headers))
        return real_send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", spy)
    fetch_file(host.remote(), tmp_path)
    assert seen[0]["User-Agent"].startswith("biofound/") and seen[0]["Accept-Encoding"] == "identity"


# -- progress through pooch's progress-bar protocol -----------------------------------------------
class _Recorder:
    """A :class:`~biofound_cli.progress.ProgressReporter` that records each bar's total and advances."""

    def __init__(self) -> None:
        self.bars: list[dict] = []
        self.before: list[int] = []  # each bar's done=: the bytes kept from an earlier try

    def task(self, total, description, unit="items", *, done=0):
        self.before.append(done)
        return self._bar(total, description, done)

    def _bar(self, total, description, done):
        recorder = self

        class Bar:
            def __enter__(self):
                recorder.bars.append({"total": total, "description": description, "done": done, "closed": False})
                return self

            def advance(self, amount=1):
                recorder.bars[-1]["done"] += amount

            def set_description(self, description):
                recorder.bars[-1]["description"] = description

            def __exit__(self, *exc):
                recorder.bars[-1]["closed"] = True

        return Bar()


class _RecorderWithoutDone(_Recorder):
    """A reporter written before ``task`` took ``done=``."""

    def task(self, total, description, unit="items"):
        return self._bar(total, description, 0)


@pytest.mark.parametrize("recorder_class", [_Recorder, _RecorderWithoutDone])
def test_progress_counts_every_byte_fresh_and_resumed(host, tmp_path, recorder_class):
    remote = host.remote()
    recorder = recorder_class()
    fetch_file(remote, tmp_path, reporter=recorder)
    assert recorder.bars == [{"total": len(PAYLOAD), "description": "downloading data.bin", "done": len(PAYLOAD), "closed": True}]

    (tmp_path / "data.bin").unlink()
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:10_000])
    recorder = recorder_class()
    fetch_file(remote, tmp_path, reporter=recorder)
    assert recorder.bars[0]["total"] == len(PAYLOAD) and recorder.bars[0]["done"] == len(PAYLOAD)
    # The bytes kept are the task's done= (not this try's, so not in its rate); advanced, they read
    # as received in the first instant.
    assert recorder.before == ([10_000] if recorder_class is _Recorder else [])


def test_progress_counts_the_bytes_of_a_body_without_a_length(host, tmp_path):
    """No Content-Length: pooch reports each chunk as a whole 8 KiB, and the bar counted the short last one so."""
    content = PAYLOAD[: 5 * CHUNK_BYTES + 1234]
    remote = host.remote("data.bin", content)
    host.unannounced["data.bin"] = len(content)
    recorder = _Recorder()
    assert fetch_file(remote, tmp_path, reporter=recorder).read_bytes() == content
    assert recorder.bars == [{"total": None, "description": "downloading data.bin", "done": len(content), "closed": True}]


def test_progress_of_a_chunked_body_counts_its_bytes_and_the_summary_names_its_last_chunk(host, tmp_path, monkeypatch):
    """A body sent in chunks (no Content-Length): its bar and the summary's words had no test against a real host."""
    import io
    import zipfile

    from biofound_cli.cli.app import app

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("EMG_data_for_gestures-master/01/1_raw.txt", bytes(range(256)) * 100)
    content = buffer.getvalue()
    remote = host.remote("data.zip", content, sha256=None)
    host.chunked["data.zip"] = None
    recorder = _Recorder()
    assert fetch_file(remote, tmp_path, reporter=recorder).read_bytes() == content
    assert recorder.bars == [{"total": None, "description": "downloading data.zip", "done": len(content), "closed": True}]
    assert host.requests == [("/data.zip", None)]  # the last chunk ends it: no Range request asks the host

    name = "static/public/481/emg+data+for+gestures.zip"
    host.files[name] = content
    host.chunked[name] = None
    monkeypatch.setenv(BASE_URL_VARIABLE, host.url)
    result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["checks"] == [
        f"fetched: no size announced; {len(content)} bytes received up to the chunked body's last chunk, zip structure "
        "(no sha256 recorded)"
    ]


@pytest.mark.parametrize(
    ("cut", "why"),
    [
        (5 * 5000, "the host closed it before the chunked body's last chunk"),
        (5 * 5000 + 1234, "the host closed it 3766 bytes short of the end of a chunk of the body"),
    ],
    ids=["between-chunks", "within-a-chunk"],
)
def test_a_chunked_body_cut_short_is_resumed(host, tmp_path, cut, why):
    """A chunked body whose connection closes before its last chunk is a drop: its bytes kept, the rest asked for.

    The line said why in urllib3's words: ``invalid literal for int() with base 16: b''`` between
    chunks, and "3766 bytes short of the length it announced" of a body that announced no length.
    """
    remote = host.remote(sha256=None)
    host.chunked["data.bin"] = cut
    with pytest.raises(DownloadError) as error:
        fetch_file(remote, tmp_path, retries=0)
    part = tmp_path / "data.bin.part"
    kept = part.stat().st_size
    assert _one_line(error) == (
        f"the connection to {host.url.removeprefix('http://')} was lost after {kept} bytes of data.bin ({why}); "
        f"{part} is kept, so re-run the same command to resume"
    )
    assert fetch_file(remote, tmp_path, retries=0).read_bytes() == PAYLOAD
    assert host.requests[-1] == ("/data.bin", f"bytes={kept}-")


def test_progress_bar_closed_after_a_drop(host, tmp_path):
    remote = host.remote()
    host.hang_up_after["data.bin"] = 3 * CHUNK_BYTES
    recorder = _Recorder()
    assert fetch_file(remote, tmp_path, reporter=recorder, retries=1).read_bytes() == PAYLOAD
    assert [bar["closed"] for bar in recorder.bars] == [True, True]
    assert recorder.bars[1]["done"] == len(PAYLOAD)  # the resumed bar starts at the bytes already kept


def test_sha256_is_poochs(tmp_path, monkeypatch):
    calls = []
    import pooch

    real = pooch.file_hash
    monkeypatch.setattr(pooch, "file_hash", lambda *a, **k: calls.append(a) or real(*a, **k))
    (tmp_path / "x").write_bytes(b"abc")
    # pooch's hash is the sha256: the file checks out against hashlib's digest and fails against another.
    assert dataset_download._problem(tmp_path / "x", RemoteFile("u", "x", sha256=hashlib.sha256(b"abc").hexdigest()), 3) is None
    assert "sha256" in dataset_download._problem(tmp_path / "x", RemoteFile("u", "x", sha256="0" * 64), 3)
    assert calls


# -- the command: exit status 1 and the one-line message ------------------------------------------
def test_command_prints_one_line_and_exits_1(host, tmp_path, monkeypatch):
    from biofound_cli.cli.app import app

    host.status["static/public/481/emg+data+for+gestures.zip"] = 500
    monkeypatch.setenv(BASE_URL_VARIABLE, host.url)
    result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ok"] is False and summary["exit_status"] == 1
    assert summary["error"] == (
        f"127.0.0.1:{host.url.rsplit(':', 1)[1]} answered HTTP 500 for emg+data+for+gestures.zip; try again later"
    )


def test_a_file_of_a_set_refused_or_missing_is_named_and_the_others_are_fetched(host, tmp_path, monkeypatch):
    """One file of DB5 answered 403 (and one 404): every file after it was left unfetched, on every re-run."""
    import io
    import zipfile

    from biofound_cli.cli.app import app

    for subject in range(1, 11):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            bundle.writestr(f"s{subject}/S{subject}_E1_A1.mat", b"emg")
        host.files[f"files/DB5_Preproc/s{subject}.zip"] = buffer.getvalue()
    host.status["files/DB5_Preproc/s3.zip"] = 403
    host.status["files/DB5_Preproc/s7.zip"] = 404
    monkeypatch.setenv(BASE_URL_VARIABLE, host.url)
    args = ["download", "db5", "--dest", str(tmp_path), "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["error"] == (
        f"2 of the 10 files of db5 could not be downloaded (s3.zip, s7.zip: each named above); the other 8 are in "
        f"{tmp_path / 'db5'}; see https://ninapro.hevs.ch/instructions/DB5.html, then re-run the same command, "
        "which fetches only what is missing"
    )
    assert [line.split(" (HTTP")[0] for line in summary["warnings"]] == [
        f"127.0.0.1:{host.url.rsplit(':', 1)[1]} refused s3.zip",
        f"{host.url}/files/DB5_Preproc/s7.zip was not found",
    ]
    assert sorted(path.name for path in (tmp_path / "db5").glob("s*") if path.is_dir()) == sorted(
        f"s{subject}" for subject in (1, 2, 4, 5, 6, 8, 9, 10)
    )
    assert "Traceback" not in result.output
    del host.status["files/DB5_Preproc/s3.zip"], host.status["files/DB5_Preproc/s7.zip"]
    host.requests.clear()
    assert CliRunner().invoke(app, args).exit_code == 0
    assert [path for path, _ in host.requests] == ["/files/DB5_Preproc/s3.zip", "/files/DB5_Preproc/s7.zip"]


@pytest.mark.parametrize("status", [403, 404])
def test_a_refused_or_missing_archive_names_the_data_sets_page_not_its_own_address(host, tmp_path, monkeypatch, status):
    """A 404 said "the data set may have moved, see URL" of the very URL that failed; a 403 named no page at all."""
    from biofound_cli.cli.app import app

    dataset = dataset_download.OPEN_DATASETS["uci-emg"]
    moved = dataclasses.replace(dataset, files=(RemoteFile(f"{host.url}/481/gestures.zip", "gestures.zip", archive="zip"),))
    monkeypatch.setitem(dataset_download.OPEN_DATASETS, "uci-emg", moved)
    host.status["481/gestures.zip"] = status
    result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
    assert result.exit_code == 1, result.output
    why = (
        f"127.0.0.1:{host.url.rsplit(':', 1)[1]} refused gestures.zip (HTTP 403); the data set may need a login or "
        "acceptance of its terms"
        if status == 403
        else f"{host.url}/481/gestures.zip was not found (HTTP 404); the data set may have moved"
    )
    assert json.loads(result.stdout.strip().splitlines()[-1])["error"] == f"{why}; see {dataset.page}"


def test_a_stop_while_the_received_file_is_checked_names_the_part_file_kept(host, tmp_path, monkeypatch):
    """A SIGTERM while the whole file was hashed (minutes for a large archive) said "nothing of the file
    was kept yet, so re-run the same command to download it" beside the whole part file kept."""
    import os
    import signal

    from biofound_cli.cli.app import app

    host.files["static/public/481/emg+data+for+gestures.zip"] = PAYLOAD
    monkeypatch.setenv(BASE_URL_VARIABLE, host.url)
    check_complete = dataset_download._check_complete

    def stopped_while_checking(part, *args):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at the next bytecode, as the check is under way
        return check_complete(part, *args)

    monkeypatch.setattr(dataset_download, "_check_complete", stopped_while_checking)
    result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json", "--no-progress"])
    assert result.exit_code == ExitStatus.TERMINATED, result.output
    part = tmp_path / "uci-emg" / "archives" / "emg+data+for+gestures.zip.part"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["error"] == (
        f"stopped by SIGTERM; the {len(PAYLOAD)} bytes received are kept in {part}, "
        "so re-run the same command to resume the download"
    )
    assert part.read_bytes() == PAYLOAD and not part.with_suffix("").exists()


@pytest.mark.parametrize(
    ("unannounced", "ignore_range", "checked"),
    [
        (False, False, "size announced by the server"),
        (True, False, "no size announced; {size} bytes received, confirmed whole by the host"),
        (True, True, "no size announced; {size} bytes received"),  # a host that ignores Range: the zip end record
    ],
)
def test_the_summary_says_how_the_size_of_a_data_set_file_was_known(
    host, tmp_path, monkeypatch, unannounced, ignore_range, checked
):
    """The summary said "size announced by the server" of a body sent without a length, whether or not a 416 confirmed it."""
    import io
    import zipfile

    from biofound_cli.cli.app import app

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("EMG_data_for_gestures-master/01/1_raw.txt", "time\tch1\tclass\n")
    name = "static/public/481/emg+data+for+gestures.zip"
    host.files[name] = buffer.getvalue()
    if unannounced:
        host.unannounced[name] = len(buffer.getvalue())
    if ignore_range:
        host.ignore_range[name] = 200
    monkeypatch.setenv(BASE_URL_VARIABLE, host.url)
    result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    expected = checked.format(size=len(buffer.getvalue()))
    assert summary["checks"] == [f"fetched: {expected}, zip structure (no sha256 recorded)"]


def test_the_summary_says_whether_each_file_was_fetched_resumed_or_already_there(host, tmp_path, monkeypatch):
    """A file already there from an earlier run was summarised "size announced by the server" though nothing was asked."""
    import io
    import zipfile

    from biofound_cli.cli.app import app

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("EMG_data_for_gestures-master/01/1_raw.txt", bytes(range(256)) * 200)
    content = buffer.getvalue()
    name = "static/public/481/emg+data+for+gestures.zip"
    host.files[name] = content
    monkeypatch.setenv(BASE_URL_VARIABLE, host.url)
    archives = tmp_path / "uci-emg" / "archives"
    archives.mkdir(parents=True)
    (archives / "emg+data+for+gestures.zip.part").write_bytes(content[:10_000])

    def checks() -> list[str]:
        result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])["checks"]

    assert checks() == ["resumed from byte 10000: size announced by the server, zip structure (no sha256 recorded)"]
    assert host.requests == [(f"/{name}", "bytes=10000-")]
    assert checks() == ["already there: zip structure (no sha256 recorded)"]
    assert len(host.requests) == 1  # nothing asked of the host
    (archives / "emg+data+for+gestures.zip").unlink()
    assert checks() == ["fetched: size announced by the server, zip structure (no sha256 recorded)"]
