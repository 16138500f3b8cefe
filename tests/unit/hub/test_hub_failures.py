"""Weights from a failing loopback hub: HTTP statuses named, transfers resumed across runs, sha256
checked, a damaged cached blob replaced with --force, Ctrl-C stopping the transfer at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from email.utils import formatdate
from pathlib import Path

import pytest
from fixtures.fake_hub import TINY_MANIFESTS, safetensors_bytes
from fixtures.process_group import assert_terminated, terminate_group, wait_until
from typer.testing import CliRunner

from biofound_cli import download_retries
from biofound_cli.cli.app import app
from biofound_cli.download_retries import busy_wait
from biofound_cli.errors import ExitStatus, UsageError
from biofound_cli.hub import DownloadError, download_weights, weights_request
from biofound_cli.hub_reference import local_checkpoint

LUNA_FILE = "Base/LUNA_base.safetensors"
WEIGHTS = safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])
runner = CliRunner()


def _gets(fake_hub) -> list[str | None]:
    """The Range header of every GET of the weights file, in order."""
    return [ranged for method, path, ranged in fake_hub.requests if method == "GET" and path.endswith(LUNA_FILE)]


def _partials(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.rglob("*.incomplete"))


def _size(path: Path) -> int:
    """The bytes in ``path``, 0 once it is gone (renamed as it completed)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("status", [500, 403, 404])
def test_a_plain_http_status_names_the_status_and_the_repositories(fake_hub, status):
    """A mirror or a proxy answers an HTML page with no hub error code: not 'cannot reach'.

    A server error after its retries is the host's: the next repository, on the same host, is not asked.
    """
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.status["thorir/LUNA"] = fake_hub.status["PulpBio/LUNA"] = status
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False)
    message = caught.value.message
    assert "thorir/LUNA: " in message and ("PulpBio/LUNA: " in message) == (status < 500) and f"HTTP {status}" in message
    assert "cannot reach" not in message and "\n" not in message


def test_an_outage_of_one_file_names_the_file(fake_hub):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.status[f"thorir/LUNA/{LUNA_FILE}"] = 503
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False)
    assert f"thorir/LUNA {LUNA_FILE}: HTTP 503 (a server error)" in caught.value.message
    assert "try again later" in caught.value.message


def test_a_listed_file_answered_with_404_is_a_server_fault_and_the_cached_copy_serves(fake_hub, tmp_path):
    """A mirror (HF_ENDPOINT) half synced: its file list names the weights, the file itself answers 404.

    It said "no repository serves ...; see `biofound download luna --list`", which lists the file, and the
    copy an earlier run fetched was not used.
    """
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    first = download_weights(weights_request("luna"), progress=False)
    fake_hub.status[f"thorir/LUNA/{LUNA_FILE}"] = 404
    again = download_weights(weights_request("luna"), progress=False)
    assert again.files == first.files and again.copy_note.startswith("using the copy already in the hub cache")
    assert again.tried[0] == f"thorir/LUNA {LUNA_FILE}: not found (HTTP 404) though the file list names it"
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False, dest=tmp_path / "elsewhere")
    assert f"{LUNA_FILE}: not found (HTTP 404) though the file list names it" in caught.value.message
    assert caught.value.message.endswith("try again later (or check HF_ENDPOINT)")


