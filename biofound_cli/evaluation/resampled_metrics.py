"""The headline metrics of bootstrap resamples, hand-written in numpy: scikit-learn's values without its checks.

``biofound evaluate --bootstrap N`` scores N resamples of a split. Scored through
:func:`~biofound_cli.metrics.compute_metrics`, a resample of 2 000 windows took 40–160 ms, nearly all
of it scikit-learn validating its inputs again in each of its metric functions; here a split is
sorted once, a resample is how many times it draws each row, and scoring it is a few weighted sums
(``benchmarks/bootstrap.py`` measures both on one machine). Each value is the one scikit-learn gives
on the same resample — the same formula on the same counts — and the tests hold them to 1e-12:

* balanced accuracy, Cohen's kappa (``cohen_kappa_score``), weighted F1 (``f1_score(average="weighted",
  zero_division=0)``) and accuracy, from the confusion matrix (``confusion_matrix``);
* AUROC (``roc_auc_score``) as the Mann–Whitney statistic, tied scores counting one half;
* AUPR (``average_precision_score``): the precision at each distinct score, weighted by the recall it adds;
* R² (``r2_score(force_finite=False)``); MAE and RMSE as :func:`~biofound_cli.metrics.regression_metrics`
  computes them.

What is undefined stays as :func:`~biofound_cli.metrics.classification_metrics` leaves it (NaN here, null
there): AUROC and AUPR of a class with no positives or no negatives in the resample, kappa of targets of
one class, R² of a constant target; binary AUROC/AUPR score class 1, more classes average those defined,
and ``mc``/``mmc`` average each metric over the channels where it is defined.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from biofound_cli.metrics import (
    CHANNEL_TASKS,
    REGRESSION_TASKS,
    channel_probabilities,
    check_classification,
    defined_mean,
    headline_names,
    predicted_classes,
    regression_outputs,
)


def resample_scorer(task: str, y_true: np.ndarray, y_score: np.ndarray) -> Callable[[np.ndarray], dict[str, float]]:
    """A function from the row indices of one resample to its headline metrics (NaN where undefined).

    Parameters
    ----------
    task : str
        The task type (see :mod:`biofound_cli.metrics`).
    y_true, y_score : np.ndarray
        The split's targets and scores, first axis N, checked as
        :func:`~biofound_cli.metrics.compute_metrics` checks them (a ``ValueError`` when they do not fit).

    Returns
    -------
    callable
        ``score(rows)``, ``rows`` an integer array of row indices (repeats allowed), giving
        ``{name: value}`` for each of :func:`~biofound_cli.metrics.headline_names` of ``task``: the
        value ``compute_metrics(task, y_true[rows], y_score[rows])`` gives, NaN where it gives ``None``.
    """
    names = headline_names(task)
    if task in REGRESSION_TASKS:
        regression_outputs(y_true, y_score)  # the shapes are checked once, as compute_metrics checks them
        targets, predictions = np.asarray(y_true, dtype=np.float64), np.asarray(y_score, dtype=np.float64)
        return lambda rows: dict(zip(names, _regression(*regression_outputs(targets[rows], predictions[rows])), strict=True))
    if task in CHANNEL_TASKS:
        labels, probabilities = channel_probabilities(task, y_true, y_score)
        channels = [_Channel(*check_classification(labels[:, c], probabilities[:, c, :])) for c in range(labels.shape[1])]
    else:
        channels = [_Channel(*check_classification(y_true, y_score))]
    n_rows = channels[0].cell.size

    def score(rows: np.ndarray) -> dict[str, float]:
        drawn = np.bincount(rows, minlength=n_rows).astype(np.float64)
        per_channel = np.array([channel.headline(drawn) for channel in channels])
        return {name: defined_mean(per_channel[:, i]) for i, name in enumerate(names)}

    return score


class _Channel:
    """One channel's (or a single-label split's) targets and scores, sorted once for every resample."""

    def __init__(self, y_true: np.ndarray, probabilities: np.ndarray) -> None:
        self.n_classes = probabilities.shape[1]
        # The confusion-matrix cell of each row: a resample's matrix is a weighted bincount of them.
        self.cell = y_true * self.n_classes + predicted_classes("mcc", probabilities)
        ranked = [1] if self.n_classes == 2 else range(self.n_classes)  # binary AUROC/AUPR score class 1
        self.rankings = [_Ranking(y_true == k, probabilities[:, k]) for k in ranked]

    def headline(self, drawn: np.ndarray) -> tuple[float, ...]:
        """Balanced accuracy, AUROC, AUPR, kappa, weighted F1, accuracy of the resample drawing row i ``drawn[i]`` times."""
        k = self.n_classes
        confusion = np.bincount(self.cell, weights=drawn, minlength=k * k).reshape(k, k)
        support, predicted, hits = confusion.sum(axis=1), confusion.sum(axis=0), np.diag(confusion)
        n = support.sum()
        present = support > 0
        balanced_accuracy = (hits[present] / support[present]).mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(support + predicted > 0, 2.0 * hits / (support + predicted), 0.0)
        f1_weighted = np.average(f1, weights=support)
        # cohen_kappa_score's formula, term for term; targets of one class leave it undefined (classification_metrics).
        expected = np.outer(predicted, support) / n
        disagree = 1.0 - np.eye(k)
        kappa = 1 - np.sum(disagree * confusion) / np.sum(disagree * expected) if np.count_nonzero(support) > 1 else np.nan
        curves = np.array([ranking.auroc_aupr(drawn) for ranking in self.rankings])
        auroc, aupr = defined_mean(curves[:, 0]), defined_mean(curves[:, 1])
        return balanced_accuracy, auroc, aupr, kappa, f1_weighted, np.trace(confusion) / n


class _Ranking:
    """One class against the rest: the rows in decreasing order of its score, grouped by equal scores."""

    def __init__(self, positive: np.ndarray, score: np.ndarray) -> None:
        self.order = np.argsort(-score, kind="stable")
        ordered = score[self.order]
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self.positive = positive[self.order].astype(np.float64)

    def auroc_aupr(self, drawn: np.ndarray) -> tuple[float, float]:
        """AUROC and average precision of the resample drawing row i ``drawn[i]`` times; NaN without positives or negatives."""
        counts = drawn[self.order]
        positives = np.add.reduceat(counts * self.positive, self.starts)  # per distinct score
        negatives = np.add.reduceat(counts, self.starts) - positives
        n_pos, n_neg = positives.sum(), negatives.sum()
        if n_pos == 0 or n_neg == 0:
            return np.nan, np.nan
        # A positive outranks the negatives of every lower score, and ties with those of its own at one half.
        auroc = np.sum(positives * (n_neg - np.cumsum(negatives) + 0.5 * negatives)) / (n_pos * n_neg)
        # Precision at each score (a score no row of the resample holds adds no recall: max(…, 1) keeps it 0/1).
        precision = np.cumsum(positives) / np.maximum(np.cumsum(positives + negatives), 1.0)
        return float(auroc), float(np.sum(positives / n_pos * precision))


def _regression(flat_true: np.ndarray, flat_pred: np.ndarray) -> tuple[float, float, float]:
    """MAE, RMSE and the mean R² over the outputs where it is defined (r2_score's raw values, force_finite=False)."""
    errors = flat_true - flat_pred
    if flat_true.shape[0] < 2:
        return float(np.abs(errors).mean()), float(np.sqrt((errors**2).mean())), np.nan
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant target: 0/0 or x/0, undefined
        r2 = 1 - (errors**2).sum(axis=0) / ((flat_true - flat_true.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.abs(errors).mean()), float(np.sqrt((errors**2).mean())), defined_mean(r2)
