"""What ``biofound predict`` writes per recording: one row per window (CSV or JSONL) and a PNG.

Columns: ``recording, window_index, start_seconds, end_seconds, predicted_label`` and one
``p_<class>`` probability per class (``prediction`` for a regression head). Each file is
written whole (temporary file, then rename), so a stopped run leaves no half table.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from biofound_cli.atomic import write_text_atomic
from biofound_cli.figures import new_figure, save_png

FORMATS = ("csv", "jsonl")


def score_columns(task: str, label_names: list[str]) -> list[str]:
    """The per-window score columns: ``p_<class>`` each, or ``prediction`` for regression.

    Parameters
    ----------
    task : str
        The head's task.
    label_names : list of str
        Class names in output order.
    """
    return ["prediction"] if task == "regression" else [f"p_{name}" for name in label_names]


def predicted_labels(task: str, scores: np.ndarray, label_names: list[str]) -> list[str]:
    """The class of highest probability per row (the value itself for regression).

    Parameters
    ----------
    task : str
        The head's task.
    scores : np.ndarray
        ``(n, K)`` probabilities or predictions.
    label_names : list of str
        Class names in output order.
    """
    if task == "regression":
        return [f"{value:.6g}" for value in np.asarray(scores).reshape(len(scores), -1)[:, 0]]
    names = list(label_names) + [str(index) for index in range(len(label_names), scores.shape[-1])]
    return [names[int(index)] for index in np.argmax(scores, axis=-1)]


def write_windows(
    path: Path,
    fmt: str,
    recording: str,
    starts: np.ndarray,
    window_seconds: float,
    scores: np.ndarray,
    task: str,
    label_names: list[str],
) -> Path:
    """Write one recording's window table atomically.

    Parameters
    ----------
    path : Path
        The file to write.
    fmt : {"csv", "jsonl"}
    recording : str
        The recording's id, repeated on every row.
    starts : np.ndarray
        ``(n,)`` window starts in seconds (from the chain).
    window_seconds : float
        Window length.
    scores : np.ndarray
        ``(n, K)`` scores.
    task : str
        The head's task.
    label_names : list of str
        Class names in output order.
    """
    columns = score_columns(task, label_names)
    labels = predicted_labels(task, scores, label_names)
    flat = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    header = ["recording", "window_index", "start_seconds", "end_seconds", "predicted_label", *columns]
    rows = (
        [
            recording,
            index,
            round(float(start), 6),
            round(float(start) + window_seconds, 6),
            labels[index],
            *(float(value) for value in flat[index]),
        ]
        for index, start in enumerate(np.asarray(starts, dtype=np.float64))
    )
    if fmt == "jsonl":
        text = "".join(json.dumps(dict(zip(header, row))) + "\n" for row in rows)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        text = buffer.getvalue()
    return write_text_atomic(Path(path), text)


def plot_probabilities(
    path: Path, starts: np.ndarray, window_seconds: float, scores: np.ndarray, label_names: list[str], title: str
) -> Path:
    """A PNG of each class's probability at the middle of every window, over the recording's time.

    Parameters
    ----------
    path : Path
        The PNG to write.
    starts : np.ndarray
        ``(n,)`` window starts in seconds.
    window_seconds : float
        Window length.
    scores : np.ndarray
        ``(n, K)`` probabilities (or predictions).
    label_names : list of str
        One legend entry per column.
    title : str
        Names the model and the recording.
    """
    figure = new_figure(8.0, 3.2)
    axes = figure.add_subplot(1, 1, 1)
    middles = np.asarray(starts, dtype=np.float64) + window_seconds / 2
    flat = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    names = list(label_names) + [str(index) for index in range(len(label_names), flat.shape[1])]
    for column in range(flat.shape[1]):
        axes.plot(middles, flat[:, column], marker="o", markersize=2, linewidth=1, label=names[column])
    axes.set_xlabel("time (s, window middle)")
    axes.set_ylabel("probability")
    axes.set_title(title, fontsize=9)
    axes.legend(loc="upper right", fontsize=7, ncol=min(flat.shape[1], 5))
    figure.tight_layout()
    return save_png(figure, path)
