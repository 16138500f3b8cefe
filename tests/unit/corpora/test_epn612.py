"""The ``epn612`` corpus on tiny user JSON files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from biofound_cli.corpora.base import Segment
from biofound_cli.corpora.epn612 import Epn612Corpus, Epn612Options
from biofound_cli.errors import DataError


def _sample(gesture: str | None, n_samples: int, value: int) -> dict:
    sample = {"emg": {f"ch{index}": [value] * n_samples for index in range(1, 9)}}
    if gesture is not None:
        sample["gestureName"] = gesture
    return sample


def _write_user(path: Path, training: dict, testing: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"userInfo": {}, "trainingSamples": training, "testingSamples": testing}))


def test_discover_names_training_and_testing_users(tmp_path: Path) -> None:
    _write_user(tmp_path / "trainingJSON" / "user1" / "user1.json", {}, {})
    _write_user(tmp_path / "testingJSON" / "user1" / "user1.json", {}, {})
    _write_user(tmp_path / "other" / "user9" / "user9.json", {}, {})
    refs = Epn612Corpus().discover(tmp_path)
    assert [(r.recording_id, r.subject, r.split) for r in refs] == [
        ("test-user1", "test-user1", None),
        ("train-user1", "train-user1", None),
    ]


def test_training_user_samples_go_to_train_and_val(tmp_path: Path) -> None:
    training = {"idx_10": _sample("fist", 3, 64), "idx_2": _sample("noGesture", 5, 32), "idx_3": _sample("notProvided", 4, 1)}
    testing = {"idx_1": _sample("waveIn", 2, -128)}
    _write_user(tmp_path / "trainingJSON" / "user7" / "user7.json", training, testing)
    corpus = Epn612Corpus(Epn612Options(sample_seconds=0.02, gap_seconds=0.01))
    (ref,) = corpus.discover(tmp_path)
    recording = corpus.read(ref)
    assert recording.ch_names == [f"EMG{index}" for index in range(1, 9)]
    assert recording.segments == [
        Segment(start=0.0, stop=0.02, label=0, split="train"),
        Segment(start=0.03, stop=0.05, label=5, split="train"),
        Segment(start=0.06, stop=0.08, label=1, split="val"),
    ]
    # noGesture truncated 5 -> 4, gap 2, fist padded 3 -> 4, gap 2, waveIn padded 2 -> 4; scaled by 1/128.
    np.testing.assert_allclose(recording.data[0], [0.25] * 4 + [0] * 2 + [0.5] * 3 + [0] * 3 + [-1, -1, 0, 0])


def test_testing_user_keeps_the_first_samples_per_gesture_for_train(tmp_path: Path) -> None:
    training = {
        f"idx_{n}": _sample(gesture, 2, 1) for n, gesture in enumerate(["pinch", "open", "pinch", "pinch", "open"], start=1)
    }
    testing = {"idx_1": _sample(None, 2, 1)}
    _write_user(tmp_path / "testingJSON" / "user3" / "user3.json", training, testing)
    corpus = Epn612Corpus(Epn612Options(sample_seconds=None, gap_seconds=0, train_samples_per_gesture=2))
    (ref,) = corpus.discover(tmp_path)
    segments = corpus.read(ref).segments
    assert [(s.label, s.split) for s in segments] == [(3, "train"), (4, "train"), (3, "train"), (3, "test"), (4, "train")]
    assert [s.start for s in segments] == [0.0, 0.01, 0.02, 0.03, 0.04]


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ("{not json", "not a readable JSON file"),
        (json.dumps({"userInfo": {}}), "no 'trainingSamples'"),
        (json.dumps({"trainingSamples": {}}), "no labelled gesture samples"),
        (json.dumps({"trainingSamples": {"idx_1": _sample("clap", 2, 1)}}), "trainingSamples.idx_1: unknown gestureName 'clap'"),
        (
            json.dumps({"trainingSamples": {"idx_1": {"gestureName": "fist", "emg": {"ch1": [1]}}}}),
            r"missing EMG channels ch2",
        ),
    ],
)
def test_malformed_user_files_name_the_file(tmp_path: Path, contents: str, message: str) -> None:
    path = tmp_path / "trainingJSON" / "user1" / "user1.json"
    path.parent.mkdir(parents=True)
    path.write_text(contents)
    corpus = Epn612Corpus()
    (ref,) = corpus.discover(tmp_path)
    with pytest.raises(DataError, match=message) as raised:
        corpus.read(ref)
    assert str(path) in raised.value.message


def test_a_latin1_byte_past_the_start_names_its_line_and_a_latin1_file_is_read(tmp_path: Path) -> None:
    # A user file with a name typed on Windows (José) past its first 64 KiB: the message was Python's
    # "'utf-8' codec can't decode byte 0xe9 in position 70012", no line; a file Latin-1 from its start was refused.
    training = {f"idx_{index}": _sample("fist", 400, index) for index in range(1, 26)}
    text = json.dumps({"trainingSamples": training, "testingSamples": {}}, indent=1)
    assert len(text) > 1 << 16
    late = tmp_path / "late" / "trainingJSON" / "user1" / "user1.json"
    late.parent.mkdir(parents=True)
    late.write_bytes(text.replace('"testingSamples": {}', '"testingSamples": {}, "userInfo": {"name": "José"}').encode("latin-1"))
    early = tmp_path / "early" / "trainingJSON" / "user1" / "user1.json"
    early.parent.mkdir(parents=True)
    early.write_bytes(text.replace("{", '{"userInfo": {"name": "José"}, ', 1).encode("latin-1"))
    corpus = Epn612Corpus()
    (ref,) = corpus.discover(tmp_path / "late")
    line = text.count("\n")  # the last line but one: "testingSamples"
    with pytest.raises(DataError) as raised:
        corpus.read(ref)
    assert raised.value.message == (
        f"{late}: line {line} is not UTF-8 text (invalid continuation byte), though the file starts as UTF-8; save it as UTF-8"
    )
    (ref,) = corpus.discover(tmp_path / "early")
    assert len(corpus.read(ref).segments) == 25
