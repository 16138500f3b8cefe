"""How a batch is fed to each model family, and the loss it is trained with.

Pre-training follows the published setups (docs/training.md, Objectives):

=========  ===================  =====  ==========  ==============================================
family     masked rectangle     ratio  drawn per   loss
=========  ===================  =====  ==========  ==============================================
FEMBA      2 channels x 16      0.6    batch       Smooth-L1 on masked samples only
LUNA       1 channel x 40       0.5    batch       masked + 0.05 unmasked + query specialisation
TinyMyo    1 channel x 20       0.5    sample      masked + 0.1 unmasked
=========  ===================  =====  ==========  ==============================================

The reconstruction is compared with the normalised, unmasked input. Masks are drawn from the
global torch RNG (seeded by the loop, saved in every checkpoint), as upstream does.

Fine-tuning losses (``auto``) follow how a head's output is read (:func:`default_loss`):
BCE-with-logits for ``mc`` and a single-logit ``bc`` head, cross-entropy for ``bc`` with 2 logits,
``mcc`` and ``ml``, over the class axis per channel for ``mmc``, MSE for regression;
``TrainSection.loss`` overrides the choice. Evaluation never masks and never jitters: LUNA is
called with ``mask=None`` there, which turns its channel-location jitter off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from biofound_cli.errors import UsageError
from biofound_cli.models.family import MaskingScheme
from biofound_cli.tasks import RECONSTRUCTION, score_rule

if TYPE_CHECKING:
    from biofound_cli.recipes.training import TrainSection

QUERY_SPECIALISATION_WEIGHT = 0.8


@dataclass
class StepResult:
    """What one forward pass gives the loop."""

    loss: torch.Tensor | None
    """``None`` for a batch without targets (prediction)."""
    logits: torch.Tensor | None = None
    targets: torch.Tensor | None = None


def patch_mask(
    n_channels: int,
    n_times: int,
    patch: tuple[int, int],
    ratio: float,
    *,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A boolean mask of whole rectangles, ``True`` where the signal is hidden.

    The (channel, time) plane is tiled into ``patch`` rectangles and ``int(n_rectangles * ratio)``
    of them, chosen by one ``randperm``, are masked. Rows or samples left over by the tiling
    stay visible.

    Parameters
    ----------
    n_channels, n_times : int
        Shape of one window.
    patch : tuple of int
        Rectangle size (channels, samples).
    ratio : float
        Fraction of rectangles masked.
    batch_size : int | None
        ``None`` draws one (n_channels, n_times) mask; otherwise one independent mask per
        sample, shape (batch_size, n_channels, n_times).
    generator : torch.Generator | None
        Random source; the global torch RNG when ``None``.
    """
    patch_channels, patch_times = patch
    grid_channels, grid_times = n_channels // patch_channels, n_times // patch_times
    if grid_channels == 0 or grid_times == 0:
        raise UsageError(
            f"windows of {n_channels} channels x {n_times} samples are smaller than the masked "
            f"rectangle {patch_channels} x {patch_times}; use longer windows or a model made for them"
        )
    n_rectangles = grid_channels * grid_times
    n_masked = int(n_rectangles * ratio)
    draws = 1 if batch_size is None else batch_size
    grid = torch.zeros(draws, n_rectangles, dtype=torch.bool)
    for row in range(draws):
        grid[row, torch.randperm(n_rectangles, generator=generator)[:n_masked]] = True
    grid = grid.view(draws, grid_channels, grid_times)
    blocks = grid.repeat_interleave(patch_channels, dim=1).repeat_interleave(patch_times, dim=2)
    mask = torch.zeros(draws, n_channels, n_times, dtype=torch.bool)
    mask[:, : blocks.shape[1], : blocks.shape[2]] = blocks
    return mask[0] if batch_size is None else mask


