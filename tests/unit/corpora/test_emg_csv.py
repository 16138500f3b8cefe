"""The ``emg-csv`` corpus: the bundled Myo sample and small hand-made folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora.emg_csv import EmgCsvCorpus, EmgCsvOptions
from biofound_cli.errors import DataError, UsageError

MYO_ROOT = Path(__file__).resolve().parents[3] / "biofound_cli" / "data" / "samples" / "emg" / "myo"


def test_bundled_myo_sample_is_discovered_with_labels_and_splits() -> None:
    options = EmgCsvOptions(split_by_repetition={"train": [0, 1], "val": [2], "test": [3]})
    refs = EmgCsvCorpus(options).discover(MYO_ROOT)
    assert len(refs) == 20
    assert refs[0].recording_id == "R_0_C_0_EMG"
    assert {ref.subject for ref in refs} == {"subject"}
    by_id = {ref.recording_id: ref for ref in refs}
    assert by_id["R_1_C_3_EMG"].split == "train"
    assert by_id["R_2_C_4_EMG"].split == "val"
    assert by_id["R_3_C_0_EMG"].split == "test"
    assert by_id["R_3_C_0_EMG"].session == "3"
    assert sorted({ref.extra["label"] for ref in refs}) == [0, 1, 2, 3, 4]


def test_a_repetition_no_file_has_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    # test = [9] for repetitions numbered 0..3: test got no recording, and pack's only word was that
    # one subject could not fill every split ("add recordings").
    options = EmgCsvOptions(split_by_repetition={"train": [0, 1, 2], "val": [3], "test": [9, 4]})
    with caplog.at_level("WARNING"):
        refs = EmgCsvCorpus(options).discover(MYO_ROOT)
    assert {ref.split for ref in refs} == {"train", "val"}
    assert [record.getMessage() for record in caplog.records] == [
        f"preprocess.options.split_by_repetition lists repetitions 9 (test), 4 (test) that no file under {MYO_ROOT} has "
        "(the files hold repetitions 0, 1, 2, 3); fix the numbers, or those splits get no recording from them"
    ]
    caplog.clear()
    EmgCsvCorpus(EmgCsvOptions(split_by_repetition={"train": [0, 1], "val": [2], "test": [3]})).discover(MYO_ROOT)
    assert not caplog.records


def test_bundled_myo_file_reads_as_eight_channels_at_200_hz() -> None:
    corpus = EmgCsvCorpus()
    ref = next(ref for ref in corpus.discover(MYO_ROOT) if ref.recording_id == "R_0_C_2_EMG")
    recording = corpus.read(ref)
    expected = np.loadtxt(MYO_ROOT / "R_0_C_2_EMG.csv", delimiter=",").T
    assert recording.ch_names == [f"EMG{index}" for index in range(1, 9)]
    assert recording.sfreq == 200.0
    assert recording.label == 2
    assert recording.segments is None
    np.testing.assert_array_equal(recording.data, expected)
    assert 590 <= recording.data.shape[1] <= 610


def test_subject_group_header_and_class_names(tmp_path: Path) -> None:
    for subject in ("s1", "s2"):
        (tmp_path / subject).mkdir()
        for gesture in ("fist", "open"):
            (tmp_path / subject / f"{gesture}_1.csv").write_text("a;b\n1;2\n3;4\n5;6\n")
    (tmp_path / "notes.txt").write_text("not a recording")
    options = EmgCsvOptions(
        pattern=r"(?P<subject>s\d)/(?P<class>[a-z]+)_(?P<repetition>\d)\.csv",
        delimiter=";",
        has_header=True,
        channel_names=["FLEX", "EXT"],
        label_names=["rest", "open", "fist"],
        sfreq=1000,
    )
    corpus = EmgCsvCorpus(options)
    refs = corpus.discover(tmp_path)
    assert [(ref.recording_id, ref.subject, ref.extra["label"]) for ref in refs] == [
        ("s1-fist_1", "s1", 2),
        ("s1-open_1", "s1", 1),
        ("s2-fist_1", "s2", 2),
        ("s2-open_1", "s2", 1),
    ]
    recording = corpus.read(refs[0])
    assert recording.ch_names == ["FLEX", "EXT"]
    assert recording.sfreq == 1000
    np.testing.assert_array_equal(recording.data, [[1, 3, 5], [2, 4, 6]])
    assert recording.meta["label_names"] == ["rest", "open", "fist"]


def test_no_class_group_means_unlabelled(tmp_path: Path) -> None:
    (tmp_path / "rec.csv").write_text("1,2\n3,4\n")
    corpus = EmgCsvCorpus(EmgCsvOptions(pattern=r"rec\.csv"))
    (ref,) = corpus.discover(tmp_path)
    assert corpus.read(ref).label is None


def test_malformed_csv_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "R_0_C_1_EMG.csv").write_text("1,2,3\n4,x,6\n")
    corpus = EmgCsvCorpus()
    (ref,) = corpus.discover(tmp_path)
    with pytest.raises(DataError, match=r"R_0_C_1_EMG\.csv: not a numeric"):
        corpus.read(ref)


def test_channel_name_count_must_match_columns(tmp_path: Path) -> None:
    (tmp_path / "R_0_C_1_EMG.csv").write_text("1,2,3\n4,5,6\n")
    corpus = EmgCsvCorpus(EmgCsvOptions(channel_names=["A", "B"]))
    (ref,) = corpus.discover(tmp_path)
    with pytest.raises(DataError, match="has 3 columns but preprocess.options.channel_names names 2"):
        corpus.read(ref)


def test_split_by_repetition_needs_a_repetition_group(tmp_path: Path) -> None:
    corpus = EmgCsvCorpus(EmgCsvOptions(pattern=r"C_(?P<class>\d)\.csv", split_by_repetition={"train": [0]}))
    with pytest.raises(UsageError, match="needs a 'repetition' group"):
        corpus.discover(tmp_path)


def test_repetition_in_two_splits_is_refused() -> None:
    with pytest.raises(ValueError, match="repetition 1 is listed under both train and test"):
        EmgCsvOptions(split_by_repetition={"train": [0, 1], "test": [1]})


def test_bad_pattern_is_a_validation_error() -> None:
    with pytest.raises(ValueError, match="not a valid regular expression"):
        EmgCsvOptions(pattern="(")


def test_missing_cells_are_nan_rows_stay_samples_and_header_is_skipped(tmp_path: Path) -> None:
    # Two rows of three columns: a short file is never turned on its side, whatever its shape.
    (tmp_path / "R_0_C_1_EMG.csv").write_text("a,b,c\n1,,3\nNULL,5,NaN\n")
    corpus = EmgCsvCorpus(EmgCsvOptions(has_header=True))
    (ref,) = corpus.discover(tmp_path)
    recording = corpus.read(ref)
    assert recording.ch_names == ["EMG1", "EMG2", "EMG3"]
    np.testing.assert_array_equal(recording.data, [[1, np.nan], [np.nan, 5], [3, np.nan]])


def test_any_matched_file_is_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "rec.txt").write_text("1;2\n3;4\n5;6\n")
    corpus = EmgCsvCorpus(EmgCsvOptions(pattern=r"rec\.txt", delimiter=";"))
    (ref,) = corpus.discover(tmp_path)
    np.testing.assert_array_equal(corpus.read(ref).data, [[1, 3, 5], [2, 4, 6]])


def test_the_corpus_s_own_window_set_again_keeps_its_published_step(tmp_path: Path) -> None:
    # `--set preprocess.window_seconds=1` on emg-csv (its own 1 s window) dropped its 0.25 s step: 3 windows of
    # a 3 s file instead of 9, with an info line saying the 0.25 s step "goes with its own 1 s window".
    (tmp_path / "raw").mkdir()
    shutil.copy(MYO_ROOT / "R_0_C_0_EMG.csv", tmp_path / "raw")
    args = ["preprocess", "emg-csv", "--root", str(tmp_path / "raw"), "--no-progress", "--json"]
    for window, windows in (("1", 9), ("1.5", 2)):
        out = ["--out", str(tmp_path / f"shards-{window}"), "--set", f"preprocess.window_seconds={window}"]
        result = CliRunner().invoke(app, [*args, *out])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["windows_written"] == windows
        assert ("stride_seconds follows window_seconds" in result.stderr) == (window != "1")


def test_a_window_and_step_of_the_recipe_s_own_reach_the_packed_file_and_info_says_them(tmp_path: Path) -> None:
    # `info` of a shard or packed file gave the samples per window but not the step they were cut with.
    (tmp_path / "raw").mkdir()
    shutil.copy(MYO_ROOT / "R_0_C_0_EMG.csv", tmp_path / "raw")
    shards, packed = str(tmp_path / "shards"), str(tmp_path / "packed")
    window = ["--set", "preprocess.window_seconds=0.5", "--set", "preprocess.stride_seconds=0.2"]
    stages = [
        ["preprocess", "emg-csv", "--root", str(tmp_path / "raw"), "--out", shards, *window],
        ["pack", shards, "--out", packed],
    ]
    for stage in stages:
        result = CliRunner().invoke(app, [*stage, "--no-progress", "--json"])
        assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["windows"]["train"] == 13  # (3 s - 0.5 s) / 0.2 s + 1
    for path in (f"{shards}/emg-csv/R_0_C_0_EMG.h5", f"{packed}/train.h5"):
        info = json.loads(CliRunner().invoke(app, ["info", path, "--json"]).stdout)
        assert (info["window_seconds"], info["stride_seconds"], info["n_times"]) == (0.5, 0.2, 100)
