"""The training loop, readable top to bottom.

:func:`fit` takes a model, an objective, datasets and the ``[optim]`` / ``[train]`` sections;
it knows nothing of corpora or recipes on disk. One optimiser step is:

1. ``accumulation_steps`` micro-batches, forward under autocast (bf16 on CPU or CUDA, fp16 on
   CUDA with a gradient scaler), backward (DDP synchronises on the last micro-batch only);
2. a NaN/inf check agreed by all ranks (stop, write a debug checkpoint, exit 1);
3. gradient clipping, optimiser step, schedule step;
4. every ``log_every`` steps, at each epoch's end and at each evaluation the loss goes to ``metrics.jsonl``;
   every ``eval_every`` steps
   (unset: at the step in which each epoch ends) the ranks score their shares of the validation split
   (in fp32; the metrics are the whole split's), rank 0 keeps
   the best weights and counts patience;
5. every ``checkpoint_every`` steps (unset: at each evaluation), at the end and on a preemption
   signal, rank 0 writes a
   resumable checkpoint; on preemption the run then raises ``PreemptedError`` (exit 75), unless
   that step was the last one (the run is complete).

Resuming restores the weights, optimizer, schedule, scaler, every rank's RNG states and the
sampler position, so a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import random
import time
from contextlib import closing, nullcontext
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Sized

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from biofound_cli.errors import BiofoundError, CheckpointError, InterruptedRunError, PreemptedError, UsageError
from biofound_cli.models.checkpoints import WEIGHTS_FILE
from biofound_cli.models.compiled import compile_model
from biofound_cli.plural import counted
from biofound_cli.progress import NO_PROGRESS, ProgressReporter, open_task
from biofound_cli.recipes.training import OptimSection, TrainSection
from biofound_cli.stop_signals import came_as_the_work_finished, stop_name
from biofound_cli.store.dataset import collate_windows
from biofound_cli.training import distributed, state
from biofound_cli.training.evaluate import ValidationBatches, evaluate, unwatchable_metric
from biofound_cli.training.objectives import Objective
from biofound_cli.training.optim import build_optimizer, build_schedule, steps_for_epochs
from biofound_cli.training.preemption import PreemptionGuard, iterate_leaving_signals_to_main, stop_workers
from biofound_cli.training.run_folder import RunFolder
from biofound_cli.training.sampler import GlobalBatchSampler

logger = logging.getLogger(__name__)


class TrainingError(BiofoundError):
    """Training started but could not go on (NaN loss, out of memory): exit status 1."""


_DIVERGED = "lower optim.lr, keep optim.grad_clip set, try train.precision = 'fp32' or check the input data"
"""What to do when the loss is NaN or inf (training's, or validation's at the end)."""


@dataclass
class TrainingJob:
    """Everything :func:`fit` needs, built from a recipe (``training/setup.py``) or by hand."""

    model: nn.Module
    objective: Objective
    train_set: Dataset
    val_set: Dataset | None
    optim: OptimSection
    train: TrainSection
    batch_size: int
    num_workers: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    """Model name, variant, task and constructor arguments, written into every checkpoint."""
    export_state: Callable[[nn.Module], dict[str, torch.Tensor]] | None = None
    """How the best weights are saved (e.g. LoRA merged into the base); ``state_dict`` by default."""
    leaves_parameters_unused: bool = True
    """Whether a step may leave a trainable weight without a gradient (the model family says so):
    DDP then searches the graph for them each step."""
    train_fingerprint: str = ""
    """The training split's provenance digest (``PackedInfo.fingerprint``), written into every
    checkpoint so a resume on other data of the same size is refused; ``""``: not known, not checked."""


@dataclass
class Progress:
    """Where the run is; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    watched: str | None = None
    """The metric and mode the best so far was chosen by (``"val_loss min"``); ``None`` before the first evaluation."""

    def __post_init__(self) -> None:
        # A run saved before a non-finite metric was refused as the best holds NaN here: nothing compares better
        # than NaN, so every evaluation since was a strike. Such a best is no best, and the strikes against it none.
        if self.best_metric is not None and not math.isfinite(self.best_metric):
            self.best_metric, self.best_step, self.evals_without_improvement = None, None, 0


@dataclass
class FitResult:
    step: int
    epoch: float
    """Epochs completed (fractional when the run stopped mid-epoch)."""
    stopped_early: bool
    best_metric: float | None
    best_step: int | None
    last_metrics: dict[str, Any]
    last_checkpoint: Path | None
    best_checkpoint: Path | None


