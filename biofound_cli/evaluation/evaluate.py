"""The evaluate stage: a recipe, a checkpoint and a packed split in; ``report.json`` and plots out.

:func:`check_evaluation_files` resolves the split's file and the checkpoint (the run's best one unless another is
given); :func:`evaluate_checked_recipe`, which ``biofound evaluate`` calls next, checks the checkpoint against
the split, scores every window, builds the report (window and recording level, optional bootstrap intervals)
and draws the plots.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from biofound_cli.atomic import finite, remove_staging_leftovers, staged_files
from biofound_cli.errors import CheckpointError, RecipeError, UsageError, refusal
from biofound_cli.evaluation.predict import (
    check_head,
    class_order,
    finetune_command,
    label_names_of,
    load_for_evaluation,
    placed_channels,
    predict,
    read_recordings,
    scored_task,
    warn_other_chain,
)
from biofound_cli.evaluation.report import (
    FEW_RECORDINGS,
    MIN_RECORDINGS_TO_RESAMPLE,
    REPORT_FILE,
    build_report,
    resamples_recordings,
    write_report,
)
from biofound_cli.metrics import CHANNEL_TASKS, nonfinite_scores
from biofound_cli.models.checkpoints import WEIGHTS_FILE, existing_weights, file_sha256, recorded_output_names
from biofound_cli.plural import counted
from biofound_cli.progress import NO_PROGRESS, ProgressReporter
from biofound_cli.store.splits import SPLITS, missing_split_advice
from biofound_cli.tasks import score_rule
from biofound_cli.training.run_folder import RunFolder, run_folder_of

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from Python 3.11

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Where the outputs went and the report itself."""

    report: dict[str, Any]
    report_path: Path
    plot_paths: list[Path]
    checkpoint: Path
    split_path: Path
    train_curve: Path | None = None
    """The training-curve PNG (written by training) of the run folder the checkpoint evaluated lies in, if any."""
    window_scores: np.ndarray | None = None
    """Every window's probabilities (or predictions), in the split's order."""


def resolve_checkpoint(
    recipe: Any, checkpoint: Path | None, source: str, *, field: str = "--checkpoint", stage: str = "finetune"
) -> Path:
    """The weights a stage reads: ``checkpoint`` if given, else the best checkpoint of the recipe's ``stage`` run.

    Parameters
    ----------
    recipe : Recipe
        Names the run folder, and in ``[download]`` where ``hub:`` references were fetched to.
    checkpoint : Path | None
        A weights file, a checkpoint folder holding ``model.safetensors`` (its file is returned),
        or a ``hub:MODEL/FOLDER`` reference (read from the local copy, never fetched here).
    source : str
        The recipe file, named in messages.
    field : str
        The flag or recipe field ``checkpoint`` came from, named in messages.
    stage : str
        ``finetune`` (the fine-tuned model; a run holding only pre-training is refused, naming it)
        or ``pretrain`` (the pre-training run's encoder, which ``export.stage`` asks for).
    """
    from biofound_cli.hub_reference import local_checkpoint

    if checkpoint is not None:
        download = recipe.download
        return existing_weights(
            local_checkpoint(
                checkpoint,
                f"{source}: {field}",
                revision=download.revision if download else None,
                dest=download.dest if download else None,
            )
        )
    if stage == "pretrain":
        return _pretrained_best(RunFolder(recipe.run_dir("pretrain")), source, field)
    run = RunFolder(recipe.run_dir("finetune"))
    best = run.best / WEIGHTS_FILE
    # A recipe with a name pre-trains into the folder it fine-tunes into (Recipe.run_dir): its
    # best weights there may be the pre-trained encoder, not a fine-tuned model.
    if best.is_file() and run.trained_stage() != "pretrain":
        return best
    pretrained = RunFolder(recipe.run_dir("pretrain"))
    if pretrained.trained_stage() == "pretrain" and pretrained.best.is_dir():
        run_name = f"{pretrained.root.name}-finetune" if pretrained.root == run.root else None
        finetune = finetune_command(source, pretrained.best, run_name)
        # evaluate scores a classifier: pointing it at the pre-trained encoder led to a second refusal.
        weights = "" if field == "--checkpoint" else f"set {field} to {pretrained.root} for those weights, or "
        raise UsageError(
            f"{best}: no fine-tuned run; this recipe pre-trained into {pretrained.root}: {weights}run {finetune} first"
            + (f" and pass --set output.run_name={run_name} here too" if run_name else "")
        )
    if not run.root.is_dir():  # a run copied or moved elsewhere: the recipe's runs_dir still names where it was
        raise UsageError(
            f"{best}: the run has no best checkpoint yet (no run folder {run.root}); finish `biofound finetune {source}` "
            "first, or, if the run was moved or copied, point output.runs_dir at the folder that holds it now "
            f"(--set output.runs_dir=FOLDER; --set output.run_name=NAME too if it was renamed; `biofound info` of the "
            f"run folder names both), or set {field}"
        )
    raise UsageError(f"{best}: the run has no best checkpoint yet; finish `biofound finetune {source}` first or set {field}")


