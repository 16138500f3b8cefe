"""``biofound download`` end to end against the fake hub: summary, JSON, exit statuses."""

from __future__ import annotations

import errno
import json
import os
import socket

import pytest
from fixtures.fake_hub import TINY_MANIFESTS, left_in, safetensors_bytes
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.download_retries import BUSY_RETRIES
from biofound_cli.errors import ExitStatus

runner = CliRunner()


def test_weights_json_summary(fake_hub):
    fake_hub.repos["PulpBio/LUNA"] = {"Base/LUNA_base.safetensors": safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    result = runner.invoke(app, ["download", "luna", "--variant", "base", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["repo"] == "PulpBio/LUNA" and summary["variant"] == "luna-base"
    assert summary["recipe"][0].startswith('[model]\nvariant = "luna-base"\ncheckpoint = "')


def test_weights_text_output_names_repo_and_recipe(fake_hub):
    fake_hub.repos["thorir/LUNA"] = {"Base/LUNA_base.safetensors": safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    result = runner.invoke(app, ["download", "luna", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "served by thorir/LUNA" in result.output and "checkpoint = " in result.output


def test_summary_table_prints_the_recipe_snippet_whole(fake_hub):
    """Its ``[model]`` line was read as rich markup and dropped from the table (the text above kept it)."""
    fake_hub.repos["thorir/LUNA"] = {"Base/LUNA_base.safetensors": safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    result = runner.invoke(app, ["download", "luna", "--no-progress"])
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("Downloaded weights") :]
    assert "[model]" in table and "reference" in table


def test_missing_weights_exit_1_and_bad_task_exit_2(fake_hub):
    result = runner.invoke(app, ["download", "luna"])
    assert result.exit_code == 1 and "no repository serves" in result.output
    result = runner.invoke(app, ["download", "luna", "--task", "DB5"])
    assert result.exit_code == 2 and "has no LUNA checkpoint" in result.output


def test_unknown_target_and_dataset_flags(fake_hub):
    assert runner.invoke(app, ["download", "mnist"]).exit_code == 2
    assert runner.invoke(app, ["download", "siena", "--variant", "base"]).exit_code == 2


def test_tuh_without_credentials_prints_steps_and_exits_77(fake_hub, tmp_path, monkeypatch):
    """Nothing is fetched, so not 0: `download tuab && biofound preprocess ...` stops here."""
    monkeypatch.delenv("BIOFOUND_TUH_SSH_KEY", raising=False)
    result = runner.invoke(app, ["download", "tuab", "--dest", str(tmp_path)])
    assert result.exit_code == ExitStatus.NEEDS_CREDENTIALS == 77, result.output
    assert "rsync -auxvL" in result.output and "data-sharing form" in result.output
    assert "error: nothing was downloaded: the TUH Abnormal EEG Corpus needs NEDC credentials" in result.output
    result = runner.invoke(app, ["download", "tuab", "--dest", str(tmp_path), "--json"])
    failure = json.loads(result.stdout.strip().splitlines()[-1])
    assert failure["exit_status"] == 77 and failure["command"][:2] == ["rsync", "-auxvL"]
    assert not (tmp_path / "tuab").exists()


def test_dataset_via_local_mirror(fake_hub, tmp_path, monkeypatch):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("EMG_data_for_gestures-master/01/1_raw.txt", "time\tch1\tclass\n")
    fake_hub.files["static/public/481/emg+data+for+gestures.zip"] = buffer.getvalue()
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")
    result = runner.invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["checks"] == ["fetched: size announced by the server, zip structure (no sha256 recorded)"]
    assert (tmp_path / "uci-emg" / "EMG_data_for_gestures-master" / "01" / "1_raw.txt").is_file()


def test_list(fake_hub):
    fake_hub.repos["thorir/FEMBA"] = {"TUAR/base.safetensors": b"x" * 2_000_000}
    result = runner.invoke(app, ["download", "femba", "--list", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout.strip().splitlines()[-1])["files"]
    assert row == {
        "model": "FEMBA",
        "repo": "thorir/FEMBA",
        "file": "TUAR/base.safetensors",
        "size": 2_000_000,
        "task": "tuar",
        "variant": "femba-base",
    }
    # The table gives the size as `biofound info` gives a file's (it said "2.0 MB" here, "1.9 MiB" there).
    assert "1.9 MiB" in runner.invoke(app, ["download", "femba", "--list"]).output


def test_list_of_every_model_goes_on_past_a_model_no_repository_lists(fake_hub):
    """One family missing from the hub (or a mirror) no longer hides the others: it is named, and left out."""
    fake_hub.repos["PulpBio/TinyMyo"] = {"UCI_EMG/base.safetensors": b"x" * 10}
    result = runner.invoke(app, ["download", "--list", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {row["model"] for row in summary["files"]} == {"TinyMyo"}
    assert set(summary["unlisted"]) == {"femba", "luna"}
    assert "no repository at" in summary["unlisted"]["luna"] and "lists luna weights" in summary["unlisted"]["luna"]
    # Named alone, a model nothing lists is still an error.
    assert runner.invoke(app, ["download", "luna", "--list"]).exit_code == 1


def test_list_goes_on_to_the_next_repository_after_a_refusal(fake_hub):
    """The hub answers 401 for a repository that is gone: --list tries the next one, as the download does."""
    fake_hub.repos["PulpBio/LUNA"] = {"Base/LUNA_base.safetensors": safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    fake_hub.refuse["thorir/LUNA"] = 401
    assert runner.invoke(app, ["download", "luna", "--json"]).exit_code == 0
    result = runner.invoke(app, ["download", "luna", "--list", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout.strip().splitlines()[-1])["files"]
    assert (row["repo"], row["file"]) == ("PulpBio/LUNA", "Base/LUNA_base.safetensors")
    fake_hub.refuse["PulpBio/LUNA"] = 403
    result = runner.invoke(app, ["download", "luna", "--list", "--json"])
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert "thorir/LUNA: access refused (HTTP 401); PulpBio/LUNA: access refused (HTTP 403)" in error
    assert "set HF_TOKEN" in error and "\n" not in error


def test_list_without_network_is_one_line(fake_hub, monkeypatch):

    with socket.socket() as probe:  # a loopback port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed}")
    result = runner.invoke(app, ["download", "--list"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "ConnectError" not in result.output
    [line] = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith(f"error: cannot reach http://127.0.0.1:{closed} to list the femba weights")
    assert "check the network connection" in line


def _serve_both(fake_hub, monkeypatch) -> None:
    """The LUNA-base weights on the hub and the UCI EMG zip on the plain file host."""
    import io
    import zipfile

    fake_hub.repos["thorir/LUNA"] = {"Base/LUNA_base.safetensors": safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("EMG_data_for_gestures-master/01/1_raw.txt", "time\tch1\tclass\n")
    fake_hub.files["static/public/481/emg+data+for+gestures.zip"] = buffer.getvalue()
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")


def _read_only(monkeypatch) -> None:
    """Every folder refuses new files, as on a read-only file system (root passes file modes by)."""

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr("biofound_cli.store.output_folder.tempfile.mkstemp", refuse)


def _error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("target", ["luna", "uci-emg"])
@pytest.mark.parametrize("dest", ["/proc/1", "/proc/biofound-download"])
def test_a_dest_the_kernel_refuses_is_one_line_and_status_2_for_weights_and_data_sets(fake_hub, monkeypatch, target, dest):
    """/proc/1 exists and refuses new files even to root; weights said 1 (or warned), data sets gave a traceback."""
    _serve_both(fake_hub, monkeypatch)
    result = runner.invoke(app, ["download", target, "--dest", dest, "--json"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    failure = json.loads(result.stdout.strip().splitlines()[-1])
    assert failure["exit_status"] == ExitStatus.USAGE and failure["error"].startswith(f"--dest {dest}: ")
    assert len(_error_lines(result)) == 1 and "Traceback" not in result.output and "local_dir" not in result.output
    assert not any(method == "GET" and "/resolve/" in path for method, path, _ in fake_hub.requests)


@pytest.mark.parametrize("target", ["luna", "uci-emg"])
def test_a_dest_on_a_read_only_file_system_is_one_line_and_status_2(fake_hub, monkeypatch, tmp_path, target):
    _serve_both(fake_hub, monkeypatch)
    read_only = tmp_path / "ro"
    read_only.mkdir()
    _read_only(monkeypatch)
    result = runner.invoke(app, ["download", target, "--dest", str(read_only)])
    assert result.exit_code == ExitStatus.USAGE, result.output
    [line] = _error_lines(result)
    assert line.startswith(f"error: --dest {read_only}: cannot write there (Read-only file system)")
    assert list(read_only.iterdir()) == []


def test_weights_in_a_read_only_dest_are_still_read_offline(fake_hub, monkeypatch, tmp_path):
    """A shared, read-only weights folder filled once: HF_HUB_OFFLINE reads it, with no write check."""
    _serve_both(fake_hub, monkeypatch)
    dest = tmp_path / "weights"
    assert runner.invoke(app, ["download", "luna", "--dest", str(dest)]).exit_code == 0
    _read_only(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(app, ["download", "luna", "--dest", str(dest), "--json"])
    assert result.exit_code == 0, result.output
    [path] = json.loads(result.stdout.strip().splitlines()[-1])["files"]
    assert path == str(dest / "Base" / "LUNA_base.safetensors")


def test_a_data_set_in_a_read_only_folder_is_read_as_it_is(fake_hub, monkeypatch, tmp_path):
    """A data set fetched on a login node into a folder compute nodes mount read-only, read there with no network.

    The write check came first: `download uci-emg --dest DIR` (or `--recipe` naming the data set)
    exited 2 with "cannot write there", though every file was there and unpacked.
    """
    _serve_both(fake_hub, monkeypatch)
    data = tmp_path / "data"
    first = runner.invoke(app, ["download", "uci-emg", "--dest", str(data), "--json"])
    assert first.exit_code == 0, first.output
    fake_hub.stop()
    _read_only(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(app, ["download", "uci-emg", "--dest", str(data), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["files"] == json.loads(first.stdout.strip().splitlines()[-1])["files"]


def test_a_hub_cache_that_cannot_be_written_is_one_line_and_status_2(fake_hub, monkeypatch):
    _serve_both(fake_hub, monkeypatch)
    monkeypatch.setenv("HF_HUB_CACHE", "/proc/1")
    result = runner.invoke(app, ["download", "luna", "--json"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["error"].startswith("HF_HUB_CACHE /proc/1: cannot write there")
    assert len(_error_lines(result)) == 1


@pytest.mark.parametrize("hub_up", [True, False], ids=["hub-answers", "no-route"])
def test_weights_in_a_hub_cache_that_cannot_be_written_are_read_as_they_are(fake_hub, monkeypatch, tmp_path, hub_up):
    """A shared hub cache filled on a login node, read-only on compute nodes (or another user's).

    Without HF_HUB_OFFLINE, `download luna` (or `download --recipe` in a job script) exited 2
    with "HF_HUB_CACHE ...: cannot write there" though the weights were there: the write check came first.
    The folder's name holds "; ", where the warning cut the reason short (it was split off a message).
    """
    _serve_both(fake_hub, monkeypatch)
    cache = tmp_path / "shared; read-only"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    first = runner.invoke(app, ["download", "luna", "--json"])
    assert first.exit_code == 0, first.output
    if not hub_up:
        fake_hub.stop()
    _read_only(monkeypatch)
    result = runner.invoke(app, ["download", "luna", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["files"] == json.loads(first.stdout.strip().splitlines()[-1])["files"]
    assert (
        f"warning: HF_HUB_CACHE {cache}: cannot write there (Read-only file system); using the copy already in the hub cache ("
        in (result.stderr)
    )
    assert "error:" not in result.stderr


@pytest.mark.parametrize("target", [["download", "luna"], ["download", "luna", "--list"], ["download", "--list"]])
def test_a_hub_down_is_asked_once_with_its_retries_and_says_to_try_again_later(fake_hub, target):
    """A hub answering 503 to everything was asked three times per candidate repository (and per model with
    --list), each time after the retries' waits: 6 requests and ~12 s for one model, 18 and ~36 s for --list."""
    fake_hub.outage = 503
    result = runner.invoke(app, [*target, "--no-progress", "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert len(fake_hub.requests) == 1 + BUSY_RETRIES  # the first repository, asked again while busy; no other
    first = "thorir/FEMBA" if target == ["download", "--list"] else "thorir/LUNA"
    assert error.startswith(f"{fake_hub.url} could not ") and f"{first}: HTTP 503 (a server error)" in error
    assert error.endswith("; try again later (or check HF_ENDPOINT)") and "\n" not in error


@pytest.mark.parametrize("target", [["download", "luna"], ["download", "luna", "--list"], ["download", "--list"]])
def test_a_rate_limited_hub_is_not_asked_for_the_next_repository(fake_hub, target):
    """A 429 from thorir/LUNA went on to PulpBio/LUNA on the same host (and --list to every family's two
    repositories: 6 requests, the same 429 named 6 times), each request adding to the count the hub limits."""
    fake_hub.outage = 429
    result = runner.invoke(app, [*target, "--no-progress", "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert len(fake_hub.requests) == 1
    assert error.count("HTTP 429 (rate-limited") == 1 and error.startswith(f"{fake_hub.url} could not ")
    assert error.endswith(
        "wait as asked, then re-run (the hub allows more requests with a token: set HF_TOKEN or run `hf auth login`)"
    )


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        ("30", "the server asks to wait 30 s"),
        ("Thu, 03 Dec 2026 10:00:00 GMT", "until Thu, 03 Dec 2026"),
        (None, "wait a few minutes"),
    ],
)
@pytest.mark.parametrize("target", ["luna", "luna --list", "uci-emg"])
def test_a_rate_limited_hub_or_host_is_named_with_the_wait_it_asks_for(
    fake_hub, tmp_path, monkeypatch, target, retry_after, wait
):
    """HTTP 429 read 'HTTP 429; try again later' (data sets) or 'HTTP 429' (weights): not what it means or how long."""
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")
    fake_hub.outage = 429
    fake_hub.retry_after = retry_after
    data_set = ["--dest", str(tmp_path / "data")] if target == "uci-emg" else []
    result = runner.invoke(app, ["download", *target.split(), *data_set, "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert "HTTP 429 (rate-limited: too many requests from this address; " in error and wait in error, error
    assert "\n" not in error
    if target == "uci-emg":
        assert error.endswith("re-run the same command after that wait")
    else:
        assert "thorir/LUNA: HTTP 429 (rate-limited" in error and "PulpBio/LUNA" not in error  # same host: not asked
        assert error.endswith(
            "wait as asked, then re-run (the hub allows more requests with a token: set HF_TOKEN or run `hf auth login`)"
        )


def test_a_data_set_redirected_in_a_loop_is_one_line_and_leaves_nothing(fake_hub, tmp_path, monkeypatch):
    """A host that redirects a data-set file to itself: exit 1, one line naming the host and file, no part file."""
    name = "static/public/481/emg+data+for+gestures.zip"
    fake_hub.files[name] = b"PK"
    fake_hub.loop.add(f"files/{name}")
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")
    result = runner.invoke(app, ["download", "uci-emg", "--dest", str(tmp_path), "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error.startswith(f"{fake_hub.url.removeprefix('http://')} redirected emg+data+for+gestures.zip in a loop (")
    assert error.endswith("; a server fault: try again later)") and "\n" not in error
    assert left_in(tmp_path / "uci-emg" / "archives") == []


@pytest.mark.parametrize("target", ["luna", "luna --list", "uci-emg"])
def test_a_busy_hub_or_host_is_named_with_the_wait_it_asks_for(fake_hub, tmp_path, monkeypatch, target):
    """A 503 with ``Retry-After: 120``, asked again within the run (after at most 60 s each), ends naming that wait."""
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")
    fake_hub.outage = 503
    fake_hub.retry_after = "120"
    data_set = ["--dest", str(tmp_path / "data")] if target == "uci-emg" else []
    result = runner.invoke(app, ["download", *target.split(), *data_set, "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert "\n" not in error and "Traceback" not in result.output
    if target == "uci-emg":
        assert error.endswith("answered HTTP 503 for emg+data+for+gestures.zip; try again later (the server asks to wait 120 s)")
        assert left_in(tmp_path / "data" / "uci-emg" / "archives") == []  # nothing under the final name, no empty part
    else:
        assert "thorir/LUNA: HTTP 503 (a server error; the server asks to wait 120 s)" in error, error


@pytest.mark.parametrize("target", ["luna", "uci-emg"])
def test_a_busy_hub_or_host_is_asked_again_after_the_wait_it_asks_for(fake_hub, tmp_path, monkeypatch, target):
    """A 503 with ``Retry-After: 1`` was asked again after the backoff (2 s, here 0.5 s): the server's wait only where shorter."""
    import io
    import zipfile

    from biofound_cli import download_retries

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("EMG_data_for_gestures-master/01/1_raw.txt", "time\tch1\tclass\n")
    fake_hub.files["static/public/481/emg+data+for+gestures.zip"] = buffer.getvalue()
    fake_hub.repos["PulpBio/LUNA"] = {"Base/LUNA_base.safetensors": safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    monkeypatch.setenv("BIOFOUND_DATA_BASE_URL", f"{fake_hub.url}/files")
    key = (
        "files/static/public/481/emg+data+for+gestures.zip" if target == "uci-emg" else "PulpBio/LUNA/Base/LUNA_base.safetensors"
    )
    fake_hub.busy[f"GET {key}"] = [503]
    fake_hub.retry_after = "1"
    monkeypatch.setattr(download_retries, "RETRY_AFTER_LIMIT_SECONDS", 60.0)
    monkeypatch.setattr(download_retries, "RETRY_WAIT_SECONDS", 0.5)  # the backoff: shorter than the wait asked for
    waits: list[float] = []
    monkeypatch.setattr(download_retries, "sleep", waits.append)  # the wait is read, not waited
    extra = ["--dest", str(tmp_path / "data")] if target == "uci-emg" else ["--variant", "base"]
    result = runner.invoke(app, ["download", target, *extra, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert waits == [1.0]
    assert "answered HTTP 503 for " in result.output and "; retrying (2/3) in 1 s" in result.output, result.output


@pytest.mark.parametrize(
    ("args", "advice"),
    [
        (["femba", "--list"], "; check HF_ENDPOINT=http://127.0.0.1:"),
        (["femba", "--list", "--revision", "v9"], "; check --revision v9 (a branch, tag or commit of these repositories)"),
    ],
)
def test_list_of_a_family_no_repository_holds_says_what_to_check(fake_hub, args, advice):
    """Every repository answering 404 ended the message after the statuses, with nothing to do."""
    if "--revision" in args:
        fake_hub.repos["thorir/FEMBA"] = fake_hub.repos["PulpBio/FEMBA"] = {"Base/FEMBA_base.safetensors": b"0"}
    result = runner.invoke(app, ["download", *args, "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert "thorir/FEMBA: " in error and "PulpBio/FEMBA: " in error and advice in error, error


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("siena", "--list shows model weights, not data sets: run `biofound download siena` without --list to fetch siena"),
        ("lunar", "--list shows model weights; 'lunar' is not one of: femba, luna, tinymyo; drop it to list them all"),
    ],
)
def test_list_of_a_data_set_or_an_unknown_name_says_what_to_run(fake_hub, name, says):
    result = runner.invoke(app, ["download", name, "--list", "--json"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["error"] == says
    assert fake_hub.requests == []


def test_list_against_a_silent_hub_names_the_wait_and_its_setting(silent_hub):
    """A hub that accepts and never answers: --list said '(timed out)', where the download names the wait and its setting."""
    result = runner.invoke(app, ["download", "luna", "--list", "--json"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error == (
        f"cannot reach {silent_hub} to list the luna weights (no answer within 0.5 s; the hub may be overloaded: wait "
        "longer with BIOFOUND_DOWNLOAD_TIMEOUT=SECONDS); check the network connection (or HF_ENDPOINT) and re-run"
    )


def test_export_of_official_weights_says_what_runs_them_before_and_after_the_download(fake_hub, tmp_path):
    """Its refusal pointed at three Python calls (one of them needing more arguments than it named).

    Before the download it said "CHECKPOINT: export.checkpoint = 'hub:luna/TUAB': ... not in the hub cache
    yet; fetch them with `biofound download ...`" (the place twice), and the weights fetched were then refused.
    """
    fake_hub.repos["thorir/LUNA"] = {"TUAB/base.safetensors": safetensors_bytes(TINY_MANIFESTS["luna-base"]["finetune"])}
    export = ["export", "hub:luna/TUAB", "--out", str(tmp_path / "export")]
    for downloaded in (False, True):
        if downloaded:
            assert runner.invoke(app, ["download", "luna", "--task", "TUAB", "--quiet"]).exit_code == 0
        result = runner.invoke(app, export, env={"HF_HUB_OFFLINE": "1"})
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == (
            "error: CHECKPOINT = 'hub:luna/TUAB' names official weights, which carry no biofound metadata, so nothing "
            "says which model, channels and window to export; `biofound predict hub:luna/TUAB RECORDINGS --out DIR` runs "
            "official weights as they are, or fine-tune from them (model.checkpoint) and export that run"
        )


def test_info_reads_a_hub_reference_as_the_other_commands_do(fake_hub):
    """`info hub:luna/Base` said "no such file or folder; check the path", where predict and finetune read the file."""
    result = runner.invoke(app, ["info", "hub:luna/Base"])
    assert result.exit_code == 2 and "fetch them with `biofound download luna" in result.stderr, result.output
    fake_hub.repos["thorir/LUNA"] = {"Base/LUNA_base.safetensors": safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    assert runner.invoke(app, ["download", "luna", "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["info", "hub:luna/Base", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["kind"] == "checkpoint" and summary["path"].endswith("Base/LUNA_base.safetensors")


def test_a_recipe_whose_tuh_corpus_needs_credentials_says_its_weights_were_downloaded(fake_hub, tmp_path, monkeypatch):
    """The weights came first, yet the line said "nothing was downloaded"; the failure object left them out."""
    monkeypatch.delenv("BIOFOUND_TUH_SSH_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    fake_hub.repos["thorir/LUNA"] = {"Base/LUNA_base.safetensors": safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    assert runner.invoke(app, ["recipes", "cp", "luna_tuab", "mine/", "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["download", "--recipe", "mine/luna_tuab.toml", "--json"])
    assert result.exit_code == ExitStatus.NEEDS_CREDENTIALS, result.output
    assert "error: only the weights were downloaded (hub:luna/Base): the TUH Abnormal" in result.stderr
    failure = json.loads(result.stdout.strip().splitlines()[-1])
    assert failure["weights"]["reference"] == "hub:luna/Base" and os.path.isfile(failure["weights"]["files"][0])


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["luna", "--variant", "base"], ExitStatus.OK),
        (["femba", "--list"], ExitStatus.OK),
        (["luna", "--variant", "base", "--task", "DB5"], ExitStatus.USAGE),
        (["femba", "--variant", "base", "--task", "TUAB"], ExitStatus.FAILED),  # no repository serves it
        (["tuab", "--dest", "{t}"], ExitStatus.NEEDS_CREDENTIALS),
    ],
    ids=lambda case: " ".join(case) if isinstance(case, list) else str(int(case)),
)
def test_json_is_one_object_and_plain_lines_whatever_the_hub_answers(fake_hub, tmp_path, monkeypatch, args, status):
    """docs/exit-status.md's --json contract for download: its --list table was drawn on stderr too."""
    from fixtures.cli_output import assert_json_contract

    monkeypatch.delenv("BIOFOUND_TUH_SSH_KEY", raising=False)
    fake_hub.repos["PulpBio/LUNA"] = {"Base/LUNA_base.safetensors": safetensors_bytes(TINY_MANIFESTS["luna-base"]["pretrain"])}
    fake_hub.repos["thorir/FEMBA"] = {"TUAR/base.safetensors": b"x" * 20}
    result = runner.invoke(app, ["download", *(arg.format(t=tmp_path) for arg in args), "--json", "--no-progress"])
    assert_json_contract(result, status)


def test_json_of_a_silent_hub_is_one_object_and_status_1(silent_hub):
    from fixtures.cli_output import assert_json_contract

    assert (
        "no answer within" in assert_json_contract(runner.invoke(app, ["download", "luna", "--json"]), ExitStatus.FAILED)["error"]
    )
