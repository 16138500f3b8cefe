"""Plots: every PNG is written, is a valid PNG of a sensible size, and pyplot is never needed."""

from __future__ import annotations

import json
import struct
import sys

import numpy as np

from biofound_cli.evaluation.plots import plot_evaluation
from biofound_cli.metrics import compute_metrics
from biofound_cli.training.curves import plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path, min_bytes: int = 5000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 200 and height >= 200, (path, width, height)
    assert len(data) >= min_bytes, (path, len(data))
    assert data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"), path


def test_multiclass_plots(tmp_path):
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 60)
    probabilities = rng.dirichlet([1, 1, 1], 60)
    metrics = compute_metrics("mcc", y_true, probabilities, ["bckg", "slow", "seiz"])
    paths = plot_evaluation("mcc", y_true, probabilities, metrics, tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        ["roc.png", "pr.png", "confusion.png", "confusion_normalized.png", "per_class.png"]
    )
    for path in paths:
        assert_valid_png(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files left


def test_channel_task_plots_pool_channels(tmp_path):
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, (30, 4))
    y_score = rng.random((30, 4))
    paths = plot_evaluation("mc", y_true, y_score, compute_metrics("mc", y_true, y_score), tmp_path)
    assert len(paths) == 5
    for path in paths:
        assert_valid_png(path)


def test_binary_plots_with_a_single_class_present(tmp_path):
    y_true = np.zeros(10, dtype=int)
    p1 = np.linspace(0, 1, 10)
    probabilities = np.stack([1 - p1, p1], axis=1)
    paths = plot_evaluation("bc", y_true, probabilities, compute_metrics("bc", y_true, probabilities), tmp_path)
    for path in paths:
        assert_valid_png(path, min_bytes=3000)


def test_pr_curve_of_the_only_class_present_is_undefined_like_its_aupr():
    # Every target is class 1: the PR curve would sit at precision 1 for any scores (AUPR 1.000).
    from biofound_cli.evaluation.plots import pr_figure

    p1 = np.array([0.1, 0.2, 0.3])
    figure = pr_figure(np.ones(3, dtype=int), np.stack([1 - p1, p1], axis=1), ["normal", "abnormal"])
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["abnormal: AUPR n/a (one class only)"]


def test_a_class_absent_from_the_split_is_named_absent_in_both_curve_legends():
    # Two of three classes present: the ROC legend called the third "one class only", the PR one "absent".
    from biofound_cli.evaluation.plots import pr_figure, roc_figure

    y_true = np.array([0, 1, 0, 1])
    probabilities = np.full((4, 3), 1 / 3)
    names = ["rest", "fist", "pinch"]
    roc = [text.get_text() for text in roc_figure(y_true, probabilities, names).axes[0].get_legend().get_texts()]
    pr = [text.get_text() for text in pr_figure(y_true, probabilities, names).axes[0].get_legend().get_texts()]
    assert roc[-1] == "pinch: AUROC n/a (absent)" and pr[-1] == "pinch: AUPR n/a (absent)"


def test_a_class_without_a_curve_is_listed_after_the_curves_and_takes_no_other_class_colour():
    # The n/a line of an absent first class was drawn amid the curves, in the legend's middle; each class kept its
    # colour only because that empty line used one up. Now the n/a lines follow the curves, each class in its colour.
    from matplotlib.colors import to_hex

    from biofound_cli.evaluation.plots import pr_figure, roc_figure

    y_true = np.array([1, 2, 1, 2])
    probabilities = np.array([[0.2, 0.5, 0.3], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3], [0.1, 0.2, 0.7]])
    names = ["rest", "fist", "pinch"]
    for figure, metric in (
        (roc_figure(y_true, probabilities, names), "AUROC"),
        (pr_figure(y_true, probabilities, names), "AUPR"),
    ):
        legend = figure.axes[0].get_legend()
        texts = [text.get_text() for text in legend.get_texts()]
        assert texts[-3:-1] == [f"fist ({metric} 1.000)", f"pinch ({metric} 1.000)"], texts
        assert texts[-1] == f"rest: {metric} n/a (absent)"
        colours = [to_hex(handle.get_color()) for handle in legend.legend_handles[-3:]]
        assert colours == [to_hex(f"C{position}") for position in (1, 2, 0)]


def test_regression_plot(tmp_path):
    rng = np.random.default_rng(2)
    y_true = rng.normal(size=(20, 5, 2))
    paths = plot_evaluation("regression", y_true, y_true + rng.normal(0, 0.1, y_true.shape), {}, tmp_path)
    assert [p.name for p in paths] == ["regression.png"]
    assert_valid_png(paths[0])