def _pretrained_best(run: RunFolder, source: str, field: str) -> Path:
    """The best weights of the recipe's pre-training run, or why there are none."""
    best = run.best / WEIGHTS_FILE
    held = run.trained_stage()
    if best.is_file() and held == "pretrain":
        return best
    if held == "finetune":
        raise UsageError(
            f"{run.root} holds a fine-tuning run, not this recipe's pre-training; set {field}, or export.stage = 'finetune'"
        )
    raise UsageError(
        f"{best}: the pre-training run has no best checkpoint yet; finish `biofound pretrain {source}` first or set {field}"
    )


def check_evaluation(recipe: Any, source: str) -> None:
    """The recipe checks ``evaluate`` runs before any work (:func:`check_evaluation_files`); ``biofound validate`` runs them too.

    Parameters
    ----------
    recipe : Recipe
        The loaded recipe.
    source : str
        The recipe file, at the start of each problem line.

    Raises
    ------
    RecipeError
        One line per problem: a ``model.variant`` that is set but unknown (an official file is
        built from it), a ``model.task`` / ``model.num_classes`` head or ``model.overrides`` its
        model cannot be built with, a ``train.device`` this machine does not have.
    """
    from biofound_cli.training.distributed import pick_device
    from biofound_cli.training.setup import variant_problems

    problems = []
    if recipe.model is not None and recipe.model.variant is not None:
        problems += variant_problems(recipe.model, recipe.model.variant, source)
    problems += refusal(lambda: pick_device(recipe.train.device if recipe.train is not None else "auto"), f"{source}: ")
    if problems:
        raise RecipeError(problems)


def check_evaluation_files(recipe: Any, source: str, *, split: str, checkpoint: Path | None = None) -> tuple[Path, Path]:
    """:func:`check_evaluation`, then the files ``evaluate`` reads, which must be there (``validate`` runs before they are).

    Files are not opened here: :func:`evaluate_checked_recipe` checks the checkpoint against the split.

    Parameters
    ----------
    recipe : Recipe
        The loaded recipe.
    source : str
        The recipe file, at the start of each problem line.
    split : str
        The split ``evaluate`` scores (``--split``), its packed file found by :func:`resolve_split`.
    checkpoint : Path | None
        ``--checkpoint``, as :func:`resolve_checkpoint` takes it.

    Returns
    -------
    (split file, checkpoint)
        The files :func:`evaluate_checked_recipe` reads.

    Raises
    ------
    RecipeError
        As :func:`check_evaluation` raises it.
    UsageError
        An unknown split, a ``data.<split>`` that is not set or not there, no checkpoint.
    """
    check_evaluation(recipe, source)
    split_path = resolve_split(recipe, split, source)
    checkpoint_path = resolve_checkpoint(recipe, checkpoint, source)
    if not split_path.is_file():  # as reading it says (read_packed_info), before the warnings are said
        raise UsageError(f"{split_path}: {missing_split_advice(split_path)}")
    return split_path, checkpoint_path


