"""The training-curve figure of a run: loss and the watched validation metric against the step."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from biofound_cli.figures import new_figure, save_png
from biofound_cli.training.run_folder import read_metrics_file


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
    x_key, series = training_series(read_metrics_file(metrics_jsonl_path))
    loss_names = [name for name in series if "loss" in name]
    if metric is None:
        metric = next((name for name in series if name.startswith("val") and "loss" not in name), None)
    elif metric not in series and f"val_{metric}" in series:
        metric = f"val_{metric}"
    n_panels = 2 if metric else 1
    figure = new_figure(5.5 * n_panels, 4)
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
    return save_png(figure, out_png)
