"""AdamW parameter groups with layer-wise learning-rate decay, and the warm-up + cosine schedule.

Layer-wise decay follows the published fine-tuning tasks: a parameter inside block ``i`` of a
model with ``n`` blocks gets ``lr * layer_decay ** (n - i)``; everything outside the blocks
(patch embedding, positional embedding, head) keeps the full learning rate. The blocks are
``mamba_blocks.i`` / ``norm_layers.i`` in FEMBA and ``blocks.i`` in LUNA and TinyMyo.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from biofound_cli.recipes.training import OptimSection

# A parameter name's block index; LUNA's `cross_attn.query_self_attn.layers.i` is not a block.
_BLOCK_INDEX = re.compile(r"(?:^|\.)(?:mamba_blocks|norm_layers|blocks)\.(\d+)\.")

# Learned tokens and embedding tables: decaying them pulls them towards zero for no benefit.
_NO_DECAY_NAMES = ("pos_embed", "mask_token", "query_embed", "learned_agg", "channel_emb", "embeddings")


def block_index(name: str) -> int | None:
    """The block a parameter belongs to (``None`` outside the blocks).

    Parameters
    ----------
    name : str
        A parameter's name in ``model.named_parameters()``.
    """
    match = _BLOCK_INDEX.search(name)
    return int(match.group(1)) if match else None


def uses_weight_decay(name: str, parameter: torch.Tensor) -> bool:
    """Weight decay applies to weight matrices and kernels, not to norms, biases or embeddings.

    Parameters
    ----------
    name : str
        The parameter's name; names holding one of ``_NO_DECAY_NAMES`` (embeddings, mask and query tokens) are not decayed.
    parameter : torch.Tensor
        The parameter; 1-D ones (norms, biases) are not decayed.
    """
    return parameter.ndim > 1 and not any(part in name for part in _NO_DECAY_NAMES)


def parameter_groups(model: nn.Module, weight_decay: float, layer_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters grouped by (learning-rate scale, weight decay).

    Each group carries ``lr_scale``, the factor applied to the schedule's learning rate.
    Frozen parameters (``requires_grad=False``) are left out.

    Parameters
    ----------
    model : nn.Module
        The model.
    weight_decay : float
        AdamW's weight decay for the parameters :func:`uses_weight_decay` accepts; 0 for the others.
    layer_decay : float
        Factor per block from the top: block ``i`` of ``n`` gets ``layer_decay ** (n - i)``;
        parameters outside the blocks get 1.
    """
    named = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
    # Count every block of the model, trainable or not, so frozen blocks do not shift the decay.
    all_indices = {index for name, _ in model.named_parameters() if (index := block_index(name)) is not None}
    n_blocks = max(all_indices) + 1 if all_indices else 0
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, parameter in named:
        index = block_index(name)
        lr_scale = layer_decay ** (n_blocks - index) if index is not None else 1.0
        decay = weight_decay if uses_weight_decay(name, parameter) else 0.0
        group = groups.setdefault((lr_scale, decay), {"params": [], "names": [], "lr_scale": lr_scale, "weight_decay": decay})
        group["params"].append(parameter)
        group["names"].append(name)
    return list(groups.values())


