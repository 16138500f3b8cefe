"""The Mamba block (selective state-space model), as in mamba-ssm's simple ``Mamba``.

:class:`Mamba` has the constructor arguments, parameter names, shapes, registration order and
initialisation of mamba-ssm's simple ``Mamba`` module, so official FEMBA checkpoints load into
it unchanged. Its selective scan is :func:`~biofound_cli.models.selective_scan.selective_scan`:
mamba-ssm's fused CUDA kernel on a GPU when installed, a pure-PyTorch scan otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from biofound_cli.models.selective_scan import selective_scan

# ---------------------------------------------------------------------------------------------
# The Mamba block
# ---------------------------------------------------------------------------------------------


class Mamba(nn.Module):
    """mamba-ssm's simple Mamba block: (batch, L, d_model) -> (batch, L, d_model).

    Parameters
    ----------
    d_model : int
        Width of the input and output.
    d_state : int
        Size of the SSM state per channel.
    d_conv : int
        Width of the causal depthwise convolution.
    expand : int | float
        ``d_inner = int(expand * d_model)``.
    dt_rank : int | str
        Rank of the step-size projection; ``"auto"`` means ``ceil(d_model / 16)``.
    dt_min, dt_max : float
        Range of the initial step sizes (log-uniform).
    dt_init : str
        ``"random"`` (uniform dt_proj weights) or ``"constant"``.
    dt_scale : float
        Scale of the dt_proj weight initialisation.
    dt_init_floor : float
        Lower clamp of the initial step sizes.
    conv_bias : bool
        Bias in the depthwise convolution.
    bias : bool
        Bias in the input and output projections.
    use_fast_path : bool
        Accepted for compatibility; the CUDA kernels are used whenever they are available.
    layer_idx : int | None
        Accepted for compatibility (mamba-ssm uses it for inference caches).
    device, dtype
        Where and in which dtype to create the parameters.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int | float = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        use_fast_path: bool = True,
        layer_idx: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.use_fast_path = use_fast_path
        self.layer_idx = layer_idx

        # Creation order follows mamba-ssm so that the same seed draws the same weights.
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias, **factory)
        self.conv1d = nn.Conv1d(
            self.d_inner,
            self.d_inner,
            kernel_size=d_conv,
            groups=self.d_inner,
            padding=d_conv - 1,
            bias=conv_bias,
            **factory,
        )
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **factory)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **factory)

        dt_init_std = self.dt_rank**-0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, dt_init_std)
        elif dt_init == "random":
            nn.init.uniform_(self.dt_proj.weight, -dt_init_std, dt_init_std)
        else:
            raise ValueError(f"dt_init must be 'random' or 'constant', got {dt_init!r}")
        # Step sizes log-uniform in [dt_min, dt_max]; the bias is their inverse softplus so
        # that softplus(bias) recovers them.
        dt = torch.exp(torch.rand(self.d_inner, **factory) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(
            min=dt_init_floor
        )
        inv_softplus_dt = dt + torch.log(-torch.expm1(-dt))
        with torch.no_grad():
            self.dt_proj.bias.copy_(inv_softplus_dt)

        # S4D-real initialisation: A = -[1, 2, ..., d_state] for every channel.
        A = torch.arange(1, d_state + 1, dtype=torch.float32, device=device)
        self.A_log = nn.Parameter(torch.log(A).repeat(self.d_inner, 1).contiguous())
        self.D = nn.Parameter(torch.ones(self.d_inner, device=device))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias, **factory)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``hidden_states`` of shape (batch, L, d_model)."""
        # Everything stays (batch, L, channels), the layout the projections produce and take:
        # mamba-ssm's (batch, channels, L) made every projection and the convolution copy
        # their input (~30 % of FEMBA's inference time on a CPU).
        x, z = self.in_proj(hidden_states).chunk(2, dim=-1)
        x = self.act(causal_depthwise_conv(x, self.conv1d.weight, self.conv1d.bias))

        x_dbl = self.x_proj(x)  # (batch, L, dt_rank + 2 * d_state)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        # dt_proj's bias is added inside the scan (before the softplus), as mamba-ssm does.
        delta = F.linear(dt, self.dt_proj.weight)
        A = -torch.exp(self.A_log.float())
        y = selective_scan(
            x.transpose(1, 2),
            delta.transpose(1, 2),
            A,
            B.transpose(1, 2),
            C.transpose(1, 2),
            self.D.float(),
            z=z.transpose(1, 2),
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
        )
        return self.out_proj(y.transpose(1, 2))


def causal_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """mamba-ssm's causal depthwise ``conv1d`` on channels-last input: (batch, L, d) -> (batch, L, d).

    Parameters
    ----------
    x : torch.Tensor
        Input of shape (batch, L, d); any strides (a chunk of the input projection).
    weight : torch.Tensor
        The ``nn.Conv1d`` weight, shape (d, 1, width).
    bias : torch.Tensor | None
        The ``nn.Conv1d`` bias, shape (d,).

    Returns
    -------
    torch.Tensor
        ``y[:, t] = bias + sum_k weight[:, 0, k] * x[:, t - width + 1 + k]`` (zeros before the start).

    With a width of 4 this is four multiply-adds along the contiguous channel axis; the
    grouped ``conv1d`` on (batch, d, L) took ~28 ms a call at FEMBA-base's shape on two cores.
    """
    width, seqlen = int(weight.shape[-1]), int(x.shape[1])
    taps = weight.reshape(weight.shape[0], width).t().contiguous().to(x.dtype)  # (width, d)
    padded = F.pad(x, (0, 0, width - 1, 0))
    out = padded[:, :seqlen] * taps[0]
    for k in range(1, width):
        out = out + padded[:, k : k + seqlen] * taps[k]
    return out if bias is None else out + bias.to(x.dtype)
