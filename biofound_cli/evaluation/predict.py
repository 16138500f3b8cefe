"""Running a model over a packed split for evaluation: checkpoint in, targets and head outputs out.

The model runs in eval mode under ``torch.no_grad`` in file order, without masks or LUNA's
location jitter (the batch is fed by :class:`~biofound_cli.training.objectives.Objective` with
``training=False``), so two runs give the same scores. Before any batch runs, the checkpoint's
head is checked against the split's task, so a mismatch is one clear message, not a shape error.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from biofound_cli.errors import CheckpointError, UsageError
from biofound_cli.metrics import CLASSIFICATION_TASKS
from biofound_cli.models.checkpoints import (
    CheckpointMetadata,
    existing_weights,
    load,
    load_weights,
    read_metadata,
    weight_shapes,
)
from biofound_cli.models.registry import FAMILIES, VARIANTS, create_model, family_of, get_variant
from biofound_cli.tasks import RECONSTRUCTION, head_classes, head_size_problem, labelled_alike

logger = logging.getLogger(__name__)


@dataclass
class HeadInfo:
    """What a loaded checkpoint is: its model family, variant, head task and constructor arguments."""

    family: str
    """``femba``, ``luna`` or ``tinymyo``."""
    variant: str | None
    task: str | None
    """Head task (``bc`` ... ``regression``), ``pretrain`` for a reconstruction head, ``None`` if unknown."""
    num_outputs: int
    n_channels: int | None = None
    """Channels the model takes; ``None`` for any montage (LUNA)."""
    n_times: int | None = None
    """Samples per window the model is fixed to (FEMBA); ``None`` when it is not fixed."""
    window_multiple: int = 1
    """Any window length the model takes is a multiple of this (its patch length)."""
    regression_shape: tuple[int, ...] = ()
    """What a regression head gives per window ((T, K) for TinyMyo); ``()`` for another head."""
    constructor_kwargs: dict[str, Any] = field(default_factory=dict)
    metadata: CheckpointMetadata = field(default_factory=CheckpointMetadata)

    @property
    def model_family(self) -> Any:
        """The :class:`~biofound_cli.models.family.ModelFamily` that knows how to call this model."""
        return FAMILIES[self.family]


def load_for_evaluation(
    checkpoint: Path,
    *,
    variant: str | None = None,
    task: str | None = None,
    num_classes: int | None = None,
    overrides: dict[str, Any] | None = None,
    classes_if_unsized: int | None = None,
) -> tuple[Any, HeadInfo]:
    """Load a checkpoint written by biofound, or an official one described by the recipe.

    Parameters
    ----------
    checkpoint : Path
        A ``.safetensors`` file or a checkpoint folder holding ``model.safetensors``.
    variant, task, num_classes : optional
        The recipe's ``[model]`` fields; needed only for files without biofound metadata
        (official weights), where they say which model to build. ``num_classes`` left out is read
        from the head's tensors (:meth:`~biofound_cli.models.family.ModelFamily.head_size`).
    overrides : dict | None
        The recipe's ``model.overrides``: constructor arguments of an official file's model.
    classes_if_unsized : int | None
        The ``num_classes`` of an official file whose head has no tensor sized by it (FEMBA's
        per-channel ``mc`` head): ``evaluate`` gives the split's class count.

    Returns
    -------
    model : torch.nn.Module
        In eval mode, on the CPU.
    head : HeadInfo
    """
    checkpoint = existing_weights(checkpoint)
    metadata = read_metadata(checkpoint)
    if metadata.is_biofound:
        model = load(checkpoint)
        kwargs = dict(metadata.constructor_kwargs or {})
        family = family_of(model).key
        found_variant = metadata.variant
    else:
        if num_classes is None and variant in VARIANTS and task not in (None, RECONSTRUCTION):
            # The head's tensors are sized by it: evaluate and predict read it there alike.
            found = get_variant(variant)
            kwargs = {**found.kwargs, **(overrides or {})}
            num_classes = FAMILIES[found.family].head_size(str(task), weight_shapes(checkpoint), kwargs) or classes_if_unsized
        if variant is None or task is None or num_classes is None:
            raise CheckpointError(
                f"{checkpoint} has no biofound metadata (an official file?); set model.variant, model.task and "
                "model.num_classes in the recipe so the matching model can be built"
            )
        found_variant = variant
        family = get_variant(variant).family
        model = create_model(variant, task=task, num_classes=num_classes, **(overrides or {}))
        load_weights(model, checkpoint, strict=True)
        kwargs = {**(overrides or {}), "num_classes": num_classes}
        metadata = dataclasses.replace(metadata, task=task)
    # CheckpointMetadata reads the task in one spelling (biofound_cli.tasks); the recipe's is the last resort.
    head_task = metadata.task or FAMILIES[family].head_task(kwargs) or task
    # Input geometry: from the constructor arguments, else from the registered variant.
    full_kwargs = {**(get_variant(found_variant).kwargs if found_variant in VARIANTS else {}), **kwargs}
    geometry = FAMILIES[family].geometry(full_kwargs)
    _check_recorded_geometry(checkpoint, metadata, geometry, family)
    model.eval()
    return model, HeadInfo(
        family=family,
        variant=found_variant,
        task=head_task,
        num_outputs=int(kwargs.get("num_classes", 0) or 0),
        n_channels=int(geometry.n_chans) if geometry.n_chans is not None else None,
        n_times=int(geometry.n_times) if geometry.n_times is not None else None,
        window_multiple=int(geometry.multiple),
        regression_shape=FAMILIES[family].regression_shape(full_kwargs) if head_task == "regression" else (),
        constructor_kwargs=kwargs,
        metadata=metadata,
    )


def _check_recorded_geometry(checkpoint: Path, metadata: CheckpointMetadata, geometry: Any, family: str) -> None:
    """Refuse a checkpoint whose recorded windows (``n_chans``, ``n_times``) differ from those its model is built for.

    A model fixed to its input (FEMBA) failed deep in torch (``The size of tensor a (12) must match
    ...``) on the windows the record asked for: a record edited, or copied from another checkpoint.
    """
    key_of = {"n_chans": geometry.n_chans_key, "n_times": geometry.n_times_key}
    for name, built in (("n_chans", geometry.n_chans), ("n_times", geometry.n_times)):
        recorded = getattr(metadata, name)
        if built is None or recorded is None or int(recorded) == int(built):
            continue
        raise CheckpointError(
            f"{checkpoint}: its metadata records {name} {recorded} but the {FAMILIES[family].name} model it holds is "
            f"built for {built} ({key_of[name]} of constructor_kwargs); the record was changed after training, so "
            f"use the checkpoint as training wrote it, or save it again with {name}={built}"
        )


def check_head(head: HeadInfo, info: Any, checkpoint: Path, recipe: str | None = None, command: str = "evaluate") -> None:
    """Refuse a checkpoint whose model cannot score the split (a :class:`PackedInfo`).

    Parameters
    ----------
    head : HeadInfo
        What the loaded checkpoint is.
    info : PackedInfo
        The split's header, from :func:`~biofound_cli.store.dataset.read_packed_info`.
    checkpoint : Path
        The checkpoint file, named in the errors.
    recipe : str | None
        The user's recipe file, named in the command that fine-tunes a pre-trained checkpoint
        (:func:`finetune_command`); else the recipe recorded in the checkpoint's run folder is.
    command : str
        ``evaluate``, or ``export`` (its ``--split``): what the advice tells the user to do next.

    Raises
    ------
    UsageError
        For a pre-training (reconstruction) checkpoint, an unlabelled split, a head of another
        task type, another number of classes or regression outputs of another shape than the
        targets, or windows of another shape.
    """
    split_task, num_classes, split_path = scored_task(head, info), info.num_classes, info.path
    # export --split only scores the graph on the split: its advice is to score elsewhere, or to export without one.
    verb = "evaluate" if command == "evaluate" else "score"
    if not info.labelled or split_task in ("", RECONSTRUCTION):
        raise UsageError(
            f"{split_path}: the split has no labels (task {split_task or 'unset'}); {verb} on a labelled split "
            "packed from a fine-tuning corpus"
        )
    if head.task == RECONSTRUCTION:
        other = "" if command == "evaluate" else ", or export this one without --split (its reconstruction graph)"
        raise UsageError(
            f"{checkpoint} holds a pre-training model (reconstruction head) with no classifier; "
            f"fine-tune from it first ({_finetune_from(checkpoint, recipe)}) and {command} that run{other}"
        )
    size_problem = head_size_problem(head.task, head.num_outputs) if head.task and head.num_outputs else None
    if size_problem:  # num_outputs 0: not recorded
        raise UsageError(
            f"{checkpoint}: its head cannot tell classes apart: {size_problem}; fine-tune it again with model.num_classes "
            "set to the number of classes"
        )
    if head.task is not None:
        if not labelled_alike(head.task, info.label_task):
            raise UsageError(
                f"{split_path}: the split's task is {info.label_task} but {checkpoint} has a {head.task} head; "
                f"{verb} on a split of the task the model was fine-tuned for"
            )
    if split_task in CLASSIFICATION_TASKS + ("mmc",) and head.num_outputs and num_classes:
        classes = head_classes(split_task, head.num_outputs)
        # Fewer is a split missing its last classes (packed without names), which training validated
        # on and chose the best checkpoint by: refusing it here left those numbers unreproducible.
        if num_classes > classes:
            raise UsageError(
                f"{split_path}: the split has {num_classes} classes but the head of {checkpoint} gives "
                f"{head.num_outputs}; {verb} on a split with the classes the model was fine-tuned on"
            )
    # The task check above made the split a regression one too; only the head's shape is left to compare.
    misfit = head.model_family.regression_misfit(head.regression_shape, info.target_shape) if head.regression_shape else None
    if misfit:
        raise UsageError(f"{split_path}: the head of {checkpoint} {misfit}")
    for what, takes, have in (("channels", head.n_channels, info.n_channels), ("samples", head.n_times, info.n_times)):
        if takes is not None and takes != have:
            raise UsageError(
                f"{split_path}: windows have {have} {what} but {checkpoint} takes {takes}; "
                f"{verb} on a split preprocessed for this model"
            )
    check_class_names(split_task, head, info, checkpoint, verb)


def check_class_names(task: str, head: Any, info: Any, checkpoint: Path, verb: str = "evaluate") -> None:
    """Refuse a split whose classes are another set than the ones the checkpoint was trained on.

    Scores of classes the model never learned mean nothing, whatever the report would call them.
    Another order of the same classes is matched by name (:func:`class_order`); a checkpoint or a split
    that names no classes (official weights, a fresh head) is matched by class number.

    Parameters
    ----------
    task : str
        The split's task; regression has no classes.
    head : HeadInfo
        The loaded checkpoint, whose metadata may name its classes.
    info : PackedInfo
        The split's header, with its ``label_names``.
    checkpoint : Path
        The checkpoint file, named in the error.
    verb : str
        What the advice tells the user to do on another split (``evaluate``, or ``score`` for ``export --split``).
    """
    trained, names = label_names_of(head, info)
    if task == "regression" or not trained or not names or sorted(trained) == sorted(names):
        return
    raise UsageError(
        f"{info.path} holds the classes {', '.join(names)} but {checkpoint} was trained on {', '.join(trained)}; "
        f"{verb} on a split packed with the model's classes, or fine-tune on this split's classes first"
    )


def label_names_of(head: Any, info: Any) -> tuple[list[str], list[str]]:
    """The classes the checkpoint was trained on and the split's, as strings (either may be empty).

    Parameters
    ----------
    head : HeadInfo
        The loaded checkpoint's head (:func:`load_for_evaluation`).
    info : PackedInfo
        The split's header.
    """
    return [str(name) for name in head.metadata.label_names or []], [str(name) for name in info.label_names]


def class_order(task: str, n_classes: int, head: Any, info: Any, checkpoint: Path) -> np.ndarray | None:
    """The head output that scores each of the split's classes, matched by name; ``None`` when output ``k`` is class ``k``.

    Output ``k`` of the head is the ``k``-th class the checkpoint was trained on, while the split's
    targets index its own ``label_names``; a split packed with the same classes in another order is
    matched by name (a warning says so), and outputs beyond the named classes keep their place.
    Where only one side names its classes they are matched by number, with a warning.
    Another set of classes was refused before scoring (:func:`check_class_names`).

    Parameters
    ----------
    task : str
        The split's task; regression has no classes.
    n_classes : int
        The classes the head tells apart (2 for ``mc`` and a single-logit ``bc`` head).
    head : HeadInfo
        The loaded checkpoint, whose metadata may name its classes.
    info : PackedInfo
        The split's header, with its ``label_names``.
    checkpoint : Path
        The checkpoint file, named in the warning.
    """
    trained, names = label_names_of(head, info)
    if task != "regression" and bool(trained) != bool(names):
        # Only one side names them: nothing to match by, so class k is output k, which the user should know.
        named, unnamed = (checkpoint, info.path) if trained else (info.path, checkpoint)
        logger.warning(
            f"{unnamed} records no class names while {named} names {', '.join(trained or names)}; the classes are "
            "matched by number (the split's class k is the head's output k), so pack the split with its label map "
            "if they were numbered otherwise"
        )
    # A name given twice cannot say which output is which.
    if task == "regression" or not trained or not names or trained == names or len(set(names)) != len(names):
        return None
    logger.warning(
        f"{info.path} orders its classes {', '.join(names)} but {checkpoint} was trained with "
        f"{', '.join(trained)}; the model's scores are matched to the split's classes by name"
    )
    return np.array([trained.index(name) for name in names] + list(range(len(names), n_classes)))


def placed_channels(head: HeadInfo, info: Any, checkpoint: Path) -> list[str]:
    """The channel names the split's windows are placed by, for a model that places each channel by its name (LUNA).

    The split's own; a split packed without them takes the checkpoint's where it has as many channels, as the
    exported graph does (:func:`~biofound_cli.export.source.load_source`). Other models get the split's names.

    Parameters
    ----------
    head : HeadInfo
        The loaded checkpoint, whose metadata may name its channels.
    info : PackedInfo
        The split's header.
    checkpoint : Path
        The checkpoint file, named in the error.

    Raises
    ------
    UsageError
        For a location-taking model when neither names the split's channels.
    """
    names, trained = list(info.ch_names), head.metadata.ch_names
    if names or not head.model_family.uses_channel_locations:
        return names
    if isinstance(trained, list) and len(trained) == info.n_channels:
        return [str(name) for name in trained]
    raise unnamed_channels(head, info.path, checkpoint, info.n_channels)


def unnamed_channels(head: HeadInfo, split: Path, checkpoint: Path, n_channels: int) -> UsageError:
    """The one line for a split whose channels a location-taking model cannot place: none of them is named.

    Random or missing positions would score the model on a montage it never sees (``evaluate`` ended in "outputs
    of shape unknown", ``export --split`` in a traceback).

    Parameters
    ----------
    head : HeadInfo
        The loaded checkpoint.
    split : Path
        The packed split, at the start of the line.
    checkpoint : Path
        The checkpoint file.
    n_channels : int
        The split's channels.
    """
    trained = head.metadata.ch_names
    which = (
        f"this split names none of its {n_channels} channels and {checkpoint} names {len(trained)}"
        if trained
        else f"neither this split nor {checkpoint} names its channels"
    )
    return UsageError(
        f"{split}: {head.model_family.name} places each channel by its name, but {which}; "
        "pack the split with `biofound pack` (it records channel_names)"
    )


def finetune_command(recipe: str | Path | None, start: Path, run_name: str | None = None) -> str:
    """The command, in backquotes, that fine-tunes ``recipe`` from the pre-trained weights ``start``.

    ``model.checkpoint`` is always set: without it the fine-tuning starts from the recipe's own
    weights (none: from scratch), not from the pre-training the user is sent to fine-tune.

    Parameters
    ----------
    recipe : str | Path | None
        The recipe file; ``None`` writes a placeholder.
    start : Path
        The pre-trained weights (a file, a checkpoint or a run folder).
    run_name : str | None
        A run name of the fine-tuning's own, where the recipe's run folder holds the pre-training.
    """
    name = f" --set output.run_name={run_name}" if run_name else ""
    return f"`biofound finetune {recipe or 'YOUR_RECIPE.toml'}{name} --set model.checkpoint={start}`"


def _finetune_from(checkpoint: Path, recipe: str | None) -> str:
    """:func:`finetune_command` from a pre-trained ``checkpoint``: the user's ``recipe``, else its run's recorded one."""
    from biofound_cli.training.run_folder import run_folder_of

    run = run_folder_of(checkpoint) if recipe is None else None
    if run is None:
        return finetune_command(recipe, checkpoint)
    # The recorded recipe names the pre-training's folder, which a fine-tuning may not train into.
    # The folder's own name: the run is found as the checkpoint was given, which may be "." or "..".
    return finetune_command(run.recipe_file, checkpoint, f"{run.root.resolve().name}-finetune")


def warn_other_chain(head: HeadInfo, info: Any, checkpoint: Path) -> None:
    """One warning when the split's windows were made by another chain than the model's training data.

    Same channels and window length, but e.g. z-scored or filtered otherwise: the model runs, and
    what is measured on the split (evaluate's metrics, export's accuracy change) describes inputs
    unlike what it learned from (``predict`` runs the model's own chain).

    Parameters
    ----------
    head : HeadInfo
        What the loaded checkpoint is; its metadata records its training data's chain.
    info : PackedInfo
        The split's header, which records the chain its shards were made by.
    checkpoint : Path
        The checkpoint file, named in the warning.
    """
    from biofound_cli.signals.chain import window_differences

    trained, other = head.metadata.preprocessing or {}, info.preprocessing or {}
    if not (trained and other):
        # A record without its chain still says its windows: a split of another length or rate for a model that takes
        # any (LUNA, TinyMyo) was scored without a word.
        trained, other = _recorded_window(head.metadata), _recorded_window(info)
    differing = window_differences(trained, other)
    if differing:
        logger.warning(
            f"{info.path} was preprocessed with another chain than the training data of {checkpoint} (model vs split: "
            f"{', '.join(differing)}), so what is measured on it describes windows unlike the ones the model learned "
            "from; preprocess and pack the split with the model's chain (`biofound info` on the checkpoint shows it)"
        )


def _recorded_window(record: Any) -> dict[str, Any]:
    """The window length and rate a checkpoint's metadata or a split's header records, as a chain names them."""
    return {"window_seconds": record.window_seconds, "sfreq": float(record.sfreq)} if record.window_seconds else {}


def scored_task(head: HeadInfo, info: Any) -> str:
    """The task a checkpoint's outputs on a split are scored as: its head's, where it labels windows as the split does.

    The head decides what its outputs mean: ``finetune`` trains the ``model.task`` of the recipe on a split of the
    same label layout (a ``bc`` head, of one logit or two, on two classes ``pack`` recorded as ``mcc``), and its
    validation scored them as that task; the split's task is the answer for a head of no recorded task.
    :func:`check_head` refuses a head of another layout (per channel, regression) with the split's task named.

    Parameters
    ----------
    head : HeadInfo
        What the loaded checkpoint is.
    info : PackedInfo
        The split's header (its task: ``label_task``).
    """
    if head.task and labelled_alike(head.task, info.label_task):
        return str(head.task)
    return str(info.label_task)


def read_recordings(split_path: Path) -> tuple[np.ndarray | None, list[str] | None]:
    """The ``recording_index`` of every window and the recording names of a packed split, if stored.

    Parameters
    ----------
    split_path : Path
        The packed split file; ``(None, None)`` when it stores no ``recording_index``.
    """
    import h5py

    from biofound_cli.store.shard_scan import as_str

    with h5py.File(split_path, "r") as handle:
        if "recording_index" not in handle:
            return None, None
        index = np.asarray(handle["recording_index"][()], dtype=np.int64)
        names = [as_str(name) for name in handle["recordings"][()]] if "recordings" in handle else None
    return index, names


def predict(
    model: Any,
    objective: Any,
    dataset: Any,
    *,
    batch_size: int,
    device: str = "cpu",
    num_workers: int = 0,
    on_batch: Callable[[int], None] | None = None,
    split_path: Path | None = None,
) -> tuple[np.ndarray, Any]:
    """Targets and head outputs of every window of ``dataset``, in order.

    Parameters
    ----------
    model : torch.nn.Module
    objective : Objective
        Feeds batches to the model family (``training=False``: no masks, no jitter).
    dataset : PackedDataset
        A labelled packed split.
    batch_size : int
        Windows per batch.
    device : str
        Where the model and the batches go (``cpu``, ``cuda``).
    num_workers : int
        DataLoader worker processes; 0 reads in this process.
    on_batch : callable | None
        Called with the number of windows after each batch (for a progress bar).
    split_path : Path | None
        Named in the error message when the head's outputs do not fit the targets.

    Returns
    -------
    y_true : np.ndarray
        Targets (a regression's in the shape of its outputs).
    logits : torch.Tensor
        The head's outputs in float32 on the CPU: the loss is computed from them, and
        :func:`~biofound_cli.training.evaluate.scores_from_logits` makes them the scores the metrics take.
    """
    import torch
    from torch.utils.data import DataLoader

    from biofound_cli.stop_signals import PREEMPTION_SIGNALS
    from biofound_cli.store.dataset import collate_windows
    from biofound_cli.training.preemption import iterate_leaving_signals_to_main

    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_windows)
    logits, targets = [], []
    outputs: list[Any] = []
    # Keep the raw head output so a shape mismatch can be reported in the user's terms.
    hook = model.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    try:
        with torch.no_grad():
            # Workers leave SIGINT, SIGTERM and SIGUSR1 to this process: killed by a signal to the process
            # group, they would fail the run as a worker crash before this process could stop it.
            # Every batch has targets: check_head refused an unlabelled split before any ran.
            for batch in iterate_leaving_signals_to_main(loader, PREEMPTION_SIGNALS):
                batch = {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
                outputs.clear()
                try:
                    result = objective(model, batch, training=False)
                except (RuntimeError, ValueError, IndexError) as error:
                    got = tuple(outputs[0][0].shape) if outputs else "unknown"
                    raise UsageError(
                        f"{split_path}: the model's head gives outputs of shape {got} that do not fit the split's "
                        f"{objective.task} targets of shape {tuple(batch['y'].shape)} ({error}); "
                        "evaluate on a split of the task the model was fine-tuned for"
                    ) from None
                logits.append(result.logits.float().cpu())
                targets.append(result.targets.cpu().numpy())
                if on_batch is not None:
                    on_batch(int(batch["x"].shape[0]))
    finally:
        hook.remove()
    all_logits = torch.cat(logits)
    y_true = np.concatenate(targets)
    if objective.task == "regression":
        y_true = y_true.reshape(all_logits.shape)
    return y_true, all_logits
