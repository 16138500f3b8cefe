"""The run folder's lock: where ``fcntl`` is missing (Windows) a ``msvcrt`` lock, else a warning; held by the open file."""

from __future__ import annotations

import errno
import logging
import os
import sys
import types

import pytest

from biofound_cli.errors import UsageError
from biofound_cli.training.run_folder import RunFolder


def fake_msvcrt() -> types.ModuleType:
    """``msvcrt.locking`` as Windows behaves: a byte range held by one handle is refused to the others."""
    module = types.ModuleType("msvcrt")
    module.LK_NBLCK = 2  # type: ignore[attr-defined]
    module.held = {}  # type: ignore[attr-defined]

    def locking(fd: int, mode: int, nbytes: int) -> None:
        import os

        assert mode == module.LK_NBLCK and nbytes == 1
        where = (os.fstat(fd).st_ino, os.lseek(fd, 0, os.SEEK_CUR))
        if module.held.get(where, fd) != fd:
            raise OSError(errno.EACCES, "Permission denied")
        module.held[where] = fd

    module.locking = locking  # type: ignore[attr-defined]
    return module


@pytest.fixture
def no_fcntl(monkeypatch):
    from biofound_cli.store import folder_lock

    monkeypatch.setattr(folder_lock, "fcntl", None)  # as its import leaves it on Windows


def test_without_fcntl_msvcrt_holds_the_folder_and_a_second_job_is_refused(tmp_path, monkeypatch, no_fcntl):
    msvcrt = fake_msvcrt()
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt)
    folder = RunFolder(tmp_path / "run")
    folder.root.mkdir()  # a folder the run did not make is kept, .lock and all
    with folder.held():
        assert folder.lock_file.read_text().startswith("pid ")
        with pytest.raises(UsageError, match=r"run is in use by pid \d+ on "):
            with folder.held():
                pass
    # The locked byte lies past the holder line, which Windows' mandatory locks would keep the refused job from reading.
    (_, offset), *_ = msvcrt.held
    assert offset > len(folder.lock_file.read_text())


def test_without_any_file_lock_the_run_goes_on_with_a_warning(tmp_path, monkeypatch, no_fcntl, caplog):
    monkeypatch.setitem(sys.modules, "msvcrt", None)
    folder = RunFolder(tmp_path / "run")
    ran = False
    with caplog.at_level(logging.WARNING), folder.held():
        ran = True
    assert ran
    assert any("locks no files" in record.getMessage() and "no other job" in record.getMessage() for record in caplog.records)


def test_a_run_refused_inside_a_folder_it_made_leaves_no_folder(tmp_path):
    run_folder = RunFolder(tmp_path / "runs" / "new")
    (tmp_path / "runs").mkdir()  # a folder that was there before the run stays
    with pytest.raises(UsageError):
        with run_folder.held():
            run_folder.create()
            raise UsageError("the windows do not fit the model")
    assert not run_folder.root.exists() and (tmp_path / "runs").exists()


def test_a_refused_first_run_also_removes_the_parent_folders_it_made_but_not_one_another_run_uses(tmp_path):
    # A first job of a project refused once its data is open left an empty out/NAME/runs/ behind.
    first = RunFolder(tmp_path / "out" / "study" / "runs" / "new")
    with pytest.raises(UsageError):
        with first.held():
            raise UsageError("the windows do not fit the model")
    assert list(tmp_path.iterdir()) == []
    # Another job's run folder appeared beside this one while it ran: runs/ and above stay.
    second = RunFolder(tmp_path / "out" / "runs" / "new")
    with pytest.raises(UsageError):
        with second.held():
            (tmp_path / "out" / "runs" / "other").mkdir()
            raise UsageError("refused")
    assert not second.root.exists() and (tmp_path / "out" / "runs" / "other").is_dir()


def test_a_run_refused_after_recording_its_start_leaves_no_folder(tmp_path):
    # Fewer windows than one global batch is found by the loop, once the start is on file.
    run_folder = RunFolder(tmp_path / "runs" / "new")
    with pytest.raises(UsageError):
        with run_folder.held():
            run_folder.record_start({"name": "x"}, {"world_size": 2}, resumed_from=None, changes=[])
            run_folder.truncate_metrics(0)
            raise UsageError("the training split has 3 windows, fewer than one batch")
    assert not run_folder.root.exists()


@pytest.mark.parametrize("trained", ["metrics", "checkpoint", "debug"])
def test_a_refused_run_keeps_a_folder_that_holds_anything_else(tmp_path, trained):
    made_before = RunFolder(tmp_path / "before")
    made_before.root.mkdir()
    wrote = RunFolder(tmp_path / "wrote")
    for run_folder in (made_before, wrote):
        with pytest.raises(UsageError):
            with run_folder.held():
                run_folder.record_start({"name": "x"}, {"world_size": 2}, resumed_from=None, changes=[])
                if run_folder is wrote and trained == "metrics":
                    run_folder.append_metrics({"split": "train", "step": 1, "loss": 1.0})
                elif run_folder is wrote:
                    (run_folder.checkpoints / "step-00000001" if trained == "checkpoint" else run_folder.debug).mkdir()
                raise UsageError("refused")
        assert run_folder.lock_file.exists()


