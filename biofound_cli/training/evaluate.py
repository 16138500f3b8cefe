"""Validation during training: the loss plus the task's metrics, deterministically.

The model runs in eval mode without masks or location jitter (pre-training masks come from a
generator seeded by each window's index in the split), so two evaluations of the same weights give
the same numbers, whatever ``data.batch_size`` and the number of ranks: seeded by the batch's
index, a checkpoint's val_loss changed with the batching, and a run resumed on another number of
ranks compared best-checkpoint and early-stopping values of two definitions.
Under ``torchrun`` every rank scores a contiguous run of whole batches and the outputs are
gathered in order, so the numbers are those of one process, in a world-size-th of the time; rank
0 alone scoring the split left the other GPUs idle, and waiting at a collective that times out
after 30 minutes on a long validation. It runs
in full precision whatever ``train.precision`` is, as ``biofound evaluate``, ``predict`` and the
exported models do: under bf16 or fp16 autocast the recorded metrics of a checkpoint differed
from what ``biofound evaluate`` reports for it in the third or fourth decimal, and the best
checkpoint was chosen by numbers no later stage reproduces. The task
metrics are those of :mod:`biofound_cli.metrics`, prefixed ``val_``; only the
scalar ones are kept here (``biofound evaluate`` writes the full report).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from biofound_cli.atomic import finite
from biofound_cli.metrics import compute_metrics, headline_names
from biofound_cli.store.dataset import collate_windows
from biofound_cli.tasks import RECONSTRUCTION, score_rule
from biofound_cli.training import distributed
from biofound_cli.training.objectives import Objective
from biofound_cli.training.preemption import iterate_leaving_signals_to_main, stop_workers

EVAL_MASK_SEED = 1234


def validation_metric_names(task: str) -> tuple[str, ...]:
    """The metrics :func:`evaluate` reports for ``task`` (``reconstruction``: the loss only).

    Parameters
    ----------
    task : str
        The task type (``reconstruction`` or one of :data:`biofound_cli.metrics.TASKS`).
    """
    return ("val_loss",) if task == RECONSTRUCTION else ("val_loss", *(f"val_{name}" for name in headline_names(task)))


def unwatchable_metric(metric: str, task: str) -> str | None:
    """What is wrong with watching ``metric`` for ``task`` (one sentence), or ``None`` when it is computed.

    Parameters
    ----------
    metric : str
        ``train.early_stopping_metric``.
    task : str
        The task trained.
    """
    computed = validation_metric_names(task)
    if metric in computed:
        return None
    return f"train.early_stopping_metric = {metric!r} is not computed for task {task!r}; use one of {', '.join(computed)}"


def scores_from_logits(task: str, logits: torch.Tensor) -> np.ndarray:
    """Probabilities (classification) or predictions (regression) the metrics expect.

    Parameters
    ----------
    task : str
        The task type; ``regression`` keeps the logits, ``mc`` and single-logit heads take a
        sigmoid, the others a softmax over the last axis.
    logits : torch.Tensor
        The head's output, (N, ..., K).
    """
    logits = logits.float()
    rule = score_rule(task, logits.shape[-1])
    if rule == "values":
        return logits.numpy()
    if task == "mc":
        return torch.sigmoid(logits).numpy()
    if rule == "sigmoid":  # a single-logit binary head
        positive = torch.sigmoid(logits)
        return torch.cat([1 - positive, positive], dim=-1).numpy()
    return torch.softmax(logits, dim=-1).numpy()


class ValidationBatches:
    """This rank's batches of a validation split, read by loader workers that live until :meth:`close`.

    A run that evaluates every epoch builds one and scores each evaluation from it: a loader built
    per evaluation started its workers (and their HDF5 handles) afresh each time and tore them down.

    Parameters
    ----------
    dataset : Dataset
        A labelled split, read in order.
    batch_size : int
        Windows per batch.
    num_workers : int
        DataLoader worker processes; 0 reads in this process.
    signal_names : sequence of str
        Stop signals the calling process handles; loader workers ignore them.
    context : DistributedContext, optional
        The job: this rank reads a contiguous run of whole batches (:func:`_windows_of_this_rank`).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        num_workers: int = 0,
        signal_names: Sequence[str] = (),
        context: distributed.DistributedContext | None = None,
    ) -> None:
        self.windows = _windows_of_this_rank(len(dataset), batch_size, context)  # type: ignore[arg-type]
        self.signal_names = signal_names
        self.context = context
        self.loader = DataLoader(
            Subset(dataset, self.windows),
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=collate_windows,
            generator=torch.Generator().manual_seed(0),
            persistent_workers=num_workers > 0,
        )

    def __iter__(self) -> Any:
        return iterate_leaving_signals_to_main(self.loader, self.signal_names)

    def close(self) -> None:
        """End the loader's workers (none are left running)."""
        stop_workers(self.loader)


