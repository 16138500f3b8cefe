"""Evaluation and training plots as PNG files (matplotlib's Agg renderer, imported lazily).

Every function writes one PNG atomically (a temporary file in the same folder, then a rename) and
returns its path. For ``mc`` / ``mmc`` the curves and the confusion matrix pool all channels
(every channel-window is one sample); the per-channel numbers are in ``report.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from biofound_cli.atomic import atomic_path
from biofound_cli.evaluation.metrics import REGRESSION_TASKS

_DPI = 120


def _figure(width: float, height: float) -> Any:
    # A bare Figure renders through Agg and never touches pyplot's global state, so plotting works
    # without a display and does not switch the backend of a notebook that imports us.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(figure: Any, out_png: Path) -> Path:
    out_png = Path(out_png)
    with atomic_path(out_png) as temporary:
        # No software version in the file, so the same data give the same bytes.
        figure.savefig(temporary, format="png", dpi=_DPI, metadata={"Software": None})
    return out_png


def _class_names(label_names: Sequence[str] | None, n_classes: int) -> list[str]:
    return [str(name) for name in label_names] if label_names is not None else [str(k) for k in range(n_classes)]


def _curve_classes(n_classes: int) -> list[int]:
    # A binary problem has one curve (class 1 against class 0); more classes get one-vs-rest curves.
    return [1] if n_classes == 2 else list(range(n_classes))


def plot_roc_curves(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    out_png: Path,
    label_names: Sequence[str] | None = None,
    title: str = "ROC curve",
) -> Path:
    """ROC curves from ``y_true`` (N,) and ``probabilities`` (N, K): binary, or one-vs-rest per class.

    Classes absent from ``y_true`` (or the only class present) have no curve and are listed in
    the legend as undefined.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    y_true = np.asarray(y_true).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    names = _class_names(label_names, probabilities.shape[1])
    figure = _figure(5.5, 5)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    for k in _curve_classes(probabilities.shape[1]):
        positive = y_true == k
        if positive.all() or not positive.any():
            axes.plot([], [], label=f"{names[k]}: undefined (one class only)")
            continue
        fpr, tpr, _ = roc_curve(positive, probabilities[:, k])
        auc = roc_auc_score(positive, probabilities[:, k])
        axes.plot(fpr, tpr, linewidth=1.5, label=f"{names[k]} (AUROC {auc:.3f})")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, out_png)