# Runs `biofound info FOLDER` and stops it inside its probe: once its lock is taken, before it lets go.
INFO_HELD_IN_ITS_PROBE = """
import fcntl, sys
from biofound_cli.__main__ import main
from biofound_cli.store import folder_lock
lock = folder_lock._lock
def held_in_the_probe(handle, mode, byte, **how):
    lock(handle, mode, byte, **how)
    if mode == fcntl.LOCK_SH:
        print("probing", flush=True)
        sys.stdin.readline()
folder_lock._lock = held_in_the_probe
sys.argv = ["biofound", "info", sys.argv[1]]
main()
"""

# Takes the run folder as a training job does; says so before any lock attempt that waits.
JOB_STARTING = """
import sys
from pathlib import Path
from biofound_cli.store import folder_lock
from biofound_cli.training.run_folder import RunFolder
lock = folder_lock._lock
def said_when_waiting(handle, mode, byte, wait=False):
    if wait:
        print("waiting", flush=True)
    return lock(handle, mode, byte, wait=wait)
folder_lock._lock = said_when_waiting
with RunFolder(Path(sys.argv[1])).held():
    print("held", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="info asks the lock through fcntl")
def test_a_job_starting_while_info_looks_at_its_run_folder_waits_for_the_look_and_is_not_refused(tmp_path):
    # info took the run folder's lock for an instant, and a job starting in that instant was refused.
    import os
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = {**os.environ, "PYTHONPATH": repo}
    folder = RunFolder(tmp_path / "run")
    folder.checkpoints.mkdir(parents=True)
    with folder.held():  # a run that trained here once: its .lock stays
        pass
    info = subprocess.Popen(
        [sys.executable, "-c", INFO_HELD_IN_ITS_PROBE, str(folder.root)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert info.stdout is not None and info.stdout.readline() == "probing\n"
        job = subprocess.Popen(
            [sys.executable, "-c", JOB_STARTING, str(folder.root)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert job.stdout is not None
        first = job.stdout.readline()  # the job waits on the probe's lock, or (refused) says nothing and ends
        shown, _ = info.communicate("\n", timeout=120)  # the probe lets go
        out, err = job.communicate(timeout=120)
    finally:
        if info.poll() is None:
            info.kill()
    assert job.returncode == 0, err
    assert first == "waiting\n" and out == "held\n"
    assert info.returncode == 0 and "not running" in shown


def test_without_fcntl_jobs_reading_one_packed_folder_do_not_refuse_each_other(tmp_path, monkeypatch, no_fcntl, caplog):
    # msvcrt has no shared lock: readers run unheld, without a warning, and leave no lock file behind.
    from biofound_cli.store.packer import LOCK_FILE, held_for_reading

    monkeypatch.setitem(sys.modules, "msvcrt", fake_msvcrt())
    with caplog.at_level(logging.WARNING), held_for_reading([tmp_path / "train.h5"], "finetune"):
        with held_for_reading([tmp_path / "val.h5"], "evaluate"):
            pass
    assert not (tmp_path / LOCK_FILE).exists() and not caplog.records


@pytest.mark.skipif(sys.platform == "win32", reason="info asks the lock through fcntl")
def test_info_asked_in_the_training_process_names_it_and_the_run_folder_stays_held(tmp_path):
    # Asking (lock_holder) opened and closed the lock file in the holder's process, which dropped its record lock:
    # the question answered "not running", and a second job could then take the folder.
    import multiprocessing

    from biofound_cli.store.folder_lock import lock_holder

    folder = RunFolder(tmp_path / "run")
    with folder.held():
        assert lock_holder(folder.lock_file) == folder.lock_file.read_text().strip()
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            refusal = pool.apply(_refusal_of_a_second_job, (folder.root,))
    assert f"run is in use by pid {os.getpid()} on " in refusal


@pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")
def test_a_forked_worker_alive_after_its_parent_lets_go_does_not_hold_the_folder(tmp_path):
    # An open file's lock lasts while any process has the file open: a worker forked while the folder was held must
    # not keep it held once the parent lets go (or is killed).
    import multiprocessing

    folder = RunFolder(tmp_path / "run")
    context = multiprocessing.get_context("fork")
    done = context.Event()
    with folder.held():
        worker = context.Process(target=done.wait)
        worker.start()
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            assert pool.apply(_refusal_of_a_second_job, (folder.root,)) == ""
    finally:
        done.set()
        worker.join()


def _refusal_of_a_second_job(root) -> str:
    """In another process: the refusal a job taking ``root`` meets, or "" when it takes it."""
    try:
        with RunFolder(root).held():
            return ""
    except UsageError as error:
        return str(error)
