"""Each family's ``leaves_parameters_unused``: a family that says False gives every trainable weight a gradient.

DDP is built with ``find_unused_parameters`` from this declaration (``training/distributed.py``):
a wrong False stops a multi-process run at its second step, a needless True costs a graph search
a step and a warning on every rank. One training step on one process shows the same thing: the
trainable parameters whose gradient stays unset, for pre-training and for every downstream task
the family declares (``family.tasks``: the head's shape and the loss change with it) in every
fine-tuning mode. A task the family declares but cannot train fails here too.
"""

from __future__ import annotations

import pytest
import torch
from fixtures.tiny_models import CASES, SHAPES, luna_inputs

from biofound_cli.models.registry import FAMILIES, build_model
from biofound_cli.recipes.training import ModelSection
from biofound_cli.tasks import RECONSTRUCTION
from biofound_cli.training.adapters import apply_lora, freeze_body
from biofound_cli.training.objectives import Objective

MODES = ("full", "frozen", "lora")
CASES_ALL = [
    (family, task, mode)
    for family in ("femba", "luna", "tinymyo")
    for task in FAMILIES[family].tasks
    for mode in (("pretrain",) if task == RECONSTRUCTION else MODES)
]


def trained_model(family_key: str, task: str, mode: str) -> torch.nn.Module:
    """A tiny model of the family for ``task``, adapted as ``model.finetune = mode`` does."""
    family = FAMILIES[family_key]
    num_classes = None if task == RECONSTRUCTION else 3
    kwargs = {**CASES[family_key], "num_classes": num_classes or 0, **family.task_kwargs(task, num_classes)}
    torch.manual_seed(0)
    model = build_model(family_key, kwargs)
    heads = family.finetune_head_prefixes
    if mode == "frozen":
        freeze_body(model, heads)
    elif mode == "lora":
        section = ModelSection()
        apply_lora(model, rank=2, alpha=4.0, targets=section.lora_targets, head_prefixes=heads)
    return model.train()


def batch_for(family_key: str, task: str, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Four windows and the targets ``supervised_loss`` takes for ``task``."""
    n_channels, n_times = SHAPES[family_key]
    generator = torch.Generator().manual_seed(0)
    batch = {"x": torch.randn(4, n_channels, n_times, generator=generator)}
    if task in ("ml", "mcc"):
        batch["y"] = torch.tensor([0, 1, 2, 1])
    elif task == "bc":
        batch["y"] = torch.tensor([0, 1, 1, 0])
    elif task in ("mc", "mmc"):  # one label per channel: 0/1 for mc, a class for mmc
        batch["y"] = torch.randint(0, 2 if task == "mc" else 3, (4, n_channels), generator=generator)
    elif task == "regression":  # (B, reg_target_len, K) values
        batch["y"] = torch.randn(4, model.reg_target_len, 3, generator=generator)
    return batch


@pytest.mark.parametrize(("family_key", "task", "mode"), CASES_ALL)
def test_a_family_declaring_no_unused_parameters_gives_each_trainable_weight_a_gradient(family_key, task, mode):
    model = trained_model(family_key, task, mode)
    inputs = luna_inputs() if family_key == "luna" else {}
    if task != RECONSTRUCTION:
        inputs = {"channel_locations": inputs["channel_locations"]} if inputs else {}
    objective = Objective(family_key, task, **inputs)
    result = objective(model, batch_for(family_key, task, model), training=True)
    assert result.loss is not None
    result.loss.backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert FAMILIES[family_key].leaves_parameters_unused or not unused, unused