@dataclass
class _Parts:
    """What :func:`fit` builds around the model before the first step (and restores on resume)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any
    scaler: torch.amp.GradScaler
    sampler: GlobalBatchSampler
    batches_per_epoch: int
    total_steps: int
    accumulation: int
    eval_every: int | None
    """Steps between evaluations; ``None``: at the step in which each epoch ends (:meth:`due`)."""
    checkpoint_every: int | None

    def due(self, step: int, every: int | None) -> bool:
        """Whether ``step`` is one of every ``every`` steps or, for ``None``, the step in which an epoch ends.

        The micro-batch stream runs on across epochs, so with accumulation a step may end one
        epoch and start the next; counting epochs by micro-batches keeps "once per epoch"
        exact when ``accumulation_steps`` does not divide the batches of an epoch (rounding the
        steps of an epoch down evaluated more often than that). It depends on the step only, so
        a resumed run evaluates where an uninterrupted one does.
        """
        if every is not None:
            return step % every == 0
        return (step * self.accumulation) // self.batches_per_epoch > self.epoch_of(step)

    def epoch_of(self, step: int) -> int:
        """The epoch (from 0) in which ``step`` began, i.e. its first micro-batch's: what ``metrics.jsonl`` records.

        A step that ends an epoch under accumulation also draws the next epoch's first batches;
        the epoch in progress after it (``Progress.epoch``) labelled its evaluation with the
        epoch after the one it closed.
        """
        return ((step - 1) * self.accumulation) // self.batches_per_epoch


def fit(
    job: TrainingJob,
    run_folder: RunFolder,
    *,
    context: distributed.DistributedContext,
    reporter: ProgressReporter = NO_PROGRESS,
    resume: Path | None = None,
    on_step: Callable[[int], None] | None = None,
    continue_command: str | None = None,
    guard: PreemptionGuard | None = None,
) -> FitResult:
    """Train ``job.model`` and write checkpoints and metrics into ``run_folder``.

    Parameters
    ----------
    job : TrainingJob
        Model, objective, datasets and the ``[optim]`` / ``[train]`` sections.
    run_folder : RunFolder
        Where metrics and checkpoints go (rank 0 writes).
    context : DistributedContext
        This process's rank and device (:func:`~biofound_cli.training.distributed.setup_distributed`).
    reporter : ProgressReporter
        Shows the steps done; by default nothing is shown. Messages (resuming, validation
        metrics, early stopping) are logged on this module's logger, on every rank: the caller keeps
        only the errors of ranks other than 0 (:func:`~biofound_cli.training.run.run_checked_training` does).
    resume : Path | None
        A checkpoint folder to continue from, saved on ``job``'s training split: the caller checks
        that (:func:`~biofound_cli.training.state.check_same_split`, as ``run_checked_training`` does).
    on_step : callable | None
        Called with the step number after each optimiser step (tests use it to interrupt).
    continue_command : str | None
        The exact command that continues this run, named when a signal stops it.
    guard : PreemptionGuard | None
        A guard the caller installed before the setup (so a signal during it waits for the
        first step boundary); by default one is installed for the loop.
    """
    config = job.train
    # A refusal here (a checkpoint that does not fit, too few windows) is alike on every rank: reported once.
    autocast_dtype, parts, progress = distributed.agree(lambda: _prepare(job, run_folder, context, resume), context)
    total_steps = parts.total_steps
    if resume is not None and _finished(progress, total_steps):
        # A re-run of a finished job (e.g. a requeue after the last step) changes nothing.
        return _result(progress, parts.batches_per_epoch, _last_val_metrics(run_folder, context), resume, run_folder, context)

    model = compile_model(parts.model) if config.compile else parts.model
    data_parallel = distributed.data_parallel(model, context, find_unused_parameters=job.leaves_parameters_unused)
    stream = _micro_batches(job, parts.sampler, progress, context.device)
    last_metrics: dict[str, Any] = {}
    last_checkpoint: Path | None = None
    samples_per_step = parts.sampler.global_batch_size * job.optim.accumulation_steps

    guarding = nullcontext(guard) if guard is not None else PreemptionGuard(config.preemption_signals)
    val_batches = (
        ValidationBatches(
            job.val_set,
            batch_size=job.batch_size,
            num_workers=job.num_workers,
            signal_names=config.preemption_signals,
            context=context,
        )
        if job.val_set is not None
        else None
    )
    # closing(stream), closing(val_batches): their loader workers ignore SIGTERM and live from one
    # epoch (or evaluation) to the next, so they must be shut down on every way out; a worker pool
    # left to the interpreter's exit would wait for them forever. data_parallel lets go of the
    # process group on every way out (see there).
    with (
        guarding as guard,
        data_parallel as train_model,
        closing(stream),
        closing(val_batches) if val_batches is not None else nullcontext(),
        # A resumed run's bar counts the run's steps from where it resumed, as metrics.jsonl does.
        open_task(reporter, total_steps, "training", "steps", done=progress.step) as bar,
    ):
        train_model.train()
        while progress.step < total_steps:
            # -- forward and backward over the micro-batches of one optimiser step, then update --
            # Timed from here: the evaluation, checkpoint and logging after the previous step are
            # not training throughput (the step after each evaluation showed a fraction of it).
            step_start = time.monotonic()
            local_loss = _forward_backward(job, train_model, stream, parts.scaler, context, autocast_dtype)
            loss = distributed.all_reduce_mean(local_loss, context)
            if not math.isfinite(loss):
                raise _non_finite_loss(loss, progress, job, parts.model, run_folder, context)
            used_lrs = _update(job, parts.model, parts.optimizer, parts.scaler, parts.schedule)
            progress.step += 1

            # -- log, evaluate, checkpoint ----------------------------------------------------
            samples_per_second = samples_per_step / max(time.monotonic() - step_start, 1e-9)
            _log_step(bar, run_folder, progress, loss, used_lrs, samples_per_second, parts, context, config)
            if val_batches is not None and (parts.due(progress.step, parts.eval_every) or progress.step == total_steps):
                last_metrics = _evaluate_and_keep_best(job, val_batches, parts, progress, run_folder, context)
            if progress.best_step is None and (progress.step == total_steps or progress.stopped_early):
                _keep_last_as_best(job, parts, progress, run_folder, context, last_metrics)
            if on_step is not None:
                on_step(progress.step)
            preempted = distributed.any_rank(guard.request.name is not None, context)
            finished = progress.step == total_steps or progress.stopped_early
            if preempted or finished or parts.due(progress.step, parts.checkpoint_every):
                last_checkpoint = _save(job, parts, progress, run_folder, context)
                # A stop that arrived while it was written stops here: another step and checkpoint
                # could outlast the time the scheduler (or torchrun) gives before it kills the job.
                preempted = preempted or (not finished and distributed.any_rank(guard.request.name is not None, context))
            signal_name = _agreed_signal(guard, context) if preempted else None
            if preempted and finished:
                # Nothing is left to train: a stop after the last step ends a complete run (exit 0),
                # not a preempted one that a requeue would start again only to find it done.
                logger.warning(came_as_the_work_finished(signal_name))
            elif preempted:
                raise _stopped(signal_name, progress, last_checkpoint, continue_command)
            if progress.stopped_early:
                logger.info(f"early stopping at step {progress.step}: {config.early_stopping_metric} did not improve")
                break

    return _result(progress, parts.batches_per_epoch, last_metrics, last_checkpoint, run_folder, context)


def _prepare(
    job: TrainingJob, run_folder: RunFolder, context: distributed.DistributedContext, resume: Path | None
) -> tuple[torch.dtype | None, _Parts, Progress]:
    """Check the job, build its parts and restore them from ``resume`` (or seed a fresh run).

    Returns the autocast dtype, the parts and where the run is.
    """
    autocast_dtype = _check_job(job, context.device)
    if context.is_main:
        run_folder.create()
    parts = _build_parts(job, context)
    if resume is None:
        _seed_everything(job.train.seed + context.rank)
        return autocast_dtype, parts, Progress()
    return autocast_dtype, parts, _resume(resume, job, parts, run_folder, context)


def _check_job(job: TrainingJob, device: torch.device) -> torch.dtype | None:
    """Refuse a precision the device lacks or an early-stopping metric the task never computes.

    Returns the autocast dtype of ``train.precision`` (``None`` for fp32).
    """
    config = job.train
    distributed.check_precision(config.precision, device)
    problem = unwatchable_metric(config.early_stopping_metric, job.objective.task)
    if job.val_set is not None and problem:
        raise UsageError(problem)
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)


def _build_parts(job: TrainingJob, context: distributed.DistributedContext) -> _Parts:
    """Move the model to the device; build its optimiser, sampler, schedule and scaler; count the steps."""
    config = job.train
    model = job.model.to(context.device)
    optimizer = build_optimizer(model, job.optim)
    n_windows = _window_count(job.train_set)
    sampler = GlobalBatchSampler(
        n_windows, job.batch_size, shuffle=True, seed=config.seed, rank=context.rank, world_size=context.world_size
    )
    batches_per_epoch = sampler.batches_per_epoch()
    if batches_per_epoch == 0:
        raise UsageError(
            f"the training split has {counted(n_windows, 'window')}, fewer than one batch of "
            f"{sampler.global_batch_size} (data.batch_size x processes); lower data.batch_size"
        )
    accumulation = job.optim.accumulation_steps
    total_steps = steps_of_run(config, batches_per_epoch, accumulation)
    schedule = build_schedule(optimizer, job.optim, total_steps=total_steps, batches_per_epoch=batches_per_epoch)
    _warn_if_the_warmup_spans_the_run(job.optim, schedule.warmup_steps, total_steps)
    _warn_if_a_step_spans_epochs(config, accumulation, batches_per_epoch, total_steps)
    return _Parts(
        model=model,
        optimizer=optimizer,
        schedule=schedule,
        scaler=torch.amp.GradScaler(context.device.type, enabled=config.precision == "fp16"),
        sampler=sampler,
        batches_per_epoch=batches_per_epoch,
        total_steps=total_steps,
        accumulation=accumulation,
        eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every or config.eval_every,
    )


def steps_of_run(config: TrainSection, batches_per_epoch: int, accumulation: int) -> int:
    """The optimiser steps of the whole run: ``train.max_steps``, else ``train.epochs`` of ``batches_per_epoch``.

    Parameters
    ----------
    config : TrainSection
        The run's ``[train]`` section.
    batches_per_epoch : int
        Full global batches in one epoch.
    accumulation : int
        ``optim.accumulation_steps``: batches per optimiser step.
    """
    if config.max_steps is not None:
        return config.max_steps
    if config.epochs is not None:
        return steps_for_epochs(config.epochs, batches_per_epoch, accumulation)
    # the [train] schema refuses this; a section built by hand (model_construct) may not
    raise UsageError("train.epochs and train.max_steps are both unset; set one of them")


def _warn_if_the_warmup_spans_the_run(optim: OptimSection, warmup_steps: int, total_steps: int) -> None:
    """Say so when the warm-up lasts the whole run: the rate only rises, and ends at its peak.

    Easy to do when a published recipe is shrunk for a trial (``luna_scp1`` warms up over 2 of
    its 15 epochs; ``--set train.epochs=2`` kept the warm-up), and the run then looks like one
    that cannot learn.
    """
    if warmup_steps < total_steps:
        return
    field = (
        f"optim.warmup_steps = {optim.warmup_steps}"
        if optim.warmup_steps is not None
        else f"optim.warmup_epochs = {optim.warmup_epochs:g}"
    )
    # A constant schedule has no decay to miss: its run never trains at the rate it was given.
    after = "never decays" if optim.schedule == "cosine" else f"reaches optim.lr = {optim.lr:g} only at the end"
    logger.warning(
        f"{field} warms up over {counted(warmup_steps, 'step')}, the whole run of {total_steps}: the learning rate "
        f"only rises and {after}; shorten the warm-up or train longer"
    )


def _warn_if_a_step_spans_epochs(config: TrainSection, accumulation: int, batches_per_epoch: int, total_steps: int) -> None:
    """Say so when one optimiser step reads more than an epoch: "once per epoch" is then every step.

    Easy to do when ``optim.accumulation_steps`` is raised to keep the global batch on a small trial
    split: a run of ``train.epochs = 3`` over 2 batches an epoch under 8 accumulated trained one step
    that read 4 epochs, evaluated once, and said nothing.
    """
    if accumulation <= batches_per_epoch:
        return
    read = Fraction(total_steps * accumulation, batches_per_epoch)
    batches = counted(batches_per_epoch, "batch", "batches")
    asked = f" (train.epochs = {config.epochs:g})" if config.max_steps is None and config.epochs is not None else ""
    logger.warning(
        f"optim.accumulation_steps = {accumulation} is more than the {batches} of an epoch: "
        f"each step reads {float(Fraction(accumulation, batches_per_epoch)):.3g} epochs, so the run trains "
        f"{counted(total_steps, 'step')} over {float(read):.3g} epochs{asked}; "
        "lower optim.accumulation_steps or data.batch_size"
    )


def _log_step(
    bar: Any,
    run_folder: RunFolder,
    progress: Progress,
    loss: float,
    used_lrs: list[float],
    samples_per_second: float,
    parts: _Parts,
    context: distributed.DistributedContext,
    config: TrainSection,
) -> None:
    """Show the step on the progress bar and append it to ``metrics.jsonl`` when :func:`_logged` says so.

    Under layer-wise decay every record carries ``lr_groups``, each group's own rate; deciding by
    the rates themselves left it out of the warm-up's first step, where every group starts at
    ``warmup_lr_init``.
    """
    lr = max(used_lrs)  # the schedule's own rate: the groups that layer decay leaves at scale 1
    bar.advance(1)
    bar.set_description(f"step {progress.step} loss {loss:.4f} lr {lr:.2e} {samples_per_second:.3g} samples/s")
    if context.is_main and _logged(progress.step, parts, config):
        record = {
            "split": "train",
            "step": progress.step,
            "epoch": parts.epoch_of(progress.step),
            "loss": loss,
            "lr": lr,
            "samples_per_second": samples_per_second,
        }
        if len({group["lr_scale"] for group in parts.optimizer.param_groups}) > 1:
            record["lr_groups"] = used_lrs
        run_folder.append_metrics(record)


def _logged(step: int, parts: _Parts, config: TrainSection) -> bool:
    """Whether ``step``'s training loss goes to ``metrics.jsonl``: every ``log_every`` steps, and beside every evaluation.

    The step that ends an epoch and each evaluation's step are logged whatever ``log_every`` says, so
    ``train_curve.png`` has a training point beside each validation point: a small split of one or two steps
    an epoch drew one training point against every epoch's validation. It depends on the step only, so a
    resumed run logs where an uninterrupted one does.
    """
    return step % config.log_every == 0 or step == parts.total_steps or parts.due(step, None) or parts.due(step, parts.eval_every)


def _forward_backward(
    job: TrainingJob,
    train_model: nn.Module,
    stream: Iterator[dict[str, Any]],
    scaler: torch.amp.GradScaler,
    context: distributed.DistributedContext,
    autocast_dtype: torch.dtype | None,
) -> float:
    """Accumulate the gradients of ``optim.accumulation_steps`` micro-batches; this rank's mean loss.

    DDP synchronises the gradients on the last micro-batch only.
    """
    accumulation = job.optim.accumulation_steps
    device_type = context.device.type
    loss_sum = 0.0
    for micro in range(accumulation):
        batch = next(stream)
        # DDP (a multi-process job) holds the gradients back until the last micro-batch.
        ddp = train_model if isinstance(train_model, DistributedDataParallel) else None
        with ddp.no_sync() if ddp is not None and micro < accumulation - 1 else nullcontext():
            try:
                with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    result = job.objective(train_model, batch, training=True)
                assert result.loss is not None  # a training batch always carries its targets
                loss = result.loss
                scaler.scale(loss / accumulation).backward()
            except torch.cuda.OutOfMemoryError:
                raise _out_of_memory(job) from None
            except RuntimeError as error:
                if "can't allocate memory" in str(error) or "out of memory" in str(error):
                    raise _out_of_memory(job) from None
                raise
        loss_sum += loss.detach().float().item() / accumulation
    return loss_sum


def _update(
    job: TrainingJob, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, schedule: Any
) -> list[float]:
    """Clip, step the optimiser and the schedule; the learning rate each group used in this step."""
    # Read before the schedule moves them on for the next step.
    used_lrs = [group["lr"] for group in optimizer.param_groups]
    if job.optim.grad_clip is not None:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], job.optim.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    schedule.step()
    return used_lrs


def _agreed_signal(guard: PreemptionGuard, context: distributed.DistributedContext) -> str | None:
    """The stop signal every rank names: the first rank's that received one.

    Called on every rank once they agreed to stop (one collective, not one per step): often only
    one rank got the signal, and the others must name it too and exit with its status.
    """
    return next((name for name in distributed.gather_objects(guard.request.name, context) if name), None)


def _stopped(signal_name: str | None, progress: Progress, checkpoint: Path | None, continue_command: str | None) -> BiofoundError:
    """The error that ends a run stopped by ``signal_name`` (all ranks agreed), once its checkpoint is written."""
    command = continue_command or "the same command with --resume auto"
    message = (
        f"stopped by {stop_name(signal_name)} at step {progress.step}; a resumable checkpoint is in "
        f"{checkpoint}; continue with: {command}"
    )
    details = {
        "checkpoint": str(checkpoint) if checkpoint else None,
        "step": progress.step,
        "best_step": progress.best_step,
        "resume_command": continue_command,
    }
    stop = InterruptedRunError if signal_name == PreemptionGuard.INTERRUPT else PreemptedError
    return stop(message, details=details)


def _resume(
    folder: Path, job: TrainingJob, parts: _Parts, run_folder: RunFolder, context: distributed.DistributedContext
) -> Progress:
    """Restore the run saved in ``folder``; drop the metrics logged after its step and put back its best weights."""
    progress = _restore(folder, job, parts, context)
    if context.is_main:
        run_folder.restore_best(folder, progress.step, progress.best_step)
    _watch_as_the_recipe_says(progress, job.train, steps_left=progress.step < parts.total_steps)
    if _finished(progress, parts.total_steps):
        _nothing_to_do(run_folder, progress)
        return progress
    logger.info(f"resumed from {folder} at step {progress.step}")
    if context.is_main:
        run_folder.truncate_metrics(progress.step)
    return progress


def _watched(config: TrainSection) -> str:
    return f"{config.early_stopping_metric} {config.early_stopping_direction}"


def _watch_as_the_recipe_says(progress: Progress, config: TrainSection, *, steps_left: bool) -> None:
    """Early stopping of a resumed run follows this start's recipe (changed with ``--allow-changes``).

    Another watched metric or mode starts the best anew when there are steps left to train: the
    best so far, a number of another metric, was compared with the new one's (a ``val_loss`` of
    0.9 against accuracies). The patience is counted against this start's
    ``early_stopping_patience``, so a run that stopped early goes on when the patience is raised
    or unset, instead of finding itself finished.
    """
    if _watch_starts_anew(progress, config, steps_left=steps_left):
        logger.warning(
            f"the best checkpoint so far was chosen by {progress.watched} and this start watches {_watched(config)}: "
            "the next evaluation's weights become the best"
        )
        progress.best_metric, progress.best_step, progress.evals_without_improvement = None, None, 0
    patience = config.early_stopping_patience
    progress.stopped_early = patience is not None and progress.evals_without_improvement >= patience


def _watch_starts_anew(progress: Progress, config: TrainSection, *, steps_left: bool) -> bool:
    """Whether this start watches another metric or mode than the best so far was chosen by, with steps left to train."""
    return steps_left and progress.watched is not None and progress.watched != _watched(config)


def _finished(progress: Progress, total_steps: int) -> bool:
    """Whether a run at ``progress`` (its patience counted as this start's recipe says) has nothing left to train."""
    return progress.stopped_early or progress.step >= total_steps


def _nothing_to_do(run_folder: RunFolder, progress: Progress) -> None:
    logger.info(f"{run_folder.root} already finished at step {progress.step}; nothing to do")


def finished_run(
    folder: Path,
    train: TrainSection,
    optim: OptimSection,
    batch_size: int,
    run_folder: RunFolder,
    context: distributed.DistributedContext,
) -> FitResult | None:
    """The result of the run saved in ``folder`` when this start's recipe leaves it nothing to train, read without its data.

    A requeue after the last step found so only once it had opened ``data.train``: staged data
    gone with the job's ``$TMPDIR`` refused the re-run of a finished job. Called on rank 0 by
    the run protocol before it builds the job, for a resume without changes of recipe; those
    go through :func:`fit`, which decides the same way (:func:`_finished`).

    Parameters
    ----------
    folder : Path
        The checkpoint folder the run resumes from.
    train, optim : TrainSection, OptimSection
        This start's ``[train]`` and ``[optim]`` sections.
    batch_size : int
        ``data.batch_size`` (per process).
    run_folder : RunFolder
        The run's folder; its best weights are put back as of ``folder`` and its last
        validation metrics reported again.
    context : DistributedContext
        Rank 0's: the number of processes counts the batches of an epoch.

    Returns
    -------
    FitResult | None
        None when steps are left, the checkpoint does not record its windows, or they make no batch.
    """
    saved, windows = state.saved_progress(folder)
    if windows is None:
        return None
    sampler = GlobalBatchSampler(windows, batch_size, shuffle=True, seed=train.seed, rank=0, world_size=context.world_size)
    batches_per_epoch = sampler.batches_per_epoch()
    if batches_per_epoch == 0:
        return None
    progress, total_steps = Progress(**saved), steps_of_run(train, batches_per_epoch, optim.accumulation_steps)
    steps_left = progress.step < total_steps
    if _watch_starts_anew(progress, train, steps_left=steps_left):  # the best starts anew: it trains on
        return None
    _watch_as_the_recipe_says(progress, train, steps_left=steps_left)
    if not _finished(progress, total_steps):
        return None
    run_folder.restore_best(folder, progress.step, progress.best_step)
    _nothing_to_do(run_folder, progress)
    return _result(progress, batches_per_epoch, _last_val_metrics(run_folder, context), folder, run_folder, context)


def _last_val_metrics(run_folder: RunFolder, context: distributed.DistributedContext) -> dict[str, Any]:
    """The metrics of the last validation in ``metrics.jsonl`` (what a finished run reports again)."""
    if not context.is_main:
        return {}
    return {key: value for key, value in run_folder.last_record("val").items() if key not in ("split", "step", "epoch")}


def _result(
    progress: Progress,
    batches_per_epoch: int,
    last_metrics: dict[str, Any],
    last_checkpoint: Path | None,
    run_folder: RunFolder,
    context: distributed.DistributedContext,
) -> FitResult:
    return FitResult(
        step=progress.step,
        # progress.epoch is the epoch in progress: it moves on only when the next batch is drawn.
        epoch=round(progress.epoch + progress.batch / batches_per_epoch, 3),
        stopped_early=progress.stopped_early,
        best_metric=progress.best_metric,
        best_step=progress.best_step,
        last_metrics=last_metrics,
        last_checkpoint=last_checkpoint,
        best_checkpoint=run_folder.best if context.is_main and run_folder.best.is_dir() else None,
    )


def _micro_batches(
    job: TrainingJob, sampler: GlobalBatchSampler, progress: Progress, device: torch.device
) -> Generator[dict[str, Any], None, None]:
    """An endless stream of batches that keeps ``progress.epoch`` / ``progress.batch`` current.

    One loader serves every epoch, and its workers live until the stream is closed: a loader built
    per epoch started its workers (and their HDF5 handles) afresh each time and tore them down.
    Its batches follow ``progress`` (:class:`_BatchesFromProgress`), so each epoch, and a resumed
    one, reads what a loader of its own read.
    """
    loader = DataLoader(
        job.train_set,
        batch_sampler=_BatchesFromProgress(sampler, progress),
        num_workers=job.num_workers,
        collate_fn=collate_windows,
        pin_memory=device.type == "cuda",
        # A private generator: creating a loader would otherwise draw from the global RNG,
        # and a resumed run creates one mid-epoch where an uninterrupted run does not.
        generator=torch.Generator().manual_seed(job.train.seed + progress.epoch),
        persistent_workers=job.num_workers > 0,
    )
    try:
        while True:
            for batch in iterate_leaving_signals_to_main(loader, job.train.preemption_signals):
                progress.batch += 1
                yield {
                    key: value.to(device, non_blocking=True) if torch.is_tensor(value) else value for key, value in batch.items()
                }
            progress.epoch += 1
            progress.batch = 0
    finally:
        stop_workers(loader)


@dataclass
class _BatchesFromProgress:
    """A batch sampler whose every pass is the rest of the epoch ``progress`` is in, from its next batch.

    The loader iterates it (in the main process) as each of its passes starts, so a loader kept
    across epochs reads epoch ``progress.epoch`` from batch ``progress.batch`` each time.
    """

    sampler: GlobalBatchSampler
    progress: Progress

    def __iter__(self) -> Iterator[list[int]]:
        return self.sampler.batches(self.progress.epoch, self.progress.batch)


def _window_count(dataset: Dataset) -> int:
    """The windows of the training split; the sampler deals out indices, so it needs their number."""
    if not isinstance(dataset, Sized):
        raise UsageError(f"the training set ({type(dataset).__name__}) has no length; give a map-style dataset with __len__")
    return len(dataset)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _evaluate_and_keep_best(
    job: TrainingJob,
    val_batches: ValidationBatches,
    parts: _Parts,
    progress: Progress,
    run_folder: RunFolder,
    context: distributed.DistributedContext,
) -> dict[str, Any]:
    """Every rank scores its share of the validation split; every rank gets the whole split's metrics.

    Keeps the best weights and counts the evaluations without improvement (``progress.stopped_early``
    once ``train.early_stopping_patience`` is reached); one where the watched metric is undefined counts neither way.
    """
    config = job.train
    model = parts.model
    metrics = evaluate(model, job.objective, val_batches, device=context.device)
    watched = metrics[config.early_stopping_metric]
    progress.watched = _watched(config)
    shown = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items() if isinstance(value, float))
    if metrics["val_loss"] is None:
        logger.warning(
            f"step {progress.step} (epoch {parts.epoch_of(progress.step)}): val_loss is NaN or inf (null in metrics.jsonl, as is "
            "every metric of this evaluation): the weights diverged or data.val holds a non-finite value; these weights "
            "are not kept as best"
        )
    if watched is None:
        # Undefined (AUROC of a data.val holding one class) or not finite (a NaN val_loss, which
        # compared as no improvement, and as the best at the first evaluation) measures nothing:
        # neither an improvement nor a strike, since a strike stopped runs for a number that cannot
        # be computed, not a plateau.
        shown += (
            f"{'; ' if shown else ''}{config.early_stopping_metric} undefined (null): neither an improvement nor counted toward "
            "train.early_stopping_patience"
        )
    elif progress.best_metric is None or (
        watched < progress.best_metric if config.early_stopping_direction == "min" else watched > progress.best_metric
    ):
        progress.best_metric, progress.best_step = float(watched), progress.step
        progress.evals_without_improvement = 0
        if context.is_main:
            _write_best(job, model, run_folder, {"step": progress.step, config.early_stopping_metric: watched})
    else:
        progress.evals_without_improvement += 1
    patience = config.early_stopping_patience
    progress.stopped_early = patience is not None and progress.evals_without_improvement >= patience
    if context.is_main:
        run_folder.append_metrics({"split": "val", "step": progress.step, "epoch": parts.epoch_of(progress.step), **metrics})
    logger.info(f"step {progress.step}: {shown}")
    return metrics


