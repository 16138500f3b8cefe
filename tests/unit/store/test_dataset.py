from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fixtures.shards import write_corpus, write_shard
from torch.utils.data import DataLoader

from biofound_cli.recipes.pack import PackSection
from biofound_cli.store.dataset import PackedDataset, PackedInfo, WindowBatch, collate_windows
from biofound_cli.store.packer import pack_shards
from biofound_cli.store.sampler import ChunkedBatchSampler

ALL_TRAIN = {"train": 1.0, "val": 0.0, "test": 0.0}


@pytest.fixture
def packed(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=6, windows_per_subject=5)
    pack_shards(tmp_path / "shards", tmp_path / "packed", PackSection(**ALL_TRAIN))
    return tmp_path / "packed" / "train.h5"


def test_items_match_the_file(packed):
    dataset = PackedDataset(packed)
    with h5py.File(packed) as handle:
        x, y = handle["x"][()], handle["y"][()]
    assert len(dataset) == 30
    item = dataset[7]
    assert item["x"].dtype == torch.float32 and item["x"].shape == (4, 16)
    assert item["y"].dtype == torch.int64 and item["y"].shape == ()
    np.testing.assert_array_equal(item["x"].numpy(), x[7])
    assert int(item["y"]) == y[7]
    assert torch.equal(dataset[-1]["x"], torch.from_numpy(x[-1]))
    with pytest.raises(IndexError):
        dataset[30]


def test_info(packed):
    info = PackedDataset(packed).info
    assert info.ch_names == ("FP1-F7", "F7-T3", "T3-T5", "T5-O1")
    assert (info.n_windows, info.n_channels, info.n_times) == (30, 4, 16)
    assert info.sfreq == 256.0 and info.task == "bc" and info.num_classes == 2
    assert info.label_names == ("normal", "abnormal")
    with pytest.raises(AttributeError):
        info.sfreq = 1.0  # frozen


def test_getitems_reads_the_file_in_the_order_asked(packed):
    dataset = PackedDataset(packed)
    with h5py.File(packed) as handle:
        x, y = handle["x"][()], handle["y"][()]
    indices = [12, 3, 4, 5, 29, 13, 0, 4]  # unsorted, with runs and a repeat
    batch = dataset.__getitems__(indices)
    assert len(batch) == len(indices)
    for index, item in zip(indices, batch, strict=True):
        np.testing.assert_array_equal(item["x"].numpy(), x[index])
        assert item["y"].dtype == torch.int64 and int(item["y"]) == y[index]
    assert dataset.__getitems__([]) == []


@pytest.mark.parametrize("indices", [[3, 4, 5, 12, 13, 29], [12, 3, 4, 5, 29, 13, 0, 4]])
def test_collate_windows_reuses_the_stacked_batch(packed, indices):
    dataset = PackedDataset(packed)
    batch = dataset.__getitems__(indices)
    assert isinstance(batch, WindowBatch)
    collated = collate_windows(batch)
    expected = torch.utils.data.default_collate([dataset[i] for i in indices])
    assert collated.keys() == expected.keys()
    for key in expected:
        assert torch.equal(collated[key], expected[key])
    # Plain item lists (other datasets) are stacked as usual.
    plain = collate_windows([dataset[i] for i in indices])
    assert torch.equal(plain["x"], expected["x"])


def test_dataloader_with_chunked_sampler_and_collate_windows(packed):
    dataset = PackedDataset(packed)
    sampler = ChunkedBatchSampler(len(dataset), 8, shuffle=True, seed=3)
    seen = []
    for batch in DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_windows):
        assert batch["x"].shape[1:] == (4, 16) and batch["x"].shape[0] == batch["y"].shape[0]
        seen.append(batch["x"])
    assert sum(x.shape[0] for x in seen) == len(dataset)


