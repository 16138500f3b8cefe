"""LUNA: a topology-agnostic EEG model that unifies any channel set into a fixed set of queries (docs/models.md).

The module tree, parameter names, shapes and order match the upstream ``models/LUNA.py``, so the
official checkpoints load strictly. Four deliberate differences:

* every token gets its own sample's location (and channel) embedding; upstream tiles them in
  sample-major order, which mixes samples whenever the montages of a batch differ;
* location jitter is drawn only in training mode (upstream draws it whenever a mask is passed,
  so its evaluation is random); an explicit ``channel_location_noise`` is always applied;
* the phase of a frequency bin that is only rounding noise is set to 0 (upstream keeps whatever
  angle its FFT's rounding gives, which differs between CPU, GPU and ONNX);
* when traced for export, the spectrum of each patch is a matrix product with a fixed DFT basis
  (:func:`dft_spectrum`) instead of ``rfft``, which ONNX cannot express.

Reshapes leave the batch axis as ``-1`` and read every other size as a Python int, so a traced
(exported) graph keeps the batch dynamic and the channel and sample counts fixed.

Shapes: ``B`` batch, ``C`` channels, ``T`` samples, ``P`` patch size, ``S = T / P`` patches per
channel, ``E`` embed_dim, ``Q`` queries, ``W = Q * E`` width of the temporal encoder.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from biofound_cli.models.attention import MultiheadAttention, TransformerDecoder, TransformerEncoder
from biofound_cli.models.family import InputGeometry, MaskingScheme, ModelFamily
from biofound_cli.models.layers import Mlp, init_linear_and_norm, init_transformer, mask_patches
from biofound_cli.models.rotary import rotary_block
from biofound_cli.tasks import RECONSTRUCTION

N_CHANNEL_NAMES = 90
"""Size of the channel-name vocabulary (``biofound_cli.signals.electrodes.CHANNEL_VOCABULARY``)."""

PHASE_FLOOR = 1e-5
"""A frequency bin weaker than this fraction of its patch's L1 norm gets phase 0."""

LOCATION_NOISE_STD = 0.02
"""Standard deviation of the training-time jitter added to min-max normalised locations."""


