"""FEMBA: a bidirectional-Mamba encoder over 2-D patches of a (channels x samples) recording.

Module names, parameter shapes and the state-dict order match the reference implementation,
so the official checkpoints load with ``load_state_dict(strict=True)``. The input is expected
already normalised (the transforms do that); the model itself only zeroes masked samples.

Shapes: ``x`` (batch, num_channels, seq_length). Patches of ``patch_size`` = (ph, pw) over the
(channel, time) plane give a grid (gh, gw); the encoder sees ``gw`` tokens of width
``embed_dim * gh``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from biofound_cli.models.family import InputGeometry, MaskingScheme, ModelFamily
from biofound_cli.models.mamba import Mamba
from biofound_cli.tasks import RECONSTRUCTION

CLASSIFICATION_TYPES = ("bc", "ml", "mcc", "mc", "mmc")
"""Head types: binary (bc), multi-label (ml), multi-class (mcc), per-channel binary (mc),
per-channel multi-class (mmc, output (batch, num_channels, num_classes))."""


class PatchEmbed(nn.Module):
    """Conv2d patches of the (channel, time) plane -> tokens (batch, gw, embed_dim * gh).

    A token's feature index is ``e * gh + h`` (embedding-major), as in the reference model.
    """

    def __init__(self, patch_size: tuple[int, int], stride: tuple[int, int], embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=patch_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.proj(x.unsqueeze(1))  # (batch, E, gh, gw)
        return patches.flatten(1, 2).transpose(1, 2)


class BidirectionalMamba(nn.Module):
    """Sum of a forward Mamba and a Mamba run over the time-reversed sequence."""

    def __init__(self, d_model: int, expand: int) -> None:
        super().__init__()
        self.mamba_fwd = Mamba(d_model=d_model, expand=expand)
        self.mamba_rev = Mamba(d_model=d_model, expand=expand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mamba_fwd(x) + self.mamba_rev(x.flip(1)).flip(1)


class Decoder(nn.Module):
    """Reconstruction head: a 'same' 2-D conv over the (token, feature) plane, then unpatchify."""

    def __init__(
        self,
        embed_dim: int,
        grid_height: int,
        patch_size: tuple[int, int],
        stride: tuple[int, int],
        kernel_dec: tuple[int, int],
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.grid_height = grid_height
        padding = ((kernel_dec[0] - 1) // 2, (kernel_dec[1] - 1) // 2)
        self.dec_conv = nn.Conv2d(1, 1, kernel_size=kernel_dec, padding=padding, bias=False)
        self.conv_transpose = nn.ConvTranspose2d(embed_dim, 1, kernel_size=patch_size, stride=stride)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.dec_conv(tokens.unsqueeze(1)).squeeze(1)  # (batch, gw, E * gh)
        x = x.transpose(1, 2).unflatten(1, (self.embed_dim, self.grid_height))  # (batch, E, gh, gw)
        return self.conv_transpose(x).squeeze(1)


class MambaClassifier(nn.Module):
    """Classification head: Linear -> GELU -> Mamba -> mean over tokens -> Linear."""

    def __init__(self, d_model: int, num_classes: int, num_channels: int, classification_type: str) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_channels = num_channels
        self.classification_type = classification_type
        hidden = 256
        self.fc1 = nn.Linear(d_model, hidden)
        self.mamba_1 = Mamba(d_model=hidden, expand=2)
        # One logit per class (bc, ml, mcc), per channel (mc), or per channel and class (mmc).
        out_features = {"mc": num_channels, "mmc": num_channels * num_classes}.get(classification_type, num_classes)
        self.fc3 = nn.Linear(hidden, out_features)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.mamba_1(F.gelu(self.fc1(tokens)))
        logits = self.fc3(x.mean(dim=1))
        if self.classification_type == "mmc":
            # The reference post-processing hard-codes 6 classes here; we use num_classes.
            # The batch size named, not -1: an exported graph then states (batch, C, K), not unnamed axes.
            logits = logits.view(logits.shape[0], self.num_channels, self.num_classes)
        return logits


class FEMBA(nn.Module):
    """FEMBA encoder with a reconstruction decoder (``num_classes == 0``) or a classifier.

    Parameters
    ----------
    seq_length : int
        Samples per window (1280 = 5 s at 256 Hz for the official weights).
    num_channels : int
        EEG channels (22 bipolar TCP channels for the official weights).
    num_classes : int
        0 builds the reconstruction decoder; otherwise the classifier's classes.
    kernel_1 : int
        Accepted for compatibility with the reference constructor; unused there too.
    kernel_dec : tuple[int, int]
        Kernel of the decoder's 'same' convolution over the (token, feature) plane.
    exp : int
        Mamba expansion factor (d_inner = exp * embed_dim * gh).
    patch_size, stride : tuple[int, int]
        Patch and stride over (channels, samples).
    embed_dim : int
        Embedding size per patch row.
    num_blocks : int
        Number of bidirectional Mamba blocks.
    classification_type : str
        One of ``"bc"``, ``"ml"``, ``"mcc"``, ``"mc"``, ``"mmc"`` (ignored for reconstruction).
    """

    def __init__(
        self,
        seq_length: int = 1280,
        num_channels: int = 22,
        num_classes: int = 0,
        kernel_1: int = 64,
        kernel_dec: tuple[int, int] = (31, 31),
        exp: int = 4,
        patch_size: tuple[int, int] = (2, 16),
        stride: tuple[int, int] = (2, 16),
        embed_dim: int = 79,
        num_blocks: int = 1,
        classification_type: str = "bc",
    ) -> None:
        super().__init__()
        if num_classes > 0 and classification_type not in CLASSIFICATION_TYPES:
            raise ValueError(f"classification_type must be one of {', '.join(CLASSIFICATION_TYPES)}, got {classification_type!r}")
        if num_classes < 0:
            raise ValueError(f"num_classes must be 0 (reconstruction) or positive, got {num_classes}")
        # Recipes and JSON configs give lists; the grid arithmetic and the checkpoint metadata want pairs.
        patch_size, stride, kernel_dec = ((int(pair[0]), int(pair[1])) for pair in (patch_size, stride, kernel_dec))
        # Patch rows (channel axis) and columns (time axis).
        grid_height = (num_channels - patch_size[0]) // stride[0] + 1
        grid_width = (seq_length - patch_size[1]) // stride[1] + 1
        if grid_height < 1 or grid_width < 1:
            raise ValueError(f"input of {num_channels} channels x {seq_length} samples is smaller than one patch of {patch_size}")
        _refuse_untiled(num_channels, seq_length, patch_size, stride)
        self.seq_length = seq_length
        self.num_channels = num_channels
        self.num_classes = num_classes
        self.kernel_1 = kernel_1
        self.exp = exp
        self.patch_size = patch_size
        self.stride = stride
        self.embed_dim = embed_dim
        self.num_blocks = num_blocks
        self.classification_type = classification_type
        d_model = embed_dim * grid_height

        # Registration order fixes the state-dict order: pos_embed, patch_embed, blocks, norms, head.
        self.pos_embed = nn.Parameter(torch.zeros(1, grid_width, d_model))
        self.patch_embed = PatchEmbed(patch_size, stride, embed_dim)
        self.mamba_blocks = nn.ModuleList(BidirectionalMamba(d_model, exp) for _ in range(num_blocks))
        self.norm_layers = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(num_blocks))
        if num_classes == 0:
            self.decoder = Decoder(embed_dim, grid_height, patch_size, stride, kernel_dec)
        else:
            self.classifier = MambaClassifier(d_model, num_classes, num_channels, classification_type)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode ``x`` (batch, num_channels, seq_length) with the samples where ``mask`` is True zeroed.

        Returns ``(output, x)``: the reconstruction (batch, gh * ph, gw * pw) or the logits,
        and the unmasked input (the reconstruction target), as the reference model does.
        """
        tokens = x if mask is None else x.masked_fill(mask, 0.0)
        tokens = self.patch_embed(tokens) + self.pos_embed
        for block, norm in zip(self.mamba_blocks, self.norm_layers, strict=True):
            tokens = norm(tokens + block(tokens))
        head = self.decoder if self.num_classes == 0 else self.classifier
        return head(tokens), x