def test_per_channel_float16_and_unlabelled(tmp_path):
    write_shard(tmp_path / "perch" / "a.h5", subject="a", per_channel=True, label=1, task="mmc")
    pack_shards(tmp_path / "perch", tmp_path / "p1", PackSection(dtype="float16", **ALL_TRAIN))
    item = PackedDataset(tmp_path / "p1" / "train.h5")[0]
    assert item["x"].dtype == torch.float32 and item["y"].shape == (4,) and item["y"].dtype == torch.int64

    write_shard(tmp_path / "raw" / "a.h5", subject="a", labelled=False, task="reconstruction", label_names=())
    pack_shards(tmp_path / "raw", tmp_path / "p2", PackSection(**ALL_TRAIN))
    dataset = PackedDataset(tmp_path / "p2" / "train.h5", transform=lambda x: x * 2)
    assert set(dataset[0]) == {"x"} and dataset.info.num_classes == 0
    with h5py.File(tmp_path / "p2" / "train.h5") as handle:
        np.testing.assert_allclose(dataset[1]["x"].numpy(), handle["x"][1] * 2)


def test_regression_targets_are_float(tmp_path):
    y = np.linspace(0, 1, 6).astype(np.float32)
    write_shard(tmp_path / "reg" / "a.h5", subject="a", y=y, task="regression", label_names=())
    pack_shards(tmp_path / "reg", tmp_path / "p", PackSection(**ALL_TRAIN))
    dataset = PackedDataset(tmp_path / "p" / "train.h5")
    assert dataset[2]["y"].dtype == torch.float32
    assert float(dataset[2]["y"]) == pytest.approx(y[2])


@pytest.mark.parametrize(
    ("task", "regression", "label_task"),
    [
        ("bc", False, "bc"),
        ("regression", True, "regression"),
        ("", True, "regression"),
        ("reconstruction", True, "regression"),
        ("", False, ""),
    ],
)
def test_label_task_reads_float_targets_without_a_task_as_regression(task, regression, label_task):
    """Evaluation, the head check and the int8 export's scoring all take a split's task from this one rule."""
    info = PackedInfo(
        path=Path("p.h5"), split="test", ch_names=("C3",), sfreq=256.0, task=task, num_classes=0, label_names=(),
        n_windows=1, n_channels=1, n_times=8, labelled=True, regression=regression,
    )  # fmt: skip
    assert info.label_task == label_task


def test_pickle_drops_the_open_handle(packed):
    dataset = PackedDataset(packed)
    dataset[0]
    assert dataset._handle is not None
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._handle is None
    assert torch.equal(clone[3]["x"], dataset[3]["x"])


def test_dataloader_with_two_workers_and_default_collate(packed):
    dataset = PackedDataset(packed)
    dataset[0]  # open a handle in the main process; workers must not reuse it
    sampler = ChunkedBatchSampler(len(dataset), batch_size=8, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=2)
    batches = list(loader)
    assert len(batches) == len(sampler) == 4
    for batch, indices in zip(batches, sampler.batches(), strict=True):
        assert batch["x"].shape == (len(indices), 4, 16) and batch["x"].dtype == torch.float32
        assert torch.equal(batch["x"], torch.stack([dataset[i]["x"] for i in indices]))
        assert torch.equal(batch["y"], torch.stack([dataset[i]["y"] for i in indices]))


def _collate_noting_shared_memory(items):
    """``collate_windows``, with whether the batch's windows were already in shared memory where it ran (a worker)."""
    batch = collate_windows(items)
    return {**batch, "shared_in_worker": torch.tensor(batch["x"].is_shared())}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_worker_reads_each_batch_into_shared_memory(tmp_path, dtype):
    """A worker's batch goes to the main process as it was read: torch copies one outside shared memory
    into a new segment to send it, a second pass over every byte, which cost the loader with workers."""
    write_corpus(tmp_path / "shards", n_subjects=6, windows_per_subject=5)
    pack_shards(tmp_path / "shards", tmp_path / "packed", PackSection(dtype=dtype, **ALL_TRAIN))
    dataset = PackedDataset(tmp_path / "packed" / "train.h5")
    batches = [[3, 4, 5, 12, 13, 29], [12, 3, 4, 5, 29, 13, 0, 4]]  # in order, and not (reordered after reading)
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=2, collate_fn=_collate_noting_shared_memory)
    for batch, indices in zip(loader, batches, strict=True):
        assert bool(batch["shared_in_worker"])
        assert batch["x"].dtype == torch.float32
        assert torch.equal(batch["x"], torch.stack([dataset[i]["x"] for i in indices]))
        assert torch.equal(batch["y"], torch.stack([dataset[i]["y"] for i in indices]))