class PatchEmbedNetwork(nn.Module):
    """Embed each P-sample patch with three small convolutions along time.

    The GroupNorms see all ``C * S`` patches of a sample at once, so a patch's
    embedding depends on the rest of the recording.
    """

    def __init__(self, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        kernel = patch_size // 2
        width = embed_dim // 4
        self.proj_in = nn.Sequential(
            nn.Conv2d(1, width, kernel_size=(1, kernel - 1), stride=(1, kernel // 2), padding=(0, kernel // 2 - 1)),
            nn.GroupNorm(4, width),
            nn.GELU(),
            nn.Conv2d(width, width, kernel_size=(1, 3), padding=(0, 1)),
            nn.GroupNorm(4, width),
            nn.GELU(),
            nn.Conv2d(width, width, kernel_size=(1, 3), padding=(0, 1)),
            nn.GroupNorm(4, width),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor, patch_size: int) -> torch.Tensor:
        n_tokens = int(x.shape[1]) * (int(x.shape[2]) // patch_size)
        features = self.proj_in(x.reshape(-1, 1, n_tokens, patch_size))  # (B, E/4, C*S, w)
        # Feature index w * (E/4) + e: conv output position major, conv channel minor.
        return features.permute(0, 2, 3, 1).reshape(-1, n_tokens, int(features.shape[1]) * int(features.shape[3]))


@functools.cache
def _dft_basis(patch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary DFT bases (P, P/2+1) whose matrix product with a patch equals ``rfft``."""
    n_bins = patch_size // 2 + 1
    # Reduce k*n modulo P in integers first, so large products lose no precision.
    turns = torch.outer(torch.arange(patch_size), torch.arange(n_bins)) % patch_size
    angle = 2 * math.pi * turns.double() / patch_size
    real = torch.cos(angle)
    imag = -torch.sin(angle)
    # sin(k*pi) must be exactly 0 so DC and Nyquist bins have phase exactly 0 or pi, as rfft gives.
    imag[(2 * turns) % patch_size == 0] = 0.0
    return real.float(), imag.float()


def dft_spectrum(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Magnitude and phase of the real DFT of (..., P) patches, as matrix products ONNX can export.

    Equal to ``rfft`` within rounding, except for the phase of bins whose magnitude is itself
    rounding noise (e.g. the non-DC bins of a constant patch), where any phase is as good.

    Parameters
    ----------
    patches : torch.Tensor
        (..., P) real patches; the DFT runs along the last axis.
    """
    real_basis, imag_basis = (
        basis.to(device=patches.device, dtype=patches.dtype) for basis in _dft_basis(int(patches.shape[-1]))
    )
    real = patches @ real_basis
    imag = patches @ imag_basis
    # A sum of signed zeros can be -0, whose phase is -pi; rfft returns +0 there.
    imag = torch.where(imag == 0, torch.zeros_like(imag), imag)
    magnitude = torch.sqrt(real * real + imag * imag)
    # ONNX's atan2 is atan(imag / real) plus quadrant fixes: keep a zero bin off the 0/0 (phase 0,
    # as torch.atan2(0, 0)), and give a negative real bin phase +pi, as torch.atan2(+0, -1) does.
    phase = torch.atan2(imag, torch.where(magnitude == 0, torch.ones_like(real), real))
    return magnitude, torch.where((imag == 0) & (real < 0), torch.full_like(phase, math.pi), phase)


class FrequencyFeatureEmbedder(nn.Module):
    """Embed the magnitude and phase spectrum of each patch: 2 * (P/2 + 1) features → E."""

    def __init__(self, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        in_features = 2 * (patch_size // 2 + 1)
        self.frequency_to_embed = Mlp(in_features, 4 * in_features, embed_dim)

    def forward(self, x: torch.Tensor, patch_size: int) -> torch.Tensor:
        patches = x.reshape(-1, int(x.shape[1]) * (int(x.shape[2]) // patch_size), patch_size)  # (B, C*S, P)
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            magnitude, phase = dft_spectrum(patches)
        else:
            spectrum = torch.fft.rfft(patches, dim=-1)
            magnitude, phase = spectrum.abs(), spectrum.angle()
        # The phase of a bin that is only rounding noise (the non-DC bins of a constant patch)
        # depends on the FFT implementation; pin it to 0 so every backend and ONNX agree.
        negligible = magnitude <= PHASE_FLOOR * patches.abs().sum(dim=-1, keepdim=True)
        phase = torch.where(negligible, torch.zeros_like(phase), phase)
        return self.frequency_to_embed(torch.cat([magnitude, phase], dim=-1))


def nerf_encoding(locations: torch.Tensor, embed_dim: int) -> torch.Tensor:
    """Encode xyz positions with sin/cos at ``embed_dim // 6`` octaves, zero-padded to ``embed_dim``.

    Parameters
    ----------
    locations : Tensor, shape (B, C, 3)
    embed_dim : int

    Returns
    -------
    Tensor, shape (B, C, embed_dim)
        Index ``f * 6 + axis * 2 + {0: sin, 1: cos}`` for octave ``f``; the last
        ``embed_dim - 6 * (embed_dim // 6)`` entries are zero.
    """
    n_octaves = embed_dim // 6
    scales = 2.0 ** torch.arange(n_octaves, device=locations.device, dtype=locations.dtype)
    scaled = locations.unsqueeze(-2) * scales[:, None]  # (B, C, F, 3)
    encoded = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=-1).flatten(-3)
    return F.pad(encoded, (0, embed_dim - 6 * n_octaves))


class CrossAttentionBlock(nn.Module):
    """Unify any number of channel tokens into ``num_queries`` learned queries per time patch."""

    def __init__(self, num_queries: int, embed_dim: int, num_heads: int, ff_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.query_embed = nn.Parameter(torch.zeros(1, num_queries, embed_dim))
        # Unused, but part of the official state dict.
        self.temparature = nn.Parameter(torch.tensor(1.0), requires_grad=False)
        self.cross_attention = MultiheadAttention(embed_dim, num_heads, dropout=dropout)
        self.ffn = Mlp(embed_dim, ff_dim, embed_dim, drop=dropout, norm=True)
        self.keys_norm = nn.LayerNorm(embed_dim)
        self.values_norm = nn.LayerNorm(embed_dim)
        self.queries_norm = nn.LayerNorm(embed_dim)
        self.query_self_attn = TransformerEncoder(3, embed_dim, num_heads, dim_feedforward=ff_dim, dropout=dropout)

    def initialize_weights(self) -> None:
        nn.init.orthogonal_(self.query_embed)
        init_linear_and_norm(self, nn.init.xavier_normal_)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map (N, C, E) channel tokens to (N, Q, E) queries and the head-averaged weights (N, Q, C)."""
        queries = self.queries_norm(self.query_embed).expand(x.shape[0], -1, -1)
        keys = self.keys_norm(x)
        values = self.values_norm(x)
        attended, weights = self.cross_attention(queries, keys, values, need_weights=True)
        attended = self.ffn(attended) + attended
        return self.query_self_attn(attended), weights


class ClassificationHeadWithQueries(nn.Module):
    """Pool the (B, S, W) latent with one learned query, then an MLP to ``num_classes`` logits."""

    def __init__(self, width: int, num_heads: int, num_classes: int) -> None:
        super().__init__()
        self.decoder_attn = MultiheadAttention(width, num_heads, dropout=0.15)
        self.decoder_ffn = Mlp(width, 4 * width, num_classes, drop=0.15)
        self.learned_agg = nn.Parameter(torch.randn(1, 1, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = self.learned_agg.expand(x.shape[0], -1, -1)
        pooled = self.decoder_attn(query, x, x, need_weights=False)[0][:, 0]
        return self.decoder_ffn(pooled)


class PatchReconstructionHeadWithQueries(nn.Module):
    """Decode every (channel, patch) from per-channel queries attending to that patch's Q latents."""

    def __init__(self, patch_size: int, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.decoder_pred = TransformerDecoder(1, embed_dim, num_heads, dim_feedforward=4 * embed_dim, dropout=0.0)
        self.norm = nn.LayerNorm(embed_dim)
        self.decoder_linear = Mlp(embed_dim, 4 * embed_dim, patch_size)

    def forward(self, latent: torch.Tensor, decoder_queries: torch.Tensor) -> torch.Tensor:
        """Map latent (B, S, Q*E) and queries (B, C, E) to the reconstruction (B, C, S*P)."""
        n_patches, width = int(latent.shape[1]), int(latent.shape[2])
        n_channels, embed_dim = int(decoder_queries.shape[1]), int(decoder_queries.shape[2])
        memory = latent.reshape(-1, width // embed_dim, embed_dim)  # (B*S, Q, E)
        queries = decoder_queries.unsqueeze(1).expand(-1, n_patches, -1, -1).reshape(-1, n_channels, embed_dim)
        patches = self.decoder_linear(self.norm(self.decoder_pred(queries, memory)))  # (B*S, C, P)
        patches = patches.reshape(-1, n_patches, n_channels, self.patch_size).transpose(1, 2)
        return patches.reshape(-1, n_channels, n_patches * self.patch_size)


class ChannelEmbeddings(nn.Module):
    """A learned vector per channel name of the 90-name vocabulary (pre-training only)."""

    def __init__(self, embed_dim: int, n_names: int = N_CHANNEL_NAMES) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(n_names, embed_dim)

    def forward(self, channel_names: torch.Tensor) -> torch.Tensor:
        return self.embeddings(channel_names)


class LUNA(nn.Module):
    """LUNA with a classification head (``num_classes > 0``) or the masked-reconstruction head.

    Parameters
    ----------
    patch_size : int
        Samples per patch P; the input length must be a multiple of it.
    num_queries : int
        Learned queries Q that every time patch's channels are unified into.
    embed_dim : int
        Width E of a query (a multiple of 16); the temporal encoder is Q * E wide.
    depth : int
        Number of rotary transformer blocks.
    num_heads : int
        Heads of the channel cross-attention; the temporal encoder uses ``num_heads * num_queries``.
    mlp_ratio : float
        Hidden width of the feed-forward layers relative to their input.
    norm_layer : callable
        Normalisation of the temporal encoder (``nn.LayerNorm`` in every official model).
    drop_path : float
        Stochastic-depth rate of every temporal block.
    num_classes : int
        Number of logits; 0 builds the pre-training reconstruction head and channel embeddings.
    """

    def __init__(
        self,
        patch_size: int = 40,
        num_queries: int = 4,
        embed_dim: int = 64,
        depth: int = 8,
        num_heads: int = 2,
        mlp_ratio: float = 4.0,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        drop_path: float = 0.0,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if embed_dim % 16:
            raise ValueError(f"embed_dim must be a multiple of 16 (four GroupNorm groups of E/4), got {embed_dim}.")
        kernel = patch_size // 2
        conv_width = (patch_size - 1) // max(kernel // 2, 1) + 1
        if kernel < 4 or conv_width * embed_dim // 4 != embed_dim:
            raise ValueError(
                f"patch_size {patch_size} gives {conv_width} convolution outputs per patch; the patch "
                "embedding needs exactly 4 (patch_size 40 in every official model)."
            )
        self.patch_size = patch_size
        self.num_queries = num_queries
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_classes = num_classes
        self.depth = depth
        width = embed_dim * num_queries

        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.patch_embed = PatchEmbedNetwork(embed_dim, patch_size)
        self.freq_embed = FrequencyFeatureEmbedder(embed_dim, patch_size)
        self.channel_location_embedder = nn.Sequential(Mlp(embed_dim, 2 * embed_dim, embed_dim, norm=True))
        self.cross_attn = CrossAttentionBlock(num_queries, embed_dim, num_heads, ff_dim=int(mlp_ratio * embed_dim))
        self.blocks = nn.ModuleList(
            rotary_block(width, num_heads * num_queries, mlp_ratio, drop_path, norm_layer) for _ in range(depth)
        )
        self.norm = norm_layer(width)
        if num_classes == 0:
            self.decoder_head = PatchReconstructionHeadWithQueries(patch_size, embed_dim, num_heads)
            self.channel_emb = ChannelEmbeddings(embed_dim)
        else:
            self.classifier = ClassificationHeadWithQueries(width, num_heads, num_classes)
            self.mask_token.requires_grad = False
        if not self.mask_token.is_meta:
            self.initialize_weights()

    def initialize_weights(self) -> None:
        """The upstream initialisation, for training from scratch."""
        self.cross_attn.initialize_weights()
        init_transformer(self, nn.init.xavier_normal_)

    def _check_inputs(
        self,
        x_signal: torch.Tensor,
        mask: torch.Tensor | None,
        channel_locations: torch.Tensor,
        channel_names: torch.Tensor | None,
        channel_location_noise: torch.Tensor | None,
    ) -> None:
        if x_signal.ndim != 3:
            raise ValueError(f"x_signal must be (batch, channels, samples), got shape {tuple(x_signal.shape)}.")
        batch, n_channels, n_samples = x_signal.shape
        if n_samples % self.patch_size:
            raise ValueError(
                f"x_signal has {n_samples} samples, not a multiple of patch_size {self.patch_size}; crop or pad the windows."
            )
        expected = {
            "mask": (mask, (batch, n_channels, n_samples)),
            "channel_locations": (channel_locations, (batch, n_channels, 3)),
            "channel_names": (channel_names, (batch, n_channels)),
            "channel_location_noise": (channel_location_noise, (batch, n_channels, 3)),
        }
        for name, (value, shape) in expected.items():
            if value is not None and tuple(value.shape) != shape:
                raise ValueError(f"{name} must have shape {shape} to match x_signal, got {tuple(value.shape)}.")

    def location_embedding(
        self, channel_locations: torch.Tensor, channel_location_noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embed (B, C, 3) electrode positions as (B, C, E); only relative geometry matters.

        Parameters
        ----------
        channel_locations : torch.Tensor
            (B, C, 3) electrode positions; scaled to [0, 1] per axis within each sample.
        channel_location_noise : torch.Tensor | None
            (B, C, 3) standard normal draws, scaled by ``LOCATION_NOISE_STD`` and added to the scaled
            positions; None draws them in training mode and adds none in evaluation mode.
        """
        low = channel_locations.amin(dim=1, keepdim=True)
        high = channel_locations.amax(dim=1, keepdim=True)
        locations = (channel_locations - low) / (high - low + 1e-8)
        if channel_location_noise is None and self.training:
            channel_location_noise = torch.randn_like(locations)
        if channel_location_noise is not None:
            locations = locations + LOCATION_NOISE_STD * channel_location_noise
        return self.channel_location_embedder(nerf_encoding(locations, self.embed_dim))

    def forward(
        self,
        x_signal: torch.Tensor,
        mask: torch.Tensor | None = None,
        channel_locations: torch.Tensor | None = None,
        channel_names: torch.Tensor | None = None,
        channel_location_noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Classify or reconstruct a batch of windows.

        Parameters
        ----------
        x_signal : Tensor, shape (B, C, T)
            Per-channel normalised signals; T must be a multiple of ``patch_size``.
        mask : Tensor of bool, shape (B, C, T), optional
            Samples to hide; a patch with any hidden sample is replaced by the mask token.
        channel_locations : Tensor, shape (B, C, 3) or (C, 3)
            Electrode positions (any unit; min-max normalised per sample).
        channel_names : Tensor of int64, shape (B, C) or (C,), optional
            Vocabulary indices of the channels; required by the reconstruction head.
        channel_location_noise : Tensor, shape (B, C, 3), optional
            A standard-normal draw used, times 0.02, as the location jitter in place of a random
            one; applied in every mode. Without it, jitter is drawn only in training mode.

        Returns
        -------
        tuple
            ``(logits (B, num_classes), x_signal)`` with a classification head, else
            ``(reconstruction (B, C, T), x_signal, attention_scores (B*S, Q, C))``.
        """
        if channel_locations is None:
            raise ValueError("LUNA needs channel_locations, a (batch, channels, 3) tensor of electrode positions.")
        batch = x_signal.shape[0]
        if channel_locations.ndim == 2:
            channel_locations = channel_locations.unsqueeze(0).expand(batch, -1, -1)
        if channel_names is not None and channel_names.ndim == 1:
            channel_names = channel_names.unsqueeze(0).expand(batch, -1)
        self._check_inputs(x_signal, mask, channel_locations, channel_names, channel_location_noise)
        n_channels, n_samples = int(x_signal.shape[1]), int(x_signal.shape[2])
        n_patches = n_samples // self.patch_size

        tokens = self.patch_embed(x_signal, self.patch_size) + self.freq_embed(x_signal, self.patch_size)
        tokens = mask_patches(tokens, mask, self.mask_token, self.patch_size)
        location_emb = self.location_embedding(channel_locations.to(tokens.dtype), channel_location_noise)
        # (B, C*S, E) → (B, S, C, E), add each sample's own location embedding, → (B*S, C, E).
        tokens = tokens.reshape(-1, n_channels, n_patches, self.embed_dim).transpose(1, 2) + location_emb.unsqueeze(1)
        queries, attention_scores = self.cross_attn(tokens.reshape(-1, n_channels, self.embed_dim))

        latent = queries.reshape(-1, n_patches, self.num_queries * self.embed_dim)  # (B, S, Q*E), feature q*E + e
        for block in self.blocks:
            latent = block(latent)
        latent = self.norm(latent)

        if self.num_classes > 0:
            return self.classifier(latent), x_signal
        if channel_names is None:
            raise ValueError("The reconstruction head needs channel_names, a (batch, channels) int64 tensor.")
        decoder_queries = location_emb + self.channel_emb(channel_names)
        return self.decoder_head(latent, decoder_queries), x_signal, attention_scores


class LunaFamily(ModelFamily):
    """LUNA: any montage, called with the channels' 3-D locations (and names when pre-training)."""

    key = "luna"
    name = "LUNA"
    model_class = LUNA
    modality = "eeg"
    # The query classifier pools every channel into one vector: one label per window, no
    # per-channel (mc, mmc) head, whose targets would not fit its (B, num_classes) logits.
    tasks = (RECONSTRUCTION, "bc", "ml", "mcc")
    head_prefixes = ("decoder_head.", "channel_emb.", "classifier.")
    leaves_parameters_unused = False
    depth_argument = "depth"
    pretrain_only_prefixes = ("decoder_head.", "channel_emb.")
    key_marker = "cross_attn."
    masking = MaskingScheme(patch=(1, 40), ratio=0.5, per_sample=False, unmasked_weight=0.05)
    default_variant = "luna-base"
    hub_task_folders = {"tuab": "TUAB", "tuar": "TUAR", "tusl": "TUSL"}
    class_count_tensors = {task: ("classifier.decoder_ffn.fc2.weight", 0, None) for task in ("bc", "ml", "mcc")}
    uses_channel_locations = True

    def geometry(self, kwargs: dict[str, Any]) -> InputGeometry:
        return InputGeometry(None, None, int(kwargs["patch_size"]))

    def classify(self, model: nn.Module, x: torch.Tensor, *, locations: torch.Tensor | None, training: bool) -> torch.Tensor:
        # An all-False mask is what the published fine-tuning passes; it enables the location
        # jitter. Evaluation passes None so predictions are deterministic.
        mask = torch.zeros_like(x, dtype=torch.bool) if training else None
        return model(x, mask, locations)[0]

    def reconstruct(
        self,
        model: nn.Module,
        x: torch.Tensor,
        mask: torch.Tensor,
        *,
        locations: torch.Tensor | None,
        channel_indices: torch.Tensor | None,
        training: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert channel_indices is not None  # the objective refuses LUNA pre-training without them
        names = channel_indices.to(x.device).expand(x.shape[0], -1)
        # LUNA jitters locations whenever a mask is given; zero noise switches that off in evaluation.
        noise = None if training else torch.zeros(x.shape[0], x.shape[1], 3, device=x.device, dtype=x.dtype)
        reconstruction, _, attention = model(x, mask, locations, channel_names=names, channel_location_noise=noise)
        return reconstruction, attention

    def graph_inputs(self, pretraining: bool) -> list[str]:
        return ["x", "channel_locations", "channel_names"] if pretraining else ["x", "channel_locations"]

    def deploy_forward(
        self,
        model: nn.Module,
        x: torch.Tensor,
        channel_locations: torch.Tensor | None,
        channel_names: torch.Tensor | None,
        pretraining: bool,
    ) -> torch.Tensor:
        if pretraining:
            # A zero noise draw switches LUNA's location jitter off whatever the mode.
            assert channel_locations is not None  # one of LUNA's graph inputs
            noise = torch.zeros_like(channel_locations)
            return model(x, None, channel_locations, channel_names=channel_names, channel_location_noise=noise)[0]
        return model(x, None, channel_locations)[0]


FAMILY = LunaFamily()
