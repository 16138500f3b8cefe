"""One training run from a recipe, setup → train → save → clean up (torchtune's recipe shape).

:func:`run_checked_training` is the one run protocol, for a recipe :func:`check_start` passed: ``biofound
pretrain`` / ``finetune`` call it, and the quick start through :func:`run_training`, which checks first. It
joins the process group, decides the run folder once (:meth:`~biofound_cli.recipes.schema.Recipe.run_dir`),
resolves and checks ``--resume`` (refusing a changed recipe unless asked), builds the job, records the recipe,
environment and start in the folder, runs :func:`~biofound_cli.training.loop.fit` and plots the curve. A
resume with nothing left to train is checked and recorded alike, and reported without building the job. Only
rank 0 writes and reports progress and warnings; the other ranks print only errors of their own. Every rank
returns the same :class:`RunResult`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from biofound_cli.errors import BiofoundError, InterruptedRunError, PreemptedError, UsageError
from biofound_cli.models.checkpoints import WEIGHTS_FILE, read_metadata
from biofound_cli.progress import NO_PROGRESS, ProgressReporter
from biofound_cli.recipes.schema import Recipe
from biofound_cli.recipes.training import OptimSection, TrainSection
from biofound_cli.store.dataset import read_packed_info
from biofound_cli.store.packer import held_for_reading
from biofound_cli.training import distributed, state
from biofound_cli.training.loop import FitResult, TrainingError, TrainingJob, finished_run, fit
from biofound_cli.training.preemption import PreemptionGuard
from biofound_cli.training.run_folder import RunFolder, describe_environment, describe_rank
from biofound_cli.training.setup import (
    build_checked_job,
    check_same_batching,
    check_same_model,
    check_training,
    existing_split,
    resolve_resume,
    split_files,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from Python 3.11

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished (or re-run finished) training run reports."""

    run_folder: RunFolder
    stage: str
    fit: FitResult
    watched_metric: str
    curve: Path | None
    world_size: int
    elapsed_seconds: float

    def summary(self) -> dict[str, Any]:
        """The ``--json`` summary of ``biofound pretrain`` / ``finetune``."""
        result = self.fit
        return {
            "run": str(self.run_folder.root),
            "stage": self.stage,
            "steps": result.step,
            "epochs": result.epoch,
            "stopped_early": result.stopped_early,
            "best_metric": {self.watched_metric: result.best_metric},
            "best_step": result.best_step,
            "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
            "last_checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
            "best_metrics": self._best_metrics(),
            "metrics": _numbers(result.last_metrics),
            "train_curve": str(self.curve) if self.curve else None,
            "world_size": self.world_size,
            "elapsed_seconds": round(self.elapsed_seconds, 1),
        }

    def _best_metrics(self) -> dict[str, float]:
        """The validation metrics of the best step, from ``metrics.jsonl`` (which resumes keep).

        ``metrics`` is the last evaluation, which need not be the kept weights': a researcher
        reading it beside ``best_checkpoint`` would report another model's numbers.
        """
        rows = [row for row in self.run_folder.read_metrics() if row.get("split") == "val"]
        best = [row for row in rows if row.get("step") == self.fit.best_step]
        return _numbers({key: value for key, value in best[-1].items() if key.startswith("val_")}) if best else {}


def _numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metrics.items() if isinstance(value, (int, float))}


class TrainingOptions(TypedDict, total=False):
    """The keywords :func:`run_training` passes on to :func:`run_checked_training` (mypy holds them to its signature)."""

    reporter: ProgressReporter
    allow_changes: bool
    guard: PreemptionGuard | None
    continue_command: str | None


def run_training(
    recipe: Recipe, *, stage: str, source: str, resume: str = "none", **options: Unpack[TrainingOptions]
) -> RunResult:
    """:func:`check_start`, then :func:`run_checked_training`, for a Python caller.

    Parameters
    ----------
    recipe : Recipe
        A loaded recipe.
    stage : {"pretrain", "finetune"}
    source : str
        The recipe file, named in messages.
    resume : str
        ``"none"``, ``"auto"`` or a checkpoint path, as :func:`run_checked_training` takes it.
    **options : TrainingOptions
        The other keywords of :func:`run_checked_training`.

    Returns
    -------
    RunResult
        As :func:`run_checked_training` returns it.
    """
    distributed.reported_by_rank_zero(lambda: check_start(recipe, stage, source, resume))
    return run_checked_training(recipe, stage=stage, source=source, resume=resume, **options)


