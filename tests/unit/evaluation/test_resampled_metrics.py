"""The bootstrap's hand-written metrics give scikit-learn's values on every resample, degenerate ones included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biofound_cli.evaluation.report import _percentile_intervals, _resampled_rows, bootstrap_intervals
from biofound_cli.evaluation.resampled_metrics import resample_scorer
from biofound_cli.metrics import compute_metrics, headline_names

N_ROWS, N_RECORDINGS = 120, 9


def _split(task: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Targets and scores of ``task``, scores rounded to one decimal so that many tie."""
    rng = np.random.default_rng(seed)
    if task == "regression":
        y_true = rng.normal(size=(N_ROWS, 3, 2))
        y_true[:, :, 1] = 0.5  # a constant output: its R² is undefined on every resample
        return y_true, y_true + rng.normal(scale=0.7, size=y_true.shape)
    if task == "mc":
        y_true = rng.integers(0, 2, size=(N_ROWS, 3))
        y_true[:, 2] = 0  # a channel of one class: its AUROC, AUPR and kappa are undefined
        return y_true, np.round(np.clip(0.3 * y_true + rng.uniform(size=y_true.shape) * 0.7, 0, 1), 1)
    n_classes = {"bc": 2, "ml": 3, "mcc": 4, "mmc": 3}[task]
    shape = (N_ROWS, 2) if task == "mmc" else (N_ROWS,)
    y_true = rng.integers(0, n_classes, size=shape)
    if task == "mcc":
        y_true[y_true == 3] = 2  # class 3 never a target, though predicted
    logits = rng.normal(size=shape + (n_classes,)) + 1.5 * np.eye(n_classes)[y_true]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    return y_true, np.round(probabilities, 1)


def _resamples(y_true: np.ndarray, groups: np.ndarray) -> list[np.ndarray]:
    """Seeded resamples of rows and of recordings, and degenerate ones: of one class, of a single row."""
    rng = np.random.default_rng(1)
    rows = list(_resampled_rows(rng, N_ROWS, None, 20)) + list(_resampled_rows(rng, N_ROWS, groups, 20))
    first_label = y_true.reshape(N_ROWS, -1)[:, 0]
    one_class = np.flatnonzero(first_label == first_label[0])
    return rows + [rng.choice(one_class, size=N_ROWS), np.zeros(N_ROWS, dtype=np.int64), np.array([5])]


@pytest.mark.parametrize("task", ["bc", "ml", "mcc", "mc", "mmc", "regression"])
def test_every_headline_metric_is_sklearns_on_every_resample(task):
    y_true, y_score = _split(task)
    groups = np.random.default_rng(2).integers(0, N_RECORDINGS, size=N_ROWS)
    score = resample_scorer(task, y_true, y_score)
    undefined = dict.fromkeys(headline_names(task), 0)
    for rows in _resamples(y_true, groups):
        expected = compute_metrics(task, y_true[rows], y_score[rows])
        for name, value in score(rows).items():
            if expected[name] is None:
                assert math.isnan(value), (task, name)
                undefined[name] += 1
            else:
                assert value == pytest.approx(expected[name], rel=1e-12, abs=1e-12), (task, name)
    # The degenerate resamples were met: each classification split has resamples of one class.
    if task != "regression":
        assert undefined["auroc"] >= 1 and undefined["cohen_kappa"] >= 1 and undefined["accuracy"] == 0


def test_seeded_intervals_are_those_of_sklearn_on_each_resample():
    y_true, y_score = _split("mcc", seed=3)
    groups = np.random.default_rng(4).integers(0, N_RECORDINGS, size=N_ROWS)
    samples: dict[str, list[float]] = {name: [] for name in headline_names("mcc")}
    for rows in _resampled_rows(np.random.default_rng(5), N_ROWS, groups, 60):
        metrics = compute_metrics("mcc", y_true[rows], y_score[rows])
        for name in samples:
            if metrics[name] is not None:
                samples[name].append(metrics[name])
    expected = _percentile_intervals(samples, 0.9)
    intervals = bootstrap_intervals("mcc", y_true, y_score, n_bootstrap=60, seed=5, confidence=0.9, groups=groups)["intervals"]
    assert intervals.keys() == expected.keys()
    for name, interval in intervals.items():
        assert interval["n_valid"] == expected[name]["n_valid"]
        assert interval["low"] == pytest.approx(expected[name]["low"], abs=1e-12)
        assert interval["high"] == pytest.approx(expected[name]["high"], abs=1e-12)


def test_bootstrap_calls_no_sklearn_metric_per_resample(monkeypatch):
    # scikit-learn's checks cost 40-160 ms a resample (benchmarks/bootstrap.py): the bootstrap must not call it.
    import sklearn.metrics

    def refuse(*args, **kwargs):
        raise AssertionError("a scikit-learn metric was called per resample")

    for name in ("roc_auc_score", "average_precision_score", "confusion_matrix", "cohen_kappa_score", "f1_score", "r2_score"):
        monkeypatch.setattr(sklearn.metrics, name, refuse)
    for task in ("bc", "mmc", "regression"):
        y_true, y_score = _split(task)
        result = bootstrap_intervals(task, y_true, y_score, n_bootstrap=5, seed=0)
        assert result["intervals"][headline_names(task)[0]]["n_valid"] == 5


def test_scorer_checks_its_inputs_as_compute_metrics_does():
    with pytest.raises(ValueError, match="must lie in"):
        resample_scorer("bc", np.array([0, 2]), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="mmc expects"):
        resample_scorer("mmc", np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="regression expects"):
        resample_scorer("regression", np.zeros(3), np.zeros(4))
