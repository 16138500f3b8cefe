"""A pack refused by the jobs reading its folder names the ones still reading, not one that has ended.

Each reader wrote its line over the lock file's, so the file named the newest reader only: when that one ended while
an older one read on, a refused pack named the finished job.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus

REPO = Path(__file__).resolve().parents[3]

# A job reading a packed folder (the lock finetune and evaluate hold), until told to end.
READER = """
import sys
from pathlib import Path
from biofound_cli.store.packer import held_for_reading
with held_for_reading([Path(sys.argv[1]) / "train.h5"], sys.argv[2]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _reader(packed: Path, job: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(packed), job], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None and reader.stdout.readline() == "held\n"
    return reader


def _refusal(tmp_path: Path) -> str:
    result = CliRunner().invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--no-progress"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    [refusal] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return refusal


@pytest.mark.skipif(sys.platform == "win32", reason="readers share the lock through fcntl")
def test_a_refused_pack_names_the_readers_still_there(tmp_path):
    (tmp_path / "shards").mkdir()
    (tmp_path / "packed").mkdir()
    first = _reader(tmp_path / "packed", "finetune")
    try:
        second = _reader(tmp_path / "packed", "evaluate")
        try:
            both = _refusal(tmp_path)
        finally:
            second.communicate("\n", timeout=60)  # the newest reader ends; the first reads on
        one = _refusal(tmp_path)
    finally:
        first.communicate("\n", timeout=60)
    assert f"{tmp_path / 'packed'} is read by 2 running jobs (pid {first.pid} on " in both
    assert f"reading it for finetune; pid {second.pid} on " in both and "reading it for evaluate)" in both
    assert f"is read by a running job, pid {first.pid} on " in one and "reading it for finetune," in one
    assert str(second.pid) not in one and "evaluate" not in one
    assert not (tmp_path / "packed" / ".pack.lock").exists()  # the last reader to end removes it


@pytest.mark.skipif(sys.platform == "win32", reason="readers share the lock through fcntl")
def test_a_second_reader_ending_in_one_process_keeps_the_first_readers_hold(tmp_path):
    # Record locks are the process's: a second reader of the folder in one process (evaluate after a finetune that
    # still reads, two jobs of the Python API) closing its file dropped the first's lock, and a pack went through.
    from biofound_cli.store.packer import held_for_reading

    (tmp_path / "shards").mkdir()
    (tmp_path / "packed").mkdir()
    with held_for_reading([tmp_path / "packed" / "train.h5"], "finetune"):
        with held_for_reading([tmp_path / "packed" / "test.h5"], "evaluate"):
            pass
        pack = subprocess.run(
            [sys.executable, "-m", "biofound_cli", "pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed")],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert pack.returncode == ExitStatus.USAGE, pack.stderr
    assert f"is read by a running job, pid {os.getpid()} on " in pack.stderr and "reading it for finetune," in pack.stderr
    assert "evaluate" not in pack.stderr


def test_the_holder_question_names_the_jobs_reading_a_folder(tmp_path):
    # lock_holder answered None while only shared holders held a lock (readers, a predict's slices), so `info` could
    # not name the slices of an array job predicting into a folder.
    from biofound_cli.store.folder_lock import lock_holder
    from biofound_cli.store.packer import held_for_reading

    (tmp_path / "packed").mkdir()
    with held_for_reading([tmp_path / "packed" / "train.h5"], "finetune"):
        with held_for_reading([tmp_path / "packed" / "test.h5"], "evaluate"):
            lock_file = next((tmp_path / "packed").glob(".*lock"))
            holders = lock_holder(lock_file)
    assert holders is not None and holders.count(f"pid {os.getpid()} on ") == 2, holders
    assert "reading it for finetune" in holders and "reading it for evaluate" in holders
    assert lock_holder(lock_file) is None  # both ended