def resolve_split(recipe: Any, split: str, source: str) -> Path:
    """The packed file named by ``data.<split>`` in the recipe.

    Parameters
    ----------
    recipe : Recipe
        The loaded recipe, whose ``[data]`` section names the packed files.
    split : str
        ``train``, ``val`` or ``test``.
    source : str
        The recipe file, named in the error.
    """
    if split not in SPLITS:
        raise UsageError(f"--split {split}: unknown split; choose one of {', '.join(SPLITS)}")
    path = getattr(recipe.data, split, None) if recipe.data is not None else None
    if path is None:
        raise UsageError(f"{source}: data.{split} is not set; set it to the packed {split}.h5 written by `biofound pack`")
    return Path(path)


def _check_channels(head: Any, info: Any, checkpoint: Path) -> None:
    """Channels are matched by name: a fixed-montage model must see the channels it was trained on, in order."""
    trained = head.metadata.ch_names
    if not head.model_family.uses_channel_locations and isinstance(trained, list) and trained and list(info.ch_names):
        # check_head has compared the channel counts; a malformed name list is checked as far as it goes.
        for position, (wanted, found) in enumerate(zip(trained, info.ch_names, strict=False)):
            if str(wanted).upper() != str(found).upper():
                raise UsageError(
                    f"{info.path}: channel {position} is {found} but {checkpoint} was trained with {wanted} there; "
                    "preprocess and pack the split with the model's channel list"
                )


