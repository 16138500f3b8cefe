"""Three array-job slices run separately give exactly the shards and packed files of one unsliced run."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures.shards import not_shards, read_shard
from fixtures.tuh import build_tuab, write_tuh_edf
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory) -> Path:
    edf = build_tuab(tmp_path_factory.mktemp("tuab"))
    # Unequal lengths, so balancing by size is not the same as counting files.
    for index, seconds in enumerate((40.0, 30.0, 25.0)):
        label = "normal" if index % 2 else "abnormal"
        write_tuh_edf(
            edf / "train" / label / "01_tcp_ar" / f"bbbbbbb{index}_s001_t000.edf", seconds=seconds, offset_seconds=3.0 * index
        )
    return edf


def _preprocess(root: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> dict:
    result = runner.invoke(
        app, ["preprocess", "tuab", "--root", str(root), "--out", str(out), "--json", "--no-progress", *extra], env=env
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _pack(shards: Path, out: Path) -> dict:
    result = runner.invoke(app, ["pack", str(shards), "--out", str(out), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _h5_contents(path: Path) -> dict:
    with h5py.File(path, "r") as handle:
        datasets = {name: handle[name][()] for name in handle}
        attrs = {key: np.asarray(value).tolist() for key, value in handle.attrs.items()}
    return {"datasets": datasets, "attrs": attrs}


@pytest.fixture(scope="module")
def runs(raw_root, tmp_path_factory):
    whole = tmp_path_factory.mktemp("whole")
    sliced = tmp_path_factory.mktemp("sliced")
    whole_summary = _preprocess(raw_root, whole / "shards")
    summaries = [_preprocess(raw_root, sliced / "shards", "--shard", f"{index}/3") for index in (1, 2)]
    # The third slice as a SLURM array task (--array=0-2, task 2) would see it.
    environment = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"}
    summaries.append(_preprocess(raw_root, sliced / "shards", "--shard", "auto", env=environment))
    return whole, sliced, whole_summary, summaries


def test_slices_partition_the_corpus(runs):
    whole, sliced, whole_summary, summaries = runs
    assert [summary["slice"] for summary in summaries] == ["1/3", "2/3", "3/3"]
    assert all(summary["found"] >= 1 for summary in summaries)
    assert sum(summary["found"] for summary in summaries) == whole_summary["found"] == 8
    assert sum(summary["windows_written"] for summary in summaries) == whole_summary["windows_written"]
    reports = sorted(path.name for path in (sliced / "shards").glob("preprocess_report*.json"))
    assert reports == [f"preprocess_report.tuab.slice-{index}-of-3.json" for index in (1, 2, 3)]
    ids = [entry["recording_id"] for name in reports for entry in json.loads((sliced / "shards" / name).read_text())["files"]]
    assert sorted(ids) == sorted(path.stem for path in (whole / "shards" / "tuab").glob("*.h5"))


def test_sliced_shards_are_identical_to_the_unsliced_ones(runs):
    whole, sliced, _, _ = runs
    names = sorted(path.name for path in (whole / "shards" / "tuab").glob("*.h5"))
    assert names == sorted(path.name for path in (sliced / "shards" / "tuab").glob("*.h5"))
    for name in names:
        left, right = read_shard(whole / "shards" / "tuab" / name), read_shard(sliced / "shards" / "tuab" / name)
        np.testing.assert_array_equal(left["x"], right["x"])
        np.testing.assert_array_equal(left["y"], right["y"])
        assert left["attrs"] == right["attrs"]


def test_packing_the_slices_gives_the_unsliced_packed_files(runs):
    whole, sliced, _, _ = runs
    whole_pack = _pack(whole / "shards", whole / "packed")
    sliced_pack = _pack(sliced / "shards", sliced / "packed")
    assert json.loads((whole / "packed" / "splits.json").read_text()) == json.loads(
        (sliced / "packed" / "splits.json").read_text()
    )
    for split in ("train", "val", "test"):
        left, right = _h5_contents(whole / "packed" / f"{split}.h5"), _h5_contents(sliced / "packed" / f"{split}.h5")
        assert sorted(left["datasets"]) == sorted(right["datasets"])
        for name in left["datasets"]:
            np.testing.assert_array_equal(left["datasets"][name], right["datasets"][name])
        assert left["attrs"] == right["attrs"]
    # pack sums the three slice reports into the counts of the one unsliced report.
    for key in ("found", "written", "windows"):
        assert sliced_pack["preprocess"][key] == whole_pack["preprocess"][key]
    assert sliced_pack["preprocess"]["reports"] == 3 and whole_pack["preprocess"]["reports"] == 1


def test_a_slice_removes_the_leftovers_of_its_own_recordings_only(raw_root, tmp_path):
    """Two slices sharing one folder, as nodes of a cluster do, after runs killed on other nodes."""
    out = tmp_path / "shards"
    owners = {}
    for index in (1, 2):
        summary = _preprocess(raw_root, out, "--shard", f"{index}/2", "--workers", "2")
        report = json.loads((out / f"preprocess_report.tuab.slice-{index}-of-2.json").read_text())
        owners[index] = sorted(entry["recording_id"] for entry in report["files"])
        assert summary["written"] == len(owners[index]) >= 2
    corpus = out / "tuab"
    mine, theirs = owners[1][0], owners[2][0]
    # Killed runs: no shard, a temporary of another node's process (and one of the name older biofound gave).
    for recording_id in (mine, theirs):
        (corpus / f"{recording_id}.h5").unlink()
        (corpus / f".{recording_id}.h5.node99.4242.0123abcd.tmp").write_bytes(b"half")
    (corpus / f"{mine}.h5.partial-4242").write_bytes(b"half")

    summary = _preprocess(raw_root, out, "--shard", "1/2", "--workers", "2")
    assert summary["written"] == 1
    assert not_shards(corpus) == [f".{theirs}.h5.node99.4242.0123abcd.tmp"]
    summary = _preprocess(raw_root, out, "--shard", "2/2", "--workers", "2")
    assert summary["written"] == 1
    assert not_shards(corpus) == []
    assert sorted(path.stem for path in corpus.glob("*.h5")) == sorted(owners[1] + owners[2])
