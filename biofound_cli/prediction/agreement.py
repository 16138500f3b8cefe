"""How closely an int8 graph follows the float model it was quantised from, on the windows predicted.

``biofound export --quantize`` measures the int8 copy on a packed split; ``predict`` with an
int8 graph runs the float graph beside it (``model.onnx``) on the very same windows and counts,
per recording and over the run, how often the predicted class agrees (every decision, made as
the metrics make it, :func:`biofound_cli.metrics.predicted_classes`: one per window, one per
window and channel for per-channel heads; none for a regression or reconstruction model) and the
largest difference of any probability (or predicted value, or reconstruction error), each reported
under the name of what it is (:func:`difference_key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from biofound_cli.metrics import CHANNEL_TASKS, CLASSIFICATION_TASKS, predicted_classes
from biofound_cli.tasks import RECONSTRUCTION

DIFFERENCE_KEYS = {"regression": "max_output_diff", RECONSTRUCTION: "max_reconstruction_error_diff"}
"""The key of the largest difference where the scores are no probabilities; ``max_probability_diff`` otherwise."""


def difference_key(task: str) -> str:
    """The name the largest int8-float difference is reported under for a head of ``task``.

    A regression head's scores are its predicted values, a pre-training model's its
    reconstruction errors: calling their difference a probability's misled (``max_probability_diff``
    of 3.2 on a regression head).

    Parameters
    ----------
    task : str
        The head's task.
    """
    return DIFFERENCE_KEYS.get(task, "max_probability_diff")


@dataclass
class Agreement:
    """Running agreement of the int8 scores with the float reference's.

    Parameters
    ----------
    reference : str
        The float graph's file name, reported.
    task : str
        The head's task: it decides how scores become classes (none for regression or reconstruction).
    """

    reference: str
    task: str
    decided: int = 0
    """The windows counted that make decisions (each makes as many: one, or one per channel)."""
    agreeing: float = 0.0
    """The share of each such window's decisions that agree, summed over them."""
    windows: int = 0
    max_diff: float = 0.0
    """The largest difference of any score so far, reported under :func:`difference_key`."""

    def add(self, scores: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
        """Count one recording's windows; its own agreement.

        Parameters
        ----------
        scores, reference : np.ndarray
            The int8 and float scores of the same windows, same shape.
        """
        scores, reference = np.asarray(scores, dtype=np.float64), np.asarray(reference, dtype=np.float64)
        if self.task in CLASSIFICATION_TASKS + CHANNEL_TASKS:
            same = predicted_classes(self.task, scores) == predicted_classes(self.task, reference)
        else:
            same = np.zeros(0, dtype=bool)
        difference = float(np.max(np.abs(scores - reference))) if scores.size else 0.0
        decided = len(scores) if same.size else 0
        self._count(len(scores), decided, float(same.mean()) * decided if same.size else 0.0, difference)
        return _as_dict(self.reference, len(scores), int(same.sum()), int(same.size), difference, self.task)

    def add_recorded(self, recorded: dict[str, Any]) -> None:
        """Count a recording predicted by an earlier run of this graph, by the agreement its summary entry records.

        Parameters
        ----------
        recorded : dict
            Its entry's ``int8_agreement`` (what :meth:`add` returned).
        """
        windows, percent = int(recorded.get("windows") or 0), recorded.get("argmax_agreement_percent")
        decided = windows if percent is not None else 0
        self._count(windows, decided, (percent or 0.0) / 100.0 * decided, recorded.get(difference_key(self.task)) or 0.0)

    def _count(self, windows: int, decided: int, agreeing: float, difference: float) -> None:
        self.windows += windows
        self.decided += decided
        self.agreeing += agreeing
        self.max_diff = max(self.max_diff, difference)

    def summary(self) -> dict[str, Any]:
        """The agreement over every window counted."""
        return _as_dict(self.reference, self.windows, self.agreeing, self.decided, self.max_diff, self.task)


def _as_dict(reference: str, windows: int, agreeing: float, decisions: int, difference: float, task: str) -> dict[str, Any]:
    """The agreement of ``windows``: ``agreeing`` of ``decisions`` (or, over recordings, of the windows that decide)."""
    percent = round(100.0 * agreeing / decisions, 4) if decisions else None
    return {
        "reference": reference,
        "windows": windows,
        "argmax_agreement_percent": percent,
        # None over no window: 0 would claim a difference measured.
        difference_key(task): difference if windows else None,
    }
