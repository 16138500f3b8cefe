"""The model ``biofound predict`` runs: a biofound checkpoint through PyTorch, or an export folder's
ONNX graph through onnxruntime, behind one call that turns preprocessed windows into scores.

Both paths feed the model as ``evaluate`` does: the checkpoint's input normalisation, LUNA's
electrode positions of the model's own channels, no masks, and the same logits → probabilities
step (:func:`~biofound_cli.training.evaluate.scores_from_logits`), so a window scores the same
whichever way it reaches the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from biofound_cli.errors import CheckpointError, UsageError

logger = logging.getLogger(__name__)

EXPORT_CONFIG = "config.json"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "model.safetensors"
PER_CHANNEL_TASKS = ("mc", "mmc")


@dataclass
class PredictionModel:
    """A loaded model and what prediction needs to know about it.

    Attributes
    ----------
    path : Path
        The weights file that runs (``.safetensors`` or ``model.onnx``); its content hash says
        which model wrote a prediction.
    runtime : str
        ``"pytorch"`` or ``"onnxruntime"``.
    task : str
        The head's task (``bc``, ``mcc``, ``ml``, ``regression``).
    label_names : list of str
        One per output column.
    ch_names : list of str | None
        The channels the model takes, in order.
    sfreq : float | None
        The sampling rate of its training windows.
    preprocessing : dict | None
        The recorded chain (``{"corpus", "options", **ChainConfig}``); ``None`` when not recorded.
    score : callable
        ``(n, C, T) float32 array → (n, K) scores`` (probabilities, or predictions for regression).
    """

    path: Path
    runtime: str
    task: str
    label_names: list[str]
    ch_names: list[str] | None
    sfreq: float | None
    preprocessing: dict[str, Any] | None
    score: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    description: str = ""

    def sha256(self) -> str:
        """The content hash of the weights file, read in blocks."""
        digest = hashlib.sha256()
        with open(self.path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def resolve_model_path(value: str) -> Path:
    """``MODEL`` as a path: a ``hub:MODEL/FOLDER`` reference resolved from the local copy, offline.

    Parameters
    ----------
    value : str
        The ``MODEL`` argument.

    Raises
    ------
    UsageError
        When the path does not exist or the hub weights were not downloaded yet.
    """
    from biofound_cli.hub_reference import local_checkpoint

    path = local_checkpoint(value, "MODEL")
    if not path.exists():
        raise UsageError(
            f"MODEL {value}: no such file or folder; give a checkpoint (.safetensors or its folder) or an export folder"
        )
    return path


def load_prediction_model(value: str, *, recipe: Any = None, source: str = "MODEL", device: str = "cpu") -> PredictionModel:
    """Load ``MODEL``: an export folder with ``model.onnx`` runs on onnxruntime, anything else on PyTorch.

    Parameters
    ----------
    value : str
        A ``.safetensors`` file, a checkpoint folder, an export folder or a ``hub:`` reference.
    recipe : Recipe | None
        ``--recipe``: its ``[model]`` builds an official checkpoint, its ``[data] transform`` overrides
        the normalisation.
    source : str
        The recipe file, named in messages.
    device : str
        Where PyTorch runs (``cpu``, ``cuda``).

    Raises
    ------
    UsageError, CheckpointError
        For a path that is no model, a task prediction does not support, an official file without a recipe.
    """
    path = resolve_model_path(value)
    config = _export_config(path)
    if config is not None and (path / ONNX_FILE).is_file():
        return _onnx_model(path, config)
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    if not weights.is_file():
        raise UsageError(
            f"MODEL {path}: holds neither {WEIGHTS_FILE} nor {EXPORT_CONFIG} with {ONNX_FILE}; "
            "give a checkpoint (.safetensors or its folder) or an export folder"
        )
    return _torch_model(weights, config, recipe, source, device)


def _export_config(path: Path) -> dict[str, Any] | None:
    file = path / EXPORT_CONFIG if path.is_dir() else None
    if file is None or not file.is_file():
        return None
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{file}: cannot be read as JSON ({error}); export the checkpoint again") from None
    return config if isinstance(config, dict) else None


def _check_task(task: str | None, where: Path) -> str:
    if task in (None, "", "pretrain", "reconstruction"):
        raise UsageError(f"{where} holds a pre-training model with no classifier; fine-tune it first and predict with that run")
    if task in PER_CHANNEL_TASKS:
        raise UsageError(
            f"{where} has a per-channel ({task}) head, which predict does not support yet; evaluate packed splits instead"
        )
    return str(task)


def _torch_model(weights: Path, config: dict[str, Any] | None, recipe: Any, source: str, device: str) -> PredictionModel:
    """A checkpoint on PyTorch, fed through the training objective in evaluation mode."""
    import torch

    from biofound_cli.evaluation.evaluate import transform_name
    from biofound_cli.evaluation.predict import load_for_evaluation
    from biofound_cli.models.transforms import get_transform
    from biofound_cli.training.evaluate import scores_from_logits
    from biofound_cli.training.objectives import Objective

    section = recipe.model if recipe is not None else None
    try:
        model, head = load_for_evaluation(
            weights,
            variant=section.variant if section else None,
            task=section.task if section else None,
            num_classes=section.num_classes if section else None,
        )
    except CheckpointError as error:
        if "no biofound metadata" not in error.message:
            raise
        raise CheckpointError(
            f"{weights} has no biofound metadata (an official checkpoint?); pass --recipe with its task's [model] "
            "(variant, task, num_classes) and [preprocess] sections, e.g. a shipped recipe (biofound recipes ls)"
        ) from None
    metadata = head.metadata
    task = _check_task(metadata.task or head.task, weights)
    ch_names = metadata.ch_names or (config or {}).get("ch_names")
    locations = None
    if head.model_family.uses_channel_locations:
        from biofound_cli.signals.electrodes import channel_positions

        if not ch_names:
            raise UsageError(
                f"{weights}: the checkpoint does not name its channels, which LUNA needs; pass --recipe with [preprocess] channels"
            )
        locations = torch.from_numpy(channel_positions(list(ch_names), metadata.channel_positions))
    objective = Objective(
        head.family, task, transform=get_transform(transform_name(recipe, head, source)), channel_locations=locations
    )
    model = model.to(device).eval()

    def score(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            result = objective(model, {"x": torch.from_numpy(x).to(device)}, training=False)
        return scores_from_logits(task, result.logits.float().cpu())

    labels = list(metadata.label_names or []) or [str(index) for index in range(head.num_outputs)]
    return PredictionModel(
        path=weights,
        runtime="pytorch",
        task=task,
        label_names=labels,
        ch_names=list(ch_names) if ch_names else None,
        sfreq=metadata.sfreq,
        preprocessing=metadata.preprocessing or (config or {}).get("preprocessing"),
        score=score,
        description=f"{metadata.model or head.family} {head.variant or ''}".strip(),
    )


def _onnx_model(folder: Path, config: dict[str, Any]) -> PredictionModel:
    """An export folder's ``model.onnx`` on onnxruntime; the normalisation runs before the graph."""
    import torch

    from biofound_cli.models.transforms import get_transform
    from biofound_cli.training.evaluate import scores_from_logits

    try:
        import onnxruntime
    except ImportError:
        raise UsageError(
            f"MODEL {folder}: running {ONNX_FILE} needs onnxruntime; `pip install 'biofound[export]'`, "
            "or predict with the checkpoint the folder was exported from"
        ) from None
    task = _check_task(config.get("task"), folder / ONNX_FILE)
    session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    input_names = [item.name for item in session.get_inputs()]
    transform = get_transform(str((config.get("normalisation") or {}).get("name") or "none"))
    locations = np.asarray(config.get("channel_locations") or [], dtype=np.float32)
    if "channel_locations" in input_names and locations.size == 0:
        raise UsageError(
            f"{folder / EXPORT_CONFIG}: the graph takes channel_locations but the config lists none; export the checkpoint again"
        )

    def score(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            normalised = transform(torch.from_numpy(x).float()).numpy()
        feeds = {"x": normalised}
        if "channel_locations" in input_names:
            feeds["channel_locations"] = np.ascontiguousarray(np.broadcast_to(locations, (len(x), *locations.shape)))
        (logits,) = session.run(None, feeds)
        return scores_from_logits(task, torch.from_numpy(np.asarray(logits)))

    labels = list(config.get("label_names") or []) or [str(index) for index in range(int(config.get("num_outputs") or 0))]
    return PredictionModel(
        path=folder / ONNX_FILE,
        runtime="onnxruntime",
        task=task,
        label_names=labels,
        ch_names=config.get("ch_names"),
        sfreq=config.get("sfreq"),
        preprocessing=config.get("preprocessing"),
        score=score,
        description=f"{config.get('model', '')} {config.get('variant') or ''} (ONNX)".strip(),
    )
