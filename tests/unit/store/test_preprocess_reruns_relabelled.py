"""A re-run processes again the recordings whose labels were corrected outside their own files, and only those."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
from fixtures.shards import read_shard
from unit.store.test_preprocess_runner_checks import preprocess, write_eeg


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
