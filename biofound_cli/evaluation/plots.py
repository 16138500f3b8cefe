"""Evaluation plots as PNG files (matplotlib's Agg renderer, imported lazily).

Each ``*_figure`` function builds one matplotlib ``Figure`` (so a notebook or a test can read its
titles and artists); :func:`plot_evaluation` writes every figure of an evaluation as a PNG,
atomically, and returns the paths. Titles say what the plot shows: model, split, level (windows or recordings) and
how many of them, so a figure lifted into slides still says what it is. For ``mc`` / ``mmc`` the
curves and the confusion matrix pool all channels (every channel-window is one sample); the
per-channel numbers are in ``report.json``.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from biofound_cli.figures import legend_below, new_figure, save_png
from biofound_cli.metrics import CHANNEL_TASKS, REGRESSION_TASKS, class_names, classification_metrics
from biofound_cli.plural import counted

CLASSIFICATION_PLOTS = ("roc.png", "pr.png", "confusion.png", "confusion_normalized.png", "per_class.png")
"""The PNGs of a classification evaluation (``mc``/``mmc`` included), in the order they are drawn."""
REGRESSION_PLOTS = ("regression.png",)
"""The PNG of a regression evaluation."""
PLOT_FILES = CLASSIFICATION_PLOTS + REGRESSION_PLOTS
"""Every PNG an evaluation writes: the only names :func:`remove_other_plots` deletes."""

LINE_STYLES = ("-", "--", "-.", (0, (1, 1)))
"""Curves of different classes differ in line style and marker, not colour alone, so overlapping
curves (and a grey-scale print) stay distinguishable."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
MIN_VISIBLE_BAR = 0.01
"""Drawn height of a bar whose value is 0, so a class scored 0 shows a sliver above its label."""


def plot_title(
    what: str, *, model: str | None = None, split: str | None = None, level: str = "window", n: int | None = None
) -> str:
    """A figure title: what it shows, then model, split and ``n`` windows or recordings on a second line.

    Parameters
    ----------
    what : str
        The first line, e.g. ``"ROC curve"``.
    model : str | None
        The model variant (or family) scored; left out when ``None``.
    split : str | None
        ``train``, ``val`` or ``test``; left out when ``None``.
    level : str
        What one sample is: ``"window"`` or ``"channel-window"``.
    n : int | None
        How many samples; without it the level alone is named.
    """
    count = f"{level}s" if n is None else counted(n, level)
    parts = [part for part in (model, f"{split} split" if split else None, count) if part]
    return f"{what}\n{' · '.join(parts)}"


def class_ticks(axes: Any, positions: Sequence[float] | np.ndarray, names: Sequence[str]) -> bool:
    """Name the classes under ``positions`` of the x axis: upright where they fit, turned 45° where two would overlap.

    The figure is drawn once to measure the names as they are laid out, so a few long names (UCI EMG's
    "hand clenched in a fist") turn as a dozen short ones do, and a few short ones stay upright.

    Parameters
    ----------
    axes : matplotlib.axes.Axes
        The axes whose x ticks name the classes; its figure has its size and other artists already.
    positions : sequence of float | np.ndarray
        Where each class sits on the x axis.
    names : sequence of str
        The class names, in the order of ``positions``.

    Returns
    -------
    bool
        Whether the names were turned.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    axes.set_xticks(positions, names)
    renderer = FigureCanvasAgg(axes.figure).get_renderer()
    axes.figure.draw(renderer)
    labels = axes.get_xticklabels()
    # Half a font size between neighbours at least, so two names do not read as one.
    gaps = [right.x0 - left.x1 for left, right in pairwise(label.get_window_extent(renderer) for label in labels)]
    crowded = any(gap < renderer.points_to_pixels(labels[0].get_fontsize() / 2) for gap in gaps)
    if crowded:
        axes.set_xticks(positions, names, rotation=45, ha="right", rotation_mode="anchor")
    return crowded


Curve = tuple[int, str, np.ndarray, np.ndarray]
"""One class's curve of a ROC or PR plot: its position, name, positives and scores."""