def build_optimizer(model: nn.Module, config: OptimSection) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``model`` with the recipe's groups.

    Parameters
    ----------
    model : nn.Module
        The model; only parameters that require gradients are optimised.
    config : OptimSection
        The recipe's ``[optim]`` section: learning rate, betas, eps, weight and layer decay.
    """
    groups = parameter_groups(model, config.weight_decay, config.layer_decay)
    for group in groups:
        group["lr"] = config.lr * group["lr_scale"]
    try:
        # The fused kernel updates each parameter in one pass instead of a dozen foreach ops:
        # a step of AdamW on two CPU cores took 5.9 instead of 13.6 ms for LUNA-base and 27
        # instead of 170 ms for FEMBA-base (benchmarks/train.py --fast-paths times whole steps).
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps, fused=True)
    except RuntimeError:
        # torch before 2.4 has no fused CPU kernel; a device without one says so the same way.
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps)


class WarmupCosineSchedule:
    """Linear warm-up from ``warmup_lr_init`` to each group's peak, then cosine down to ``min_lr``.

    The timm ``CosineLRScheduler`` behaviour the published recipes use: during warm-up
    ``lr = warmup_lr_init + t * (peak - warmup_lr_init) / warmup_steps``; afterwards
    ``lr = min_lr + 0.5 * (peak - min_lr) * (1 + cos(pi * t / total_steps))`` with ``t`` the
    global step (not shifted by the warm-up), and ``min_lr`` once ``t >= total_steps``.
    A group's peak is ``base_lr * lr_scale``; ``warmup_lr_init`` and ``min_lr`` are not scaled, as in
    the published fine-tuning code (each group gets its own ``lr`` and timm's scheduler runs from it),
    so a deep group whose peak lies below ``min_lr`` rises during the cosine there too.
    Call :meth:`step` after each optimiser step.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Its groups carry ``lr_scale`` (see :func:`parameter_groups`).
    base_lr : float
        Peak learning rate before the per-group scale.
    total_steps : int
        Length of the cosine in optimiser steps.
    warmup_steps : int
        Steps of linear warm-up.
    warmup_lr_init, min_lr : float
        Learning rate at step 0 and at the end of the cosine.
    schedule : {"cosine", "constant"}
        ``constant`` keeps the peak after warm-up.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        base_lr: float,
        total_steps: int,
        warmup_steps: int = 0,
        warmup_lr_init: float = 0.0,
        min_lr: float = 0.0,
        schedule: str = "cosine",
    ) -> None:
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = int(warmup_steps)
        self.warmup_lr_init = warmup_lr_init
        self.min_lr = min_lr
        self.schedule = schedule
        self.step_count = 0
        self._apply()

    def lr_at(self, step: int, lr_scale: float = 1.0) -> float:
        """The learning rate of a group with ``lr_scale`` at optimiser step ``step``.

        Parameters
        ----------
        step : int
            The optimiser step, from 0.
        lr_scale : float
            The group's factor on ``base_lr``.
        """
        peak = self.base_lr * lr_scale
        if step < self.warmup_steps:
            return self.warmup_lr_init + step * (peak - self.warmup_lr_init) / self.warmup_steps
        if self.schedule == "constant":
            return peak
        if step >= self.total_steps:
            return self.min_lr
        return self.min_lr + 0.5 * (peak - self.min_lr) * (1.0 + math.cos(math.pi * step / self.total_steps))

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step_count, group.get("lr_scale", 1.0))

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved :meth:`state_dict`: set the step count and the groups' learning rates.

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned.
        """
        self.step_count = int(state["step_count"])
        self._apply()


def steps_for_epochs(epochs: float, batches_per_epoch: int, accumulation_steps: int) -> int:
    """The optimiser step in which epoch ``epochs`` ends: ``ceil(epochs x batches / accumulation)``.

    With accumulation a step may hold the end of one epoch and the start of the next (the
    micro-batch stream runs on), so an epoch is not a whole number of steps: rounding the
    steps of an epoch down first ended 2 warm-up epochs of 12 micro-batches, 5 a step, at step 4
    instead of 5. The run's length and the warm-up both count epochs this way.

    Parameters
    ----------
    epochs : float
        Epochs from the start, e.g. ``train.epochs`` or ``optim.warmup_epochs``.
    batches_per_epoch : int
        Micro-batches (global batches) in one epoch.
    accumulation_steps : int
        Micro-batches per optimiser step.
    """
    # A decimal fraction of an epoch (0.1) is meant exactly: 0.1 x 30 is not 3.0000000000000004.
    exact = Fraction(epochs).limit_denominator(10**6) * batches_per_epoch / accumulation_steps
    return math.ceil(exact)


def build_schedule(
    optimizer: torch.optim.Optimizer, config: OptimSection, *, total_steps: int, batches_per_epoch: int
) -> WarmupCosineSchedule:
    """The recipe's schedule; ``warmup_steps`` wins over ``warmup_epochs``.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimiser, its groups from :func:`parameter_groups`.
    config : OptimSection
        The recipe's ``[optim]`` section.
    total_steps : int
        Optimiser steps of the whole run (the length of the cosine).
    batches_per_epoch : int
        Micro-batches per epoch, to turn ``warmup_epochs`` into optimiser steps (:func:`steps_for_epochs`).
    """
    warmup = (
        config.warmup_steps
        if config.warmup_steps is not None
        else steps_for_epochs(config.warmup_epochs, batches_per_epoch, config.accumulation_steps)
    )
    return WarmupCosineSchedule(
        optimizer,
        base_lr=config.lr,
        total_steps=total_steps,
        warmup_steps=warmup,
        warmup_lr_init=config.warmup_lr_init,
        min_lr=config.min_lr,
        schedule=config.schedule,
    )
