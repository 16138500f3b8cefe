"""The ``uci-emg`` corpus on tiny files in the UCI #481 layout."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora.base import Segment
from biofound_cli.corpora.uci_emg import UciEmgCorpus, UciEmgOptions, subject_split
from biofound_cli.errors import DataError

CLASSES = [0, 0, 1, 1, 1, 0, 2, 2, 7, 7, 0]
HEADER = "time\tchannel1\tchannel2\tchannel3\tchannel4\tchannel5\tchannel6\tchannel7\tchannel8\tclass\n"


def _write_uci(path: Path, classes: list[int] = CLASSES) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = np.arange(len(classes) * 8, dtype=np.float64).reshape(len(classes), 8) * 1e-5
    rows = [
        "\t".join([str(index + 1)] + [f"{value:.5f}" for value in channels[index]] + [str(label)])
        for index, label in enumerate(classes)
    ]
    path.write_text(HEADER + "\n".join(rows) + "\n")
    return channels


def test_discover_splits_by_subject(tmp_path: Path) -> None:
    base = tmp_path / "EMG_data_for_gestures-master"
    for subject in ("01", "24", "25"):
        _write_uci(base / subject / "1_raw_data_13-12_22.03.16.txt")
    _write_uci(base / "36" / "1_raw_data_13-12_22.03.16.TXT")  # copied through a file system that upper-cases names
    (base / "README.txt").write_text("not data")
    refs = UciEmgCorpus().discover(tmp_path)
    assert [(r.recording_id, r.subject, r.split) for r in refs] == [
        ("01_1_raw_data_13-12_22.03.16", "01", "train"),
        ("24_1_raw_data_13-12_22.03.16", "24", "train"),
        ("25_1_raw_data_13-12_22.03.16", "25", "val"),
        ("36_1_raw_data_13-12_22.03.16", "36", "test"),
    ]
    assert [subject_split(k) for k in (1, 24, 25, 30, 31, 36)] == ["train", "train", "val", "val", "test", "test"]


def test_read_gives_gesture_runs_without_rest_and_class_7(tmp_path: Path) -> None:
    channels = _write_uci(tmp_path / "03" / "2_raw_data.txt")
    corpus = UciEmgCorpus()
    (ref,) = corpus.discover(tmp_path)
    recording = corpus.read(ref)
    assert recording.sfreq == 200.0
    assert recording.ch_names == [f"EMG{index}" for index in range(1, 9)]
    np.testing.assert_allclose(recording.data, channels.T)
    assert recording.segments == [Segment(start=0.01, stop=0.025, label=0), Segment(start=0.03, stop=0.04, label=1)]
    assert len(corpus.label_names) == 6


def test_keep_class_7_adds_label_6(tmp_path: Path) -> None:
    _write_uci(tmp_path / "03" / "2_raw_data.txt")
    corpus = UciEmgCorpus(UciEmgOptions(keep_class_7=True, sfreq=100))
    (ref,) = corpus.discover(tmp_path)
    segments = corpus.read(ref).segments
    assert [(s.start, s.stop, s.label) for s in segments] == [(0.02, 0.05, 0), (0.06, 0.08, 1), (0.08, 0.1, 6)]
    assert len(corpus.label_names) == 7


def test_malformed_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "04").mkdir()
    (tmp_path / "04" / "bad.txt").write_text(HEADER + "1\t2\t3\n")
    (tmp_path / "05").mkdir()
    (tmp_path / "05" / "text.txt").write_text(HEADER + "a\tb\n")
    _write_uci(tmp_path / "06" / "odd.txt", classes=[1, 9])
    corpus = UciEmgCorpus()
    short, text, odd = corpus.discover(tmp_path)
    with pytest.raises(DataError, match=r"bad\.txt: 3 columns, expected 10"):
        corpus.read(short)
    with pytest.raises(DataError, match=r"text\.txt: line 2 has 2 cells where the table has 10"):
        corpus.read(text)
    with pytest.raises(DataError, match=r"odd\.txt: unknown class value \[9\]"):
        corpus.read(odd)


def test_a_file_without_rows_says_so(tmp_path: Path) -> None:
    (tmp_path / "07").mkdir()
    (tmp_path / "07" / "header.txt").write_text(HEADER)
    (tmp_path / "07" / "zero.txt").write_text("")
    corpus = UciEmgCorpus()
    for ref in corpus.discover(tmp_path):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy's UserWarning, with its source line, reached the terminal
            with pytest.raises(DataError, match=rf"{ref.path.name}: the file holds no samples after its header row"):
                corpus.read(ref)


def test_a_ragged_row_is_skipped_naming_its_line_and_a_latin1_header_is_read(tmp_path: Path) -> None:
    # An interrupted copy or a hand edit left one row short; numpy said "the number of columns
    # changed from 10 to 4 at row 3; use `usecols` ...", counting rows after the header.
    root, out = tmp_path / "uci", tmp_path / "shards"
    rng = np.random.default_rng(0)
    rows = ["\t".join([str(index)] + [f"{value:.5f}" for value in rng.normal(0, 1e-4, 8)] + ["1"]) for index in range(2000)]
    (root / "02").mkdir(parents=True)
    (root / "02" / "1_raw_data.txt").write_text(HEADER + "\n".join(rows) + "\n")
    # A header edited on Windows, in its code page: read, not "not a numeric table".
    (root / "04").mkdir()
    (root / "04" / "1_raw_data.txt").write_bytes((HEADER.replace("time", "tîme") + "\n".join(rows) + "\n").encode("latin-1"))
    ragged = root / "03" / "1_raw_data.txt"
    ragged.parent.mkdir()
    rows[2] = "\t".join(rows[2].split("\t")[:4])
    ragged.write_text(HEADER + "\n".join(rows) + "\n")
    args = ["preprocess", "uci-emg", "--root", str(root), "--out", str(out), "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["found"], summary["written"], summary["skipped_by_reason"]) == (3, 2, {"unusable": 1})
    report = json.loads((out / "preprocess_report.uci-emg.json").read_text())
    (entry,) = [entry for entry in report["files"] if entry["status"] == "skipped"]
    assert entry["message"] == (
        f"{ragged}: line 4 has 4 cells where the table has 10; every row needs one cell per column (complete or delete the line)"
    )


@pytest.mark.slow
def test_gesture_runs_shorter_than_the_window_are_counted_and_named(tmp_path: Path) -> None:
    # Gesture 2 is held 4.5 s, under the 5 s default window: its run gave no window and the
    # class vanished from the shards without a word, while the summary counted nothing amiss.
    import subprocess
    import sys

    root, out = tmp_path / "uci", tmp_path / "shards"
    classes = [0] * 600 + [1] * 1200 + [0] * 600 + [2] * 900 + [0] * 600 + [3] * 1100 + [0] * 600
    rng = np.random.default_rng(0)
    for subject in ("01", "25"):
        (root / subject).mkdir(parents=True)
        signal = rng.normal(0, 1e-4, (len(classes), 8))
        rows = ["\t".join([str(index)] + [f"{v:.6f}" for v in signal[index]] + [str(c)]) for index, c in enumerate(classes)]
        (root / subject / "1_raw_data.txt").write_text(HEADER + "\n".join(rows) + "\n")
    args = ["preprocess", "uci-emg", "--root", str(root), "--out", str(out), "--json", "--no-progress", "--workers", "2"]
    result = subprocess.run([sys.executable, "-m", "biofound_cli", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["written"], summary["notes"]) == (2, {"events_shorter_than_window": 2})
    assert summary["windows_written"] == 2 * 2  # one 5 s window from each run of 6 s and 5.5 s, none from 4.5 s
    warning = (
        "1_raw_data.txt: 1 of the 3 labelled events (label 1) lasts less than the 5 s window and give no window; "
        "lower preprocess.window_seconds to keep them"
    )
    assert result.stderr.count(warning) == 2, result.stderr
    report = json.loads((out / "preprocess_report.uci-emg.json").read_text())
    assert report["notes"] == {"events_shorter_than_window": 2}


def test_a_numbered_folder_outside_the_36_subjects_is_named_and_counted_as_excluded(tmp_path: Path) -> None:
    # A folder 37 was passed over as "1 file ... is no uci-emg recording", without saying that the data set
    # has subjects 01..36 only; a folder 00 likewise.
    root, out = tmp_path / "uci", tmp_path / "shards"
    rng = np.random.default_rng(0)
    rows = ["\t".join([str(index)] + [f"{value:.5f}" for value in rng.normal(0, 1e-4, 8)] + ["1"]) for index in range(2000)]
    for subject in ("01", "36", "37", "00"):
        (root / subject).mkdir(parents=True)
        (root / subject / "1_raw_data.txt").write_text(HEADER + "\n".join(rows) + "\n")
    args = ["preprocess", "uci-emg", "--root", str(root), "--out", str(out), "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["found"], summary["written"], summary["excluded_by_reason"]) == (2, 2, {"not_a_subject": 2})
    assert summary["not_read"] == 0, summary
    warning = (
        f"warning: {root}: 2 .txt files in 00, 37, outside UCI EMG's subject folders 01..36: not read (excluded as "
        "not_a_subject); the data set has no such subject, so move them out of the root"
    )
    assert " ".join(result.stderr.split()).count(warning) == 1, result.stderr


def test_a_recording_in_a_folder_not_numbered_is_named_and_counted_as_excluded(tmp_path: Path) -> None:
    # extra/1_raw_data.txt was counted only by the general "1 file ... is no uci-emg recording" warning,
    # without saying that it lies outside the subject folders; another .txt there is still no recording.
    root, out = tmp_path / "uci", tmp_path / "shards"
    rng = np.random.default_rng(0)
    rows = ["\t".join([str(index)] + [f"{value:.5f}" for value in rng.normal(0, 1e-4, 8)] + ["1"]) for index in range(2000)]
    for subject in ("01", "extra"):
        (root / subject).mkdir(parents=True)
        (root / subject / "1_raw_data_13-12_22.03.16.txt").write_text(HEADER + "\n".join(rows) + "\n")
    (root / "extra" / "notes.txt").write_text("notes\n")
    args = ["preprocess", "uci-emg", "--root", str(root), "--out", str(out), "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["found"], summary["written"], summary["excluded_by_reason"]) == (1, 1, {"not_a_subject": 1})
    assert summary["not_read"] == 1, summary  # notes.txt
    warning = (
        f"warning: {root}: 1 .txt file in extra, outside UCI EMG's subject folders 01..36: not read (excluded as "
        "not_a_subject); the data set has no such subject, so move them out of the root"
    )
    assert " ".join(result.stderr.split()).count(warning) == 1, result.stderr
