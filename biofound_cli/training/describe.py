"""What ``biofound info`` says about a training checkpoint folder and its ``trainer_state.pt``.

A folder ``runs/NAME/checkpoints/step-N`` holds the weights and the trainer state; ``best``
(and ``debug/...``) the weights alone (:mod:`biofound_cli.training.state`). The trainer state is
read with ``torch.load(weights_only=True)``: tensors, plain containers and the NumPy arrays of
the saved random states are allowed, so describing a file never runs code stored in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biofound_cli.atomic import read_json_object
from biofound_cli.errors import CheckpointError, UnreadableCheckpoint, UsageError, existing_file, first_line
from biofound_cli.models.checkpoints import describe_checkpoint, read_metadata
from biofound_cli.plural import counted
from biofound_cli.recipes.training import TrainSection
from biofound_cli.store.folder_lock import lock_holder
from biofound_cli.training.recorded_paths import read_recorded_paths
from biofound_cli.training.run_folder import RunFolder
from biofound_cli.training.state import TRAINER_STATE_FILE, WEIGHTS_FILE, list_checkpoints, saved_batching, saved_progress

# The Python objects besides tensors a trainer state holds: NumPy's random state is an array.
_NUMPY_GLOBALS = ("numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype")


def _numpy_safe_globals() -> list[Any]:
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    dtype_classes = [getattr(np.dtypes, name) for name in getattr(np.dtypes, "__all__", [])]
    return [_reconstruct, np.ndarray, np.dtype, *dtype_classes]


def load_trainer_state(path: Path) -> dict[str, Any]:
    """A ``trainer_state.pt`` read with ``weights_only=True`` (NumPy arrays allowed, no code run).

    Parameters
    ----------
    path : Path
        The file.

    Raises
    ------
    CheckpointError
        For a damaged file, or one that holds other Python objects than a trainer state does.
    """
    import torch

    try:
        unsafe = [
            name
            for name in torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            if name not in _NUMPY_GLOBALS and not name.startswith("numpy.dtypes.")
        ]
        if unsafe:
            raise CheckpointError(
                f"{path} holds Python objects a trainer state does not ({', '.join(unsafe[:3])}); "
                "it was not loaded, since loading it could run code: use a file biofound wrote"
            )
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as error:  # a cut archive, a foreign pickle: torch raises many types
        raise UnreadableCheckpoint(
            f"{path}: not a readable trainer state ({first_line(error)}); "
            "resume from another checkpoint folder or delete this one"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a trainer state (a dict); pass a file from runs/NAME/checkpoints")
    return state


# Where the run was, as the loop's Progress records it (a file of any version may lack some).
_PROGRESS_KEYS = ("step", "epoch", "batch", "best_metric", "best_step", "evals_without_improvement", "stopped_early")


def describe_trainer_state(path: Path) -> dict[str, Any]:
    """Summarise a ``trainer_state.pt``: where the run was and what the file holds to resume it.

    Parameters
    ----------
    path : Path
        A ``trainer_state.pt`` written by the training loop.

    Returns
    -------
    dict
        ``kind`` (``trainer_state``), ``step``, ``epoch`` (the epoch in progress, from 0) and
        ``batch`` (its batches done),
        ``best_metric``, ``best_step``, ``evals_without_improvement``, ``stopped_early``,
        ``world_size``, ``holds`` (one line per entry: optimizer, schedule, loss scaler, random
        states), ``model`` and ``variant`` (from the metadata stored with it) and ``size_bytes``.
    """
    path = existing_file(path)
    state = load_trainer_state(path)
    raw_progress, raw_metadata = state.get("progress"), state.get("metadata")
    progress: dict[str, Any] = raw_progress if isinstance(raw_progress, dict) else {}
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    return {
        "path": str(path),
        "kind": "trainer_state",
        **{key: progress.get(key) for key in _PROGRESS_KEYS},
        "world_size": state.get("world_size"),
        "holds": _holdings(state),
        "model": metadata.get("model"),
        "variant": metadata.get("variant"),
        "size_bytes": path.stat().st_size,
    }


def _holdings(state: dict[str, Any]) -> dict[str, str]:
    """One line per entry of a trainer state, saying what it holds."""
    lines: dict[str, str] = {}
    optimizer = state.get("optimizer")
    if isinstance(optimizer, dict):
        groups = optimizer.get("param_groups") or []
        rates = sorted({float(group["lr"]) for group in groups if "lr" in group})
        rate = f"lr {rates[0]:.3g}" if len(rates) == 1 else f"lr {rates[0]:.3g} to {rates[-1]:.3g}" if rates else ""
        lines["optimizer"] = f"state of {len(optimizer.get('state') or {})} parameters in {len(groups)} groups" + (
            f", {rate}" if rate else ""
        )
    schedule = state.get("schedule")
    if isinstance(schedule, dict):
        lines["schedule"] = ", ".join(f"{key} {value}" for key, value in schedule.items()) or "empty"
    if "scaler" in state:
        lines["scaler"] = "fp16 loss scale" if state["scaler"] else "unused (no fp16)"
    rng = state.get("rng")
    if isinstance(rng, list):
        sources = sorted({key for entry in rng if isinstance(entry, dict) for key in entry})
        lines["rng"] = f"random states of {counted(len(rng), 'rank')}: {', '.join(sources)}"
    others = sorted(set(state) - {"optimizer", "schedule", "scaler", "rng", "progress", "world_size", "metadata"})
    return {**lines, **{key: type(state[key]).__name__ for key in others}}


def is_checkpoint_folder(path: Path) -> bool:
    """Whether ``path`` is a folder holding a checkpoint's ``model.safetensors``.

    Parameters
    ----------
    path : Path
        Any path.
    """
    return Path(path).is_dir() and (Path(path) / WEIGHTS_FILE).is_file()


def describe_checkpoint_folder(folder: Path) -> dict[str, Any]:
    """Summarise a checkpoint folder (``runs/NAME/checkpoints/step-N`` or ``best``).

    Parameters
    ----------
    folder : Path
        A folder holding ``model.safetensors`` and, for a resumable checkpoint, ``trainer_state.pt``.

    Returns
    -------
    dict
        ``kind`` (``checkpoint_folder``), ``resumable``, ``files`` (name → bytes), ``weights``
        (:func:`~biofound_cli.models.checkpoints.describe_checkpoint` of ``model.safetensors``,
        its metadata included) and, when present, ``trainer_state``
        (:func:`describe_trainer_state`) and ``size_bytes`` (all files).
    """

    folder = Path(folder)
    if not is_checkpoint_folder(folder):
        raise UsageError(
            f"{folder}: no {WEIGHTS_FILE} in this folder; pass a checkpoint folder such as runs/NAME/checkpoints/best or a file"
        )
    files = {child.name: child.stat().st_size for child in sorted(folder.iterdir()) if child.is_file()}
    trainer_state = folder / TRAINER_STATE_FILE
    facts: dict[str, Any] = {
        "path": str(folder),
        "kind": "checkpoint_folder",
        "resumable": trainer_state.is_file(),
        "files": files,
        "weights": describe_checkpoint(folder / WEIGHTS_FILE),
    }
    if trainer_state.is_file():
        facts["trainer_state"] = {
            key: value
            for key, value in describe_trainer_state(trainer_state).items()
            if key not in ("path", "kind", "size_bytes")
        }
    facts["size_bytes"] = sum(files.values())
    return facts


def is_checkpoints_folder(path: Path) -> bool:
    """Whether ``path`` is a run's ``checkpoints`` folder (``runs/NAME/checkpoints``).

    Parameters
    ----------
    path : Path
        Any path.
    """
    path = Path(path).absolute()  # `info .` inside it
    return path.is_dir() and RunFolder(path.parent).checkpoints == path


def describe_checkpoints_folder(folder: Path) -> dict[str, Any]:
    """The checkpoints of a run's ``checkpoints`` folder, one line each from its weights' metadata.

    Parameters
    ----------
    folder : Path
        ``runs/NAME/checkpoints``.

    Returns
    -------
    dict
        ``kind`` (``checkpoints_folder``), ``run`` (the run folder) and ``checkpoints``: ``best``, when there is
        one, then the resumable ``step-N`` folders, oldest first, each with one line: its step, the scores it was
        kept for, the model variant and whether it resumes a run (:func:`_checkpoint_line`).
    """
    run = RunFolder(Path(folder).absolute().parent)
    shown = ([run.best] if is_checkpoint_folder(run.best) else []) + list_checkpoints(run.checkpoints)
    return {
        "path": str(folder),
        "kind": "checkpoints_folder",
        "run": str(run.root),
        "checkpoints": {checkpoint.name: _checkpoint_line(checkpoint) for checkpoint in shown},
    }


def _checkpoint_line(folder: Path) -> str:
    """One line on a checkpoint folder from its weights' metadata (``step 40, val_loss 0.6893; tinymyo; resumable``).

    A damaged weights file is said in its line, so that the others are still listed.

    Parameters
    ----------
    folder : Path
        A checkpoint folder (``best`` or ``step-N``).
    """
    try:
        metadata = read_metadata(folder / WEIGHTS_FILE)
    except CheckpointError as error:
        return f"unreadable: {first_line(error)}"
    scores = {key: value for key, value in metadata.extra.items() if key != "step"}
    step = metadata.extra.get("step")
    said = (f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in scores.items())
    kept = ", ".join([f"step {step if step is not None else '?'}", *said])
    resumable = "resumable" if (folder / TRAINER_STATE_FILE).is_file() else "weights only"
    return "; ".join(part for part in (kept, metadata.variant or metadata.model, resumable) if part)


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a training run folder (``runs/NAME`` with a ``checkpoints`` folder).

    Parameters
    ----------
    path : Path
        Any path.
    """

    return RunFolder(path).checkpoints.is_dir()


