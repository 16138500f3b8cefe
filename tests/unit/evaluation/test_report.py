"""The report: per-recording aggregation, seeded bootstrap intervals, reproducible JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from biofound_cli.atomic import strict_json
from biofound_cli.evaluation.report import (
    aggregate_recordings,
    bootstrap_intervals,
    build_report,
    write_report,
)


def _random_split(seed: int = 0, n_recordings: int = 12, windows_per_recording: int = 5):
    rng = np.random.default_rng(seed)
    recording_label = rng.integers(0, 2, n_recordings)
    recording_index = np.repeat(np.arange(n_recordings), windows_per_recording)
    y_true = recording_label[recording_index]
    # Informative but noisy probabilities of class 1.
    p1 = np.clip(0.3 + 0.4 * y_true + rng.normal(0, 0.25, y_true.size), 0, 1)
    return y_true, np.stack([1 - p1, p1], axis=1), recording_index


def test_aggregate_recordings_by_hand():
    # Recording 5: two windows, labels 1 1; recording 2: three windows, labels 0 0 1 (mixed);
    # recording 9: one window. Output rows are in increasing recording id: 2, 5, 9.
    recording_index = np.array([5, 5, 2, 2, 2, 9])
    y_true = np.array([1, 1, 0, 0, 1, 0])
    p1 = np.array([0.8, 0.6, 0.1, 0.2, 0.6, 0.3])
    y_score = np.stack([1 - p1, p1], axis=1)
    true_rec, score_rec, ids, n_mixed = aggregate_recordings("bc", y_true, y_score, recording_index)
    assert ids.tolist() == [2, 5, 9]
    assert true_rec.tolist() == [0, 1, 0]
    np.testing.assert_allclose(score_rec[:, 1], [0.3, 0.7, 0.3])
    np.testing.assert_allclose(score_rec.sum(axis=1), 1.0)
    assert n_mixed == 1


def test_aggregate_channel_labels_and_regression():
    recording_index = np.array([0, 0, 1])
    y_true = np.array([[1, 0], [1, 1], [0, 0]])
    score = np.array([[0.9, 0.2], [0.7, 0.6], [0.1, 0.1]])
    true_rec, score_rec, _, n_mixed = aggregate_recordings("mc", y_true, score, recording_index)
    # Channel 1 of recording 0 ties (0 and 1): the smaller label wins.
    assert true_rec.tolist() == [[1, 0], [0, 0]]
    np.testing.assert_allclose(score_rec, [[0.8, 0.4], [0.1, 0.1]])
    assert n_mixed == 1
    true_rec, pred_rec, _, _ = aggregate_recordings(
        "regression", np.array([1.0, 3.0, 5.0]), np.array([2.0, 2.0, 4.0]), recording_index
    )
    np.testing.assert_allclose(true_rec, [2.0, 5.0])
    np.testing.assert_allclose(pred_rec, [2.0, 4.0])


def test_recording_metrics_in_report():
    # Recording 0 (label 1) has window probabilities .4 and .8 → mean .6 → predicted 1, although one
    # of its windows alone is predicted 0. Recording 1 (label 0): .3 → 0. Recordings are all correct.
    y_true = np.array([1, 1, 0])
    p1 = np.array([0.4, 0.8, 0.3])
    report = build_report(
        "bc",
        y_true,
        np.stack([1 - p1, p1], axis=1),
        recording_index=np.array([0, 0, 1]),
        recording_names=["subject7_s1", "subject8_s1"],
    )
    assert report["windows"]["accuracy"] == pytest.approx(2 / 3)
    assert report["recordings"]["metrics"]["accuracy"] == 1.0
    assert report["recordings"]["ids"] == ["subject7_s1", "subject8_s1"]
    assert report["headline"]["recordings"]["balanced_accuracy"] == 1.0
    assert report["bootstrap"] is None


def test_bootstrap_is_deterministic_with_a_seed():
    y_true, y_score, _ = _random_split()
    first = bootstrap_intervals("bc", y_true, y_score, n_bootstrap=40, seed=7)
    second = bootstrap_intervals("bc", y_true, y_score, n_bootstrap=40, seed=7)
    other = bootstrap_intervals("bc", y_true, y_score, n_bootstrap=40, seed=8)
    assert first == second
    assert first != other
    for name, interval in first["intervals"].items():
        assert interval["n_valid"] == 40, name
        assert interval["low"] <= interval["high"]
    accuracy = first["intervals"]["accuracy"]
    assert 0.0 <= accuracy["low"] <= accuracy["high"] <= 1.0
    assert first["unit"] == "window"


def test_cluster_bootstrap_resamples_recordings():
    y_true, y_score, recording_index = _random_split()
    calls = []
    result = bootstrap_intervals(
        "bc", y_true, y_score, n_bootstrap=10, seed=0, groups=recording_index, on_replicate=lambda: calls.append(1)
    )
    assert result["unit"] == "recording"
    assert len(calls) == 10


def test_bootstrap_counts_undefined_resamples():
    # One positive among many negatives: some resamples miss it and have no AUROC.
    y_true = np.array([1] + [0] * 9)
    p1 = np.linspace(0.9, 0.0, 10)
    result = bootstrap_intervals("bc", y_true, np.stack([1 - p1, p1], axis=1), n_bootstrap=50, seed=3)
    assert 0 < result["intervals"]["auroc"]["n_valid"] < 50
    assert result["intervals"]["accuracy"]["n_valid"] == 50


def test_bootstrap_rejects_bad_arguments():
    y_true, y_score, _ = _random_split()
    with pytest.raises(ValueError):
        bootstrap_intervals("bc", y_true, y_score, n_bootstrap=0, seed=0)
    with pytest.raises(ValueError):
        bootstrap_intervals("bc", y_true, y_score, n_bootstrap=5, seed=0, confidence=1.5)


def test_report_json_is_identical_across_runs(tmp_path):
    y_true, y_score, recording_index = _random_split()
    paths = []
    for run in range(2):
        report = build_report(
            "bc",
            y_true,
            y_score,
            label_names=["normal", "abnormal"],
            recording_index=recording_index,
            n_bootstrap=20,
            seed=11,
            metadata={"checkpoint": "runs/demo/best.safetensors", "split": "test"},
        )
        paths.append(write_report(report, tmp_path / f"run{run}" / "report.json"))
    first, second = (path.read_bytes() for path in paths)
    assert first == second
    loaded = json.loads(first)
    assert loaded["task"] == "bc"
    assert loaded["source"]["split"] == "test"
    assert set(loaded["bootstrap"]) == {"windows", "recordings"}
    assert loaded["bootstrap"]["windows"]["unit"] == "recording"
    assert any("softmax probability of class 1" in note for note in loaded["notes"])
    # Nothing but report.json is left in the folder (the temporary file was renamed).
    assert sorted(p.name for p in (tmp_path / "run0").iterdir()) == ["report.json"]


def test_report_json_is_strict_when_metrics_are_undefined():
    y_true = np.zeros(3, dtype=int)
    report = build_report("bc", y_true, np.full((3, 2), 0.5), n_bootstrap=3, seed=0)
    text = strict_json(report)
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert report["windows"]["auroc"] is None
    assert report["bootstrap"]["windows"]["intervals"]["auroc"] == {"low": None, "high": None, "n_valid": 0}


def test_regression_report_headline():
    report = build_report("regression", np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 5.0]))
    assert report["headline"]["windows"] == pytest.approx({"mae": 0.625, "rmse": 0.75, "r2": 0.55})
