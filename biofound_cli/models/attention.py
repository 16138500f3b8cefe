"""Multi-head attention and pre-norm transformer layers with ``torch.nn``'s parameter names.

They compute what ``nn.MultiheadAttention`` and ``nn.Transformer{Encoder,Decoder}Layer``
(``batch_first=True, norm_first=True``, GELU) compute and hold the same state-dict keys, so
checkpoints written with either load into the other. They exist because the TorchScript ONNX
exporter mis-exports the reshapes inside ``torch.nn.functional.multi_head_attention_forward``
once the batch axis is dynamic; these reshape with ``-1`` for the batch and Python ints elsewhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention with a packed q/k/v input projection.

    Parameters
    ----------
    embed_dim : int
        Width of queries, keys and values.
    num_heads : int
        Number of heads; each is ``embed_dim // num_heads`` wide.
    dropout : float
        Dropout on the attention probabilities (training mode only).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}.")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        if not self.in_proj_weight.is_meta:
            nn.init.xavier_uniform_(self.in_proj_weight)
            nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        projected = F.linear(x, weight, bias)  # (N, L, E)
        return projected.reshape(-1, int(x.shape[1]), self.num_heads, self.embed_dim // self.num_heads).transpose(1, 2)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend (N, Lq, E) queries over (N, Lk, E) keys/values.

        Returns
        -------
        output : Tensor, shape (N, Lq, E)
        weights : Tensor, shape (N, Lq, Lk), or None
            Attention probabilities averaged over heads, when ``need_weights``.
        """
        # The packed projection holds the q, k and v weights in that order, as nn.MultiheadAttention's does.
        in_weights, in_biases = self.in_proj_weight.chunk(3), self.in_proj_bias.chunk(3)
        q, k, v = (self._heads(x, w, b) for x, w, b in zip((query, key, value), in_weights, in_biases, strict=True))
        dropout = self.dropout if self.training else 0.0
        if need_weights:
            probabilities = torch.softmax(q @ k.transpose(-2, -1) * (self.embed_dim // self.num_heads) ** -0.5, dim=-1)
            probabilities = F.dropout(probabilities, dropout, training=self.training)
            attended, weights = probabilities @ v, probabilities.mean(dim=1)
        else:
            attended, weights = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout), None
        output = attended.transpose(1, 2).reshape(-1, int(query.shape[1]), self.embed_dim)
        return self.out_proj(output), weights


class TransformerEncoderLayer(nn.Module):
    """``x + SA(norm1(x))``, then ``x + linear2(gelu(linear1(norm2(x))))``, with dropouts.

    With ``cross_attention`` (:class:`TransformerDecoderLayer`) a residual cross-attention to
    ``memory`` (``multihead_attn``, ``norm2``, ``dropout2``) comes between the two, and the
    feed-forward takes ``norm3`` and ``dropout3``, as ``nn.TransformerDecoderLayer`` names them.
    """

    cross_attention = False

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__()
        # Built in torch.nn's order, so a seed gives the weights it gives torch.nn's layers.
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        if self.cross_attention:
            self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        if self.cross_attention:  # parameters still in torch.nn's order: norm3's after norm2's
            self.norm3 = nn.LayerNorm(d_model)
            self.dropout3 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        normed = self.norm1(x)
        x = x + self.dropout1(self.self_attn(normed, normed, normed)[0])
        if not self.cross_attention:
            return x + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x))))))
        normed = self.norm2(x)
        x = x + self.dropout2(self.multihead_attn(normed, memory, memory)[0])
        return x + self.dropout3(self.linear2(self.dropout(F.gelu(self.linear1(self.norm3(x))))))


class TransformerDecoderLayer(TransformerEncoderLayer):
    """Pre-norm self-attention, cross-attention to ``memory`` and feed-forward, each residual."""

    cross_attention = True


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerEncoderLayer` under ``layers`` (no final norm)."""

    layer_class: type[nn.Module] = TransformerEncoderLayer

    def __init__(self, num_layers: int, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(self.layer_class(d_model, nhead, dim_feedforward, dropout) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, memory)
        return x


class TransformerDecoder(TransformerEncoder):
    """A stack of :class:`TransformerDecoderLayer` under ``layers`` (no final norm), attending to ``memory``."""

    layer_class = TransformerDecoderLayer
