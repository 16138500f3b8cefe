"""Parameter groups (weight decay, layer-wise decay) and the warm-up + cosine schedule."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from biofound_cli.recipes.training import OptimSection
from biofound_cli.training.optim import WarmupCosineSchedule, block_index, build_optimizer, parameter_groups


class Blocks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, 3, 4))
        self.patch_embed = nn.Linear(4, 4)
        self.mamba_blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
        self.norm_layers = nn.ModuleList([nn.LayerNorm(4) for _ in range(2)])
        self.classifier = nn.Linear(4, 2)


def groups_by_name(model, **kwargs):
    return {name: group for group in parameter_groups(model, **kwargs) for name in group["names"]}


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("mamba_blocks.1.mamba_fwd.A_log", 1),
        ("norm_layers.0.weight", 0),
        ("blocks.7.attn.qkv_proj.weight", 7),
        ("cross_attn.query_self_attn.layers.2.linear1.weight", None),
        ("classifier.fc3.weight", None),
    ],
)
def test_block_index_of_each_family(name, index):
    assert block_index(name) == index


def test_layer_decay_follows_the_published_rule_and_decay_skips_norms_biases_embeddings():
    by_name = groups_by_name(Blocks(), weight_decay=0.5, layer_decay=0.75)
    # FEMBA with 2 blocks: block 0 gets 0.75**2, block 1 gets 0.75, the rest the full rate.
    assert by_name["mamba_blocks.0.weight"]["lr_scale"] == pytest.approx(0.5625)
    assert by_name["norm_layers.1.weight"]["lr_scale"] == pytest.approx(0.75)
    assert by_name["patch_embed.weight"]["lr_scale"] == 1.0
    assert by_name["classifier.weight"]["weight_decay"] == 0.5
    for name in ("pos_embed", "classifier.bias", "norm_layers.0.weight", "mamba_blocks.1.bias"):
        assert by_name[name]["weight_decay"] == 0.0, name


def test_frozen_parameters_are_left_out_without_shifting_the_decay():
    model = Blocks()
    model.mamba_blocks[0].requires_grad_(False)
    by_name = groups_by_name(model, weight_decay=0.1, layer_decay=0.5)
    assert "mamba_blocks.0.weight" not in by_name
    assert by_name["mamba_blocks.1.weight"]["lr_scale"] == pytest.approx(0.5)


def test_optimizer_groups_start_at_their_scaled_rate():
    optimizer = build_optimizer(Blocks(), OptimSection(lr=1e-3, layer_decay=0.5, betas=(0.9, 0.98)))
    rates = sorted({round(group["lr"], 12) for group in optimizer.param_groups})
    assert rates == [2.5e-4, 5e-4, 1e-3]
    assert optimizer.defaults["betas"] == (0.9, 0.98)


def test_optimizer_is_fused_and_steps_as_the_foreach_one():
    # The fused kernel (one pass per parameter) is what training runs; it must update as AdamW does.
    torch.manual_seed(0)
    model = Blocks()
    reference = copy.deepcopy(model)
    config = OptimSection(lr=1e-3, layer_decay=0.5, weight_decay=0.05)
    fused = build_optimizer(model, config)
    assert fused.defaults["fused"] is True
    plain = torch.optim.AdamW(parameter_groups(reference, config.weight_decay, config.layer_decay), lr=config.lr)
    for group, plain_group in zip(fused.param_groups, plain.param_groups, strict=True):
        plain_group["lr"] = group["lr"]
    for _ in range(3):
        for net in (model, reference):
            net.zero_grad()
            sum(parameter.square().sum() for parameter in net.parameters()).backward()
        fused.step()
        plain.step()
    for (name, got), expected in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7, msg=name)


def test_schedule_values_warmup_then_cosine_to_min_lr():
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [parameter], "lr_scale": 1.0}], lr=1.0)
    schedule = WarmupCosineSchedule(optimizer, base_lr=1e-3, total_steps=100, warmup_steps=10, warmup_lr_init=1e-6, min_lr=1e-5)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-6)
    for _ in range(5):
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-6 + 5 * (1e-3 - 1e-6) / 10)
    # After warm-up the cosine uses the global step, not the step since warm-up (timm behaviour).
    assert schedule.lr_at(10) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * 0.1)))
    assert schedule.lr_at(50) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert schedule.lr_at(100) == pytest.approx(1e-5)
    assert schedule.lr_at(500) == pytest.approx(1e-5)


def test_schedule_state_round_trips():
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [parameter], "lr_scale": 0.5}], lr=1.0)
    schedule = WarmupCosineSchedule(optimizer, base_lr=1e-3, total_steps=20, warmup_steps=2)
    for _ in range(7):
        schedule.step()
    saved, lr = schedule.state_dict(), optimizer.param_groups[0]["lr"]
    other = WarmupCosineSchedule(optimizer, base_lr=1e-3, total_steps=20, warmup_steps=2)
    other.load_state_dict(saved)
    assert optimizer.param_groups[0]["lr"] == lr == pytest.approx(other.lr_at(7, 0.5))
