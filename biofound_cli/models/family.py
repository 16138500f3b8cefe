"""What the rest of biofound needs to know about one model family, declared beside the model.

Each model file (``femba.py``, ``luna.py``, ``tinymyo.py``) declares one :class:`ModelFamily`
subclass and an instance ``FAMILY``; :mod:`biofound_cli.models.registry` finds it by the
family's key. Training, evaluation, export and the hub code ask the family — its input
geometry, how to call the model, which constructor arguments a task adds, which checkpoint
keys belong to its heads — and contain no ``family == ...`` branches of their own. A new
model family is one new file plus one line in the registry (see ``docs/contributing.md``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from biofound_cli.tasks import RECONSTRUCTION


@dataclass(frozen=True)
class InputGeometry:
    """The windows a model built with given constructor arguments takes.

    Attributes
    ----------
    n_chans : int | None
        Channels per window; ``None`` when the model takes any montage (LUNA).
    n_times : int | None
        Samples per window; ``None`` when any multiple of ``multiple`` fits.
    multiple : int
        The window length must be a multiple of this (the patch length).
    """

    n_chans: int | None
    n_times: int | None
    multiple: int = 1
    nominal_n_times: int | None = None
    """The length the constructor arguments were chosen for, where the model takes several
    (TinyMyo's ``img_size``); used only for a checkpoint that does not record its windows."""
    n_chans_key: str | None = None
    """The constructor argument (``model.overrides`` key) that sets ``n_chans``."""
    n_times_key: str | None = None
    """The constructor argument (``model.overrides`` key) that sets ``n_times``."""


@dataclass(frozen=True)
class MaskingScheme:
    """How a family's masked-reconstruction pre-training hides its input.

    Attributes
    ----------
    patch : tuple of int
        (channels, samples) of one masked rectangle.
    ratio : float
        Share of rectangles masked.
    per_sample : bool
        One draw per window (True) or one per batch (False).
    unmasked_weight : float
        Weight of the visible samples' reconstruction loss.
    """

    patch: tuple[int, int]
    ratio: float
    per_sample: bool
    unmasked_weight: float


class ModelFamily:
    """One model family's facts and calls; subclasses set the class attributes.

    The default calls are those of a model called ``model(x, mask) -> (output, x)``
    (FEMBA, TinyMyo); a family whose model needs more (LUNA's channel locations) overrides them.
    """

    key: ClassVar[str]
    """Registry key and recipe spelling, e.g. ``femba``."""
    name: ClassVar[str]
    """Upstream class name, stored in checkpoint metadata, e.g. ``FEMBA``."""
    model_class: ClassVar[type[nn.Module]]
    modality: ClassVar[str]
    """``eeg`` or ``emg`` (model-card tags)."""
    tasks: ClassVar[tuple[str, ...]]
    """Tasks the family can be built for (names of :mod:`biofound_cli.tasks`)."""
    head_prefixes: ClassVar[tuple[str, ...]]
    """State-dict key prefixes of every head (decoder and classifier); they change with the task."""
    pretrain_only_prefixes: ClassVar[tuple[str, ...]]
    """Keys only a pre-training model has; fine-tuning drops them. They show a reconstruction head
    (:meth:`head_kind`)."""
    regression_prefixes: ClassVar[tuple[str, ...]] = ()
    """Keys only a regression head has (TinyMyo's ``model_head.regressor.``); they show one (:meth:`head_kind`)."""
    key_marker: ClassVar[str]
    """A state-dict key prefix only this family's checkpoints have (to recognise official files)."""
    masking: ClassVar[MaskingScheme]
    """The published masked-reconstruction pre-training scheme."""
    default_variant: ClassVar[str]
    """What ``biofound download KEY`` fetches when no size is named."""
    hub_task_folders: ClassVar[dict[str, str]] = {}
    """Downstream data set (recipe spelling) → folder of fine-tuned weights in the hub repository."""
    uses_channel_locations: ClassVar[bool] = False
    """Whether the model is called with 3-D electrode positions (then any montage fits)."""
    regression_axes: ClassVar[tuple[str, ...]] = ()
    """Constructor arguments that size the axes of a regression head's output per window, in order
    (TinyMyo: ``reg_target_len`` steps of ``num_classes`` outputs); empty for a family without one."""
    class_count_tensors: ClassVar[dict[str, tuple[str, int, str | None]]] = {}
    """Downstream task → (state-dict key, axis, constructor argument or ``None``) of its head's tensor sized by
    ``num_classes``: that axis holds one entry per class, times the argument's value for a per-channel head
    (FEMBA's ``mmc``). An official file records no class count, so it is read there (:meth:`head_size`); a task
    not named (FEMBA's ``mc``, whose head holds one output per channel) has none."""
    depth_argument: ClassVar[str | None] = None
    """The constructor argument counting the model's identical blocks (``n_layer``, ``depth``): the size check
    (:func:`~biofound_cli.models.registry.check_model_size`) builds one and two of them on the meta device and
    extrapolates, as a model of thousands of blocks takes minutes to build even there; ``None``: it builds the
    whole model there (a family without repeated blocks)."""
    leaves_parameters_unused: ClassVar[bool] = True
    """Whether a training step may leave a trainable weight without a gradient (for any task and
    fine-tuning mode). DDP then searches the graph each step (``find_unused_parameters``); a wrong
    False stops a multi-process run at its second step, which
    ``tests/unit/training/test_unused_parameters.py`` checks for every family."""

    # -- construction ------------------------------------------------------------------------
    @property
    def constructor_parameters(self) -> Mapping[str, inspect.Parameter]:
        """The model class's constructor parameters by name (``self`` included), with their defaults."""
        return inspect.signature(self.model_class.__init__).parameters

    def geometry(self, kwargs: dict[str, Any]) -> InputGeometry:
        """The windows a model built with constructor arguments ``kwargs`` takes.

        Parameters
        ----------
        kwargs : dict
            The model's constructor arguments.
        """
        raise NotImplementedError

    def task_kwargs(self, task: str, num_classes: int | None) -> dict[str, Any]:
        """Constructor arguments that building for ``task`` adds to the variant's own.

        Parameters
        ----------
        task : str
            The task name (``reconstruction`` or a downstream task of :mod:`biofound_cli.tasks`).
        num_classes : int | None
            Size of the head for a downstream task; None for ``reconstruction``.
        """
        return {}

    def regression_shape(self, kwargs: dict[str, Any]) -> tuple[int, ...]:
        """What a regression head built with ``kwargs`` gives per window, the constructor's defaults
        filling in what they leave unset: (T, K) for TinyMyo.

        Parameters
        ----------
        kwargs : dict
            The model's constructor arguments.
        """
        defaults = self.constructor_parameters
        return tuple(int(kwargs.get(name, defaults[name].default)) for name in self.regression_axes)

    def head_size(self, task: str, shapes: Mapping[str, tuple[int, ...]], kwargs: dict[str, Any]) -> int | None:
        """The ``num_classes`` a ``task`` head holding tensors of ``shapes`` was built with (:attr:`class_count_tensors`).

        Parameters
        ----------
        task : str
            A downstream task.
        shapes : mapping of str to tuple of int
            The file's tensors' shapes, keys without the ``model.`` prefix
            (:func:`~biofound_cli.models.checkpoints.weight_shapes`).
        kwargs : dict
            The model's constructor arguments (the variant's and ``model.overrides``).

        Returns
        -------
        int | None
            ``None`` when no tensor of the head is sized by the count, or the file's size fits none.
        """
        key, axis, per_class = self.class_count_tensors.get(task, ("", 0, None))
        shape = shapes.get(key, ())
        if len(shape) <= axis:
            return None
        count, rest = divmod(shape[axis], int(kwargs[per_class]) if per_class else 1)
        return count if rest == 0 and count >= 1 else None

    def regression_kwargs(self, target_shape: tuple[int, ...]) -> dict[str, int]:
        """The :attr:`regression_axes` that give targets of ``target_shape`` per window.

        The targets are read as the metrics read them: the last axis the outputs, (N,) one
        output, so the head's missing leading axes are 1. Empty when the targets have more axes.

        Parameters
        ----------
        target_shape : tuple of int
            One window's target shape (:attr:`PackedInfo.target_shape`).
        """
        if len(target_shape) > len(self.regression_axes):
            return {}
        padded = (1,) * (len(self.regression_axes) - len(target_shape)) + tuple(target_shape)
        return dict(zip(self.regression_axes, padded, strict=True))

    def regression_misfit(self, output: tuple[int, ...], target_shape: tuple[int, ...]) -> str | None:
        """``None`` when a regression head giving ``output`` per window fits targets of ``target_shape``,
        else the clause that says so, naming both shapes and the recipe fields that fit them.

        The loss and the metrics reshape the targets to the outputs, so axes of length 1 do not
        count: (N,) targets fit a (1, 1) head, (N, K) ones a (1, K) head.

        Parameters
        ----------
        output : tuple of int
            The head's shape per window (:meth:`regression_shape`).
        target_shape : tuple of int
            One window's target shape.
        """
        if [n for n in output if n != 1] == [n for n in target_shape if n != 1]:
            return None
        fields = [f"model.{name}" if name == "num_classes" else f"model.overrides.{name}" for name in self.regression_axes]
        fitting = self.regression_kwargs(target_shape)
        changes = [
            f"{field} = {fitting[name]}"
            for field, name, n in zip(fields, self.regression_axes, output, strict=True)
            if fitting and fitting[name] != n
        ]
        fix = (
            f"a model built with {' and '.join(changes)} fits them"
            if changes
            else f"pack at most {len(output)} target axes per window"
        )
        return (
            f"gives {_shape(output)} values per window ({' × '.join(fields)}) but the split's regression targets are "
            f"{_shape(target_shape)} per window; {fix}"
        )

    def head_task(self, kwargs: dict[str, Any]) -> str | None:
        """The task a model's head was built for, read from its constructor arguments.

        ``reconstruction`` for a pre-training head; ``None`` when the arguments do not say (LUNA's
        classifier: its constructor takes no ``classification_type``).

        Parameters
        ----------
        kwargs : dict
            The model's constructor arguments (a variant's, or a checkpoint's ``constructor_kwargs``).
        """
        return RECONSTRUCTION if int(kwargs.get("num_classes", 0) or 0) == 0 else kwargs.get("classification_type")

    @property
    def finetune_head_prefixes(self) -> tuple[str, ...]:
        """The head a fine-tuning trains whole, the body frozen or adapted: :attr:`head_prefixes` less
        :attr:`pretrain_only_prefixes`."""
        return tuple(prefix for prefix in self.head_prefixes if prefix not in self.pretrain_only_prefixes)

    def head_kind(self, keys: Iterable[str]) -> str | None:
        """The head a file of this family with state-dict ``keys`` holds: ``reconstruction``, ``regression``,
        ``classification``, or ``None`` for none.

        Read from :attr:`pretrain_only_prefixes`, :attr:`regression_prefixes` and :attr:`head_prefixes`, in
        that order: a head key that shows neither of the first two belongs to a classifier.

        Parameters
        ----------
        keys : iterable of str
            State-dict keys without the ``model.`` prefix.
        """
        keys = list(keys)
        kinds = {
            RECONSTRUCTION: self.pretrain_only_prefixes,
            "regression": self.regression_prefixes,
            "classification": self.head_prefixes,
        }
        return next((kind for kind, prefixes in kinds.items() if any(key.startswith(prefixes) for key in keys)), None)

    def masking_of(self, model: nn.Module) -> MaskingScheme:
        """The published pre-training scheme with rectangles of ``model``'s own patch (``model.overrides.patch_size``).

        Every published scheme masks whole patches of the published model. Under another patch the
        published rectangles cut across them, and a TinyMyo or LUNA patch was hidden when any of its
        samples was: patches of 40 samples under rectangles of 20 were hidden 3 in 4 for a
        ``train.mask_ratio`` of 0.5. A model without a ``patch_size`` gets the published scheme.

        Parameters
        ----------
        model : nn.Module
            The model pre-trained or scored, built with its constructor arguments.
        """
        patch = getattr(model, "patch_size", None)
        if patch is None:
            return self.masking
        channels, samples = patch if isinstance(patch, (tuple, list)) else (self.masking.patch[0], patch)
        return dataclasses.replace(self.masking, patch=(int(channels), int(samples)))

    # -- calls -------------------------------------------------------------------------------
    def classify(self, model: nn.Module, x: torch.Tensor, *, locations: torch.Tensor | None, training: bool) -> torch.Tensor:
        """The head's logits for a batch ``x`` (B, C, T), as the published fine-tuning calls it.

        Parameters
        ----------
        model : nn.Module
            A model of this family built with a classification or regression head.
        x : torch.Tensor
            (B, C, T) windows.
        locations : torch.Tensor | None
            (B, C, 3) electrode positions for families that use them (LUNA); None for the others.
        training : bool
            Whether this is a training step (LUNA jitters the locations then); evaluation passes False.
        """
        return model(x, torch.zeros_like(x, dtype=torch.bool))[0]

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
        """(reconstruction, query attention or ``None``) of masked pre-training.

        Parameters
        ----------
        model : nn.Module
            A model of this family built for ``reconstruction``.
        x : torch.Tensor
            (B, C, T) windows.
        mask : torch.Tensor
            (B, C, T) bool, True where a sample is hidden from the model.
        locations : torch.Tensor | None
            (B, C, 3) electrode positions for families that use them (LUNA); None for the others.
        channel_indices : torch.Tensor | None
            (C,) index of each channel's name in the family's channel vocabulary (LUNA); None for the others.
        training : bool
            Whether this is a training step (LUNA jitters the locations then).
        """
        return model(x, mask)[0], None

    def graph_inputs(self, pretraining: bool) -> list[str]:
        """Names of an exported graph's inputs, in call order.

        Parameters
        ----------
        pretraining : bool
            Whether the graph is of a pre-training (reconstruction) model.
        """
        return ["x"]

    def deploy_forward(
        self,
        model: nn.Module,
        x: torch.Tensor,
        channel_locations: torch.Tensor | None,
        channel_names: torch.Tensor | None,
        pretraining: bool,
    ) -> torch.Tensor:
        """The tensor-only inference call an exported graph records: no mask, head output only.

        Parameters
        ----------
        model : nn.Module
            The model to export, in evaluation mode.
        x : torch.Tensor
            (B, C, T) windows.
        channel_locations : torch.Tensor | None
            (B, C, 3) electrode positions where the family takes them (LUNA); None for the others.
        channel_names : torch.Tensor | None
            (B, C) channel-name indices where a pre-training graph takes them (LUNA); None otherwise.
        pretraining : bool
            Whether the model is a pre-training (reconstruction) model.
        """
        return model(x)[0]


def _shape(shape: tuple[int, ...]) -> str:
    """``4 × 3``; ``1`` for one value."""
    return " × ".join(str(n) for n in shape) or "1"
