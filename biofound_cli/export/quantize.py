"""``--quantize int8`` / ``int8-static``: int8 copies, their size, and their cost measured on real windows.

Dynamic quantisation (``int8``) stores the weights of ``nn.Linear`` layers (ONNX: MatMul) as
int8 and quantises the activations on the fly, which needs no calibration data and suits CPU and
edge inference (TinyMyo's use). Its activation scales come from each call's whole batch, so a
window's output depends on the windows batched with it (up to 8e-2 on a fine-tuned model).
Static quantisation (``int8-static``, ONNX only, in :mod:`~biofound_cli.export.onnx_export`)
fixes the scales from calibration windows of a split: outputs do not depend on the batch.

The cost is measured, not assumed: given a packed split, the float and the int8 artefact score
every window and the summary gives both metrics, their difference, and the agreement (the
fraction of predicted classes the two share).
"""

from __future__ import annotations

import copy
import warnings
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from biofound_cli.errors import UsageError
from biofound_cli.export.source import ExportSource
from biofound_cli.metrics import predicted_classes
from biofound_cli.store.dataset import PackedDataset

BATCH_BEHAVIOUR = {
    "int8": "dynamic: activation scales are taken from each call's batch, so a window's output depends on "
    "the windows batched with it",
    "int8-static": "static: activation scales were fixed by calibration, so a window's output does not depend on the batch",
}
CALIBRATION_WINDOWS = 256
"""Windows of the split (evenly spread) that fix the static activation scales."""
# Mamba adds dt_proj's bias inside the selective scan and reads its weight directly, which a
# quantised Linear (whose ``weight`` is a method) cannot serve; that small layer stays float.
_KEEP_FLOAT = ("dt_proj",)
_BATCH_SIZE = 64


@dataclass
class QuantizationReport:
    """What ``--quantize int8`` did and what it cost.

    Attributes
    ----------
    float_bytes, int8_bytes : int
        Sizes of the float32 and the int8 artefact files.
    n_quantized : int
        Linear layers stored as int8.
    kept_float : list of str
        Linear layers left in float32, with the reason in the docs.
    max_abs_diff_vs_float : float
        Largest output difference from the float model on the verification input.
    metric : str | None
        ``accuracy`` (classification) or ``mae`` (regression) on the split, if one was given.
    float_value, int8_value : float | None
        The metric for the float and the int8 artefact.
    n_windows : int
        Windows scored.
    agreement : float | None
        Fraction of predicted classes (per window, per channel for ``mc``) the int8 and the
        float artefact share; ``None`` for regression.
    max_abs_diff_on_split, tolerance_on_split : float | None
        Largest output difference from the float model over the split's windows, and the int8
        tolerance it was held to (:func:`~biofound_cli.export.artefact.int8_tolerance` of the
        float model's largest output there).
    """

    scheme: str
    float_bytes: int
    int8_bytes: int
    n_quantized: int
    kept_float: list[str]
    max_abs_diff_vs_float: float
    metric: str | None = None
    float_value: float | None = None
    int8_value: float | None = None
    n_windows: int = 0
    split: str | None = None
    agreement: float | None = None
    calibration: str | None = None
    max_abs_diff_on_split: float | None = None
    tolerance_on_split: float | None = None

    @property
    def size_ratio(self) -> float:
        return self.int8_bytes / self.float_bytes if self.float_bytes else float("nan")

    @property
    def change(self) -> float | None:
        return None if self.float_value is None or self.int8_value is None else self.int8_value - self.float_value

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "scheme": self.scheme,
            "float_bytes": self.float_bytes,
            "int8_bytes": self.int8_bytes,
            "size_ratio": round(self.size_ratio, 4),
            "n_quantized_linear": self.n_quantized,
            "kept_float": self.kept_float,
            "max_abs_diff_vs_float": self.max_abs_diff_vs_float,
            "batch_behaviour": BATCH_BEHAVIOUR[self.scheme],
        }
        if self.calibration is not None:
            data["calibration"] = self.calibration
        if self.metric is not None:
            data.update(
                {
                    "split": self.split,
                    "metric": self.metric,
                    "float": self.float_value,
                    "int8": self.int8_value,
                    "change": self.change,
                    "agreement": self.agreement,
                    "windows": self.n_windows,
                    "max_abs_diff_on_split": self.max_abs_diff_on_split,
                    "tolerance_on_split": self.tolerance_on_split,
                }
            )
        return data