def test_training_curves_from_jsonl(tmp_path):
    metrics_path = tmp_path / "metrics.jsonl"
    lines = []
    for step in range(0, 40, 2):
        lines.append(json.dumps({"step": step, "train_loss": 1.0 / (step + 1), "lr": 1e-4}))
        if step % 10 == 0:
            lines.append(json.dumps({"step": step, "val_loss": 1.1 / (step + 1), "val_balanced_accuracy": 0.5 + step / 100}))
    lines.append('{"step": 40, "train_lo')  # a run killed mid-write leaves a partial last line
    metrics_path.write_text("\n".join(lines) + "\n")
    out = plot_training_curves(metrics_path, tmp_path / "plots" / "training.png")
    assert_valid_png(out)


def test_training_curves_without_validation_metric(tmp_path):
    metrics_path = tmp_path / "metrics.jsonl"
    metrics_path.write_text("".join(json.dumps({"step": s, "loss": 2.0 - s / 10}) + "\n" for s in range(10)))
    assert_valid_png(plot_training_curves(metrics_path, tmp_path / "training.png"))


def test_plots_do_not_import_pyplot(tmp_path):
    # A notebook's pyplot backend must not be switched by a library call.
    y_true = np.array([0, 1, 0, 1])
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6]])
    had_pyplot = "matplotlib.pyplot" in sys.modules
    plot_evaluation("bc", y_true, probabilities, compute_metrics("bc", y_true, probabilities), tmp_path)
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot


def test_training_series_keeps_splits_apart():
    from biofound_cli.training.curves import training_series

    records = [
        {"split": "train", "step": 10, "epoch": 0, "loss": 0.9, "lr": 1e-4},
        {"split": "val", "step": 10, "epoch": 0, "loss": 1.1, "balanced_accuracy": 0.6},
        {"split": "train", "step": 20, "epoch": 0, "loss": 0.7, "lr": 2e-4},
        {"split": "val", "step": 20, "val_loss": 1.0, "val_balanced_accuracy": 0.7},
        {"split": "train", "step": 30, "loss": float("nan")},
    ]
    x_key, series = training_series(records)
    assert x_key == "step"
    assert series["train_loss"] == ([10.0, 20.0], [0.9, 0.7])
    assert series["val_loss"] == ([10.0, 20.0], [1.1, 1.0])
    assert series["val_balanced_accuracy"] == ([10.0, 20.0], [0.6, 0.7])
    assert series["train_lr"] == ([10.0, 20.0], [1e-4, 2e-4])


def test_every_evaluation_title_names_model_split_and_count():
    from biofound_cli.evaluation.plots import evaluation_figures

    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 3, 40)
    probabilities = rng.dirichlet([1, 1, 1], 40)
    metrics = compute_metrics("mcc", y_true, probabilities)
    figures = evaluation_figures("mcc", y_true, probabilities, metrics, model="tinymyo", split="test")
    assert set(figures) == {"roc.png", "pr.png", "confusion.png", "confusion_normalized.png", "per_class.png"}
    for name, figure in figures.items():
        title = figure.axes[0].get_title()
        assert "tinymyo" in title and "test split" in title and "40 windows" in title, (name, title)
    channel_true, channel_score = rng.integers(0, 2, (10, 4)), rng.random((10, 4))
    pooled = evaluation_figures(
        "mc", channel_true, channel_score, compute_metrics("mc", channel_true, channel_score), split="test"
    )
    assert "40 channel-windows" in pooled["roc.png"].axes[0].get_title()


def test_overlapping_roc_curves_differ_in_line_style_and_marker():
    from biofound_cli.evaluation.plots import roc_figure

    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 4, 80)
    figure = roc_figure(y_true, rng.dirichlet([1, 1, 1, 1], 80), ["a", "b", "c", "d"])
    curves = [line for line in figure.axes[0].lines if "AUROC" in line.get_label() and "chance" not in line.get_label()]
    assert len(curves) == 4
    assert len({(line.get_linestyle(), line.get_marker()) for line in curves}) == 4
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert all(any(text.startswith(f"{name} (AUROC ") for text in legend) for name in "abcd")


def test_per_class_bars_carry_their_values_and_zero_stays_visible():
    from biofound_cli.evaluation.plots import MIN_VISIBLE_BAR, per_class_figure

    per_class = [
        {"label": "rest", "precision": 0.75, "recall": 1.0, "f1": 0.857},
        {"label": "fist", "precision": None, "recall": 0.0, "f1": 0.0},
    ]
    axes = per_class_figure(per_class).axes[0]
    labels = [text.get_text() for text in axes.texts]
    assert labels.count("0.00") == 2 and "n/a" in labels and "0.75" in labels and "1.00" in labels
    heights = [patch.get_height() for patch in axes.patches]
    assert min(h for h in heights if np.isfinite(h)) == MIN_VISIBLE_BAR