def run_checked_training(
    recipe: Recipe,
    *,
    stage: str,
    source: str,
    reporter: ProgressReporter = NO_PROGRESS,
    resume: str = "none",
    allow_changes: bool = False,
    guard: PreemptionGuard | None = None,
    continue_command: str | None = None,
) -> RunResult:
    """Train ``recipe``, which :func:`check_start` passed, for ``stage`` (``pretrain`` or ``finetune``) in this process's rank.

    Parameters
    ----------
    recipe : Recipe
        A loaded recipe that :func:`check_start` passed with ``stage``, ``source`` and ``resume``.
    stage : {"pretrain", "finetune"}
    source : str
        The recipe file, named in messages.
    reporter : ProgressReporter
        Progress of rank 0; the other ranks show none. Messages are logged; on the other
        ranks only warnings and errors pass.
    resume : str
        ``auto``, ``none`` or a checkpoint folder (see :func:`~biofound_cli.training.setup.resolve_resume`).
    allow_changes : bool
        Resume although the recipe or the number of processes changed.
    guard : PreemptionGuard | None
        Stop-signal handling installed by the caller before the setup.
    continue_command : str | None
        The exact command that continues the run, named when a signal stops it.

    Returns
    -------
    RunResult
        The same on every rank.
    """

    started = time.monotonic()
    train = recipe.train or TrainSection()
    context = distributed.reported_by_rank_zero(lambda: distributed.setup_distributed(train.device))
    # A non-main rank's INFO lines and warnings repeat rank 0's (every rank trains alike: a resume's note that the
    # watched metric starts anew, torch's notice about loader workers); its errors, raised, still reach the log.
    with distributed.warned_by_rank_zero():
        return _run(
            recipe,
            stage,
            source,
            reporter if context.is_main else NO_PROGRESS,
            resume,
            allow_changes,
            guard,
            continue_command,
            context,
            started,
        )


def check_start(recipe: Recipe, stage: str, source: str, resume: str) -> None:
    """The checks of a training start before its run folder: the recipe (``check_training``), and a fresh start's packed files.

    Parameters
    ----------
    recipe : Recipe
        The loaded recipe.
    stage : {"pretrain", "finetune"}
    source : str
        The recipe file, named in messages.
    resume : str
        As :func:`run_checked_training` takes it: a resume of a finished run needs no data, which only its folder can tell.
    """
    check_training(recipe, stage, source)
    if resume == "none":
        split_files(recipe, source)


