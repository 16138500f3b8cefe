"""What ``biofound predict`` writes per recording: one row per window (CSV, JSONL or Parquet) and a PNG.

Columns: ``recording, window_index, start_seconds, end_seconds``, then by head

- a classifier (``bc``, ``ml``, ``mcc``): ``predicted_label`` and one ``p_<class>`` per class;
- a per-channel head (``mc``, ``mmc``): one ``predicted_<channel>`` per channel and one
  ``p_<channel>/<class>`` per channel and class (``mc`` is binary per channel: classes ``0``/``1``,
  or the model's two class names);
- a regression head: ``predicted_label`` (the value) and ``prediction`` for one output; for K outputs
  one ``predicted_<output>`` per output (its mean over the window's steps) and one
  ``prediction_<output>`` per output (``prediction_<output>/<step>`` for a head of several steps),
  the outputs named as the model's metadata names them, else ``output0``, ``output1``, ...
  (as ``evaluate`` names them);
- a pre-training model (no head): ``reconstruction_error``.

Every format holds the same record: a class name is text, a value (probability, regression
prediction, time) a number, in CSV, JSONL and Parquet alike.

Each file is written whole (temporary file, then rename), so a stopped run leaves no half table.
Parquet needs ``pyarrow`` (the ``parquet`` extra); asking for it without pyarrow is refused before
any work.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biofound_cli.atomic import atomic_path, write_text_atomic
from biofound_cli.errors import UsageError
from biofound_cli.figures import legend_below, new_figure, save_png
from biofound_cli.metrics import class_names
from biofound_cli.models.checkpoints import recorded_output_names
from biofound_cli.tasks import RECONSTRUCTION

FORMATS = ("csv", "jsonl", "parquet")
PER_CHANNEL_TASKS = ("mc", "mmc")
MAX_PLOTTED = 10
"""More score columns than this (per-channel heads) are plotted as each class's maximum over channels."""


def check_format(fmt: str) -> None:
    """Refuse an unknown ``--format``, or ``parquet`` without pyarrow, before any work.

    Parameters
    ----------
    fmt : str
        The ``--format`` value.

    Raises
    ------
    UsageError
        One sentence saying what to choose or install.
    """
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: unknown; choose one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError(
                "--format parquet needs pyarrow, which is not installed; `pip install pyarrow` "
                "(or `pip install 'biofound[parquet]'`), or use --format csv or jsonl"
            ) from None


def table_path(out: Path, recording_id: str, fmt: str) -> Path:
    """Where ``predict`` writes a recording's window table in ``fmt``: ``OUT/<recording id>.<format>``.

    Parameters
    ----------
    out : Path
        The ``--out`` folder.
    recording_id : str
        The recording's id.
    fmt : {"csv", "jsonl", "parquet"}
        The table's format.
    """
    return Path(out) / f"{recording_id}.{fmt}"


@dataclass
class ScoreTable:
    """The score part of a window table: label columns, value columns, and what the PNG shows."""

    label_columns: list[str]
    labels: list[list[str | float]]
    """One list per row, a value per label column: a class name, or a regression head's predicted value."""
    value_columns: list[str]
    values: np.ndarray
    """``(n, len(value_columns))`` float64."""
    plot_names: list[str]
    plot_values: np.ndarray
    y_label: str = "probability"


def _names(given: list[str] | None, count: int, prefix: str = "") -> list[str]:
    """``given`` when it names ``count`` things, else ``<prefix><index>``."""
    return [str(name) for name in given] if given and len(given) == count else [f"{prefix}{index}" for index in range(count)]


