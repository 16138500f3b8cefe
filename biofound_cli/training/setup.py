"""From a validated recipe to a :class:`~biofound_cli.training.loop.TrainingJob`.

This is where the recipe meets the data and the model registry: the packed files are opened,
their channel count, window length and sampling rate are checked against the model, the model
is built, starting weights are loaded, the fine-tuning mode is applied and the objective is
chosen. Every mismatch is one :class:`~biofound_cli.errors.BiofoundError` naming the file or
field and the fix, raised before any training starts.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from biofound_cli.errors import (
    BiofoundError,
    CheckpointError,
    DataError,
    RecipeError,
    UnreadableCheckpoint,
    UsageError,
    refusal,
)
from biofound_cli.hub_reference import hub_request, is_hub_reference, local_checkpoint
from biofound_cli.metrics import REGRESSION_TASKS
from biofound_cli.models import checkpoints, registry
from biofound_cli.plural import counted
from biofound_cli.recipes.origin import origin_of
from biofound_cli.recipes.schema import Recipe
from biofound_cli.recipes.training import DataSection, ModelSection, OptimSection, TrainSection
from biofound_cli.signals.chain import ChainConfig
from biofound_cli.tasks import LABEL_LAYOUT, RECONSTRUCTION, head_classes, labelled_alike
from biofound_cli.training import state
from biofound_cli.training.distributed import check_precision, pick_device
from biofound_cli.training.evaluate import unwatchable_metric
from biofound_cli.training.loop import TrainingJob
from biofound_cli.training.objectives import Objective, channel_inputs, loss_options, unfitting_loss
from biofound_cli.training.run_folder import RunFolder

if TYPE_CHECKING:
    from biofound_cli.corpora.base import Corpus

logger = logging.getLogger(__name__)


def resolve_resume(resume: str, run_folder: RunFolder) -> Path | None:
    """``auto``: the newest intact checkpoint or none; ``none``: start fresh; else a folder.

    With ``auto`` a damaged newest checkpoint (a file cut short by a kill or a full disk) is
    logged as a warning and the next older intact one is used.

    Parameters
    ----------
    resume : str
        ``auto``, ``none``, or a checkpoint folder (or a file inside one).
    run_folder : RunFolder
        The run whose ``checkpoints`` folder is searched.
    """
    if resume == "auto":
        damaged = []
        for folder in reversed(state.list_checkpoints(run_folder.checkpoints)):
            try:
                state.check_intact(folder)
            except CheckpointError as error:
                damaged.append(folder)
                logger.warning(f"{error.message.split(';')[0]}; trying the next older checkpoint")
                continue
            if damaged:
                logger.warning(f"resuming from {folder}, the newest intact checkpoint")
            return folder
        if damaged:
            raise UnreadableCheckpoint(
                f"every checkpoint in {run_folder.checkpoints} is damaged ({', '.join(d.name for d in damaged)}); "
                "delete them to start over with --resume none"
            )
        return None
    if resume == "none":
        if state.latest_checkpoint(run_folder.checkpoints) is not None:
            raise UsageError(
                f"{run_folder.root} already holds checkpoints of an earlier run; pass --resume auto to continue "
                "it, or set output.run_name to start a new run"
            )
        return None
    path = Path(resume)
    folder = path.parent if path.is_file() else path
    if not state.is_complete(folder):
        if folder.parent.name == run_folder.checkpoints.name and folder.name == run_folder.best.name:
            raise UsageError(
                f"--resume {resume}: the best weights keep no optimiser or sampler state to continue from; pass a "
                f"step-N folder beside it or auto, or start a new run from them with --set model.checkpoint={folder} "
                "--set output.run_name=NEW_NAME"
            )
        raise UsageError(f"--resume {resume}: not a complete checkpoint folder; pass runs/NAME/checkpoints/step-N or auto")
    _check_of_this_run(folder, resume, run_folder)
    return folder


def _check_of_this_run(folder: Path, resume: str, run_folder: RunFolder) -> None:
    # Another run's step-N used to continue into this recipe's folder without a word: its steps,
    # optimiser and best were taken over, and the recipe compared against this folder's, not its own.
    if folder.resolve().parent == run_folder.checkpoints.resolve():
        return
    raise UsageError(
        f"--resume {resume}: a checkpoint of {folder.parent.parent}, not of this recipe's run {run_folder.root}; "
        f"resume it with the recipe that trained it, or start {run_folder.root} from its weights with "
        f"--set model.checkpoint={folder} --resume none"
    )


def check_same_batching(folder: Path, batch_size: int, world_size: int, accumulation_steps: int) -> None:
    """Refuse to resume ``folder`` with another global batch or accumulation, even with ``--allow-changes``.

    The place within the epoch is counted in global batches (``data.batch_size`` x processes) and
    the steps done in optimiser steps of ``optim.accumulation_steps`` micro-batches: with other
    sizes a resumed run skips the wrong windows and counts the wrong steps left (a wrong epoch
    count such as 6.75 of 6, or nothing trained at all).

    Parameters
    ----------
    folder : Path
        The checkpoint folder to resume from.
    batch_size : int
        ``data.batch_size`` of this start.
    world_size : int
        The number of processes of this start.
    accumulation_steps : int
        ``optim.accumulation_steps`` of this start.
    """
    saved_batch, saved_accumulation = state.saved_batching(folder)
    new_run = (
        f"start a new run from these weights with --set model.checkpoint={folder} --set output.run_name=NEW_NAME --resume none"
    )
    wanted = batch_size * world_size
    if saved_batch is not None and saved_batch != wanted:
        raise UsageError(
            f"{folder} was trained with a global batch of {saved_batch} windows (data.batch_size x processes) and this "
            f"start has {wanted} ({batch_size} x {world_size}), which no resume can continue since the place in the epoch "
            f"is counted in batches, even with --allow-changes; keep data.batch_size x processes at {saved_batch}, or {new_run}"
        )
    if saved_accumulation is not None and saved_accumulation != accumulation_steps:
        raise UsageError(
            f"{folder} was trained with optim.accumulation_steps = {saved_accumulation} and this start has "
            f"{accumulation_steps}, which no resume can continue since the steps done are counted in optimiser steps, "
            f"even with --allow-changes; keep optim.accumulation_steps = {saved_accumulation}, or {new_run}"
        )


def check_same_model(folder: Path, model: torch.nn.Module, changes: list[str]) -> None:
    """Refuse to resume ``folder`` into a model of other tensors, even with ``--allow-changes``.

    A changed ``model.lora_rank``, ``model.lora_targets``, ``model.finetune`` or ``model.overrides``
    builds other tensors than the checkpoint holds, which no resume can load: the run stopped
    with a traceback of torch's ``size mismatch`` lines, after rewriting ``recipe.json`` with the
    recipe no step was trained under (so resuming with the original settings was refused next).

    Parameters
    ----------
    folder : Path
        The checkpoint folder to resume from; only its weights' header is read.
    model : torch.nn.Module
        The model this start built (LoRA adapters included).
    changes : list of str
        This start's changes against the run's recipe (``model.lora_rank: 4 -> 8``); those of
        ``[model]`` are named.
    """
    saved = checkpoints.read_layout(folder / checkpoints.WEIGHTS_FILE)[1]
    target = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = [key for key in target if key not in saved]
    unexpected = [key for key in saved if key not in target]
    misshaped = [
        f"{key}: checkpoint {list(saved[key])} vs model {list(target[key])}"
        for key in target
        if key in saved and saved[key] != target[key]
    ]
    if not (missing or unexpected or misshaped):
        return
    named = [change for change in changes if change.startswith("model.")]
    why = f" ({'; '.join(named)})" if named else ""
    # A LoRA run's step-N folders keep the adapters apart, which model.checkpoint refuses: its best is the way on.
    start = folder.parent / "best" if any(checkpoints.PARAMETRIZED in key for key in saved) else folder
    problems = "; ".join(checkpoints.key_problems(missing, unexpected, misshaped))
    raise UsageError(
        f"{folder} holds another model than this recipe builds{why}: {problems}; "
        "no resume can load it, even with --allow-changes; resume with the [model] section that wrote it, or start a "
        f"new run from its weights with --set model.checkpoint={start} --set output.run_name=NEW_NAME --resume none"
    )


def check_training(recipe: Recipe, stage: str, source: str) -> None:
    """The recipe checks ``pretrain`` / ``finetune`` run before any work; ``biofound validate`` runs them too.

    Files are not opened here (a recipe is often validated before its data are packed):
    :func:`build_checked_job` checks the packed data against the model.

    Parameters
    ----------
    recipe : Recipe
        The loaded recipe.
    stage : str
        ``pretrain`` or ``finetune``, named in the problems (``validate``: ``pretrain and finetune``,
        checked with ``model.task`` as ``finetune`` is).
    source : str
        The recipe file, at the start of each problem line.

    Raises
    ------
    RecipeError
        One line per problem: a missing section, field or variant, a ``model.overrides``
        argument the model does not take (of the wrong type, or one it cannot be built with), a precision the device
        cannot run, an early-stopping metric the task does not compute.
    """
    problems = []
    if recipe.data is None:
        problems.append(f"{source}: the [data] section is required by {stage}; name the packed files (see docs/training.md)")
    elif recipe.data.train is None:
        problems.append(f"{source}: data.train: required by {stage}; set it to a packed train.h5")
    if recipe.model is None or recipe.model.variant is None:
        problems.append(f"{source}: model.variant: required by {stage}; see `biofound models` for the names")
    else:
        problems += variant_problems(recipe.model, recipe.model.variant, source)
    train = recipe.train or TrainSection()
    problems += refusal(lambda: check_precision(train.precision, pick_device(train.device)), f"{source}: ")
    if stage == "pretrain" and recipe.model is not None and recipe.model.finetune != "full":
        # Pre-training trains every weight: a frozen or LoRA pre-training ran as a full one, silently.
        problems.append(
            f"{source}: model.finetune = {recipe.model.finetune!r} applies to fine-tuning only; pretrain trains "
            "every weight: set model.finetune = 'full' here, or fine-tune with `biofound finetune`"
        )
    task = RECONSTRUCTION if stage == "pretrain" else (recipe.model.task if recipe.model else None)
    if task is not None:
        outputs = recipe.model.num_classes if recipe.model is not None else None
        problems += [f"{source}: {problem}" for problem in _task_problems(task, train, outputs) if problem]
    if task != RECONSTRUCTION and recipe.model is not None and recipe.model.num_classes is not None:
        problem = class_weights_problem(train, task, recipe.model.num_classes)
        problems += [f"{source}: {problem}"] if problem else []
    if problems:
        raise RecipeError(problems)


def check_preprocess_windows(recipe: Recipe, source: str, corpus: Corpus, config: ChainConfig, stage: str = "finetune") -> None:
    """Refuse a recipe whose ``[preprocess]`` cuts windows its ``[model]`` cannot take (length, channel count,
    channels LUNA cannot place or, pre-training, name: :func:`channel_inputs`); ``biofound validate`` runs it.

    ``finetune`` checks the packed windows themselves (they may come from another ``--set``), so
    this is for a recipe checked before its data exist: a FEMBA recipe with 2.5 s windows is told
    then, not after preprocessing and packing.

    Parameters
    ----------
    recipe : Recipe
        The loaded recipe.
    source : str
        The recipe file, at the start of the problem line.
    corpus : Corpus
        The reader ``check_preprocess`` built from ``recipe.preprocess``. The rate its options declare
        (:attr:`~biofound_cli.corpora.base.Corpus.declared_sfreq`) is the output rate of a chain that does not
        resample: without it a recipe such as ``luna_scp1`` with ``window_seconds = 3.0`` was "valid", and
        refused at ``finetune``, after preprocess and pack; so were channels picked without a
        ``channel_positions`` entry LUNA could place them by. The channels are those it says the chain gives
        (:meth:`~biofound_cli.corpora.base.Corpus.chain_channels`).
    config : ChainConfig
        The chain ``check_preprocess`` resolved from ``recipe.preprocess`` (its warnings said once).
    stage : str
        ``pretrain`` checks the channels against LUNA's vocabulary too (its reconstruction head embeds
        them by name); any other stage reads ``model.task``, as :func:`check_training` does.

    Raises
    ------
    RecipeError
        Naming ``preprocess.window_seconds``, the samples it gives and the value to set; the channel
        count ``preprocess.channels`` / ``preprocess.montage`` give and the ``model.overrides`` that fits it;
        or the channels a model placing them by position cannot place.
    """
    model = recipe.model
    if model is None or model.variant is None:
        return
    try:
        variant = registry.get_variant(model.variant)
        geometry = registry.FAMILIES[variant.family].geometry({**variant.kwargs, **model.overrides})
    except (BiofoundError, KeyError, TypeError, ValueError):
        return  # the preprocess and training checks name what is wrong with those sections
    problems = []
    kwargs = {**variant.kwargs, **model.overrides}
    # The weights model.checkpoint names, when they are already there: the advice keeps them, as finetune's does.
    start_path = _existing_start(model, recipe, source)
    channels = corpus.chain_channels(config)
    if geometry.n_chans is not None and channels is not None and len(channels) != geometry.n_chans:
        override = _override_to_fit(geometry.n_chans_key, len(channels), start_path, variant.family, kwargs)
        problems.append(
            f"{source}: preprocess.channels and preprocess.montage = {config.montage!r} give {len(channels)} channels, "
            f"but {variant.name} takes {geometry.n_chans}; "
            f"{override.replace('or set', 'set', 1)}, or change the channels"
        )
    if channels is not None:
        task = RECONSTRUCTION if stage == "pretrain" else model.task
        try:  # finetune and pretrain refused them only after preprocess and pack
            channel_inputs(registry.FAMILIES[variant.family], task, channels, corpus.channel_positions)
        except DataError as error:
            problems.append(f"{source}: {error.message}")
    if not config.sfreq and corpus.declared_sfreq:
        config = dataclasses.replace(config, sfreq=corpus.declared_sfreq)
    misfit = config.window_misfit(geometry.n_times, geometry.multiple)
    if misfit is not None:
        samples, takes, seconds = misfit
        problems.append(
            f"{source}: preprocess.window_seconds = {config.window_seconds:g} cuts {samples}-sample windows at "
            f"{config.sfreq:g} Hz, but {variant.name} takes {takes}; set preprocess.window_seconds = {seconds}"
            + _window_override(geometry, samples, start_path, variant.family, kwargs)
        )
    if not problems and start_path is not None and stage != "pretrain":
        # Windows the model takes but the starting weights do not (official FEMBA's positional embedding): refused at finetune.
        problems += [f"{source}: model.checkpoint: {other}" for other in [_start_misfit(start_path, kwargs, variant)] if other]
    if problems:
        raise RecipeError(problems)


def _existing_start(model: ModelSection, recipe: Recipe, source: str) -> Path | None:
    """The weights ``model.checkpoint`` reads when they are there (a checked recipe's may not exist yet), else ``None``."""
    if model.checkpoint is None:
        return None
    try:
        return _starting_weights(model.checkpoint, recipe, source)
    except BiofoundError:
        return None


def _window_override(geometry: Any, samples: int, start_path: Path | None, family: str, kwargs: dict[str, Any]) -> str:
    """``", or set model.overrides.<length> = N ..."`` for a model built for one window length; ``""`` for any length."""
    if geometry.n_times is None:
        return ""
    return f", {_override_to_fit(geometry.n_times_key, samples, start_path, family, kwargs)}"


def variant_problems(model: ModelSection, variant: str, source: str) -> list[str]:
    """What is wrong with a set ``model.variant`` and the fields read with it; the stages that build a model share it.

    Parameters
    ----------
    model : ModelSection
        The recipe's ``[model]``.
    variant : str
        Its ``model.variant``.
    source : str
        The recipe file, at the start of each problem line.

    Returns
    -------
    list of str
        One line per problem: an unknown variant, a head its model cannot be built with
        (``model.task`` and ``model.num_classes``, where both are set), a ``hub:`` ``model.checkpoint``
        of another variant, ``model.overrides`` its model does not take; empty when there is none.
    """
    unknown = refusal(lambda: registry.get_variant(variant), f"{source}: model.variant: ")
    if unknown:
        return unknown
    return (
        _head_problems(model, variant, source)
        + _hub_reference_problems(model, variant, source)
        + _override_problems(model.overrides, variant, source)
    )


def _head_problems(model: ModelSection, variant: str, source: str) -> list[str]:
    """The head ``model.task`` and ``model.num_classes`` ask for, checked as the model is built for them.

    A multi-class task with one output (:func:`~biofound_cli.tasks.head_size_problem`) passed
    ``validate`` and was only refused against the packed classes, if at all.
    """
    task, num_classes = model.task, model.num_classes
    if task is None or task == RECONSTRUCTION or num_classes is None:
        return []
    prefix = f"{source}: model.task = {task!r}, model.num_classes = {num_classes}: "
    return refusal(lambda: registry.get_variant(variant).constructor_kwargs(task, num_classes), prefix)


def class_weights_problem(train: TrainSection, task: str | None, num_classes: int | None) -> str | None:
    """What is wrong with ``train.class_weights`` for a ``task`` head of ``num_classes`` outputs (one sentence), or ``None``.

    One weight per class the head tells apart (:func:`~biofound_cli.tasks.head_classes`): a single-logit
    ``bc`` head weighs its targets 0 and 1, so it takes 2, as ``supervised_loss`` reads them; its
    ``num_classes`` (1) refused 2 weights, and 1 weight failed at the first batch with an ``IndexError``.

    Parameters
    ----------
    train : TrainSection
        The recipe's ``[train]``; unset weights always fit.
    task : str | None
        The head's task; ``None`` while only ``data.train`` names it (``validate``).
    num_classes : int | None
        The head's ``num_classes``; ``None`` when not known yet.
    """
    weights = train.class_weights
    if weights is not None and task in REGRESSION_TASKS:
        # The mean squared error has no classes to weigh: the weights were taken and never used.
        return f"train.class_weights weighs classes, and a {task} head has none; remove it"
    # A one-output head's classes follow its task: checked once data.train has named it.
    if weights is None or num_classes is None or (task is None and num_classes == 1):
        return None
    classes = num_classes if task is None else head_classes(task, num_classes)
    if len(weights) == classes:
        return None
    return f"train.class_weights has {counted(len(weights), 'value')} but the task has {classes} classes; give one per class"


def _task_problems(task: str, train: TrainSection, outputs: int | None) -> list[str | None]:
    """What ``[train]`` asks that ``task`` (``outputs`` logits, when known) cannot give: the watched metric, the loss."""
    return [unwatchable_metric(train.early_stopping_metric, task), unfitting_loss(train.loss, task, outputs)]


def _override_problems(overrides: dict[str, Any], variant: str, source: str) -> list[str]:
    """``model.overrides`` must name arguments of the variant's model class, each of its type, that build it.

    Built on the meta device from the variant's own arguments: a value the constructor refuses
    (``embed_dim`` not a multiple of ``n_head``) passed ``validate`` and failed the stage naming no field.
    Its size is counted first (:func:`~biofound_cli.models.registry.check_model_size`): an absurd one ended
    in a traceback of torch's allocator once the stage built it.
    """
    if not overrides:  # a registered variant builds as it is; building on the meta device imports torch's compiler (~1 s)
        return []
    found = registry.get_variant(variant)
    kwargs = {**found.kwargs, **overrides}

    def build() -> None:
        registry.check_model_size(found.family, kwargs, "model.overrides")
        registry.build_model(found.family, kwargs, device="meta")

    return refusal(build, f"{source}: model.overrides: ")


def _hub_reference_problems(model: ModelSection, variant: str, source: str) -> list[str]:
    """A ``hub:`` ``model.checkpoint`` must parse and name weights of ``model.variant``."""
    if not is_hub_reference(model.checkpoint):
        return []
    try:
        request = hub_request(model.checkpoint, f"{source}: model.checkpoint")
    except UsageError as error:
        return [error.message]
    if request.variant.name != registry.get_variant(variant).name:
        return [
            f"{source}: model.checkpoint = {str(model.checkpoint)!r} holds {request.variant.name} weights but "
            f"model.variant = {variant!r}; make them name the same variant"
        ]
    return []


def build_checked_job(recipe: Recipe, *, stage: str, source: str, resume_from: Path | None = None) -> TrainingJob:
    """Open the data, build the model and objective for ``stage`` (``pretrain`` or ``finetune``) of a checked recipe.

    Parameters
    ----------
    recipe : Recipe
        A recipe :func:`check_training` passed for ``stage`` (a training run's start checks ran it).
    stage : {"pretrain", "finetune"}
    source : str
        The recipe file, named in error messages.
    resume_from : Path | None
        The checkpoint folder this start resumes (:func:`resolve_resume`): its weights replace
        the starting ones, so ``model.checkpoint`` is neither read nor required (a requeued job
        whose starting weights were staged to a node's ``$TMPDIR`` finds them gone), and the
        provenance is the one the run recorded.

    Returns
    -------
    TrainingJob
        What :func:`~biofound_cli.training.loop.fit` trains. Warnings (another sampling rate)
        and the loaded starting weights are logged on this module's logger.
    """
    from biofound_cli.store.dataset import PackedDataset

    data, model_section = recipe.data, recipe.model
    # check_training refused a recipe without these.
    assert data is not None and data.train is not None and model_section is not None and model_section.variant is not None
    optim = recipe.optim or OptimSection()
    train = recipe.train or TrainSection()

    train_path, val_path = split_files(recipe, source)
    train_set = PackedDataset(train_path)
    val_set = PackedDataset(val_path) if val_path is not None else None
    if val_set is None and train.early_stopping_patience is not None:
        # Patience counts evaluations of data.val: without it the run trained every step without a word.
        logger.warning(
            f"{source}: train.early_stopping_patience = {train.early_stopping_patience} has nothing to count: "
            "data.val is not set, so no evaluation runs and the run trains every step; set data.val or unset the patience"
        )
    info = train_set.info
    info.check_holds_windows("there is nothing to train on")
    variant = registry.get_variant(model_section.variant)
    family = registry.FAMILIES[variant.family]

    task, num_classes = _task_of(stage, model_section, info, data, source)
    # check_training could not know a task that only data.train names: checked here, before the run folder is touched.
    problems = [f"{source}: {problem}" for problem in _task_problems(task, train, num_classes) if problem]
    if problems:
        raise RecipeError(problems)
    # A regression head is sized by the targets (pack stores num_classes 0 for them) as classes size a
    # classifier; the recipe's fields win.
    head_sizes = family.regression_kwargs(info.target_shape) if task == "regression" else {}
    num_classes = model_section.num_classes or head_sizes.get("num_classes") or num_classes
    kwargs = {**head_sizes, **variant.constructor_kwargs(task, num_classes), **model_section.overrides}
    # A resume's checkpoint replaces the starting weights: they are not read, nor need they still exist.
    checkpoint = model_section.checkpoint if resume_from is None else None
    start_path = _starting_weights(checkpoint, recipe, source) if checkpoint is not None else None
    _check_data_fits(variant, kwargs, info, data, start_path)
    channels = _packed_channel_inputs(family, task, info, data, source)
    if val_set is not None:
        _check_same_layout(info, val_set.info, task, num_classes)
    if task == "regression":
        _check_regression_head(family, kwargs, info, source)

    model = _build_model(variant, kwargs, start_path, stage, train.seed)
    # Only once the starting weights are known to be of this model: a file of another family is refused alone.
    start_metadata = _start_metadata(start_path)
    transform_name = data.transform or variant.default_transform(task)
    if resume_from is None:  # a resume trains on the split its first start was told about
        _warn_other_rate(info, model_section, data, float(start_metadata.sfreq or variant.sfreq), variant.name)
        _warn_other_transform(start_path, start_metadata.transform, transform_name, variant)
    export_state = _adapt(model, family, stage, model_section)
    if stage == "finetune" and model_section.finetune != "full" and model_section.checkpoint is None:
        # Legitimate as a random-features baseline, so not refused; but usually a forgotten checkpoint.
        trained = "the head alone" if model_section.finetune == "frozen" else "adapters and the head"
        logger.warning(
            f"{source}: model.finetune = {model_section.finetune!r} trains {trained} on a body of random weights "
            "(model.checkpoint is not set); name pre-trained weights in model.checkpoint, or set model.finetune = 'full'"
        )
    problem = class_weights_problem(train, task, num_classes)
    if problem:
        raise UsageError(f"{source}: {problem}")
    return TrainingJob(
        model=model,
        objective=_objective(variant, task, transform_name, train, channels, model),
        train_set=train_set,
        val_set=val_set,
        optim=optim,
        train=train,
        batch_size=data.batch_size,
        num_workers=data.num_workers,
        metadata={
            **checkpoints.checkpoint_metadata(variant, family, task, num_classes, kwargs, transform_name, info),
            **(_recorded_provenance(resume_from) if resume_from else _provenance(model_section.checkpoint, start_metadata)),
            **_adapters_record(stage, model_section),
        },
        export_state=export_state,
        leaves_parameters_unused=family.leaves_parameters_unused,
        train_fingerprint=info.fingerprint,
    )


def _packed_channel_inputs(family: Any, task: str, info: Any, data: DataSection, source: str) -> tuple[Any, Any]:
    """:func:`channel_inputs` of the packed windows, before the model is built; a channel LUNA cannot place (or,
    pre-training, name) refuses them, naming ``data.train``: the fix is in the chain that made it, run again."""
    try:
        return channel_inputs(family, task, info.ch_names, info.channel_positions)
    except DataError as error:
        raise DataError(
            f"{source}: data.train = {str(data.train)!r}: {error.message.rstrip('.')}, then run preprocess and pack again"
        ) from None


def _task_of(stage: str, model_section: ModelSection, info: Any, data: DataSection, source: str) -> tuple[str, int | None]:
    """The task ``stage`` trains (``reconstruction`` for pretraining) and its number of classes."""
    task = RECONSTRUCTION if stage == "pretrain" else (model_section.task or info.task)
    if stage == "finetune" and task == RECONSTRUCTION:
        raise UsageError(
            f"{data.train} holds unlabelled windows; fine-tuning needs labels (set model.task or pack labelled data)"
        )
    if task != RECONSTRUCTION and not info.labelled:
        raise DataError(f"{data.train} has no labels; pack labelled recordings or run `biofound pretrain`")
    num_classes = None if task == RECONSTRUCTION else (model_section.num_classes or info.num_classes)
    if num_classes == 1 and model_section.num_classes is None and LABEL_LAYOUT.get(task) != "value":
        # A one-output head learns nothing: cross-entropy over one logit is 0 from the first step.
        raise DataError(
            f"{data.train}: every packed split holds class 0 alone, and a classifier needs at least 2 classes; "
            "preprocess and pack recordings of other classes, or set model.num_classes to the corpus's number of classes"
        )
    _check_task_fits(task, num_classes, info, data, source)
    _warn_single_class(info, task, num_classes)
    return task, num_classes


def _warn_single_class(info: Any, task: str, num_classes: int | None) -> None:
    """Warn (not refuse: the head has the corpus's classes) when the training split holds one class alone.

    ``pack`` names the classes val and test hold and train lacks, but a fine-tuning run said
    nothing: its model learns to answer that class whatever the input, and its validation metrics
    look like a model's. A corpus of one class is refused in :func:`_task_of`; this is the split.
    """
    if LABEL_LAYOUT.get(task) == "value" or not num_classes or info.class_counts is None:
        return
    present = [name for name, count in info.class_counts.items() if count > 0]
    classes = head_classes(task, num_classes)
    if len(present) == 1 and classes >= 2:
        logger.warning(
            f"training split {info.path} holds only class {present[0]!r} of {classes}: the model learns to answer "
            "it whatever the input, and its validation metrics say little; pack recordings of the other classes "
            "into train (another pack.seed or split, or more recordings)"
        )


def _build_model(variant: Any, kwargs: dict[str, Any], start_path: Path | None, stage: str, seed: int) -> torch.nn.Module:
    """A fresh model, seeded, with the starting weights loaded (fine-tuning keeps its new head)."""
    # The same seed on every rank gives every rank the same initial weights.
    torch.manual_seed(seed)
    model = registry.build_model(variant.family, kwargs)
    if start_path is None:
        return model
    _check_checkpoint_variant(start_path, variant.name)
    try:
        if stage == "finetune":
            report = checkpoints.transfer_pretrained(model, start_path)
            # Said, not refused: a decoder or an old head has no place in the model, nor has a deeper
            # checkpoint's extra blocks, which a researcher wants to know were left out.
            unused = (
                f"; {len(report.dropped)} of the file's have no place in it (e.g. {report.dropped[0]})" if report.dropped else ""
            )
            logger.info(
                f"loaded {len(report.loaded)} tensors from {start_path}; {len(report.initialised)} start fresh (the head)"
                + unused
            )
        else:
            checkpoints.load_weights(model, start_path, strict=True)
    except UnreadableCheckpoint:
        raise
    except CheckpointError:
        other = _other_architecture(start_path, kwargs, variant)
        if other is None:
            raise
        raise CheckpointError(other) from None
    return model


def _start_misfit(start_path: Path, kwargs: dict[str, Any], variant: Any) -> str | None:
    """Why the starting weights do not load into a model built with ``kwargs``, where their metadata or shapes
    say (:func:`_other_architecture`); ``None`` when they load, or when nothing says why."""
    try:
        model = registry.build_model(variant.family, kwargs, device="meta")
    except UsageError:
        return None  # the model.overrides check names it
    return None if _loads_into(model, start_path) else _other_architecture(start_path, kwargs, variant)


def _other_architecture(start_path: Path, kwargs: dict[str, Any], variant: Any) -> str | None:
    """Why starting weights of this variant do not fit, when their metadata or their shapes say: other layers,
    sizes or windows.

    The whole-number constructor arguments (layers, widths, patch and input sizes; not the head's
    ``num_classes``) that the checkpoint was saved with and this recipe builds otherwise, e.g. a
    pre-training run with ``model.overrides.n_layer = 2`` fine-tuned with 4: the listing of 24
    missing keys did not say so. A file without biofound metadata (an official release) is asked
    whether it fits the variant's published windows (:func:`_published_windows`).
    """
    saved = _start_metadata(start_path).constructor_kwargs or {}
    differ = {
        key: value
        for key, value in saved.items()
        if key != "num_classes" and type(value) is int and key in kwargs and kwargs[key] != value
    }
    if not saved:
        published = _published_windows(start_path, kwargs, variant)
        if published:
            theirs = ", ".join(f"{key} = {value}" for key, value in published.items())
            ours = ", ".join(f"{key} = {kwargs[key]}" for key in published)
            return (
                f"{start_path} holds {variant.name}'s published body, built for windows of {theirs}, and this recipe builds "
                f"{ours} (model.overrides), whose positional weights have another shape; to start from it, preprocess "
                f"windows of that shape and unset those model.overrides, or leave model.checkpoint unset to train from scratch"
            )
    if not differ:
        return None
    theirs = ", ".join(f"{key} = {value}" for key, value in differ.items())
    ours = ", ".join(f"{key} = {kwargs[key]}" for key in differ)
    settings = ", ".join(f"model.overrides.{key} = {value}" for key, value in differ.items())
    return f"{start_path} was saved from a model with {theirs} and this recipe builds {ours}; set {settings} to start from it"


def _published_windows(start_path: Path, kwargs: dict[str, Any], variant: Any) -> dict[str, int]:
    """The window arguments (channels, samples) of ``variant`` that ``kwargs`` change, when the body of
    ``start_path`` loads into a model built with the variant's own and not into one built with ``kwargs``;
    else empty. Read from the file's header alone (:func:`_loads_into`).

    FEMBA's positional embedding is sized by its windows: official weights fine-tuned on windows of
    another length were refused with "pos_embed: checkpoint [1, 80, 385] vs model [1, 32, 385]",
    which did not say the window was the cause.
    """
    geometry = registry.FAMILIES[variant.family].geometry(variant.kwargs)
    keys = [key for key in (geometry.n_chans_key, geometry.n_times_key) if key and kwargs.get(key) != variant.kwargs.get(key)]
    if not keys:
        return {}
    published = {key: int(variant.kwargs[key]) for key in keys}
    try:
        ours = registry.build_model(variant.family, kwargs, device="meta")
        theirs = registry.build_model(variant.family, {**kwargs, **published}, device="meta")
    except UsageError:
        return {}
    return published if _loads_into(theirs, start_path) and not _loads_into(ours, start_path) else {}


def _adapt(model: torch.nn.Module, family: Any, stage: str, model_section: ModelSection) -> Any:
    """Freeze the body or add LoRA adapters as ``model.finetune`` asks; how the best weights are then saved."""
    head_prefixes = family.finetune_head_prefixes
    if stage == "finetune" and model_section.finetune == "frozen":
        from biofound_cli.training.adapters import freeze_body

        freeze_body(model, head_prefixes)
    elif stage == "finetune" and model_section.finetune == "lora":
        from biofound_cli.training.adapters import apply_lora, merged_state_dict

        apply_lora(
            model,
            rank=model_section.lora_rank,
            alpha=model_section.lora_alpha,
            targets=model_section.lora_targets,
            head_prefixes=head_prefixes,
        )
        return merged_state_dict
    return None


def _adapters_record(stage: str, model_section: ModelSection) -> dict[str, Any]:
    """The ``lora`` field of the run's checkpoints (:class:`~biofound_cli.models.checkpoints.CheckpointMetadata`):
    the adapters as :func:`_adapt` adds them, kept apart (``step-N``; the best is marked merged as it is written)."""
    if stage != "finetune" or model_section.finetune != "lora":
        return {}
    adapters = {"rank": model_section.lora_rank, "alpha": model_section.lora_alpha, "targets": list(model_section.lora_targets)}
    return {"lora": {**adapters, "merged": False}}


def _objective(
    variant: Any, task: str, transform_name: str, train: TrainSection, channels: tuple[Any, Any], model: torch.nn.Module
) -> Objective:
    """The loss of ``task`` on the packed windows, with the channel inputs (:func:`channel_inputs`) a family may
    need; pre-training masks whole patches of ``model`` (:meth:`~biofound_cli.models.family.ModelFamily.masking_of`)."""
    from biofound_cli.models.transforms import get_transform

    locations, indices = channels
    return Objective(
        variant.family,
        task,
        transform=get_transform(transform_name),
        mask_ratio=train.mask_ratio,
        masking=registry.FAMILIES[variant.family].masking_of(model),
        **loss_options(train),
        channel_locations=locations,
        channel_indices=indices,
    )


def _provenance(checkpoint: Path | None, start: checkpoints.CheckpointMetadata) -> dict[str, Any]:
    """Where the weights come from, for the licence their exports carry.

    From scratch they are the user's own; from weights that record their own provenance they
    inherit it; from anything else (official files, hub references, pickles) they are treated
    as derived from the official, CC BY-ND 4.0, checkpoints.
    """
    if checkpoint is None:
        return {"derived_from_official": False}
    if start.derived_from_official is False:
        return {"source_checkpoint": str(checkpoint), "derived_from_official": False}
    # Recorded now, so `info` and `predict` of every checkpoint of the run say it, as its exports do.
    licence = checkpoints.licence_fields(registry.LICENSE, True, f"fine-tuned from {checkpoint}")
    return {"source_checkpoint": str(checkpoint), **licence}


def _recorded_provenance(folder: Path) -> dict[str, Any]:
    """The provenance the run resumed from ``folder`` recorded (:func:`_provenance` of its first start).

    A resume reads no starting weights, so it carries the run's own record on; one without it (a
    checkpoint written before provenance was recorded) counts as derived from the official weights.
    """
    saved = checkpoints.read_metadata(folder / checkpoints.WEIGHTS_FILE)
    provenance: dict[str, Any] = {"derived_from_official": saved.derived_from_official is not False}
    if saved.source_checkpoint is not None:
        provenance = {"source_checkpoint": saved.source_checkpoint, **provenance}
    if saved.license is not None:
        provenance.update(license=saved.license, license_note=saved.license_note)
    return provenance


def split_files(recipe: Recipe, source: str) -> tuple[Path, Path | None]:
    """The packed files a start trains and validates on, ``data.train`` and ``data.val``; a missing one is refused.

    A fresh start checks them before its run folder (:func:`~biofound_cli.training.run.run_training`):
    a missing split was reported after "already holds checkpoints", whose advice (``--resume auto``,
    a new ``output.run_name``) cannot train without it either.

    Parameters
    ----------
    recipe : Recipe
        A recipe :func:`check_training` passed: its ``[data]`` names ``train``.
    source : str
        The recipe file, named in the refusal.
    """
    data = recipe.data
    assert data is not None and data.train is not None
    train = existing_split(data.train, "data.train", source)
    return train, existing_split(data.val, "data.val", source) if data.val is not None else None


def existing_split(path: Path, field: str, source: str) -> Path:
    """``path``, the packed file ``[data]`` names in ``field``, or the refusal of a run whose file is not there.

    A fresh run and a resume that names a split at a new path (a requeued job's staging folder)
    are refused alike, naming the field and the path.

    Parameters
    ----------
    path : Path
        The packed split file.
    field : str
        ``data.train`` or ``data.val``.
    source : str
        The recipe file, at the start of the message (an option that set the field is named instead).
    """
    from biofound_cli.store.splits import missing_split_advice

    if not Path(path).exists():
        leave_out = " (--unset data.val trains without validation)" if field == "data.val" else ""
        raise UsageError(f"{source}: {field} = {str(path)!r} does not exist: {missing_split_advice(path, leave_out)}")
    return Path(path)


def _starting_weights(checkpoint: Path, recipe: Recipe, source: str) -> Path:
    """The file ``model.checkpoint`` (``checkpoint``) reads: a path (a checkpoint folder's
    ``model.safetensors``), or a ``hub:`` reference's local copy."""
    download = recipe.download
    path = local_checkpoint(
        checkpoint,
        f"{source}: model.checkpoint",
        revision=download.revision if download else None,
        dest=download.dest if download else None,
        origin=origin_of(recipe),
    )
    # The checkpoint module words a missing one for every command (the split advice, "run `biofound
    # pack`", sent a requeued job whose staged weights were wiped to pack data).
    try:
        return checkpoints.existing_weights(path)
    except CheckpointError as error:
        raise CheckpointError(f"{source}: model.checkpoint: {error.message}") from None


def _start_metadata(start_path: Path | None) -> checkpoints.CheckpointMetadata:
    """What the starting weights record (their rate, their provenance): a biofound checkpoint's
    metadata, else an empty record (official checkpoints, pickles, or from scratch)."""
    if start_path is not None and start_path.suffix.lower() == ".safetensors":
        return checkpoints.read_metadata(start_path)
    return checkpoints.CheckpointMetadata()


def _override_to_fit(key: str | None, value: int, start_path: Path | None, family: str, kwargs: dict[str, Any]) -> str:
    """The ``model.overrides`` setting that builds the model for the data.

    From scratch without ``model.checkpoint``; with starting weights that load into the model built
    so (a run trained on such windows, or TinyMyo's weights of any ``in_chans``, which sizes the
    head alone) the setting starts from them, and "to train from scratch" sent users who had them
    away from their own weights. When the model cannot be built that way (FEMBA's patches leave an
    odd channel out), its reason is the advice instead, so the message never sends the user to a
    setting that is refused next.
    """
    named = f"model.overrides.{key} = {value}" if key else "model.overrides"
    model = None
    if key:
        try:
            model = registry.build_model(family, {**kwargs, key: value}, device="meta")
        except UsageError as error:
            return f"not {named}, which is refused: {str(error).split(': ', 1)[-1]}"
    if start_path is None:
        return f"or set {named} to train from scratch"
    if model is not None and _loads_into(model, start_path):
        return f"or set {named}, which keeps the weights of {start_path}"
    return f"or set {named} and leave model.checkpoint unset to train from scratch ({start_path} takes other windows)"


def _loads_into(model: torch.nn.Module, start_path: Path) -> bool:
    """Whether fine-tuning would load the starting weights into ``model`` (built on the meta device), read from
    the file's header alone: every body tensor there with its shape."""
    if start_path.suffix.lower() != ".safetensors":
        return False
    shapes = checkpoints.read_layout(start_path)[1]
    try:
        checkpoints.transfer_pretrained(model, {key: torch.empty(shape, device="meta") for key, shape in shapes.items()})
    except BiofoundError:
        return False
    return True


def _check_data_fits(variant: Any, kwargs: dict[str, Any], info: Any, data: DataSection, start_path: Path | None = None) -> None:
    """Refuse data the model cannot take: another number of channels, window length or patch multiple."""
    geometry = registry.FAMILIES[variant.family].geometry(kwargs)
    n_channels, n_times, multiple = geometry.n_chans, geometry.n_times, geometry.multiple
    if n_channels is not None and info.n_channels != n_channels:
        # EEG has a montage to re-run preprocess with; EMG electrodes have no standard names, so the
        # way there is picking that many (preprocess.channels), possible only from more.
        if registry.FAMILIES[variant.family].modality == "eeg":
            fix = "re-run preprocess with the model's montage, "
        else:
            fix = (
                f"re-run preprocess picking {n_channels} of them (preprocess.channels), " if info.n_channels > n_channels else ""
            )
        raise DataError(
            f"{data.train} has {info.n_channels} channels but {variant.name} expects {n_channels}; {fix}"
            + _override_to_fit(geometry.n_chans_key, info.n_channels, start_path, variant.family, kwargs).removeprefix(
                "" if fix else "or "
            )
        )
    # The packed windows as the chain that cut them, so the advice is the window_seconds to set at their rate.
    # A file that records no rate is counted in samples (a rate of 1 Hz): the advice is then in samples.
    rate = info.sfreq if info.sfreq > 0 else 1.0
    misfit = ChainConfig(window_seconds=info.n_times / rate, sfreq=rate).window_misfit(n_times, multiple)
    if misfit is not None:
        _, takes, seconds = misfit
        advice = f"preprocess.window_seconds = {seconds}" if info.sfreq > 0 else "windows of that length"
        raise DataError(
            f"{data.train} has windows of {info.n_times} samples but {variant.name} takes {takes}; "
            f"re-run preprocess with {advice}" + _window_override(geometry, info.n_times, start_path, variant.family, kwargs)
        )


def _warn_other_rate(info: Any, model: ModelSection, data: DataSection, start_sfreq: float, variant_name: str) -> None:
    """Warn (never refuse) when the data's sampling rate is not the one the starting weights were trained at."""
    if abs(info.sfreq - start_sfreq) > 1e-6:
        if model.checkpoint is not None:
            # Not an error: the published TinyMyo (2 kHz -> 200 Hz) and LUNA SEED-V (256 -> 200 Hz)
            # fine-tunes start from weights pre-trained at another rate.
            logger.warning(
                f"{data.train} is sampled at {info.sfreq:g} Hz but the starting weights were trained at {start_sfreq:g} Hz; "
                "each patch now spans a different duration than in pre-training, as in the published downstream "
                f"setups; resample to {start_sfreq:g} Hz in preprocess if you want them to match"
            )
        else:
            # No starting weights, so nothing to act on (the quick start trains this way): a note, not a warning.
            logger.info(
                f"{data.train} is sampled at {info.sfreq:g} Hz, {variant_name}'s published weights at {start_sfreq:g} Hz; "
                "training from scratch, this matters only when comparing with them"
            )


def _warn_other_transform(start_path: Path | None, start_transform: str | None, transform_name: str, variant: Any) -> None:
    """Warn (never refuse) when the inputs are normalised otherwise than the starting weights' training data were.

    The starting checkpoint records its transform; a fine-tuning recipe that names another (or leaves
    ``data.transform`` unset, so the variant's fine-tuning default applies) feeds the pre-trained body inputs
    of another scale without a word. The variant's published pair (TinyMyo: ``minmax`` in pre-training,
    ``none`` in fine-tuning) is what the official recipes do, so it is not warned about.
    """
    if start_transform is None or start_transform == transform_name:
        return
    if (start_transform, transform_name) == (variant.transform, variant.finetune_transform):
        return
    logger.warning(
        f"{start_path} was trained on inputs normalised by {start_transform!r} and this run normalises them by "
        f"{transform_name!r}, so the pre-trained layers see inputs of another scale; set "
        f"data.transform = {start_transform!r} to feed them as they were trained"
    )


# Label layouts of the packed files: one class index per window, one per channel, or values.
def _check_task_fits(task: str, num_classes: int | None, info: Any, data: DataSection, source: str) -> None:
    """Refuse a head that cannot be trained on the packed labels, before the first step."""
    if task == RECONSTRUCTION or not info.task:
        return
    if not labelled_alike(task, info.task):
        raise UsageError(
            f"{source}: model.task = {task!r} does not fit {data.train}, which holds {info.task!r} labels; "
            f"set model.task = {info.task!r} or leave it unset"
        )
    if task == "bc" and info.num_classes > 2:
        raise UsageError(f"{source}: model.task = 'bc' but {data.train} holds {info.num_classes} classes; use model.task = 'mcc'")
    if LABEL_LAYOUT[task] != "value" and num_classes is not None and head_classes(task, num_classes) < info.num_classes:
        raise UsageError(
            f"{source}: model.num_classes = {num_classes} but {data.train} holds {info.num_classes} classes; "
            f"set model.num_classes = {info.num_classes} or leave it unset"
        )


def _check_regression_head(family: Any, kwargs: dict[str, Any], info: Any, source: str) -> None:
    """Refuse a regression head whose outputs are not the training targets (:meth:`ModelFamily.regression_misfit`)."""
    misfit = family.regression_misfit(family.regression_shape(kwargs), info.target_shape)
    if misfit:
        raise UsageError(f"{info.path}: the model of {source} {misfit}")


def _layout_differences(train: Any, val: Any) -> list[str]:
    """How ``val``'s windows differ from ``train``'s, each as "VAL'S (train: TRAIN'S)": channels, length, rate."""
    differences = []
    if len(val.ch_names) != len(train.ch_names):
        differences.append(f"{len(val.ch_names)} channels (train: {len(train.ch_names)})")
    else:
        differ = [i for i, (ours, theirs) in enumerate(zip(val.ch_names, train.ch_names, strict=True)) if ours != theirs]
        if differ:
            differences.append(f"channel {differ[0] + 1} {val.ch_names[differ[0]]!r} (train: {train.ch_names[differ[0]]!r})")
    if val.n_times != train.n_times:
        differences.append(f"{val.n_times}-sample windows (train: {train.n_times})")
    if val.sfreq != train.sfreq:
        differences.append(f"windows at {val.sfreq:g} Hz (train: {train.sfreq:g} Hz)")
    return differences


def _check_same_layout(train: Any, val: Any, task: str, num_classes: int | None) -> None:
    """Refuse a validation split that the model trained on ``train`` cannot be scored on.

    It must hold windows; they must have the same channels, length and rate; when the job learns labels (``task``
    is not pre-training), the validation labels must be of the same kind, name the same classes
    in the same order, and index no class beyond the ``num_classes`` outputs of the head; regression
    targets must have the same shape per window.
    """
    # Scored over nothing, every evaluation logged val_loss 0.0 (the best there can be) and null metrics.
    val.check_holds_windows("no validation metric can be computed", "--unset data.val to train without validation")
    differences = _layout_differences(train, val)
    if differences:
        raise DataError(f"{val.path} has {' and '.join(differences)}; pack it and {train.path} from the same shards")
    if task == RECONSTRUCTION:
        return  # pre-training reads no labels
    fix = "pack both splits from the same corpus with the same label map"
    if _label_kind(val) != _label_kind(train):
        raise DataError(f"{val.path} holds {_label_kind(val)} but {train.path} holds {_label_kind(train)}; {fix}")
    if LABEL_LAYOUT.get(task) == "value" and val.target_shape != train.target_shape:
        raise DataError(
            f"{val.path} holds regression targets of shape {val.target_shape} per window but {train.path} "
            f"{train.target_shape}; {fix}"
        )
    # Targets are class indices into each file's own label_names: val_* metrics (and early stopping)
    # would score the head's class k against another class of the validation split.
    if train.label_names and val.label_names and tuple(train.label_names) != tuple(val.label_names):
        raise DataError(
            f"{val.path} names its classes {', '.join(val.label_names)} but {train.path} names them "
            f"{', '.join(train.label_names)}; pack both with the same label map so the classes are numbered alike"
        )
    # Without names only the count tells: fewer is a split missing its last classes, more cannot be scored.
    # A single-logit bc head tells 2 classes apart: a 2-class validation split was refused as "more".
    if LABEL_LAYOUT.get(task) != "value" and num_classes and val.num_classes > head_classes(task, num_classes):
        raise DataError(
            f"{val.path} holds {val.num_classes} classes but the model learns {head_classes(task, num_classes)} "
            f"from {train.path}; {fix}"
        )


def _label_kind(info: Any) -> str:
    """What a packed split's labels are, in words that tell two kinds apart (the per-channel tasks by name)."""
    if not info.labelled:
        return "no labels"
    if info.regression:
        return "regression targets"
    kind = LABEL_LAYOUT.get(info.task)
    if kind == "window":
        return "one class per window"
    return f"{info.task!r} labels" if info.task else "labels of no stated task"


def _check_checkpoint_variant(path: Path, variant: str) -> None:
    """A biofound checkpoint names its variant; refuse one of another variant up front."""
    held = _start_metadata(path).variant or ""
    if held and held.lower() != variant.lower():
        raise CheckpointError(
            f"{path} holds {held} weights but model.variant = {variant!r}; pick a matching checkpoint or variant"
        )
