"""`preprocess` holds its --out while it writes, and `pack` holds the preprocessed folder it reads (shared).

Two preprocess runs into one folder, or a pack reading shards a preprocess was still writing, were not kept apart;
`info` of a shards, export or evaluation folder did not say whether a job writes into it now.
Each holder here is a real second process holding the lock its command holds (as test_pack_lock_readers.py's do).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="shared holders and info's question need fcntl")

REPO = Path(__file__).resolve().parents[3]

# A job holding a folder's lock as a command does, until told to end: `write JOB FOLDER [I N]` as preprocess, export
# or evaluate hold their --out (a slice I/N for preprocess --shard), `read FOLDER` as pack holds the shards it reads.
HOLDER = """
import sys
from pathlib import Path
from biofound_cli.store.slices import Slice
how, *rest = sys.argv[1:]
if how == "write":
    from biofound_cli.store.folder_lock import held_out_folder
    job, folder, *part = rest
    held = held_out_folder(Path(folder), job, "written into", Slice(int(part[0]), int(part[1])) if part else None)
else:
    from biofound_cli.store.folder_lock import held_to_read
    held = held_to_read(Path(rest[0]), "preprocess", "pack", lambda holder: "refused: " + holder)
with held:
    print("held", flush=True)
    sys.stdin.readline()
"""

OPTIONS = "preprocess.options={pattern = '(?P<subject>[^/]+)/(?P<repetition>\\d+)\\.csv', sfreq = 200.0}"


def _holder(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, *args], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def _preprocess(tmp_path: Path, *extra: str):
    raw = tmp_path / "raw"
    if not raw.exists():
        for subject in ("s0", "s1", "s2", "s3", "s4"):
            (raw / subject).mkdir(parents=True)
            np.savetxt(raw / subject / "0.csv", np.random.default_rng(0).normal(size=(400, 4)), delimiter=",")
    args = ["preprocess", "emg-csv", "--root", str(raw), "--out", str(tmp_path / "shards"), "--no-progress", *extra]
    return CliRunner().invoke(
        app, [*args, "--set", OPTIONS, "--set", "preprocess.window_seconds=0.5", "--set", "preprocess.stride_seconds=0.5"]
    )


def _pack(tmp_path: Path):
    return CliRunner().invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--no-progress"])


def _refusal(result) -> str:
    assert result.exit_code == ExitStatus.USAGE, result.output
    [refusal] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return refusal


@pytest.mark.parametrize("extra", [[], ["--force"], ["--shard", "1/2"]])
def test_a_preprocess_is_refused_while_another_writes_into_its_out(tmp_path, extra):
    (tmp_path / "shards").mkdir()
    first = _holder("write", "preprocess", str(tmp_path / "shards"))
    try:
        refusal = _refusal(_preprocess(tmp_path, *extra))
    finally:
        first.communicate("\n", timeout=60)
    assert f"{tmp_path / 'shards'} is being preprocessed into by pid {first.pid} on {socket.gethostname()}" in refusal
    assert not list((tmp_path / "shards").glob("preprocess_report*.json"))  # refused before writing anything
    assert _preprocess(tmp_path, *extra).exit_code == 0  # the holder ended: nothing stale refuses


def test_slices_of_one_array_job_preprocess_side_by_side(tmp_path):
    (tmp_path / "shards").mkdir()
    first = _holder("write", "preprocess", str(tmp_path / "shards"), "1", "2")
    try:
        result = _preprocess(tmp_path, "--shard", "2/2")
    finally:
        first.communicate("\n", timeout=60)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("part", "named"), [([], ""), (["1", "2"], ", for slice 1/2")])
def test_a_pack_is_refused_while_a_preprocess_writes_the_shards_it_reads(tmp_path, part, named):
    assert _preprocess(tmp_path).exit_code == 0
    writer = _holder("write", "preprocess", str(tmp_path / "shards"), *part)
    try:
        refusal = _refusal(_pack(tmp_path))
    finally:
        writer.communicate("\n", timeout=60)
    assert f"{tmp_path / 'shards'} is being preprocessed into by pid {writer.pid} on " in refusal
    assert f"{named}; wait for that preprocess to end, then run the pack again" in refusal
    assert not (tmp_path / "packed" / "train.h5").exists()


@pytest.mark.parametrize("extra", [[], ["--force"], ["--shard", "1/2"]])
def test_a_preprocess_is_refused_while_a_pack_reads_its_out(tmp_path, extra):
    assert _preprocess(tmp_path).exit_code == 0
    reader = _holder("read", str(tmp_path / "shards"))
    try:
        refusal = _refusal(_preprocess(tmp_path, *extra))
    finally:
        reader.communicate("\n", timeout=60)
    assert f"{tmp_path / 'shards'} is read by pid {reader.pid} on " in refusal
    assert "reading it for pack; wait for that to end, then run the preprocess again, or choose another --out" in refusal
    assert not (tmp_path / "shards" / ".preprocess.lock").exists()  # the last holder to end removes it


def test_two_packs_read_one_preprocessed_folder_at_once(tmp_path):
    assert _preprocess(tmp_path).exit_code == 0
    other = _holder("read", str(tmp_path / "shards"))
    try:
        result = _pack(tmp_path)
    finally:
        other.communicate("\n", timeout=60)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "packed" / "train.h5").is_file()


def test_a_pack_of_a_preprocessed_folder_it_may_not_write_runs_unheld(tmp_path, monkeypatch):
    # A read-only copy of shards (root writes anywhere, so the folder is made to read as not writable): no lock file
    # can be made there, and no preprocess of this user can write it, so pack reads it without one.
    assert _preprocess(tmp_path).exit_code == 0
    shards, access = tmp_path / "shards", os.access
    monkeypatch.setattr(os, "access", lambda path, mode: access(path, mode) and not (Path(path) == shards and mode == os.W_OK))

    def no_lock_file(*args, **kwargs):
        raise AssertionError("pack made a lock file in a folder it may not write")

    monkeypatch.setattr("biofound_cli.store.folder_lock._opened_to_read", no_lock_file)
    result = _pack(tmp_path)
    assert result.exit_code == 0, result.output
    assert not (shards / ".preprocess.lock").exists()


def _info(folder: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "biofound_cli", "info", str(folder), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _export_folder(folder: Path) -> None:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"artefacts": []}))


def _evaluation_folder(folder: Path) -> None:
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps({"headline": {}, "source": {}, "task": "classification"}))


@pytest.mark.parametrize(
    ("job", "key", "make"),
    [
        ("export", "exporting", _export_folder),
        ("evaluate", "evaluating", _evaluation_folder),
        ("preprocess", "preprocessing", None),
    ],
)
def test_info_names_the_job_writing_into_a_folder_now(tmp_path, job, key, make):
    folder = tmp_path / "shards"
    if make is None:
        assert _preprocess(tmp_path).exit_code == 0
    else:
        make(folder)
    if job == "preprocess":  # a pack reading it is not a preprocess
        reader = _holder("read", str(folder))
        try:
            assert _info(folder)[key] == "not running"
        finally:
            reader.communicate("\n", timeout=60)
    writer = _holder("write", job, str(folder), *(["1", "2"] if job == "preprocess" else []))
    try:
        said = _info(folder)[key]
    finally:
        writer.communicate("\n", timeout=60)
    assert said.startswith(f"running: pid {writer.pid} on {socket.gethostname()}, started "), said
    assert said.endswith(", for slice 1/2" if job == "preprocess" else ""), said
    assert _info(folder)[key] == "not running"
