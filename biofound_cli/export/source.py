"""The checkpoint being exported: the model, its head, its input geometry and what it expects.

:func:`load_source` reads a biofound checkpoint once and gathers every fact the writers and the
model card need (channel names, sampling rate, label names, input normalisation). The graph
that is exported is :class:`DeployModule`, which takes tensors only and returns the head's
output, so ONNX and TorchScript see one fixed call signature per model family.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from biofound_cli.errors import CheckpointError, UsageError
from biofound_cli.models.checkpoints import (
    CheckpointMetadata,
    checkpoint_transform,
    existing_weights,
    file_sha256,
    read_metadata,
)
from biofound_cli.models.registry import VARIANTS
from biofound_cli.tasks import RECONSTRUCTION, score_rule

if TYPE_CHECKING:
    from biofound_cli.evaluation.predict import HeadInfo
    from biofound_cli.store.dataset import PackedInfo

TRACE_BATCH = 2
"""Windows in the batch ONNX and TorchScript graphs are traced on."""
VERIFY_BATCH = 3
"""Windows in the batch a written artefact is checked on: not the traced batch size, so a batch axis baked in fails."""


# Written beside the weights so that a deployment knows how to feed the graph.
@dataclass
class ExportSource:
    """A loaded checkpoint and the facts about it that go into every artefact.

    Attributes
    ----------
    checkpoint : Path
        The ``.safetensors`` file that was read.
    model : torch.nn.Module
        The model, in eval mode on the CPU.
    head : HeadInfo
        Family, variant, head task, number of outputs and constructor arguments.
    ch_names : list of str | None
        Channel names in input order, where the checkpoint or the split names them.
    label_names : list of str | None
        Class names of the head, in output order.
    transform : str
        Input normalisation applied before the model (a key of :data:`~biofound_cli.models.transforms.TRANSFORMS`).
    metadata : CheckpointMetadata
        The checkpoint's record, its window (``n_chans``, ``n_times``, ``sfreq``) completed from the
        split or the variant where the checkpoint leaves it out: the one place the export's window is read.
    sha256 : str
        Hash of the checkpoint file: what ties evaluation reports and export folders to these weights.
    """

    checkpoint: Path
    model: nn.Module
    head: HeadInfo
    ch_names: list[str] | None = None
    label_names: list[str] | None = None
    transform: str = "none"
    channel_locations: list[list[float]] | None = None
    metadata: CheckpointMetadata = field(default_factory=CheckpointMetadata)
    sha256: str = ""

    @property
    def n_channels(self) -> int:
        """Channels of one window the exported graph takes."""
        return int(self.metadata.n_chans or 0)

    @property
    def n_times(self) -> int:
        """Samples of one window the exported graph takes."""
        return int(self.metadata.n_times or 0)

    @property
    def sfreq(self) -> float | None:
        """Sampling rate (Hz) of the training data, where the checkpoint or the split records it."""
        return self.metadata.sfreq

    @property
    def family(self) -> str:
        return self.head.family

    @property
    def model_name(self) -> str:
        return type(self.model).__name__

    @property
    def pretraining(self) -> bool:
        return self.head.task == RECONSTRUCTION

    @property
    def input_names(self) -> list[str]:
        """Names of the exported graph's inputs, in call order."""
        return self.head.model_family.graph_inputs(self.pretraining)

    @property
    def output_name(self) -> str:
        return "reconstruction" if self.pretraining else ("prediction" if self.head.task == "regression" else "logits")

    def output_spec(self) -> dict[str, Any]:
        """The graph's output as ``config.json`` states it: shape (batch axis named), dtype, and how to read it.

        The shape is that of the head's output on one example window, so it is the graph's own
        (``(batch, 22)`` for a 22-channel ``mc`` head, not its 2 classes); ``scores`` says how
        ``biofound evaluate`` and ``predict`` turn it into probabilities
        (:func:`~biofound_cli.tasks.score_rule`).
        """
        with torch.no_grad():
            shape = list(self.deploy_module()(*self.example_inputs(1)).shape[1:])
        spec: dict[str, Any] = {"shape": ["batch", *shape], "dtype": "float32"}
        if self.pretraining:
            return spec
        rule = score_rule(str(self.head.task), shape[-1] if shape else 1)
        positive = (self.label_names or ["0", "1"])[-1]
        unit = "channel" if self.head.task == "mc" else "window"
        spec["scores"] = {
            "values": "the predicted values themselves"
            + (f", one per output on the last axis ({', '.join(self.label_names)})" if self.label_names else ""),
            "sigmoid": f"sigmoid of each {unit}'s logit: the probability of {positive}",
            "softmax": "softmax over the last axis: the class probabilities"
            + (" of each channel" if self.head.task == "mmc" else "")
            + (f" ({', '.join(self.label_names)})" if self.label_names else ""),
        }[rule]
        return spec

    def example_inputs(self, batch_size: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random inputs of the graph's shapes, seeded, for tracing and verification.

        LUNA's channel locations are the montage's own when the channel names are known, so the
        check runs where the model will be used; otherwise random positions.

        Parameters
        ----------
        batch_size : int
            Windows in the batch.
        seed : int
            Seed of the random draws.
        """
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(batch_size, self.n_channels, self.n_times, generator=generator)
        if len(self.input_names) == 1:
            return (x,)
        if self.channel_locations is not None:
            locations = torch.tensor(self.channel_locations, dtype=torch.float32).expand(batch_size, -1, -1).clone()
        else:
            locations = torch.randn(batch_size, self.n_channels, 3, generator=generator)
        if not self.pretraining:
            return (x, locations)
        embedding = next(m for m in self.model.get_submodule("channel_emb").modules() if isinstance(m, nn.Embedding))
        vocabulary = int(embedding.num_embeddings)
        names = torch.randint(0, vocabulary, (batch_size, self.n_channels), generator=generator)
        return (x, locations, names)

    def split_locations(self, split: Path) -> torch.Tensor | None:
        """(C, 3) electrode positions the graph takes with the windows of ``split``; ``None`` when
        it takes none (FEMBA, TinyMyo).

        Parameters
        ----------
        split : Path
            The packed split whose windows the graph will take, named in the error.

        Raises
        ------
        UsageError
            For a graph that takes positions when neither the checkpoint nor ``split`` names the
            channels: random positions would calibrate and score the model on a montage it never sees.
        """
        if "channel_locations" not in self.input_names:
            return None
        if not self.channel_locations:
            from biofound_cli.evaluation.predict import unnamed_channels

            raise unnamed_channels(self.head, split, self.checkpoint, self.n_channels)
        return torch.tensor(self.channel_locations, dtype=torch.float32)

    def compare(
        self,
        run: Callable[..., torch.Tensor],
        reference: nn.Module | None = None,
        *,
        batch_size: int = VERIFY_BATCH,
        seed: int = 1,
    ) -> tuple[float, float]:
        """The largest absolute difference between ``run`` and ``reference`` on seeded example inputs, and
        the largest absolute output of ``reference``.

        Parameters
        ----------
        run : callable
            A written artefact loaded back (or its runner), taking the graph's inputs.
        reference : nn.Module | None
            What ``run`` must agree with; None is the float model's :meth:`deploy_module`.
        batch_size : int
            Windows in the example batch.
        seed : int
            Seed of the example inputs.
        """
        inputs = self.example_inputs(batch_size, seed=seed)
        with torch.no_grad():
            expected = (self.deploy_module() if reference is None else reference)(*inputs)
            got = run(*inputs)
        return float((got - expected).abs().max()), float(expected.abs().max())

    def deploy_module(self, model: nn.Module | None = None) -> nn.Module:
        """The model (or a stand-in such as its quantised copy) behind the tensor-only call.

        Parameters
        ----------
        model : nn.Module | None
            The module to wrap; None wraps the checkpoint's model.
        """
        return DeployModule(self.model if model is None else model, self.head.model_family, self.pretraining).eval()


class DeployModule(nn.Module):
    """Tensor-only forward: ``(x[, channel_locations[, channel_names]]) -> head output``.

    The inference call of each family is fixed here: no mask (FEMBA and TinyMyo zero nothing;
    LUNA adds no location jitter), and only the head's output is returned.
    """

    def __init__(self, model: nn.Module, family: Any, pretraining: bool) -> None:
        super().__init__()
        self.model = model
        self.model_family = family
        self.pretraining = pretraining

    def forward(
        self,
        x: torch.Tensor,
        channel_locations: torch.Tensor | None = None,
        channel_names: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.model_family.deploy_forward(self.model, x, channel_locations, channel_names, self.pretraining)


def _window_shape(
    head: HeadInfo,
    kwargs: dict[str, Any],
    metadata: CheckpointMetadata,
    ch_names: list[str] | None,
    split_info: PackedInfo | None,
    checkpoint: Path,
) -> tuple[int, int]:
    """(channels, samples) of the windows the exported graph takes: what the model's geometry
    fixes, else those the checkpoint was trained on (its metadata), else the split's."""
    geometry = head.model_family.geometry(kwargs)
    n_channels = geometry.n_chans or metadata.n_chans
    if n_channels is None and ch_names is not None:
        n_channels = len(ch_names)
    if n_channels is None:
        raise UsageError(
            f"{checkpoint}: a {head.model_family.name} graph is exported for one montage, but the checkpoint names no "
            "channels (metadata ch_names); pass --split with a packed file of the montage to deploy on"
        )
    n_times = geometry.n_times or metadata.n_times or geometry.nominal_n_times
    if n_times is None and split_info is not None:
        n_times = split_info.n_times
    if n_times is None and head.variant in VARIANTS:
        n_times = VARIANTS[head.variant].n_times
    if n_times is None:
        raise UsageError(f"{checkpoint}: the checkpoint does not record its window length; pass --split with a packed file")
    return int(n_channels), int(n_times)


def official_weights_advice(weights: str | Path) -> str:
    """Why weights without biofound metadata (official ones) are not exported, and what to do instead.

    Parameters
    ----------
    weights : str | Path
        The weights as the user named them (a path, a ``hub:`` reference), for ``biofound predict``.
    """
    from biofound_cli.prediction.official import predict_command

    predict = predict_command(weights)
    if predict is None:
        return ", and its keys match no FEMBA, LUNA or TinyMyo checkpoint; give a biofound checkpoint"
    return (
        f", so nothing says which model, channels and window to export; {predict}, "
        "or fine-tune from them (model.checkpoint) and export that run"
    )


def load_source(
    checkpoint: Path,
    *,
    split_info: PackedInfo | None = None,
    transform: str | None = None,
) -> ExportSource:
    """Load ``checkpoint`` for export and work out the input the exported graph takes.

    Parameters
    ----------
    checkpoint : Path
        A biofound ``.safetensors`` checkpoint, or a checkpoint folder holding ``model.safetensors``.
    split_info : PackedInfo | None
        A packed split the model will score; supplies the montage and window length where the
        checkpoint does not store them (LUNA takes any montage, so its graph is fixed to one).
    transform : str | None
        The input normalisation a recipe names (``data.transform``); by default the checkpoint's
        (:func:`~biofound_cli.models.checkpoints.checkpoint_transform`).

    Raises
    ------
    CheckpointError
        For a missing file (:func:`~biofound_cli.models.checkpoints.existing_weights` words it, as for every
        command that reads weights) or a file without biofound metadata.
    UsageError
        For a LUNA checkpoint whose montage is known neither from it nor from a split, or a checkpoint
        whose input normalisation is known neither from it nor from ``transform``.
    """
    from biofound_cli.evaluation.predict import load_for_evaluation

    checkpoint = existing_weights(checkpoint)
    if not read_metadata(checkpoint).is_biofound:
        raise CheckpointError(f"{checkpoint} has no biofound metadata (an official file?){official_weights_advice(checkpoint)}")
    model, head = load_for_evaluation(checkpoint)
    metadata = head.metadata
    kwargs = {**(VARIANTS[head.variant].kwargs if head.variant in VARIANTS else {}), **head.constructor_kwargs}

    ch_names, sfreq, label_names = metadata.ch_names, metadata.sfreq, metadata.label_names
    if head.task == RECONSTRUCTION:
        # A reconstruction head tells no classes apart: the names an older pre-training run recorded are its split's,
        # which the card listed as the model's "Labels (class order)" (checkpoint_metadata now leaves them out).
        label_names = None
    elif split_info is not None:
        ch_names = ch_names or list(split_info.ch_names) or None
        sfreq = sfreq if sfreq is not None else (split_info.sfreq or None)
        label_names = label_names or list(split_info.label_names) or None

    n_channels, n_times = _window_shape(head, kwargs, metadata, ch_names, split_info, checkpoint)
    locations = None
    if head.model_family.uses_channel_locations and ch_names is not None:
        from biofound_cli.signals.electrodes import channel_positions

        # A custom montage (e.g. SCP1's C3A) travels in the checkpoint or the packed split.
        custom = metadata.channel_positions
        if custom is None and split_info is not None:
            custom = split_info.channel_positions
        locations = [[float(v) for v in row] for row in channel_positions(ch_names, custom)]
    return ExportSource(
        checkpoint=checkpoint,
        model=model.eval(),
        head=head,
        ch_names=ch_names,
        label_names=label_names,
        transform=checkpoint_transform(head, transform, str(checkpoint), doing="exporting the graph"),
        channel_locations=locations,
        metadata=replace(metadata, n_chans=n_channels, n_times=n_times, sfreq=sfreq),
        sha256=file_sha256(checkpoint),
    )
