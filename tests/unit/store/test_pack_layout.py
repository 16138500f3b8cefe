"""``pack.layout = "virtual"``: split files that map ``x`` onto the shards give the same windows as copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fixtures.shards import DEFAULT_CHANNELS, write_corpus, write_shard
from torch.utils.data import DataLoader
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import DataError
from biofound_cli.recipes.pack import PackSection
from biofound_cli.store.dataset import PackedDataset, collate_windows
from biofound_cli.store.packer import pack_shards
from biofound_cli.store.splits import SPLITS

runner = CliRunner()
# Attributes that say how the file was written rather than what it holds.
LAYOUT_ONLY_ATTRS = {"layout", "nonfinite_values"}


def mixed_corpus(root: Path) -> Path:
    """Whole-recording shards, one with per-window official splits (non-contiguous runs) and one
    with its channels in another order: every way the packer selects and arranges windows."""
    write_corpus(root, n_subjects=8, windows_per_subject=5)
    write_shard(
        root / "fake" / "official.h5",
        subject="subj_official",
        n_windows=7,
        seed=50,
        window_split=["train", "test", "test", "train", "", "test", "train"],
    )
    write_shard(
        root / "fake" / "reordered.h5", subject="subj_reordered", n_windows=4, seed=51, ch_names=tuple(reversed(DEFAULT_CHANNELS))
    )
    return root


def pack_both(tmp_path: Path) -> tuple[Path, Path]:
    shards = mixed_corpus(tmp_path / "shards")
    pack_shards(shards, tmp_path / "copy", PackSection(block_windows=3))
    pack_shards(shards, tmp_path / "virtual", PackSection(block_windows=3, layout="virtual"))
    return tmp_path / "copy", tmp_path / "virtual"


def test_virtual_layout_gives_the_copy_s_windows_datasets_and_attributes(tmp_path):
    copy, virtual = pack_both(tmp_path)
    for name in SPLITS:
        assert (copy / f"{name}.h5").exists() == (virtual / f"{name}.h5").exists()
        if not (copy / f"{name}.h5").exists():
            continue
        with h5py.File(copy / f"{name}.h5") as a, h5py.File(virtual / f"{name}.h5") as b:
            assert b["x"].is_virtual and not a["x"].is_virtual
            assert set(b) - set(a) == {"shard_paths", "shard_sizes"}
            for key in a:
                assert a[key].dtype == b[key].dtype, key
                np.testing.assert_array_equal(a[key][()], b[key][()], err_msg=key)
            assert {k for k in a.attrs if k not in LAYOUT_ONLY_ATTRS} == {k for k in b.attrs if k not in LAYOUT_ONLY_ATTRS}
            for key in a.attrs:
                if key not in LAYOUT_ONLY_ATTRS:
                    np.testing.assert_array_equal(np.asarray(a.attrs[key]), np.asarray(b.attrs[key]), err_msg=key)
            assert (a.attrs["layout"], b.attrs["layout"]) == ("copy", "virtual")
            assert "nonfinite_values" not in b.attrs  # the virtual layout reads no window, so counts none
        # The windows as training reads them: single items and batches through worker processes.
        left, right = PackedDataset(copy / f"{name}.h5"), PackedDataset(virtual / f"{name}.h5")
        assert left.info.n_shards == 0 and right.info.n_shards > 0
        assert left.info.fingerprint == right.info.fingerprint != ""  # a resume goes on over either
        for index in range(len(left)):
            torch.testing.assert_close(left[index], right[index], rtol=0, atol=0)
        batches = [
            list(DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate_windows)) for dataset in (left, right)
        ]
        for one, other in zip(*batches, strict=True):
            torch.testing.assert_close(one, other, rtol=0, atol=0)


def test_the_reordered_shard_is_mapped_in_the_packed_channel_order(tmp_path):
    _, virtual = pack_both(tmp_path)
    with h5py.File(tmp_path / "shards" / "fake" / "reordered.h5") as shard:
        stored = shard["x"][()]
    for name in SPLITS:
        path = virtual / f"{name}.h5"
        if not path.exists():
            continue
        with h5py.File(path) as packed:
            recordings = [r.decode() for r in packed["recordings"][()]]
            if "fake/reordered" not in recordings:
                continue
            rows = np.flatnonzero(packed["recording_index"][()] == recordings.index("fake/reordered"))
            np.testing.assert_array_equal(packed["x"][rows[0] : rows[-1] + 1], stored[:, ::-1])
            return
    pytest.fail("the reordered shard was packed nowhere")


def test_a_folder_moved_whole_still_reads(tmp_path):
    _, virtual = pack_both(tmp_path)
    expected = PackedDataset(virtual / "train.h5")[0]["x"]
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "shards", moved / "shards")
    shutil.move(virtual, moved / "virtual")
    torch.testing.assert_close(PackedDataset(moved / "virtual" / "train.h5")[0]["x"], expected, rtol=0, atol=0)


def test_a_missing_shard_is_named_by_info_and_the_dataset(tmp_path):
    _, virtual = pack_both(tmp_path)
    with h5py.File(virtual / "train.h5") as packed:
        gone = packed["shard_paths"][0].decode()
    (virtual / gone).unlink()
    with pytest.raises(DataError, match=f"its shard {gone} is missing"):
        PackedDataset(virtual / "train.h5")
    result = runner.invoke(app, ["info", str(virtual / "train.h5")])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and gone in lines[0] and 'pack.layout = "copy"' in lines[0], result.output


def test_a_shard_rewritten_after_packing_is_refused_by_info_and_the_dataset(tmp_path):
    # preprocess --force with another stride rewrote a shard with more windows of the same shape:
    # the virtual file read the new windows under the labels packed beside it, misaligned without a word.
    _, virtual = pack_both(tmp_path)
    with h5py.File(virtual / "train.h5") as packed:
        rewritten = packed["shard_paths"][0].decode()
        subject = packed["subjects"][0].decode()
    write_shard(virtual / rewritten, subject=subject, n_windows=9, label=1, seed=99)
    message = (
        rf"its shard {rewritten} was rewritten after packing \(\d+ bytes then, \d+ now, as after preprocess --force\), "
        "so its windows may no longer match the labels packed beside them; run pack again"
    )
    with pytest.raises(DataError, match=message):
        PackedDataset(virtual / "train.h5")
    result = runner.invoke(app, ["info", str(virtual / "train.h5")])
    assert result.exit_code == 1 and "was rewritten after packing" in result.output, result.output
    pack_shards(tmp_path / "shards", virtual, PackSection(layout="virtual"))
    assert len(PackedDataset(virtual / "train.h5")) > 0


def test_info_names_the_layout(tmp_path):
    copy, virtual = pack_both(tmp_path)
    for folder, layout in ((copy, "copy"), (virtual, "virtual")):
        result = runner.invoke(app, ["info", str(folder / "train.h5"), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["layout"] == layout


def test_virtual_with_float16_is_refused_at_the_recipe_check(tmp_path):
    shards = mixed_corpus(tmp_path / "shards")
    result = runner.invoke(
        app,
        ["pack", str(shards), "--out", str(tmp_path / "packed"), "--set", "pack.layout=virtual", "--set", "pack.dtype=float16"],
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "pack.layout" in lines[0] and "float16" in lines[0], result.output
    assert not (tmp_path / "packed").exists()


def test_the_cli_packs_virtually_and_says_so(tmp_path):
    shards = mixed_corpus(tmp_path / "shards")
    result = runner.invoke(
        app, ["pack", str(shards), "--out", str(tmp_path / "packed"), "--set", "pack.layout=virtual", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["layout"] == "virtual" and summary["nonfinite_values"] is None


def test_a_sigterm_once_the_last_split_moved_in_is_no_stop(tmp_path, monkeypatch):
    """Stopped once every split file was in, pack exited 143 saying the folder held "only the split files
    finished before the stop: re-run the same command before using it" of a folder holding them all."""
    import os
    import signal

    import biofound_cli.store.packer as packer

    shards = mixed_corpus(tmp_path / "shards")
    lacks = packer._classes_train_lacks

    def sigterm_then_check(*args):
        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs at the next bytecode, the last split in
        return lacks(*args)

    monkeypatch.setattr(packer, "_classes_train_lacks", sigterm_then_check)
    result = runner.invoke(app, ["pack", str(shards), "--out", str(tmp_path / "packed"), "--json"])
    assert result.exit_code == 0, result.output
    assert "SIGTERM came as the work finished: it is complete" in result.output
    summary = json.loads(result.stdout)
    assert all(len(PackedDataset(Path(path))) > 0 for path in summary["files"].values())
