"""What is a bad file and what is a bug of ours, and one EDF reading path for every EDF reader.

A reading library's error (``READING_ERRORS``) skips the recording with its reason; any other
error stops the run with one line asking for a report, rather than hiding among the skips. A
file of another format named ``.edf`` is said to be one, in preprocess and in ``info``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest
from fixtures.tuh import write_tuh_edf
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora.base import RecordingRef
from biofound_cli.corpora.siena import SIENA_CHANNELS, SienaCorpus
from biofound_cli.corpora.tuh import read_edf
from biofound_cli.errors import is_reading_error

NOT_EDF = "not an EDF or BDF file (its first bytes, b'subject,', are neither EDF's b'0       ' nor BDF's b'\\xffBIOSEMI')"

# Imported by every interpreter of the run (the CLI's and its spawned workers'): a bug of ours on one file.
BUG = """
from biofound_cli.corpora import edf

_read = edf.EdfCorpus.read


def read(self, ref):
    if ref.path.name == "bug.edf":
        return len(None)  # a TypeError, as a bug of ours would raise
    return _read(self, ref)


edf.EdfCorpus.read = read
"""


def _preprocess(root: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    chain = ["--set", 'preprocess.montage="tcp"', "--set", "preprocess.sfreq=256"]
    command = [sys.executable, "-m", "biofound_cli", "preprocess", "edf", "--root", str(root), "--out", str(out)]
    return subprocess.run(
        [*command, "--workers", "2", *chain, "--no-progress", "--json"], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.mark.slow
def test_a_text_file_named_edf_is_said_to_be_no_edf_file_in_preprocess_and_info(tmp_path: Path) -> None:
    """It was skipped with MNE's "ValueError: Bad EDF file provided", as if a recording were damaged."""
    root = tmp_path / "raw"
    for index in range(2):
        write_tuh_edf(root / f"good {index}.edf", seconds=20.0)
    (root / "notes.edf").write_text("subject,age\n1,34\n")
    done = _preprocess(root, tmp_path / "shards")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["skipped_by_reason"] == {"unreadable": 1}
    assert f"warning: skipped (unreadable): {root / 'notes.edf'}: {NOT_EDF}; check what the file is" in done.stderr
    described = CliRunner().invoke(app, ["info", str(root / "notes.edf")])
    assert described.exit_code == 1 and f"{root / 'notes.edf'}: {NOT_EDF}" in described.stderr
    assert "Traceback" not in done.stderr + described.output


@pytest.mark.slow
def test_a_bug_of_ours_on_one_recording_stops_preprocess_with_one_line_not_a_skip(tmp_path: Path) -> None:
    """A TypeError of our code was skipped as ``error``: a day-long run ended "1 skipped", exit 0, with no trace."""
    root = tmp_path / "raw"
    for name in ("a", "b", "bug"):
        write_tuh_edf(root / f"{name}.edf", seconds=20.0)
    (tmp_path / "patch").mkdir()
    (tmp_path / "patch" / "sitecustomize.py").write_text(BUG)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "patch"), os.environ.get("PYTHONPATH", "")])}
    done = _preprocess(root, tmp_path / "shards", env)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["exit_status"] == 1
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: {root / 'bug.edf'}: TypeError: object of type 'NoneType' has no len() while reading")
    assert "this is a bug in biofound, not a fault of the file: please report it" in line
    assert "skipped (" not in done.stderr and "Traceback" not in done.stderr


def _bdf_named_edf(path: Path, names: list[str], sfreq: float) -> np.ndarray:
    """A BDF file at ``path`` (named ``.edf``) of 2 s of noise on ``names``; the data written, in volts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).normal(scale=20e-6, size=(len(names), int(2 * sfreq)))
    raw = mne.io.RawArray(data, mne.create_info(names, sfreq, "eeg"), verbose="error")
    mne.export.export_raw(path.with_suffix(".bdf"), raw, fmt="bdf", verbose="error")
    path.with_suffix(".bdf").rename(path)
    return data


def test_the_tuh_and_siena_readers_read_a_bdf_file_named_edf_as_bdf(tmp_path: Path) -> None:
    """They called ``mne.io.read_raw_edf`` by name, which reads BDF's 24-bit samples as 16-bit and fails."""
    siena = tmp_path / "PN01" / "PN01-1.edf"
    names = [f"EEG {name.capitalize()}" for name in SIENA_CHANNELS]
    written = _bdf_named_edf(siena, names, 512.0)
    corpus = SienaCorpus()
    recording = corpus.read(RecordingRef(path=siena, recording_id="PN01-1", subject="PN01"))
    np.testing.assert_allclose(recording.data, written, atol=1e-7)
    tuh = tmp_path / "tuh" / "aaaaaaaa_s001_t000.edf"
    written = _bdf_named_edf(tuh, ["EEG FP1-REF", "EEG C3-REF"], 250.0)
    data, sfreq, ch_names = read_edf(tuh, ["EEG C3-REF"])
    assert sfreq == 250.0 and ch_names == ["EEG C3-REF"]
    np.testing.assert_allclose(data[0], written[1], atol=1e-7)


def test_info_of_a_recording_that_meets_a_bug_of_ours_says_so_in_one_line(tmp_path: Path, monkeypatch) -> None:
    """``info`` took every exception as "not a readable recording": a bug of ours read as a bad file."""
    from biofound_cli.corpora import describe_recording

    def bug(path: Path, **kwargs: object) -> None:
        raise TypeError("an argument of ours is wrong")

    monkeypatch.setattr(describe_recording, "read_raw_as_its_header_says", bug)
    path = write_tuh_edf(tmp_path / "good.edf", seconds=20.0)
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith(f"error: {path}: TypeError: an argument of ours is wrong while reading or processing it;")
    assert "not a readable recording" not in result.stderr


