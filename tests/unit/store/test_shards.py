from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
from fixtures.shards import read_shard, write_whole_shard

from biofound_cli.atomic import parse_temporary_name, temporary_name
from biofound_cli.store.shards import ShardMeta, ShardWriter, remove_partial_shards, shard_path


def _meta(**changes):
    fields = dict(
        corpus="tuab", subject="s1", session="s001", source_path="/raw/a.edf", sfreq=256.0,
        channel_names=["FP1-F7", "F7-T3"], label_names=["normal", "abnormal"], task="bc",
        window_seconds=1.0, stride_seconds=1.0, preprocess_config={"l_freq": 0.1},
    )  # fmt: skip
    fields.update(changes)
    return ShardMeta(**fields)


def test_write_and_read_back(tmp_path):
    path = shard_path(tmp_path, "tuab", "a")
    x = np.arange(2 * 2 * 256, dtype=np.float32).reshape(2, 2, 256)
    write_whole_shard(path, x, np.array([0, 1]), _meta(split="test"), split=["train", "val"])
    assert path == tmp_path / "tuab" / "a.h5"
    shard = read_shard(path)
    np.testing.assert_array_equal(shard["x"], x)
    assert shard["y"].dtype == np.int64 and shard["y"].tolist() == [0, 1]
    assert shard["split"] == ["train", "val"]
    attrs = shard["attrs"]
    assert attrs["channel_names"] == ["FP1-F7", "F7-T3"] and attrs["split"] == "test"
    assert json.loads(attrs["preprocess_config"]) == {"l_freq": 0.1}
    assert attrs["biofound_version"]
    with h5py.File(path) as handle:
        assert handle["x"].chunks == (2, 1, 256)  # one channel of up to 64 windows per chunk
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_every_shard_stores_where_its_windows_start(tmp_path):
    # Windows 1 and 3 were dropped (an unlabelled span): the starts say where the rest come from.
    path = tmp_path / "tuab" / "gaps.h5"
    x = np.zeros((3, 2, 4), dtype=np.float32)
    write_whole_shard(path, x, np.array([0, 1, 0]), _meta(), window_start_seconds=[0.0, 10.0, 20.0])
    with h5py.File(path) as handle:
        starts = handle["window_start_seconds"]
        assert starts.dtype == np.float64 and starts.shape == (3,)
        assert starts[()].tolist() == [0.0, 10.0, 20.0]
    # Windows held in memory without start times tile the recording every stride_seconds.
    write_whole_shard(path, x, None, _meta(stride_seconds=2.5))
    assert read_shard(path)["window_start_seconds"].tolist() == [0.0, 2.5, 5.0]


def test_info_shows_where_a_shards_windows_start(tmp_path):
    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    path = tmp_path / "tuab" / "gaps.h5"
    write_whole_shard(path, np.zeros((3, 2, 4), dtype=np.float32), None, _meta(), window_start_seconds=[2.5, 10.0, 20.0])
    result = CliRunner().invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["window_start_seconds"] == "3 windows, first at 2.5 s, last at 20 s"


def test_start_times_must_match_the_windows(tmp_path):
    path = tmp_path / "tuab" / "bad.h5"
    with pytest.raises(ValueError, match="2 window start times for 3 windows"):
        write_whole_shard(path, np.zeros((3, 2, 4), dtype=np.float32), None, _meta(), window_start_seconds=[0.0, 1.0])
    with pytest.raises(ValueError, match="no window start times"):
        with ShardWriter(path) as writer:
            writer.open(1, 2, 4, dtype=np.float32)
            writer.write_channel(0, np.zeros((1, 4), dtype=np.float32))
            writer.commit(None, _meta())
    assert list(path.parent.iterdir()) == []


def test_unlabelled_shard_has_no_y_and_no_split_attr(tmp_path):
    path = tmp_path / "b.h5"
    write_whole_shard(path, np.zeros((1, 2, 4), dtype=np.float32), None, _meta(label_names=[]))
    shard = read_shard(path)
    assert shard["y"] is None and shard["split"] is None and "split" not in shard["attrs"]


def test_a_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "c.h5"
    with pytest.raises(TypeError):
        write_whole_shard(path, np.zeros((1, 2, 4), dtype=np.float32), None, _meta(extra={"bad": object()}))
    assert list(tmp_path.iterdir()) == []


def test_remove_partial_shards_removes_the_temporaries_of_the_recordings_owned_whoever_wrote_them(tmp_path):
    owned = [
        temporary_name(tmp_path / "a.h5"),  # this process's, alive: the caller is not writing, so it is a leftover
        tmp_path / ".a.h5.node99.4242.0123abcd.tmp",  # another node's (a requeued slice ran there before)
        tmp_path / f"b.h5.partial-{os.getpid()}",  # the name older biofound wrote
    ]
    others = [tmp_path / ".c.h5.node99.4242.0123abcd.tmp", tmp_path / "c.h5.partial-7", tmp_path / "b.h5"]
    for path in owned + others:
        path.write_bytes(b"half")
    assert remove_partial_shards(tmp_path, ["a", "b"]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in others)
    assert remove_partial_shards(tmp_path) == 2  # unsliced: every temporary
    assert [p.name for p in tmp_path.iterdir()] == ["b.h5"]
    assert remove_partial_shards(tmp_path / "missing") == 0


def test_an_aborted_shard_leaves_nothing_and_its_temporary_is_no_h5(tmp_path):
    path = tmp_path / "d.h5"
    with ShardWriter(path) as writer:
        writer.open(2, 2, 4, np.float32, window_start_seconds=[0.0, 1.0])
        assert [p.name for p in tmp_path.glob("*.h5")] == []
        (temporary,) = tmp_path.iterdir()
        assert parse_temporary_name(temporary.name, path.name) is not None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_shard_written_channel_by_channel_reads_back_whole(tmp_path, dtype):
    # 130 windows: three chunks of 44, the last one past the end (stored whole, read back cut).
    path = tmp_path / "tuab" / "c.h5"
    x = np.random.default_rng(0).normal(size=(130, 3, 16)).astype(dtype)
    starts = np.arange(130) * 0.5
    with ShardWriter(path) as writer:
        writer.open(*x.shape, dtype=dtype, window_start_seconds=starts)
        for index in (2, 0, 1):
            writer.write_channel(index, x[:, index, :])
        assert not path.exists()  # not before commit
        writer.commit(np.zeros(130, dtype=np.int64), _meta())
    shard = read_shard(path)
    np.testing.assert_array_equal(shard["x"], x)
    np.testing.assert_array_equal(shard["window_start_seconds"], starts)
    with h5py.File(path) as handle:
        assert handle["x"].chunks == (44, 1, 16) and handle["x"].dtype == dtype
    assert list(path.parent.iterdir()) == [path]


def test_leaving_the_writer_without_commit_leaves_nothing(tmp_path):
    path = tmp_path / "tuab" / "d.h5"
    with pytest.raises(RuntimeError):
        with ShardWriter(path) as writer:
            writer.open(4, 2, 8, dtype=np.float32)
            writer.write_channel(0, np.ones((4, 8), dtype=np.float32))
            raise RuntimeError("a flat recording found after the first channel")
    assert not path.exists() and list(path.parent.iterdir()) == []