def _run(
    recipe: Recipe,
    stage: str,
    source: str,
    reporter: ProgressReporter,
    resume: str,
    allow_changes: bool,
    guard: PreemptionGuard | None,
    continue_command: str | None,
    context: distributed.DistributedContext,
    started: float,
) -> RunResult:
    """:func:`run_checked_training` once the process group is up; ``reporter`` is already this rank's."""

    # The record names the run folder, whatever named it (a recipe without a name trains into VARIANT-STAGE).
    recipe_record = {**recipe.model_dump(mode="json"), "output": recipe.run_output(stage).model_dump(mode="json")}
    run_folder = RunFolder(recipe.run_dir(stage))
    failed = True
    held = ExitStack()
    try:
        resume_from, changes, finished = distributed.run_on_main(
            lambda: _prepare_folder(recipe, recipe_record, stage, source, resume, allow_changes, run_folder, held, context),
            context,
        )
        if finished is not None:
            # Decided before the data is opened: a requeue after the last step may find it gone with $TMPDIR.
            failed = False
            # Recorded as any start: recipe.json names the paths it uses, the history the old ones.
            _record_start(run_folder, recipe_record, context, resume_from, changes, run_folder.recorded_fingerprints)
            watched = (recipe.train or TrainSection()).early_stopping_metric
            curve = _curve_of_finished(run_folder, watched, resume_from, stage, finished.best_step) if context.is_main else None
            return RunResult(
                run_folder=run_folder,
                stage=stage,
                fit=finished,
                watched_metric=watched,
                curve=curve,
                world_size=context.world_size,
                elapsed_seconds=time.monotonic() - started,
            )
        # Every rank opens the data; a refusal (alike on every rank) is reported once, by rank 0, as are its warnings.
        # check_training ran in every rank's check_start (run_training's, or its command's as it loaded the recipe).
        job = distributed.agree(lambda: build_checked_job(recipe, stage=stage, source=source, resume_from=resume_from), context)
        if resume_from is not None:
            # Before the start is recorded: a refused start leaves recipe.json as the run's steps were trained.
            distributed.agree(lambda: check_same_model(resume_from, job.model, changes), context)
        _record_start(run_folder, recipe_record, context, resume_from, changes, lambda: _data_fingerprints(job))
        distributed.barrier(context)
        try:
            result = fit(
                job,
                run_folder,
                context=context,
                reporter=reporter,
                resume=resume_from,
                guard=guard,
                continue_command=continue_command,
            )
        except (PreemptedError, InterruptedRunError) as stop:
            # A run preempted and requeued many times would otherwise show no curve until it ends.
            if context.is_main:
                _plot_after_stop(run_folder, job, stage, stop.details.get("best_step"))
            raise
        except RuntimeError as error:
            if not (context.enabled and distributed.is_peer_failure(error)):
                raise
            # Rank 0 names itself too: this is its own view, not the job's (the others are named below).
            raise TrainingError(
                f"{'rank 0: ' if context.is_main else ''}another process of this job failed or was killed, so this one stopped "
                "too (torchrun's failure report names it); once its cause is fixed, continue from the newest "
                f"checkpoint with: {continue_command or 'the same command with --resume auto'}"
            ) from None
        curve = (
            _plot(run_folder, job.train.early_stopping_metric, job.metadata, stage, result.best_step) if context.is_main else None
        )
        failed = False
    except BiofoundError as error:
        if context.enabled and not context.is_main:
            error.args = (f"rank {context.rank}: {error.message}",)
        raise
    finally:
        distributed.shutdown(context, failed=failed)
        held.close()
    return RunResult(
        run_folder=run_folder,
        stage=stage,
        fit=result,
        watched_metric=job.train.early_stopping_metric,
        curve=curve,
        world_size=context.world_size,
        elapsed_seconds=time.monotonic() - started,
    )


def _prepare_folder(
    recipe: Recipe,
    recipe_record: dict[str, Any],
    stage: str,
    source: str,
    resume: str,
    allow_changes: bool,
    run_folder: RunFolder,
    held: ExitStack,
    context: distributed.DistributedContext,
) -> tuple[Path | None, list[str], FitResult | None]:
    """Rank 0 takes the run folder and resolves ``--resume``: the checkpoint, the recipe's changes, and
    the run's result when it has nothing left to train (:func:`~biofound_cli.training.loop.finished_run`)."""
    # Rank 0 holds the folder until the run ends: a second job of the recipe is refused.
    held.enter_context(run_folder.held())
    run_folder.check_stage(stage)
    # Rank 0 alone holds the packed folders too: the lock is the file system's, seen from every node, so one holder
    # refuses a pack from anywhere, and a refusal reaches every rank at once (ranks each locking could disagree when a
    # pack starts between them, and the refused one would leave the others waiting at the first collective).
    # Loader workers need none: their parent holds it for as long as they live.
    if recipe.data is not None:
        splits = [path for path in (recipe.data.train, recipe.data.val) if path is not None]
        held.enter_context(held_for_reading(splits, stage))
    resume_from = resolve_resume(resume, run_folder)
    if resume_from is None:
        return None, [], None
    changes = _check_resume(recipe, recipe_record, source, resume_from, allow_changes, run_folder, context)
    data, optim, train = recipe.data, recipe.optim or OptimSection(), recipe.train or TrainSection()
    if changes or data is None:  # a changed recipe goes through the whole setup and its checks (another model)
        return resume_from, changes, None
    return resume_from, changes, finished_run(resume_from, train, optim, data.batch_size, run_folder, context)


