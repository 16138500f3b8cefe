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