def _refuse_untiled(num_channels: int, seq_length: int, patch_size: tuple[int, int], stride: tuple[int, int]) -> None:
    """Refuse an input the patch grid does not cover to its last channel and sample.

    The patch convolution drops the rows and samples past its last whole patch: a 19-channel
    input trained with the 19th channel never seen, and a reconstruction one row short of its target.
    """
    for size, patch, step, what, setting in (
        (num_channels, patch_size[0], stride[0], "channels", "preprocess.channels"),
        (seq_length, patch_size[1], stride[1], "samples", "preprocess.window_seconds"),
    ):
        left_out = (size - patch) % step
        if left_out:
            raise ValueError(
                f"its patches of {patch} {what} every {step} cover {size - left_out} of the {size} {what}, so the last "
                f"{left_out} would never be seen; give it {size - left_out} or {size - left_out + step} {what} ({setting})"
            )


class FembaFamily(ModelFamily):
    """FEMBA: fixed montage and window length, called ``model(x, mask)``."""

    key = "femba"
    name = "FEMBA"
    model_class = FEMBA
    modality = "eeg"
    tasks = (RECONSTRUCTION, "bc", "ml", "mc", "mcc", "mmc")
    head_prefixes = ("decoder.", "classifier.")
    leaves_parameters_unused = False
    depth_argument = "num_blocks"
    pretrain_only_prefixes = ("decoder.",)
    key_marker = "mamba_blocks."
    masking = MaskingScheme(patch=(2, 16), ratio=0.6, per_sample=False, unmasked_weight=0.0)
    default_variant = "femba-base"
    hub_task_folders = {"tuab": "TUAB", "tuar": "TUAR", "tusl": "TUSL"}
    class_count_tensors = {
        **{task: ("classifier.fc3.weight", 0, None) for task in ("bc", "ml", "mcc")},
        "mmc": ("classifier.fc3.weight", 0, "num_channels"),
    }

    def geometry(self, kwargs: dict[str, Any]) -> InputGeometry:
        n_times = int(kwargs["seq_length"])
        return InputGeometry(
            int(kwargs["num_channels"]), n_times, 1, n_times, n_chans_key="num_channels", n_times_key="seq_length"
        )

    def task_kwargs(self, task: str, num_classes: int | None) -> dict[str, Any]:
        return {} if task == RECONSTRUCTION else {"classification_type": task}


FAMILY = FembaFamily()
