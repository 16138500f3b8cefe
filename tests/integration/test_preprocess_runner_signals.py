"""Signals to a real ``biofound preprocess --workers 2``: SIGTERM or SIGUSR1 stops like Ctrl-C, no worker outlives the run.

What ``timeout``, ``kill``, a scheduler or the OOM killer do: signal the main process (or the
whole process group: ``scancel``, and ``sbatch --signal=USR1@N`` with SIGUSR1), or kill it
outright, or kill one worker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from fixtures.process_group import (
    DEADLINE,
    assert_group_gone,
    assert_terminated,
    biofound_signalled_as_it_calls,
    children,
    start_in_own_group,
    stopped_at_once,
    wait_until_gone,
)
from fixtures.shards import not_shards
from fixtures.tuh import build_tuab_train

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")]
N_FILES = 16


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory) -> Path:
    return build_tuab_train(tmp_path_factory.mktemp("tuab") / "edf", N_FILES)


def command(root: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "biofound_cli", "preprocess", "tuab", "--root", str(root), "--out", str(out),
            "--workers", "2", "--no-progress", "--json"]  # fmt: skip


def start_and_wait_for_shards(root: Path, out: Path, n_shards: int = 2) -> tuple[subprocess.Popen, dict[int, str]]:
    """Start the run; once ``n_shards`` shards exist, return it and its two workers."""
    process = subprocess.Popen(
        command(root, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and process.poll() is None and len(list((out / "tuab").glob("*.h5"))) < n_shards:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be signalled"
    workers = children(process.pid)
    assert len(workers) == 2, workers
    return process, workers


def shards(out: Path) -> dict[str, int]:
    """Shard file name → windows, for every whole shard on disk."""
    counts = {}
    for path in sorted((out / "tuab").glob("*.h5")):
        with h5py.File(path, "r") as handle:
            counts[path.name] = handle["x"].shape[0]
    return counts


def assert_resumes_to_completion(root: Path, out: Path) -> None:
    rerun = subprocess.run(command(root, out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["written"] + summary["already_done"] == N_FILES and len(shards(out)) == N_FILES
    assert not_shards(out / "tuab") == []
    # The resumed report counts the windows of every shard: those already done said 0 windows, so
    # the report (and pack's preprocess summary) fell short of the folder by the windows written first.
    on_disk = shards(out)
    report = json.loads((out / "preprocess_report.tuab.json").read_text())
    assert report["windows"] == sum(on_disk.values())
    assert {Path(entry["shard"]).name: entry["windows"] for entry in report["files"]} == on_disk
    written = [entry["windows"] for entry in report["files"] if entry["status"] == "written"]
    assert summary["windows_written"] == report["windows_written"] == sum(written) < report["windows"] == summary["windows"]


SIGNALLED = [
    pytest.param(target, signum, id=f"{target} {signum.name}")
    for target, signum in [("main process", signal.SIGTERM), ("process group", signal.SIGTERM), ("process group", signal.SIGUSR1)]
]
"""Where the stop goes and which: SIGUSR1 to the group killed the run with status -10, no line, no report."""


@pytest.mark.parametrize(("target", "signum"), SIGNALLED)
def test_sigterm_stops_like_ctrl_c_and_the_report_counts_the_shards_on_disk(raw_root, tmp_path, target, signum):
    out = tmp_path / "out"
    process, workers = start_and_wait_for_shards(raw_root, out)
    (os.kill if target == "main process" else os.killpg)(process.pid, signum)
    stdout, stderr = process.communicate(timeout=DEADLINE)
    assert_terminated(process, stdout, stderr, "re-run", by=signal.Signals(signum).name)
    report = json.loads((out / "preprocess_report.tuab.json").read_text())
    on_disk = shards(out)
    assert report["interrupted"] and 2 <= report["written"] == len(on_disk) < N_FILES
    # The plain log's last line counts the recordings that finished while the run stopped too ("stopped at 0/16").
    assert f"preprocess tuab: stopped at {len(on_disk)}/{N_FILES} files" in stderr, stderr
    assert report["windows"] == sum(on_disk.values())
    assert {Path(entry["shard"]).name for entry in report["files"] if entry["status"] == "written"} == set(on_disk)
    assert not_shards(out / "tuab") == []
    assert wait_until_gone(workers) == []
    assert_group_gone(process.pid)
    assert_resumes_to_completion(raw_root, out)


@pytest.mark.parametrize(("target", "signum"), SIGNALLED)
def test_sigterm_after_the_summary_leaves_the_finished_run_s_status_0(raw_root, tmp_path, target, signum):
    """A job's time limit reached as the work ends: the run is complete and reported, so status 0, not 143,
    whether the signal reaches the main process only or, as ``scancel`` sends it, the whole group."""
    process = subprocess.Popen(
        command(raw_root, tmp_path / "out"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None
    summary = json.loads(process.stdout.readline())  # printed: the process only exits from now on
    (os.kill if target == "main process" else os.killpg)(process.pid, signum)
    _, stderr = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0 and "error" not in stderr, stderr
    assert summary["written"] == N_FILES


# preprocess with each pool worker holding its recording until both hold theirs (the last two), then
# signalling the whole group: the stop comes while the last recordings are in flight, on any machine.
STOPPED_AS_THE_LAST_TWO_RUN = """
import os, signal, sys, time
from pathlib import Path
import biofound_cli.store.preprocess as preprocess
from biofound_cli.__main__ import main
signal_name, started, process = sys.argv[1], Path(sys.argv[2]), preprocess.process_recording
def held_then_signalled(*args, **kwargs):
    (started / str(os.getpid())).touch()
    while len(list(started.iterdir())) < 2:
        time.sleep(0.01)
    os.killpg(os.getpgrp(), signal.Signals[signal_name])  # the workers leave it to the main process
    return process(*args, **kwargs)
