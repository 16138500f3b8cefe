"""Small layers the models share, with timm's parameter names so official checkpoints load."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's whole residual branch with probability ``drop_prob``."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
        return x * keep / keep_prob


class Mlp(nn.Module):
    """``fc2(drop(norm(drop(gelu(fc1(x))))))`` with timm's key names (``fc1``, ``norm``, ``fc2``).

    ``out_features`` defaults to ``in_features``; ``norm=True`` adds a LayerNorm on the hidden
    layer (LUNA's heads), otherwise there is no ``norm`` parameter (TinyMyo's blocks).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int | None = None,
        drop: float = 0.0,
        norm: bool = False,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.norm = nn.LayerNorm(hidden_features) if norm else nn.Identity()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class PreNormBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``, each with stochastic depth.

    The key layout of timm's ``Block`` (``norm1``, ``attn``, ``norm2``, ``mlp``), which LUNA's
    rotary blocks and TinyMyo's blocks share; they differ only in the ``attn`` and ``mlp`` given.

    Parameters
    ----------
    dim : int
        Width of the tokens.
    attn, mlp : nn.Module
        The attention and feed-forward layers, (..., dim) → (..., dim).
    drop_path : float
        Stochastic-depth rate of both residual branches.
    norm_layer : callable
        The normalisation, built for ``dim``.
    """

    def __init__(
        self, dim: int, attn: nn.Module, mlp: nn.Module, drop_path: float, norm_layer: Callable[[int], nn.Module] = nn.LayerNorm
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = attn
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = norm_layer(dim)
        self.mlp = mlp
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


def self_attention(
    x: torch.Tensor,
    qkv: nn.Module,
    num_heads: int,
    dropout: float,
    rotate: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Multi-head self-attention of (B, N, dim) tokens through a packed q/k/v projection, before the output projection.

    LUNA's rotary blocks and TinyMyo's blocks attend this way; they differ in the projection's
    name and bias and in how queries and keys are rotated. The batch is reshaped as ``-1`` and
    every other size read as a Python int, so a traced graph keeps a dynamic batch.

    Parameters
    ----------
    x : torch.Tensor
        (B, N, dim) tokens.
    qkv : nn.Module
        The projection to (B, N, 3 * dim): queries, keys and values, each ``num_heads`` heads wide.
    num_heads : int
        Attention heads.
    dropout : float
        Dropout on the attention weights (pass 0 in evaluation mode).
    rotate : callable | None
        Applied to the (B, H, N, dim / H) queries and keys; None leaves them as they are.
    """
    n_tokens, dim = int(x.shape[1]), int(x.shape[2])
    q, k, v = qkv(x).reshape(-1, n_tokens, 3, num_heads, dim // num_heads).permute(2, 0, 3, 1, 4).unbind(0)
    if rotate is not None:
        q, k = rotate(q), rotate(k)
    attended = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    return attended.transpose(1, 2).reshape(-1, n_tokens, dim)


def init_linear_and_norm(module: nn.Module, linear_init: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Upstream's init of every Linear (``linear_init`` on the weight, zero bias) and LayerNorm (1, 0) in ``module``.

    Parameters
    ----------
    module : nn.Module
        The module whose submodules (itself included) are initialised in place.
    linear_init : callable
        An in-place initialiser of a weight tensor, e.g. ``nn.init.xavier_uniform_``.
    """
    for child in module.modules():
        if isinstance(child, nn.Linear):
            linear_init(child.weight)
            if child.bias is not None:
                nn.init.zeros_(child.bias)
        elif isinstance(child, nn.LayerNorm):
            nn.init.ones_(child.weight)
            nn.init.zeros_(child.bias)


def init_transformer(model: nn.Module, linear_init: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Upstream's init of a masked transformer (LUNA, TinyMyo), for training from scratch.

    ``model.mask_token`` from a normal truncated at one standard deviation (upstream's choice, not
    the usual two), every Linear and LayerNorm as :func:`init_linear_and_norm`, then the residual
    projections (``attn.proj``, ``mlp.fc2``) of block ``i`` (from 1) of ``model.blocks`` divided by
    ``sqrt(2 i)``.

    Parameters
    ----------
    model : nn.Module
        A model with a ``mask_token`` parameter and a ``blocks`` list.
    linear_init : callable
        An in-place initialiser of a weight tensor, e.g. ``nn.init.xavier_uniform_``.
    """
    nn.init.trunc_normal_(model.get_parameter("mask_token"), std=0.02, a=-0.02, b=0.02)
    init_linear_and_norm(model, linear_init)
    with torch.no_grad():
        for depth, block in enumerate(model.blocks, start=1):  # type: ignore[arg-type]
            block.attn.proj.weight.div_(math.sqrt(2.0 * depth))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * depth))


def mask_patches(tokens: torch.Tensor, mask: torch.Tensor | None, mask_token: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``tokens`` (B, C*S, E) with ``mask_token`` in place of every patch that has a masked sample.

    Parameters
    ----------
    tokens : torch.Tensor
        (B, C*S, E) patch embeddings, channel-major.
    mask : torch.Tensor | None
        (B, C, S*P) bool, True where a sample is hidden; None masks nothing.
    mask_token : torch.Tensor
        (1, 1, E) learned token.
    patch_size : int
        Samples per patch P.
    """
    if mask is None:
        return tokens
    hidden = mask.reshape(-1, int(tokens.shape[1]), patch_size).any(dim=-1, keepdim=True)
    return torch.where(hidden, mask_token.to(tokens.dtype), tokens)