def plot_pr_curves(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    out_png: Path,
    label_names: Sequence[str] | None = None,
    title: str = "Precision-recall curve",
) -> Path:
    """Precision-recall curves, binary or one-vs-rest, each with its average precision (AUPR)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y_true = np.asarray(y_true).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    names = _class_names(label_names, probabilities.shape[1])
    figure = _figure(5.5, 5)
    axes = figure.subplots()
    for k in _curve_classes(probabilities.shape[1]):
        positive = y_true == k
        if not positive.any():
            axes.plot([], [], label=f"{names[k]}: undefined (absent)")
            continue
        precision, recall, _ = precision_recall_curve(positive, probabilities[:, k])
        average_precision = average_precision_score(positive, probabilities[:, k])
        prevalence = positive.mean()
        line = axes.step(recall, precision, where="post", linewidth=1.5, label=f"{names[k]} (AUPR {average_precision:.3f})")
        # A random classifier's precision equals the class prevalence.
        axes.axhline(prevalence, linestyle=":", linewidth=1, color=line[0].get_color())
    axes.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc="lower left", fontsize="small")
    return _save(figure, out_png)


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    out_png: Path,
    label_names: Sequence[str] | None = None,
    normalize: bool = False,
    title: str | None = None,
) -> Path:
    """The confusion matrix (rows: true class, columns: predicted class) as counts or row fractions.

    With ``normalize`` each row is divided by its total, so the diagonal is the per-class recall;
    a class absent from the targets has an empty (blank) row.
    """
    counts = np.asarray(confusion, dtype=np.float64)
    n_classes = counts.shape[0]
    names = _class_names(label_names, n_classes)
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(totals > 0, counts / totals, np.nan)
    else:
        values = counts
    size = max(4.0, 0.55 * n_classes + 2.5)
    figure = _figure(size + 1, size)
    axes = figure.subplots()
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    if n_classes <= 30:  # beyond that the numbers would overlap
        # White text only on the darker half of the colour scale (its top is 1 when normalised).
        peak = 1.0 if normalize else (np.nanmax(values) if np.isfinite(values).any() else 1.0)
        for i in range(n_classes):
            for j in range(n_classes):
                if math.isnan(values[i, j]):
                    continue
                text = f"{values[i, j]:.2f}" if normalize else f"{int(values[i, j])}"
                colour = "white" if values[i, j] > 0.5 * peak else "black"
                axes.text(j, i, text, ha="center", va="center", color=colour, fontsize="small")
    axes.set_xticks(range(n_classes), names, rotation=45 if n_classes > 4 else 0, ha="right" if n_classes > 4 else "center")
    axes.set_yticks(range(n_classes), names)
    default_title = "Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)"
    axes.set(xlabel="predicted", ylabel="true", title=title or default_title)
    figure.set_layout_engine("tight")
    return _save(figure, out_png)


def plot_per_class_bars(per_class: Sequence[Mapping[str, Any]], out_png: Path, title: str = "Per-class metrics") -> Path:
    """Grouped bars of precision, recall and F1 per class (the ``per_class`` list of the metrics).

    Undefined values (``None``) are drawn as missing bars.
    """
    names = [str(entry["label"]) for entry in per_class]
    keys = ("precision", "recall", "f1")
    positions = np.arange(len(names))
    width = 0.8 / len(keys)
    figure = _figure(max(5.0, 0.7 * len(names) + 2.5), 4)
    axes = figure.subplots()
    for offset, key in enumerate(keys):
        heights = [entry[key] if entry[key] is not None else np.nan for entry in per_class]
        axes.bar(positions + (offset - 1) * width, heights, width, label=key)
    axes.set_xticks(positions, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    axes.set(ylim=(0, 1.05), ylabel="score", title=title)
    axes.legend(fontsize="small", ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.15 if len(names) <= 6 else -0.3))
    figure.set_layout_engine("tight")
    return _save(figure, out_png)


def plot_regression(y_true: np.ndarray, y_pred: np.ndarray, out_png: Path, title: str = "Predicted vs true") -> Path:
    """A scatter of predicted against true values (every element pooled), with the identity line."""
    true = np.asarray(y_true, dtype=np.float64).ravel()
    pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if true.size > 20000:  # keep the PNG small: an evenly spaced subset draws the same cloud
        keep = np.linspace(0, true.size - 1, 20000).astype(np.int64)
        true, pred = true[keep], pred[keep]
    figure = _figure(5, 5)
    axes = figure.subplots()
    axes.scatter(true, pred, s=4, alpha=0.4)
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    axes.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
    axes.set(xlabel="true", ylabel="predicted", title=title)
    figure.set_layout_engine("tight")
    return _save(figure, out_png)


def plot_evaluation(
    task: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    metrics: Mapping[str, Any],
    out_dir: Path,
    label_names: Sequence[str] | None = None,
) -> list[Path]:
    """Every plot of one evaluation into ``out_dir``; returns the PNG paths written.

    Classification: ``roc.png``, ``pr.png``, ``confusion.png``, ``confusion_normalized.png`` and
    ``per_class.png``; ``mc``/``mmc`` pool their channels first. Regression: ``regression.png``.
    ``metrics`` is the matching :func:`~biofound_cli.evaluation.metrics.compute_metrics` result.
    """
    out_dir = Path(out_dir)
    if task in REGRESSION_TASKS:
        return [plot_regression(y_true, y_score, out_dir / "regression.png")]
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if task == "mc":
        y_true, y_score = y_true.reshape(-1), y_score.reshape(-1)
        y_score = np.stack([1.0 - y_score, y_score], axis=-1)
    elif task == "mmc":
        y_true, y_score = y_true.reshape(-1), y_score.reshape(-1, y_score.shape[-1])
    names = metrics.get("label_names") or label_names
    pooled = " (all channels pooled)" if task in ("mc", "mmc") else ""
    paths = [
        plot_roc_curves(y_true, y_score, out_dir / "roc.png", names, title=f"ROC curve{pooled}"),
        plot_pr_curves(y_true, y_score, out_dir / "pr.png", names, title=f"Precision-recall curve{pooled}"),
        plot_confusion_matrix(metrics["confusion_matrix"], out_dir / "confusion.png", names),
        plot_confusion_matrix(metrics["confusion_matrix"], out_dir / "confusion_normalized.png", names, normalize=True),
    ]
    if "per_class" in metrics:
        paths.append(plot_per_class_bars(metrics["per_class"], out_dir / "per_class.png"))
    else:
        # mc/mmc: per-class numbers of the pooled channel-windows.
        from biofound_cli.evaluation.metrics import classification_metrics

        pooled_metrics = classification_metrics(y_true, y_score, names)
        paths.append(plot_per_class_bars(pooled_metrics["per_class"], out_dir / "per_class.png", title=f"Per-class metrics{pooled}"))
    return paths


def read_metrics_jsonl(metrics_jsonl_path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file; blank and malformed lines (a run killed mid-write) are skipped."""
    records = []
    with Path(metrics_jsonl_path).open(encoding="utf-8") as stream:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def training_series(records: Sequence[Mapping[str, Any]]) -> tuple[str | None, dict[str, tuple[list[float], list[float]]]]:
    """Numeric series of ``metrics.jsonl`` records, keyed by name, against ``step`` (else ``epoch``).

    A record with a ``split`` field (``{"split": "val", "loss": ...}``, as the training loop
    writes) names its series ``<split>_<field>`` unless the field already starts with the split
    name, so training and validation losses stay apart. Non-finite values are skipped.

    Returns
    -------
    x_key : str | None
        ``"step"``, ``"epoch"`` or ``None`` (the record number is used).
    series : dict
        ``name -> (xs, ys)`` in file order.
    """
    x_key = next((key for key in ("step", "epoch") if any(key in record for record in records)), None)
    series: dict[str, tuple[list[float], list[float]]] = {}
    for position, record in enumerate(records):
        split = record.get("split")
        x_value = record.get(x_key, position) if x_key else position
        if not isinstance(x_value, (int, float)):
            continue
        for key, value in record.items():
            if key in ("step", "epoch", "split") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value):
                continue
            name = key if not isinstance(split, str) or key.startswith(split) else f"{split}_{key}"
            xs, ys = series.setdefault(name, ([], []))
            xs.append(float(x_value))
            ys.append(float(value))
    return x_key, series


