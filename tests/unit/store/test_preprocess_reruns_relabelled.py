"""A re-run processes again the recordings whose labels were corrected outside their own files, and only those."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import mne
import numpy as np
import pytest
from fixtures.edf_files import preprocess, write_eeg
from fixtures.shards import read_shard

from biofound_cli.corpora.edf import EdfCorpus, EdfOptions


def _rerun(root: Path, out: Path, recipe: Path) -> tuple[dict, str]:
    """The summary and the log of ``preprocess edf`` with two workers, as a user re-runs it."""
    result = preprocess(root, out, "--recipe", str(recipe), "--workers", "2")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def _labels(path: Path, rows: dict[str, tuple[str, str]]) -> None:
    path.write_text("file,label,split\n" + "".join(f"{name},{label},{split}\n" for name, (label, split) in rows.items()))


def test_a_corrected_labels_csv_row_rewrites_that_recording_alone(tmp_path):
    raw, out, labels, recipe = tmp_path / "raw", tmp_path / "out", tmp_path / "labels.csv", tmp_path / "edf.toml"
    for name in ("a", "b", "c"):
        write_eeg(raw / f"{name}.edf", seconds=20.0)
    rows = {"a.edf": ("rest", "train"), "b.edf": ("task", "train"), "c.edf": ("rest", "test")}
    _labels(labels, rows)
    recipe.write_text(f'[preprocess]\ncorpus = "edf"\n[preprocess.options]\nlabels_csv = "{labels.as_posix()}"\n')
    assert _rerun(raw, out, recipe)[0]["written"] == 3
    # A shard written before shards kept their label is taken as current.
    with h5py.File(out / "edf" / "a.h5", "a") as shard:
        del shard.attrs["label"]
    _labels(labels, {**rows, "c.edf": ("task", "test")})  # the label corrected: the class names stay rest, task
    summary, log = _rerun(raw, out, recipe)
    assert (summary["written"], summary["already_done"]) == (1, 2)
    assert "c.edf is now given label 'task' where its shard" in log and "has label 'rest'; it is processed again" in log
    shard = read_shard(out / "edf" / "c.h5")
    assert shard["attrs"]["label"] == 1 and set(shard["y"]) == {1}
    _labels(labels, {**rows, "c.edf": ("task", "test"), "b.edf": ("task", "val")})  # another row's split
    summary, log = _rerun(raw, out, recipe)
    assert (summary["written"], summary["already_done"]) == (1, 2)
    assert "b.edf is now given split 'val' where its shard" in log
    assert read_shard(out / "edf" / "b.h5")["attrs"]["split"] == "val"
    assert _rerun(raw, out, recipe)[0]["already_done"] == 3
    # A new class renumbers the others (sorted names): every shard's labels and names are stale.
    _labels(labels, {**rows, "c.edf": ("sleep", "test"), "b.edf": ("task", "val")})
    summary, log = _rerun(raw, out, recipe)
    assert (summary["written"], summary["already_done"]) == (3, 0)
    assert read_shard(out / "edf" / "b.h5")["attrs"]["label_names"] == ["rest", "sleep", "task"]
    assert set(read_shard(out / "edf" / "b.h5")["y"]) == {2}


def _bids(root: Path, tmp_path: Path) -> list[Path]:
    """Two subjects' 30 s EEG, each with a 10 s ``task`` event at 5 s; the recordings' folders."""
    mne_bids = pytest.importorskip("mne_bids")
    source = tmp_path / "source.edf"
    signal = np.random.default_rng(0).normal(scale=20e-6, size=(2, 3000))
    recording = mne.io.RawArray(signal, mne.create_info(["C3", "C4"], 100.0, "eeg"), verbose="error")
    recording.set_annotations(mne.Annotations(onset=[5.0], duration=[10.0], description=["task"]))
    mne.export.export_raw(source, recording, fmt="edf", verbose="error")
    folders = []
    for subject in ("01", "02"):
        bids_path = mne_bids.BIDSPath(subject=subject, task="rest", datatype="eeg", root=root)
        mne_bids.write_raw_bids(mne.io.read_raw_edf(source, verbose="error"), bids_path, verbose=False, overwrite=True)
        folders.append(bids_path.directory)
    return folders


def test_a_corrected_bids_events_or_channels_file_rewrites_that_recording_alone(tmp_path):
    root, out, recipe = tmp_path / "bids", tmp_path / "out", tmp_path / "edf.toml"
    first, _ = _bids(root, tmp_path)
    recipe.write_text('[preprocess]\ncorpus = "edf"\n[preprocess.options]\nevent_labels = { rest = 0, task = 1 }\n')
    assert _rerun(root, out, recipe)[0]["written"] == 2
    shard = out / "edf" / "sub-01_task-rest_eeg.h5"
    assert set(read_shard(shard)["y"]) == {1}
    events = first / "sub-01_task-rest_events.tsv"
    events.write_text(events.read_text().replace("\ttask\t", "\trest\t"))  # the event's class corrected
    summary, log = _rerun(root, out, recipe)
    assert (summary["written"], summary["already_done"]) == (1, 1)
    assert "sub-01_task-rest_eeg.edf or a file it is read with changed since" in log
    assert set(read_shard(shard)["y"]) == {0}
    channels = first / "sub-01_task-rest_channels.tsv"
    channels.write_text(channels.read_text().replace("\tgood", "\tbad", 1))  # C3 marked bad
    summary, _ = _rerun(root, out, recipe)
    assert (summary["written"], summary["already_done"]) == (1, 1)
    assert _rerun(root, out, recipe)[0]["already_done"] == 2


def test_bids_events_are_stamped_only_when_they_give_the_labels(tmp_path):
    # Predict stamps what preprocess does: events decide the windows only through event_labels.
    _bids(tmp_path / "bids", tmp_path)
    names = {
        labelled: [path.name for path in corpus.source_files(corpus.discover(tmp_path / "bids")[0])]
        for labelled, corpus in ((False, EdfCorpus()), (True, EdfCorpus(EdfOptions(event_labels={"task": 0}))))
    }
    sidecars = ["sub-01_task-rest_eeg.edf", "sub-01_task-rest_eeg.json", "sub-01_task-rest_channels.tsv"]
    assert names == {False: sidecars, True: [*sidecars, "sub-01_task-rest_events.tsv", "sub-01_task-rest_events.json"]}


def test_a_bids_recording_the_labels_csv_leaves_out_takes_the_row_the_warning_asks_for(tmp_path):
    root, out, labels, recipe = tmp_path / "bids", tmp_path / "out", tmp_path / "labels.csv", tmp_path / "edf.toml"
    _bids(root, tmp_path)
    _labels(labels, {"sub-01_task-rest_eeg": ("rest", "train")})  # by its BIDS base name
    recipe.write_text(f'[preprocess]\ncorpus = "edf"\n[preprocess.options]\nlabels_csv = "{labels.as_posix()}"\n')
    summary, log = _rerun(root, out, recipe)
    unlisted = "sub-02/eeg/sub-02_task-rest_eeg.edf"
    assert summary["written"] == 1 and f"was left out ({unlisted}); add a row" in " ".join(log.split()), log
    # The row the warning asks for: the recording's path below the root, as for files outside BIDS.
    _labels(labels, {"sub-01_task-rest_eeg": ("rest", "train"), unlisted: ("rest", "test")})  # no new class: sub-01 stays done
    summary, log = _rerun(root, out, recipe)
    assert (summary["written"], summary["already_done"], summary["excluded"]) == (1, 1, 0), log
    assert read_shard(out / "edf" / "sub-02_task-rest_eeg.h5")["attrs"]["split"] == "test"
