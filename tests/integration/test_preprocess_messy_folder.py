"""`preprocess` and `pack` over a folder as a researcher's looks: files cut short, empty, at another
rate, lacking channels, with NaNs or dead channels, names with spaces and accents, a broken link.

Every bad file is skipped with one line naming it and what to do, and counted; a Ctrl-C part-way
leaves only whole shards, and the re-run finishes the job and counts it right.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures.shards import not_shards
from fixtures.tuh import write_tuh_edf

pytestmark = pytest.mark.slow
DEADLINE = 120.0
N_GOOD = 16
SKIPPED = {
    "cut short.edf": "truncated",
    "empty.edf": "unreadable",
    "no C3.edf": "missing_channels",
    "dead.edf": "flat_channels",
    "gaps_raw.fif": "too_many_nans",
}


@pytest.fixture(scope="module")
def messy_root(tmp_path_factory) -> Path:
    import mne

    root = tmp_path_factory.mktemp("messy") / "raw"
    for index in range(N_GOOD):
        write_tuh_edf(root / f"sujet {index:02d}" / f"séance été {index}.edf", seconds=30.0, offset_seconds=index * 2.0)
    write_tuh_edf(root / "at 100 Hz.edf", seconds=30.0, sfreq=100.0)  # resampled to the recipe's rate, so kept
    cut = write_tuh_edf(root / "cut short.edf", seconds=20.0)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 2 // 3])
    (root / "empty.edf").write_bytes(b"")
    write_tuh_edf(root / "no C3.edf", drop=("C3",))
    write_tuh_edf(root / "dead.edf", flat=True)
    raw = mne.io.read_raw_edf(write_tuh_edf(root / "tmp.edf"), preload=True, verbose="error")
    (root / "tmp.edf").unlink()
    data = raw.get_data()
    data[:, 100:3000] = np.nan  # EDF cannot hold a NaN: a FIF file can
    mne.io.RawArray(data, raw.info, verbose="error").save(root / "gaps_raw.fif", verbose="error")
    (root / "gone.edf").symlink_to(root / "moved away.edf")
    return root


def command(root: Path, out: Path) -> list[str]:
    chain = ["--set", 'preprocess.montage="tcp"', "--set", "preprocess.sfreq=256"]
    return [sys.executable, "-m", "biofound_cli", "preprocess", "edf", "--root", str(root), "--out", str(out),
            "--workers", "2", *chain, "--no-progress", "--json"]  # fmt: skip


def assert_whole_run(root: Path, out: Path, summary: dict, stderr: str) -> None:
    """Every good file has its shard, every bad one is skipped by reason with one line naming it; nothing half-written."""
    assert summary["found"] == N_GOOD + 1 + len(SKIPPED) and summary["skipped_by_reason"] == {
        reason: 1 for reason in SKIPPED.values()
    }
    assert summary["written"] + summary["already_done"] == N_GOOD + 1
    assert not_shards(out / "edf") == [] and len(list((out / "edf").glob("*.h5"))) == N_GOOD + 1
    assert "Traceback" not in stderr
    for name, reason in SKIPPED.items():
        [line] = [line for line in stderr.splitlines() if f"{root / name}:" in line]
        assert line.startswith(f"warning: skipped ({reason}): ")
    assert f"{root / 'empty.edf'}: not a readable recording (the file is empty, 0 bytes); check the file, or copy it" in stderr
    assert f"warning: {root / 'gone.edf'}: a broken symbolic link (to {root / 'moved away.edf'}); left out" in stderr
    report = json.loads((out / "preprocess_report.edf.json").read_text())
    assert not report["interrupted"] and report["written"] + report["already_done"] == N_GOOD + 1


def test_a_messy_folder_is_preprocessed_and_packed_with_every_bad_file_named(messy_root, tmp_path):
    out = tmp_path / "shards"
    done = subprocess.run(command(messy_root, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_whole_run(messy_root, out, json.loads(done.stdout), done.stderr)
    assert (out / "edf" / "sujet 03-séance été 3.h5").is_file()
    pack = [sys.executable, "-m", "biofound_cli", "pack", str(out), "--out", str(tmp_path / "packed"), "--json", "--no-progress"]
    packed = subprocess.run(pack, capture_output=True, text=True, timeout=300)
    assert packed.returncode == 0 and "Traceback" not in packed.stderr, packed.stderr
    summary = json.loads(packed.stdout)
    assert summary["skipped"] == 0 and sum(summary["recordings"].values()) == N_GOOD + 1


def test_ctrl_c_part_way_through_a_messy_folder_then_the_same_command_finishes_it(messy_root, tmp_path):
    out = tmp_path / "shards"
    process = subprocess.Popen(
        command(messy_root, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and process.poll() is None and len(list((out / "edf").glob("*.h5"))) < 2:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be stopped"
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
    stdout, stderr = process.communicate(timeout=DEADLINE)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    report = json.loads((out / "preprocess_report.edf.json").read_text())
    on_disk = sorted((out / "edf").glob("*.h5"))
    assert report["interrupted"] and 2 <= report["written"] == len(on_disk) < N_GOOD + 1
    assert not_shards(out / "edf") == []
    # Said as SIGTERM's stop says it; it was the generic "interrupted; finished outputs are kept ...".
    [error] = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert error == (
        f"error: stopped by Ctrl-C after {report['written']} new shards; finished shards are kept, "
        f"{out / 'preprocess_report.edf.json'} says which, and re-running the same command resumes"
    )
    assert json.loads(stdout)["exit_status"] == 130
    rerun = subprocess.run(command(messy_root, out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["already_done"] == len(on_disk) and summary["written"] == N_GOOD + 1 - len(on_disk)
    assert_whole_run(messy_root, out, summary, rerun.stderr)


def test_a_file_name_that_is_not_utf8_is_skipped_and_named_not_a_crash(messy_root, tmp_path):
    # A Latin-1 name (copied from an older system) read fine, then writing the shard's source_path
    # raised UnicodeEncodeError in the worker: the whole run stopped with a traceback.
    root = tmp_path / "raw"
    root.mkdir()
    good = messy_root / "sujet 00" / "séance été 0.edf"
    (root / "good.edf").write_bytes(good.read_bytes())
    try:
        Path(os.fsdecode(os.fsencode(root) + b"/caf\xe9.edf")).write_bytes(good.read_bytes())
    except (OSError, UnicodeError):
        pytest.skip("this file system takes UTF-8 names only")
    done = subprocess.run(command(root, tmp_path / "shards"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["written"], summary["skipped_by_reason"]) == (1, {"name_not_utf8": 1})
    assert f"warning: skipped (name_not_utf8): {root}/caf\\xe9.edf: the file's name (or its folder's) is not UTF-8" in done.stderr
    assert "rename it" in done.stderr
