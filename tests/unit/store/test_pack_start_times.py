"""Packed windows can be traced back to their recording and start time (issue #16 item 7).

Shards carry ``window_start_seconds`` (seconds from the start of the recording, one per window);
pack copies it row for row beside ``recording_index``/``recordings``. Shards written before the
dataset existed still pack: their windows get NaN, with one info line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
from fixtures.shards import DEFAULT_CHANNELS, write_shard, write_whole_shard
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.recipes.pack import PackSection
from biofound_cli.store import shards as shard_store
from biofound_cli.store.describe import describe_h5
from biofound_cli.store.packer import pack_shards

N_TIMES = 16


def _shard_with_starts(path: Path, subject: str, starts: np.ndarray, window_split: list[str] | None = None) -> None:
    """A shard written through the shard writer, with its per-window start times."""
    n = len(starts)
    x = np.random.default_rng(n).standard_normal((n, len(DEFAULT_CHANNELS), N_TIMES)).astype(np.float32)
    meta = shard_store.ShardMeta(
        corpus="fake",
        subject=subject,
        session="s001",
        source_path=f"/raw/{path.stem}.edf",
        sfreq=256.0,
        channel_names=list(DEFAULT_CHANNELS),
        label_names=["normal", "abnormal"],
        task="bc",
        window_seconds=N_TIMES / 256,
        stride_seconds=N_TIMES / 256,
        preprocess_config={"l_freq": 0.1},
    )
    y = np.arange(n) % 2
    write_whole_shard(path, x, y, meta, split=window_split, window_start_seconds=starts)


def test_start_times_follow_every_window_into_its_split(tmp_path):
    shards = tmp_path / "shards"
    # Uneven starts, as after windows were dropped (unlabelled spans, events).
    starts_a = np.array([0.0, 0.0625, 0.5, 0.5625, 3.0, 7.25])
    _shard_with_starts(shards / "fake" / "a.h5", "a", starts_a, window_split=["train", "test", "train", "val", "test", "train"])
    starts_b = np.arange(5) * 0.0625 + 100.0
    _shard_with_starts(shards / "fake" / "b.h5", "b", starts_b)
    result = pack_shards(shards, tmp_path / "packed", PackSection())
    assert result.windows_without_start == 0
    expected = {"fake/a": starts_a, "fake/b": starts_b}
    seen = 0
    for path in result.files.values():
        with h5py.File(path) as handle:
            starts = handle["window_start_seconds"]
            assert starts.dtype == np.float64 and starts.shape == (handle["x"].shape[0],)
            recordings = [r.decode() for r in handle["recordings"][()]]
            for row in range(starts.shape[0]):
                recording = recordings[handle["recording_index"][row]]
                window = handle["window_index"][row]
                assert starts[row] == expected[recording][window]
                with h5py.File(shards / f"{recording}.h5") as shard:
                    np.testing.assert_array_equal(handle["x"][row], shard["x"][window])
                seen += 1
    assert seen == 11
    assert describe_h5(result.files["train"])["window_start_seconds"].startswith("all ")


def test_shards_without_start_times_pack_with_nan_and_one_info_line(tmp_path, caplog):
    shards = tmp_path / "shards"
    _shard_with_starts(shards / "fake" / "new.h5", "new", np.arange(4) * 2.0)
    for index in range(2):
        write_shard(shards / "fake" / f"old{index}.h5", subject="old", n_windows=3, seed=index)
    with caplog.at_level(logging.INFO, logger="biofound_cli.store.packer"):
        result = pack_shards(shards, tmp_path / "packed", PackSection(train=1.0, val=0.0, test=0.0))
    notes = [r.getMessage() for r in caplog.records if "window_start_seconds existed" in r.getMessage()]
    assert len(notes) == 1 and notes[0].startswith("2 shards were")
    assert result.windows_without_start == 6 and result.summary()["windows_without_start_time"] == 6
    with h5py.File(result.files["train"]) as handle:
        recordings = [r.decode() for r in handle["recordings"][()]]
        is_new = np.array([recordings[i] == "fake/new" for i in handle["recording_index"][()]])
        starts = handle["window_start_seconds"][()]
    np.testing.assert_array_equal(starts[is_new], [0.0, 2.0, 4.0, 6.0])
    assert np.isnan(starts[~is_new]).all() and (~is_new).sum() == 6
    assert describe_h5(result.files["train"])["window_start_seconds"] == (
        "unknown (NaN) for 6 of 10 windows: shards from an older preprocess"
    )


def test_info_shows_the_start_times_of_a_packed_file(tmp_path):
    _shard_with_starts(tmp_path / "shards" / "fake" / "a.h5", "a", np.arange(3) * 4.0)
    pack_shards(tmp_path / "shards", tmp_path / "packed", PackSection(train=1.0, val=0.0, test=0.0))
    result = CliRunner().invoke(app, ["info", str(tmp_path / "packed" / "train.h5")])
    assert result.exit_code == 0, result.output
    assert "window_start_seconds" in result.stdout and "all 3 windows" in result.stdout
