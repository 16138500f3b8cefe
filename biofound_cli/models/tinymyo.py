"""TinyMyo: a small transformer over per-channel EMG patches (docs/models.md).

The module tree, parameter names and shapes match the upstream ``models/TinyMyo.py`` exactly,
so the official checkpoints load strictly and give the official outputs.

Tokens are ordered channel-major (token ``c * n_patches + s``). Upstream applies its rotary
embedding along the *head* axis instead of the token axis: every token of a head gets
the same rotation, so attention carries no positional information. ``rope="head"`` (the default)
keeps that rotation so official weights reproduce official outputs bit for bit; ``rope="none"``
skips it, which changes outputs only at rounding level and saves a little time.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from biofound_cli.models.family import InputGeometry, MaskingScheme, ModelFamily
from biofound_cli.models.layers import Mlp, PreNormBlock, init_transformer, mask_patches, self_attention
from biofound_cli.tasks import RECONSTRUCTION

ROPE_MODES = ("head", "none")


class PatchEmbed(nn.Module):
    """Cut each channel into non-overlapping patches and project every patch to ``embed_dim``."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        # One projection shared by all channels: a (1, patch_size) kernel over the (C, T) plane.
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=(1, patch_size), stride=(1, patch_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x.unsqueeze(1))  # (B, E, C, S)
        return x.flatten(2).transpose(1, 2)  # (B, C*S, E), channel-major


