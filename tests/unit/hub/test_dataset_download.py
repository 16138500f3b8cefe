"""Open data sets from a loopback file server: sha256, resume, checksum mismatch, 404; TUH rsync."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from fixtures.fake_hub import left_in

from biofound_cli.dataset_download import (
    TUH_KEY_VARIABLE,
    RemoteFile,
    download_tuh,
    extract,
    fetch_file,
    tuh_rsync_command,
)
from biofound_cli.errors import UsageError
from biofound_cli.hub import DownloadError

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


def _remote(server, name="data.bin", content=PAYLOAD, sha256=True, size=None) -> RemoteFile:
    server.files[name] = content
    digest = hashlib.sha256(content).hexdigest() if sha256 else None
    return RemoteFile(f"{server.url}/files/{name}", name, size=size, sha256=digest)


def test_download_with_sha256(fake_hub, tmp_path):
    path = fetch_file(_remote(fake_hub), tmp_path)
    assert path == tmp_path / "data.bin" and path.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    # a second call finds the verified file and sends nothing
    fake_hub.requests.clear()
    assert fetch_file(_remote(fake_hub), tmp_path) == path
    assert fake_hub.requests == []


def test_resume_after_a_dropped_connection(fake_hub, tmp_path):
    remote = _remote(fake_hub)
    fake_hub.drop_once.add("data.bin")
    with pytest.raises(DownloadError, match="is kept, so re-run the same command to resume"):
        fetch_file(remote, tmp_path, retries=0)
    part = tmp_path / "data.bin.part"
    assert part.stat().st_size == len(PAYLOAD) // 2
    assert not (tmp_path / "data.bin").exists()
    path = fetch_file(remote, tmp_path, retries=0)
    assert path.read_bytes() == PAYLOAD
    assert fake_hub.requests[-1] == ("GET", "/files/data.bin", f"bytes={len(PAYLOAD) // 2}-")


@pytest.mark.parametrize("status", [503, 429, 403])
def test_a_host_that_fails_after_a_dropped_connection_says_the_bytes_are_kept(fake_hub, tmp_path, monkeypatch, status):
    """The link drops half way and the host then answers an error to the resume (after the retries for a 503).

    The line said only "HOST answered HTTP 503 for FILE; try again later", as if nothing had
    arrived, where a dropped connection says the part file is kept: a user may delete the folder.
    """
    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("set/data.bin", PAYLOAD)
    name = "static/public/481/emg+data+for+gestures.zip"
    fake_hub.files[name] = buffer.getvalue()
    fake_hub.drop_once.add(name)
    fake_hub.outage_after_drop = status
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")
    args = ["download", "uci-emg", "--dest", str(tmp_path / "data"), "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    [part] = list(tmp_path.rglob("*.part"))
    kept = part.stat().st_size
    error = json.loads(result.stdout)["error"]
    # A refusal (403) goes on to name the data set's page; the bytes kept are said either way.
    assert f"HTTP {status}" in error and f"; the {kept} bytes received are kept in {part}, so the re-run resumes" in error

    fake_hub.outage = None
    fake_hub.requests.clear()
    assert CliRunner().invoke(app, args).exit_code == 0
    assert fake_hub.requests == [("GET", f"/files/{name}", f"bytes={kept}-")]
    assert (tmp_path / "data" / "uci-emg" / "set" / "data.bin").read_bytes() == PAYLOAD


def test_a_second_run_of_the_same_download_waits_instead_of_appending_to_the_part_file(fake_hub, tmp_path):
    """Two runs at once (two terminals, a job array): the second waits for the first and finds the file whole.

    Without a lock both append to the one part file, which then holds more bytes than the file.
    """
    import threading

    remote = _remote(fake_hub, content=PAYLOAD * 4, sha256=False)  # only the announced size is checked
    fake_hub.rate = len(PAYLOAD)  # four seconds for the whole file: the second run starts half way
    first: dict[str, object] = {}

    def run_first() -> None:
        try:
            first["path"] = fetch_file(remote, tmp_path, retries=0)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            first["error"] = error

    thread = threading.Thread(target=run_first)
    thread.start()
    while fake_hub.sent.get("/files/data.bin", 0) < 2 * len(PAYLOAD) and thread.is_alive():
        time.sleep(0.02)
    try:
        second = fetch_file(remote, tmp_path, retries=0)
    finally:
        thread.join()
    assert "error" not in first, first
    assert first["path"] == second and second.read_bytes() == PAYLOAD * 4
    assert [path for method, path, _ in fake_hub.requests if method == "GET"] == ["/files/data.bin"]
    assert not (tmp_path / "data.bin.part").exists()


def test_a_run_waiting_on_the_lock_and_a_run_started_later_exclude_each_other(fake_hub, tmp_path, caplog):
    """The lock file outlives the run that held it, so every run locks the same file.

    A second run had already opened ``data.bin.lock`` when the first one failed (leaving a part
    file) and removed it; a third run then made a new lock file, and both resumed the part file at
    once. Here the second run is the test holding the lock on the file it opened before the first
    run ended; the third must wait for it.
    """
    import fcntl
    import logging
    import os
    import threading

    remote = _remote(fake_hub)
    lock = tmp_path / "data.bin.lock"
    lock.touch()
    waiting = os.open(lock, os.O_RDWR)  # the second run, polling for the lock the first holds
    try:
        fake_hub.drop_once.add("data.bin")
        with pytest.raises(DownloadError, match="is kept, so re-run the same command to resume"):
            fetch_file(remote, tmp_path, retries=0)
        fcntl.flock(waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the second run now holds "the lock"
        caplog.set_level(logging.INFO, logger="biofound_cli.hub_files")
        third: dict[str, object] = {}

        def run_third() -> None:
            try:
                third["path"] = fetch_file(remote, tmp_path, retries=0)
            except Exception as error:  # noqa: BLE001 - reported by the assertions below
                third["error"] = error

        thread = threading.Thread(target=run_third)
        thread.start()
        while thread.is_alive() and "another download of data.bin is under way" not in caplog.text:
            time.sleep(0.02)
        resumed_meanwhile = [r for method, _, r in fake_hub.requests if method == "GET" and r is not None]
    finally:
        os.close(waiting)  # the second run ends
    thread.join()
    assert resumed_meanwhile == []  # the third run sent nothing while the second held the lock
    assert "another download of data.bin is under way" in caplog.text
    assert "error" not in third, third
    assert Path(str(third["path"])).read_bytes() == PAYLOAD


def test_retry_resumes_within_one_call(fake_hub, tmp_path):
    remote = _remote(fake_hub)
    fake_hub.drop_once.add("data.bin")
    assert fetch_file(remote, tmp_path, retries=1).read_bytes() == PAYLOAD
    assert [r for _, _, r in fake_hub.requests] == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_checksum_mismatch_leaves_nothing(fake_hub, tmp_path):
    remote = RemoteFile(f"{fake_hub.url}/files/data.bin", "data.bin", sha256="0" * 64)
    fake_hub.files["data.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="failed its sha256 check"):
        fetch_file(remote, tmp_path)
    assert left_in(tmp_path) == []


def test_size_only_check_without_checksum(fake_hub, tmp_path):
    remote = _remote(fake_hub, sha256=False, size=len(PAYLOAD) + 1)
    with pytest.raises(DownloadError, match="not the expected"):
        fetch_file(remote, tmp_path)
    assert left_in(tmp_path) == []


def test_not_found(fake_hub, tmp_path):
    remote = RemoteFile(f"{fake_hub.url}/files/missing.zip", "missing.zip")
    with pytest.raises(DownloadError, match=r"was not found \(HTTP 404\)"):
        fetch_file(remote, tmp_path)
    assert not (tmp_path / "missing.zip").exists()


def test_unreachable_server(fake_hub, tmp_path):
    remote = _remote(fake_hub)
    fake_hub.stop()
    with pytest.raises(DownloadError, match="cannot reach 127.0.0.1"):
        fetch_file(remote, tmp_path, timeout=5)


def test_extract_zip_once_and_refuse_escapes(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("set/01/a.txt", "1 2 3\n")
    archive = tmp_path / "set.zip"
    archive.write_bytes(buffer.getvalue())
    out = extract(archive, tmp_path / "out")
    assert (out / "set" / "01" / "a.txt").read_text() == "1 2 3\n"
    assert (out / ".set.zip.extracted").exists()

    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as bundle:
        bundle.writestr("../escape.txt", "x")
    bad = tmp_path / "evil.zip"
    bad.write_bytes(evil.getvalue())
    with pytest.raises(DownloadError, match="points outside"):
        extract(bad, tmp_path / "out2")
    assert not (tmp_path / "escape.txt").exists()


def test_tuh_rsync_command_construction(tmp_path):
    command = tuh_rsync_command("tuab", tmp_path, ssh_key="/keys/id_ed25519")
    assert command == [
        "rsync",
        "-auxvL",
        "-e",
        "ssh -i /keys/id_ed25519",
        "nedc-tuh-eeg@www.isip.piconepress.com:data/tuh_eeg/tuh_eeg_abnormal/v3.0.1/",
        f"{tmp_path / 'tuab'}/",
    ]
    assert tuh_rsync_command("tueg", tmp_path, user="me")[2] == "me@www.isip.piconepress.com:data/tuh_eeg/tuh_eeg/v2.0.2/"
    with pytest.raises(UsageError):
        tuh_rsync_command("tuxx", tmp_path)


def test_tuh_without_credentials_only_explains(tmp_path):
    calls = []
    result = download_tuh("tusl", tmp_path, environ={}, run=calls.append)
    assert result["ran"] is False and calls == []
    assert any("data-sharing form" in line for line in result["steps"])
    assert "tuh_eeg_slowing/v2.0.1/" in result["command"][-2]


def test_tuh_with_credentials_runs_rsync(tmp_path):
    key = tmp_path / "id_ed25519"
    key.write_text("key")
    calls: list[list[str]] = []

    def fake_rsync(command):
        calls.append(list(command))
        return 0

    result = download_tuh("tuar", tmp_path, environ={TUH_KEY_VARIABLE: str(key)}, run=fake_rsync)
    assert result["ran"] is True
    assert calls == [tuh_rsync_command("tuar", tmp_path, ssh_key=str(key))]
    with pytest.raises(DownloadError, match="exited with status 23"):
        download_tuh("tuar", tmp_path, environ={TUH_KEY_VARIABLE: str(key)}, run=lambda command: 23)


def _tar(path, members):
    import tarfile

    with tarfile.open(path, "w") as bundle:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(target)
                bundle.addfile(info, io.BytesIO(target))
            else:
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = target
                bundle.addfile(info)
    return path


def test_extract_tar_refuses_escapes(tmp_path):
    """pooch's Untar on Python 3.11 writes ``../../x`` outside its folder; extract() refuses the archive."""
    good = _tar(tmp_path / "good.tar", [("set/a.txt", "file", b"1\n"), ("set/b.txt", "symlink", "a.txt")])
    out = extract(good, tmp_path / "out")
    assert (out / "set" / "b.txt").read_text() == "1\n"
    for number, member in enumerate(
        [
            ("../../escape.txt", "file", b"x"),
            ("/tmp/escape.txt", "file", b"x"),
            ("set/link", "symlink", "../../.."),
            ("set/hard", "hardlink", "../outside"),
        ]
    ):
        bad = _tar(tmp_path / f"evil{number}.tar", [member])
        with pytest.raises(DownloadError, match="points outside .*the archive is not safe to unpack"):
            extract(bad, tmp_path / "nested" / f"out{number}")
        assert list((tmp_path / "nested" / f"out{number}").iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def _compressed_tar(mode: str) -> bytes:
    import os
    import tarfile

    buffer = io.BytesIO()
    content = os.urandom(100_000)  # does not compress: the damage lands in member data, not in a header
    with tarfile.open(fileobj=buffer, mode=mode) as bundle:
        for number in range(3):
            info = tarfile.TarInfo(f"set/part{number}.bin")
            info.size = len(content)
            bundle.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("mode", "where"),
    # bzip2 compresses 900 kB as one block: damage in its middle already fails the check before the rename.
    [("w:gz", "middle"), ("w:xz", "middle"), ("w:gz", "the end"), ("w:bz2", "the end"), ("w:xz", "the end")],
)
def test_a_damaged_compressed_tar_is_one_line_and_removed(tmp_path, mode, where):
    """A flipped byte in a .tar.gz/.bz2/.xz: bzip2 and xz raised OSError or LZMAError past the handler
    (a traceback); gzip was unpacked without a word, as tarfile stops before the CRC-32 at the end."""
    import tarfile

    damaged = bytearray(_compressed_tar(mode))
    for offset in range(len(damaged) // 2, len(damaged) // 2 + 40) if where == "middle" else [len(damaged) - 6]:
        damaged[offset] ^= 0xFF
    archive = tmp_path / "archives" / f"set.tar.{mode[2:]}"
    archive.parent.mkdir()
    archive.write_bytes(bytes(damaged))
    assert tarfile.is_tarfile(archive)  # what the download checks before the rename
    with pytest.raises(DownloadError) as caught:
        extract(archive, tmp_path / "set")
    message = caught.value.message
    assert message.startswith(f"{archive} is damaged (") and message.endswith("re-run the same command to download it again")
    assert "\n" not in message and not archive.exists() and not (tmp_path / "set" / f".{archive.name}.extracted").exists()


# -- what is not the archive expected: refused in one line, nothing unpacked, exit 1 every time ---
def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("s1/data.txt", "x" * 4000)
    return buffer.getvalue()


def test_an_html_page_is_refused(fake_hub, tmp_path):
    fake_hub.files["s1.zip"] = _zip_bytes()
    fake_hub.pages.add("s1.zip")  # a login or error page with status 200
    remote = RemoteFile(f"{fake_hub.url}/files/s1.zip", "s1.zip", archive="zip")
    with pytest.raises(DownloadError) as caught:
        fetch_file(remote, tmp_path)
    assert "sent an HTML page (an error or login page), not the zip archive s1.zip" in caught.value.message
    assert "\n" not in caught.value.message and left_in(tmp_path) == []


def test_a_zip_cut_short_is_refused(fake_hub, tmp_path):
    content = _zip_bytes()
    fake_hub.files["s1.zip"] = content
    fake_hub.truncate["s1.zip"] = len(content) // 2  # the server announces the short size too
    remote = RemoteFile(f"{fake_hub.url}/files/s1.zip", "s1.zip", archive="zip")
    with pytest.raises(DownloadError, match=r"s1.zip is not a complete zip archive \(\d+ bytes; cut short"):
        fetch_file(remote, tmp_path)
    assert left_in(tmp_path) == []


def test_an_html_page_kept_by_an_older_version_is_fetched_again(fake_hub, tmp_path):
    (tmp_path / "s1.zip").write_bytes(b"<!DOCTYPE html><html>Service unavailable</html>")
    fake_hub.files["s1.zip"] = _zip_bytes()
    remote = RemoteFile(f"{fake_hub.url}/files/s1.zip", "s1.zip", archive="zip")
    assert zipfile.is_zipfile(fetch_file(remote, tmp_path))


def test_the_command_exits_1_on_every_run_while_the_host_sends_a_page(fake_hub, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    name = "static/public/481/emg+data+for+gestures.zip"
    fake_hub.files[name] = _zip_bytes()
    fake_hub.pages.add(name)
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")
    for _ in range(2):
        result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path)])
        assert result.exit_code == 1, result.output
        assert "sent an HTML page" in result.output and "Traceback" not in result.output
    assert left_in(tmp_path / "uci-emg" / "archives") == []