def score_table(task: str, scores: np.ndarray, label_names: list[str], ch_names: list[str] | None = None) -> ScoreTable:
    """Lay out the scores of ``n`` windows as table columns (see the module docstring).

    Parameters
    ----------
    task : str
        The head's task, or ``reconstruction``.
    scores : np.ndarray
        ``(n, K)`` probabilities or predictions, ``(n, C, K)`` per-channel probabilities,
        ``(n, C)`` per-channel ``mc`` probabilities, or ``(n, 1)`` reconstruction errors.
    label_names : list of str
        Class names in output order (a regression head's output names).
    ch_names : list of str | None
        The model's channels, naming the per-channel columns.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if task == RECONSTRUCTION:
        errors = scores.reshape(n, -1)[:, :1]
        return ScoreTable([], [[] for _ in range(n)], ["reconstruction_error"], errors, ["reconstruction error"], errors, "error")
    if task == "regression":
        return _regression_table(scores, label_names)
    if task in PER_CHANNEL_TASKS:
        return _per_channel_table(scores, label_names, ch_names)
    classes = _names(label_names, scores.shape[-1])
    flat = scores.reshape(n, -1)
    labels: list[list[str | float]] = [[classes[int(index)]] for index in np.argmax(flat, axis=-1)]
    return ScoreTable(["predicted_label"], labels, [f"p_{name}" for name in classes], flat, classes, flat)


def _regression_table(scores: np.ndarray, output_names: list[str]) -> ScoreTable:
    """A regression head's values: ``(n,)``, ``(n, K)`` or ``(n, steps, K)``, the last axis its K outputs
    (as ``evaluate``'s metrics read them); every output is summarised, not only the first."""
    n = len(scores)
    per_step = scores.reshape(n, 1, 1) if scores.ndim == 1 else scores.reshape(n, -1, scores.shape[-1])
    n_steps, n_outputs = per_step.shape[1:]
    names = class_names(recorded_output_names(output_names, n_outputs), n_outputs, prefix="output")
    window_means = per_step.mean(axis=1)
    if n_outputs == 1:
        label_columns = ["predicted_label"]
        columns = ["prediction"] if n_steps == 1 else [f"prediction_{step}" for step in range(n_steps)]
    else:
        label_columns = [f"predicted_{name}" for name in names]
        columns = [f"prediction_{name}" + (f"/{step}" if n_steps > 1 else "") for step in range(n_steps) for name in names]
    # The values themselves, not their text: JSONL and Parquet wrote "0.123457" where CSV reads a number.
    values: list[list[str | float]] = [[float(value) for value in row] for row in window_means]
    return ScoreTable(label_columns, values, columns, per_step.reshape(n, -1), names, window_means, "prediction")


def _per_channel_table(scores: np.ndarray, label_names: list[str], ch_names: list[str] | None) -> ScoreTable:
    """``mc``/``mmc``: a probability per channel and class, a predicted class per channel."""
    binary = scores.ndim == 2
    if binary:  # mc: one sigmoid per channel, the probability of class 1
        scores = np.stack([1.0 - scores, scores], axis=-1)
    n, n_channels, n_classes = scores.shape
    channels, classes = _names(ch_names, n_channels, "ch"), _names(label_names, n_classes)
    values = scores.reshape(n, n_channels * n_classes)
    columns = [f"p_{channel}/{name}" for channel in channels for name in classes]
    winners = np.argmax(scores, axis=-1)
    labels: list[list[str | float]] = [[classes[int(index)] for index in row] for row in winners]
    # Every channel's curve would crowd the PNG: each class's highest probability over the channels.
    # For mc only class 1's is worth a line: "clean somewhere" is near 1 whenever one channel is clean.
    plotted = classes[1:] if binary else classes
    return ScoreTable(
        [f"predicted_{channel}" for channel in channels],
        labels,
        columns,
        values,
        [f"{name} (max over channels)" for name in plotted],
        scores.max(axis=1)[:, -len(plotted) :],
    )


def write_windows(path: Path, fmt: str, recording: str, starts: np.ndarray, window_seconds: float, table: ScoreTable) -> Path:
    """Write one recording's window table atomically.

    Parameters
    ----------
    path : Path
        The file to write.
    fmt : {"csv", "jsonl", "parquet"}
    recording : str
        The recording's id, repeated on every row.
    starts : np.ndarray
        ``(n,)`` window starts in seconds (from the chain).
    window_seconds : float
        Window length.
    table : ScoreTable
        The windows' scores (:func:`score_table`).
    """
    starts = np.asarray(starts, dtype=np.float64)
    columns: dict[str, list[Any]] = {
        "recording": [recording] * len(starts),
        "window_index": list(range(len(starts))),
        "start_seconds": [round(float(start), 6) for start in starts],
        "end_seconds": [round(float(start) + window_seconds, 6) for start in starts],
        **{name: [row[position] for row in table.labels] for position, name in enumerate(table.label_columns)},
        **{name: [float(value) for value in table.values[:, position]] for position, name in enumerate(table.value_columns)},
    }
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        with atomic_path(Path(path), suffix_hint=".parquet") as temporary:
            pq.write_table(pa.table(columns), temporary)
        return Path(path)
    header = list(columns)
    rows = list(zip(*columns.values(), strict=True))
    if fmt == "jsonl":
        text = "".join(json.dumps(dict(zip(header, row, strict=True))) + "\n" for row in rows)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        text = buffer.getvalue()
    return write_text_atomic(Path(path), text)


def plot_probabilities(
    path: Path, starts: np.ndarray, window_seconds: float, table: ScoreTable, title: str, gaps: np.ndarray
) -> Path:
    """A PNG of each plotted score at the middle of every window, over the recording's time.

    The line breaks at each gap, so no line joins windows across a pause (between EMG gesture runs, a
    recording's trials or windows left out): the time between them was not scored.

    Parameters
    ----------
    path : Path
        The PNG to write.
    starts : np.ndarray
        ``(n,)`` window starts in seconds.
    window_seconds : float
        Window length.
    table : ScoreTable
        What to plot (:attr:`ScoreTable.plot_names` and ``plot_values``).
    title : str
        Names the model, the recording and its number of windows.
    gaps : np.ndarray
        ``(n - 1,)`` booleans, True where the next window is not adjacent to this one
        (:func:`~biofound_cli.signals.windowing.window_gaps`).
    """
    figure = new_figure(8.0, 3.2)
    axes = figure.add_subplot(1, 1, 1)
    names, values = table.plot_names, np.asarray(table.plot_values, dtype=np.float64)
    if len(names) > MAX_PLOTTED:
        names, values = names[:MAX_PLOTTED], values[:, :MAX_PLOTTED]
    # A NaN point after each window a gap follows: matplotlib breaks the line there and draws the markers.
    after = np.flatnonzero(gaps) + 1
    middles = np.insert(np.asarray(starts, dtype=np.float64) + window_seconds / 2, after, np.nan)
    values = np.insert(values, after, np.nan, axis=0)
    for column, name in enumerate(names):
        axes.plot(middles, values[:, column], marker="o", markersize=2, linewidth=1, label=name)
    axes.set_xlabel("time (s, window middle)")
    axes.set_ylabel(table.y_label)
    # Wrapped at the figure's edge: a LoRA-tuned model's description ran past it, the recording's name cut off.
    axes.set_title(title, fontsize=9, wrap=True)
    legend_below(figure, fontsize=7, ncols=min(max(len(names), 1), 5))
    return save_png(figure, path)