@torch.no_grad()
def evaluate(model: nn.Module, objective: Objective, batches: ValidationBatches, *, device: torch.device) -> dict[str, Any]:
    """Mean loss and scalar task metrics of ``model`` on a validation split's ``batches``.

    Parameters
    ----------
    model : nn.Module
        The model (not a DDP wrapper: ranks run different numbers of batches); put in evaluation
        mode for the pass and set back to its mode after.
    objective : Objective
        Feeds each batch to the model and computes its loss and logits.
    batches : ValidationBatches
        This rank's batches of the split, read in order (their job: every rank must call this, and each
        scores its share; every rank gets the same metrics), kept from one evaluation to the next.
    device : torch.device
        Where the batches go (the model's device).

    Returns
    -------
    dict
        ``val_loss`` always (fine-tuning: the loss of all windows at once, so a weighted loss does
        not depend on the batching); for fine-tuning also ``val_balanced_accuracy``,
        ``val_auroc``, ... (classification) or ``val_mae``, ... (regression).
    """
    was_training = model.training
    model.eval()
    context = batches.context
    total_loss, n_samples = 0.0, 0
    logits, targets = [], []
    start = batches.windows.start
    for batch in batches:
        batch = {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
        size = batch["x"].shape[0]
        # A window's mask follows its index in the split, not its batch: the same val_loss for
        # any data.batch_size and any number of ranks.
        seeds = [EVAL_MASK_SEED + window for window in range(start, start + size)]
        start += size
        result = objective(model, batch, training=False, mask_seeds=seeds)
        # Evaluation splits are labelled, so every batch has targets and a loss.
        assert result.loss is not None
        total_loss += float(result.loss) * size
        n_samples += size
        if result.logits is not None:
            assert result.targets is not None
            logits.append(result.logits.float().cpu())
            targets.append(result.targets.cpu())
    model.train(was_training)
    shares = distributed.gather_objects((total_loss, n_samples, logits, targets), context or distributed.DistributedContext())
    total_loss, n_samples = sum(share[0] for share in shares), sum(share[1] for share in shares)
    logits, targets = [t for share in shares for t in share[2]], [t for share in shares for t in share[3]]
    loss = total_loss / max(n_samples, 1)
    if logits:
        all_logits, all_targets = torch.cat(logits), torch.cat(targets)
        # The loss of the whole split at once: a weighted mean (train.class_weights) taken batch by
        # batch and averaged by batch size changed with data.batch_size and the last, partial batch.
        loss = float(objective.supervised_loss(all_logits, all_targets))
    # A NaN or inf loss (diverged weights) is null, as `biofound evaluate` reports it, and so is every
    # metric of the same outputs: scikit-learn raised a traceback on non-finite scores.
    metrics: dict[str, Any] = {"val_loss": finite(loss)}
    if logits and metrics["val_loss"] is not None:
        metrics.update(_task_metrics(objective.task, all_logits, all_targets))
    return {name: metrics.get(name) for name in validation_metric_names(objective.task)}


def _windows_of_this_rank(n_windows: int, batch_size: int, context: distributed.DistributedContext | None) -> range:
    """This rank's windows: a contiguous run of whole batches.

    Whole batches, so each batch holds the windows it holds in one process (the same numbers in
    fp32); contiguous and in rank order, so gathering keeps the split's order.
    """
    n_batches = -(-n_windows // batch_size)
    rank, world = (context.rank, context.world_size) if context is not None else (0, 1)
    first, end = rank * n_batches // world, (rank + 1) * n_batches // world
    return range(first * batch_size, min(end * batch_size, n_windows))


def _task_metrics(task: str, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float | None]:
    scores = scores_from_logits(task, logits)
    y_true = targets.numpy()
    if task == "regression":
        y_true = y_true.reshape(scores.shape)
    computed = compute_metrics(task, y_true, scores)
    return {f"val_{name}": computed.get(name) for name in headline_names(task)}
