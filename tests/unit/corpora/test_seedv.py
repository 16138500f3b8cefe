"""The ``seedv`` corpus: trial cutting and labels on an in-memory stand-in for the CNT reader.

MNE can read Neuroscan CNT files but not write them, so the reader's call to
``mne.io.read_raw_cnt`` is replaced by one returning a small ``RawArray`` with SEED-V's channels.
"""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pytest

from biofound_cli.corpora.base import Segment
from biofound_cli.corpora.seedv import SEEDV_CHANNELS, SeedVCorpus, SeedVOptions, trial_split
from biofound_cli.errors import DataError

SFREQ = 10.0


def _fake_cnt(seconds: float):
    names = list(SEEDV_CHANNELS[:10]) + ["M1", "VEO"] + list(SEEDV_CHANNELS[10:]) + ["M2", "HEO"]
    data = np.tile(np.arange(len(names), dtype=np.float64)[:, None], (1, int(seconds * SFREQ))) * 1e-6

    def read_raw_cnt(path, preload=False, verbose=None):
        return mne.io.RawArray(data, mne.create_info(names, SFREQ, "eeg"), verbose="error")

    return read_raw_cnt


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).write_bytes(b"cnt")


def test_discover_reads_subject_and_session_from_the_name(tmp_path: Path) -> None:
    _touch(tmp_path, "1_1_20180804.cnt", "10_3_20180626.cnt", "2_2_20180502.cnt", "notes.cnt")
    refs = SeedVCorpus().discover(tmp_path)
    assert [(r.recording_id, r.subject, r.session) for r in refs] == [
        ("10_3_20180626", "10", "3"),
        ("1_1_20180804", "01", "1"),
        ("2_2_20180502", "02", "2"),
    ]


def test_read_cuts_the_15_clips_of_session_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mne.io, "read_raw_cnt", _fake_cnt(2900))
    _touch(tmp_path, "4_2_20180524.cnt")
    corpus = SeedVCorpus()
    (ref,) = corpus.discover(tmp_path)
    recording = corpus.read(ref)
    assert recording.ch_names == list(SEEDV_CHANNELS)
    assert recording.sfreq == SFREQ
    np.testing.assert_allclose(recording.data[10, :3], 12e-6)  # M1 and VEO dropped before it
    assert len(recording.segments) == 15
    assert recording.segments[0] == Segment(start=30.0, stop=267.0, label=2, split="train")
    assert recording.segments[5] == Segment(start=1000.0, stop=1059.0, label=4, split="val")
    assert recording.segments[14] == Segment(start=2741.0, stop=2817.0, label=0, split="test")
    assert [s.split for s in recording.segments].count("train") == 5


def test_upstream_and_none_split_schemes() -> None:
    assert [trial_split(t, "upstream") for t in range(15)].count("train") == 6
    assert [trial_split(t, "upstream") for t in range(15)].count("test") == 4
    assert {trial_split(t, "none") for t in range(15)} == {None}
    assert SeedVOptions(trial_split="upstream").trial_split == "upstream"


def test_truncated_recording_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mne.io, "read_raw_cnt", _fake_cnt(3000))
    _touch(tmp_path, "4_1_20180507.cnt")
    corpus = SeedVCorpus()
    (ref,) = corpus.discover(tmp_path)
    with pytest.raises(
        DataError, match=r"4_1_20180507\.cnt: the recording lasts 3000 s but session 1's last clip ends at 3359 s"
    ):
        corpus.read(ref)


def test_unreadable_cnt_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "5_1_20180507.cnt").write_bytes(b"\x00" * 64)
    corpus = SeedVCorpus()
    (ref,) = corpus.discover(tmp_path)
    with pytest.raises(DataError, match=r"5_1_20180507\.cnt: not a readable Neuroscan CNT file"):
        corpus.read(ref)


def _preprocess(root: Path, out: Path):
    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    return CliRunner().invoke(app, ["preprocess", "seedv", "--root", str(root), "--out", str(out), "--json", "--no-progress"])


def test_a_corrupt_cnt_file_is_skipped_naming_it(tmp_path: Path) -> None:
    """MNE meets a CNT file of zeros with a RuntimeError: the file's fault, a skip that names it."""
    path = tmp_path / "raw" / "5_1_20180507.cnt"
    path.parent.mkdir()
    path.write_bytes(b"\x00" * 64)
    result = _preprocess(tmp_path / "raw", tmp_path / "shards")
    assert result.exit_code == 1 and "Traceback" not in result.output  # the one recording was skipped
    assert "(unreadable: 1)" in result.stderr
    assert f"warning: skipped (unreadable): {path}: not a readable Neuroscan CNT file (RuntimeError" in result.stderr


def test_a_bug_of_ours_while_reading_a_cnt_file_stops_the_run_not_a_skip(tmp_path: Path, monkeypatch) -> None:
    """Every exception of ``read_raw_cnt``'s call was called a broken file, so a bug of ours was skipped as one."""

    def bug(*args: object, **kwargs: object) -> None:
        raise TypeError("an argument of ours is wrong")

    path = tmp_path / "raw" / "5_1_20180507.cnt"
    path.parent.mkdir()
    path.write_bytes(b"\x00" * 64)
    monkeypatch.setattr(mne.io, "read_raw_cnt", bug)
    with pytest.raises(TypeError, match="an argument of ours is wrong"):
        SeedVCorpus().read(SeedVCorpus().discover(tmp_path / "raw")[0])
    result = _preprocess(tmp_path / "raw", tmp_path / "shards")
    assert result.exit_code == 1 and "Traceback" not in result.output
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: {path}: TypeError: an argument of ours is wrong while reading or processing it;")
    assert "skipped (" not in result.stderr