preprocess.process_recording = held_then_signalled
sys.argv = ["biofound", *sys.argv[3:]]
main()
"""


@pytest.mark.parametrize("moment", ["as the last two run", "as the report is written"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_stop_as_the_last_recordings_finish_or_after_ends_the_done_run_with_status_0(raw_root, tmp_path, moment, signum):
    """Every recording was done, yet the run exited 143 and its report said interrupted (or, the stop coming as it
    was written, was not written): a scheduler requeued finished work, and pack asked for a re-run. Now status 0,
    the report whole, one warning naming the signal."""
    root, started, out = first_two(raw_root, tmp_path / "raw"), tmp_path / "started", tmp_path / "out"
    started.mkdir()
    args = command(root, out)[3:]
    if moment == "as the last two run":
        launched = [sys.executable, "-c", STOPPED_AS_THE_LAST_TWO_RUN, signum.name, str(started), *args]
    else:
        launched = biofound_signalled_as_it_calls("biofound_cli.store.preprocess:write_report", signum.name, *args)
    process = start_in_own_group(launched)
    stdout, stderr = process.communicate(timeout=DEADLINE)
    assert_group_gone(process.pid)
    assert process.returncode == 0, stderr
    assert f"warning: {signum.name} came as the work finished: it is complete" in stderr
    assert "error" not in stderr and json.loads(stdout)["written"] == 2
    report = json.loads((out / "preprocess_report.tuab.json").read_text())
    assert not report["interrupted"] and report["written"] == len(shards(out)) == 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_python_caller_has_its_signal_handlers_back_after_a_stop_the_done_run_dropped(raw_root, tmp_path, monkeypatch, signum):
    """``run_preprocess`` (docs/python-api.md) that dropped a stop as its last recording finished left SIGTERM and
    SIGUSR1 ignored for the rest of the caller's process: a later ``scancel`` went unheard until SIGKILL."""
    from biofound_cli.recipes.preprocess import PreprocessSection
    from biofound_cli.store import preprocess

    record, sent = preprocess._record, []

    def recorded_then_signalled(results, result, watch) -> None:
        record(results, result, watch)
        if len(results) == 2 and not sent:  # the last recording's result: every one is done
            sent.append(os.kill(os.getpid(), signum))

    monkeypatch.setattr(preprocess, "_record", recorded_then_signalled)
    before = signal.getsignal(signum)
    section = PreprocessSection(
        corpus="tuab", root=str(first_two(raw_root, tmp_path / "raw")), out=str(tmp_path / "out"), workers=2
    )
    report = preprocess.run_preprocess(section, "recipe.toml")
    assert sent and not report.interrupted and report.written == 2
    assert signal.getsignal(signum) is before


FAILURES = {
    "a full disk": """
import errno
from biofound_cli.store.shards import ShardWriter
def full(self, index, windows):
    raise OSError(errno.ENOSPC, "No space left on device")  # as HDF5's failed write raises it
ShardWriter.write_channel = full
""",
}


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize(("failure", "says"), [("a full disk", "No space left on device")])
def test_a_stop_as_a_failing_run_writes_its_report_leaves_the_report_whole_and_the_error_its_line(
    raw_root, tmp_path, failure, says, signal_name
):
    """SIGTERM to the group as a run that a full disk or a dead worker stopped counted its shards for the report:
    the stop took the error's place (143, "stopped by SIGTERM") and the report was never written. The report says
    interrupted either way: a dead worker's said it was not, so pack never said to re-run it for the shards left.
    Ctrl-C (the handler took SIGTERM and SIGUSR1 alone) replaced the error with the generic Ctrl-C line."""
    out = tmp_path / "out"
    where = "biofound_cli.store.preprocess:count_what_is_on_disk"  # the report's first step, the error on its way out
    launched = biofound_signalled_as_it_calls(where, signal_name, *command(raw_root, out)[3:], patch=FAILURES[failure])
    process = start_in_own_group(launched)
    stdout, stderr = process.communicate(timeout=DEADLINE)
    assert_group_gone(process.pid)
    assert process.returncode == 1 and "Traceback" not in stderr, stderr
    assert says in json.loads(stdout)["error"] and "stopped by" not in stderr + stdout, stderr
    report = json.loads((out / "preprocess_report.tuab.json").read_text())
    assert report["written"] == len(shards(out)) and report["found"] == N_FILES
    # Ended before every recording was done, as a stopped run: a dead worker's report did not say so (a full disk's did).
    assert report["interrupted"]