def _keep_last_as_best(
    job: TrainingJob,
    parts: _Parts,
    progress: Progress,
    run_folder: RunFolder,
    context: distributed.DistributedContext,
    last_metrics: dict[str, Any],
) -> None:
    """Without a best chosen (no ``data.val``, or its watched metric undefined at every evaluation),
    the last step's weights become ``checkpoints/best``; not when their ``val_loss`` was not finite.

    ``evaluate``, ``export``, ``predict`` and ``model.checkpoint`` take a run's best, and a LoRA
    run's ``step-N`` folders hold its adapters apart from the weights, so without this a LoRA run
    trained without validation left no weights any of them would take; nor did a run watching
    ``val_auroc`` on a ``data.val`` holding one class, which finished "successfully" with none.
    """
    if job.val_set is not None and last_metrics["val_loss"] is None:  # gathered metrics: alike on every rank
        message = (
            f"val_loss was NaN or inf at the last step ({progress.step}) and no evaluation chose a best, so no weights are "
            f"kept as best; {_DIVERGED}"
        )
        raise distributed.reported_by_rank(TrainingError(message), context)
    progress.best_step = progress.step
    if not context.is_main:
        return
    _write_best(job, parts.model, run_folder, {"step": progress.step})
    kept = f"{run_folder.best} holds the last step's weights (step {progress.step})"
    if job.val_set is None:
        logger.info(f"no data.val to choose the best by: {kept}")
        return
    metric = job.train.early_stopping_metric
    logger.warning(
        f"train.early_stopping_metric = {metric!r} was undefined (null in metrics.jsonl) at every evaluation, so it chose "
        f"no best ({metric.removeprefix('val_')} of a data.val holding one class, a constant target, or NaN): {kept}; "
        "watch val_loss, or validate on a split holding every class"
    )