class PatchingModule(nn.Module):
    """Holds :class:`PatchEmbed` under ``patch_embed`` (the upstream key layout)."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        # Initialise the conv like a Linear layer on its (E, P) view, as upstream does.
        weight = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x)


class HeadAxisRotary(nn.Module):
    """The upstream RoPE as it is actually applied: the rotation angle depends on the head index.

    Pair ``(2j, 2j+1)`` of head ``h`` is rotated by ``h * theta_j`` with
    ``theta_j = base ** (-2j / head_dim)``, in float32, then cast back.
    """

    cache: torch.Tensor

    def __init__(self, head_dim: int, n_head: int, base: float = 10_000.0) -> None:
        super().__init__()
        # Computed on the CPU and then moved to the default device: arithmetic on the meta device (a model
        # built to check model.overrides) imports torch's compiler, about 1 s of CPU for a `biofound validate`.
        theta = 1.0 / (base ** (torch.arange(0, head_dim, 2, device="cpu")[: head_dim // 2].float() / head_dim))
        angles = torch.outer(torch.arange(n_head, dtype=torch.float32, device="cpu"), theta)
        cache = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)  # (H, hd/2, 2)
        self.register_buffer("cache", cache.to(torch.empty(0).device), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, H, N, hd); the cache row is chosen by the head index h.
        pairs = x.float().reshape(*x.shape[:-1], -1, 2)
        cache = self.cache.view(1, self.cache.shape[0], 1, -1, 2)
        cos, sin = cache[..., 0], cache[..., 1]
        rotated = torch.stack([pairs[..., 0] * cos - pairs[..., 1] * sin, pairs[..., 1] * cos + pairs[..., 0] * sin], dim=-1)
        return rotated.flatten(3).type_as(x)


class Attention(nn.Module):
    """Multi-head self-attention (:func:`~biofound_cli.models.layers.self_attention`) with upstream's head-axis rotation."""

    def __init__(
        self,
        dim: int,
        n_head: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        rope: str = "head",
    ) -> None:
        super().__init__()
        self.n_head = n_head
        self.attn_drop = attn_drop
        self.rope = HeadAxisRotary(dim // n_head, n_head) if rope == "head" else None
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attended = self_attention(x, self.qkv, self.n_head, self.attn_drop if self.training else 0.0, self.rope)
        return self.proj_drop(self.proj(attended))


class PatchReconstructionHead(nn.Module):
    """Project every token back to its ``patch_size`` samples: (B, C*S, E) → (B, C*S, P)."""

    def __init__(self, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.decoder_pred = nn.Linear(embed_dim, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder_pred(x)


def _reduce_channels(x: torch.Tensor, n_channels: int, reduction: str) -> torch.Tensor:
    """(B, C*S, E) → (B, S, F): channels concatenated (F = C*E, feature c*E + e) or averaged (F = E)."""
    batch, n_tokens, embed_dim = x.shape
    x = x.reshape(batch, n_channels, n_tokens // n_channels, embed_dim)
    if reduction == "mean":
        return x.mean(dim=1)
    return x.permute(0, 2, 1, 3).reshape(batch, n_tokens // n_channels, n_channels * embed_dim)


class EMGClassificationHead(nn.Module):
    """Reduce channels, average over patches, then one Linear layer to ``num_classes`` logits."""

    def __init__(self, embed_dim: int, num_classes: int, in_chans: int, reduction: str = "concat") -> None:
        super().__init__()
        self.in_chans = in_chans
        self.reduction = reduction
        n_features = embed_dim if reduction == "mean" else in_chans * embed_dim
        self.classifier = nn.Linear(n_features, num_classes)
        nn.init.xavier_uniform_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(_reduce_channels(x, self.in_chans, self.reduction).mean(dim=1))


class EMGRegressionHead(nn.Module):
    """A small 1-D conv head over patches, linearly resampled to ``target_length`` steps.

    Upstream's ``mean`` reduction crashes; here it averages over channels like the
    classification head does.
    """

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        output_dim: int,
        reduction: str = "concat",
        hidden_dim: int = 256,
        dropout: float = 0.1,
        target_length: int = 500,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.reduction = reduction
        self.target_length = target_length
        n_features = embed_dim if reduction == "mean" else in_chans * embed_dim
        self.regressor = nn.Sequential(
            nn.Conv1d(n_features, hidden_dim, kernel_size=1),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv1d(hidden_dim, hidden_dim, kernel_size=3, padding=1, groups=hidden_dim),
            nn.SiLU(),
            nn.Conv1d(hidden_dim, output_dim, kernel_size=1),
        )
        for module in self.regressor:
            if isinstance(module, nn.Conv1d):
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
                assert module.bias is not None  # the convolutions above keep their bias
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _reduce_channels(x, self.in_chans, self.reduction).transpose(1, 2)  # (B, F, S)
        x = self.regressor(x)  # (B, K, S)
        if x.shape[-1] != self.target_length:
            x = F.interpolate(x, size=self.target_length, mode="linear", align_corners=False)
        return x.transpose(1, 2)  # (B, target_length, K)


class TinyMyo(nn.Module):
    """TinyMyo encoder with a reconstruction, classification or regression head.

    Parameters
    ----------
    img_size : int
        Nominal number of samples per window; must be a multiple of ``patch_size``. Any
        multiple of ``patch_size`` is accepted at run time.
    patch_size : int
        Samples per patch (token).
    in_chans : int
        Number of EMG channels.
    embed_dim, n_layer, n_head, mlp_ratio, qkv_bias : transformer width, depth, heads, MLP
        expansion and whether ``qkv`` has a bias.
    attn_drop, proj_drop, drop_path : float
        Dropout on attention weights, on projections/MLP, and the stochastic-depth rate (all
        inactive in eval mode).
    task : str
        ``"pretraining"``, ``"classification"`` or ``"regression"``; ``num_classes == 0`` always
        gives the reconstruction head, as upstream.
    classification_type : str
        Stored only (upstream uses it in the training task, not in the model).
    reduction_type : str
        ``"concat"`` or ``"mean"`` over channels in the classification/regression heads.
    num_classes : int
        Classes (classification) or output dimensions (regression); 0 for pre-training.
    reg_target_len : int
        Output length of the regression head.
    rope : str
        ``"head"`` (upstream behaviour) or ``"none"``; see the module docstring.
    """

    def __init__(
        self,
        img_size: int = 1000,
        patch_size: int = 20,
        in_chans: int = 16,
        embed_dim: int = 192,
        n_layer: int = 8,
        n_head: int = 3,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        attn_drop: float = 0.1,
        proj_drop: float = 0.1,
        drop_path: float = 0.1,
        task: str = "classification",
        classification_type: str = "ml",
        reduction_type: str = "concat",
        num_classes: int = 53,
        reg_target_len: int = 500,
        rope: str = "head",
    ) -> None:
        super().__init__()
        if img_size % patch_size != 0:
            raise ValueError(f"img_size ({img_size}) must be a multiple of patch_size ({patch_size})")
        if embed_dim % n_head != 0:
            raise ValueError(f"embed_dim ({embed_dim}) must be a multiple of n_head ({n_head})")
        if task not in ("pretraining", "classification", "regression"):
            raise ValueError(f"task must be 'pretraining', 'classification' or 'regression', not {task!r}")
        if reduction_type not in ("concat", "mean"):
            raise ValueError(f"reduction_type must be 'concat' or 'mean', not {reduction_type!r}")
        if rope not in ROPE_MODES:
            raise ValueError(f"rope must be one of {ROPE_MODES}, not {rope!r}")
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.num_classes = num_classes
        self.task = task
        self.classification_type = classification_type
        self.reduction_type = reduction_type
        self.reg_target_len = reg_target_len

        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.patch_embedding = PatchingModule(patch_size, embed_dim)
        self.blocks = nn.ModuleList(
            PreNormBlock(
                embed_dim,
                Attention(embed_dim, n_head, qkv_bias, attn_drop, proj_drop, rope),
                Mlp(embed_dim, int(embed_dim * mlp_ratio), drop=proj_drop),
                drop_path,
            )
            for _ in range(n_layer)
        )
        self.norm = nn.LayerNorm(embed_dim)
        if task == "pretraining" or num_classes == 0:
            self.model_head: nn.Module = PatchReconstructionHead(embed_dim, patch_size)
        elif task == "classification":
            self.model_head = EMGClassificationHead(embed_dim, num_classes, in_chans, reduction_type)
        else:
            self.model_head = EMGRegressionHead(in_chans, embed_dim, num_classes, reduction_type, target_length=reg_target_len)
        init_transformer(self, nn.init.xavier_uniform_)

    def prepare_tokens(self, x_signal: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Patch-embed ``x_signal`` (B, C, T) and swap in ``mask_token`` where any sample of a patch is masked.

        Parameters
        ----------
        x_signal : torch.Tensor
            (B, C, T) windows.
        mask : torch.Tensor | None
            (B, C, T) bool, True where a sample is hidden; None masks nothing.
        """
        return mask_patches(self.patch_embedding(x_signal), mask, self.mask_token, self.patch_size)

    def forward(self, x_signal: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model.

        Parameters
        ----------
        x_signal : torch.Tensor
            (B, C, T) with ``C == in_chans`` and T a multiple of ``patch_size``.
        mask : torch.Tensor | None
            Optional (B, C, T) bool; patches with any masked sample become the mask token.

        Returns
        -------
        tuple[torch.Tensor, torch.Tensor]
            The head output — (B, C*S, patch_size) reconstructions, (B, K) logits or
            (B, reg_target_len, K) regression — and a copy of ``x_signal``.
        """
        if x_signal.ndim != 3 or x_signal.shape[1] != self.in_chans or x_signal.shape[2] % self.patch_size:
            raise ValueError(
                f"TinyMyo expects input (batch, {self.in_chans}, n_times) with n_times a multiple of "
                f"{self.patch_size}, got {tuple(x_signal.shape)}"
            )
        x = self.prepare_tokens(x_signal, mask)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return self.model_head(x), x_signal.clone()


class TinyMyoFamily(ModelFamily):
    """TinyMyo: fixed channel count, any multiple of the patch length, called ``model(x, mask)``."""

    key = "tinymyo"
    name = "TinyMyo"
    model_class = TinyMyo
    modality = "emg"
    tasks = (RECONSTRUCTION, "bc", "ml", "mcc", "regression")
    head_prefixes = ("model_head.",)
    leaves_parameters_unused = False
    depth_argument = "n_layer"
    regression_axes = ("reg_target_len", "num_classes")
    pretrain_only_prefixes = ("model_head.decoder_pred.",)
    regression_prefixes = ("model_head.regressor.",)
    key_marker = "patch_embedding.patch_embed."
    masking = MaskingScheme(patch=(1, 20), ratio=0.5, per_sample=True, unmasked_weight=0.1)
    default_variant = "tinymyo"
    hub_task_folders = {"db5": "DB5", "uci-emg": "UCI_EMG", "epn612": "EPN612"}
    class_count_tensors = {
        **{task: ("model_head.classifier.weight", 0, None) for task in ("bc", "ml", "mcc")},
        "regression": ("model_head.regressor.5.weight", 0, None),
    }

    def geometry(self, kwargs: dict[str, Any]) -> InputGeometry:
        return InputGeometry(
            int(kwargs["in_chans"]), None, int(kwargs["patch_size"]), int(kwargs["img_size"]), n_chans_key="in_chans"
        )

    def task_kwargs(self, task: str, num_classes: int | None) -> dict[str, Any]:
        if task == RECONSTRUCTION:
            return {"task": "pretraining"}  # the upstream constructor's own word
        if task == "regression":
            return {"task": "regression"}
        return {"task": "classification", "classification_type": task}

    def head_task(self, kwargs: dict[str, Any]) -> str | None:
        if kwargs.get("task") == "pretraining" or int(kwargs.get("num_classes", 0) or 0) == 0:
            return RECONSTRUCTION
        return "regression" if kwargs.get("task") == "regression" else kwargs.get("classification_type")


FAMILY = TinyMyoFamily()