def test_training_curve_marks_the_best_checkpoint_and_averages_each_epoch():
    from biofound_cli.training.curves import training_curves_figure

    records = []
    for step in range(1, 13):
        records.append({"split": "train", "step": step, "epoch": (step - 1) // 4, "loss": 1.0 / step})
        if step % 4 == 0:
            records.append(
                {
                    "split": "val",
                    "step": step,
                    "epoch": (step - 1) // 4,
                    "val_loss": 0.5 / step,
                    "val_balanced_accuracy": step / 20,
                }
            )
    figure = training_curves_figure(records, best_step=8, title="tiny: tinymyo finetune")
    assert figure.get_suptitle() == "tiny: tinymyo finetune"
    assert len(figure.axes) == 2
    for axes in figure.axes:
        marker = [line for line in axes.lines if line.get_label() == "best checkpoint (step 8)"]
        assert len(marker) == 1 and list(marker[0].get_xdata()) == [8, 8]
    means = [line for line in figure.axes[0].lines if line.get_label() == "train_loss (epoch mean of logged steps)"][0]
    np.testing.assert_allclose(means.get_xdata(), [2.5, 6.5, 10.5])
    np.testing.assert_allclose(means.get_ydata()[0], np.mean([1, 1 / 2, 1 / 3, 1 / 4]))
    assert any(line.get_label() == "train_loss (logged steps)" for line in figure.axes[0].lines)


def test_channel_curves_say_they_pool_and_give_the_headline_mean_beside_them():
    # Each channel ranks its windows perfectly, on its own scale: the headline (the mean of the channels'
    # AUROCs) is 1 while the pooled curve's is 0.75, and the legend gave 0.75 alone as "AUROC".
    from biofound_cli.evaluation.plots import evaluation_figures

    y_true = np.tile([[0, 0], [1, 1]], (5, 1))
    y_score = 0.1 + 0.2 * y_true + np.array([0.0, 0.5])
    metrics = compute_metrics("mc", y_true, y_score)
    assert metrics["auroc"] == metrics["aupr"] == 1.0
    figures = evaluation_figures("mc", y_true, y_score, metrics)
    legends = {
        name: [text.get_text() for text in figures[name].axes[0].get_legend().get_texts()] for name in ("roc.png", "pr.png")
    }
    assert legends["roc.png"][1:] == ["1 (pooled AUROC 0.750)", "headline: mean over 2 channels, AUROC 1.000"]
    assert legends["pr.png"][-1] == "headline: mean over 2 channels, AUPR 1.000" and "pooled AUPR" in legends["pr.png"][0]


def _overlaps(figure) -> list[str]:
    """What overlaps once the figure is laid out as saved: two upright class names of the x axis, or the legend and one."""
    from itertools import pairwise

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    axes = figure.axes[0]
    names = [(label.get_text(), label.get_window_extent(renderer), label.get_rotation()) for label in axes.get_xticklabels()]
    upright = [(a, b) for (a, box, turn), (b, other, _) in pairwise(names) if turn == 0 and box.overlaps(other)]
    legends = [legend.get_window_extent(renderer) for legend in [*figure.legends, axes.get_legend()] if legend]
    covered = [("legend", name) for legend in legends for name, box, _ in names if legend.overlaps(box)]
    return [f"{a} / {b}" for a, b in upright + covered]


def test_class_names_of_a_few_long_gestures_do_not_overlap_and_short_ones_stay_upright() -> None:
    # UCI EMG's six gestures ("hand clenched in a fist") were written upright and ran into each other
    # under per_class.png's bars: names turned only past 6 classes, whatever their length.
    from biofound_cli.corpora.uci_emg import GESTURE_NAMES
    from biofound_cli.evaluation.plots import confusion_figure, per_class_figure

    def per_class(names):
        return per_class_figure([{"label": name, "precision": 0.5, "recall": 0.5, "f1": 0.5} for name in names])

    long_names = GESTURE_NAMES[:6]
    for figure in (per_class(long_names), confusion_figure(np.eye(6, dtype=int), long_names)):
        assert _overlaps(figure) == []
    for figure in (per_class(["rest", "fist"]), confusion_figure(np.eye(6, dtype=int), list("abcdef"))):
        assert {label.get_rotation() for label in figure.axes[0].get_xticklabels()} == {0.0}