def _write_best(job: TrainingJob, model: nn.Module, run_folder: RunFolder, metadata: dict[str, Any]) -> None:
    """Write ``model``'s weights as the run's best, as ``job.export_state`` saves them (LoRA merged), with ``metadata``."""
    weights = job.export_state(model) if job.export_state else model.state_dict()
    metadata = {**job.metadata, **metadata}
    if job.export_state and metadata.get("lora"):
        metadata["lora"] = {**metadata["lora"], "merged": True}
    state.write_checkpoint(run_folder.best, model_state=weights, trainer_state=None, metadata=metadata)


def _save(
    job: TrainingJob,
    parts: _Parts,
    progress: Progress,
    run_folder: RunFolder,
    context: distributed.DistributedContext,
) -> Path:
    """Write a resumable checkpoint (rank 0) after every rank has handed over its RNG state."""
    rng_states = distributed.gather_objects(state.capture_rng_state(), context)
    folder = state.step_folder(run_folder.checkpoints, progress.step)
    if context.is_main:
        best = run_folder.best / WEIGHTS_FILE
        trainer_state = {
            "optimizer": parts.optimizer.state_dict(),
            "schedule": parts.schedule.state_dict(),
            "scaler": parts.scaler.state_dict(),
            "rng": rng_states,
            "progress": asdict(progress),
            "world_size": context.world_size,
            "global_batch_size": parts.sampler.global_batch_size,
            "train_windows": parts.sampler.n_samples,
            "train_fingerprint": job.train_fingerprint,
            "accumulation_steps": parts.accumulation,
            "metadata": job.metadata,
        }
        state.write_checkpoint(
            folder,
            model_state=parts.model.state_dict(),
            trainer_state=trainer_state,
            metadata={**job.metadata, "step": progress.step},
            best=best if progress.best_step is not None and best.is_file() else None,
        )
        state.prune_checkpoints(run_folder.checkpoints, job.train.keep_checkpoints)
    distributed.barrier(context)
    return folder