def describe_run_folder(root: Path) -> dict[str, Any]:
    """Summarise a run folder: its checkpoints, its last logged records and its best checkpoint.

    Parameters
    ----------
    root : Path
        A run folder ``runs/NAME`` written by ``biofound finetune`` or ``pretrain``.

    Returns
    -------
    dict
        ``kind`` (``run_folder``), ``training`` (whether a process trains into it now, and else how its
        newest checkpoint left it: finished, stopped early, or stopped with steps left),
        ``resumable_checkpoints`` (the ``step-N`` folders, oldest first),
        ``last_train`` and ``last_val`` (the newest ``metrics.jsonl`` records) and ``best``: the
        :func:`describe_checkpoint_folder` of ``checkpoints/best``, else of the newest ``step-N``;
        ``recorded_paths``: where ``recipe.json`` says the run and its packed files were, and what is
        found of them now (:func:`~biofound_cli.training.recorded_paths.describe_recorded_paths`),
        or ``recipe``: ``missing``.
    """

    run = RunFolder(root)
    steps = list_checkpoints(run.checkpoints)
    records = run.read_metrics()  # read once for both splits' newest record
    facts: dict[str, Any] = {
        "path": str(run.root),
        "kind": "run_folder",
        "training": _training(run, steps),
        "resumable_checkpoints": [step.name for step in steps],
        "last_train": run.last_record("train", records),
        "last_val": run.last_record("val", records),
    }
    shown = run.best if is_checkpoint_folder(run.best) else (steps[-1] if steps else None)
    if shown is not None:
        facts["best" if shown == run.best else "newest"] = describe_checkpoint_folder(shown)
    recorded = read_recorded_paths(run.root)
    if recorded is None:
        facts["recipe"] = f"missing: no readable {run.recipe_file.name}, so the run's data paths are unknown"
    else:
        facts["recorded_paths"] = recorded
    return facts