@pytest.mark.parametrize("into", ["cache", "dest"])
def test_a_transfer_cut_off_is_kept_and_the_next_run_resumes_it(fake_hub, tmp_path, into):
    """The link drops half way and the hub goes down: the bytes stay; the re-run asks for the rest."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.drop_once.add(f"thorir/LUNA/{LUNA_FILE}")
    fake_hub.outage_after_drop = 500
    dest = tmp_path / "weights" if into == "dest" else None
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False, dest=dest)
    [partial] = _partials(tmp_path)
    assert partial.parent.name == ("blobs" if dest is None else "Base")
    kept = partial.stat().st_size
    assert 0 < kept < len(WEIGHTS)
    assert f"HTTP 500 while sending thorir/LUNA {LUNA_FILE}" in caught.value.message
    assert f"{kept} bytes received are kept in {partial}, so re-run the same command to resume" in caught.value.message

    # On a compute node (HF_HUB_OFFLINE) "not in the hub cache" said nothing of the bytes kept.
    offline = runner.invoke(
        app, ["download", "luna", "--json", *(["--dest", str(dest)] if dest else [])], env={"HF_HUB_OFFLINE": "1"}
    )
    assert offline.exit_code == ExitStatus.FAILED, offline.output
    assert json.loads(offline.stdout)["error"].endswith(
        f"HF_HUB_OFFLINE is set; a partial download is there ({kept} bytes in {partial}): run the same command once "
        "with network access to finish it, or unset HF_HUB_OFFLINE"
    )
    with pytest.raises(UsageError) as missing:
        local_checkpoint("hub:luna/Base", "MODEL", dest=dest)
    assert missing.value.message.endswith(
        f"not in {dest or 'the hub cache'} yet; a partial download is there ({kept} bytes in {partial}): finish it with "
        f"`biofound download luna --variant luna-base{f' --dest {dest}' if dest else ''}` with network access"
    )

    fake_hub.outage = None
    fake_hub.requests.clear()
    result = download_weights(weights_request("luna"), progress=False, dest=dest)
    assert _gets(fake_hub) == [f"bytes={kept}-"]
    assert result.files[0].read_bytes() == WEIGHTS and _partials(tmp_path) == []


def test_offline_a_partial_download_of_another_file_is_not_named_as_the_one_asked(fake_hub, tmp_path):
    """In the hub cache a partial download is named by its ETag (``blobs/<etag>.incomplete``), not by its file.

    Offline, "luna-base ... are not in the hub cache" named the partial download of luna-large's file
    as one the same command would finish; a partial that nothing ties to a file is not named either.
    """
    large = "Large/LUNA_large.safetensors"
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS, large: WEIGHTS + bytes(64)}
    fake_hub.drop_once.add(f"thorir/LUNA/{large}")
    fake_hub.outage_after_drop = 500
    result = runner.invoke(app, ["download", "luna", "--variant", "large", "--no-progress"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    [kept] = _partials(tmp_path)
    (kept.parent / f"{'0' * 64}.incomplete").write_bytes(bytes(100))  # hf's own, or an older biofound's: which file?
    offline = {"HF_HUB_OFFLINE": "1"}
    base = json.loads(runner.invoke(app, ["download", "luna", "--json"], env=offline).stdout)["error"]
    assert base.endswith("HF_HUB_OFFLINE is set; run the same command once with network access, or unset HF_HUB_OFFLINE")
    assert "partial" not in base
    result = runner.invoke(app, ["download", "luna", "--variant", "large", "--json"], env=offline)
    assert f"a partial download is there ({kept.stat().st_size} bytes in {kept}): " in json.loads(result.stdout)["error"]


def test_a_connection_dropped_once_is_resumed_within_the_run(fake_hub):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.drop_once.add(f"thorir/LUNA/{LUNA_FILE}")
    result = download_weights(weights_request("luna"), progress=False)
    first, second = _gets(fake_hub)
    assert first is None and second.startswith("bytes=") and second != "bytes=0-"
    assert result.files[0].read_bytes() == WEIGHTS


def test_content_is_checked_against_the_published_sha256(fake_hub, tmp_path):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.lfs_sha256[f"thorir/LUNA/{LUNA_FILE}"] = "0" * 64
    with pytest.raises(DownloadError, match=f"thorir/LUNA {LUNA_FILE} failed its sha256 check"):
        download_weights(weights_request("luna"), progress=False)
    assert [p for p in (tmp_path / "hf" / "hub").rglob("*") if p.is_file() and "blobs" in p.parts] == []


def test_the_published_sha256_is_reported(fake_hub):
    import hashlib

    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    result = download_weights(weights_request("luna"), progress=False)
    assert result.sha256 == [hashlib.sha256(WEIGHTS).hexdigest()]


def test_a_damaged_cached_blob_is_named_and_force_replaces_it(fake_hub):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    [link] = download_weights(weights_request("luna"), progress=False).files
    blob = link.resolve()
    blob.write_bytes(WEIGHTS[:100])  # damaged on disk
    link.unlink()  # what a user tries first: huggingface_hub links the same blob again

    result = runner.invoke(app, ["download", "luna", "--no-progress"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    assert f"at {blob} does not match the sha256 the hub publishes" in result.output
    assert "--force" in result.output

    result = runner.invoke(app, ["download", "luna", "--no-progress", "--force", "--json"])
    assert result.exit_code == 0, result.output
    [path] = json.loads(result.stdout.strip().splitlines()[-1])["files"]
    assert Path(path).resolve() == blob and blob.read_bytes() == WEIGHTS


def test_force_applies_to_weights_only(fake_hub):
    assert runner.invoke(app, ["download", "siena", "--force"]).exit_code == ExitStatus.USAGE


def test_an_unreachable_hub_falls_back_to_the_cached_copy(fake_hub):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    first = download_weights(weights_request("luna"), progress=False)
    fake_hub.stop()
    again = download_weights(weights_request("luna"), progress=False)
    commit = fake_hub.commit("thorir/LUNA")[:12]
    assert again.files == first.files and again.copy_note == (
        f"using the copy already in the hub cache (commit {commit}, fetched by an earlier run); "
        "whether the hub holds newer files could not be checked"
    )


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("unaccepting_host", "no connection within 0.3 s"),
        ("silent_hub", "no answer within 0.5 s; the hub may be overloaded: wait longer with BIOFOUND_DOWNLOAD_TIMEOUT=SECONDS"),
    ],
)
def test_a_hub_that_takes_no_connection_or_sends_no_answer_is_not_asked_again_for_the_next_repository(
    fake_hub, monkeypatch, request, host, reason
):
    """A compute node whose firewall drops every connection out (or a hub that accepts and then stalls), the
    weights cached on the login node.

    Each candidate repository (thorir/LUNA, then PulpBio/LUNA, on the same host) waited the whole
    wait before the cached copy was used: 20 s where one wait says the host takes no connection,
    2 minutes where one says it sends no answer.
    """
    address = request.getfixturevalue(host)
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    first = download_weights(weights_request("luna"), progress=False)
    monkeypatch.setenv("HF_ENDPOINT", address)
    again = download_weights(weights_request("luna"), progress=False)
    assert again.files == first.files
    assert again.tried == [f"thorir/LUNA: unreachable ({reason})"]
    assert again.copy_note.startswith("using the copy already in the hub cache")


def test_the_cached_copy_used_is_a_warning_the_json_object_lists(fake_hub):
    """A job on a node with no route out runs `download luna --json` over the copy fetched on a login node.

    The note was printed as a skipped repository ("  skipped using the copy already in the hub
    cache ...") and the --json object did not say that the copy may be older than the hub's.
    """
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    assert runner.invoke(app, ["download", "luna", "--no-progress"]).exit_code == 0
    fake_hub.stop()
    result = runner.invoke(app, ["download", "luna", "--json"])
    assert result.exit_code == 0, result.output
    [warning] = json.loads(result.stdout.strip().splitlines()[-1])["warnings"]
    assert warning.startswith("using the copy already in the hub cache (commit ")
    assert f"warning: {warning}" in result.stderr.splitlines() and "skipped using" not in result.stderr


@pytest.mark.slow
def test_a_hub_gone_after_main_moved_serves_the_cached_commit_and_says_which(fake_hub, tmp_path):
    """An HF_ENDPOINT mirror that went offline after the repository's main moved on: the run cannot know of the
    new commit, uses the copy of the earlier run and names its commit, so the user can compare once the hub is back."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    first = _start_cli(tmp_path, "download", "luna", "--no-progress")
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    old = fake_hub.commit("thorir/LUNA")
    fake_hub.commit = lambda repo: "f" * 40  # main moved on to a new commit, then the mirror went down
    fake_hub.stop()
    again = _start_cli(tmp_path, "download", "luna", "--no-progress")
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert (
        f"using the copy already in the hub cache (commit {old[:12]}, fetched by an earlier run); "
        "whether the hub holds newer files could not be checked"
    ) in output
    assert f"snapshots/{old}/" in output and "Traceback" not in output


@pytest.mark.parametrize("answer", ["a login page", "another API's JSON object", "another API's JSON list"])
@pytest.mark.parametrize("args", [["download", "luna"], ["download", "--list", "luna"], ["download", "--list"]])
def test_a_login_page_in_the_hubs_place_is_one_line_naming_the_address(fake_hub, args, answer):
    """A network login (or an HF_ENDPOINT naming a web site) answers every request with 200 and an HTML page.

    huggingface_hub parsed the page as the file list: a JSONDecodeError traceback, no --json object
    (JSON of another shape: a KeyError or TypeError traceback).
    """
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    if answer == "a login page":
        fake_hub.outage = 200  # every request: 200 and an HTML page
    else:
        fake_hub.foreign = {"message": "hello"} if "object" in answer else []
    result = runner.invoke(app, [*args, "--no-progress", "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    summary = json.loads(result.stdout)
    host = fake_hub.url.removeprefix("http://")
    assert summary["error"].startswith(f"cannot reach {fake_hub.url} to ")
    if answer == "a login page":
        page = f"({host} sent an HTML page (an error or login page), not the hub's file list; open {fake_hub.url} "
        assert page in summary["error"]
    else:
        assert f"({host} answered with JSON that is not a hub's file list); check" in summary["error"]
    assert result.stderr.splitlines()[-1] == f"error: {summary['error']}" and "Traceback" not in result.output


def test_behind_a_login_page_the_copy_in_the_cache_is_used(fake_hub):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    first = download_weights(weights_request("luna"), progress=False)
    fake_hub.outage = 200
    again = download_weights(weights_request("luna"), progress=False)
    commit = fake_hub.commit("thorir/LUNA")[:12]
    assert again.files == first.files and again.copy_note == (
        f"using the copy already in the hub cache (commit {commit}, fetched by an earlier run); "
        "whether the hub holds newer files could not be checked"
    )


@pytest.mark.parametrize("endpoint", ["hf-mirror.example", "http://", "http://[::1", "https://mirror.example:port"])
@pytest.mark.parametrize("args", [["download", "luna"], ["download", "--list"]])
def test_a_mistyped_hf_endpoint_is_refused_in_one_line_before_any_request(fake_hub, monkeypatch, endpoint, args):
    """Without its scheme, HF_ENDPOINT was 'cannot reach hf-mirror.example ... check the network connection' (status 1);
    malformed, a ValueError traceback. Offline, where no request is made, it is no obstacle."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    download_weights(weights_request("luna"), progress=False)
    fake_hub.requests.clear()
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    result = runner.invoke(app, [*args, "--no-progress", "--json"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert json.loads(result.stdout)["error"] == (
        f"HF_ENDPOINT={endpoint} is not the address of a hub or mirror; set it to one with its scheme "
        "(HF_ENDPOINT=https://HOST), or unset it for https://huggingface.co"
    )
    assert "Traceback" not in result.output and fake_hub.requests == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert runner.invoke(app, ["info", "hub:luna/Base"]).exit_code == 0


@pytest.mark.parametrize("base", ["mirror.example/files", "http://[::1"])
def test_a_mistyped_data_mirror_is_refused_as_hf_endpoint_is(fake_hub, monkeypatch, tmp_path, base):
    """BIOFOUND_DATA_BASE_URL followed another rule than HF_ENDPOINT: 'cannot download ... check the
    address' (status 1) without its scheme, and a traceback when malformed."""
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", base)
    result = runner.invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--no-progress", "--json"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert json.loads(result.stdout)["error"] == (
        f"BIOFOUND_DATA_BASE_URL={base} is not the address of a data-set mirror; set it to one with its scheme "
        "(BIOFOUND_DATA_BASE_URL=https://HOST), or unset it for each data set's own host"
    )
    assert "Traceback" not in result.output and fake_hub.requests == []
    assert not list(tmp_path.rglob("*.part"))


def test_ctrl_c_stops_the_transfer_at_once(fake_hub, tmp_path):
    """SIGINT to a real process mid-transfer: exit 130, and the hub sent far less than the file.

    The file takes 12 s at the hub's rate; a transfer that ran on after Ctrl-C would send all of it.
    """
    content = bytes(12 << 20)
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: content}
    fake_hub.rate = 1 << 20
    process = subprocess.Popen(
        [sys.executable, "-m", "biofound_cli", "download", "luna", "--no-progress"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # generous: the start-up of a cold interpreter on a busy machine
        while not any(path.endswith(LUNA_FILE) for path in fake_hub.sent):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the transfer never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == ExitStatus.INTERRUPTED, stderr
    # Stopped within the first 10 MiB block huggingface_hub writes, usually: then nothing was kept to resume.
    assert "stopped by Ctrl-C" in stderr and "so re-run the same command to" in stderr and "Traceback" not in stderr
    sent = sum(count for path, count in fake_hub.sent.items() if path.endswith(LUNA_FILE))
    assert sent < len(content) // 2


# The command in a fresh interpreter, with the tiny manifests of the fake hub's files.
_CLI_WITH_TINY_MANIFESTS = (
    "import json, sys\n"
    "import biofound_cli.hub as hub\n"
    "manifests = json.loads(open(sys.argv[1]).read())\n"
    "hub._manifests = lambda: manifests\n"
    "from biofound_cli.cli.app import main\n"
    "sys.argv = ['biofound', *sys.argv[2:]]\n"
    "main()\n"
)


def _start_cli(tmp_path: Path, *args: str, manifests: dict = TINY_MANIFESTS, separate: bool = False) -> subprocess.Popen:
    """``biofound ARGS`` in its own process group; stderr merged into stdout unless ``separate``."""
    written = tmp_path / "manifests.json"
    written.write_text(json.dumps(manifests))
    # The transfer below is held half way for as long as the second process takes to start.
    env = {**os.environ, "HF_HUB_DOWNLOAD_TIMEOUT": "300", "HF_HUB_ETAG_TIMEOUT": "60"}
    return subprocess.Popen(
        [sys.executable, "-c", _CLI_WITH_TINY_MANIFESTS, str(written), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if separate else subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, which a test may signal whole
    )


@pytest.mark.slow
@pytest.mark.parametrize("into", ["cache", "dest"])
def test_two_downloads_of_one_file_at_once_fetch_it_once(fake_hub, tmp_path, into):
    """Two array jobs start the same download: the second waits for the first's lock, then uses its file.

    The first process's transfer is held half way until the second one either says it is waiting
    or asks the hub for the file itself (what it did without the lock, appending to the same
    ``.incomplete`` file).
    """
    import threading

    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    release = fake_hub.hold[f"thorir/LUNA/{LUNA_FILE}"] = threading.Event()
    dest = ["--dest", str(tmp_path / "weights")] if into == "dest" else []
    first = _start_cli(tmp_path, "download", "luna", "--no-progress", *dest)
    second = None
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a measurement
        while not any(path.endswith(LUNA_FILE) for path in fake_hub.sent):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first transfer never started"
            time.sleep(0.05)
        second = _start_cli(tmp_path, "download", "luna", "--no-progress", *dest)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(second.stdout), daemon=True)
        reader.start()
        while not (any("waiting for it" in line for line in lines) or len(_gets(fake_hub)) > 1 or second.poll() is not None):
            assert time.monotonic() < deadline + 120, "the second process neither waited nor downloaded"
            time.sleep(0.05)
        release.set()
        first_output, _ = first.communicate(timeout=120)
        second.wait(timeout=120)
        reader.join(timeout=120)
    finally:
        release.set()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    second_output = "".join(lines)
    assert first.returncode == 0, first_output
    assert second.returncode == 0, second_output
    assert _gets(fake_hub) == [None]  # one transfer, from byte 0; the second process fetched nothing
    assert "another download of thorir/LUNA Base/LUNA_base.safetensors is under way" in second_output
    assert _partials(tmp_path) == []
    [fetched] = [path for path in tmp_path.rglob("LUNA_base.safetensors") if "snapshots" in path.parts or into == "dest"]
    assert fetched.read_bytes() == WEIGHTS


@pytest.mark.slow
@pytest.mark.parametrize("holds", ["the weights", "other files"])
def test_offline_with_dest_prints_only_our_lines(fake_hub, tmp_path, monkeypatch, holds):
    """HF_HUB_OFFLINE=1 --dest DIR: huggingface_hub's 'Returning existing local_dir' warning stayed out of the output."""
    dest = tmp_path / "weights"
    (dest / "Base").mkdir(parents=True)
    if holds == "the weights":
        (dest / LUNA_FILE).write_bytes(WEIGHTS)
    else:
        (dest / "Base" / "notes.txt").write_text("not weights\n")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    process = _start_cli(tmp_path, "download", "luna", "--dest", str(dest), "--no-progress", "--quiet")
    output, _ = process.communicate(timeout=300)
    if holds == "the weights":
        assert process.returncode == 0, output
        assert output.startswith("Downloaded weights") and "local_dir" not in output  # --quiet: the summary only
    else:
        assert process.returncode == ExitStatus.FAILED, output
        assert output.splitlines() == [
            f"error: luna-base pre-trained weights (Base/LUNA_base.safetensors) are not in {dest} and HF_HUB_OFFLINE "
            "is set; run the same command once with network access, or unset HF_HUB_OFFLINE"
        ]
    assert fake_hub.requests == []


@pytest.mark.slow
@pytest.mark.parametrize("target", ["SIGTERM to the main process", "SIGTERM to the process group", "Ctrl-C"])
@pytest.mark.parametrize("what", ["weights", "data set"])
def test_a_stop_names_the_part_file_kept_and_a_rerun_resumes_it(fake_hub, tmp_path, monkeypatch, what, target):
    """A job's time limit or `timeout` sends SIGTERM: it killed the process without a word or a --json object.
    ``kill`` reaches the main process only; ``scancel`` or a job's time limit reaches its whole group.
    Ctrl-C (SIGINT to the terminal's process group) printed the generic "interrupted" line, which named
    neither the part file kept nor that the same command continues it."""
    import io
    import zipfile

    # 24 MiB of weights the key manifest takes (6 s at the hub's rate), so the re-run's file checks out.
    shapes = {**TINY_MANIFESTS["luna-base"]["pretrain"], "decoder_head.weight": (3 << 20, 2)}
    manifests = {**TINY_MANIFESTS, "luna-base": {**TINY_MANIFESTS["luna-base"], "pretrain": shapes}}
    content = safetensors_bytes(shapes)
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: content}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("set/data.bin", content)
    fake_hub.files["static/public/481/emg+data+for+gestures.zip"] = buffer.getvalue()
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")
    fake_hub.rate = 4 << 20
    target_args = ["luna"] if what == "weights" else ["uci-emg", "--dest", str(tmp_path / "data")]
    # The partial file on disk with bytes in it (huggingface_hub writes 10 MiB at a time), not the bytes the hub
    # sent: a stop between the hub's send and the client's first write left an empty part file on a busy machine.
    partial = "*.incomplete" if what == "weights" else "*.part"
    # stdout and stderr apart: the --json object must be all of stdout.
    process = _start_cli(tmp_path, "download", *target_args, "--no-progress", "--json", manifests=manifests, separate=True)
    try:
        wait_until(process, lambda: any(_size(path) > 0 for path in tmp_path.rglob(partial)), "the first bytes written")
        if target == "SIGTERM to the main process":
            process.send_signal(signal.SIGTERM)
            stdout, output = process.communicate(timeout=120)
        elif target == "Ctrl-C":
            os.killpg(process.pid, signal.SIGINT)
            stdout, output = process.communicate(timeout=120)
        else:
            stdout, output = terminate_group(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    kept = sorted(tmp_path.rglob(partial))
    assert len(kept) == 1 and 0 < (received := kept[0].stat().st_size) < len(content)
    [error] = [line for line in output.splitlines() if line.startswith("error:")]
    stop = "Ctrl-C" if target == "Ctrl-C" else "SIGTERM"
    assert error == (
        f"error: stopped by {stop}; the {received} bytes received are kept in {kept[0]}, "
        "so re-run the same command to resume the download"
    )
    if target == "Ctrl-C":  # docs/exit-status.md: 130, and the --json object says so
        assert process.returncode == ExitStatus.INTERRUPTED and "Traceback" not in output, output
        [failure] = [json.loads(line) for line in stdout.splitlines()]
        assert failure["exit_status"] == ExitStatus.INTERRUPTED and failure["error"] == error.removeprefix("error: ")
    else:
        assert_terminated(process, stdout, output)
    assert list(tmp_path.rglob("*.tmp*")) == []
    fake_hub.rate = None
    rerun = _start_cli(tmp_path, "download", *target_args, "--no-progress", "--json", manifests=manifests)
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    assert sorted(tmp_path.rglob("*.incomplete")) == sorted(tmp_path.rglob("*.part")) == []
    if what == "weights":  # resumed from the bytes kept, not fetched again
        assert _gets(fake_hub)[-1] == f"bytes={received}-"
    else:  # the data set's too, and its summary says so
        gets = [ranged for method, path, ranged in fake_hub.requests if method == "GET" and path.startswith("/files/")]
        assert gets[-1] == f"bytes={received}-"
        summary = json.loads(output.strip().splitlines()[-1])
        assert summary["checks"] == [
            f"resumed from byte {received}: size announced by the server, zip structure (no sha256 recorded)"
        ]


@pytest.mark.slow
@pytest.mark.parametrize("left", ["as received", "damaged"])
def test_an_incomplete_blob_left_by_a_killed_download_is_resumed_or_refused_never_taken(fake_hub, tmp_path, left):
    """SIGKILL (the OOM killer, a hard time limit) mid-transfer leaves ``blobs/<etag>.incomplete`` and no handler
    runs. The next run continues it from its bytes; bytes that do not belong (changed on disk since) fail the
    published sha256 and are removed, exit 1; never a success with a wrong file."""
    shapes = {**TINY_MANIFESTS["luna-base"]["pretrain"], "decoder_head.weight": (3 << 20, 2)}
    manifests = {**TINY_MANIFESTS, "luna-base": {**TINY_MANIFESTS["luna-base"], "pretrain": shapes}}
    content = safetensors_bytes(shapes)
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: content}
    fake_hub.rate = 4 << 20
    process = _start_cli(tmp_path, "download", "luna", "--no-progress", manifests=manifests)
    try:
        # huggingface_hub writes 10 MiB at a time: wait for the first write.
        wait_until(process, lambda: any(p.stat().st_size for p in _partials(tmp_path)), "the first bytes were written")
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    [partial] = _partials(tmp_path)
    received = partial.stat().st_size
    assert 0 < received < len(content)
    if left == "damaged":
        with partial.open("r+b") as handle:
            handle.write(b"\xff" * 64)  # not the bytes the hub sent
    fake_hub.rate = None
    rerun = _start_cli(tmp_path, "download", "luna", "--no-progress", manifests=manifests)
    output, _ = rerun.communicate(timeout=300)
    assert _gets(fake_hub)[-1] == f"bytes={received}-"  # continued, not fetched from byte 0
    assert _partials(tmp_path) == []
    if left == "as received":
        assert rerun.returncode == 0, output
        [blob] = [path for path in tmp_path.rglob("blobs/*")]
        assert blob.read_bytes() == content
    else:
        assert rerun.returncode == ExitStatus.FAILED, output
        [error] = [line for line in output.splitlines() if line.startswith("error:")]
        assert f"the {received} bytes an earlier run left in {partial.name} did not belong with the rest" in error
        assert list(tmp_path.rglob("blobs/*")) == [] and list(tmp_path.rglob("snapshots/*/*/*")) == []


def _uci_emg_zip(fake_hub, monkeypatch, members: int, size: int) -> None:
    """Serve a zip of ``members`` files of ``size`` zero bytes each as the uci-emg data set."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for index in range(members):
            bundle.writestr(f"set/member-{index:03d}.bin", bytes(size))
    fake_hub.files["static/public/481/emg+data+for+gestures.zip"] = buffer.getvalue()
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")


def _zip_gets(fake_hub) -> int:
    return sum(method == "GET" and path.endswith(".zip") for method, path, _ in fake_hub.requests)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["SIGTERM to the process group", "Ctrl-C"])
def test_a_stop_while_unpacking_says_so_and_the_rerun_unpacks_without_downloading(fake_hub, tmp_path, monkeypatch, target):
    """A stop while a data set unpacks (minutes for Siena) said "the bytes received are kept ... to resume the
    download": the archive was whole and nothing was being received. The line names the unpacking, the
    archive kept, and that the re-run unpacks again without fetching anything; no member is left cut short.

    The process is frozen (SIGSTOP) as soon as the first member is there, the stop is sent, and it runs on
    (SIGCONT): the stop lands during the unpacking whatever the machine's speed.
    """
    members, size = 64, 4 << 20
    _uci_emg_zip(fake_hub, monkeypatch, members, size)
    data = tmp_path / "data"
    folder = data / "uci-emg"
    process = _start_cli(tmp_path, "download", "uci-emg", "--dest", str(data), "--no-progress", "--json")
    try:
        wait_until(process, lambda: (folder / "set" / "member-000.bin").exists(), "the unpacking started")
        os.killpg(process.pid, signal.SIGSTOP)
        assert not (folder / "set" / f"member-{members - 1:03d}.bin").exists(), "the unpacking ended before the stop"
        os.killpg(process.pid, signal.SIGTERM if target.startswith("SIGTERM") else signal.SIGINT)
        os.killpg(process.pid, signal.SIGCONT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    archive = folder / "archives" / "emg+data+for+gestures.zip"
    stop, status = ("SIGTERM", ExitStatus.TERMINATED) if target.startswith("SIGTERM") else ("Ctrl-C", ExitStatus.INTERRUPTED)
    assert process.returncode == status, output
    [error] = [line for line in output.splitlines() if line.startswith("error:")]
    assert error == (
        f"error: stopped by {stop} while unpacking {archive} into {folder}; the archive is whole and kept, the member "
        "being written was removed: re-run the same command to unpack it again (nothing is downloaded again)"
    )
    assert "Traceback" not in output
    assert archive.is_file() and all(member.stat().st_size == size for member in (folder / "set").iterdir())
    assert _zip_gets(fake_hub) == 1
    rerun = _start_cli(tmp_path, "download", "uci-emg", "--dest", str(data), "--no-progress", "--json")
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    assert len(list((folder / "set").iterdir())) == members and _zip_gets(fake_hub) == 1


@pytest.mark.slow
@pytest.mark.parametrize("target", ["SIGTERM to the process group", "Ctrl-C"])
def test_a_stop_while_waiting_for_another_download_says_so(fake_hub, tmp_path, monkeypatch, target):
    """A stop while the run waited for another run's lock (an array job's twin) said "the bytes received are kept":
    this run had received nothing. The line names the wait and the lock; once the other run is gone the same
    command fetches the file."""
    from filelock import FileLock

    _uci_emg_zip(fake_hub, monkeypatch, 2, 1024)
    data = tmp_path / "data"
    lock = data / "uci-emg" / "archives" / "emg+data+for+gestures.zip.lock"
    lock.parent.mkdir(parents=True)
    other = FileLock(str(lock))  # the other run, holding the file's lock
    other.acquire()
    output = ""
    try:
        process = _start_cli(tmp_path, "download", "uci-emg", "--dest", str(data), "--no-progress")
        for line in process.stdout or []:
            output += line
            if "is under way" in line:
                break
        if target.startswith("SIGTERM"):
            rest, _ = terminate_group(process)
        else:
            os.killpg(process.pid, signal.SIGINT)
            rest, _ = process.communicate(timeout=120)
        output += rest
    finally:
        other.release()
        if process.poll() is None:
            process.kill()
            process.wait()
    stop, status = ("SIGTERM", ExitStatus.TERMINATED) if target.startswith("SIGTERM") else ("Ctrl-C", ExitStatus.INTERRUPTED)
    assert process.returncode == status, output
    [error] = [line for line in output.splitlines() if line.startswith("error:")]
    assert error == (
        f"error: stopped by {stop} while waiting for another download of emg+data+for+gestures.zip to finish (lock {lock}); "
        "this run wrote nothing of it: re-run the same command, which waits for that download again or continues what it left"
    )
    assert _zip_gets(fake_hub) == 0 and list(tmp_path.rglob("*.part")) == []
    rerun = _start_cli(tmp_path, "download", "uci-emg", "--dest", str(data), "--no-progress")
    output, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, output


@pytest.mark.slow
def test_a_stop_while_a_busy_host_is_waited_for_names_the_part_file_kept(fake_hub, tmp_path, monkeypatch):
    """Ctrl-C while a data set's resume waited out a 503's Retry-After said "nothing of the file was kept yet ...
    to download it": the part file of an earlier run was there, whole, and the re-run resumes it."""
    _uci_emg_zip(fake_hub, monkeypatch, 2, 1024)
    archives = tmp_path / "data" / "uci-emg" / "archives"
    archives.mkdir(parents=True)
    part = archives / "emg+data+for+gestures.zip.part"
    part.write_bytes(fake_hub.files["static/public/481/emg+data+for+gestures.zip"][:100])
    fake_hub.busy["GET files/static/public/481/emg+data+for+gestures.zip"] = [503] * 3
    fake_hub.retry_after = "60"
    process = _start_cli(tmp_path, "download", "uci-emg", "--dest", str(tmp_path / "data"), "--no-progress")
    output = ""
    try:
        for line in process.stdout or []:
            output += line
            if "retrying (2/3) in 60 s" in line:
                break
        os.killpg(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
        output += rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == ExitStatus.INTERRUPTED and "Traceback" not in output, output
    [error] = [line for line in output.splitlines() if line.startswith("error:")]
    assert error == (
        f"error: stopped by Ctrl-C; the 100 bytes received are kept in {part}, so re-run the same command to resume the download"
    )
    assert part.stat().st_size == 100


@pytest.mark.slow
@pytest.mark.parametrize("what", ["weights", "data set"])
def test_sigusr1_to_the_group_while_the_server_stalls_is_the_stop_line_and_a_rerun_finishes(
    fake_hub, tmp_path, monkeypatch, what
):
    """``sbatch --signal=USR1@N`` sends SIGUSR1 to the whole job as its time limit nears, here while the server
    sends nothing (the transfer waits in a socket read): a stop as SIGTERM is, naming what was kept."""
    held = threading.Event()
    if what == "weights":
        fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
        fake_hub.stall[f"thorir/LUNA/{LUNA_FILE}"] = held  # the headers, then nothing
        args, kept = ["luna", "--dest", str(tmp_path / "weights")], "nothing of the file was kept yet"
        started = lambda: any(method == "GET" and path.endswith(LUNA_FILE) for method, path, _ in fake_hub.requests)  # noqa: E731
    else:
        _uci_emg_zip(fake_hub, monkeypatch, 2, 1024)
        fake_hub.hold["files/static/public/481/emg+data+for+gestures.zip"] = held  # half the body, then nothing
        # Half of a few KiB, which may not fill the client's first read: kept, or nothing written yet.
        args, kept = ["uci-emg", "--dest", str(tmp_path / "data")], "stopped by SIGUSR1; "
        started = lambda: any(path.endswith(".zip") and sent for path, sent in fake_hub.sent.items())  # noqa: E731
    process = _start_cli(tmp_path, "download", *args, "--no-progress", "--json", separate=True)
    try:
        wait_until(process, started, "the transfer started")
        stdout, stderr = terminate_group(process, signal.SIGUSR1)
    finally:
        held.set()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert_terminated(process, stdout, stderr, kept, "re-run the same command", by="SIGUSR1")
    fake_hub.stall.clear()
    fake_hub.hold.clear()
    rerun = _start_cli(tmp_path, "download", *args, "--no-progress", "--json")
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output


@pytest.mark.parametrize("into", ["cache", "dest"])
def test_the_lock_file_is_group_writable_as_huggingface_hub_makes_it(fake_hub, tmp_path, into):
    """In a cache shared by a group, a lock file only its creator may open stops everyone else's download."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    dest = tmp_path / "weights" if into == "dest" else None
    download_weights(weights_request("luna"), progress=False, dest=dest)
    [lock] = [path for path in tmp_path.rglob("*.lock")]
    assert lock.stat().st_mode & 0o777 == 0o664


def test_a_resumed_transfer_that_fails_its_sha256_blames_the_bytes_kept(fake_hub, tmp_path):
    """Bytes of another version (or of a second writer) in the .incomplete file: not 'report it', but why and re-run."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    dest = tmp_path / "weights"
    partial = dest / f"{LUNA_FILE}.incomplete"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\xff" * 100)  # the head of another version of the file
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False, dest=dest)
    message = caught.value.message
    assert f"the 100 bytes an earlier run left in {partial.name} did not belong with the rest" in message
    assert message.endswith("the download was removed, re-run to fetch it from the start") and "report" not in message
    assert _gets(fake_hub) == ["bytes=100-"] and not partial.exists()
    assert download_weights(weights_request("luna"), progress=False, dest=dest).files[0].read_bytes() == WEIGHTS


@pytest.mark.parametrize("into", ["cache", "dest"])
@pytest.mark.parametrize("sent", [0, 40, None], ids=["from-0", "from-a-later-byte", "no-content-range"])
def test_a_206_from_another_byte_than_asked_is_not_appended(fake_hub, tmp_path, caplog, into, sent):
    """A proxy answers ``Range: bytes=100-`` with 206 and as many bytes, from another byte (or without saying which).

    huggingface_hub's ``http_get`` appended them at byte 100, and the download failed its sha256
    check, blaming the bytes the earlier run kept. They are dropped instead, the file fetched whole.
    """
    import hashlib

    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.misplaced[f"thorir/LUNA/{LUNA_FILE}"] = sent
    etag = hashlib.sha256(WEIGHTS).hexdigest()
    blobs = tmp_path / "hf" / "hub" / "models--thorir--LUNA" / "blobs"
    dest = tmp_path / "weights" if into == "dest" else None
    partial = dest / f"{LUNA_FILE}.incomplete" if dest is not None else blobs / f"{etag}.incomplete"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(WEIGHTS[:100])  # what an earlier run kept
    with caplog.at_level("INFO"):
        result = download_weights(weights_request("luna"), progress=False, dest=dest)
    assert result.files[0].read_bytes() == WEIGHTS and _partials(tmp_path) == []
    assert _gets(fake_hub) == ["bytes=100-", None]
    [line] = [record.getMessage() for record in caplog.records if "HTTP 206" in record.getMessage()]
    answered = "no Content-Range" if sent is None else f"Content-Range 'bytes {sent}-"
    assert f"answered the request for the rest of thorir/LUNA {LUNA_FILE} with HTTP 206 and {answered}" in line
    assert f"(not bytes 100-{len(WEIGHTS) - 1}/{len(WEIGHTS)})" in line
    assert line.endswith("dropping the 100 bytes kept and fetching it from the start")


@pytest.mark.parametrize("into", ["cache", "dest"])
def test_a_proxys_203_with_the_whole_file_is_not_appended(fake_hub, tmp_path, caplog, into):
    """A proxy answers ``Range: bytes=100-`` with 203 and the whole file: ``http_get`` empties the partial file for a 200 only.

    The body was appended to the 100 bytes kept: the download failed, saying the host sent the file
    "short of its 1408 bytes" with 1508 received, kept them for a re-run, and the re-run did the
    same. They are dropped instead, the file fetched whole.
    """
    import hashlib

    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.ignore_range[f"thorir/LUNA/{LUNA_FILE}"] = 203
    blobs = tmp_path / "hf" / "hub" / "models--thorir--LUNA" / "blobs"
    dest = tmp_path / "weights" if into == "dest" else None
    etag = hashlib.sha256(WEIGHTS).hexdigest()
    partial = dest / f"{LUNA_FILE}.incomplete" if dest is not None else blobs / f"{etag}.incomplete"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(WEIGHTS[:100])  # what an earlier run kept
    with caplog.at_level("INFO"):
        result = download_weights(weights_request("luna"), progress=False, dest=dest)
    assert result.files[0].read_bytes() == WEIGHTS and _partials(tmp_path) == []
    assert _gets(fake_hub) == ["bytes=100-", None]
    assert f"the rest of thorir/LUNA {LUNA_FILE} with HTTP 203 and the whole file (not 206" in caplog.text


def test_a_partial_file_under_dest_of_a_version_since_replaced_is_fetched_from_the_start(fake_hub, tmp_path):
    """``DIR/<path>.incomplete`` does not hold the ETag in its name (the cache's ``blobs/<etag>.incomplete`` does).

    The file changed on the hub between two runs: the second continued the old head with the new
    tail, failed the sha256 check and wasted the transfer. The version is now recorded beside it.
    """
    import numpy as np
    from safetensors.numpy import save

    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.drop_once.add(f"thorir/LUNA/{LUNA_FILE}")
    fake_hub.outage_after_drop = 500
    dest = tmp_path / "weights"
    with pytest.raises(DownloadError, match="bytes received are kept"):
        download_weights(weights_request("luna"), progress=False, dest=dest)
    assert _partials(tmp_path) == [dest / f"{LUNA_FILE}.incomplete"]

    shapes = TINY_MANIFESTS["luna-base"]["pretrain"]
    replaced = save({key: np.ones(shape, dtype=np.float32) for key, shape in shapes.items()})
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: replaced}
    fake_hub.outage = None
    fake_hub.requests.clear()
    result = download_weights(weights_request("luna"), progress=False, dest=dest)
    assert _gets(fake_hub) == [None]  # from byte 0, not bytes=N-
    assert result.files[0].read_bytes() == replaced
    assert _partials(tmp_path) == [] and not list(dest.rglob("*.version"))


