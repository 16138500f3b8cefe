"""Metrics against small cases worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biofound_cli.metrics import compute_metrics, headline_names


def _binary_case():
    # Targets 0 0 1 1; class-1 probabilities .1 .4 .35 .8 → predictions 0 0 0 1.
    y_true = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    return y_true, np.stack([1 - p1, p1], axis=1)


def test_binary_two_by_two_by_hand():
    metrics = compute_metrics("bc", *_binary_case(), label_names=["normal", "abnormal"])
    # Confusion (rows true, columns predicted): [[2, 0], [1, 1]].
    assert metrics["confusion_matrix"] == [[2, 0], [1, 1]]
    assert metrics["accuracy"] == pytest.approx(3 / 4)
    # Recall 2/2 and 1/2 → balanced accuracy 0.75.
    assert metrics["balanced_accuracy"] == pytest.approx(0.75)
    # p_o = 3/4; p_e = (2/4)(3/4) + (2/4)(1/4) = 1/2; kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2.
    assert metrics["cohen_kappa"] == pytest.approx(0.5)
    # F1: class 0 precision 2/3 recall 1 → 0.8; class 1 precision 1 recall 1/2 → 2/3; equal supports.
    assert metrics["f1_weighted"] == pytest.approx((0.8 + 2 / 3) / 2)
    normal, abnormal = metrics["per_class"]
    assert (normal["label"], normal["support"]) == ("normal", 2)
    assert normal["precision"] == pytest.approx(2 / 3) and normal["recall"] == pytest.approx(1.0)
    assert abnormal["precision"] == pytest.approx(1.0) and abnormal["recall"] == pytest.approx(0.5)
    assert abnormal["f1"] == pytest.approx(2 / 3)
    # AUROC: positives score .35 and .8, negatives .1 and .4; pairs won: (.35>.1), (.8>.1), (.8>.4) → 3/4.
    assert metrics["auroc"] == pytest.approx(0.75)
    # Ranked .8(+) .4(-) .35(+) .1(-): precision 1 at recall 1/2, 2/3 at recall 1 → AP = 1/2·1 + 1/2·2/3.
    assert metrics["aupr"] == pytest.approx(5 / 6)
    assert metrics["notes"] == []


def test_binary_auroc_uses_probability_of_class_one():
    # Class-1 logits alone rank sample 1 (logit 2) above sample 0 (logit 1); the softmax
    # probabilities rank sample 0 (0.73) above sample 1 (0.27). Only sample 0 is positive.
    logits = np.array([[0.0, 1.0], [3.0, 2.0], [1.0, 0.0], [2.0, 0.0]])
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_true = np.array([1, 0, 0, 0])
    assert compute_metrics("bc", y_true, probabilities)["auroc"] == pytest.approx(1.0)


def test_multiclass_with_absent_class_by_hand():
    # Four classes, class 3 never a target. Predictions (argmax) 0 1 2 2 2 3; each row puts .775 on
    # its predicted class and .075 on the others.
    y_true = np.array([0, 1, 1, 2, 2, 2])
    predicted = np.array([0, 1, 2, 2, 2, 3])
    probabilities = np.full((6, 4), 0.075)
    probabilities[np.arange(6), predicted] = 0.775
    metrics = compute_metrics("mcc", y_true, probabilities, label_names=["a", "b", "c", "d"])

    assert metrics["confusion_matrix"] == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 2, 1], [0, 0, 0, 0]]
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    # Recall 1, 1/2, 2/3 over the three classes present.
    assert metrics["balanced_accuracy"] == pytest.approx((1 + 1 / 2 + 2 / 3) / 3)
    # p_o = 4/6; row sums 1 2 3 0, column sums 1 1 3 1 → p_e = (1 + 2 + 9) / 36 = 1/3; kappa = 1/2.
    assert metrics["cohen_kappa"] == pytest.approx(0.5)
    # F1 per class 1, 2/3, 2/3 weighted by supports 1, 2, 3 → 13/18.
    assert metrics["f1_weighted"] == pytest.approx(13 / 18)
    # One-vs-rest AUROC: a 1; b (4 wins + 4 ties) / 8 = 3/4; c (2.5 + 2.5 + 1) / 9 = 2/3. d undefined.
    per_class = {entry["label"]: entry for entry in metrics["per_class"]}
    assert per_class["a"]["auroc"] == pytest.approx(1.0)
    assert per_class["b"]["auroc"] == pytest.approx(0.75)
    assert per_class["c"]["auroc"] == pytest.approx(2 / 3)
    assert per_class["d"]["auroc"] is None and per_class["d"]["recall"] is None
    # Predicted once though absent: its F1 was 0.0 (scikit-learn's 2TP / (2TP + FP + FN)).
    assert per_class["d"]["f1"] is None and per_class["d"]["precision"] == 0.0
    assert metrics["auroc"] == pytest.approx((1 + 0.75 + 2 / 3) / 3)
    # One class: "class d does not ...", where it read "class(es) d do not ...".
    assert any(note.startswith("class d does not occur in the targets: its recall") for note in metrics["notes"])
    json.dumps(metrics, allow_nan=False)  # strict JSON: undefined values are null, never NaN


def test_single_class_targets_do_not_crash():
    y_true = np.zeros(4, dtype=int)
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    metrics = compute_metrics("bc", y_true, probabilities)
    assert metrics["accuracy"] == 1.0 and metrics["balanced_accuracy"] == 1.0
    assert metrics["auroc"] is None
    assert metrics["cohen_kappa"] is None
    assert (
        "the targets hold only one class (0): AUROC, AUPR, Cohen's kappa and the other classes' recall and F1 are "
        "undefined (null)" in (metrics["notes"])
    )
    json.dumps(metrics, allow_nan=False)


@pytest.mark.parametrize("task", ["bc", "mcc"])
def test_kappa_of_targets_of_one_class_is_null_whatever_the_predictions(task):
    # With targets of one class chance agrees with them as often as the predictions do: kappa was 0.0
    # beside a null AUROC when the predictions were mixed (null only when all were that class).
    n_classes = 2 if task == "bc" else 3
    y_true = np.zeros(4, dtype=int)
    probabilities = np.eye(n_classes)[[0, 1, 0, 1]] * 0.8 + 0.2 / n_classes
    metrics = compute_metrics(task, y_true, probabilities)
    assert metrics["auroc"] is None and metrics["cohen_kappa"] is None
    assert metrics["accuracy"] == metrics["balanced_accuracy"] == 0.5
    # Two classes of the targets: a constant prediction is chance agreement, a defined 0.
    assert compute_metrics(task, np.array([0, 1, 0, 1]), np.eye(n_classes)[[0, 0, 0, 0]])["cohen_kappa"] == 0.0


@pytest.mark.parametrize("task", ["bc", "mcc"])
def test_aupr_of_targets_of_one_class_is_null_not_one(task):
    # Every target is class 1 and the model ranks it last: with no negatives, average precision
    # is 1 whatever the scores, so it used to be reported as a perfect AUPR of 1.0 next to an
    # accuracy of 0. It is as undefined as the AUROC.
    y_true = np.ones(3, dtype=int)
    p1 = np.array([0.1, 0.2, 0.3])
    probabilities = np.stack([1 - p1, p1], axis=1) if task == "bc" else np.stack([1 - p1, p1, 0 * p1], axis=1)
    metrics = compute_metrics(task, y_true, probabilities)
    assert metrics["accuracy"] == 0.0
    assert metrics["aupr"] is None and metrics["auroc"] is None
    assert metrics["per_class"][1]["aupr"] is None


def test_mc_per_channel_and_average_by_hand():
    y_true = np.array([[0, 1], [1, 1], [0, 0]])
    y_score = np.array([[0.2, 0.7], [0.6, 0.4], [0.1, 0.3]])
    metrics = compute_metrics("mc", y_true, y_score, ch_names=["FP1-F7", "F7-T3"])
    first, second = metrics["per_channel"]
    # Channel 0: predictions 0 1 0, all correct.
    assert first["channel"] == "FP1-F7"
    assert (first["accuracy"], first["balanced_accuracy"], first["cohen_kappa"]) == (1.0, 1.0, 1.0)
    # Channel 1: predictions 1 0 0 against 1 1 0: recall 1 and 1/2; p_o 2/3, p_e 4/9 → kappa 2/5.
    assert second["accuracy"] == pytest.approx(2 / 3)
    assert second["balanced_accuracy"] == pytest.approx(0.75)
    assert second["cohen_kappa"] == pytest.approx(0.4)
    assert second["auroc"] == pytest.approx(1.0)
    # Averages over the two channels; the confusion matrices add up.
    assert metrics["accuracy"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["balanced_accuracy"] == pytest.approx(0.875)
    assert metrics["cohen_kappa"] == pytest.approx(0.7)
    assert metrics["confusion_matrix"] == [[3, 0], [1, 2]]
    assert metrics["n_channels"] == 2


def test_mmc_per_channel_average():
    # Two channels, three classes. Channel 0 is predicted perfectly; channel 1 gets 2 of 4 right.
    y_true = np.array([[0, 0], [1, 1], [2, 2], [1, 0]])
    predicted = np.array([[0, 1], [1, 1], [2, 0], [1, 0]])
    y_score = np.full((4, 2, 3), 0.1)
    y_score[np.arange(4)[:, None], np.arange(2)[None, :], predicted] = 0.8
    metrics = compute_metrics("mmc", y_true, y_score)
    first, second = metrics["per_channel"]
    assert first["accuracy"] == 1.0 and first["balanced_accuracy"] == 1.0
    assert second["accuracy"] == pytest.approx(0.5)
    # Channel 1 recalls: class 0 1/2, class 1 1/1, class 2 0/1 → balanced accuracy 1/2.
    assert second["balanced_accuracy"] == pytest.approx(0.5)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["balanced_accuracy"] == pytest.approx(0.75)
    assert np.array(metrics["confusion_matrix"]).sum() == 8


def test_regression_by_hand():
    metrics = compute_metrics("regression", np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 5.0]))
    # Errors .5 0 1 1 → MAE 2.5/4; MSE 2.25/4 → RMSE .75; SS_tot = 2.25+.25+.25+2.25 = 5 → R² = 1 - 2.25/5.
    assert metrics["mae"] == pytest.approx(0.625)
    assert metrics["rmse"] == pytest.approx(0.75)
    assert metrics["r2"] == pytest.approx(0.55)


def test_regression_multi_output_with_constant_target():
    # (N, L, K) = (2, 2, 2): output 0 varies, output 1 is constant (R² undefined).
    y_true = np.array([[[1.0, 5.0], [2.0, 5.0]], [[3.0, 5.0], [4.0, 5.0]]])
    y_pred = np.array([[[1.5, 5.0], [2.0, 5.0]], [[2.0, 5.0], [5.0, 6.0]]])
    metrics = compute_metrics("regression", y_true, y_pred, label_names=["angle", "force"])
    angle, force = metrics["per_output"]
    assert angle["r2"] == pytest.approx(0.55) and angle["mae"] == pytest.approx(0.625)
    assert force["r2"] is None and force["mae"] == pytest.approx(0.25)
    assert metrics["r2"] == pytest.approx(0.55)  # the mean over defined outputs
    assert metrics["mae"] == pytest.approx((2.5 + 1.0) / 8)
    assert any("force" in note for note in metrics["notes"])


@pytest.mark.parametrize(
    ("task", "y_true", "y_score"),
    [
        ("bc", np.zeros(3), np.zeros((4, 2))),
        ("mcc", np.array([0, 5]), np.full((2, 3), 1 / 3)),
        ("mc", np.zeros((3, 2)), np.zeros((3, 3))),
        ("mmc", np.zeros((3, 2)), np.zeros((3, 2))),
        ("regression", np.zeros(3), np.zeros(4)),
        ("segmentation", np.zeros(3), np.zeros(3)),
    ],
)
def test_bad_shapes_and_tasks_raise_value_error(task, y_true, y_score):
    with pytest.raises(ValueError):
        compute_metrics(task, y_true, y_score)


def test_headline_names():
    assert headline_names("mmc")[0] == "balanced_accuracy"
    assert headline_names("regression") == ("mae", "rmse", "r2")


def test_classes_never_predicted_are_named_in_the_right_number():
    # evaluate printed "note: windows: class(es) 1 are never predicted: their precision is undefined (null)".
    y_true = np.array([0, 1, 2, 0, 1, 2])
    one_missing = np.eye(3)[[0, 0, 2, 0, 2, 2]]  # b never predicted
    two_missing = np.eye(3)[[0, 0, 0, 0, 0, 0]]  # b and c never predicted
    notes = compute_metrics("mcc", y_true, one_missing, label_names=["a", "b", "c"])["notes"]
    assert "class b is never predicted: its precision is undefined (null)" in notes
    notes = compute_metrics("mcc", y_true, two_missing, label_names=["a", "b", "c"])["notes"]
    assert "classes b, c are never predicted: their precision is undefined (null)" in notes