def _restore(
    folder: Path,
    job: TrainingJob,
    parts: _Parts,
    context: distributed.DistributedContext,
) -> Progress:
    """Load the weights, optimiser, schedule, scaler and this rank's RNG state; where the run was."""
    # Its training split is the checkpoint's: the run protocol checked it before the start was recorded.
    weights, trainer_state, _ = state.read_checkpoint(folder)
    saved = trainer_state.get("metadata", {})
    for key in ("model", "variant", "task", "num_classes"):
        if key in saved and key in job.metadata and saved[key] != job.metadata[key]:
            raise CheckpointError(
                f"{folder}: checkpoint was trained with {key} = {saved[key]!r} but the recipe asks for "
                f"{job.metadata[key]!r}; use a fresh output.run_name or --resume none"
            )
    # Its keys and shapes fit: check_same_model refused the start otherwise, before it was recorded.
    parts.model.load_state_dict(weights)
    parts.optimizer.load_state_dict(trainer_state["optimizer"])
    saved_lr = _schedule_lr(parts.optimizer)
    parts.schedule.load_state_dict(trainer_state["schedule"])
    _warn_if_the_rate_moved(saved_lr, _schedule_lr(parts.optimizer), trainer_state["progress"]["step"] + 1)
    parts.scaler.load_state_dict(trainer_state["scaler"])
    rng_states = trainer_state["rng"]
    if len(rng_states) == context.world_size:
        state.restore_rng_state(rng_states[context.rank])
    else:
        # Another number of processes: the per-rank random streams cannot be continued exactly.
        _seed_everything(job.train.seed + context.rank + trainer_state["progress"]["step"])
    return Progress(**trainer_state["progress"])


