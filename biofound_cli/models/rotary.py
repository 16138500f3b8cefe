"""The rotary transformer block of LUNA's temporal encoder (upstream
``models/modules/rope_transformer_encoder_block.py``).

Rotary positions turn each adjacent feature pair (2j, 2j+1) of queries and keys by
``position * freqs[j]``, as rotary-embedding-torch does; module and parameter names match it so
the official state dict loads unchanged. Reshapes leave the batch as ``-1`` and read other sizes
as Python ints, so a traced graph keeps a dynamic batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from biofound_cli.models.layers import Mlp, PreNormBlock, self_attention


class RotaryEmbedding(nn.Module):
    """Rotary position embedding over interleaved feature pairs, with rotary-embedding-torch's names.

    ``freqs`` is a frozen parameter because the official state dict stores it; ``cached_freqs``
    holds the per-position angles and is rebuilt when a longer sequence arrives or ``freqs`` is
    loaded; ``dummy`` marks the module's device.
    """

    cached_freqs: torch.Tensor
    dummy: torch.Tensor

    def __init__(self, dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.register_buffer("dummy", torch.tensor(0), persistent=False)
        # Computed on the CPU and then moved: arithmetic on the meta device (a model built to check
        # model.overrides) imports torch's compiler, about 1 s of CPU for a `biofound validate`.
        exponents = torch.arange(0, dim, 2, device="cpu")[: dim // 2].float() / dim
        self.freqs = nn.Parameter((1.0 / theta**exponents).to(self.dummy.device), requires_grad=False)
        self.register_buffer("cached_freqs", torch.zeros(0, dim), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, incompatible_keys: module.clear_cache())

    def clear_cache(self) -> None:
        self.cached_freqs = self.cached_freqs.new_zeros(0, self.cached_freqs.shape[1])

    def angles(self, seq_len: int) -> torch.Tensor:
        """Rotation angle of each position and feature, shape (seq_len, dim).

        Parameters
        ----------
        seq_len : int
            The number of positions; the table is cached and grown as longer sequences come.
        """
        cache = self.cached_freqs
        if cache.shape[0] < seq_len or cache.dtype != self.freqs.dtype:
            positions = torch.arange(seq_len, device=self.dummy.device, dtype=self.freqs.dtype)
            with torch.no_grad():
                angles = torch.outer(positions, self.freqs)
                # Each frequency turns an adjacent feature pair (2j, 2j+1). Stacking rather than
                # repeat_interleave, which the ONNX exporter gets wrong.
                cache = torch.stack([angles, angles], dim=-1).reshape(seq_len, 2 * int(angles.shape[1]))
            self.cached_freqs = cache
        return cache[:seq_len]

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate (..., S, dim) queries or keys by their position along S.

        Parameters
        ----------
        x : torch.Tensor
            (..., S, dim) queries or keys.
        """
        angles = self.angles(int(x.shape[-2])).to(x.dtype)
        rotated_half = torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).reshape(-1, *(int(size) for size in x.shape[1:]))
        return x * angles.cos() + rotated_half * angles.sin()


class RotarySelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions on queries and keys."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.rotary_emb = RotaryEmbedding(dim // num_heads)
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dropout = self.attn_drop if self.training else 0.0
        return self.proj_drop(self.proj(self_attention(x, self.qkv_proj, self.num_heads, dropout, self.rotary_emb.rotate)))


def rotary_block(
    dim: int, num_heads: int, mlp_ratio: float, drop_path: float, norm_layer: Callable[[int], nn.Module]
) -> PreNormBlock:
    """LUNA's pre-norm transformer block over the S time patches: rotary attention, then a feed-forward.

    Parameters
    ----------
    dim : int
        Width of the tokens.
    num_heads : int
        Attention heads.
    mlp_ratio : float
        Hidden width of the feed-forward relative to ``dim``; its LayerNorm sits on the hidden width.
    drop_path : float
        Stochastic-depth rate.
    norm_layer : callable
        The block's normalisation.
    """
    mlp = Mlp(dim, int(dim * mlp_ratio), norm=True)
    # Upstream's feed-forward registers its LayerNorm after fc2: move it there, so the state dict
    # keeps the official key order.
    norm = mlp.norm
    del mlp.norm
    mlp.norm = norm
    return PreNormBlock(dim, RotarySelfAttention(dim, num_heads), mlp, drop_path, norm_layer)