def test_every_offered_file_is_an_archive_with_well_formed_facts():
    """Size and sha256 are recorded where known (None: not published, see docs/download.md)."""
    from biofound_cli.dataset_download import OPEN_DATASETS

    for dataset in OPEN_DATASETS.values():
        for remote in dataset.files:
            assert remote.archive == "zip", remote
            assert remote.size is None or remote.size > 0, remote
            assert remote.sha256 is None or (len(remote.sha256) == 64 and int(remote.sha256, 16) >= 0), remote


def test_a_recorded_size_and_sha256_are_checked(fake_hub, tmp_path):
    content = _zip_bytes()
    fake_hub.files["s1.zip"] = content
    good = RemoteFile(
        f"{fake_hub.url}/files/s1.zip", "s1.zip", size=len(content), sha256=hashlib.sha256(content).hexdigest(), archive="zip"
    )
    assert fetch_file(good, tmp_path).read_bytes() == content
    wrong = dataclasses.replace(good, filename="s2.zip", sha256="f" * 64)
    fake_hub.files["s2.zip"] = content
    with pytest.raises(DownloadError, match="s2.zip failed its sha256 check"):
        fetch_file(dataclasses.replace(wrong, url=f"{fake_hub.url}/files/s2.zip"), tmp_path)


def test_an_archive_whose_member_data_is_damaged_is_removed_and_fetched_again(fake_hub, tmp_path, monkeypatch):
    """Size and zip structure check out but a member does not decompress (zlib.error): one line, not a traceback."""
    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("s1/data.txt", bytes(range(256)).hex() * 40)
    good = buffer.getvalue()
    damaged = bytearray(good)
    for offset in range(60, 400, 7):  # inside the deflated data; the end-of-archive record stays intact
        damaged[offset] ^= 0xFF
    name = "static/public/481/emg+data+for+gestures.zip"
    fake_hub.files[name] = bytes(damaged)
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")
    archive = tmp_path / "uci-emg" / "archives" / "emg+data+for+gestures.zip"
    result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
    assert result.exit_code == 1, result.output
    failure = json.loads(result.stdout.strip().splitlines()[-1])
    assert failure["error"].startswith(f"{archive} is damaged (") and "re-run the same command" in failure["error"]
    assert "\n" not in failure["error"] and not archive.exists()
    assert not (tmp_path / "uci-emg" / "s1" / "data.txt").exists()  # the member half-written when it failed
    fake_hub.files[name] = good  # the host sends the archive again: the re-run fetches and unpacks it
    result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "uci-emg" / "s1" / "data.txt").read_text() == bytes(range(256)).hex() * 40