def reconstruction_errors(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The pre-training loss of each element: Smooth-L1 with beta 1, in float32.

    Parameters
    ----------
    reconstruction, target : torch.Tensor
        The model's reconstruction and the original signal, of the same shape.
    """
    return F.smooth_l1_loss(reconstruction.float(), target.float(), reduction="none", beta=1.0)


def masked_smooth_l1(reconstruction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean Smooth-L1 (beta 1) over the masked and over the visible elements.

    Parameters
    ----------
    reconstruction, target : torch.Tensor
        The model's reconstruction and the original signal, of the same shape.
    mask : torch.Tensor
        Bool, broadcastable to that shape; True marks a masked element. An empty side gives a loss of 0.
    """
    elementwise = reconstruction_errors(reconstruction, target)
    mask = mask.expand_as(elementwise)
    masked = elementwise[mask].mean() if mask.any() else elementwise.sum() * 0.0
    visible = elementwise[~mask].mean() if (~mask).any() else elementwise.sum() * 0.0
    return masked, visible


def query_specialisation_loss(attention: torch.Tensor) -> torch.Tensor:
    """LUNA's penalty on overlapping query attention: ``mean((A A^T * (1 - I))**2)``.

    ``attention`` is (tokens, queries, channels); the mean runs over every (query, query)
    entry including the zeroed diagonal, as published.

    Parameters
    ----------
    attention : torch.Tensor
        (tokens, queries, channels) query attention weights.
    """
    attention = attention.float()
    gram = attention @ attention.transpose(-1, -2)
    off_diagonal = 1.0 - torch.eye(gram.shape[-1], device=gram.device, dtype=gram.dtype)
    return ((gram * off_diagonal) ** 2).mean()


LOSS_OF_SCORES = {"values": "mse", "sigmoid": "bce", "softmax": "ce"}
"""The loss that trains a head for the way its output is read (:func:`~biofound_cli.tasks.score_rule`)."""


def default_loss(task: str, outputs: int) -> str:
    """The loss a head trains with when the recipe says ``auto``: the one of the way its scores are read.

    A sigmoid (``mc``, a single-logit ``bc`` head) trains with ``bce``, a softmax over classes
    (``bc`` with 2 logits, ``mcc``, ``ml``, ``mmc``) with ``ce``, regression values with ``mse``:
    the validation loss and the best checkpoint are then about the probabilities evaluate and
    predict report.

    Parameters
    ----------
    task : str
        The task type.
    outputs : int
        Length of the head output's last axis (1 for a single-logit ``bc`` head).
    """
    return LOSS_OF_SCORES[score_rule(task, outputs)]


def fitting_losses(task: str, outputs: int | None = None) -> tuple[str, ...]:
    """The ``train.loss`` values ``task`` can be trained with (``auto`` always can).

    Parameters
    ----------
    task : str
        The fine-tuning task type. A regression head's values are compared with mse or
        smooth_l1; ``mc`` (one binary logit per channel) and a single-logit ``bc`` head take bce
        (ce over one logit has no class 1); every other classification head takes ce or bce over
        its classes.
    outputs : int | None
        Length of the head output's last axis (``model.num_classes``), when known.
    """
    if task == "bc" and outputs == 1:
        return ("auto", "bce")
    return {"regression": ("auto", "mse", "smooth_l1"), "mc": ("auto", "bce")}.get(task, ("auto", "ce", "bce"))


def unfitting_loss(loss: str, task: str, outputs: int | None = None) -> str | None:
    """What is wrong with training ``task`` with ``loss`` (one sentence), or ``None`` when it fits.

    ``pretrain`` and ``finetune`` check this before any work (``biofound validate`` too, when
    the recipe names the task): a loss of another kind of head would fail at the first batch.

    Parameters
    ----------
    loss : str
        ``train.loss``.
    task : str
        The task trained; pre-training (``reconstruction``) ignores ``train.loss``.
    outputs : int | None
        ``model.num_classes``, when the recipe sets it.
    """
    fitting = fitting_losses(task, outputs)
    if task == RECONSTRUCTION or loss in fitting:
        return None
    head = f"task {task!r} with a single logit (model.num_classes = 1)" if task == "bc" and outputs == 1 else f"task {task!r}"
    return f"train.loss = {loss!r} does not fit {head}; use one of {', '.join(fitting)}"


def loss_options(train: TrainSection) -> dict[str, Any]:
    """The fine-tuning loss a ``[train]`` section asks for, as :class:`Objective` takes it.

    Training's ``val_loss`` and the loss ``biofound evaluate`` reports of a split are both
    computed with these, so they are one loss.

    Parameters
    ----------
    train : TrainSection
        The recipe's ``[train]``.
    """
    return {"loss": train.loss, "class_weights": train.class_weights, "label_smoothing": train.label_smoothing}


def supervised_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    task: str,
    *,
    loss: str = "auto",
    class_weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The fine-tuning loss of one batch.

    Parameters
    ----------
    logits : Tensor
        (B, K) for bc/mcc/ml; (B, C) for mc; (B, C, K) for mmc; (B, ...) for regression.
    targets : Tensor
        Class indices (B,) or (B, C); 0/1 per channel for mc; values for regression.
    task : str
        One of bc, ml, mc, mcc, mmc, regression.
    loss : str
        auto, ce, bce, mse or smooth_l1.
    class_weights : Tensor | None
        One weight per class (per target value 0/1 for mc and single-logit bc).
    label_smoothing : float
        Cross-entropy label smoothing.
    """
    kind = default_loss(task, logits.shape[-1]) if loss == "auto" else loss
    logits = logits.float()
    if kind in ("mse", "smooth_l1"):
        values = targets.float().reshape(logits.shape)
        return F.mse_loss(logits, values) if kind == "mse" else F.smooth_l1_loss(logits, values)
    if kind == "bce":
        if task == "mc" or logits.shape[-1] == 1:
            labels = targets.reshape(logits.shape).float()
        else:
            labels = F.one_hot(targets.long().reshape(-1), logits.shape[-1]).float().reshape(logits.shape)
        weight = None
        if class_weights is not None:
            per_target = class_weights[targets.long()]
            weight = per_target.reshape(logits.shape) if per_target.numel() == logits.numel() else per_target[:, None]
            weight = weight.expand_as(logits)
        return F.binary_cross_entropy_with_logits(logits, labels, weight=weight)
    # Cross-entropy over the last axis: (B, K) or, per channel, (B, C, K).
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.long().reshape(-1),
        weight=class_weights,
        label_smoothing=label_smoothing,
    )


def channel_inputs(
    family: Any, task: str | None, ch_names: Sequence[str], positions: Mapping[str, Sequence[float]] | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """What an :class:`Objective` of ``family`` needs of the channels: LUNA's positions ``(C, 3)``, and for pre-training
    their indices in its channel vocabulary ``(C,)``; ``(None, None)`` for a family that takes neither.

    The one check of the channels such a model takes: ``validate`` runs it on those ``[preprocess]`` gives,
    ``pretrain``/``finetune`` on the packed ones before the model is built, ``predict`` on the model's.

    Parameters
    ----------
    family : ModelFamily
        The model family.
    task : str | None
        ``reconstruction`` for pre-training (the vocabulary indices too), else the fine-tuning task.
    ch_names : sequence of str
        The channels, in the order the windows hold them.
    positions : mapping of str to (x, y, z) | None
        Positions of channels the 10-05 system does not place (``preprocess.options.channel_positions``).

    Raises
    ------
    DataError
        Naming the channels without a position, or (pre-training) those not in LUNA's vocabulary.
    """
    from biofound_cli.signals.electrodes import channel_index, channel_positions

    if not family.uses_channel_locations:
        return None, None
    locations = torch.as_tensor(channel_positions(list(ch_names), positions), dtype=torch.float32)
    indices = torch.as_tensor(channel_index(list(ch_names)), dtype=torch.long) if task == RECONSTRUCTION else None
    return locations, indices


class Objective:
    """Feeds batches of one model family to the model and computes the loss.

    Parameters
    ----------
    family : str
        Model family key (its :class:`~biofound_cli.models.family.ModelFamily` decides the call
        signature and the pre-training scheme).
    task : str
        ``reconstruction`` for pre-training, else the fine-tuning task type.
    transform : callable | None
        Input normalisation applied to every batch ``x`` (B, C, T) before the model.
    mask_ratio : float | None
        Overrides the published pre-training ratio.
    masking : MaskingScheme | None
        The pre-training scheme of the model trained
        (:meth:`~biofound_cli.models.family.ModelFamily.masking_of`); ``None``: the published one.
    loss, class_weights, label_smoothing
        Fine-tuning loss options (see :func:`supervised_loss`).
    channel_locations : Tensor | None
        (C, 3) electrode positions; required by LUNA.
    channel_indices : Tensor | None
        (C,) indices into LUNA's channel vocabulary; required by LUNA pre-training.
    """

    def __init__(
        self,
        family: str,
        task: str,
        *,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        mask_ratio: float | None = None,
        masking: MaskingScheme | None = None,
        loss: str = "auto",
        class_weights: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        channel_locations: torch.Tensor | None = None,
        channel_indices: torch.Tensor | None = None,
    ) -> None:
        from biofound_cli.models.registry import family_of

        self.model_family = family_of(family)
        needs_locations = self.model_family.uses_channel_locations
        if needs_locations and channel_locations is None:
            raise UsageError(f"{self.model_family.name} needs channel locations; the training file must name its channels")
        if needs_locations and task == RECONSTRUCTION and channel_indices is None:
            raise UsageError(f"{self.model_family.name} pre-training needs channel vocabulary indices for every channel")
        self.task = task
        self.transform = transform
        self.scheme: MaskingScheme = masking or self.model_family.masking
        if mask_ratio is not None:
            self.scheme = MaskingScheme(self.scheme.patch, mask_ratio, self.scheme.per_sample, self.scheme.unmasked_weight)
        self.loss = loss
        self.class_weights = torch.as_tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.label_smoothing = label_smoothing
        self.channel_locations = channel_locations
        self.channel_indices = channel_indices

    @property
    def pretraining(self) -> bool:
        return self.task == RECONSTRUCTION

    def __call__(
        self, model: nn.Module, batch: dict[str, Any], *, training: bool, mask_seeds: Sequence[int] | None = None
    ) -> StepResult:
        """Forward one batch.

        ``training=False`` is evaluation: no location jitter, and pre-training masks come from
        ``mask_seeds``, one seed per window, so the validation loss is the same at every
        evaluation and for any batching, and the global RNG the training stream depends on is
        left alone.
        """
        x = batch["x"].float()
        # The mask is drawn from the raw shape and applied by the model to the normalised signal.
        mask = self._draw_mask(x, mask_seeds) if self.pretraining else None
        if self.transform is not None:
            x = self.transform(x)
        if self.pretraining:
            assert mask is not None  # drawn above when pretraining
            return self._reconstruct(model, x, mask, training=training)
        logits = self.model_family.classify(model, x, locations=self._locations(x), training=training)
        if "y" not in batch:
            # Unlabelled windows (`biofound predict`): the head's output, no loss.
            return StepResult(loss=None, logits=logits.detach())
        targets = batch["y"].to(logits.device)
        return StepResult(loss=self.supervised_loss(logits, targets), logits=logits.detach(), targets=targets)

    def supervised_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The fine-tuning loss of ``logits`` against ``targets`` with this objective's options.

        Parameters
        ----------
        logits, targets : Tensor
            The head's output and the labels of any number of windows (see :func:`supervised_loss`).
        """
        weights = self.class_weights.to(logits.device) if self.class_weights is not None else None
        return supervised_loss(
            logits, targets, self.task, loss=self.loss, class_weights=weights, label_smoothing=self.label_smoothing
        )

    # -- pre-training ----------------------------------------------------------------------------
    def _draw_mask(self, x: torch.Tensor, mask_seeds: Sequence[int] | None) -> torch.Tensor:
        batch_size, n_channels, n_times = x.shape
        patch, ratio = self.scheme.patch, self.scheme.ratio
        if mask_seeds is not None:
            # Evaluation: each window's mask from its own seed, whatever batch it is in; every
            # window hides as many samples, so the batch loss is the mean of the windows' losses.
            if len(mask_seeds) != batch_size:
                raise ValueError(f"{len(mask_seeds)} mask seeds for a batch of {batch_size} windows")
            generators = [torch.Generator().manual_seed(seed) for seed in mask_seeds]
            mask = torch.stack([patch_mask(n_channels, n_times, patch, ratio, generator=g) for g in generators])
        elif self.scheme.per_sample:
            mask = patch_mask(n_channels, n_times, patch, ratio, batch_size=batch_size)
        else:
            mask = patch_mask(n_channels, n_times, patch, ratio).expand(batch_size, -1, -1)
        return mask.to(x.device)

    def _reconstruct(self, model: nn.Module, x: torch.Tensor, mask: torch.Tensor, *, training: bool) -> StepResult:
        reconstruction, attention = self.model_family.reconstruct(
            model, x, mask, locations=self._locations(x), channel_indices=self.channel_indices, training=training
        )
        # TinyMyo returns patches (B, C*S, P), channel-major; FEMBA and LUNA return (B, C, T).
        reconstruction = reconstruction.reshape(x.shape)
        masked, visible = masked_smooth_l1(reconstruction, x, mask)
        loss = masked + self.scheme.unmasked_weight * visible
        if attention is not None:
            loss = loss + QUERY_SPECIALISATION_WEIGHT * query_specialisation_loss(attention)
        return StepResult(loss=loss)

    # -- fine-tuning -----------------------------------------------------------------------------
    def _locations(self, x: torch.Tensor) -> torch.Tensor | None:
        locations = self.channel_locations
        return None if locations is None else locations.to(device=x.device, dtype=x.dtype).expand(x.shape[0], -1, -1)