def _check_resume(
    recipe: Recipe,
    recipe_record: dict[str, Any],
    source: str,
    resume_from: Path,
    allow_changes: bool,
    run_folder: RunFolder,
    context: distributed.DistributedContext,
) -> list[str]:
    """What every resume checks before its start is recorded, steps left or none; the recipe's changes.

    A split at a new path must be there (refused as a fresh run refuses it, not as a change of
    recipe); the global batch, the recipe and the training split must be the run's. The
    training split is compared with the checkpoint only where ``data.train`` is there: a finished
    run's requeue whose staged data is gone reports the run, and any other start opens it next.
    """
    data = recipe.data
    assert data is not None  # check_training refused a recipe without it
    for field, path in run_folder.splits_at_new_paths(recipe_record).items():
        existing_split(Path(path), f"data.{field}", source)
    check_same_batching(resume_from, data.batch_size, context.world_size, (recipe.optim or OptimSection()).accumulation_steps)
    changes = run_folder.recipe_changes(recipe_record, context.world_size)
    if changes and not allow_changes:
        raise UsageError(
            f"{run_folder.root} was started with another recipe or number of processes ({'; '.join(changes)}); "
            "resume with the original settings, pass --allow-changes to continue anyway, or set "
            "output.run_name to start a new run"
        )
    if data.train is not None and Path(data.train).is_file():
        split = read_packed_info(Path(data.train))
        state.check_same_split(resume_from, split.n_windows, split.fingerprint)
    return changes


def _plot(run_folder: RunFolder, metric: str, metadata: dict[str, Any], stage: str, best_step: int | None) -> Path | None:
    """Rank 0 plots the run's training curve so far, watching ``metric`` (``None`` when nothing was logged).

    ``metadata`` is the run's checkpoint metadata (``job.metadata``), whose variant (or model) the title names.
    """
    return run_folder.plot_curve(
        metric,
        best_step=best_step,
        title=f"{run_folder.root.name}: {metadata.get('variant') or metadata.get('model')} {stage}, best by {metric}",
    )


def _curve_of_finished(
    run_folder: RunFolder, metric: str, checkpoint: Path | None, stage: str, best_step: int | None
) -> Path | None:
    """A finished run's curve; drawn when it has none (a full disk as the run ended, whose line asked for this resume)."""
    if run_folder.curve_file.is_file():
        return run_folder.curve_file
    metadata = read_metadata(Path(checkpoint) / WEIGHTS_FILE).as_dict() if checkpoint else {}
    return _plot(run_folder, metric, metadata, stage, best_step)


def _plot_after_stop(run_folder: RunFolder, job: TrainingJob, stage: str, best_step: int | None) -> None:
    """:func:`_plot` for a stopped run, the best checkpoint so far marked; a failure only warns."""
    try:
        _plot(run_folder, job.train.early_stopping_metric, job.metadata, stage, best_step)
    except Exception as error:  # noqa: BLE001 - any plotting failure; the stop must still be reported
        logger.warning(f"could not plot {run_folder.curve_file} after the stop ({error}); it is plotted when the run ends")


def _data_fingerprints(job: TrainingJob) -> dict[str, str]:
    """The provenance digest of the training and validation splits, by ``[data]`` field (``""``-less)."""
    val_info = getattr(job.val_set, "info", None)
    fingerprints = {"train": job.train_fingerprint, "val": val_info.fingerprint if val_info is not None else ""}
    return {key: value for key, value in fingerprints.items() if value}


def _record_start(
    run_folder: RunFolder,
    recipe_record: dict[str, Any],
    context: distributed.DistributedContext,
    resume_from: Path | None,
    changes: list[str],
    fingerprints: Callable[[], dict[str, str]],
) -> None:
    """Every rank describes its process; rank 0 writes the recipe, the environment and this start into the run folder.

    Every start, one that finds the run finished included: ``recipe.json`` then names the paths
    this start uses (data moved with the run) and ``environment.json`` this start's machines, each
    rank's host, device and GPU (a multi-node job may mix them), with the windows' ``fingerprints``;
    ``recipe_history.jsonl`` keeps both of every start. Called by every rank at once, right after
    a collective they all passed (:func:`~biofound_cli.training.distributed.agree`).
    """
    ranks = distributed.gather_objects(describe_rank(context.rank, str(context.device)), context)
    if not context.is_main:
        return
    if changes:
        logger.warning(f"resuming {run_folder.root} with changes: {'; '.join(changes)}")
    environment = describe_environment(ranks, fingerprints())
    run_folder.record_start(recipe_record, environment, resumed_from=resume_from, changes=changes)
    if resume_from is None:
        run_folder.truncate_metrics(0)