def quantizable_linears(module: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the plain ``nn.Linear`` layers that will be quantised, and of those kept float.

    Parameters
    ----------
    module : nn.Module
        The model (or its deploy wrapper).
    """
    chosen: list[str] = []
    kept: list[str] = []
    for name, child in module.named_modules():
        if type(child) is not nn.Linear:  # subclasses (attention's out_proj) are not swappable
            continue
        (kept if name.rsplit(".", 1)[-1] in _KEEP_FLOAT else chosen).append(name)
    return chosen, kept


def quantize_linear(module: nn.Module) -> tuple[nn.Module, list[str], list[str]]:
    """An int8 copy of ``module`` with its Linear layers dynamically quantised.

    Parameters
    ----------
    module : nn.Module
        The float model (or its deploy wrapper).

    Returns
    -------
    quantized : torch.nn.Module
        A deep copy; ``module`` is left as it was.
    chosen, kept : list of str
        Layers quantised and layers kept in float32.
    """
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    chosen, kept = quantizable_linears(module)
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; the API still works in this torch.
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(
            copy.deepcopy(module).eval(), dict.fromkeys(chosen, default_dynamic_qconfig), dtype=torch.qint8
        )
    return quantized, chosen, kept


def _metric(task: str, y_true: np.ndarray, y_score: np.ndarray) -> float:
    if task == "regression":
        return float(np.mean(np.abs(y_score.reshape(y_true.shape) - y_true)))
    return float(np.mean(predicted_classes(task, y_score) == y_true))


@dataclass
class SplitScores:
    """What :func:`score_split` measured on every window of a split.

    Attributes
    ----------
    metric : str
        ``accuracy`` or ``mae``.
    values : dict
        Runner name → metric value.
    n_windows : int
    agreement : float | None
        Fraction of predicted classes the last runner shares with the first (``None`` for
        regression or a single runner).
    max_abs_diff : float
        Largest difference between the last runner's raw outputs and the first's (NaN if either gave NaN).
    largest : float
        Largest absolute raw output of the first runner, which scales the int8 tolerance.
    """

    metric: str
    values: dict[str, float]
    n_windows: int
    agreement: float | None
    max_abs_diff: float
    largest: float


def split_inputs(
    source: ExportSource,
    dataset: Any,
    *,
    indices: Any = None,
    batch_size: int = _BATCH_SIZE,
) -> Iterator[tuple[tuple[torch.Tensor, ...], np.ndarray]]:
    """Batches of a packed dataset as the exported graph takes them, with their targets.

    The windows are normalised as the checkpoint expects and, for LUNA, paired with the
    montage's channel locations, exactly as scoring and calibration must see them.

    Parameters
    ----------
    source : ExportSource
    dataset : PackedDataset
    indices : sequence of int | None
        Windows to take (all, in order, when ``None``).
    batch_size : int
    """
    from torch.utils.data import DataLoader, Subset

    from biofound_cli.models.transforms import get_transform

    transform = get_transform(source.transform)
    locations = source.split_locations(dataset.path)
    subset = dataset if indices is None else Subset(dataset, list(indices))
    for batch in DataLoader(subset, batch_size=batch_size, shuffle=False):
        x = transform(batch["x"].float())
        inputs: tuple[torch.Tensor, ...] = (x,)
        if locations is not None:
            inputs = (x, locations.expand(x.shape[0], -1, -1).contiguous())
        yield inputs, batch["y"].numpy()


def calibration_batches(source: ExportSource, split_path: Path) -> tuple[list[tuple[torch.Tensor, ...]], int]:
    """Up to :data:`CALIBRATION_WINDOWS` windows of the split, evenly spread, as graph inputs.

    Parameters
    ----------
    source : ExportSource
        Supplies the normalisation and LUNA's channel locations.
    split_path : Path
        The packed split the windows are read from.

    Returns
    -------
    batches : list of input tuples
    n_windows : int
    """
    with closing(PackedDataset(split_path)) as dataset:
        chosen = np.unique(np.linspace(0, len(dataset) - 1, min(len(dataset), CALIBRATION_WINDOWS)).astype(int))
        batches = [inputs for inputs, _ in split_inputs(source, dataset, indices=chosen.tolist(), batch_size=32)]
    return batches, int(chosen.size)


def compare_scores(
    task: str, y_true: np.ndarray, y_scores: dict[str, np.ndarray], split_path: Path
) -> tuple[dict[str, float], float | None]:
    """Each runner's metric on the split's targets, and how often the last runner decides as the first.

    Parameters
    ----------
    task : str
        The split's task (``regression`` for float targets).
    y_true : np.ndarray
        The targets: (N,) classes, (N, C) per-channel classes, or (N, ...) values.
    y_scores : dict
        Runner name → its scores, as :func:`~biofound_cli.training.evaluate.scores_from_logits`
        gives them: (N, K), (N, C) for ``mc``, (N, C, K) for ``mmc``, or values.
    split_path : Path
        The split, named when the scores do not fit its targets.
    """
    values = {}
    for name, y_score in y_scores.items():
        # One score per target for regression and mc (a probability of class 1 per channel), K otherwise.
        expected = y_true.size * (1 if task in ("regression", "mc") else int(y_score.shape[-1]))
        if y_score.size != expected:
            raise UsageError(
                f"{split_path}: the model's outputs of shape {y_score.shape[1:]} do not fit the split's {task} targets "
                f"of shape {y_true.shape[1:]}; score on a split of the task the model was fine-tuned for"
            )
        values[name] = _metric(task, y_true, y_score)
    agreement = None
    if task != "regression" and len(y_scores) > 1:
        first, *_, last = y_scores.values()
        agreement = float(np.mean(predicted_classes(task, first) == predicted_classes(task, last)))
    return values, agreement


def score_split(
    runners: dict[str, Callable[..., torch.Tensor]],
    source: ExportSource,
    split_path: Path,
    task: str,
    *,
    order: np.ndarray | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> SplitScores:
    """Score every window of a packed split with each runner; same batches, same normalisation.

    Parameters
    ----------
    runners : dict
        Name → callable taking the graph's inputs (``x`` and, for LUNA, channel locations) and
        returning the head's output; the first is the reference for the agreement.
    source : ExportSource
        Supplies the normalisation and LUNA's channel locations.
    split_path : Path
        A labelled packed split whose task matches the head (checked by the caller).
    task : str
        The split's task (``regression`` for float targets).
    order : np.ndarray | None
        The head output of each of the split's classes (:func:`~biofound_cli.evaluation.predict.class_order`), for a
        split that orders them otherwise; ``None``: output ``k`` is class ``k``.
    on_batch : callable | None
        Called with the number of windows after each batch (for a progress bar); None calls nothing.

    Returns
    -------
    SplitScores
    """
    from biofound_cli.training.evaluate import scores_from_logits

    scores: dict[str, list[np.ndarray]] = {name: [] for name in runners}
    targets: list[np.ndarray] = []
    differences: list[float] = []
    largest: list[float] = []
    with closing(PackedDataset(split_path)) as dataset, torch.no_grad():
        for inputs, y in split_inputs(source, dataset):
            outputs = {name: run(*inputs).float() for name, run in runners.items()}
            for name, output in outputs.items():
                scores[name].append(scores_from_logits(task, output))
            # The raw outputs, as the verification batch compares them: NaN stays NaN and fails the check.
            first, *_, last = outputs.values()
            differences.append(float((last - first).abs().max()))
            largest.append(float(first.abs().max()))
            targets.append(y)
            if on_batch is not None:
                on_batch(int(inputs[0].shape[0]))
    y_true = np.concatenate(targets)
    if order is not None:  # the targets in the head's class order, as evaluate's loss takes them
        y_true = order[y_true]
    values, agreement = compare_scores(task, y_true, {name: np.concatenate(parts) for name, parts in scores.items()}, split_path)
    metric = "mae" if task == "regression" else "accuracy"
    return SplitScores(metric, values, int(y_true.shape[0]), agreement, float(np.max(differences)), float(np.max(largest)))
