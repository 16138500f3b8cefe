"""Evaluation and training plots as PNG files (matplotlib's Agg renderer, imported lazily).

Every function writes one PNG atomically (a temporary file in the same folder, then a rename) and
returns its path. For ``mc`` / ``mmc`` the curves and the confusion matrix pool all channels
(every channel-window is one sample); the per-channel numbers are in ``report.json``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from biofound_cli.figures import new_figure, save_png
from biofound_cli.metrics import REGRESSION_TASKS

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
    figure = new_figure(5.5, 5)
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
    return save_png(figure, out_png)


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
    figure = new_figure(5.5, 5)
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
    return save_png(figure, out_png)


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
    figure = new_figure(size + 1, size)
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
    return save_png(figure, out_png)


def plot_per_class_bars(per_class: Sequence[Mapping[str, Any]], out_png: Path, title: str = "Per-class metrics") -> Path:
    """Grouped bars of precision, recall and F1 per class (the ``per_class`` list of the metrics).

    Undefined values (``None``) are drawn as missing bars.
    """
    names = [str(entry["label"]) for entry in per_class]
    keys = ("precision", "recall", "f1")
    positions = np.arange(len(names))
    width = 0.8 / len(keys)
    figure = new_figure(max(5.0, 0.7 * len(names) + 2.5), 4)
    axes = figure.subplots()
    for offset, key in enumerate(keys):
        heights = [entry[key] if entry[key] is not None else np.nan for entry in per_class]
        axes.bar(positions + (offset - 1) * width, heights, width, label=key)
    axes.set_xticks(positions, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    axes.set(ylim=(0, 1.05), ylabel="score", title=title)
    axes.legend(fontsize="small", ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.15 if len(names) <= 6 else -0.3))
    figure.set_layout_engine("tight")
    return save_png(figure, out_png)


def plot_regression(y_true: np.ndarray, y_pred: np.ndarray, out_png: Path, title: str = "Predicted vs true") -> Path:
    """A scatter of predicted against true values (every element pooled), with the identity line."""
    true = np.asarray(y_true, dtype=np.float64).ravel()
    pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if true.size > 20000:  # keep the PNG small: an evenly spaced subset draws the same cloud
        keep = np.linspace(0, true.size - 1, 20000).astype(np.int64)
        true, pred = true[keep], pred[keep]
    figure = new_figure(5, 5)
    axes = figure.subplots()
    axes.scatter(true, pred, s=4, alpha=0.4)
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    axes.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
    axes.set(xlabel="true", ylabel="predicted", title=title)
    figure.set_layout_engine("tight")
    return save_png(figure, out_png)


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
    ``metrics`` is the matching :func:`~biofound_cli.metrics.compute_metrics` result.
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
        from biofound_cli.metrics import classification_metrics

        pooled_metrics = classification_metrics(y_true, y_score, names)
        paths.append(plot_per_class_bars(pooled_metrics["per_class"], out_dir / "per_class.png", title=f"Per-class metrics{pooled}"))
    return paths
