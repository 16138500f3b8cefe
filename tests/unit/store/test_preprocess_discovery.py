"""What ``preprocess`` says when listing the recordings fails, and which ``--out`` it writes into.

A bug of ours while discovering stops the run with one line, as one while reading a recording does; a
folder that cannot be listed is named rather than passed over in silence; and a second preprocessing
into an ``--out`` that holds another's shards is refused, where a re-run of the same chain resumes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.tuh import write_tuh_edf

# Imported by every interpreter of the run (the CLI's and its spawned workers'): planted in discovery.
PLANTED = """
import os

from biofound_cli.corpora import edf

_discover, _scandir = edf.EdfCorpus.discover, os.scandir


def discover(self, root):
    if (root / "bug").exists():
        return len(None)  # a TypeError, as a bug of ours would raise
    if (root / "bad").exists():
        raise ValueError("a table there has no header")  # a reading error, as a library meets a bad file with
    return _discover(self, root)


def scandir(path="."):
    if os.path.basename(os.fspath(path)) == "locked":
        raise PermissionError(13, "Permission denied", os.fspath(path))  # as for a non-root user without rights
    return _scandir(path)


edf.EdfCorpus.discover = discover
os.scandir = scandir
"""


def _preprocess(root: Path, out: Path, tmp_path: Path, *settings: str, corpus: str = "edf") -> subprocess.CompletedProcess[str]:
    (tmp_path / "patch").mkdir(exist_ok=True)
    (tmp_path / "patch" / "sitecustomize.py").write_text(PLANTED)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "patch"), os.environ.get("PYTHONPATH", "")])}
    chain = ["--set", 'preprocess.montage="tcp"', *(arg for setting in settings for arg in ("--set", setting))]
    command = [sys.executable, "-m", "biofound_cli", "preprocess", corpus, "--root", str(root), "--out", str(out)]
    return subprocess.run(
        [*command, "--workers", "2", *chain, "--no-progress", "--json"], capture_output=True, text=True, env=env, timeout=600
    )


def _error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    return line


def _corpus(root: Path) -> Path:
    for name in ("a", "b"):
        write_tuh_edf(root / "s1" / f"{name}.edf", seconds=20.0)
    return root


@pytest.mark.slow
def test_a_bug_of_ours_while_discovering_stops_preprocess_with_one_line(tmp_path: Path) -> None:
    """It was a Python traceback: only a bug met per recording was one line."""
    root = _corpus(tmp_path / "raw")
    (root / "bug").write_text("")
    done = _preprocess(root, tmp_path / "shards", tmp_path)
    assert done.returncode == 1 and json.loads(done.stdout)["exit_status"] == 1
    line = _error_line(done)
    assert line.startswith(f"error: {root}: TypeError: object of type 'NoneType' has no len() while listing the recordings")
    assert "this is a bug in biofound, not a fault of the file: please report it" in line


@pytest.mark.slow
def test_a_file_discovery_cannot_parse_stops_preprocess_with_one_line_naming_the_folder(tmp_path: Path) -> None:
    """A reading error met while listing (a table a library could not parse) was a traceback too."""
    root = _corpus(tmp_path / "raw")
    (root / "bad").write_text("")
    done = _preprocess(root, tmp_path / "shards", tmp_path)
    assert done.returncode == 1
    line = _error_line(done)
    assert line.startswith(f"error: {root}: ValueError: a table there has no header while listing the recordings under it;")
    assert "bug" not in line


@pytest.mark.slow
def test_a_folder_that_cannot_be_listed_is_named_and_the_rest_is_processed(tmp_path: Path) -> None:
    """os.walk passed over a folder without read permission in silence, and its recordings with it."""
    root = _corpus(tmp_path / "raw")
    write_tuh_edf(root / "locked" / "c.edf", seconds=20.0)
    done = _preprocess(root, tmp_path / "shards", tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["written"] == 2
    assert f"warning: {root / 'locked'}: cannot be listed (Permission denied); any recordings in it are left out" in done.stderr


@pytest.mark.slow
def test_another_chain_into_an_out_that_holds_one_is_refused_and_the_same_chain_resumes(tmp_path: Path) -> None:
    """Another root's recordings with other settings were written beside the first run's shards, its report replaced."""
    out = tmp_path / "shards"
    first = _preprocess(_corpus(tmp_path / "raw"), out, tmp_path, "preprocess.sfreq=256")
    assert first.returncode == 0, first.stderr
    report = (out / "preprocess_report.edf.json").read_text()
    other = tmp_path / "other"
    write_tuh_edf(other / "s9" / "z.edf", seconds=20.0)
    refused = _preprocess(other, out, tmp_path, "preprocess.sfreq=200")
    assert refused.returncode == 2
    line = _error_line(refused)
    assert f"{out / 'preprocess_report.edf.json'} was written with other preprocess settings (report vs this run:" in line
    assert "config.sfreq 256.0 vs 200.0" in line and "--force" in line and "another --out" in line
    assert (out / "preprocess_report.edf.json").read_text() == report and not (out / "edf" / "s9-z.h5").exists()
    again = _preprocess(tmp_path / "raw", out, tmp_path, "preprocess.sfreq=256")
    assert again.returncode == 0 and json.loads(again.stdout)["already_done"] == 2


@pytest.mark.slow
def test_a_second_corpus_into_an_out_that_holds_another_is_not_refused_by_its_report(tmp_path: Path) -> None:
    """Several corpora share a shards folder, each in its own sub-folder, and pack packs them together (pack.md)."""
    out = tmp_path / "shards"
    assert _preprocess(_corpus(tmp_path / "raw"), out, tmp_path).returncode == 0
    first = sorted((out / "edf").glob("*.h5"))
    second = _preprocess(tmp_path / "raw", out, tmp_path, corpus="tuab")
    assert "was written with other preprocess settings" not in second.stderr, second.stderr
    assert "Traceback" not in second.stderr and sorted((out / "edf").glob("*.h5")) == first != []
