"""Each family's objective drives the real model classes (tiny configurations): forward, loss, backward."""

from __future__ import annotations

import pytest
import torch
from fixtures.tiny_models import CASES, SHAPES, luna_inputs

from biofound_cli.models.registry import build_model
from biofound_cli.training.objectives import Objective


def build(family, num_classes, **extra):
    kwargs = {**CASES[family], "num_classes": num_classes, **extra}
    torch.manual_seed(0)
    return build_model(family, kwargs)


@pytest.mark.parametrize("family", ["femba", "luna", "tinymyo"])
def test_pretraining_loss_backpropagates(family):
    extra = {"task": "pretraining"} if family == "tinymyo" else {}
    model = build(family, 0, **extra)
    objective = Objective(family, "reconstruction", **(luna_inputs() if family == "luna" else {}))
    n_channels, n_times = SHAPES[family]
    batch = {"x": torch.randn(2, n_channels, n_times)}
    result = objective(model, batch, training=True)
    assert torch.isfinite(result.loss) and result.loss.item() > 0
    result.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("family", ["femba", "luna", "tinymyo"])
def test_finetuning_evaluation_is_deterministic(family):
    extra = {"task": "classification", "classification_type": "mcc"} if family == "tinymyo" else {}
    if family == "femba":
        extra = {"classification_type": "mcc"}
    model = build(family, 3, **extra).eval()
    inputs = luna_inputs() if family == "luna" else {}
    objective = Objective(family, "mcc", channel_locations=inputs.get("channel_locations"))
    n_channels, n_times = SHAPES[family]
    batch = {"x": torch.randn(2, n_channels, n_times), "y": torch.tensor([0, 2])}
    with torch.no_grad():
        first = objective(model, batch, training=False)
        second = objective(model, batch, training=False)
    assert first.logits.shape == (2, 3)
    assert torch.equal(first.logits, second.logits)
