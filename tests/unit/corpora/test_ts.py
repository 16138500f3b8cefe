"""The ``ts`` corpus: the bundled SCP1 trials and small hand-written ``.ts`` files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.shards import read_shard
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora.ts import TsCorpus, TsOptions, read_ts
from biofound_cli.errors import DataError, UsageError

SCP1_ROOT = Path(__file__).resolve().parents[3] / "biofound_cli" / "data" / "samples" / "eeg" / "scp1"

TINY_TS = """# a comment
@problemName Tiny
@dimensions 2
@classLabel true up down
@data
1,2,3:4,5,6:down
7,8,9:10,11,12:up
13,14,15:16,17,18:up
"""


def test_scp1_files_are_discovered_with_the_official_test_split() -> None:
    refs = TsCorpus(TsOptions(sfreq=256)).discover(SCP1_ROOT)
    assert [(ref.recording_id, ref.split, ref.subject) for ref in refs] == [
        ("SelfRegulationSCP1_TEST", "test", "subject"),
        # The file-level split is official: beside a TEST file, the file matching no pattern is train.
        ("SelfRegulationSCP1_TRAIN", "train", "subject"),
    ]


def test_files_of_an_archive_without_official_split_carry_none(tmp_path: Path) -> None:
    (tmp_path / "Tiny_A.ts").write_text(TINY_TS)
    (tmp_path / "Tiny_B.ts").write_text(TINY_TS)
    corpus = TsCorpus(TsOptions(sfreq=2, channel_names=["C3", "C4"]))
    refs = corpus.discover(tmp_path)
    assert [ref.split for ref in refs] == [None, None]
    assert {segment.split for segment in corpus.read(refs[0]).segments} == {None}


def test_train_file_trials_are_train_and_val_fraction_carves_val_from_them(tmp_path: Path) -> None:
    (tmp_path / "Tiny_TRAIN.ts").write_text(TINY_TS)
    (tmp_path / "Tiny_TEST.ts").write_text(TINY_TS)
    plain = TsCorpus(TsOptions(sfreq=2, channel_names=["C3", "C4"]))
    test_ref, train_ref = plain.discover(tmp_path)
    assert (test_ref.split, train_ref.split) == ("test", "train")
    assert [s.split for s in plain.read(train_ref).segments] == ["train", "train", "train"]
    carved = TsCorpus(TsOptions(sfreq=2, channel_names=["C3", "C4"], val_fraction=0.34))
    test_ref, train_ref = carved.discover(tmp_path)
    assert [s.split for s in carved.read(train_ref).segments] == ["train", "train", "val"]
    assert [s.split for s in carved.read(test_ref).segments] == ["test", "test", "test"]


def test_scp1_test_file_reads_as_293_trials_of_896_samples() -> None:
    corpus = TsCorpus(TsOptions(sfreq=256, gap_seconds=0.5))
    test_ref = corpus.discover(SCP1_ROOT)[0]
    recording = corpus.read(test_ref)
    assert recording.ch_names == [f"CH{index}" for index in range(1, 7)]
    assert recording.meta["label_names"] == ["negativity", "positivity"]
    assert len(recording.segments) == 293
    gap = 128
    assert recording.data.shape == (6, 293 * 896 + 292 * gap)
    first, second = recording.segments[:2]
    assert (first.start, first.stop) == (0.0, 3.5)
    assert second.start == pytest.approx((896 + gap) / 256)
    assert {segment.split for segment in recording.segments} == {"test"}
    assert {segment.label for segment in recording.segments} == {0, 1}
    # The first trial line of the test file starts with 4.06 and its label is positivity.
    assert recording.data[0, 0] == pytest.approx(4.06)
    assert first.label == 1
    np.testing.assert_array_equal(recording.data[:, 896 : 896 + gap], 0.0)


def test_val_fraction_marks_the_last_trials_of_unsplit_files(tmp_path: Path) -> None:
    (tmp_path / "Tiny_TRAIN.ts").write_text(TINY_TS)
    corpus = TsCorpus(TsOptions(sfreq=2, val_fraction=0.34, gap_seconds=1.0, channel_names=["C3", "C4"]))
    (ref,) = corpus.discover(tmp_path)
    recording = corpus.read(ref)
    assert [(s.start, s.stop, s.label, s.split) for s in recording.segments] == [
        (0.0, 1.5, 1, "train"),
        (2.5, 4.0, 0, "train"),
        (5.0, 6.5, 0, "val"),
    ]
    np.testing.assert_array_equal(recording.data[0], [1, 2, 3, 0, 0, 7, 8, 9, 0, 0, 13, 14, 15])
    assert recording.ch_names == ["C3", "C4"]


def test_val_fraction_keeps_every_class_of_a_file_sorted_by_class() -> None:
    corpus = TsCorpus(TsOptions(sfreq=256, val_fraction=0.2))
    train_ref = corpus.discover(SCP1_ROOT)[1]
    segments = corpus.read(train_ref).segments
    val_labels = [segment.label for segment in segments if segment.split == "val"]
    # 135 negativity then 133 positivity trials: 27 + 27 of them become val.
    assert (val_labels.count(0), val_labels.count(1)) == (27, 27)
    assert {segment.split for segment in segments} == {"train", "val"}


def test_gzip_file_and_channel_positions(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "Tiny_TEST.ts.gz", "wt") as handle:
        handle.write(TINY_TS)
    positions = {"C3": [-0.06, 0.0, 0.06], "C4": [0.06, 0.0, 0.06]}
    corpus = TsCorpus(TsOptions(sfreq=2, channel_names=["C3", "C4"], channel_positions=positions))
    (ref,) = corpus.discover(tmp_path)
    assert (ref.recording_id, ref.split) == ("Tiny_TEST", "test")
    recording = corpus.read(ref)
    assert recording.meta["channel_positions"] == positions
    assert [segment.label for segment in recording.segments] == [1, 0, 0]


def test_upper_case_names_are_found_and_split_by_the_pattern_in_any_case(tmp_path: Path) -> None:
    # A copy made on Windows or by an older tool: X_TRAIN.TS beside X_test.TS.GZ. Both are found,
    # and the default pattern *_TEST.ts* names the test file whatever the case of either.
    root, out = tmp_path / "upper", tmp_path / "shards"
    root.mkdir()
    (root / "Tiny_TRAIN.TS").write_text(TINY_TS)
    with gzip.open(root / "Tiny_test.TS.GZ", "wt") as handle:
        handle.write(TINY_TS)
    recipe = tmp_path / "ts.toml"
    recipe.write_text('[preprocess]\ncorpus = "ts"\nwindow_seconds = 1.5\n\n[preprocess.options]\nsfreq = 2.0\n')
    args = ["preprocess", "ts", "--recipe", str(recipe), "--root", str(root), "--out", str(out), "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["found"], summary["written"], summary["windows_written"]) == (2, 2, 6)
    assert {path.name for path in (out / "ts").glob("*.h5")} == {"Tiny_TRAIN.h5", "Tiny_test.h5"}
    assert read_shard(out / "ts" / "Tiny_test.h5")["attrs"]["split"] == "test"
    assert read_shard(out / "ts" / "Tiny_TRAIN.h5")["attrs"]["split"] == "train"


def test_a_file_saved_with_a_byte_order_mark_and_crlf_reads(tmp_path: Path) -> None:
    # Saved by Notepad: the mark hid the first line, so a file starting with '@classLabel' was
    # skipped as having no '@classLabel' header.
    root, out = tmp_path / "bom", tmp_path / "shards"
    root.mkdir()
    text = TINY_TS[TINY_TS.index("@classLabel") :].replace("\n", "\r\n")
    (root / "Tiny_TRAIN.ts").write_bytes(text.encode("utf-8-sig"))
    recipe = tmp_path / "ts.toml"
    recipe.write_text('[preprocess]\ncorpus = "ts"\nwindow_seconds = 1.5\n\n[preprocess.options]\nsfreq = 2.0\n')
    args = ["preprocess", "ts", "--recipe", str(recipe), "--root", str(root), "--out", str(out), "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["windows_written"] == 3
    assert read_shard(out / "ts" / "Tiny_TRAIN.h5")["attrs"]["label_names"] == ["up", "down"]


def test_sfreq_is_required() -> None:
    with pytest.raises(UsageError, match="set preprocess.options.sfreq"):
        TsCorpus().discover(SCP1_ROOT)


def test_position_needs_three_coordinates() -> None:
    with pytest.raises(ValueError, match=r"position of C3 must be \[x, y, z\]"):
        TsOptions(channel_positions={"C3": [0.0, 1.0]})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@data\n1,2:3,4:a\n", "no '@classLabel true"),
        ("@classLabel true a b\n@data\n1,2:3,4:c\n", "line 3: the last field 'c' is not one of the classes a, b"),
        ("@classLabel true a b\n@data\n1,?:3,4:a\n", "line 3: a sample is not a number"),
        ("@classLabel true a b\n@data\n1,2:3:a\n", "line 3: the channels of this trial have different lengths"),
        ("@classLabel true a b\n@data\n1,2:3,4:a\n1,2:a\n", "line 4: trial has 1 dimensions, the first had 2"),
        # The rows must agree with the file's own header (SCP1: '@seriesLength 896'); a short trial was read silently.
        (
            "@equalLength true\n@seriesLength 2\n@classLabel true a b\n@data\n1,2:3,4:a\n1,2,3:4,5,6:b\n",
            "line 6: trial has 3 samples per channel, the header's '@seriesLength' says 2",
        ),
        ("@seriesLength 3\n@classLabel true a b\n@data\n1,2:3,4:a\n", "line 4: trial has 2 samples per channel, the header's"),
        ("@equalLength true\n@classLabel true a b\n@data\n1,2:3,4:a\n1,2,3:4,5,6:b\n", "line 5: .* the first had 2"),
        ("@dimensions 3\n@classLabel true a b\n@data\n1,2:3,4:a\n", "line 4: trial has 2 dimensions, the header's"),
        ("@seriesLength many\n@classLabel true a b\n@data\n1,2:3,4:a\n", "line 1: '@seriesLength' must be followed"),
        ("@classLabel true a b\n", "no '@data' line"),
        ("@classLabel true a b\n@data\n", "holds no trials"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.ts"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as raised:
        read_ts(path)
    assert str(path) in raised.value.message


def test_unequal_trials_are_read_when_the_header_says_so(tmp_path: Path) -> None:
    path = tmp_path / "ragged.ts"
    path.write_text("@dimensions 2\n@equalLength false\n@seriesLength 2\n@classLabel true a b\n@data\n1,2:3,4:a\n1,2,3:4,5,6:b\n")
    _, trials, _ = read_ts(path)
    assert [trial.shape for trial in trials] == [(2, 2), (2, 3)]


def test_the_bundled_scp1_trials_agree_with_their_header() -> None:
    _, trials, _ = read_ts(SCP1_ROOT / "SelfRegulationSCP1_TEST.ts.gz")
    assert {trial.shape for trial in trials} == {(6, 896)}


def test_corrupt_gzip_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad_TEST.ts.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="bad_TEST.ts.gz: cannot be read"):
        read_ts(path)


def test_a_rate_other_than_the_one_the_comments_state_is_warned_about_on_the_command_line(tmp_path: Path) -> None:
    """.ts holds no rate; ``--set preprocess.options.sfreq=10`` on SCP1 (``#Sampling rate: 256 S/s``) wrote windows silently."""
    import subprocess
    import sys

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Tiny_TRAIN.ts").write_text("#Sampling rate: 4 S/s\n" + TINY_TS)
    (raw / "Tiny_TEST.ts").write_text("# Sampling frequency = 2 Hz\n" + TINY_TS)
    options = ["--set", "preprocess.window_seconds=1", "--set", 'preprocess.options.channel_names=["C3", "C4"]']
    args = [sys.executable, "-m", "biofound_cli", "preprocess", "ts", "--root", str(raw), "--no-progress", *options]
    run = subprocess.run(
        [*args, "--out", str(tmp_path / "out"), "--set", "preprocess.options.sfreq=2"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines()[0] == (
        f"warning: {raw / 'Tiny_TRAIN.ts'}: its header comments state a sampling rate of 4 Hz, but preprocess.options.sfreq "
        "is 2; the .ts format holds no rate, so windows are cut and timed at 2 Hz: set preprocess.options.sfreq to the "
        "trials' real rate"
    )
    assert "Tiny_TEST.ts: its header comments" not in run.stderr  # it states 2 Hz, as the recipe does


@pytest.mark.parametrize(
    ("comments", "stated"),
    [
        ("#Sampling rate: 256 S/s\n", 256.0),
        ("# sampling frequency 128.5 Hz\n", 128.5),
        ("#Sampling rate: 256 S/s\n#Sampling rate: 128 Hz\n", None),  # two rates: no guess
        ("#Recorded at 1000 Hz, downsampled\n", None),  # only a line that starts by stating the rate
        ("", None),
    ],
)
def test_the_stated_rate_is_read_from_the_header_comments_only(tmp_path: Path, comments: str, stated: float | None) -> None:
    from biofound_cli.corpora.ts import stated_sampling_rate

    path = tmp_path / "x.ts.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(comments + TINY_TS + "#Sampling rate: 7 Hz\n")
    assert stated_sampling_rate(path) == stated