def _training(run: RunFolder, steps: list[Path]) -> str:
    """Whether a process trains into ``run`` now (its lock held) and else where its newest checkpoint left it.

    A run's steps are the recipe's ``train.max_steps``, or its epochs of the windows and batch the checkpoint
    records, counted as the loop counts them (:func:`~biofound_cli.training.loop.steps_of_run`).
    """
    holder = lock_holder(run.lock_file)
    if holder is not None:
        return f"running: {holder}"
    if not steps:
        return "not running; no resumable checkpoint"
    newest = steps[-1]
    try:
        progress, windows = saved_progress(newest)
        global_batch, accumulation = saved_batching(newest)
    except CheckpointError as error:  # damaged: the checkpoints' own rows say so
        return f"not running; its newest checkpoint {newest.name} cannot be read ({first_line(error)})"
    step = int(progress.get("step", 0))
    if progress.get("stopped_early"):
        return f"stopped early at step {step}: its validation metric no longer improved"
    total = _steps_of(run, windows, global_batch, accumulation)
    if total is None:
        return f"not running; its newest checkpoint is step {step}"
    if step >= total:
        return f"finished: step {step} of {total}"
    return f"stopped at step {step} of {total}; --resume auto continues it from {newest.name}"


def _steps_of(run: RunFolder, windows: int | None, global_batch: int | None, accumulation: int | None) -> int | None:
    """The steps the run's ``recipe.json`` trains for, or None where that or the checkpoint does not tell."""
    from pydantic import ValidationError

    from biofound_cli.training.loop import steps_of_run

    recipe = read_json_object(run.recipe_file) or {}
    try:
        train = TrainSection.model_validate(recipe.get("train") or {})
    except ValidationError:  # a recipe of another biofound: the state is not known
        return None
    if train.max_steps is not None:
        return train.max_steps
    if not (windows and global_batch and accumulation):
        return None
    return steps_of_run(train, windows // global_batch, accumulation)
