"""One decision rule for every place that turns scores into classes: metrics, int8 scoring, predict's agreement.

An ``mc`` head scores one probability of class 1 per channel; the others a probability per class.
Int8 scoring in ``export`` and the int8 agreement in ``predict`` used to carry their own copies
of the rule (one argmaxed an ``mc`` head's channels against each other).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biofound_cli.errors import UsageError
from biofound_cli.export.quantize import compare_scores
from biofound_cli.metrics import channel_metrics, classification_metrics, predicted_classes
from biofound_cli.prediction.agreement import Agreement

MC_SCORES = np.array([[0.9, 0.2, 0.6], [0.1, 0.5, 0.7]])  # 2 windows x 3 channels, P(class 1)


def test_mc_decides_each_channel_as_the_metrics_do():
    decided = predicted_classes("mc", MC_SCORES)
    np.testing.assert_array_equal(decided, [[1, 0, 1], [0, 0, 1]])  # a tie (0.5) is class 0
    # channel_metrics' accuracy is the share of these decisions that match the targets.
    metrics = channel_metrics("mc", decided, MC_SCORES)
    assert metrics["accuracy"] == pytest.approx(1.0)


def test_classifiers_decide_by_argmax():
    scores = np.array([[0.2, 0.8], [0.6, 0.4]])
    np.testing.assert_array_equal(predicted_classes("bc", scores), [1, 0])
    assert classification_metrics(np.array([1, 0]), scores)["accuracy"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="predicts values"):
        predicted_classes("regression", scores)


def test_predict_agreement_counts_every_channel_decision_of_an_mc_head():
    agreement = Agreement("model.onnx", "mc")
    int8 = MC_SCORES.copy()
    int8[0, 2] = 0.4  # one channel of one window flips to class 0; the channels' argmax does not change
    entry = agreement.add(int8, MC_SCORES)
    assert entry["argmax_agreement_percent"] == pytest.approx(100 * 5 / 6, abs=1e-3)
    assert agreement.summary()["windows"] == 2


def test_predict_agreement_has_no_decisions_for_regression():
    agreement = Agreement("model.onnx", "regression")
    entry = agreement.add(np.array([[0.3], [0.9]]), np.array([[0.2], [0.6]]))
    assert entry["argmax_agreement_percent"] is None
    assert entry["max_output_diff"] == pytest.approx(0.3) and "max_probability_diff" not in entry


@pytest.mark.parametrize(
    ("task", "y_true", "scores"),
    [
        ("mc", np.array([[1, 0, 1], [0, 0, 1]]), MC_SCORES),
        ("mmc", np.array([[1, 0], [2, 2]]), np.eye(3)[[[1, 0], [2, 2]]]),
        ("mcc", np.array([1, 0]), np.array([[0.2, 0.8], [0.6, 0.4]])),
        ("regression", np.array([[0.5], [1.0]]), np.array([[0.5], [1.0]])),
    ],
)
def test_int8_scoring_fits_each_heads_scores_to_its_targets(task, y_true, scores):
    values, agreement = compare_scores(task, y_true, {"float": scores, "int8": scores}, Path("test.h5"))
    expected = 0.0 if task == "regression" else 1.0  # mae 0, accuracy 1
    assert values == {"float": pytest.approx(expected), "int8": pytest.approx(expected)}
    assert agreement == (None if task == "regression" else 1.0)


def test_int8_scoring_refuses_scores_of_another_task():
    with pytest.raises(UsageError, match="test.h5: the model's outputs"):
        compare_scores("mcc", np.array([0, 1, 1]), {"float": MC_SCORES}, Path("test.h5"))