def _schedule_lr(optimizer: torch.optim.Optimizer) -> float:
    """The schedule's own rate: that of the groups layer decay leaves at scale 1, the largest."""
    return max(group["lr"] for group in optimizer.param_groups)


def _warn_if_the_rate_moved(saved_lr: float, lr: float, step: int) -> None:
    """Say so when a resumed run's recipe (``--allow-changes``) puts step ``step``'s learning rate elsewhere.

    Training longer (``train.epochs`` 15 -> 20) stretches the cosine, so the rate jumps back up
    from near ``optim.min_lr``: what a longer schedule means, but a jump in the loss curve that
    needs its cause named.
    """
    if not math.isclose(saved_lr, lr, rel_tol=1e-6):
        logger.warning(
            f"the learning rate at step {step} is {lr:.3g} under this recipe's schedule and was {saved_lr:.3g} under the "
            "one the run was saved with; training goes on at the new rate"
        )


def _non_finite_loss(
    loss: float,
    progress: Progress,
    job: TrainingJob,
    model: nn.Module,
    run_folder: RunFolder,
    context: distributed.DistributedContext,
) -> BiofoundError:
    step = progress.step + 1
    folder = run_folder.debug / f"step-{step:08d}-nonfinite"
    if context.is_main:
        state.write_checkpoint(
            folder,
            model_state=model.state_dict(),
            trainer_state=None,
            metadata={**job.metadata, "step": step, "loss": repr(loss)},
        )
    distributed.barrier(context)
    # The loss is all-reduced: every rank stops here alike, and the job says so once.
    message = f"the training loss became {loss} at step {step}; the weights before that step are in {folder}; {_DIVERGED}"
    return distributed.reported_by_rank(TrainingError(message), context)


def _out_of_memory(job: TrainingJob) -> TrainingError:
    return TrainingError(
        f"out of memory with data.batch_size = {job.batch_size}; lower data.batch_size and raise "
        "optim.accumulation_steps to keep the same effective batch"
    )