def plot_training_curves(metrics_jsonl_path: Path, out_png: Path, metric: str | None = None) -> Path:
    """Loss curves and one validation metric against the step, from a run's ``metrics.jsonl``.

    Parameters
    ----------
    metrics_jsonl_path : Path
        One JSON object per line (see :func:`training_series` for how series are named). Fields
        may be missing from some lines: validation is logged less often than training.
    out_png : Path
        The PNG to write.
    metric : str | None
        The series for the right panel (e.g. ``val_balanced_accuracy``); by default the first
        validation series that is not a loss. Without one the right panel is left out.

    Returns
    -------
    Path
        ``out_png``.
    """
    x_key, series = training_series(read_metrics_jsonl(metrics_jsonl_path))
    loss_names = [name for name in series if "loss" in name]
    if metric is None:
        metric = next((name for name in series if name.startswith("val") and "loss" not in name), None)
    elif metric not in series and f"val_{metric}" in series:
        metric = f"val_{metric}"
    n_panels = 2 if metric else 1
    figure = _figure(5.5 * n_panels, 4)
    panels = figure.subplots(1, n_panels, squeeze=False)
    loss_axes = panels[0][0]
    for name in loss_names:
        xs, ys = series[name]
        loss_axes.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, linewidth=1.2, label=name)
    loss_axes.set(xlabel=x_key or "record", ylabel="loss", title="Loss")
    if loss_names:
        loss_axes.legend(fontsize="small")
    else:
        loss_axes.text(0.5, 0.5, "no loss recorded yet", ha="center", va="center", transform=loss_axes.transAxes)
    if metric:
        metric_axes = panels[0][1]
        xs, ys = series.get(metric, ([], []))
        metric_axes.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, color="tab:green")
        metric_axes.set(xlabel=x_key or "record", ylabel=metric, title=metric)
    figure.set_layout_engine("tight")
    return _save(figure, out_png)