def _curve_style(position: int) -> dict[str, Any]:
    return {
        # A class's colour by its position, as its line style: the same class alike in every split's plots.
        "color": f"C{position % 10}",
        "linestyle": LINE_STYLES[position % len(LINE_STYLES)],
        "marker": MARKERS[position % len(MARKERS)],
        "markevery": 0.1,
        "markersize": 4,
    }


def _curve_axes(y_true: np.ndarray, probabilities: np.ndarray, label_names: Sequence[str] | None) -> tuple[Any, Any, list[Curve]]:
    """The figure and axes of a ROC or PR plot, and (position, name, positives, scores) per curve."""
    y_true = np.asarray(y_true).astype(np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n_classes = probabilities.shape[1]
    names = class_names(label_names, n_classes)
    figure = new_figure(5.5, 5.2)
    # A binary problem has one curve (class 1 against class 0); more classes get one-vs-rest curves.
    classes = [1] if n_classes == 2 else list(range(n_classes))
    curves = [(position, names[k], y_true == k, probabilities[:, k]) for position, k in enumerate(classes)]
    return figure, figure.subplots(), curves


def _drawable(curves: list[Curve], metric: str) -> tuple[list[Curve], list[tuple[int, str]]]:
    """The curves a ROC or PR plot can draw, and the position and legend line of each class it cannot: one absent,
    or the only class present.

    The ROC and PR legends say it alike: ``"{class}: {metric} n/a (absent)"`` or ``"(one class only)"``.
    """
    drawable, undefined = [], []
    for curve in curves:
        position, name, positive, _ = curve
        if positive.all() or not positive.any():
            undefined.append((position, f"{name}: {metric} n/a ({'absent' if not positive.any() else 'one class only'})"))
        else:
            drawable.append(curve)
    return drawable, undefined


def _channel_mean(metric: str, averaged: Mapping[str, Any] | None) -> str:
    """How the curves' numbers are made, and the report's headline beside them for ``mc``/``mmc``.

    The curves pool the channel-windows, while the headline is the mean of the channels' own
    values (:func:`~biofound_cli.metrics.channel_metrics`): the legend gave the pooled number alone,
    unlike the headline, without saying so.
    """
    if averaged is None:
        return ""
    value = averaged.get(metric)
    return f"headline: mean over {averaged['n_channels']} channels, {metric.upper()} {'n/a' if value is None else f'{value:.3f}'}"


def _finish_curves(figure: Any, axes: Any, legend_at: str, undefined: list[tuple[int, str]], headline: str, **labels: str) -> Any:
    """Label the unit square of a ROC or PR plot and place its legend: the classes without a curve (``undefined``,
    from :func:`_drawable`) after the curves, then the ``headline`` line, if any."""
    for position, line in undefined:
        axes.plot([], [], label=line, **_curve_style(position))
    if headline:
        axes.plot([], [], " ", label=headline)
    axes.set(**labels, xlim=(0, 1), ylim=(0, 1.02))
    axes.legend(loc=legend_at, fontsize="small")
    return figure


def roc_figure(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    label_names: Sequence[str] | None = None,
    title: str = "ROC curve",
    averaged: Mapping[str, Any] | None = None,
) -> Any:
    """The ROC figure of ``y_true`` (N,) and ``probabilities`` (N, K): binary, or one-vs-rest per class.

    Each curve has its own line style and marker and its AUROC in the legend. Classes absent from
    ``y_true`` (or the only class present) have no curve and are listed in the legend as undefined.

    Parameters
    ----------
    y_true, probabilities : np.ndarray
        Class indices and class probabilities.
    label_names : sequence of str | None
        Class names; class numbers when ``None``.
    title : str
        The axes title (see :func:`plot_title`).
    averaged : mapping | None
        The ``mc``/``mmc`` metrics of the channels pooled into ``y_true``: the curves are then
        labelled pooled, and a legend line gives the report's headline, the mean over channels.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    figure, axes, curves = _curve_axes(y_true, probabilities, label_names)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance (AUROC 0.500)")
    drawable, undefined = _drawable(curves, "AUROC")
    for position, name, positive, scores in drawable:
        fpr, tpr, _ = roc_curve(positive, scores)
        auc = roc_auc_score(positive, scores)
        label = f"{name} ({'pooled ' if averaged else ''}AUROC {auc:.3f})"
        axes.plot(fpr, tpr, linewidth=1.5, label=label, **_curve_style(position))
    labels = {"xlabel": "false positive rate", "ylabel": "true positive rate", "title": title}
    return _finish_curves(figure, axes, "lower right", undefined, _channel_mean("auroc", averaged), **labels)


def pr_figure(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    label_names: Sequence[str] | None = None,
    title: str = "Precision-recall curve",
    averaged: Mapping[str, Any] | None = None,
) -> Any:
    """Precision-recall curves, binary or one-vs-rest, each with its average precision (AUPR).

    Classes absent from ``y_true`` (or the only class present, whose AUPR is 1 for any scores)
    have no curve and are listed in the legend as undefined.

    Parameters
    ----------
    y_true, probabilities : np.ndarray
        Class indices and class probabilities.
    label_names : sequence of str | None
        Class names; class numbers when ``None``.
    title : str
        The axes title (see :func:`plot_title`).
    averaged : mapping | None
        As for :func:`roc_figure`, with the headline AUPR.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    figure, axes, curves = _curve_axes(y_true, probabilities, label_names)
    drawable, undefined = _drawable(curves, "AUPR")
    for position, name, positive, scores in drawable:
        precision, recall, _ = precision_recall_curve(positive, scores)
        average_precision = average_precision_score(positive, scores)
        style = _curve_style(position)
        label = f"{name} ({'pooled ' if averaged else ''}AUPR {average_precision:.3f})"
        line = axes.step(recall, precision, where="post", linewidth=1.5, label=label, **style)
        # A random classifier's precision equals the class prevalence.
        axes.axhline(positive.mean(), linestyle=":", linewidth=1, color=line[0].get_color())
    labels = {"xlabel": "recall", "ylabel": "precision", "title": title}
    return _finish_curves(figure, axes, "lower left", undefined, _channel_mean("aupr", averaged), **labels)


def confusion_figure(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    label_names: Sequence[str] | None = None,
    normalize: bool = False,
    title: str | None = None,
) -> Any:
    """The confusion matrix (rows: true class, columns: predicted class) as counts or row fractions.

    With ``normalize`` each row is divided by its total, so the diagonal is the per-class recall;
    a class absent from the targets has an empty (blank) row.

    Parameters
    ----------
    confusion : array-like
        (K, K) counts.
    label_names : sequence of str | None
        Class names; class numbers when ``None``.
    normalize : bool
        Show row fractions instead of counts.
    title : str | None
        The axes title; by default says counts or row-normalised.
    """
    counts = np.asarray(confusion, dtype=np.float64)
    n_classes = counts.shape[0]
    names = class_names(label_names, n_classes)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(totals > 0, counts / totals, np.nan) if normalize else counts
    size = max(4.0, 0.55 * n_classes + 2.5)
    figure = new_figure(size + 1, size + 0.3)
    axes = figure.subplots()
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    if n_classes <= 30:  # beyond that the numbers would overlap
        # White text only on the darker half of the colour scale (its top is 1 when normalised).
        peak = 1.0 if normalize else (np.nanmax(values) if np.isfinite(values).any() else 1.0)
        for i, j in np.ndindex(values.shape):
            if math.isnan(values[i, j]):
                continue
            text = f"{values[i, j]:.2f}" if normalize else f"{int(values[i, j])}"
            colour = "white" if values[i, j] > 0.5 * peak else "black"
            axes.text(j, i, text, ha="center", va="center", color=colour, fontsize="small")
    class_ticks(axes, range(n_classes), names)
    axes.set_yticks(range(n_classes), names)
    default_title = "Confusion matrix (row-normalised)" if normalize else "Confusion matrix (counts)"
    axes.set(xlabel="predicted", ylabel="true", title=title or default_title)
    return figure


def per_class_figure(per_class: Sequence[Mapping[str, Any]], title: str = "Per-class metrics") -> Any:
    """Grouped bars of precision, recall and F1 per class (the ``per_class`` list of the metrics).

    Every bar carries its value (two decimals). A value of 0 is drawn as a bar of
    :data:`MIN_VISIBLE_BAR` so the class does not look missing; an undefined value (``None``)
    has no bar and the label ``n/a``.

    Parameters
    ----------
    per_class : sequence of mappings
        ``label``, ``precision``, ``recall`` and ``f1`` per class.
    title : str
        The axes title (see :func:`plot_title`).
    """
    names = [str(entry["label"]) for entry in per_class]
    keys = ("precision", "recall", "f1")
    positions = np.arange(len(names))
    width = 0.8 / len(keys)
    crowded = len(names) > 6  # upright values over 18+ bars would overlap: turn them
    figure = new_figure(max(5.0, 0.8 * len(names) + 2.5), 4.4)
    axes = figure.subplots()
    for offset, key in enumerate(keys):
        values = [entry[key] for entry in per_class]
        heights = [np.nan if value is None else max(float(value), MIN_VISIBLE_BAR) for value in values]
        xs = positions + (offset - 1) * width
        axes.bar(xs, heights, width, label=key)
        for x, value, height in zip(xs, values, heights, strict=True):
            axes.text(
                x,
                0.0 if value is None else height,
                "n/a" if value is None else f"{value:.2f}",
                ha="center",
                va="bottom",
                fontsize="x-small",
                rotation=90 if crowded else 0,
            )
    axes.set(ylim=(0, 1.22 if crowded else 1.12), ylabel="score", title=title)
    legend_below(figure, fontsize="small", ncols=3)
    class_ticks(axes, positions, names)
    return figure


def regression_figure(y_true: np.ndarray, y_pred: np.ndarray, title: str = "Predicted vs true") -> Any:
    """A scatter of predicted against true values (every element pooled), with the identity line.

    Parameters
    ----------
    y_true, y_pred : np.ndarray
        Targets and predictions of the same shape.
    title : str
        The axes title (see :func:`plot_title`).
    """
    true = np.asarray(y_true, dtype=np.float64).ravel()
    pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if true.size > 20000:  # keep the PNG small: an evenly spaced subset draws the same cloud
        keep = np.linspace(0, true.size - 1, 20000).astype(np.int64)
        true, pred = true[keep], pred[keep]
    figure = new_figure(5, 5.2)
    axes = figure.subplots()
    axes.scatter(true, pred, s=4, alpha=0.4)
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    axes.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
    axes.set(xlabel="true", ylabel="predicted", title=title)
    return figure


def evaluation_figures(
    task: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    metrics: Mapping[str, Any],
    label_names: Sequence[str] | None = None,
    *,
    model: str | None = None,
    split: str | None = None,
) -> dict[str, Any]:
    """Every figure of one evaluation, keyed by its PNG file name.

    Classification: :data:`CLASSIFICATION_PLOTS` (ROC, precision-recall, confusion counts and
    row fractions, per-class bars); ``mc``/``mmc`` pool their channels first. Regression:
    :data:`REGRESSION_PLOTS` (predicted against true).

    Parameters
    ----------
    task : str
        The task type (see :mod:`biofound_cli.metrics`).
    y_true, y_score : np.ndarray
        Targets and scores of the samples plotted.
    metrics : mapping
        The matching :func:`~biofound_cli.metrics.compute_metrics` result.
    label_names : sequence of str | None
        Class names when ``metrics`` has none.
    model, split : str | None
        Named in every title (see :func:`plot_title`), with the count of windows (channel-windows
        where ``mc``/``mmc`` pool their channels).
    """
    n = int(np.asarray(y_true).shape[0])
    if task in REGRESSION_TASKS:
        scatter = regression_figure(y_true, y_score, plot_title("Predicted vs true", model=model, split=split, n=n))
        return dict(zip(REGRESSION_PLOTS, [scatter], strict=True))
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    names = metrics.get("label_names") or label_names
    per_class = metrics.get("per_class")
    pooled = task in CHANNEL_TASKS
    if pooled:
        # Every channel of every sample is one point of the pooled curves.
        y_true = y_true.reshape(-1)
        if task == "mc":  # one probability p of class 1 per channel: the two columns [1 - p, p]
            y_score = np.stack([1.0 - y_score.reshape(-1), y_score.reshape(-1)], axis=-1)
        else:
            y_score = y_score.reshape(-1, y_score.shape[-1])
        n = int(y_true.shape[0])
    if per_class is None:  # mc/mmc: per-class numbers of the pooled channel-windows
        per_class = classification_metrics(y_true, y_score, names)["per_class"]

    def title(what: str) -> str:
        return plot_title(
            what + (" (all channels pooled)" if pooled else ""),
            model=model,
            split=split,
            level="channel-window" if pooled else "window",
            n=n,
        )

    averaged = metrics if pooled else None
    figures = [
        roc_figure(y_true, y_score, names, title("ROC curve"), averaged),
        pr_figure(y_true, y_score, names, title("Precision-recall curve"), averaged),
        confusion_figure(metrics["confusion_matrix"], names, title=title("Confusion matrix (counts)")),
        confusion_figure(metrics["confusion_matrix"], names, normalize=True, title=title("Confusion matrix (row-normalised)")),
        per_class_figure(per_class, title("Per-class metrics")),
    ]
    return dict(zip(CLASSIFICATION_PLOTS, figures, strict=True))


def plot_evaluation(
    task: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    metrics: Mapping[str, Any],
    out_dir: Path,
    label_names: Sequence[str] | None = None,
    *,
    model: str | None = None,
    split: str | None = None,
) -> list[Path]:
    """Write every figure of :func:`evaluation_figures` into ``out_dir``; returns the PNG paths.

    Parameters
    ----------
    task : str
        As for :func:`evaluation_figures`.
    y_true, y_score : np.ndarray
        As for :func:`evaluation_figures`.
    metrics : mapping
        As for :func:`evaluation_figures`.
    label_names : sequence of str | None
        As for :func:`evaluation_figures`.
    model, split : str | None
        As for :func:`evaluation_figures`.
    out_dir : Path
        The folder the PNGs go to.
    """
    figures = evaluation_figures(task, y_true, y_score, metrics, label_names, model=model, split=split)
    return [save_png(figure, Path(out_dir) / name) for name, figure in figures.items()]


def remove_other_plots(out_dir: Path, keep: Collection[str] = ()) -> None:
    """Delete the evaluation PNGs (:data:`PLOT_FILES`) in ``out_dir`` that ``keep`` does not name.

    An earlier evaluation into the same folder (with plots, or of another task) left PNGs that
    would pass for this one's beside its ``report.json``. Only those names are touched: any other
    file in ``out_dir`` stays.

    Parameters
    ----------
    out_dir : Path
        The evaluation folder; nothing happens when it does not exist.
    keep : collection of str
        File names this evaluation writes.
    """
    for name in PLOT_FILES:
        path = Path(out_dir) / name
        if name not in keep and (path.is_file() or path.is_symlink()):
            path.unlink()
