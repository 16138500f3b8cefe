"""The training-curve figure of a run: loss and the watched validation metric against the step.

The run folder names the one PNG (:attr:`~biofound_cli.training.run_folder.RunFolder.curve_file`);
training draws it when it ends, and ``biofound evaluate`` points to it rather than drawing another.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from biofound_cli.figures import new_figure, save_png
from biofound_cli.training.run_folder import read_metrics_file


def _plotted(record: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """``(series name, value)`` of every finite number a record holds besides ``step`` and ``epoch``."""
    split = record.get("split")
    for key, value in record.items():
        if key in ("step", "epoch", "split") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            yield (key if not isinstance(split, str) or key.startswith(split) else f"{split}_{key}"), float(value)


def training_series(records: Sequence[Mapping[str, Any]]) -> tuple[str | None, dict[str, tuple[list[float], list[float]]]]:
    """Numeric series of ``metrics.jsonl`` records, keyed by name, against ``step`` (else ``epoch``).

    A record with a ``split`` field (``{"split": "val", "loss": ...}``, as the training loop
    writes) names its series ``<split>_<field>`` unless the field already starts with the split
    name, so training and validation losses stay apart. Non-finite values are skipped.

    Parameters
    ----------
    records : sequence of mappings
        The ``metrics.jsonl`` records, in file order.

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
        x_value = record.get(x_key, position) if x_key else position
        if not isinstance(x_value, (int, float)):
            continue
        for name, value in _plotted(record):
            xs, ys = series.setdefault(name, ([], []))
            xs.append(float(x_value))
            ys.append(value)
    return x_key, series


def epoch_means(records: Sequence[Mapping[str, Any]], name: str) -> tuple[list[float], list[float]]:
    """The per-epoch mean of series ``name`` (named as in :func:`training_series`) over the records that hold it, at
    the mean of their steps.

    The per-step training loss jumps from batch to batch; its mean over each epoch shows the trend. The loop
    records the loss of some steps only (every ``train.log_every``, each epoch's last, each evaluation's), so
    this is the mean of those, not of every step the epoch trained. Records without an ``epoch`` or a ``step``
    are left out.

    Parameters
    ----------
    records : sequence of mappings
        The ``metrics.jsonl`` records.
    name : str
        The series, e.g. ``train_loss``.
    """
    steps: dict[Any, list[float]] = {}
    values: dict[Any, list[float]] = {}
    for record in records:
        epoch, step = record.get("epoch"), record.get("step")
        if not isinstance(epoch, (int, float)) or not isinstance(step, (int, float)):
            continue
        for series, value in _plotted(record):
            if series == name:
                steps.setdefault(epoch, []).append(float(step))
                values.setdefault(epoch, []).append(value)
    order = sorted(steps)
    return ([sum(steps[e]) / len(steps[e]) for e in order], [sum(values[e]) / len(values[e]) for e in order])


def training_curves_figure(
    records: Sequence[Mapping[str, Any]],
    metric: str | None = None,
    *,
    best_step: int | None = None,
    title: str | None = None,
) -> Any:
    """Loss curves and one validation metric against the step, as a matplotlib ``Figure``.

    Training losses are drawn at each logged step (thin) with each epoch's mean of those steps on top
    (:func:`epoch_means`) where an epoch holds more than one logged step; the legend says "logged steps" as
    the loop logs some steps only.

    Parameters
    ----------
    records : sequence of mappings
        The ``metrics.jsonl`` records (see :func:`training_series` for how series are named).
    metric : str | None
        The series for the right panel (e.g. ``val_balanced_accuracy``); by default the first
        validation series that is not a loss. Without one the right panel is left out.
    best_step : int | None
        The step of the best checkpoint: a vertical line on every panel, labelled with the step.
    title : str | None
        The figure's title (e.g. the run and its model).
    """
    x_key, series = training_series(records)
    loss_names = [name for name in series if "loss" in name]
    if metric is None:
        metric = next((name for name in series if name.startswith("val") and "loss" not in name), None)
    elif metric not in series and f"val_{metric}" in series:
        metric = f"val_{metric}"
    n_panels = 2 if metric else 1
    figure = new_figure(5.5 * n_panels, 4.3)
    panels = figure.subplots(1, n_panels, squeeze=False)[0]
    loss_axes = panels[0]
    for name in loss_names:
        xs, ys = series[name]
        means = epoch_means(records, name) if not name.startswith("val") else ([], [])
        smoothed = 0 < len(means[0]) < len(xs)  # an epoch holds several steps: its mean shows the trend
        line = loss_axes.plot(
            xs,
            ys,
            marker="o" if len(xs) < 30 else None,
            markersize=3,
            linewidth=0.8 if smoothed else 1.2,
            alpha=0.4 if smoothed else 1.0,
            label=f"{name} (logged steps)" if smoothed else name,
        )
        if smoothed:
            loss_axes.plot(
                *means,
                marker="o",
                markersize=4,
                linewidth=2,
                color=line[0].get_color(),
                label=f"{name} (epoch mean of logged steps)",
            )
    loss_axes.set(xlabel=x_key or "record", ylabel="loss", title="Loss")
    if not loss_names:
        loss_axes.text(0.5, 0.5, "no loss recorded yet", ha="center", va="center", transform=loss_axes.transAxes)
    if metric:
        xs, ys = series.get(metric, ([], []))
        panels[1].plot(xs, ys, marker="o", markersize=3, linewidth=1.2, color="tab:green", label=metric)
        panels[1].set(xlabel=x_key or "record", ylabel=metric, title=metric)
    for axes in panels:
        if best_step is not None:
            axes.axvline(best_step, color="tab:red", linestyle="--", linewidth=1, label=f"best checkpoint (step {best_step})")
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return figure


def plot_training_curves(
    metrics_jsonl_path: Path,
    out_png: Path,
    metric: str | None = None,
    *,
    best_step: int | None = None,
    title: str | None = None,
) -> Path:
    """Write :func:`training_curves_figure` of a run's ``metrics.jsonl`` to ``out_png``.

    Parameters
    ----------
    metrics_jsonl_path : Path
        One JSON object per line. Fields may be missing from some lines: validation is logged
        less often than training; a partial last line (a killed run) is skipped.
    out_png : Path
        The PNG to write.
    metric : str | None
        As for :func:`training_curves_figure`.
    best_step : int | None
        As for :func:`training_curves_figure`.
    title : str | None
        As for :func:`training_curves_figure`.

    Returns
    -------
    Path
        ``out_png``.
    """
    records = read_metrics_file(metrics_jsonl_path)
    return save_png(training_curves_figure(records, metric, best_step=best_step, title=title), out_png)
