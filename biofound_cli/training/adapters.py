"""Fine-tuning modes: full, frozen body (linear probe), and LoRA adapters.

LoRA is added as a ``torch.nn.utils.parametrize`` parametrization of the weight, so the layer
computes with ``W + (alpha / rank) * B @ A`` wherever its weight is read — also where a model
reads ``.weight`` directly instead of calling the layer (``nn.MultiheadAttention``'s packed
``in_proj_weight`` and ``out_proj``, Mamba's projections). ``B`` starts at zero, so training
starts from the pre-trained function. :func:`merged_state_dict` folds the adapters back into
plain weights with the official key names, for the checkpoints users load and export.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from biofound_cli.errors import UsageError


class LoRA(nn.Module):
    """The low-rank update of one (out, in) weight: ``weight + scale * lora_b @ lora_a``."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        self.lora_a = nn.Parameter(torch.empty(rank, in_features))
        self.lora_b = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.scale * (self.lora_b @ self.lora_a).to(weight.dtype)


def freeze_body(model: nn.Module, head_prefixes: Sequence[str]) -> list[str]:
    """Train only the parameters under ``head_prefixes``; returns the trainable names.

    Parameters
    ----------
    model : nn.Module
        The model; ``requires_grad`` of each parameter is set in place.
    head_prefixes : sequence of str
        Parameter-name prefixes of the head (the family's ``head_prefixes``).
    """
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(tuple(head_prefixes)))
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    if not trainable:
        raise UsageError(f"model.finetune = 'frozen' left nothing to train: no parameter starts with {list(head_prefixes)}")
    return trainable


def apply_lora(model: nn.Module, *, rank: int, alpha: float, targets: Sequence[str], head_prefixes: Sequence[str]) -> list[str]:
    """Freeze the body and add LoRA adapters to the 2-D weights named by ``targets``.

    A target names the last part of a module (``qkv``, ``fc1``, ``out_proj``), whose ``weight``
    gets an adapter; ``in_proj`` also matches ``nn.MultiheadAttention.in_proj_weight``. The
    head (``head_prefixes``) stays fully trainable.

    Parameters
    ----------
    model : nn.Module
        The model, changed in place.
    rank : int
        Rank of each adapter's low-rank update.
    alpha : float
        Scale of the update (applied as ``alpha / rank``, as LoRA defines it).
    targets : sequence of str
        Last parts of the module names to adapt.
    head_prefixes : sequence of str
        Parameter-name prefixes of the head, which gets no adapter and stays trainable.

    Returns
    -------
    list of str
        The adapted weights, e.g. ``blocks.0.attn.qkv.weight``.
    """
    freeze_body(model, head_prefixes)
    adapted = []
    for module_name, module, attribute, target in _adaptable_weights(model, head_prefixes):
        if target in targets:
            weight = getattr(module, attribute)
            adapter = LoRA(weight.shape[0], weight.shape[1], rank, alpha).to(weight.device)
            parametrize.register_parametrization(module, attribute, adapter)
            getattr(module.parametrizations, attribute).original.requires_grad_(False)
            adapted.append(f"{module_name}.{attribute}" if module_name else attribute)
    if not adapted:
        # The names this model has: "such as qkv, fc1" sent a FEMBA user (in_proj, x_proj, ...) to names it lacks.
        names = sorted({target for *_, target in _adaptable_weights(model, head_prefixes)})
        raise UsageError(
            f"model.lora_targets = {list(targets)} matched no layer of this model; "
            f"its layers that take adapters are {', '.join(names)}"
        )
    return adapted


def _adaptable_weights(model: nn.Module, head_prefixes: Sequence[str]) -> list[tuple[str, nn.Module, str, str]]:
    """(module name, module, weight attribute, target name) of every 2-D weight outside the head that LoRA can adapt.

    A module's ``weight`` (Linear layers), targeted by the last part of the module's name, and
    ``nn.MultiheadAttention``'s packed ``in_proj_weight``, targeted as ``in_proj``.
    """
    found = []
    for module_name, module in list(model.named_modules()):
        if module_name.startswith(tuple(head_prefixes)):
            continue
        for attribute, target in (("weight", module_name.rsplit(".", 1)[-1]), ("in_proj_weight", "in_proj")):
            weight = getattr(module, attribute, None)
            if isinstance(weight, nn.Parameter) and weight.ndim == 2:
                found.append((module_name, module, attribute, target))
    return found


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights with every LoRA adapter folded in, under the official key names.

    Reads the parametrized weights without touching ``model``: removing the parametrizations
    (even from a deep copy, which shares the dynamically created ``Parametrized*`` classes)
    would strip the ``weight`` property from the model still being trained.

    Parameters
    ----------
    model : nn.Module
        The model, with or without LoRA adapters; it is not changed.
    """
    merged: dict[str, torch.Tensor] = {}
    parametrized_prefixes = []
    with torch.no_grad():
        for module_name, module in model.named_modules():
            if not parametrize.is_parametrized(module):
                continue
            prefix = f"{module_name}." if module_name else ""
            parametrized_prefixes.append(f"{prefix}parametrizations.")
            for attribute in module.parametrizations.keys():
                merged[f"{prefix}{attribute}"] = getattr(module, attribute).detach().clone()
    unparametrized = {key: value for key, value in model.state_dict().items() if not key.startswith(tuple(parametrized_prefixes))}
    return {**merged, **unparametrized}