def test_ctrl_c_as_the_report_is_written_leaves_it_whole_then_stops_the_run_with_130(raw_root, tmp_path):
    """Ctrl-C to the group as the done run wrote its report interrupted the write: no report at all (or the last
    run's), and the generic Ctrl-C line. Now the report is written whole, then the run's own stop line, 130."""
    out = tmp_path / "out"
    args = command(first_two(raw_root, tmp_path / "raw"), out)[3:]
    process = start_in_own_group(biofound_signalled_as_it_calls("biofound_cli.store.preprocess:write_report", "SIGINT", *args))
    stdout, stderr = process.communicate(timeout=DEADLINE)
    assert_group_gone(process.pid)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stopped by Ctrl-C after 2 new shards" in errors[0], stderr
    assert json.loads(stdout)["exit_status"] == 130
    report = json.loads((out / "preprocess_report.tuab.json").read_text())
    assert report["written"] == len(shards(out)) == 2 and not report["interrupted"]


def first_two(raw_root: Path, root: Path) -> Path:
    """``root``, holding copies of the first two recordings of ``raw_root``."""
    for path in sorted(raw_root.rglob("*.edf"))[:2]:
        (root / path.relative_to(raw_root)).parent.mkdir(parents=True, exist_ok=True)
        (root / path.relative_to(raw_root)).write_bytes(path.read_bytes())
    return root


def test_killing_the_main_process_takes_its_workers_along(raw_root, tmp_path):
    out = tmp_path / "out"
    process, workers = start_and_wait_for_shards(raw_root, out)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=DEADLINE)
    assert wait_until_gone(workers) == []
    written = set(shards(out))  # every *.h5 on disk opens: only whole shards
    assert len(written) < N_FILES
    assert_resumes_to_completion(raw_root, out)


def test_a_worker_killed_from_outside_loses_no_recording(raw_root, tmp_path):
    """A worker killed from outside (the OOM killer) ended the run: "a worker process died", exit 1. The recordings
    it and the others held are now retried each alone, pass, and the run goes on with fresh workers to the end."""
    out = tmp_path / "out"
    process, workers = start_and_wait_for_shards(raw_root, out)
    os.kill(min(workers), signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    assert "a worker process died (killed by SIGKILL)" in stderr and "skipped (" not in stderr, stderr
    report = json.loads((out / "preprocess_report.tuab.json").read_text())
    assert report["written"] == len(shards(out)) == N_FILES and not report["interrupted"]
    assert not_shards(out / "tuab") == []
    assert wait_until_gone(workers) == []


# preprocess whose pool workers, once both hold a recording, send one Ctrl-C to the whole group and then
# never finish theirs: the run can only wait for them, until a second Ctrl-C.
CTRL_C_WHILE_TWO_RECORDINGS_NEVER_FINISH = """
import os, signal, sys, time
from pathlib import Path
import biofound_cli.store.preprocess as preprocess
from biofound_cli.__main__ import main
started = Path(sys.argv[1])
def held_for_ever(*args, **kwargs):
    (started / str(os.getpid())).touch()
    while len(list(started.iterdir())) < 2:
        time.sleep(0.01)
    try:
        os.close(os.open(started.with_name("sent"), os.O_CREAT | os.O_EXCL))  # one worker sends it
        os.killpg(os.getpgrp(), signal.SIGINT)
    except FileExistsError:
        pass
    while True:
        time.sleep(1)
preprocess.process_recording = held_for_ever
sys.argv = ["biofound", *sys.argv[2:]]
main()
"""


def test_a_second_ctrl_c_while_the_recordings_in_flight_finish_stops_at_once(raw_root, tmp_path):
    """The first Ctrl-C lets the recordings in flight finish, which can take minutes; a second one was ignored,
    so a person could only kill the run. It now says so as it stops, and a second Ctrl-C ends the run at once
    (130, one line), its workers with it; the same command then finishes the work."""
    from biofound_cli.stop_signals import AT_ONCE

    root, started, out = first_two(raw_root, tmp_path / "raw"), tmp_path / "started", tmp_path / "out"
    started.mkdir()
    launched = [sys.executable, "-c", CTRL_C_WHILE_TWO_RECORDINGS_NEVER_FINISH, str(started), *command(root, out)[3:]]
    status, lines = stopped_at_once(launched)
    assert status == 130, "".join(lines)
    assert "stopping on Ctrl-C: the recordings in progress finish, then preprocess_report.tuab.json is written" in "".join(lines)
    assert [line.rstrip("\n") for line in lines if line.startswith("error:")] == [f"error: {AT_ONCE}"]
    rerun = subprocess.run(command(root, out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and json.loads(rerun.stdout)["written"] == 2, rerun.stderr
    assert not_shards(out / "tuab") == []