@pytest.mark.slow
def test_a_transfer_that_stalls_is_given_up_after_biofound_download_timeout(fake_hub, monkeypatch):
    """The weights waited huggingface_hub's own 10 s per attempt whatever BIOFOUND_DOWNLOAD_TIMEOUT said,
    and the message blamed the network connection."""
    import huggingface_hub.constants as constants

    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    stalled = fake_hub.stall[f"thorir/LUNA/{LUNA_FILE}"] = threading.Event()
    monkeypatch.setenv("BIOFOUND_DOWNLOAD_TIMEOUT", "0.5")
    try:
        with pytest.raises(DownloadError) as caught:
            download_weights(weights_request("luna"), progress=False)
    finally:
        stalled.set()
    host = fake_hub.url.split("//", 1)[1]
    assert caught.value.message == (
        f"{host} sent nothing more of thorir/LUNA {LUNA_FILE} within 0.5 s, several times over; the host may be "
        "overloaded: re-run later, or wait longer with BIOFOUND_DOWNLOAD_TIMEOUT=SECONDS; nothing was saved, "
        "re-run the same command"
    )
    assert constants.HF_HUB_DOWNLOAD_TIMEOUT == 5  # huggingface_hub's own setting is given back


def test_a_silent_hub_is_named_with_biofound_download_timeout(silent_hub):
    """A hub that accepts the connection and never answers: the wait is BIOFOUND_DOWNLOAD_TIMEOUT, as for data sets."""
    result = runner.invoke(app, ["download", "luna", "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error == (
        f"cannot reach {silent_hub} to fetch luna-base pre-trained weights ({LUNA_FILE}) (no answer within 0.5 s; the hub "
        "may be overloaded: wait longer with BIOFOUND_DOWNLOAD_TIMEOUT=SECONDS); check the network connection "
        "(or HF_ENDPOINT) and re-run"
    )


@pytest.mark.parametrize("what", ["luna", "uci-emg"])
def test_a_host_that_accepts_no_connection_is_given_up_after_the_same_connect_wait(unaccepting_host, tmp_path, monkeypatch, what):
    """Weights and data sets wait ``CONNECT_TIMEOUT_SECONDS`` (at most ``BIOFOUND_DOWNLOAD_TIMEOUT``) to connect.

    huggingface_hub passes one number to its client for every wait: the hub got the whole read
    wait (60 s) to accept a connection where a data-set host got 10 s, and the message said
    'no answer within 60 s; the hub may be overloaded' of a host that never answered the call.
    """
    import httpx2

    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", unaccepting_host)
    waits = []  # the connect wait of every request huggingface_hub's client sends to the host
    send = httpx2.HTTPTransport.handle_request

    def spy(transport: httpx2.HTTPTransport, request: httpx2.Request) -> httpx2.Response:
        if str(request.url).startswith(unaccepting_host):
            waits.append(request.extensions["timeout"]["connect"])
        return send(transport, request)

    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", spy)
    result = runner.invoke(app, ["download", what, "--dest", str(tmp_path), "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    if what == "luna":
        assert waits and set(waits) == {0.3}
        assert error == (
            f"cannot reach {unaccepting_host} to fetch luna-base pre-trained weights ({LUNA_FILE}) (no connection within "
            "0.3 s); check the network connection (or HF_ENDPOINT) and re-run"
        )
    else:
        assert error.startswith(f"cannot reach {unaccepting_host.removeprefix('http://')} for emg+data+for+gestures.zip: ")
        assert "no connection within 0.3 s; check the network connection and re-run" in error


@pytest.mark.parametrize("imported_with", ["huggingface.co", "the mirror"])
@pytest.mark.parametrize("args", [["luna"], ["--list", "luna"]])
def test_every_request_goes_to_hf_endpoint_and_waits_biofound_download_timeout(fake_hub, monkeypatch, imported_with, args):
    """No request leaves for another host than HF_ENDPOINT's, and each waits BIOFOUND_DOWNLOAD_TIMEOUT.

    huggingface_hub 2.4, building each request's User-Agent, fetched its agent registry from
    ``{the endpoint it read at import}/api/agent-harnesses``: huggingface.co for HF_ENDPOINT set
    after the import (a script or notebook calling biofound), the mirror for the command. And a
    user's ``HF_HUB_ETAG_TIMEOUT`` replaced the wait of ``hf_hub_download``'s own metadata request.
    """
    import httpx2
    import huggingface_hub.constants as constants
    import huggingface_hub.utils._detect_agent as detect_agent

    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    imported = "https://huggingface.co" if imported_with == "huggingface.co" else fake_hub.url
    monkeypatch.setattr(constants, "ENDPOINT", imported)  # what huggingface_hub read from HF_ENDPOINT at import
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", imported + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(detect_agent, "_registry", None)  # not yet fetched in this process
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", False)  # the default, whatever this shell says
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 30)  # as HF_HUB_ETAG_TIMEOUT=30 at import
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 30)
    monkeypatch.setenv("BIOFOUND_DOWNLOAD_TIMEOUT", "7")
    sent = []  # (host, read wait) of every request huggingface_hub's client sends
    send = httpx2.HTTPTransport.handle_request

    def spy(transport: httpx2.HTTPTransport, request: httpx2.Request) -> httpx2.Response:
        sent.append((request.url.host, request.extensions["timeout"]["read"]))
        if request.url.host != "127.0.0.1":  # never let a test reach the outside
            raise httpx2.ConnectError("refused by the test", request=request)
        return send(transport, request)

    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", spy)
    result = runner.invoke(app, ["download", *args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sent and set(sent) == {("127.0.0.1", 7.0)}
    assert not [path for _, path, _ in fake_hub.requests if path.startswith("/api/") and "LUNA" not in path]


def test_a_download_timeout_that_is_not_seconds_is_refused_before_the_hub_is_asked(fake_hub, monkeypatch):
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    monkeypatch.setenv("BIOFOUND_DOWNLOAD_TIMEOUT", "soon")
    result = runner.invoke(app, ["download", "luna", "--json"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error == "BIOFOUND_DOWNLOAD_TIMEOUT=soon is not a number of seconds; set it to e.g. 120, or unset it for 60"
    assert fake_hub.requests == []


@pytest.mark.parametrize(
    ("request_line", "what"),
    [
        ("GET thorir/LUNA", "the file list of thorir/LUNA"),  # model_info
        (f"HEAD thorir/LUNA/{LUNA_FILE}", f"thorir/LUNA {LUNA_FILE}"),  # the file's metadata
        (f"GET thorir/LUNA/{LUNA_FILE}", f"thorir/LUNA {LUNA_FILE}"),  # the transfer
    ],
)
def test_a_busy_hub_is_asked_again_within_the_run(fake_hub, caplog, request_line, what):
    """One 503 (then a 408) from the hub or its CDN failed the whole download of the weights, as it did a data set's."""
    import logging

    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.busy[request_line] = [503, 408]
    caplog.set_level(logging.WARNING, logger="biofound_cli")
    result = download_weights(weights_request("luna"), progress=False)
    assert result.repo == "thorir/LUNA" and result.files[0].read_bytes() == WEIGHTS
    host = fake_hub.url.split("//", 1)[1]
    assert [record.getMessage() for record in caplog.records] == [
        f"{host} answered HTTP 503 for {what}; retrying (2/3) in 0 s",
        f"{host} answered HTTP 408 for {what}; retrying (3/3) in 0 s",
    ]


def test_a_busy_hub_met_on_a_resume_continues_the_partial_file(fake_hub, tmp_path):
    """The connection drops half way and the hub is busy a moment: the retry asks for the rest, not byte 0."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.drop_once.add(f"thorir/LUNA/{LUNA_FILE}")
    fake_hub.busy[f"GET thorir/LUNA/{LUNA_FILE}"] = [503]
    result = download_weights(weights_request("luna"), progress=False)
    first, busy, resumed = _gets(fake_hub)
    assert first is None and busy == resumed and resumed.startswith("bytes=") and resumed != "bytes=0-"
    assert result.files[0].read_bytes() == WEIGHTS and _partials(tmp_path) == []


@pytest.mark.parametrize(("status", "asked"), [(503, 3), (429, 1)])
def test_a_hub_that_stays_busy_is_asked_three_times_and_named(fake_hub, status, asked):
    """A hub still busy after two retries: its status and 'try again later', exit 1; a 429 is not asked again."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.status[f"thorir/LUNA/{LUNA_FILE}"] = status
    result = runner.invoke(app, ["download", "luna", "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    heads = [path for method, path, _ in fake_hub.requests if method == "HEAD" and path.endswith(LUNA_FILE)]
    assert len(heads) == asked
    if status == 503:
        assert f"thorir/LUNA {LUNA_FILE}: HTTP 503 (a server error)" in error and error.endswith(
            "try again later (or check HF_ENDPOINT)"
        )
    else:
        assert "HTTP 429 (rate-limited" in error


def test_huggingface_hub_resume_warnings_become_one_line_of_ours(fake_hub, caplog):
    """A dropped connection printed huggingface_hub's two lines: 'Error while downloading from URL: ...',
    then 'Trying to resume download...'."""
    import logging

    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.drop_once.add(f"thorir/LUNA/{LUNA_FILE}")
    caplog.set_level(logging.WARNING)
    download_weights(weights_request("luna"), progress=False)
    messages = [(record.name, record.getMessage()) for record in caplog.records]
    host = fake_hub.url.split("//", 1)[1]
    [(name, message)] = messages
    assert name == "biofound_cli.download_retries" and "\n" not in message
    assert message.startswith(f"the transfer of thorir/LUNA {LUNA_FILE} from {host} broke off (")
    assert message.endswith("); resuming it")


def test_huggingface_hub_keeps_its_other_warnings(fake_hub, caplog):
    """Only its retry lines are replaced: any other warning of huggingface_hub's still shows."""
    import logging

    from biofound_cli.download_retries import library_retries_as_ours

    caplog.set_level(logging.WARNING)
    with library_retries_as_ours("thorir/LUNA x"):
        logging.getLogger("huggingface_hub.file_download").warning("something else went wrong")
    assert [record.getMessage() for record in caplog.records] == ["something else went wrong"]


@pytest.mark.slow
def test_a_busy_hub_and_a_dropped_connection_print_one_line_each(fake_hub, tmp_path):
    """What a user sees on a real terminal: our lines only, one per retry, not huggingface_hub's two-line warnings."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.drop_once.add(f"thorir/LUNA/{LUNA_FILE}")
    fake_hub.busy[f"GET thorir/LUNA/{LUNA_FILE}"] = [503]
    fake_hub.retry_after = "0"  # the server's Retry-After: no wait
    process = _start_cli(tmp_path, "download", "luna", "--no-progress")
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, output
    assert "broke off" in warnings[0] and warnings[0].endswith("; resuming it")
    assert warnings[1].endswith(f"answered HTTP 503 for thorir/LUNA {LUNA_FILE}; retrying (2/3) in 0 s")
    assert "Trying to resume" not in output and "Error while downloading" not in output


@pytest.mark.parametrize("retry_after", [None, "0"])
def test_a_429_during_the_transfer_is_not_asked_again(fake_hub, tmp_path, retry_after):
    """huggingface_hub's GET waited out a 429 five times, each time as long as its Retry-After asked (an hour:
    an hour), where the listing and the metadata fail at once with the wait the hub asks for."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.busy[f"GET thorir/LUNA/{LUNA_FILE}"] = [429] * 6
    fake_hub.retry_after = retry_after
    result = runner.invoke(app, ["download", "luna", "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    host = fake_hub.url.split("//", 1)[1]
    wait = "wait a few minutes" if retry_after is None else "the server asks to wait 0 s"
    assert error == (
        f"{host} answered HTTP 429 (rate-limited: too many requests from this address; {wait}) while sending "
        f"thorir/LUNA {LUNA_FILE}; nothing was saved, wait as asked, then re-run the same command"
    )
    assert _gets(fake_hub) == [None] and _partials(tmp_path) == []


def test_a_429_on_the_resume_keeps_the_bytes_for_the_next_run(fake_hub, tmp_path):
    """The link drops half way and the resume meets a 429: one line, the bytes kept, the next run asks for the rest."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.drop_once.add(f"thorir/LUNA/{LUNA_FILE}")
    fake_hub.busy[f"GET thorir/LUNA/{LUNA_FILE}"] = [429]
    fake_hub.retry_after = "3600"
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False)
    [partial] = _partials(tmp_path)
    kept = partial.stat().st_size
    assert caught.value.message.endswith(
        f"the server asks to wait 3600 s) while sending thorir/LUNA {LUNA_FILE}; the {kept} bytes received are kept in "
        f"{partial}, so wait as asked, then re-run the same command to resume"
    )
    fake_hub.requests.clear()
    assert download_weights(weights_request("luna"), progress=False).files[0].read_bytes() == WEIGHTS
    assert _gets(fake_hub) == [f"bytes={kept}-"] and _partials(tmp_path) == []


@pytest.mark.parametrize("target", ["luna", "uci-emg"])
def test_a_redirect_loop_is_one_line_naming_the_file(fake_hub, tmp_path, monkeypatch, target):
    """A CDN that redirects a file to itself: the weights ended in httpx's TooManyRedirects traceback."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.loop.add(f"thorir/LUNA/{LUNA_FILE}")
    zip_name = "static/public/481/emg+data+for+gestures.zip"
    fake_hub.files[zip_name] = b"PK"
    fake_hub.loop.add(f"files/{zip_name}")
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")
    result = runner.invoke(app, ["download", target, "--dest", str(tmp_path / "out"), "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    host = fake_hub.url.split("//", 1)[1]
    if target == "luna":
        assert error == (
            f"{host} redirected thorir/LUNA {LUNA_FILE} in a loop (Exceeded maximum allowed redirects; a server fault: "
            "try again later); nothing was saved, re-run the same command"
        )
    else:
        assert error == (
            f"{host} redirected {zip_name.rsplit('/', 1)[1]} in a loop (Exceeded 30 redirects; a server fault: try again later)"
        )
    assert "Traceback" not in result.output and "\n" not in error
    left = [path for path in (tmp_path / "out").rglob("*") if path.is_file() and ".cache" not in path.parts]
    assert [path for path in left if not path.name.endswith(".lock")] == []  # no half-written file


def test_a_transfer_that_breaks_off_at_the_same_point_each_time_ends(fake_hub, tmp_path):
    """A server that ignores Range behind a link that breaks half way: huggingface_hub started again from byte 0
    each time, without end (each attempt brought new bytes, which reset its count)."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.drop_always.add(f"thorir/LUNA/{LUNA_FILE}")
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False)
    message = caught.value.message
    assert message.startswith(f"the transfer of thorir/LUNA {LUNA_FILE} broke off 6 times in a row at byte ")
    assert "(a server that ignores Range requests, or a link that breaks at the same point); try again later" in message
    assert len(_gets(fake_hub)) == 7 and "\n" not in message
    [partial] = _partials(tmp_path)  # what arrived is kept, under the temporary name
    assert message.endswith(f"bytes received are kept in {partial}, so re-run the same command to resume")


def test_a_body_shorter_than_the_listing_says_is_kept_and_resumed(fake_hub, tmp_path):
    """A proxy announces and sends fewer bytes than the file has: one line naming the file and the size; the re-run
    asks for the rest, and only a whole, checked file gets its final name."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.truncate[f"thorir/LUNA/{LUNA_FILE}"] = 300
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False)
    [partial] = _partials(tmp_path)
    host = fake_hub.url.split("//", 1)[1]
    assert caught.value.message == (
        f"{host} sent thorir/LUNA {LUNA_FILE} short of its {len(WEIGHTS)} bytes; the 300 bytes received are kept in "
        f"{partial}, so re-run the same command to resume"
    )
    assert not partial.with_suffix("").exists()  # nothing under the final name
    del fake_hub.truncate[f"thorir/LUNA/{LUNA_FILE}"]
    fake_hub.requests.clear()
    assert download_weights(weights_request("luna"), progress=False).files[0].read_bytes() == WEIGHTS
    assert _gets(fake_hub) == ["bytes=300-"] and _partials(tmp_path) == []


def test_a_host_whose_copy_stays_cut_short_is_not_resumed_forever(fake_hub, tmp_path):
    """The host's copy of the weights is shorter than the listing says: the re-run the first line advised asked
    for the rest, met HTTP 416, and said "the 300 bytes received are kept ..., so re-run the same command to
    resume" on every run after."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.truncate[f"thorir/LUNA/{LUNA_FILE}"] = 300
    dest = tmp_path / "weights"
    first = runner.invoke(app, ["download", "luna", "--dest", str(dest), "--no-progress"])
    assert first.exit_code == ExitStatus.FAILED and "re-run the same command to resume" in first.output, first.output
    rerun = runner.invoke(app, ["download", "luna", "--dest", str(dest), "--no-progress", "--json"])
    assert rerun.exit_code == ExitStatus.FAILED, rerun.output
    host = fake_hub.url.split("//", 1)[1]
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["error"] == (
        f"{host} has no bytes of thorir/LUNA {LUNA_FILE} past the 300 kept (HTTP 416), though the listing names "
        f"{len(WEIGHTS)}: the copy it serves is cut short; the 300 bytes were removed, so re-run the same command later "
        "to fetch it from the start, and report it to the repository's owners if this repeats"
    )
    assert _gets(fake_hub)[-1] == "bytes=300-" and _partials(tmp_path) == [] and not (dest / LUNA_FILE).exists()


@pytest.mark.slow
@pytest.mark.parametrize("target", ["main process", "process group"])
def test_sigterm_after_the_summary_leaves_the_finished_download_s_status_0(fake_hub, tmp_path, target):
    """A job's time limit reached as the transfer ends: the file is in place and reported, so status 0, not 143,
    whether the signal reaches the main process only or, as ``scancel`` sends it, the whole group."""
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    dest = tmp_path / "weights"
    process = _start_cli(tmp_path, "download", "luna", "--dest", str(dest), "--no-progress", "--json")
    assert process.stdout is not None
    line = process.stdout.readline()
    while line and not line.startswith("{"):
        line = process.stdout.readline()
    summary = json.loads(line)  # printed: the process only exits from now on
    (os.kill if target == "main process" else os.killpg)(process.pid, signal.SIGTERM)
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == 0 and "error" not in rest, rest
    assert "exit_status" not in summary and (dest / LUNA_FILE).read_bytes() == WEIGHTS


@pytest.mark.parametrize("into", ["cache", "dest"])
def test_an_html_page_in_place_of_the_weights_is_named_and_not_kept_to_resume(fake_hub, tmp_path, into):
    """A proxy or captive portal answers the transfer with a login page (status 200).

    Its bytes were kept as the start of the weights ("re-run to resume"); the re-run appended the
    rest of the real file to them and failed the sha256 check, blaming "an earlier run".
    """
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.pages.add(f"thorir/LUNA/{LUNA_FILE}")
    dest = tmp_path / "weights" if into == "dest" else None
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False, dest=dest)
    message = caught.value.message
    assert "sent an HTML page (an error or login page), not" in message and "in a browser" in message, message
    assert "\n" not in message and "resume" not in message
    assert _partials(tmp_path) == []
    fake_hub.pages.clear()  # the page goes away: the re-run fetches the file from byte 0
    result = download_weights(weights_request("luna"), progress=False, dest=dest)
    assert result.files[0].read_bytes() == WEIGHTS


def test_a_disk_that_fills_during_the_weights_transfer_is_one_line_and_the_bytes_are_kept(fake_hub, tmp_path, monkeypatch):
    """ENOSPC while writing the partial file: one line naming the folder, exit 1 with --json, and the re-run resumes."""
    import errno
    import io

    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    opened = Path.open

    class FillsUp(io.BufferedWriter):
        def write(self, data):  # 256 bytes fit (the fake hub's step), then the disk is full
            if self.tell() + len(data) > 256:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    def open_filling(self, mode="r", *args, **kwargs):
        if self.name.endswith(".incomplete") and "a" in mode:
            return FillsUp(io.FileIO(self, mode))
        return opened(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_filling)
    result = CliRunner().invoke(app, ["download", "luna", "--no-progress", "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    failure = json.loads(result.stdout.strip().splitlines()[-1])
    assert "is full while fetching thorir/LUNA" in failure["error"] and "so re-run the same command to resume" in failure["error"]
    assert [path.stat().st_size for path in _partials(tmp_path)] == [256]
    monkeypatch.setattr(Path, "open", opened)  # space freed
    assert CliRunner().invoke(app, ["download", "luna", "--no-progress"]).exit_code == 0
    assert _gets(fake_hub)[-1] == "bytes=256-"


@pytest.fixture
def cdn():
    """A second loopback server, on another port, that the hub redirects the weights to (as huggingface.co to its CDN)."""
    from fixtures.fake_hub import FakeHub

    server = FakeHub().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("into", ["cache", "dest"])
def test_weights_the_hub_redirects_to_another_host_resume_there_even_where_it_ignores_range(fake_hub, cdn, tmp_path, into):
    """The hub answers a file's HEAD with a 302 to its CDN on another host: the link to the CDN drops
    and the CDN fails; the re-run asks the CDN for the rest, which sends the whole file (200): the
    bytes kept are replaced, not joined to it."""
    key = f"thorir/LUNA/{LUNA_FILE}"
    fake_hub.repos["thorir/LUNA"] = {LUNA_FILE: WEIGHTS}
    fake_hub.cdn[key] = cdn.url
    cdn.files[key] = WEIGHTS
    cdn.drop_once.add(key)
    cdn.outage_after_drop = 503
    dest = tmp_path / "weights" if into == "dest" else None
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False, dest=dest)
    [partial] = _partials(tmp_path)
    kept = partial.stat().st_size
    assert f"{cdn.url.removeprefix('http://')} answered HTTP 503 while sending thorir/LUNA {LUNA_FILE}" in caught.value.message
    assert f"the {kept} bytes received are kept in {partial}" in caught.value.message

    cdn.outage = None
    cdn.ignore_range[f"files/{key}"] = 200
    cdn.requests.clear()
    result = download_weights(weights_request("luna"), progress=False, dest=dest)
    assert [ranged for method, _, ranged in cdn.requests if method == "GET"] == [f"bytes={kept}-"]
    assert result.files[0].read_bytes() == WEIGHTS and _partials(tmp_path) == []
    assert not [path for _, path, _ in fake_hub.requests if path.startswith("/files/")]  # the bytes came from the CDN only


@pytest.mark.parametrize("args", [["download", "luna"], ["download", "--recipe", "{recipe}"]])
def test_an_hf_endpoint_that_redirects_to_another_address_names_that_address(fake_hub, tmp_path, monkeypatch, args):
    """A mirror that moved (or http:// redirected to https://): huggingface_hub follows the redirect for
    the file list but not for a file's metadata, so the weights were fetched, then the command failed
    with huggingface_hub's paragraph about firewalls and SSL certificates. The address moved to is named
    before any byte is fetched, and setting HF_ENDPOINT to it works."""
    from fixtures.fake_hub import FakeHub

    fake_hub.repos["thorir/LUNA"] = fake_hub.repos["PulpBio/LUNA"] = {LUNA_FILE: WEIGHTS}
    old = FakeHub().start()
    old.moved_to = fake_hub.url
    recipe = tmp_path / "luna.toml"
    recipe.write_text('[data]\ntrain = "train.h5"\n[model]\nvariant = "luna-base"\ncheckpoint = "hub:luna/Base"\n')
    args = [arg.format(recipe=recipe) for arg in args]
    try:
        monkeypatch.setenv("HF_ENDPOINT", old.url)
        result = runner.invoke(app, [*args, "--no-progress", "--json"])
    finally:
        old.stop()
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout)["error"]
    host = old.url.removeprefix("http://")
    assert error.startswith(f"cannot reach {old.url} to fetch luna-base pre-trained weights")
    assert f"({host} redirects thorir/LUNA {LUNA_FILE} to {fake_hub.url} without the hub's headers; " in error
    assert f"set HF_ENDPOINT={fake_hub.url})" in error and "SSL" not in error
    assert not [path for method, path, _ in fake_hub.requests if method == "GET" and path.endswith(LUNA_FILE)]
    assert _partials(tmp_path) == [] and not list(tmp_path.rglob("blobs/*"))

    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)  # as the message says
    assert runner.invoke(app, [*args, "--no-progress"]).exit_code == 0


def test_a_page_in_place_of_a_files_metadata_is_named_with_the_address_to_open(fake_hub, tmp_path):
    """A proxy answers the file's HEAD and GET with 200 and its page: named before any byte is fetched."""
    for repo in ("thorir/LUNA", "PulpBio/LUNA"):
        fake_hub.repos[repo] = {LUNA_FILE: WEIGHTS}
        fake_hub.status[f"{repo}/{LUNA_FILE}"] = 200
    with pytest.raises(DownloadError) as caught:
        download_weights(weights_request("luna"), progress=False)
    message = caught.value.message
    assert f"answered for thorir/LUNA {LUNA_FILE} without the hub's X-Repo-Commit header (a proxy's error or login" in message
    assert f"open {fake_hub.url}/thorir/LUNA/resolve/" in message and "SSL" not in message
    assert not [method for method, path, _ in fake_hub.requests if method == "GET" and path.endswith(LUNA_FILE)]
    assert _partials(tmp_path) == []


def test_a_stop_before_the_first_block_was_written_says_nothing_was_kept(tmp_path):
    """huggingface_hub writes what arrives in 10 MiB blocks: a stop before the first left an empty file, not bytes."""
    from biofound_cli.hub_files import kept_after_stop, partial_named_on_stop

    def stopped_in(partial: Path) -> KeyboardInterrupt:
        try:
            with partial_named_on_stop(partial):
                raise KeyboardInterrupt
        except KeyboardInterrupt as stop:
            return stop
        raise AssertionError("the stop did not pass through")

    started = tmp_path / "model.safetensors.incomplete"
    started.write_bytes(b"")
    for stop in (KeyboardInterrupt(), stopped_in(started)):
        assert kept_after_stop(stop) == "; nothing of the file was kept yet, so re-run the same command to download it"
    started.write_bytes(b"x" * 5)
    assert (
        kept_after_stop(stopped_in(started))
        == f"; the 5 bytes received are kept in {started}, so re-run the same command to resume the download"
    )


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [
        ("1", 1.0, 1.0),
        ("0", 0.0, 0.0),
        ("3600", 60.0, 60.0),  # an hour is asked again after the limit; the final error names the hour
        (30, 1.0, 30.0),  # an HTTP date 30 s ahead: the seconds until then
        (7200, 60.0, 60.0),  # two hours ahead: the limit
        (-30, 0.0, 0.0),  # a date gone by: at once
        ("soon", 2.0, 2.0),  # neither: the backoff
        (None, 2.0, 2.0),
    ],
)
def test_a_busy_server_is_asked_again_after_its_retry_after_up_to_a_limit(monkeypatch, retry_after, low, high):
    """The wait before a retry was the backoff (2 s, 4 s) or a shorter Retry-After in seconds; a longer one, a date, not."""
    monkeypatch.setattr(download_retries, "RETRY_WAIT_SECONDS", 2.0)
    monkeypatch.setattr(download_retries, "RETRY_AFTER_LIMIT_SECONDS", 60.0)
    if isinstance(retry_after, int):  # seconds from now, as an HTTP date (whole seconds: up to 1 s less)
        retry_after = formatdate(time.time() + retry_after, usegmt=True)
    assert low <= busy_wait(0, retry_after) <= high


@pytest.mark.parametrize("zone", ["UTC-9", "UTC+5"], ids=["east", "west"])
@pytest.mark.parametrize("form", ["asctime", "-0000"])
def test_an_http_date_without_a_zone_is_read_as_gmt(monkeypatch, zone, form):
    """RFC 9110's asctime form names no zone (nor does ``-0000``); it was read as local time, hours off."""
    monkeypatch.setattr(download_retries, "RETRY_AFTER_LIMIT_SECONDS", 60.0)
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        ahead = time.gmtime(time.time() + 30)
        shape = "%a %b %d %H:%M:%S %Y" if form == "asctime" else "%a, %d %b %Y %H:%M:%S -0000"
        assert 1.0 <= busy_wait(0, time.strftime(shape, ahead)) <= 30.0
    finally:
        monkeypatch.undo()  # TZ as it was, and the local zone read again
        time.tzset()