def _raised_inside(module: str, error: Exception) -> Exception:
    """``error`` as raised by a function of ``module``: its traceback's last frame is that module's."""
    namespace: dict[str, object] = {"__name__": module, "error": error}
    exec("def read(*args, **kwargs):\n    raise error\n", namespace)
    try:
        namespace["read"]()  # type: ignore[operator]
    except Exception as caught:
        return caught
    raise AssertionError("read did not raise")


def test_an_index_error_raised_inside_a_reading_library_is_the_files_fault_and_in_our_code_a_bug() -> None:
    """MNE meets some odd headers with an IndexError or KeyError: the file's fault, not a bug of ours."""
    assert is_reading_error(_raised_inside("mne.io.edf.edf", IndexError("list index out of range")))
    assert is_reading_error(_raised_inside("scipy.io.matlab._mio5", KeyError("header")))
    assert not is_reading_error(_raised_inside("biofound_cli.corpora.edf", IndexError("list index out of range")))
    assert not is_reading_error(IndexError("never raised: no traceback"))


def test_info_of_a_file_mne_meets_with_an_index_error_says_it_is_unreadable_not_a_bug(tmp_path: Path, monkeypatch) -> None:
    """With every error outside READING_ERRORS taken as ours, an odd header MNE trips on read as a bug of biofound."""
    from biofound_cli.corpora import describe_recording

    def mne_trips(path: Path, **kwargs: object) -> None:
        raise _raised_inside("mne.io.edf.edf", IndexError("list index out of range"))

    monkeypatch.setattr(describe_recording, "read_raw_as_its_header_says", mne_trips)
    path = write_tuh_edf(tmp_path / "odd.edf", seconds=20.0)
    result = CliRunner().invoke(app, ["info", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith(f"error: {path}: ") and "list index out of range" in result.stderr
    assert "bug in biofound" not in result.stderr


# Imported by every interpreter of the run (the CLI's and its workers', forked or spawned), each leaving a mark
# (a forked worker imports nothing again): a reading library that crashes in C on one file, as scipy's loadmat does
# on some corrupt .mat files, and a file whose first worker is killed as the OOM killer kills it among others
# (CRASH_MARKS marks it tried), which passes alone.
CRASH = """
import os, signal
from pathlib import Path
from biofound_cli.corpora import edf

(Path(os.environ["CRASH_MARKS"]) / f"interpreter-{os.getpid()}").touch()

_read = edf.EdfCorpus.read


def read(self, ref):
    if ref.path.name == "crash.edf":
        os.kill(os.getpid(), signal.SIGSEGV)
    mark = Path(os.environ["CRASH_MARKS"]) / ref.path.name
    if ref.path.name == "big.edf" and not mark.exists():
        mark.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return _read(self, ref)


edf.EdfCorpus.read = read
"""


def crashing_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a run whose readers crash as :data:`CRASH` says."""
    (tmp_path / "patch").mkdir()
    (tmp_path / "patch" / "sitecustomize.py").write_text(CRASH)
    (tmp_path / "marks").mkdir()
    path = os.pathsep.join([str(tmp_path / "patch"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "CRASH_MARKS": str(tmp_path / "marks")}


@pytest.mark.slow
def test_a_recording_that_crashes_its_worker_is_skipped_and_the_run_goes_on(tmp_path: Path) -> None:
    """A worker that died ended the run ("a worker process died", exit 1), and every re-run met the same file again:
    a long run never finished until the user found and moved it. The recordings in flight are now retried each
    alone: one that crashes its worker alone is skipped as ``worker_died``, one killed among others passes alone."""
    root = tmp_path / "raw"
    for name in ("a", "b", "big", "crash", "c", "d"):
        write_tuh_edf(root / f"{name}.edf", seconds=20.0)
    env = crashing_env(tmp_path)
    done = _preprocess(root, tmp_path / "shards", env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    summary = json.loads(done.stdout)
    assert summary["written"] == 5 and summary["skipped_by_reason"] == {"worker_died": 1} and not summary["interrupted"]
    assert sorted(path.name for path in (tmp_path / "shards" / "edf").iterdir()) == [
        f"{name}.h5" for name in ("a", "b", "big", "c", "d")
    ]
    [skip] = [line for line in done.stderr.splitlines() if line.startswith("warning: skipped (")]
    assert skip.startswith(
        f"warning: skipped (worker_died): {root / 'crash.edf'}: the worker process reading it was killed by SIGSEGV"
    )
    again = _preprocess(root, tmp_path / "shards", env)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["written"], summary["already_done"], summary["skipped_by_reason"]) == (0, 5, {"worker_died": 1})


@pytest.mark.slow
def test_the_fresh_workers_after_a_worker_died_are_forked_as_the_first_were(tmp_path: Path) -> None:
    """The log listener still ran after a worker died, so each fresh worker (of every retry, then of the run going
    on) was spawned: an interpreter started and everything imported again, a second or two apiece. It is ended
    first now, and they fork: no interpreter but the CLI's own imports anything (sitecustomize included)."""
    root = tmp_path / "raw"
    for name in ("a", "big", "crash", "c"):
        write_tuh_edf(root / f"{name}.edf", seconds=20.0)
    done = _preprocess(root, tmp_path / "shards", crashing_env(tmp_path))
    assert done.returncode == 0 and json.loads(done.stdout)["skipped_by_reason"] == {"worker_died": 1}, done.stderr
    assert len(list((tmp_path / "marks").glob("interpreter-*"))) == 1
