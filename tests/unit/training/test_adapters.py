"""Frozen body and LoRA adapters: what trains, and merged weights that reproduce the adapted model."""

from __future__ import annotations

import torch
from torch import nn

from biofound_cli.training.adapters import apply_lora, freeze_body, merged_state_dict


class Body(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc1 = nn.Linear(8, 8)
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        x = self.attn(x, x, x)[0]
        return self.classifier(self.fc1(x).mean(dim=1))


def test_frozen_trains_only_the_head():
    model = Body()
    assert freeze_body(model, ("classifier.",)) == ["classifier.weight", "classifier.bias"]


def test_lora_adapts_direct_weight_reads_and_merges_back_to_official_keys():
    torch.manual_seed(0)
    model = Body()
    reference = {key: value.clone() for key, value in model.state_dict().items()}
    adapted = apply_lora(model, rank=2, alpha=4.0, targets=["in_proj", "out_proj", "fc1"], head_prefixes=("classifier.",))
    assert adapted == ["attn.in_proj_weight", "attn.out_proj.weight", "fc1.weight"]
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in trainable if "lora_" in n or n.startswith("classifier.")}
    x = torch.randn(2, 5, 8)
    before = model(x)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("lora_b"):
                parameter.normal_()
    after = model(x)
    assert not torch.allclose(before, after)  # the adapters change attention, whose weights MHA reads directly
    merged = merged_state_dict(model)
    assert set(merged) == set(reference)
    plain = Body()
    plain.load_state_dict(merged)
    torch.testing.assert_close(plain(x), after)


def test_merging_leaves_the_trained_model_adapted_and_trainable():
    torch.manual_seed(0)
    model = Body()
    apply_lora(model, rank=2, alpha=4.0, targets=["in_proj", "out_proj", "fc1"], head_prefixes=("classifier.",))
    x = torch.randn(2, 5, 8)
    keys_before = set(model.state_dict())
    merged_state_dict(model)
    assert set(model.state_dict()) == keys_before  # the adapters are still there
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(x).sum().backward()  # the step after writing the best checkpoint
    optimizer.step()
    assert type(model.fc1).__name__ == "ParametrizedLinear" and model.fc1.weight.shape == (8, 8)
