"""Input normalisations applied to each window before the model, chosen by name.

Each is a small :class:`torch.nn.Module` over (..., n_channels, n_times) tensors that reduces
over the last (time) axis only, so it works per sample and per channel for batched and single
windows alike. The formulas are the upstream ones (docs/training.md).
"""

from __future__ import annotations

import torch
from torch import nn

from biofound_cli.errors import UsageError, unknown_name

EPS = 1e-8
FEMBA_Q_LOWER, FEMBA_Q_UPPER = -20.0, 20.0


class FembaAffine(nn.Module):
    """FEMBA's fixed affine scaling ``(x - q_lower) / (q_upper - q_lower + 1e-8)``.

    Upstream calls it a quartile normalisation but uses fixed constants from its config
    (``q_lower = -20``, ``q_upper = 20``, i.e. ``(x + 20) / 40``), not per-channel quartiles.
    """

    formula = "(x - q_lower) / (q_upper - q_lower + 1e-8) with q_lower = -20, q_upper = 20, i.e. (x + 20) / 40"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - FEMBA_Q_LOWER) / ((FEMBA_Q_UPPER - FEMBA_Q_LOWER) + EPS)


class ZScore(nn.Module):
    """LUNA's per-channel z-score over time: ``(x - mean) / (std + 1e-8)`` with the unbiased std."""

    formula = "per window and channel over time: (x - mean) / (std + 1e-8), std unbiased"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True)
        return (x - mean) / (std + EPS)


class MinMax(nn.Module):
    """TinyMyo's per-channel scaling to [-1, 1]: ``((x - min) / (max - min + 1e-8) - 0.5) * 2``."""

    formula = "per window and channel over time: ((x - min) / (max - min + 1e-8) - 0.5) * 2"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = x.amin(dim=-1, keepdim=True)
        high = x.amax(dim=-1, keepdim=True)
        return ((x - low) / (high - low + EPS) - 0.5) * 2.0


class NoTransform(nn.Identity):
    """The preprocessed signal as it is."""

    formula = "none: feed the preprocessed signal as it is"


TRANSFORMS: dict[str, type[nn.Module]] = {
    "femba-affine": FembaAffine,
    "zscore": ZScore,
    "minmax": MinMax,
    "none": NoTransform,
}


def transform_formula(name: str) -> str | None:
    """The formula of the input normalisation called ``name``, as an export's ``config.json`` and model card say it.

    Parameters
    ----------
    name : str
        A key of :data:`TRANSFORMS`; None for another.
    """
    return getattr(TRANSFORMS.get(name), "formula", None)


def get_transform(name: str) -> nn.Module:
    """The input normalisation called ``name`` (one of :data:`TRANSFORMS`).

    Parameters
    ----------
    name : str
        ``"femba-affine"``, ``"zscore"``, ``"minmax"`` or ``"none"``.

    Raises
    ------
    UsageError
        For an unknown name.
    """
    try:
        cls = TRANSFORMS[name.lower()]
    except KeyError:
        raise UsageError(unknown_name("input transform", name, TRANSFORMS)) from None
    return cls()
