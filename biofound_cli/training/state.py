"""Resumable checkpoints: model weights plus everything the loop needs to continue exactly.

A checkpoint is a folder holding ``model.safetensors`` (the weights, official key names,
metadata naming the model) and ``trainer_state.pt`` (optimizer, schedule, loss scaler, the
RNG states of Python, NumPy and torch, the sampler position, step, epoch and the best metric
so far). The folder is written under a temporary name and renamed when complete, so a folder
with the final name is always whole; a crash or a second preemption signal mid-write leaves
the previous checkpoint untouched.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biofound_cli.atomic import atomic_folder, disk_full_error
from biofound_cli.errors import CheckpointError, UnreadableCheckpoint, UsageError, first_line
from biofound_cli.models import checkpoints
from biofound_cli.models.checkpoints import WEIGHTS_FILE, CheckpointMetadata

TRAINER_STATE_FILE = "trainer_state.pt"
BEST_FILE = "best.safetensors"
"""In a resumable checkpoint: the run's best weights at that step (``checkpoints/best`` as it was then)."""
_STEP_FOLDER = re.compile(r"^step-(\d+)$")


def capture_rng_state() -> dict[str, Any]:
    """The state of every random source the loop draws from."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put every random source back as :func:`capture_rng_state` found it (CUDA's only where CUDA is available).

    Parameters
    ----------
    state : dict
        What :func:`capture_rng_state` returned.
    """
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_weights(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Write ``state_dict`` as safetensors with ``metadata``, atomically (the checkpoint module's writer).

    Parameters
    ----------
    path : Path
        The ``model.safetensors`` file to write.
    state_dict : dict of str to Tensor
        The weights.
    metadata : dict
        Values of the metadata record; names that are not its fields go to ``extra``.
    """
    return checkpoints.save_state_dict(path, state_dict, CheckpointMetadata.from_values(metadata))


def write_checkpoint(
    folder: Path,
    *,
    model_state: dict[str, torch.Tensor],
    trainer_state: dict[str, Any] | None,
    metadata: dict[str, Any],
    best: Path | None = None,
) -> Path:
    """Write a checkpoint folder atomically, replacing one of the same name.

    Parameters
    ----------
    folder : Path
        Final folder name, e.g. ``runs/x/checkpoints/step-00000120``.
    model_state : dict
        The model's ``state_dict()``.
    trainer_state : dict | None
        Everything else needed to resume; ``None`` writes the weights only (best checkpoint).
    metadata : dict
        Model name, variant, task, constructor arguments (stored in the safetensors header).
    best : Path | None
        The run's best weights file, kept in the folder as :data:`BEST_FILE` (a hard link where
        the file system has them, else a copy): a run resumed from this checkpoint puts them back
        when ``checkpoints/best`` was replaced after it (see ``RunFolder.restore_best``).
    """
    with atomic_folder(Path(folder)) as temporary:
        try:
            write_weights(temporary / WEIGHTS_FILE, model_state, metadata)
            if trainer_state is not None:
                torch.save(trainer_state, temporary / TRAINER_STATE_FILE)
            if best is not None:
                link_or_copy(best, temporary / BEST_FILE)
        except Exception as error:
            # Asked while the partial files still fill the disk; torch and safetensors hide the errno.
            full = disk_full_error(error, Path(folder))
            if full is None:
                raise
            raise full from None
    return Path(folder)


def link_or_copy(source: Path, destination: Path) -> None:
    """``destination`` as a hard link to ``source``, or a copy where the file system cannot link.

    Parameters
    ----------
    source : Path
        An existing file; it is replaced by renames only, so a link keeps its bytes.
    destination : Path
        The new name; it must not exist.
    """
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds both the weights and the trainer state of a checkpoint.

    Parameters
    ----------
    folder : Path
        A checkpoint folder.
    """
    return (folder / WEIGHTS_FILE).is_file() and (folder / TRAINER_STATE_FILE).is_file()


def step_folder(checkpoints: Path, step: int) -> Path:
    """The folder of the checkpoint of ``step``: ``checkpoints/step-NNNNNNNN`` (eight digits, so names sort by step).

    Parameters
    ----------
    checkpoints : Path
        The run's ``checkpoints`` folder.
    step : int
        The optimiser step.
    """
    return Path(checkpoints) / f"step-{step:08d}"


def list_checkpoints(checkpoints: Path) -> list[Path]:
    """Complete resumable checkpoints in ``checkpoints``, oldest first.

    Parameters
    ----------
    checkpoints : Path
        The run's ``checkpoints`` folder; an empty list when it does not exist.
    """
    checkpoints = Path(checkpoints)
    if not checkpoints.is_dir():
        return []
    matches = [(_STEP_FOLDER.match(child.name), child) for child in checkpoints.iterdir()]
    found = [(int(match.group(1)), child) for match, child in matches if match and child.is_dir() and is_complete(child)]
    return [path for _, path in sorted(found)]


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete resumable checkpoint, or ``None``.

    Parameters
    ----------
    checkpoints : Path
        The run's ``checkpoints`` folder.
    """
    found = list_checkpoints(checkpoints)
    return found[-1] if found else None


def prune_checkpoints(checkpoints: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest resumable checkpoints.

    Parameters
    ----------
    checkpoints : Path
        The run's ``checkpoints`` folder.
    keep : int
        How many to keep, at least 1.
    """
    for old in list_checkpoints(checkpoints)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def read_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], CheckpointMetadata]:
    """Weights, trainer state and metadata of a resumable checkpoint folder.

    Parameters
    ----------
    folder : Path
        A ``step-N`` checkpoint folder.

    Raises
    ------
    CheckpointError
        The folder is incomplete or one of its files is damaged (e.g. cut short by a full disk).
    """
    folder = _complete(folder)
    weights = folder / WEIGHTS_FILE
    return checkpoints.load_state_dict_file(weights), _trainer_state(folder, mmap=False), checkpoints.read_metadata(weights)


