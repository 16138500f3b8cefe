"""The ``db5`` corpus on tiny NinaPro-shaped ``.mat`` files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from biofound_cli.corpora.base import Segment
from biofound_cli.corpora.db5 import Db5Corpus, Db5Options
from biofound_cli.corpora.label_runs import constant_runs
from biofound_cli.errors import DataError

# 20 samples: rest, movement 1 rep 1, rest, movement 1 rep 3, movement 2 rep 4, rest.
STIMULUS = [0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0]
REPETITION = [0, 0, 1, 1, 1, 1, 0, 0, 3, 3, 3, 3, 4, 4, 4, 4, 0, 0, 0, 0]


def _write_db5(path: Path, n_channels: int = 16, **overrides: object) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    emg = np.arange(20 * n_channels, dtype=np.float64).reshape(20, n_channels)
    contents = {"emg": emg, "restimulus": np.array(STIMULUS)[:, None], "rerepetition": np.array(REPETITION)[:, None]}
    contents.update(overrides)
    savemat(path, contents)
    return emg


def test_discover_lists_subjects_and_exercises(tmp_path: Path) -> None:
    for subject, exercise in [(1, 1), (1, 3)]:
        _write_db5(tmp_path / f"s{subject}" / f"S{subject}_E{exercise}_A1.mat")
    _write_db5(tmp_path / "S10" / "S10_E2_A1.MAT")  # copied through a file system that upper-cases names
    (tmp_path / "s1" / "readme.mat").write_bytes(b"")
    refs = Db5Corpus().discover(tmp_path)
    assert [(r.recording_id, r.subject, r.session, r.extra["exercise"]) for r in refs] == [
        ("S10_E2", "S10", "E2", 2),
        ("S1_E1", "S1", "E1", 1),
        ("S1_E3", "S1", "E3", 3),
    ]


def test_read_gives_offset_labels_and_repetition_splits(tmp_path: Path) -> None:
    emg = _write_db5(tmp_path / "s2" / "S2_E2_A1.mat")
    corpus = Db5Corpus()
    (ref,) = corpus.discover(tmp_path)
    recording = corpus.read(ref)
    assert recording.sfreq == 200.0
    assert recording.ch_names == [f"EMG{index}" for index in range(1, 17)]
    np.testing.assert_array_equal(recording.data, emg.T)
    assert recording.segments == [
        Segment(start=0.01, stop=0.03, label=13, split="train"),
        Segment(start=0.04, stop=0.06, label=13, split="test"),
        Segment(start=0.06, stop=0.08, label=14, split="val"),
    ]
    assert len(Db5Corpus.label_names) == 53


def test_unlisted_repetitions_are_dropped(tmp_path: Path) -> None:
    _write_db5(tmp_path / "S1_E1_A1.mat")
    corpus = Db5Corpus(Db5Options(split_by_repetition={"test": [3]}))
    (ref,) = corpus.discover(tmp_path)
    assert [(s.label, s.split) for s in corpus.read(ref).segments] == [(1, "test")]


def test_wrong_channel_count_is_a_data_error(tmp_path: Path) -> None:
    _write_db5(tmp_path / "S1_E1_A1.mat", n_channels=8)
    corpus = Db5Corpus()
    (ref,) = corpus.discover(tmp_path)
    with pytest.raises(DataError, match=r"S1_E1_A1\.mat: 'emg' has shape \(20, 8\), expected \(n_samples, 16\)"):
        corpus.read(ref)


def test_missing_variable_and_corrupt_file(tmp_path: Path) -> None:
    savemat(tmp_path / "S1_E1_A1.mat", {"emg": np.zeros((4, 16))})
    (tmp_path / "S1_E2_A1.mat").write_bytes(b"garbage")
    corpus = Db5Corpus()
    missing, corrupt = corpus.discover(tmp_path)
    with pytest.raises(DataError, match=r"S1_E1_A1\.mat: missing variables restimulus, rerepetition"):
        corpus.read(missing)
    with pytest.raises(DataError, match=r"S1_E2_A1\.mat: not a readable MATLAB file"):
        corpus.read(corrupt)


def test_length_mismatch_is_a_data_error(tmp_path: Path) -> None:
    _write_db5(tmp_path / "S1_E1_A1.mat", restimulus=np.zeros((5, 1)))
    corpus = Db5Corpus()
    (ref,) = corpus.discover(tmp_path)
    with pytest.raises(DataError, match="have different lengths \\(20, 5, 20\\)"):
        corpus.read(ref)


def test_constant_runs_split_where_any_column_changes() -> None:
    assert constant_runs(np.array([1, 1, 2, 2]), np.array([0, 1, 1, 1])) == [(0, 1), (1, 2), (2, 4)]
    assert constant_runs(np.array([], dtype=int)) == []


def test_a_repetition_under_two_splits_is_refused_with_the_options() -> None:
    with pytest.raises(ValueError, match="repetition 4 is listed under both val and test"):
        Db5Options(split_by_repetition={"train": [1], "val": [4], "test": [4]})


def _preprocess(root: Path, out: Path):
    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    args = ["preprocess", "db5", "--root", str(root), "--out", str(out), "--json", "--no-progress"]
    return CliRunner().invoke(app, [*args, "--set", "preprocess.window_seconds=0.01", "--set", "preprocess.stride_seconds=0.01"])


def test_a_corrupt_mat_file_scipy_meets_with_a_type_error_is_skipped_naming_it(tmp_path: Path) -> None:
    """scipy meets some corrupt files with a TypeError raised inside it: the file's fault, not a bug of ours."""
    corrupt = tmp_path / "raw" / "S1_E2_A1.mat"
    _write_db5(corrupt)
    contents = bytearray(corrupt.read_bytes())
    contents[128] = 9  # the first variable's tag (after the 128-byte header) is no longer miMATRIX
    corrupt.write_bytes(bytes(contents))
    result = _preprocess(tmp_path / "raw", tmp_path / "shards")
    assert result.exit_code == 1 and "Traceback" not in result.output  # the one recording was skipped
    assert "the one recording under" in json.loads(result.stdout)["error"] and "(unreadable: 1)" in result.stderr
    line = f"warning: skipped (unreadable): {corrupt}: not a readable MATLAB file (TypeError: Expecting miMATRIX type"
    assert line in " ".join(result.stderr.split()), result.stderr


def test_a_bug_of_ours_while_reading_a_mat_file_stops_the_run_not_a_skip(tmp_path: Path, monkeypatch) -> None:
    """Every exception of ``loadmat``'s call was called a corrupt file, so a bug of ours was skipped as one."""
    import scipy.io

    def bug(*args: object, **kwargs: object) -> None:
        raise TypeError("an argument of ours is wrong")

    path = tmp_path / "raw" / "S1_E1_A1.mat"
    _write_db5(path)
    monkeypatch.setattr(scipy.io, "loadmat", bug)
    with pytest.raises(TypeError, match="an argument of ours is wrong"):
        Db5Corpus().read(Db5Corpus().discover(tmp_path / "raw")[0])
    result = _preprocess(tmp_path / "raw", tmp_path / "shards")
    assert result.exit_code == 1 and "Traceback" not in result.output
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: {path}: TypeError: an argument of ours is wrong while reading or processing it;")
    assert "skipped (" not in result.stderr