def match_class_order(task: str, y_score: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """The model's scores with their classes in the split's order.

    Parameters
    ----------
    task : str
        The split's task.
    y_score : np.ndarray
        Probabilities in the head's class order: (N, K), (N, C) for ``mc``, (N, C, K) for ``mmc``.
    order : np.ndarray | None
        :func:`class_order`'s; ``None`` leaves the scores as they are.
    """
    if order is None:
        return y_score
    if task == "mc":  # one probability of class 1 per channel: swapped classes are 1 - p
        return 1.0 - y_score
    return y_score[..., order]


def _warn_few_recordings(split_path: Path, recording_index: Any, n_bootstrap: int) -> None:
    """One warning line when the split holds too few recordings for recording-level numbers to mean much."""
    if recording_index is None:
        return
    n = int(np.unique(recording_index).size)
    if n >= FEW_RECORDINGS:
        return
    if n < MIN_RECORDINGS_TO_RESAMPLE:
        meaning = "recording-level metrics are n/a"
        if n_bootstrap:
            meaning += ", and the intervals resample single windows, which are correlated, so they are too narrow"
    elif n_bootstrap:
        meaning = (
            f"the intervals resample whole recordings, so they are wide and coarse (few distinct resamples; "
            f"{FEW_RECORDINGS} or more recordings give usable intervals)"
        )
    else:
        meaning = f"each recording-level metric rests on {counted(n, 'value')}; treat them as rough"
    logger.warning(f"{split_path} holds {counted(n, 'recording')} (fewer than {FEW_RECORDINGS}): {meaning}")


class EvaluationOptions(TypedDict, total=False):
    """The keywords :func:`evaluate_recipe` passes on to :func:`evaluate_checked_recipe` (mypy holds them to its signature)."""

    reporter: ProgressReporter
    n_bootstrap: int
    seed: int
    out_dir: Path | None
    plots: bool


def evaluate_recipe(
    recipe: Any, *, source: str, checkpoint: Path | None = None, split: str = "test", **options: Unpack[EvaluationOptions]
) -> EvaluationResult:
    """:func:`check_evaluation_files` (which takes ``checkpoint``), then :func:`evaluate_checked_recipe`, for a Python caller.

    Parameters
    ----------
    recipe : Recipe
        A loaded recipe with a ``[data]`` section naming ``split``.
    source : str
        The recipe file, named in messages.
    checkpoint : Path | None
        The weights to evaluate; by default the run's best.
    split : str
        The packed split to evaluate.
    **options : EvaluationOptions
        The other keywords of :func:`evaluate_checked_recipe`.

    Returns
    -------
    EvaluationResult
        As :func:`evaluate_checked_recipe` returns it.
    """
    files = check_evaluation_files(recipe, source, split=split, checkpoint=checkpoint)
    return evaluate_checked_recipe(recipe, files, source=source, split=split, **options)


def evaluate_checked_recipe(
    recipe: Any,
    files: tuple[Path, Path],
    *,
    source: str,
    reporter: ProgressReporter = NO_PROGRESS,
    split: str = "test",
    n_bootstrap: int = 0,
    seed: int = 0,
    out_dir: Path | None = None,
    plots: bool = True,
) -> EvaluationResult:
    """Score a checkpoint on a packed split of a recipe :func:`check_evaluation_files` passed (:func:`evaluate_recipe` runs both).

    Parameters
    ----------
    recipe : Recipe
        The checked recipe; reads ``[data]``, ``[model]``, ``[train].device`` and ``[output]``.
    files : (Path, Path)
        The split's packed file and the checkpoint, as :func:`check_evaluation_files` returned them for ``split``.
    source : str
        The recipe file, named in error messages.
    reporter : ProgressReporter
        Shows the windows scored and the bootstrap resamples; by default nothing is shown.
        Warnings (another normalisation, another class order, fewer than 10 recordings) are logged on
        this module's logger.
    split : str
        ``train``, ``val`` or ``test``.
    n_bootstrap : int
        Bootstrap resamples for confidence intervals; 0 leaves them out.
    seed : int
        Seed of the bootstrap.
    out_dir : Path | None
        Where ``report.json`` and the PNGs go; ``runs/NAME/eval/<split>`` by default.
    plots : bool
        Draw the PNGs. Either way, evaluation PNGs of an earlier run in ``out_dir`` that this run
        does not draw are removed; other files there stay.

    Returns
    -------
    EvaluationResult
        The report and where it and the plots were written.
    """
    from biofound_cli.store.packer import held_for_reading

    if n_bootstrap < 0:
        raise UsageError(f"--bootstrap {n_bootstrap}: must be 0 (no intervals) or a positive number of resamples")
    split_path, checkpoint_path = files
    # A pack into the split's folder meanwhile would score windows of two packs: it is refused until the report is in.
    with held_for_reading([split_path], "evaluate"):
        return _evaluate_split(recipe, source, split, split_path, checkpoint_path, out_dir, plots, n_bootstrap, seed, reporter)


def _evaluate_split(
    recipe: Any,
    source: str,
    split: str,
    split_path: Path,
    checkpoint_path: Path,
    out_dir: Path | None,
    plots: bool,
    n_bootstrap: int,
    seed: int,
    reporter: ProgressReporter,
) -> EvaluationResult:
    """:func:`evaluate_checked_recipe` once the split's packed folder is held."""
    from biofound_cli.evaluation.plots import plot_evaluation, remove_other_plots
    from biofound_cli.store.dataset import read_packed_info
    from biofound_cli.store.folder_lock import held_out_folder
    from biofound_cli.store.output_folder import created_folders_removed_on_failure, prepare_output_folder
    from biofound_cli.store.worker_lifetime import stops_settled

    info = read_packed_info(split_path)
    info.check_holds_windows("there is nothing to score", "evaluate another --split")
    # Checked before the scoring, which takes long on real data: a read-only copy of a run fails here, naming --out.
    option = "--out" if out_dir is not None else "the default --out"
    out_dir = Path(out_dir) if out_dir is not None else recipe.run_dir("finetune") / "eval" / split
    # A refusal before anything is written (a head that does not fit) leaves no empty folder behind.
    with created_folders_removed_on_failure(out_dir):
        prepare_output_folder(out_dir, option)
        # One evaluate at a time writes into it: two would mix one's report.json with the other's plots.
        with held_out_folder(out_dir, "evaluate", "evaluated into"):
            for leftover in remove_staging_leftovers(out_dir, "evaluate"):
                logger.info(f"{out_dir}: cleared {leftover.name}, left by an evaluate that was killed")
            model, head = _load_checked(recipe, source, checkpoint_path, info)
            task = scored_task(head, info)
            y_true, y_score, loss = _score(recipe, source, model, head, info, checkpoint_path, reporter)
            label_names = _label_names(info, head, task, y_score)
            report = _build_report(
                task, y_true, y_score, label_names, info, head, checkpoint_path, split, split_path, n_bootstrap, seed, reporter
            )
            # Training's val_loss, named as evaluate names every metric: without the split's prefix.
            report["headline"]["windows"] = {"loss": loss, **report["headline"]["windows"]}
            # Every file is drawn in a staging folder first, so a failed or stopped run changes nothing;
            # once they are in, the PNGs this run did not draw go, so the folder never shows an earlier
            # run's plots as this one's. From the move on the run is settled: a stop lets it finish.
            with ExitStack() as settling:
                # The report moves in last, named so rather than by the files' times (a clock stepped back, a
                # coarse file system): a reader that finds it finds the plots it describes.
                written: list[Path] = []
                order = [REPORT_FILE]  # the plots go before it as they are drawn: staged_files reads it as the block ends
                with staged_files(out_dir, "evaluate", order=order) as staging:
                    if plots:
                        model_name = head.variant or head.family
                        written = plot_evaluation(
                            task, y_true, y_score, report["windows"], staging, label_names, model=model_name, split=split
                        )
                        order[:0] = [path.name for path in written]
                    write_report(report, staging / REPORT_FILE)
                    settling.enter_context(stops_settled())
                remove_other_plots(out_dir, keep={path.name for path in written})
    return EvaluationResult(
        report,
        out_dir / REPORT_FILE,
        [out_dir / path.name for path in written],
        checkpoint_path,
        split_path,
        _train_curve(checkpoint_path),
        window_scores=y_score,
    )


def _load_checked(recipe: Any, source: str, checkpoint_path: Path, info: Any) -> tuple[Any, Any]:
    """Load the model (``[model]`` fills in what an official file lacks) and check its head against the split."""

    model_section = recipe.model
    model, head = load_for_evaluation(
        checkpoint_path,
        variant=model_section.variant if model_section else None,
        task=(model_section.task if model_section and model_section.task else info.label_task),
        # Left out, an official file's head gives it (check_head then holds it to the split's classes).
        num_classes=model_section.num_classes if model_section and model_section.num_classes else None,
        overrides=model_section.overrides if model_section else None,
        classes_if_unsized=info.num_classes or None,
    )
    check_head(head, info, checkpoint_path, source)
    _check_channels(head, info, checkpoint_path)
    warn_other_chain(head, info, checkpoint_path)
    return model, head


def _score(
    recipe: Any, source: str, model: Any, head: Any, info: Any, checkpoint_path: Path, reporter: ProgressReporter
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Every window's target and score, in the split's order and classes, and the split's loss (``None``: not finite)."""
    import torch

    from biofound_cli.store.dataset import PackedDataset
    from biofound_cli.training.distributed import pick_device
    from biofound_cli.training.evaluate import scores_from_logits

    task = scored_task(head, info)
    objective = _objective(recipe, source, head, info, task, checkpoint_path)
    batch_size = recipe.data.batch_size if recipe.data is not None else 32
    num_workers = recipe.data.num_workers if recipe.data is not None else 0
    # Nothing random runs in evaluation; seeding anyway keeps any stray randomness reproducible.
    torch.manual_seed(0)
    if recipe.train is not None and recipe.train.compile:
        from biofound_cli.models.compiled import compile_model

        model = compile_model(model, inference=True)
    with (
        closing(PackedDataset(info.path)) as dataset,
        reporter.task(len(dataset), f"Scoring {info.path.name}", unit="windows") as task_bar,
    ):
        y_true, logits = predict(
            model,
            objective,
            dataset,
            batch_size=batch_size,
            device=str(pick_device(recipe.train.device if recipe.train is not None else "auto")),
            num_workers=num_workers,
            on_batch=task_bar.advance,
            split_path=info.path,
        )
    y_score = scores_from_logits(task, logits)
    _check_finite(y_score, info.path, checkpoint_path)
    order = class_order(task, _scored_classes(task, y_score), head, info, checkpoint_path)
    # The loss of the whole split at once, as training's val_loss, against the targets in the head's class order.
    loss = objective.supervised_loss(logits, torch.from_numpy(y_true if order is None else order[y_true]))
    return y_true, match_class_order(task, y_score, order), finite(loss)


def _check_finite(y_score: np.ndarray, split: Path, checkpoint_path: Path) -> None:
    """Refuse scores that are NaN or inf (:func:`~biofound_cli.metrics.nonfinite_scores`): no metric measures them."""
    overflow = nonfinite_scores(y_score, str(split))
    if overflow is not None:
        raise CheckpointError(
            f"{checkpoint_path}: {overflow}; check those windows for inf or values far beyond the training data's, "
            "or evaluate an earlier checkpoint of the run (a checkpoints/step-N folder)"
        )


def _objective(recipe: Any, source: str, head: Any, info: Any, task: str, checkpoint: Path) -> Any:
    """How the model is fed, and its loss: the one of ``[train]``, as training's ``val_loss`` (``loss_options``)."""
    from biofound_cli.models.checkpoints import checkpoint_transform
    from biofound_cli.models.transforms import get_transform
    from biofound_cli.recipes.training import TrainSection
    from biofound_cli.training.objectives import Objective, channel_inputs, loss_options, unfitting_loss
    from biofound_cli.training.setup import class_weights_problem

    train = recipe.train or TrainSection()
    outputs = head.num_outputs or None  # 0: not recorded, the weights are not checked
    problem = unfitting_loss(train.loss, task, outputs) or class_weights_problem(train, task, outputs)
    if problem:
        raise UsageError(f"{source}: {problem}")
    locations, _ = channel_inputs(head.model_family, task, placed_channels(head, info, checkpoint), info.channel_positions)
    transform = get_transform(checkpoint_transform(head, recipe.data.transform if recipe.data else None, source, doing="scoring"))
    return Objective(head.family, task, transform=transform, channel_locations=locations, **loss_options(train))


def _scored_classes(task: str, y_score: np.ndarray) -> int:
    """The classes ``y_score`` tells apart: two for ``mc`` (a probability of class 1 per channel), else its last axis."""
    return 2 if task == "mc" else int(y_score.shape[-1])


def _label_names(info: Any, head: Any, task: str, y_score: np.ndarray) -> list[str] | None:
    """The split's class names, else the checkpoint's, or ``None`` (not one name per class: class numbers then).

    A regression head's outputs are named as ``predict`` names its columns, by the checkpoint's record
    (:meth:`~biofound_cli.models.checkpoints.CheckpointMetadata.output_names`); a checkpoint that names
    none leaves the split's names, when they give one per output; else ``output0``, ...
    """
    if task == "regression":
        n_outputs = y_score.shape[-1] if y_score.ndim > 1 else 1
        recorded, split_names = head.metadata.output_names(n_outputs), recorded_output_names(info.label_names, n_outputs)
        if recorded and split_names and recorded != split_names:
            logger.warning(
                f"{info.path} names its targets {', '.join(split_names)} but the checkpoint names its outputs "
                f"{', '.join(recorded)}; they are compared in order and reported by the checkpoint's names"
            )
        return recorded or split_names
    n_classes = _scored_classes(task, y_score)
    trained, names = label_names_of(head, info)
    # A split naming no classes is matched to the checkpoint's by number (predict.check_class_names), so its
    # class k is the checkpoint's k-th name. Outputs beyond the names (classes the split lacks, which
    # check_head lets through as training's validation did) are numbered (metrics.class_names).
    return next((given for given in (names, trained) if 0 < len(given) <= n_classes), None)


def _build_report(
    task: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    label_names: list[str] | None,
    info: Any,
    head: Any,
    checkpoint_path: Path,
    split: str,
    split_path: Path,
    n_bootstrap: int,
    seed: int,
    reporter: ProgressReporter,
) -> dict[str, Any]:
    """The report of the scored windows, with what was evaluated and, with ``n_bootstrap``, intervals."""
    recording_index, recording_names = read_recordings(split_path)
    _warn_few_recordings(split_path, recording_index, n_bootstrap)
    metadata = {
        "checkpoint": str(checkpoint_path),
        # The content hash lets `biofound export` cite this report only for exactly these weights.
        "checkpoint_sha256": file_sha256(checkpoint_path),
        "split": split,
        "split_path": str(split_path),
        "model": head.family,
        "variant": head.variant,
        # A LoRA fine-tuning says so (rank, alpha, merged); null for any other.
        "fine_tuning": head.metadata.fine_tuning,
        "head_task": head.task,
        "sfreq": info.sfreq,
        "n_times": info.n_times,
        "window_seconds": info.window_seconds,
        "ch_names": list(info.ch_names),
    }
    common: dict[str, Any] = dict(
        label_names=label_names,
        ch_names=list(info.ch_names) if task in CHANNEL_TASKS else None,
        recording_index=recording_index,
        recording_names=recording_names,
        metadata=metadata,
        # A single-logit bc head's scores are a sigmoid, as mc's: no softmax ranking to note.
        scored_by=score_rule(task, head.num_outputs or y_score.shape[-1]),
    )
    if not n_bootstrap:
        return build_report(task, y_true, y_score, **common)
    n_passes = (2 if resamples_recordings(recording_index) else 1) * n_bootstrap
    with reporter.task(n_passes, "Bootstrap", unit="resamples") as boot_bar:
        return build_report(task, y_true, y_score, n_bootstrap=n_bootstrap, seed=seed, on_replicate=boot_bar.advance, **common)


def _train_curve(checkpoint: Path) -> Path | None:
    """The training-curve PNG of the run holding ``checkpoint`` (:func:`run_folder_of`), if any.

    Training draws it, evaluate only points to it: for the run's best found from the recipe and for
    one given with ``--checkpoint`` alike (only the first used to say where the curve is).
    """
    run = run_folder_of(checkpoint)
    return run.curve_file if run is not None and run.curve_file.is_file() else None


def headline_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Rows of the terminal table: metric, windows, recordings, bootstrap interval (windows).

    Parameters
    ----------
    report : dict
        The evaluation report (see :func:`~biofound_cli.evaluation.report.build_report`).
    """

    def show(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    windows = report["headline"]["windows"]
    recordings = report["headline"].get("recordings") or {}
    intervals = ((report.get("bootstrap") or {}).get("windows") or {}).get("intervals", {})
    rows = []
    for name, value in windows.items():
        interval = intervals.get(name)
        text = f"[{show(interval['low'])}, {show(interval['high'])}]" if interval else ""
        # The loss is of windows alone: a recording's score is a mean of probabilities, not of logits.
        rows.append((name, show(value), show(recordings[name]) if name in recordings else "", text))
    return rows


def summary_of(result: EvaluationResult) -> dict[str, Any]:
    """The summary ``biofound evaluate`` prints (``--json`` adds the report's notes).

    Parameters
    ----------
    result : EvaluationResult
        What :func:`evaluate_recipe` returned.
    """
    report = result.report
    summary: dict[str, Any] = {
        "checkpoint": str(result.checkpoint),
        "split": str(result.split_path),
        "task": report["task"],
        "windows": report["n_windows"],
        "recordings": report["recordings"]["n_recordings"] if report["recordings"] else None,
        "report": str(result.report_path),
        "plots": [str(path) for path in result.plot_paths],
        "train_curve": str(result.train_curve) if result.train_curve else None,
        "metrics": report["headline"]["windows"],
    }
    if report["recordings"]:
        summary["recording_metrics"] = report["headline"]["recordings"]
    return summary