def saved_batching(folder: Path) -> tuple[int | None, int | None]:
    """The global batch (``data.batch_size`` x processes) and ``optim.accumulation_steps`` a checkpoint was trained with.

    Either is None when the checkpoint does not record it (checkpoints written before it was).

    Parameters
    ----------
    folder : Path
        A ``step-N`` checkpoint folder; its trainer state is mapped, not read in full.
    """
    trainer_state = _trainer_state(_complete(folder), mmap=True)
    size, accumulation = trainer_state.get("global_batch_size"), trainer_state.get("accumulation_steps")
    return (int(size) if size is not None else None, int(accumulation) if accumulation is not None else None)


def saved_progress(folder: Path) -> tuple[dict[str, Any], int | None]:
    """Where a checkpoint's run was (the fields of ``loop.Progress``) and the training windows it was trained on.

    The windows are None when the checkpoint does not record them (checkpoints written before it was).

    Parameters
    ----------
    folder : Path
        A ``step-N`` checkpoint folder; its trainer state is mapped, not read in full.
    """
    trainer_state = _trainer_state(_complete(folder), mmap=True)
    windows = trainer_state.get("train_windows")
    return dict(trainer_state["progress"]), int(windows) if windows is not None else None


def check_same_split(folder: Path, windows: int, fingerprint: str) -> None:
    """Refuse to resume ``folder`` on another training split (repacked, or another file), even with ``--allow-changes``.

    The sampler's order, the place in the epoch and the steps left all follow from the number of
    windows: with another, the resumed run went on silently over a reshuffled epoch, skipping
    and repeating windows. With the same number but other windows (repacked with another seed,
    another corpus) it went on silently over other data; the checkpoint's ``train_fingerprint``
    (:func:`~biofound_cli.store.dataset.provenance_digest`) tells them apart. Checkpoints written
    before either was recorded, or of a split without one (``""``), are not checked. The run
    protocol checks once, before it records a start (a finished run's re-run too); the loop
    restores what it was given.

    Parameters
    ----------
    folder : Path
        The ``step-N`` checkpoint folder resumed from.
    windows : int
        The windows of this start's ``data.train``.
    fingerprint : str
        Its provenance digest (``""``: none recorded).
    """
    trainer_state = _trainer_state(_complete(folder), mmap=True)
    saved, saved_fingerprint = trainer_state.get("train_windows"), trainer_state.get("train_fingerprint")
    if saved is not None and saved != windows:
        problem = f"a training split of {saved} windows and data.train now holds {windows}"
    elif saved_fingerprint and fingerprint and saved_fingerprint != fingerprint:
        problem = (
            f"a training split of fingerprint {saved_fingerprint} and data.train now holds other windows "
            f"(fingerprint {fingerprint}: other recordings, order, labels or preprocessing)"
        )
    else:
        return
    raise UsageError(
        f"{folder} was trained on {problem}, which no resume can continue since the order and place in the epoch "
        "follow from the windows, even with --allow-changes; point data.train at the split the run started with, "
        f"or start a new run from these weights with --set model.checkpoint={folder} --set output.run_name=NEW_NAME "
        "--resume none"
    )


def check_intact(folder: Path) -> None:
    """Raise :class:`CheckpointError` if a checkpoint folder is incomplete or a file in it is cut short.

    Reads the safetensors header and maps the trainer state (a cut file has lost the archive's
    index at its end) instead of loading every tensor: ``--resume auto`` checks candidates this
    way, and only the chosen one is then read in full.

    Parameters
    ----------
    folder : Path
        A ``step-N`` checkpoint folder.
    """
    folder = _complete(folder)
    checkpoints.read_header(folder / WEIGHTS_FILE)
    _trainer_state(folder, mmap=True)


def _complete(folder: Path) -> Path:
    folder = Path(folder)
    if not is_complete(folder):
        raise CheckpointError(
            f"{folder}: not a complete training checkpoint (needs {WEIGHTS_FILE} and {TRAINER_STATE_FILE}); "
            "pass a checkpoint folder from runs/NAME/checkpoints or use --resume auto"
        )
    return folder


def _trainer_state(folder: Path, *, mmap: bool) -> dict[str, Any]:
    try:
        # weights_only=False: the state holds NumPy's RNG tuple; these files are written by this loop.
        return torch.load(folder / TRAINER_STATE_FILE, map_location="cpu", weights_only=False, mmap=mmap)
    except Exception as error:  # torch raises RuntimeError, EOFError or pickle errors for damaged files
        raise UnreadableCheckpoint(
            f"{folder / TRAINER_STATE_FILE}: damaged ({first_line(error)}); resume from an older "
            "checkpoint folder or delete this one"
        ) from None
