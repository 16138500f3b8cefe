"""Validation during training: its loss is the whole split's, whatever the batching."""

from __future__ import annotations

import pytest
import torch
from fixtures.tiny_job import DictDataset, TinyNet

from biofound_cli.training.evaluate import evaluate
from biofound_cli.training.objectives import Objective, supervised_loss


def test_weighted_validation_loss_is_the_whole_splits_whatever_the_batch_size():
    # 13 windows: batches of 4 and 5 leave last batches of 1 and 3; class weights make the loss a
    # weighted mean, which averaging per-batch means by batch size gets wrong.
    torch.manual_seed(0)
    model, dataset = TinyNet(), DictDataset(13, seed=1)
    objective = Objective("femba", "mcc", class_weights=[1.0, 4.0, 0.5])
    losses = [
        evaluate(model, objective, dataset, batch_size=size, device=torch.device("cpu"), num_workers=2)["val_loss"]
        for size in (4, 5)
    ]
    with torch.no_grad():
        logits, _ = model(dataset.x, torch.zeros_like(dataset.x, dtype=torch.bool))
    expected = supervised_loss(logits, dataset.y, "mcc", class_weights=torch.tensor([1.0, 4.0, 0.5])).item()
    assert losses == pytest.approx([expected, expected], rel=1e-6)


@pytest.mark.parametrize("n_windows", [1, 7, 12, 13, 40])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_ranks_share_the_split_in_whole_batches_in_order(n_windows, world_size):
    from biofound_cli.training.distributed import DistributedContext
    from biofound_cli.training.evaluate import _batches_of_this_rank

    batch_size = 4
    shares = [
        _batches_of_this_rank(n_windows, batch_size, DistributedContext(rank=rank, world_size=world_size))
        for rank in range(world_size)
    ]
    # Together, in rank order, the windows of one process; each share starts on a batch boundary
    # and names the index of its first batch there (the mask seed of that batch).
    assert [index for _, windows in shares for index in windows] == list(range(n_windows))
    for first_batch, windows in shares:
        if len(windows):
            assert windows.start == first_batch * batch_size
