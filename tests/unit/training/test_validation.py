"""Validation during training: its loss is the whole split's, whatever the batching."""

from __future__ import annotations

from contextlib import closing

import pytest
import torch
from fixtures.tiny_job import DictDataset, TinyNet

from biofound_cli.training.evaluate import ValidationBatches, _windows_of_this_rank, evaluate
from biofound_cli.training.objectives import Objective, supervised_loss


def test_weighted_validation_loss_is_the_whole_splits_whatever_the_batch_size():
    # 13 windows: batches of 4 and 5 leave last batches of 1 and 3; class weights make the loss a
    # weighted mean, which averaging per-batch means by batch size gets wrong.
    torch.manual_seed(0)
    model, dataset = TinyNet(), DictDataset(13, seed=1)
    objective = Objective("femba", "mcc", class_weights=[1.0, 4.0, 0.5])
    losses = [_evaluated(model, objective, dataset, batch_size=size, num_workers=2)["val_loss"] for size in (4, 5)]
    with torch.no_grad():
        logits, _ = model(dataset.x, torch.zeros_like(dataset.x, dtype=torch.bool))
    expected = supervised_loss(logits, dataset.y, "mcc", class_weights=torch.tensor([1.0, 4.0, 0.5])).item()
    assert losses == pytest.approx([expected, expected], rel=1e-6)


@pytest.mark.parametrize("family", ["femba", "luna", "tinymyo"])
def test_pretraining_validation_loss_is_the_same_for_any_batch_size_and_rank_count(family):
    # 13 windows in batches of 1, 4 and 13, and split over 2 and 3 ranks: each window's mask
    # follows its index in the split, so the loss is the same (seeded by the batch's index, the
    # masks, and the loss, changed with data.batch_size and the number of ranks).
    from biofound_cli.training.distributed import DistributedContext

    model, objective, dataset = _pretraining_case(family)
    losses = [_evaluated(model, objective, dataset, batch_size=size, num_workers=2)["val_loss"] for size in (1, 4, 13)]
    for world_size in (2, 3):
        shares = []
        for rank in range(world_size):
            context = DistributedContext(rank=rank, world_size=world_size)
            with _gathering_alone():
                shares.append(_evaluated(model, objective, dataset, batch_size=4, context=context))
        # Each rank's loss is the mean of its share; weighted by its windows, the split's.
        sizes = [len(_windows_of_this_rank(13, 4, DistributedContext(rank=r, world_size=world_size))) for r in range(world_size)]
        losses.append(sum(share["val_loss"] * n for share, n in zip(shares, sizes, strict=True)) / 13)
    assert losses == pytest.approx([losses[0]] * len(losses), rel=1e-5)
    again = _evaluated(model, objective, dataset, batch_size=4)["val_loss"]
    assert again == losses[1]  # and the same at every evaluation


def _evaluated(model, objective, dataset, **loader):
    """``evaluate`` of ``dataset`` through a ``ValidationBatches`` of its own, ended after (as ``fit`` ends its own)."""
    with closing(ValidationBatches(dataset, **loader)) as batches:
        return evaluate(model, objective, batches, device=torch.device("cpu"))


def _pretraining_case(family):
    from biofound_cli.models.registry import build_model
    from biofound_cli.signals.electrodes import channel_index, channel_positions

    shapes = {"femba": (4, 64), "luna": (5, 80), "tinymyo": (4, 40)}
    kwargs = {
        "femba": {"seq_length": 64, "num_channels": 4, "embed_dim": 16, "num_blocks": 1, "exp": 2, "num_classes": 0},
        "luna": {"patch_size": 40, "embed_dim": 32, "num_queries": 2, "depth": 1, "num_heads": 2, "num_classes": 0},
        "tinymyo": {
            "img_size": 40,
            "patch_size": 20,
            "in_chans": 4,
            "embed_dim": 12,
            "n_layer": 1,
            "n_head": 2,
            "task": "pretraining",
            "num_classes": 0,
        },
    }[family]
    torch.manual_seed(0)
    model = build_model(family, kwargs)
    tueg = ["FP1-F7", "F7-T3", "T3-T5", "T5-O1", "FP2-F8"]
    inputs = {
        "channel_locations": torch.as_tensor(channel_positions(tueg)),
        "channel_indices": torch.as_tensor(channel_index(tueg)),
    }
    objective = Objective(family, "reconstruction", **(inputs if family == "luna" else {}))
    n_channels, n_times = shapes[family]
    generator = torch.Generator().manual_seed(3)
    return model, objective, _Windows(torch.randn(13, n_channels, n_times, generator=generator))


class _Windows(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index]}


def _gathering_alone():
    """Each simulated rank keeps its own share (no process group in one process)."""
    from unittest import mock

    return mock.patch("biofound_cli.training.distributed.gather_objects", lambda value, context: [value])


@pytest.mark.parametrize("n_windows", [1, 7, 12, 13, 40])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_ranks_share_the_split_in_whole_batches_in_order(n_windows, world_size):
    from biofound_cli.training.distributed import DistributedContext

    batch_size = 4
    shares = [
        _windows_of_this_rank(n_windows, batch_size, DistributedContext(rank=rank, world_size=world_size))
        for rank in range(world_size)
    ]
    # Together, in rank order, the windows of one process; each share starts on a batch boundary.
    assert [index for windows in shares for index in windows] == list(range(n_windows))
    for windows in shares:
        if len(windows):
            assert windows.start % batch_size == 0