def _two_member_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("s1/a.txt", "a" * 4000)
        bundle.writestr("s1/b.txt", "b" * 40000)
    return buffer.getvalue()


def test_a_disk_that_fills_while_unpacking_leaves_no_member_cut_short(fake_hub, tmp_path, monkeypatch):
    """ENOSPC half way through a member: one line, and the member cut short is removed, not left as data.

    It stayed in the data folder with no sign of being short; a user who freed space and ran
    ``preprocess`` instead of the download read it as a whole recording.
    """
    import errno
    import shutil

    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    name = "static/public/481/emg+data+for+gestures.zip"
    fake_hub.files[name] = _two_member_zip()
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")
    copy = shutil.copyfileobj

    def disk_full_in_b(source, target, length=0):
        if not target.name.endswith("b.txt"):
            return copy(source, target)
        target.write(source.read(1000))
        target.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", disk_full_in_b)
    result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
    assert result.exit_code == 1, result.output
    failure = json.loads(result.stdout.strip().splitlines()[-1])
    assert "is full while unpacking emg+data+for+gestures.zip; free space and re-run" in failure["error"]
    unpacked = tmp_path / "uci-emg" / "s1"
    assert (unpacked / "a.txt").read_text() == "a" * 4000 and not (unpacked / "b.txt").exists()
    monkeypatch.setattr(shutil, "copyfileobj", copy)  # space freed: the re-run unpacks every member
    result = CliRunner().invoke(app, ["download", "uci-emg", "--dest", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (unpacked / "b.txt").read_text() == "b" * 40000


def test_a_second_run_waits_for_the_first_to_finish_unpacking(tmp_path, caplog):
    """Two runs at once: both find the archive whole; the second must not unpack into the same folder meanwhile.

    Each opens every member with ``"wb"``: the second truncated the files the first had written
    and reported as unpacked.
    """
    import fcntl
    import logging
    import os
    import threading

    archive = tmp_path / "archives" / "s1.zip"
    archive.parent.mkdir()
    archive.write_bytes(_two_member_zip())
    lock = archive.with_name("s1.zip.lock")
    lock.touch()
    first = os.open(lock, os.O_RDWR)
    fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the first run, unpacking
    caplog.set_level(logging.INFO, logger="biofound_cli.hub_files")
    second: dict[str, object] = {}

    def run_second() -> None:
        try:
            second["folder"] = extract(archive, tmp_path / "set")
        except Exception as error:  # noqa: BLE001 - reported by the assertions below
            second["error"] = error

    thread = threading.Thread(target=run_second)
    try:
        thread.start()
        while thread.is_alive() and "another download of s1.zip is under way" not in caplog.text:
            time.sleep(0.02)
        written_meanwhile = sorted(path.name for path in (tmp_path / "set").rglob("*"))
    finally:
        os.close(first)  # the first run ends
    thread.join()
    assert "another download of s1.zip is under way" in caplog.text and written_meanwhile == []
    assert "error" not in second, second
    assert (tmp_path / "set" / "s1" / "b.txt").read_text() == "b" * 40000


def test_a_disk_that_fills_while_unpacking_a_tar_leaves_no_member_cut_short(tmp_path, monkeypatch):
    import errno
    import tarfile

    archive = tmp_path / "archives" / "set.tar"
    archive.parent.mkdir()
    with tarfile.open(archive, "w") as bundle:
        for name, size in (("s1/a.bin", 4000), ("s1/b.bin", 40000)):
            info = tarfile.TarInfo(name)
            info.size = size
            bundle.addfile(info, io.BytesIO(b"x" * size))
    copy = tarfile.copyfileobj

    def disk_full_in_b(source, target, length=None, *args, **kwargs):
        if not target.name.endswith("b.bin"):
            return copy(source, target, length, *args, **kwargs)
        target.write(source.read(1000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile, "copyfileobj", disk_full_in_b)
    with pytest.raises(DownloadError, match="is full while unpacking set.tar; free space and re-run"):
        extract(archive, tmp_path / "set")
    assert (tmp_path / "set" / "s1" / "a.bin").stat().st_size == 4000
    assert not (tmp_path / "set" / "s1" / "b.bin").exists()
