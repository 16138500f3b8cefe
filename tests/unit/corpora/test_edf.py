"""The ``edf`` corpus: the bundled EEGMMIDB recording, small FIF/EDF folders and a tiny BIDS root."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import mne
import numpy as np
import pytest
from fixtures.eeglab import write_eeglab
from fixtures.shards import read_shard
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora.base import Segment
from biofound_cli.corpora.edf import EdfCorpus, EdfOptions, read_labels_csv
from biofound_cli.corpora.eeglab_files import data_files
from biofound_cli.errors import DataError, UsageError

SAMPLE_EDF = Path(__file__).resolve().parents[3] / "biofound_cli" / "data" / "samples" / "eeg" / "eegmmidb" / "S001R02.edf"


def _write_fif(path: Path, value: float, seconds: float = 2.0, annotations: mne.Annotations | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = mne.create_info(["Cz", "Pz", "STI 014"], sfreq=100.0, ch_types=["eeg", "eeg", "stim"])
    data = np.full((3, int(seconds * 100)), value * 1e-6)
    raw = mne.io.RawArray(data, info, verbose="error")
    if annotations is not None:
        raw.set_annotations(annotations)
    raw.save(path, verbose="error")


def test_bundled_edf_with_event_labels(tmp_path: Path) -> None:
    shutil.copy(SAMPLE_EDF, tmp_path / "S001R02.edf")
    options = EdfOptions(event_labels={"T0": "rest"}, label_names=["rest", "task"], subject_pattern=r"(?P<subject>S\d+)R\d+")
    corpus = EdfCorpus(options)
    (ref,) = corpus.discover(tmp_path)
    assert (ref.recording_id, ref.subject, ref.split) == ("S001R02", "S001", None)
    recording = corpus.read(ref)
    assert recording.sfreq == 160.0
    assert recording.data.shape == (64, 9760)
    assert recording.ch_names[:2] == ["Fc5.", "Fc3."]
    assert recording.segments == [Segment(start=0.0, stop=pytest.approx(60.2), label=0)]
    assert recording.meta["label_names"] == ["rest", "task"]


def test_folder_subjects_labels_csv_and_stim_channels_dropped(tmp_path: Path) -> None:
    _write_fif(tmp_path / "sub1" / "run1_raw.fif", 1.0)
    _write_fif(tmp_path / "sub1" / "run2_raw.fif", 2.0)
    _write_fif(tmp_path / "sub2" / "run1_raw.fif", 3.0)
    _write_fif(tmp_path / "extra_raw.fif", 4.0)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "file,label,split\nsub1/run1_raw.fif,abnormal,train\nsub1/run2_raw.fif,normal,\nsub2/run1_raw,normal,test\n"
    )
    corpus = EdfCorpus(EdfOptions(labels_csv=labels))
    refs = corpus.discover(tmp_path)
    assert [(r.recording_id, r.subject, r.split, r.extra["label"]) for r in refs] == [
        ("sub1-run1_raw", "sub1", "train", 0),
        ("sub1-run2_raw", "sub1", None, 1),
        ("sub2-run1_raw", "sub2", "test", 1),
    ]
    recording = corpus.read(refs[2])
    assert recording.ch_names == ["Cz", "Pz"]
    np.testing.assert_allclose(recording.data, 3e-6)
    assert recording.label == 1
    assert recording.meta["label_names"] == ["abnormal", "normal"]
    assert corpus.task == "mcc"


def test_unlabelled_folder_is_a_pretraining_corpus(tmp_path: Path) -> None:
    _write_fif(tmp_path / "a_raw.fif", 1.0)
    corpus = EdfCorpus()
    (ref,) = corpus.discover(tmp_path)
    assert (ref.recording_id, ref.subject) == ("a_raw", "a_raw")
    assert corpus.task == "reconstruction"
    assert corpus.read(ref).label is None


def test_event_window_and_zero_duration_events(tmp_path: Path) -> None:
    events = mne.Annotations(onset=[0.5, 1.0, 1.5], duration=[0.0, 0.0, 0.0], description=["left", "right", "other"])
    _write_fif(tmp_path / "mi_raw.fif", 1.0, annotations=events)
    corpus = EdfCorpus(EdfOptions(event_labels={"left": 0, "right": 1}, event_window=(0.0, 0.4)))
    (ref,) = corpus.discover(tmp_path)
    segments = corpus.read(ref).segments
    assert [(s.start, s.stop, s.label) for s in segments] == [(0.5, pytest.approx(0.9), 0), (1.0, pytest.approx(1.4), 1)]
    no_window = EdfCorpus(EdfOptions(event_labels={"left": 0}))
    with pytest.raises(DataError, match=r"mi_raw\.fif: event 'left' at 0\.500 s has no duration"):
        no_window.read(ref)


def test_bids_root_is_read_through_mne_bids(tmp_path: Path) -> None:
    mne_bids = pytest.importorskip("mne_bids")
    source = tmp_path / "source.edf"
    info = mne.create_info(["Cz", "Pz"], sfreq=100.0, ch_types="eeg")
    raw = mne.io.RawArray(np.full((2, 300), 5e-6), info, verbose="error")
    raw.set_annotations(mne.Annotations(onset=[1.0], duration=[1.0], description=["task"]))
    mne.export.export_raw(source, raw, fmt="edf", verbose="error")
    bids_root = tmp_path / "bids"
    for subject in ("01", "02"):
        bids_path = mne_bids.BIDSPath(subject=subject, session="a", task="rest", datatype="eeg", root=bids_root)
        mne_bids.write_raw_bids(mne.io.read_raw_edf(source, verbose="error"), bids_path, verbose=False, overwrite=True)
    corpus = EdfCorpus(EdfOptions(event_labels={"task": 2}))
    refs = corpus.discover(bids_root)
    assert [(r.recording_id, r.subject, r.session) for r in refs] == [
        ("sub-01_ses-a_task-rest_eeg", "01", "a"),
        ("sub-02_ses-a_task-rest_eeg", "02", "a"),
    ]
    recording = corpus.read(refs[0])
    assert recording.ch_names == ["Cz", "Pz"]
    assert recording.segments == [Segment(start=1.0, stop=2.0, label=2)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file,y\na.edf,1\n", r"missing column label"),
        ("file,label\na.edf,\n", "line 2: empty file or label"),
        # Blank lines (and CRLF ends) count: the message names the line an editor shows.
        ("file,label\r\na.edf,1\r\n\r\n\r\nb.edf,2\r\nc.edf,\r\n", "line 6: empty file or label"),
        ("file,label,split\na.edf,1,train\n\nb.edf,1,holdout\n", "line 4: split 'holdout'"),
        ("file,label,split\na.edf,1,holdout\n", "line 2: split 'holdout' is not one of train, val, test"),
    ],
)
def test_bad_labels_csv(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        read_labels_csv(path)


def test_labels_csv_as_spreadsheets_editors_and_find_write_it(tmp_path: Path) -> None:
    # A spreadsheet export or a hand edit left blank lines on top; the header was read as the
    # first (empty) line and the run stopped with "missing column(s) file, label".
    root, out = tmp_path / "raw", tmp_path / "shards"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        raw = mne.io.RawArray(rng.normal(0, 20e-6, (2, 1000)), mne.create_info(["Cz", "Pz"], 100.0, "eeg"), verbose="error")
        root.mkdir(exist_ok=True)
        raw.save(root / f"{name}_raw.fif", verbose="error")
    labels = tmp_path / "labels.csv"
    labels.write_text("\r\n \r\nfile,label\r\na_raw.fif,rest\r\n\r\nb_raw.fif,\r\n")
    recipe = tmp_path / "edf.toml"
    recipe.write_text(f'[preprocess]\ncorpus = "edf"\n\n[preprocess.options]\nlabels_csv = "{labels.as_posix()}"\n')
    args = ["preprocess", "edf", "--recipe", str(recipe), "--root", str(root), "--out", str(out), "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    # Read past the blank lines: the header is found and the empty label is named by its line in an editor.
    assert result.exit_code == 2, result.output
    assert f"{labels}: line 6: empty file or label; fill in both or delete the line" in result.output
    labels.write_text("\n\nfile,label\na_raw.fif,rest\nb_raw.fif,task\n")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["found"], summary["written"], summary["windows_written"]) == (2, 2, 4)
    # Saved by a Windows editor in its local code page: read as Latin-1, not a UnicodeDecodeError traceback.
    labels.write_bytes("file,label\na_raw.fif,repos\nb_raw.fif,tâche\n".encode("latin-1"))
    result = CliRunner().invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert read_shard(out / "edf" / "b_raw.h5")["attrs"]["label_names"] == ["repos", "tâche"]
    # Paths as `find .` and Windows write them were "not found under the root".
    labels.write_text("file,label\n./a_raw.fif,rest\n.\\b_raw.fif,task\n")
    result = CliRunner().invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 2


def test_linked_folders_are_read_and_broken_links_named(tmp_path: Path) -> None:
    # A data set assembled from links: a subject folder linked in from scratch space was not
    # entered (Path.rglob does not follow linked folders), so its recordings were silently missing.
    root, scratch, out = tmp_path / "raw", tmp_path / "scratch", tmp_path / "shards"
    rng = np.random.default_rng(0)
    for path in (root / "sub1" / "a_raw.fif", scratch / "sub2" / "b_raw.fif"):
        path.parent.mkdir(parents=True)
        raw = mne.io.RawArray(rng.normal(0, 20e-6, (2, 1000)), mne.create_info(["Cz", "Pz"], 100.0, "eeg"), verbose="error")
        raw.save(path, verbose="error")
    (root / "sub2").symlink_to(scratch / "sub2", target_is_directory=True)
    (root / "sub1" / "loop").symlink_to("..", target_is_directory=True)  # walked once
    (root / "sub1" / "moved_raw.fif").symlink_to(tmp_path / "gone_raw.fif")
    args = ["preprocess", "edf", "--root", str(root), "--out", str(out), "--json", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["found"], summary["written"]) == (2, 2)
    assert {path.name for path in (out / "edf").glob("*.h5")} == {"sub1-a_raw.h5", "sub2-b_raw.h5"}
    assert (
        f"{root / 'sub1' / 'moved_raw.fif'}: a broken symbolic link (to {tmp_path / 'gone_raw.fif'}); left out" in result.output
    )


def test_a_latin1_labels_csv_matches_utf8_file_names(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes("file,label\nsujet_é.edf,1\n".encode("latin-1"))
    assert read_labels_csv(path) == [{"file": "sujet_é.edf", "label": "1"}]


def test_listed_file_missing_and_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "broken.edf").write_bytes(b"not an edf")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nbroken.edf,0\nghost.edf,1\n")
    with pytest.raises(UsageError, match=r"labels\.csv: 1 listed file not found under the root: ghost\.edf"):
        EdfCorpus(EdfOptions(labels_csv=labels)).discover(tmp_path)
    corpus = EdfCorpus()
    (ref,) = corpus.discover(tmp_path)
    with pytest.raises(DataError, match=r"broken\.edf: not an EDF or BDF file \(its first bytes, b'not an e',"):
        corpus.read(ref)


def test_option_conflicts_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="keep one of them"):
        EdfCorpus(EdfOptions(labels_csv=tmp_path / "x.csv", event_labels={"T0": 0}))
    with pytest.raises(ValueError, match=r"needs a named group \(\?P<subject>"):
        EdfOptions(subject_pattern=r"S\d+")
    with pytest.raises(ValueError, match="tmin 1 must be below tmax 0"):
        EdfOptions(event_window=(1.0, 0.0))


def test_a_recording_is_stamped_by_the_files_mne_reads_it_from(tmp_path):
    # A header as an editor saves it: CRLF line ends, spaces around "=", files named in another case.
    header = "[Common Infos]\r\nDataFile = Run1.EEG\r\nMarkerFile=run1.vmrk\r\n\r\n[Binary Infos]\r\n"
    (tmp_path / "run1.vhdr").write_text(header, encoding="latin-1", newline="")
    (tmp_path / "Run1.EEG").write_bytes(b"\0" * 8)
    (tmp_path / "run1.set").write_bytes(b"")
    corpus = EdfCorpus()
    refs = {ref.path.name: ref for ref in corpus.discover(tmp_path)}
    # The marker file is not there: left out of the stamp, so a re-run that finds it there reads the recording again.
    assert [path.name for path in corpus.source_files(refs["run1.vhdr"])] == ["run1.vhdr", "Run1.EEG"]
    assert corpus.source_files(refs["run1.set"]) == [tmp_path / "run1.set"]
    (tmp_path / "run1.fdt").write_bytes(b"")
    assert corpus.source_files(refs["run1.set"]) == [tmp_path / "run1.set", tmp_path / "run1.fdt"]


def test_a_split_fif_recording_is_one_recording_stamped_by_all_its_files(tmp_path):
    """MNE writes a long recording as raw.fif, raw-1.fif, ...: raw-1.fif was listed as a recording of its own."""
    info = mne.create_info(["Cz", "Pz", "C3", "C4"], 200.0, "eeg")
    signal = np.random.default_rng(0).normal(scale=1e-5, size=(4, 70_000))
    # MNE keeps 1 MB free at the end of each file: 2 MB splits hold ~1 MB of samples each.
    mne.io.RawArray(signal, info, verbose="error").save(tmp_path / "rec_raw.fif", split_size="2MB", verbose="error")
    _write_fif(tmp_path / "whole_raw.fif", 1.0)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rec_raw-1.fif", "rec_raw.fif", "whole_raw.fif"]
    corpus = EdfCorpus()

    refs = corpus.discover(tmp_path)

    assert [ref.path.name for ref in refs] == ["rec_raw.fif", "whole_raw.fif"]
    assert corpus.source_files(refs[0]) == [tmp_path / "rec_raw.fif", tmp_path / "rec_raw-1.fif"]
    assert corpus.source_files(refs[1]) == [tmp_path / "whole_raw.fif"]
    assert corpus.unread_files(tmp_path, refs) == []


@pytest.mark.parametrize("struct", [False, True], ids=["fields-as-variables", "EEG-struct"])
def test_an_eeglab_set_is_stamped_by_the_data_file_it_names(tmp_path, struct):
    """The .fdt an EEGLAB set names need not share its name: the one beside it named as the set was stamped instead."""
    signal = np.random.default_rng(0).normal(scale=20.0, size=(2, 300))
    write_eeglab(tmp_path / "run1.set", signal, 100.0, ["C3", "C4"], data_file="session-7.fdt", struct=struct)
    write_eeglab(tmp_path / "whole.set", signal, 100.0, ["C3", "C4"], struct=struct)  # the samples in the .set
    (tmp_path / "whole.fdt").write_bytes(b"")  # a stray file MNE does not read for it
    corpus = EdfCorpus()
    refs = {ref.path.name: ref for ref in corpus.discover(tmp_path)}

    assert corpus.source_files(refs["run1.set"]) == [tmp_path / "run1.set", tmp_path / "session-7.fdt"]
    assert corpus.source_files(refs["whole.set"]) == [tmp_path / "whole.set"]
    assert np.allclose(corpus.read(refs["run1.set"]).data * 1e6, signal, atol=1e-4)  # MNE reads that file
    # Renamed away, MNE reads <set name>.fdt instead: that one is stamped, and the named one if it comes back.
    (tmp_path / "session-7.fdt").rename(tmp_path / "run1.fdt")
    assert corpus.source_files(refs["run1.set"]) == [tmp_path / "run1.set", tmp_path / "run1.fdt"]


def test_the_data_file_name_is_read_from_a_matlab_v73_set_without_its_samples(tmp_path):
    for layout in ("variables", "struct"):
        path = tmp_path / f"{layout}.set"
        with h5py.File(path, "w", userblock_size=512) as handle:
            group = handle if layout == "variables" else handle.create_group("EEG")
            group.attrs["MATLAB_class"] = np.bytes_("struct")
            codes = np.array([[ord(char)] for char in "data-7.fdt"], dtype=np.uint16)
            group.create_dataset("data", data=codes).attrs["MATLAB_class"] = np.bytes_("char")
        with open(path, "r+b") as raw:
            raw.write(b"MATLAB 7.3 MAT-file".ljust(116) + b"\x00" * 8 + b"\x00\x02" + b"IM")
        (tmp_path / "data-7.fdt").write_bytes(b"\0" * 8)
        assert data_files(path) == [tmp_path / "data-7.fdt"], layout


def test_a_bdf_file_named_edf_and_an_edf_file_named_bdf_are_read_by_their_header(tmp_path: Path) -> None:
    """MNE picks its reader by the name's ending: a BDF file named ``.edf`` (24-bit samples read as
    16-bit) was skipped as unreadable with "Encountered invalid byte in at least one annotations
    channel", the reverse likewise. The header says which format a file is, and it is read as that.
    """
    rng = np.random.default_rng(0)
    raw = mne.io.RawArray(rng.normal(0, 20e-6, (2, 3000)), mne.create_info(["Cz", "Pz"], 100.0, "eeg"), verbose="error")
    root = tmp_path / "raw"
    root.mkdir()
    for fmt, name in [("edf", "right.edf"), ("bdf", "bdf named.edf"), ("edf", "edf named.bdf")]:
        mne.export.export_raw(tmp_path / f"tmp.{fmt}", raw, fmt=fmt, verbose="error")
        (tmp_path / f"tmp.{fmt}").rename(root / name)
    out = tmp_path / "shards"
    args = ["preprocess", "edf", "--root", str(root), "--out", str(out), "--workers", "2", "--json", "--no-progress"]
    result = CliRunner().invoke(app, [*args, "--set", 'preprocess.channels=["Cz"]'])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["written"] == 3 and summary["skipped_by_reason"] == {}, result.stderr
    windows = {name: read_shard(out / "edf" / f"{name}.h5")["x"] for name in ("right", "bdf named", "edf named")}
    assert all(x.shape == (6, 1, 500) for x in windows.values())
    np.testing.assert_array_equal(windows["edf named"], windows["right"])
    np.testing.assert_allclose(windows["bdf named"], windows["right"], atol=0.01)  # 24-bit against 16-bit samples
    described = CliRunner().invoke(app, ["info", str(root / "bdf named.edf"), "--json"])
    assert described.exit_code == 0, described.output
    assert json.loads(described.stdout)["format"] == "bdf" and json.loads(described.stdout)["n_samples"] == 3000


def test_a_broken_fif_file_has_no_later_parts_but_a_bug_of_ours_is_not_taken_for_one(tmp_path, monkeypatch):
    """Every exception of the header read was taken for a broken file: a bug of ours left every chain unread."""
    from biofound_cli.corpora.fif_splits import split_parts

    (tmp_path / "broken_raw.fif").write_bytes(b"not a FIF file")
    assert split_parts(tmp_path / "broken_raw.fif") == []  # reading it later says why

    def bug(*args: object, **kwargs: object) -> None:
        raise TypeError("an argument of ours is wrong")

    _write_fif(tmp_path / "whole_raw.fif", 1.0)
    monkeypatch.setattr(mne.io, "read_raw_fif", bug)
    with pytest.raises(TypeError, match="an argument of ours is wrong"):
        split_parts(tmp_path / "whole_raw.fif")
