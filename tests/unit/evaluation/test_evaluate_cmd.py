"""``biofound evaluate`` end to end on a tiny TinyMyo and a hand-made packed split."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fixtures.eval_split import N_CHANNELS, N_CLASSES, TINY, write_checkpoint, write_packed
from fixtures.official import official_release
from fixtures.packed import toml_table
from fixtures.process_group import biofound
from fixtures.small_disk import run_on_a_small_disk
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


@pytest.fixture
def project(tmp_path):
    packed = write_packed(tmp_path / "test.h5")
    run = tmp_path / "runs" / "tiny"
    write_checkpoint(run / "checkpoints" / "best" / "model.safetensors")
    (run / "metrics.jsonl").write_text(
        "".join(json.dumps({"split": "train", "step": s, "loss": 1.0 / (s + 1)}) + "\n" for s in range(5))
    )
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        f'name = "tiny"\n[data]\ntest = "{packed}"\nbatch_size = 5\n'
        f'[output]\nruns_dir = "{tmp_path / "runs"}"\n[train]\ndevice = "cpu"\n'
    )
    return tmp_path, recipe


def test_evaluate_writes_report_plots_and_summary(project):
    tmp_path, recipe = project
    result = runner.invoke(app, ["evaluate", str(recipe), "--bootstrap", "5", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    out_dir = tmp_path / "runs" / "tiny" / "eval" / "test"
    assert summary["report"] == str(out_dir / "report.json")
    assert summary["windows"] == 12 and summary["recordings"] == 4
    report = json.loads((out_dir / "report.json").read_text())
    assert report["task"] == "mcc"
    assert report["windows"]["label_names"] == ["gesture0", "gesture1", "gesture2"]
    assert report["recordings"]["ids"] == ["rec0", "rec1", "rec2", "rec3"]
    assert report["bootstrap"]["windows"]["n_bootstrap"] == 5
    for name in ("roc.png", "pr.png", "confusion.png", "confusion_normalized.png", "per_class.png"):
        assert (out_dir / name).read_bytes()[:4] == b"\x89PNG", name
    # The training curve is training's to draw (train_curve.png in the run folder), never a second copy here.
    assert not list(out_dir.glob("*curve*"))


def test_a_run_without_plots_removes_the_plots_of_an_earlier_run_and_nothing_else(project):
    """An earlier run's PNGs beside a --no-plots report.json passed for this run's plots."""
    tmp_path, recipe = project
    out = tmp_path / "eval"
    first = runner.invoke(app, ["evaluate", str(recipe), "--out", str(out), "--json"])
    assert first.exit_code == 0, first.output
    drawn = [Path(path) for path in json.loads(first.stdout.strip().splitlines()[-1])["plots"]]
    assert len(drawn) == 5 and all(path.read_bytes()[:4] == b"\x89PNG" for path in drawn)
    # A user's files, a PNG among them, are not evaluate's to remove.
    (out / "notes.txt").write_text("mine")
    (out / "slide.png").write_bytes(drawn[0].read_bytes())

    second = runner.invoke(app, ["evaluate", str(recipe), "--out", str(out), "--no-plots", "--json"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout.strip().splitlines()[-1])["plots"] == []
    assert sorted(path.name for path in out.iterdir()) == ["notes.txt", "report.json", "slide.png"]
    assert (out / "notes.txt").read_text() == "mine"


def test_a_sigterm_as_the_report_moves_in_is_no_stop_and_the_earlier_plots_go(project, monkeypatch):
    """Stopped as report.json moved in, the run ended with 143 ("report.json and the plots may be missing or
    from an earlier run") and left the earlier run's PNGs beside this --no-plots report as if they were its."""
    import os
    import signal

    tmp_path, recipe = project
    out = tmp_path / "eval"
    assert runner.invoke(app, ["evaluate", str(recipe), "--out", str(out)]).exit_code == 0
    replace = os.replace

    def sigterm_once_the_report_is_in(source, target):
        replace(source, target)
        if Path(target) == out / "report.json":  # moved in, not written in the staging folder
            os.kill(os.getpid(), signal.SIGTERM)  # its handler runs at the next bytecode

    monkeypatch.setattr(os, "replace", sigterm_once_the_report_is_in)
    result = runner.invoke(app, ["evaluate", str(recipe), "--out", str(out), "--no-plots", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["plots"] == []
    assert sorted(path.name for path in out.iterdir()) == ["report.json"]
    assert "SIGTERM came as the work finished: it is complete" in result.output


def test_the_report_moves_in_after_every_plot_whatever_the_files_times(project, monkeypatch):
    """The files moved in by their modification times: a plot stamped after the report (a clock stepped, a coarse
    file system) moved in after it, so a reader that found this run's report.json could read an earlier run's plot."""
    import os

    import biofound_cli.evaluation.plots as plots

    tmp_path, recipe = project
    out = tmp_path / "eval"
    draw = plots.plot_evaluation

    def drawn_with_a_later_time(*args, **kwargs):
        written = draw(*args, **kwargs)
        later = written[0].stat().st_mtime_ns + 10**9 * 3600
        os.utime(written[0], ns=(later, later))
        return written

    moved_in: list[str] = []
    replace = os.replace

    def noted(source, target):
        replace(source, target)
        if Path(target).parent == out:
            moved_in.append(Path(target).name)

    monkeypatch.setattr(plots, "plot_evaluation", drawn_with_a_later_time)
    monkeypatch.setattr(os, "replace", noted)
    result = runner.invoke(app, ["evaluate", str(recipe), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert len(moved_in) > 1 and moved_in[-1] == "report.json", moved_in


def test_the_staging_folder_of_an_evaluate_killed_on_another_machine_is_removed_by_the_next(project):
    # evaluate removed only its own machine's dead processes' staging folders, though it holds --out: one left by an
    # evaluate killed on another node (the out-of-memory killer, a requeue elsewhere) stayed for good.
    tmp_path, recipe = project
    out = tmp_path / "eval"
    left = out / ".staging-evaluate.node99.4242.0123abcd.tmp"
    left.mkdir(parents=True)
    (left / "roc.png").write_bytes(b"half a plot")

    result = runner.invoke(app, ["evaluate", str(recipe), "--out", str(out), "--no-plots"])

    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == ["report.json"]


def test_an_export_into_the_folder_of_a_running_evaluate_leaves_its_staging_folder_alone(project, monkeypatch):
    # export removed every staging folder in its --out, whoever's: one of an evaluate running into the same folder
    # (it holds another lock) went from under it, and the evaluate failed as its files moved in.
    import biofound_cli.evaluation.plots as plots
    from biofound_cli.export import export_checkpoint

    tmp_path, recipe = project
    out = tmp_path / "eval"
    draw = plots.plot_evaluation

    def drawn_as_an_export_starts(*args, **kwargs):
        written = draw(*args, **kwargs)
        export_checkpoint(tmp_path / "runs" / "tiny" / "checkpoints" / "best", "safetensors", out)
        return written

    monkeypatch.setattr(plots, "plot_evaluation", drawn_as_an_export_starts)
    result = runner.invoke(app, ["evaluate", str(recipe), "--out", str(out)])

    assert result.exit_code == 0, result.output
    names = {path.name for path in out.iterdir()}
    assert {"report.json", "roc.png", "model.safetensors", "config.json"} <= names, names
    assert not [name for name in names if name.startswith(".staging")]


def test_the_report_says_the_window_length_the_split_was_scored_in(project):
    """sfreq and channels alone leave a reader to guess the window a number was measured on."""
    tmp_path, recipe = project
    result = runner.invoke(app, ["evaluate", str(recipe), "--no-plots", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(Path(json.loads(result.stdout.strip().splitlines()[-1])["report"]).read_text())
    source = report["source"]
    assert (source["sfreq"], source["n_times"], source["window_seconds"]) == (2000.0, 40, 0.02)


def test_a_split_of_one_recording_reports_no_recording_level_score_of_any_class(project, monkeypatch):
    # The recording-level scalars were null ("one recording is simply right or wrong") beside a per-class precision,
    # recall and F1 of 1.0 or 0.0 for the same one recording.
    from biofound_cli.evaluation import plots

    tmp_path, recipe = project
    write_packed(tmp_path / "test.h5", n_recordings=1)
    drawn = []
    bars = plots.per_class_figure
    monkeypatch.setattr(
        plots, "per_class_figure", lambda per_class, title: drawn.append((per_class, title)) or bars(per_class, title)
    )
    result = runner.invoke(app, ["evaluate", str(recipe), "--bootstrap", "5", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "runs" / "tiny" / "eval" / "test" / "report.json").read_text())
    recordings = report["recordings"]["metrics"]
    assert recordings["balanced_accuracy"] is None and report["headline"]["recordings"]["balanced_accuracy"] is None
    for entry in recordings["per_class"]:
        assert [entry[key] for key in ("precision", "recall", "f1", "auroc", "aupr")] == [None] * 5, entry
    assert sum(entry["support"] for entry in recordings["per_class"]) == 1 == sum(map(sum, recordings["confusion_matrix"]))
    assert any("undefined (null), each class's too (the counts are kept)" in note for note in report["notes"]), report["notes"]
    # The per-class PNG shows the windows' numbers, and says so.
    [(per_class, title)] = drawn
    assert per_class == report["windows"]["per_class"] and "windows" in title, title


def test_evaluate_is_deterministic(project):
    tmp_path, recipe = project
    texts = []
    for run in range(2):
        out = tmp_path / f"out{run}"
        result = runner.invoke(app, ["evaluate", str(recipe), "--bootstrap", "3", "--out", str(out), "--no-plots", "-q"])
        assert result.exit_code == 0, result.output
        texts.append((out / "report.json").read_text())
    assert texts[0] == texts[1]


def test_missing_checkpoint_exits_2(project):
    tmp_path, recipe = project
    result = runner.invoke(app, ["evaluate", str(recipe), "--checkpoint", str(tmp_path / "nope.safetensors")])
    assert result.exit_code == 2
    assert "nope.safetensors" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("given", ["runs/tiny/checkpoints/best", "runs/tiny"])
def test_a_checkpoint_or_run_folder_is_evaluated_as_its_weights_file(project, given):
    # docs/evaluate.md: --checkpoint takes a checkpoint folder holding model.safetensors, or a run
    # folder (its best); a folder used to be scored, then fail hashing (exit 2, "is a folder where a file is needed").
    tmp_path, recipe = project
    folder = tmp_path / given
    result = runner.invoke(app, ["evaluate", str(recipe), "--checkpoint", str(folder), "--no-plots", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["checkpoint"] == str(tmp_path / "runs" / "tiny" / "checkpoints" / "best" / "model.safetensors")
    report = json.loads(Path(summary["report"]).read_text())
    assert report["source"]["checkpoint_sha256"]


def test_no_best_checkpoint_exits_2(project):
    tmp_path, recipe = project
    result = runner.invoke(app, ["evaluate", str(recipe), "--set", "output.run_name=other"])
    assert result.exit_code == 2
    assert "no best checkpoint" in result.output


def test_a_pretraining_checkpoint_is_sent_to_fine_tune_with_the_users_recipe(project):
    # The refusal said `biofound finetune RECIPE`, literally, and a fine-tuning without model.checkpoint
    # would not have started from these weights.
    from fixtures.export_models import save_small

    tmp_path, recipe = project
    pretrained = save_small(tmp_path / "pre" / "model.safetensors", "tinymyo", task="reconstruction", num_classes=None)
    result = runner.invoke(app, ["evaluate", str(recipe), "-c", str(pretrained), "--no-progress"])
    assert result.exit_code == 2 and "holds a pre-training model" in result.output
    assert f"(`biofound finetune {recipe} --set model.checkpoint={pretrained}`)" in " ".join(result.output.split())


def test_a_multi_class_head_of_one_output_is_refused_naming_num_classes(tmp_path):
    # Trained before finetune refused it: scored as a single-logit binary head, it reported a class 1
    # that a split of one class does not have.
    from biofound_cli.models import save_checkpoint
    from biofound_cli.models.registry import FAMILIES, build_model

    kwargs = {**TINY, "num_classes": 1, **FAMILIES["tinymyo"].task_kwargs("mcc", 1)}
    checkpoint = save_checkpoint(
        build_model("tinymyo", kwargs),
        tmp_path / "model.safetensors",
        variant=None,
        model_name="TinyMyo",
        constructor_kwargs=kwargs,
        extra_metadata={"task": "mcc", "transform": "none"},
    )
    packed = write_packed(tmp_path / "test.h5", num_classes=1)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[data]\ntest = "{packed}"\nnum_workers = 2\n[train]\ndevice = "cpu"\n')
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(recipe), "-c", str(checkpoint), "-o", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert f"{checkpoint}: its head cannot tell classes apart: a head of task 'mcc'" in " ".join(result.output.split())
    assert "num_classes must be at least 2, got 1" in " ".join(result.output.split())
    assert not out.exists()


def test_a_split_pack_left_empty_is_refused_without_training_advice(project):
    # pack writes no val.h5 for a split it left empty; evaluate --split val passed on training's
    # "(--unset data.val trains without validation)".
    from biofound_cli.store.splits import MANIFEST_NAME, MANIFEST_VERSION

    tmp_path, recipe = project
    windows = {"train": 24, "val": 0, "test": 12}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"schema_version": MANIFEST_VERSION, "windows": windows}))
    args = ["evaluate", str(recipe), "--split", "val", "--set", f"data.val={tmp_path / 'val.h5'}", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    error = " ".join(result.output.split())
    assert "pack left split 'val' empty, so it wrote no file" in error and error.endswith("or leave this split out")
    assert not (tmp_path / "runs" / "tiny" / "eval" / "val").exists()


def test_task_mismatch_exits_2(project):
    tmp_path, recipe = project
    write_packed(tmp_path / "regression.h5", task="regression", num_classes=0)
    result = runner.invoke(app, ["evaluate", str(recipe), "--set", f"data.test={tmp_path / 'regression.h5'}"])
    assert result.exit_code == 2
    assert "regression" in result.output and "mcc head" in result.output


@pytest.mark.parametrize("outputs, loss", [(2, "auto"), (1, "bce")])
def test_a_binary_head_on_a_split_packed_as_mcc_is_scored_as_the_binary_head_it_is(project, outputs, loss):
    # finetune trains model.task = "bc" on two classes the edf reader packs as mcc; evaluate scored that
    # checkpoint as mcc and said so, and refused the single-logit head ("the split has 2 classes but the head
    # gives 1"). The head decides what its outputs mean, as in training's validation.
    tmp_path, recipe = project
    write_packed(tmp_path / "two.h5", task="mcc", num_classes=2)
    checkpoint = write_checkpoint(tmp_path / "bc" / "model.safetensors", task="bc", num_classes=outputs)
    args = ["evaluate", str(recipe), "-c", str(checkpoint), "--set", f"data.test={tmp_path / 'two.h5'}", "--no-plots"]
    result = runner.invoke(app, [*args, "--set", f"train.loss={loss}", "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["task"] == "bc"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["task"] == "bc" and report["windows"]["label_names"] == ["gesture0", "gesture1"]


@pytest.mark.parametrize("steps, outputs", [(1, 1), (2, 3)])
def test_regression_is_scored_with_what_sklearn_computes_on_its_predictions(project, steps, outputs):
    """Regression end to end through the CLI: the report's numbers are sklearn's on the model's own
    predictions, window and recording level, and its one plot replaces an earlier classification's."""
    from sklearn.metrics import r2_score

    from biofound_cli.models import load

    tmp_path, recipe = project
    split = write_packed(
        tmp_path / "regression.h5", task="regression", num_classes=0, target_shape=(steps, outputs) if outputs > 1 else ()
    )
    checkpoint = write_checkpoint(tmp_path / "reg.safetensors", task="regression", num_classes=outputs, reg_target_len=steps)
    out = tmp_path / "eval"
    assert runner.invoke(app, ["evaluate", str(recipe), "--out", str(out), "-q"]).exit_code == 0
    args = [
        "evaluate",
        str(recipe),
        "-c",
        str(checkpoint),
        "--set",
        f"data.test={split}",
        "--out",
        str(out),
        "--bootstrap",
        "3",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["plots"] == [str(out / "regression.png")]
    assert sorted(path.name for path in out.iterdir()) == ["regression.png", "report.json"]
    assert (out / "regression.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "regression"

    with h5py.File(split) as handle, torch.no_grad():
        predicted = load(checkpoint).eval()(torch.from_numpy(handle["x"][()]))[0].numpy().astype(np.float64)
        true = handle["y"][()].astype(np.float64).reshape(predicted.shape)  # (N, steps, outputs)
        recording_index = handle["recording_index"][()]

    def expected(true: np.ndarray, predicted: np.ndarray) -> list[float]:
        """MAE, RMSE, R² and each output's R²; every step of an output is one sample of it (docs/evaluate.md)."""
        true, predicted = true.reshape(-1, outputs), predicted.reshape(-1, outputs)
        errors = true - predicted
        per_output = r2_score(true, predicted, multioutput="raw_values")
        return [np.abs(errors).mean(), np.sqrt((errors**2).mean()), r2_score(true, predicted), *per_output]

    def reported(metrics: dict) -> list[float]:
        return [metrics["mae"], metrics["rmse"], metrics["r2"], *(entry["r2"] for entry in metrics["per_output"])]

    assert reported(report["windows"]) == pytest.approx(expected(true, predicted), rel=1e-5, abs=1e-6)
    # A recording scores the mean of its windows' predictions against the mean of their targets.
    recordings = np.unique(recording_index)
    means = [np.stack([values[recording_index == r].mean(axis=0) for r in recordings]) for values in (true, predicted)]
    assert reported(report["recordings"]["metrics"]) == pytest.approx(expected(*means), rel=1e-5, abs=1e-6)
    # The loss training's val_loss is (MSE for a regression head, train.loss = "auto").
    mse = float(((true - predicted) ** 2).mean())
    headline = {"loss": pytest.approx(mse, rel=1e-5), **{key: report["windows"][key] for key in ("mae", "rmse", "r2")}}
    assert report["headline"]["windows"] == headline
    assert set(report["bootstrap"]["windows"]["intervals"]) == {"mae", "rmse", "r2"}


@pytest.mark.parametrize(
    ("steps", "outputs", "target_shape", "shapes", "fix"),
    [
        (4, 3, (2, 3), "gives 4 × 3 values per window", "model.overrides.reg_target_len = 2 fits"),
        (2, 2, (2, 3), "gives 2 × 2 values per window", "model.num_classes = 3 fits"),
        (1, 1, (2, 3), "gives 1 × 1 values per window", "model.overrides.reg_target_len = 2 and model.num_classes = 3"),
        (2, 3, (3, 2), "gives 2 × 3 values per window", "model.overrides.reg_target_len = 3 and model.num_classes = 2"),
        (2, 3, (), "gives 2 × 3 values per window", "model.overrides.reg_target_len = 1 and model.num_classes = 1"),
    ],
)
def test_a_regression_head_of_another_shape_is_refused_before_any_window_is_scored(
    project, monkeypatch, steps, outputs, target_shape, shapes, fix
):
    """The head's (T, K) against the split's targets per window: only the first batch's reshape told them
    apart, after the model was loaded and scoring had begun."""
    import biofound_cli.evaluation.predict

    tmp_path, recipe = project
    split = write_packed(tmp_path / "regression.h5", task="regression", num_classes=0, target_shape=target_shape)
    checkpoint = write_checkpoint(tmp_path / "reg.safetensors", task="regression", num_classes=outputs, reg_target_len=steps)

    def no_scoring(*args, **kwargs):
        raise AssertionError("a window was scored")

    monkeypatch.setattr(biofound_cli.evaluation.predict, "predict", no_scoring)
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(recipe), "-c", str(checkpoint), "--set", f"data.test={split}", "-o", str(out)])
    assert result.exit_code == 2, result.output
    target = " × ".join(map(str, target_shape)) or "1"
    assert f"{split}: the head of {checkpoint} {shapes} (model.overrides.reg_target_len × model.num_classes)" in result.output
    assert f"the split's regression targets are {target} per window; a model built with {fix}" in result.output
    assert not out.exists()


@pytest.mark.parametrize(("steps", "outputs", "target_shape"), [(1, 1, (1,)), (1, 3, (3,)), (2, 1, (2,)), (2, 3, (2, 1, 3))])
def test_a_regression_head_fits_targets_of_its_values_up_to_axes_of_one(project, steps, outputs, target_shape):
    """The loss and the metrics reshape the targets to the outputs: only axes of length 1 may differ."""
    tmp_path, recipe = project
    split = write_packed(tmp_path / "regression.h5", task="regression", num_classes=0, target_shape=target_shape)
    checkpoint = write_checkpoint(tmp_path / "reg.safetensors", task="regression", num_classes=outputs, reg_target_len=steps)
    args = ["evaluate", str(recipe), "-c", str(checkpoint), "--set", f"data.test={split}", "-o", str(tmp_path / "eval")]
    result = runner.invoke(app, [*args, "--no-plots", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert len(report["windows"]["per_output"]) == outputs


@pytest.mark.parametrize(
    ("split_names", "checkpoint_names", "expected"),
    [
        (["force", "angle"], None, ["force", "angle"]),
        ([], ["force", "angle"], ["force", "angle"]),
        (["force", "angle"], ["fx", "fy"], ["fx", "fy"]),
        (["only"], ["one"], ["output0", "output1"]),
    ],
)
def test_regression_outputs_are_named_as_the_checkpoint_or_else_the_split_names_them(
    project, split_names, checkpoint_names, expected
):
    """evaluate named them by the split's names first, while predict names its columns by the checkpoint's
    label_names: one model's outputs went by two names. The checkpoint's record says what it outputs."""
    tmp_path, recipe = project
    split = write_packed(
        tmp_path / "regression.h5", task="regression", num_classes=0, target_shape=(3, 2), label_names=split_names
    )
    checkpoint = write_checkpoint(
        tmp_path / "reg.safetensors", task="regression", num_classes=2, reg_target_len=3, label_names=checkpoint_names
    )
    args = ["evaluate", str(recipe), "-c", str(checkpoint), "--set", f"data.test={split}", "-o", str(tmp_path / "eval")]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    differ = "names its targets force, angle but the checkpoint names its outputs fx, fy; they are compared in order"
    assert (differ in " ".join(result.stderr.split())) == (checkpoint_names == ["fx", "fy"]), result.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    for metrics in (report["windows"], report["recordings"]["metrics"]):
        assert metrics["output_names"] == expected
        assert [entry["output"] for entry in metrics["per_output"]] == expected


def test_class_count_mismatch_exits_2(project):
    tmp_path, recipe = project
    write_packed(tmp_path / "five.h5", num_classes=5)
    result = runner.invoke(app, ["evaluate", str(recipe), "--set", f"data.test={tmp_path / 'five.h5'}"])
    assert result.exit_code == 2
    assert "5 classes" in result.output


def test_channel_mismatch_exits_2(project):
    tmp_path, recipe = project
    write_packed(tmp_path / "eight.h5", n_channels=8)
    result = runner.invoke(app, ["evaluate", str(recipe), "--set", f"data.test={tmp_path / 'eight.h5'}"])
    assert result.exit_code == 2
    assert "8 channels" in result.output


def test_a_split_made_by_another_chain_than_the_models_is_named_in_one_warning(tmp_path):
    from biofound_cli.signals.chain import ChainConfig

    chain = {"corpus": "emg-csv", "options": {"sfreq": 2000.0}, **ChainConfig(window_seconds=0.02, units="native").to_json_dict()}
    checkpoint = write_checkpoint(tmp_path / "model.safetensors", preprocessing=chain)
    # Same channels and window length; z-scored, and with another NaN threshold (which decides recordings, not windows).
    other = {**chain, "zscore": True, "max_nan_fraction": 0.1, "options": {"sfreq": 2000.0, "pattern": "x"}}
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(f'name = "tiny"\n[data]\ntest = "{tmp_path / "test.h5"}"\n[train]\ndevice = "cpu"\n')
    command = ["evaluate", str(recipe), "-c", str(checkpoint), "--out", str(tmp_path / "eval"), "--no-progress"]

    write_packed(tmp_path / "test.h5", preprocessing=other)
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "another chain" in line]
    assert len(warnings) == 1 and "zscore False vs True" in warnings[0], result.output
    assert "max_nan_fraction" not in warnings[0] and "pattern" not in warnings[0]

    write_packed(tmp_path / "test.h5", preprocessing={**chain, "max_nan_fraction": 0.1})
    same = runner.invoke(app, command)
    assert same.exit_code == 0 and "another chain" not in same.output, same.output


def test_a_split_of_another_window_length_than_a_chainless_checkpoint_records_is_named_in_one_warning(tmp_path):
    """A checkpoint recording its windows (n_times, sfreq) but no chain was scored on other windows without a word."""
    checkpoint = write_checkpoint(tmp_path / "model.safetensors", windows={"n_times": 40, "sfreq": 2000.0})
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(f'name = "tiny"\n[data]\ntest = "{tmp_path / "test.h5"}"\n[train]\ndevice = "cpu"\n')
    command = ["evaluate", str(recipe), "-c", str(checkpoint), "--out", str(tmp_path / "eval"), "--no-progress"]

    write_packed(tmp_path / "test.h5", n_times=80)  # TinyMyo takes any multiple of its 20-sample patch
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    warnings = [line for line in " ".join(result.output.split()).split("warning") if "another chain" in line]
    assert len(warnings) == 1 and "window_seconds 0.02 vs 0.04" in warnings[0], result.output

    write_packed(tmp_path / "test.h5", n_times=40)
    same = runner.invoke(app, command)
    assert same.exit_code == 0 and "another chain" not in same.output, same.output


def test_unset_split_exits_2(project):
    tmp_path, recipe = project
    result = runner.invoke(app, ["evaluate", str(recipe), "--split", "val"])
    assert result.exit_code == 2
    assert "data.val" in result.output


@pytest.mark.slow
def test_official_file_without_metadata_uses_the_recipe_model(tmp_path):
    # Official weights carry no biofound metadata (and a Lightning "model." prefix): the recipe's
    # [model] section says what to build.
    import torch

    from biofound_cli.models import create_model

    torch.manual_seed(0)
    model = create_model("tinymyo", task="mcc", num_classes=N_CLASSES)
    official = tmp_path / "official.safetensors"
    official_release(model, official)
    packed = write_packed(tmp_path / "test.h5", n_channels=16, n_times=1000)
    recipe = tmp_path / "official.toml"
    recipe.write_text(f'[data]\ntest = "{packed}"\n[model]\nvariant = "tinymyo"\ntask = "mcc"\nnum_classes = {N_CLASSES}\n')
    out = tmp_path / "eval"
    result = runner.invoke(
        app, ["evaluate", str(recipe), "--checkpoint", str(official), "--out", str(out), "--no-plots", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["variant"] == "tinymyo"
    assert report["n_windows"] == 12

    # num_classes left out is the head's (as predict reads it): on a split of other classes, the one-line check,
    # not "does not fit the model: 2 mis-shaped key(s)" from building the head for the split's 5.
    other = write_packed(tmp_path / "five.h5", n_channels=16, n_times=1000, num_classes=5)
    recipe.write_text(f'[data]\ntest = "{other}"\n[model]\nvariant = "tinymyo"\ntask = "mcc"\n')
    result = runner.invoke(app, ["evaluate", str(recipe), "--checkpoint", str(official), "--out", str(out)])
    assert result.exit_code == 2 and "5 classes" in result.output and "mis-shaped" not in result.output, result.output

    bare = tmp_path / "bare.toml"
    bare.write_text(f'[data]\ntest = "{packed}"\n')
    result = runner.invoke(app, ["evaluate", str(bare), "--checkpoint", str(official), "--out", str(out)])
    assert result.exit_code == 2
    assert "model.variant" in result.output


def test_official_file_of_another_size_is_built_with_the_recipe_overrides(tmp_path):
    # An official file of a non-default constructor (fewer channels, shorter windows) is built
    # from model.overrides, as finetune and predict build it.
    import torch

    from biofound_cli.models import create_model

    torch.manual_seed(0)
    model = create_model("tinymyo", task="mcc", num_classes=N_CLASSES, **TINY)
    official = tmp_path / "official.safetensors"
    official_release(model, official)
    packed = write_packed(tmp_path / "test.h5")
    recipe = tmp_path / "official.toml"
    recipe.write_text(
        f'[data]\ntest = "{packed}"\n[model]\nvariant = "tinymyo"\ntask = "mcc"\nnum_classes = {N_CLASSES}\n'
        f"overrides = {toml_table(TINY)}\n"
    )
    out = tmp_path / "eval"
    args = ["evaluate", str(recipe), "--checkpoint", str(official), "--out", str(out), "--no-plots", "--bootstrap", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "report.json").read_text())["n_windows"] == 12


def test_luna_checkpoint_on_a_binary_split(tmp_path):
    # LUNA takes any montage: channel positions come from the split's channel names.
    import torch

    from biofound_cli.models import create_model, save_checkpoint

    tiny_luna = {"patch_size": 40, "embed_dim": 16, "num_queries": 2, "depth": 1, "num_heads": 2}
    torch.manual_seed(0)
    model = create_model("luna-base", task="bc", num_classes=2, **tiny_luna)
    checkpoint = save_checkpoint(
        model,
        tmp_path / "luna.safetensors",
        variant="luna-base",
        model_name="LUNA",
        constructor_kwargs={**tiny_luna, "num_classes": 2},
        extra_metadata={"task": "bc"},
    )
    packed = write_packed(tmp_path / "test.h5", task="bc", num_classes=2, n_times=80)
    with h5py.File(packed, "a") as handle:
        handle.attrs["channel_names"] = ["C3", "C4", "CZ", "FP1-F7"]
    recipe = tmp_path / "luna.toml"
    recipe.write_text(f'[data]\ntest = "{packed}"\n')
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(recipe), "-c", str(checkpoint), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["model"] == "luna" and report["task"] == "bc"
    assert len(report["windows"]["confusion_matrix"]) == 2


def test_channel_order_is_checked_by_name(project):
    tmp_path, recipe = project
    checkpoint = tmp_path / "named.safetensors"
    import torch

    from biofound_cli.models import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("tinymyo", task="mcc", num_classes=N_CLASSES, **TINY)
    kwargs = {**TINY, "num_classes": N_CLASSES, "task": "classification", "classification_type": "mcc"}
    save_checkpoint(
        model,
        checkpoint,
        variant=None,
        model_name="TinyMyo",
        constructor_kwargs=kwargs,
        extra_metadata={"task": "mcc", "transform": "none", "ch_names": ["EMG1", "EMG0", "EMG2", "EMG3"]},
    )
    result = runner.invoke(app, ["evaluate", str(recipe), "-c", str(checkpoint), "-o", str(tmp_path / "e")])
    assert result.exit_code == 2
    assert "channel 0 is EMG0" in result.output


def _evaluate_femba_mc(tmp_path, labels: np.ndarray, n_recordings: int = 4) -> dict:
    """An mc FEMBA checkpoint evaluated, as a user runs it, on a split holding ``labels``; its report."""
    import torch

    from biofound_cli.models import create_model, save_checkpoint

    tiny_femba = {"seq_length": 32, "num_channels": N_CHANNELS, "embed_dim": 8, "num_blocks": 1}
    torch.manual_seed(0)
    model = create_model("femba-tiny", task="mc", num_classes=2, **tiny_femba)
    kwargs = {**tiny_femba, "num_classes": 2, "classification_type": "mc"}
    checkpoint = save_checkpoint(
        model,
        tmp_path / "femba.safetensors",
        variant="femba-tiny",
        model_name="FEMBA",
        constructor_kwargs=kwargs,
        extra_metadata={"task": "mc"},
    )
    packed = write_packed(tmp_path / "test.h5", task="mc", num_classes=2, n_times=32, n_recordings=n_recordings)
    with h5py.File(packed, "a") as handle:
        del handle["y"]
        handle.create_dataset("y", data=labels)
        handle.attrs["label_names"] = ["clean", "artifact"]
    recipe = tmp_path / "femba.toml"
    recipe.write_text(f'[data]\ntest = "{packed}"\n')
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(recipe), "-c", str(checkpoint), "-o", str(out), "--no-plots", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_femba_per_channel_split(tmp_path):
    # mc: one binary label per channel; the report averages the channels and names them.
    labels = (np.arange(12 * N_CHANNELS).reshape(12, N_CHANNELS) % 3 == 0).astype(np.int64)
    report = _evaluate_femba_mc(tmp_path, labels)
    assert report["task"] == "mc"
    assert [entry["channel"] for entry in report["windows"]["per_channel"]] == [f"EMG{c}" for c in range(N_CHANNELS)]
    assert report["windows"]["label_names"] == ["clean", "artifact"]


@pytest.mark.slow
@pytest.mark.parametrize("n_recordings", [4, 1])
def test_per_channel_notes_come_once_per_note_naming_their_channels(tmp_path, n_recordings):
    # A sparse artifact split, as TUAR's: artifacts on EMG0 alone. Each channel's notes used to come
    # one line each (4 × 22 lines on TUAR), recording-level ones too when those scores were null.
    labels = np.zeros((3 * n_recordings, N_CHANNELS), dtype=np.int64)
    labels[::2, 0] = 1
    report = _evaluate_femba_mc(tmp_path, labels, n_recordings)
    one_class = [note for note in report["notes"] if "the targets hold only one class" in note]
    # A note that holds at both levels comes once, naming both.
    assert one_class == [
        f"{'windows and recordings' if n_recordings > 1 else 'windows'}: EMG1, EMG2, EMG3 (3 of 4 channels): the targets "
        "hold only one class (clean): AUROC, AUPR, Cohen's kappa and the other classes' recall and F1 are undefined (null)"
    ]
    assert "the targets hold only one class (clean)" in report["windows"]["per_channel"][1]["notes"][0]
    # A channel's sigmoid ranks as its logit does: the note on upstream's logit ranking is not about mc.
    assert not any("softmax" in note for note in report["notes"])
    if n_recordings == 1:  # no note explains recording-level scores that are null
        recording_notes = [note for note in report["notes"] if note.startswith("recordings:")]
        assert not any("channel" in note for note in recording_notes)
        assert "recordings: the split holds one recording, so the recording-level scores are undefined" in recording_notes[0]


def finetuned(tmp_path: Path, *settings: str, task: str = "mcc", num_classes: int = N_CLASSES) -> Path:
    """``biofound finetune`` of a recipe into ``runs/tiny``: 2 epochs, each ending with an evaluation, 2 loader workers."""
    for split in ("train", "val", "test"):
        write_packed(tmp_path / f"{split}.h5", task=task, num_classes=num_classes)
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        f'name = "tiny"\n[data]\ntrain = "{tmp_path / "train.h5"}"\nval = "{tmp_path / "val.h5"}"\n'
        f'test = "{tmp_path / "test.h5"}"\nbatch_size = 4\nnum_workers = 2\ntransform = "none"\n'
        f'[model]\nvariant = "tinymyo"\noverrides = {toml_table(TINY)}\n'
        f"[optim]\nlr = 1e-3\nwarmup_steps = 1\n"
        f'[train]\nepochs = 2\ndevice = "cpu"\n[output]\nruns_dir = "{tmp_path / "runs"}"\n'
    )
    trained = runner.invoke(app, ["finetune", str(recipe), "--quiet", *settings])
    assert trained.exit_code == 0, trained.output
    return recipe


def test_the_run_paths_evaluate_and_export_print_are_as_the_checkpoint_was_given(tmp_path, monkeypatch):
    """``train_curve`` (and export's default ``--out``) were absolute beside the relative paths the user gave."""
    recipe = finetuned(tmp_path)
    monkeypatch.chdir(tmp_path)
    best = str(Path("runs", "tiny", "checkpoints", "best"))
    evaluated = runner.invoke(app, ["evaluate", recipe.name, "-c", best, "--out", "eval", "--json", "--no-progress"])
    assert evaluated.exit_code == 0, evaluated.output
    summary = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert summary["train_curve"] == str(Path("runs", "tiny", "train_curve.png"))
    assert summary["report"] == str(Path("eval", "report.json"))
    exported = runner.invoke(app, ["export", best, "--format", "safetensors", "--json", "--no-progress"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout.strip().splitlines()[-1])["out"] == str(Path("runs", "tiny", "export"))


def test_finetune_then_evaluate_leaves_one_training_curve(tmp_path):
    # Training draws the run's training curve; evaluate points to it instead of drawing a copy.
    recipe = finetuned(tmp_path)
    result = runner.invoke(app, ["evaluate", str(recipe), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "tiny"
    curves = [path for path in run.rglob("*.png") if "curve" in path.name]
    assert curves == [run / "train_curve.png"]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["train_curve"] == str(run / "train_curve.png")
    assert all("curve" not in Path(path).name for path in summary["plots"])


def test_evaluate_reports_the_loss_training_reported_and_the_curve_of_the_run_given_either_way(tmp_path):
    # evaluate reported no loss, though training's val_loss (class weights and label smoothing in it)
    # chose the best checkpoint; given that checkpoint with --checkpoint, it did not say where the
    # run's training curve is, which `evaluate RUN` did.
    finetuned(tmp_path, "--set", "train.class_weights=[1.0, 3.0, 0.5]", "--set", "train.label_smoothing=0.2")
    run = tmp_path / "runs" / "tiny"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best_loss = min(row["val_loss"] for row in rows if row["split"] == "val")  # train.early_stopping_metric = val_loss
    recipe = str(run / "recipe.json")  # the [train] the run trained with
    for given in ([], ["--checkpoint", str(run / "checkpoints" / "best")]):
        args = ["evaluate", recipe, "--split", "val", "--no-plots", "--no-progress", *given]
        summary = json.loads(runner.invoke(app, [*args, "--json"]).stdout.strip().splitlines()[-1])
        assert summary["metrics"]["loss"] == pytest.approx(best_loss, abs=1e-6), given
        assert summary["train_curve"] == str(run / "train_curve.png"), given
        shown = runner.invoke(app, args, terminal_width=400)
        assert shown.exit_code == 0, shown.output
        assert re.search(rf"\Wloss\W+{best_loss:.4f}\W", shown.output) and "training curve:" in shown.output, shown.output
        report = json.loads((run / "eval" / "val" / "report.json").read_text())
        assert list(report["headline"]["windows"])[0] == "loss"


def test_a_single_logit_binary_head_is_weighted_per_class_in_training_and_evaluate_alike(tmp_path):
    # A single-logit bc head (model.num_classes = 1, bce) weighs its targets 0 and 1, but the weights were
    # counted against its one output: two were refused ("the task has 1 classes") and one failed the
    # first batch with an IndexError traceback.
    weighted = ("--set", "train.class_weights=[1.0, 3.0]")
    finetuned(tmp_path, "--set", "model.num_classes=1", "--set", "train.loss=bce", *weighted, task="bc", num_classes=2)
    run = tmp_path / "runs" / "tiny"
    val_losses = {
        row["step"]: row["val_loss"]
        for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
        if row["split"] == "val"
    }
    assert len(val_losses) == 2  # one evaluation per epoch
    args = ["evaluate", str(run / "recipe.json"), "--split", "val", "--no-plots", "--no-progress", "--json"]
    summary = json.loads(runner.invoke(app, args).stdout.strip().splitlines()[-1])
    # The best checkpoint is the one of the smallest val_loss (train.early_stopping_metric = val_loss).
    assert summary["metrics"]["loss"] == pytest.approx(min(val_losses.values()), abs=1e-6)
    unweighted = runner.invoke(app, [*args, "--unset", "train.class_weights", "-o", str(tmp_path / "plain")])
    assert json.loads(unweighted.stdout.strip().splitlines()[-1])["metrics"]["loss"] != pytest.approx(summary["metrics"]["loss"])
    one = runner.invoke(
        app,
        [
            "finetune",
            str(tmp_path / "tiny.toml"),
            "--set",
            "model.num_classes=1",
            "--set",
            "train.loss=bce",
            "--set",
            "train.class_weights=[3.0]",
            "--set",
            "output.run_name=one",
        ],
    )
    assert one.exit_code == 2 and "train.class_weights has 1 value but the task has 2 classes" in one.output, one.output
    assert "Traceback" not in one.output


def test_a_run_folder_exports_with_the_splits_its_recipe_names_and_its_export_points_to_its_curve(tmp_path):
    # `export RUN --split val` said "data.val is not set" though RUN/recipe.json names it (`--recipe RUN/recipe.json`
    # worked); the run's own [export] (here int8 of ONNX) is not what `export RUN` writes: the flags say that.
    # Evaluating the exported weights did not point to the run's training curve: evaluate found the run by
    # the path's shape (RUN/checkpoints/*/), export by its recipe.json.
    finetuned(tmp_path, "--set", 'export.formats=["onnx"]', "--set", "export.quantize=int8")
    run = tmp_path / "runs" / "tiny"
    exported = runner.invoke(app, ["export", str(run), "--split", "val", "--json", "--no-progress"])
    assert exported.exit_code == 0, exported.output
    assert sorted(path.name for path in (run / "export").glob("model.*")) == ["model.safetensors"]
    args = ["evaluate", str(run / "recipe.json"), "--split", "val", "--no-plots", "--json", "--no-progress"]
    result = runner.invoke(app, [*args, "--checkpoint", str(run / "export" / "model.safetensors")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["train_curve"] == str(run / "train_curve.png")


def test_a_loss_that_does_not_fit_the_head_is_refused_in_one_line_naming_it(project):
    # The loss is the recipe's [train] one, as training's val_loss: weights of another number of classes
    # would fail inside torch once every window had been scored.
    tmp_path, recipe = project
    result = runner.invoke(app, ["evaluate", str(recipe), "--set", "train.class_weights=[1.0, 2.0]", "-o", str(tmp_path / "e")])
    assert result.exit_code == 2, result.output
    assert "--set train.class_weights=[1.0, 2.0]: train.class_weights has 2 values but the task has 3 classes" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "e").exists()


def test_a_head_of_more_outputs_than_named_classes_is_reported_by_the_names_given(tmp_path):
    # model.num_classes = 4 on a split naming 3 classes trains and validates (check_head lets a split lack
    # the last classes); the report then named all four classes by number, though three have names.
    finetuned(tmp_path, "--set", "model.num_classes=4")
    run = tmp_path / "runs" / "tiny"
    result = runner.invoke(app, ["evaluate", str(run / "recipe.json"), "--no-plots", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads((run / "eval" / "test" / "report.json").read_text())
    names = ["gesture0", "gesture1", "gesture2", "3"]
    assert report["windows"]["label_names"] == names
    assert [entry["label"] for entry in report["recordings"]["metrics"]["per_class"]] == names


@pytest.mark.slow
def test_compiled_evaluation_reports_the_eager_numbers_with_one_graph(project):
    """``train.compile``: batches of 11 and 1 (12 windows) run through one frozen graph."""
    import torch._dynamo

    tmp_path, recipe = project
    reports = []
    for name, settings in (("eager", []), ("compiled", ["--set", "train.compile=true"])):
        out = tmp_path / name
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        args = ["evaluate", str(recipe), "--set", "data.batch_size=11", *settings, "--bootstrap", "0", "--out", str(out), "-q"]
        result = runner.invoke(app, [*args, "--no-plots"])
        assert result.exit_code == 0, result.output
        reports.append(json.loads((out / "report.json").read_text()))
    eager, compiled = reports
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert compiled["windows"]["confusion_matrix"] == eager["windows"]["confusion_matrix"]
    scalars = {key: value for key, value in eager["windows"].items() if isinstance(value, float)}
    assert scalars  # accuracy, balanced accuracy, kappa, F1, AUROC, ...
    assert {key: compiled["windows"][key] for key in scalars} == pytest.approx(scalars, abs=1e-6)


# runs/NAME/checkpoints (where tab completion stops) is read as its best, as runs/NAME is: it was
# refused as "a folder without model.safetensors".
@pytest.mark.parametrize("given", [".", "checkpoints"])
def test_a_run_folder_without_a_best_checkpoint_says_so(project, tmp_path_factory, given):
    tmp_path, recipe = project
    run = tmp_path_factory.mktemp("young") / "runs" / "young"
    (run / "checkpoints" / "step-00000002").mkdir(parents=True)
    result = runner.invoke(app, ["evaluate", str(recipe), "--checkpoint", str(run / given)])
    assert result.exit_code == 2 and "the run has no best checkpoint yet" in result.output and "step-N" in result.output


def test_a_split_packed_with_another_class_order_is_scored_by_class_name(project):
    # The checkpoint was trained on gesture0, gesture1, gesture2; a second split holds the same
    # windows with the same classes, packed in the order gesture2, gesture0, gesture1. Output k of
    # the head is still gesture{k}: the scores used to be read in the split's order (only a warning),
    # so every number of the second report was computed against the wrong class.
    tmp_path, recipe = project
    import torch

    from biofound_cli.models import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("tinymyo", task="mcc", num_classes=N_CLASSES, **TINY)
    kwargs = {**TINY, "num_classes": N_CLASSES, "task": "classification", "classification_type": "mcc"}
    trained = ["gesture0", "gesture1", "gesture2"]
    checkpoint = save_checkpoint(
        model,
        tmp_path / "named.safetensors",
        variant=None,
        model_name="TinyMyo",
        constructor_kwargs=kwargs,
        extra_metadata={"task": "mcc", "transform": "none", "label_names": trained},
    )
    order = ["gesture2", "gesture0", "gesture1"]
    y = np.array([0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0, 1])  # 4 recordings of 3 windows, each with a majority
    original, reordered = write_packed(tmp_path / "original.h5"), write_packed(tmp_path / "reordered.h5")
    with h5py.File(original, "r+") as first, h5py.File(reordered, "r+") as second:
        first["y"][...] = y
        second["y"][...] = np.array([order.index(trained[k]) for k in y])
        second.attrs["label_names"] = order
    reports = {}
    for split in (original, reordered):
        out = tmp_path / split.stem
        args = ["evaluate", str(recipe), "-c", str(checkpoint), "--set", f"data.test={split}", "-o", str(out), "--no-plots"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        reports[split.stem] = json.loads((out / "report.json").read_text())
    first, second = reports["original"], reports["reordered"]
    assert second["headline"] == first["headline"]
    for level in ("windows", "recordings"):
        metrics = first[level] if level == "windows" else first[level]["metrics"]
        by_name = {entry["label"]: entry for entry in metrics["per_class"]}
        reordered_metrics = second[level] if level == "windows" else second[level]["metrics"]
        assert [by_name[name] for name in order] == reordered_metrics["per_class"]


def test_a_split_packed_without_class_names_is_reported_by_the_checkpoints_names(project):
    # Matched by number, as the checkpoint's class k is the split's class k, but reported as 0, 1, 2
    # while the checkpoint (and `biofound predict` with it) names them.
    tmp_path, recipe = project
    names = ["rest", "fist", "pinch"]
    checkpoint = write_checkpoint(tmp_path / "named.safetensors", label_names=names)
    nameless = write_packed(tmp_path / "nameless.h5", label_names=[])
    out = tmp_path / "nameless"
    args = ["evaluate", str(recipe), "-c", str(checkpoint), "--set", f"data.test={nameless}", "-o", str(out), "-q"]
    assert (result := runner.invoke(app, args)).exit_code == 0, result.output
    # Matched by number without a word: a split numbered by another label map scored garbage silently.
    assert f"{nameless} records no class names while {checkpoint} names rest, fist, pinch" in " ".join(result.output.split())
    report = json.loads((out / "report.json").read_text())
    assert report["windows"]["label_names"] == names
    assert [entry["label"] for entry in report["recordings"]["metrics"]["per_class"]] == names


def test_a_split_of_other_classes_than_the_checkpoint_learned_is_refused_before_scoring(project):
    # The same number of classes, so check_head lets it through; the scores used to be reported
    # under the split's names with only a warning, numbers about classes the model never saw.
    tmp_path, recipe = project
    checkpoint = write_checkpoint(tmp_path / "named.safetensors", label_names=["gesture0", "gesture1", "gesture2"])
    other = write_packed(tmp_path / "other.h5")
    with h5py.File(other, "r+") as handle:
        handle.attrs["label_names"] = ["rest", "fist", "pinch"]
    out = tmp_path / "refused"
    args = ["evaluate", str(recipe), "-c", str(checkpoint), "--set", f"data.test={other}", "-o", str(out), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert "holds the classes rest, fist, pinch" in error and "was trained on gesture0, gesture1, gesture2" in error
    assert not out.exists()  # refused before any window was scored

    # A checkpoint naming no classes (official weights, a fresh head) is still matched by number.
    unnamed = runner.invoke(app, ["evaluate", str(recipe), "--set", f"data.test={other}", "-o", str(out), "-q"])
    assert unnamed.exit_code == 0, unnamed.output


def test_class_order_of_per_channel_heads_is_matched_by_name():
    # mc: one probability of class 1 per channel, so swapped class names are 1 - p; mmc: the class axis.
    from types import SimpleNamespace

    from biofound_cli.evaluation.evaluate import match_class_order
    from biofound_cli.evaluation.predict import class_order

    head = SimpleNamespace(metadata=SimpleNamespace(label_names=["bckg", "artf"]))
    info = SimpleNamespace(label_names=("artf", "bckg"), path="test.h5")
    order = class_order("mc", 2, head, info, Path("m.safetensors"))
    mc = np.array([[0.2, 0.9]])
    assert np.allclose(match_class_order("mc", mc, order), [[0.8, 0.1]])
    mmc = np.array([[[0.3, 0.7], [0.6, 0.4]]])
    assert np.allclose(match_class_order("mmc", mmc, order), mmc[..., ::-1])


@pytest.mark.parametrize(
    ("n_channels", "n_times", "message"),
    [
        (4, 1000, "windows have 4 channels but m.safetensors takes 8"),
        (8, 400, "windows have 400 samples but m.safetensors takes 1000"),
    ],
)
def test_windows_of_another_shape_are_refused_before_scoring(n_channels, n_times, message):
    from types import SimpleNamespace

    from biofound_cli.errors import UsageError
    from biofound_cli.evaluation.predict import HeadInfo, check_head

    head = HeadInfo(family="tinymyo", variant=None, task="mcc", num_outputs=3, n_channels=8, n_times=1000)
    info = SimpleNamespace(
        label_task="mcc", num_classes=3, path="test.h5", labelled=True, label_names=(), n_channels=n_channels, n_times=n_times
    )
    with pytest.raises(UsageError, match=message):
        check_head(head, info, Path("m.safetensors"))
    check_head(head, SimpleNamespace(**{**vars(info), "n_channels": 8, "n_times": 1000}), Path("m.safetensors"))


def test_a_checkpoint_of_diverged_weights_is_refused_in_one_line_naming_it_and_its_first_nan_tensor(project):
    # Weights that give NaN scores (a run that diverged, kept as step-N) crashed in scikit-learn
    # with "Input contains NaN" and a traceback; they are now refused as they are read, as predict refuses them.
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tmp_path, recipe = project
    weights = tmp_path / "runs" / "tiny" / "checkpoints" / "best" / "model.safetensors"
    with safe_open(str(weights), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(weights)
    diverged = sorted(name for name, tensor in tensors.items() if tensor.is_floating_point())[1:]
    save_file({name: t.fill_(float("nan")) if name in diverged else t for name, t in tensors.items()}, weights, metadata=metadata)
    result = runner.invoke(app, ["evaluate", str(recipe), "--no-plots"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Input contains NaN" not in result.output
    line = " ".join(result.output.split())
    assert f"{weights}: tensor {diverged[0]} holds NaN or inf (weights that diverged in training)" in line, line
    assert "use weights saved before the divergence" in line
    assert not (tmp_path / "runs" / "tiny" / "eval" / "test" / "report.json").exists()


def test_finite_weights_whose_scores_overflow_on_a_window_are_refused_naming_the_windows(project):
    # The scores' own check stays: finite weights give NaN on a window holding inf.
    tmp_path, recipe = project
    with h5py.File(tmp_path / "test.h5", "r+") as handle:
        handle["x"][0, 0, 0] = np.inf
    result = runner.invoke(app, ["evaluate", str(recipe), "--no-plots"])
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())
    assert "its scores are NaN or inf for 1 of 12 windows" in line and "though its weights are finite" in line, line


def test_the_finetune_advice_for_a_pretrained_checkpoint_given_from_inside_its_run_names_the_run(tmp_path, monkeypatch):
    """A run found as the checkpoint was given may be "." (the working folder): its name is the folder's own."""
    from biofound_cli.evaluation.predict import _finetune_from

    run = tmp_path / "runs" / "pre"
    (run / "checkpoints" / "best").mkdir(parents=True)
    (run / "recipe.json").write_text("{}")
    monkeypatch.chdir(run)
    advice = _finetune_from(Path("checkpoints", "best"), None)
    assert "--set output.run_name=pre-finetune" in advice and "recipe.json" in advice, advice


def test_an_official_head_with_no_tensor_sized_by_its_classes_is_built_with_the_splits_count(tmp_path):
    """FEMBA's per-channel ``mc`` head has as many outputs as channels: num_classes read from the head is
    unknown there, so an official file left without model.num_classes was refused where the split's count serves."""
    import torch

    from biofound_cli.errors import CheckpointError
    from biofound_cli.evaluation.predict import load_for_evaluation
    from biofound_cli.models import create_model

    torch.manual_seed(0)
    model = create_model("femba-tiny", task="mc", num_classes=2, num_channels=4, seq_length=64)
    official = tmp_path / "official.safetensors"
    official_release(model, official)
    overrides = {"num_channels": 4, "seq_length": 64}
    loaded, head = load_for_evaluation(official, variant="femba-tiny", task="mc", overrides=overrides, classes_if_unsized=2)
    assert loaded.num_classes == 2 and head.task == "mc" and head.num_outputs == 2
    with pytest.raises(CheckpointError, match="model.num_classes"):
        load_for_evaluation(official, variant="femba-tiny", task="mc", overrides=overrides)


def test_a_luna_split_packed_without_channel_names_is_placed_by_the_checkpoints_or_refused_in_one_line(tmp_path):
    # LUNA places each channel by its name: a split without names used to give it no positions, and evaluate ended in
    # "the model's head gives outputs of shape unknown ... evaluate on a split of the task", blaming the task.
    from fixtures.export_models import LUNA_CHANNELS, N_TIMES, save_small
    from fixtures.export_models import write_packed as write_export_split

    checkpoint = save_small(tmp_path / "luna.safetensors", "luna")
    for n_channels in (len(LUNA_CHANNELS), len(LUNA_CHANNELS) - 1):
        split = write_export_split(tmp_path / f"{n_channels}.h5", n_channels=n_channels, n_times=N_TIMES["luna"])
        with h5py.File(split, "a") as handle:
            del handle.attrs["channel_names"]
        recipe = tmp_path / "luna.toml"
        recipe.write_text(f'name = "luna"\n[data]\ntest = "{split}"\n[train]\ndevice = "cpu"\n')
        args = ["evaluate", str(recipe), "-c", str(checkpoint), "-o", str(tmp_path / f"out{n_channels}"), "--no-plots"]
        result = runner.invoke(app, args)
        if n_channels == len(LUNA_CHANNELS):  # as many channels as the checkpoint names: placed by its names, as export
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 2, result.output
        assert " ".join(result.stderr.split()) == (
            f"error: {split}: LUNA places each channel by its name, but this split names none of its 4 channels and "
            f"{checkpoint} names 5; pack the split with `biofound pack` (it records channel_names)"
        )


@pytest.mark.parametrize("no_plots", [False, True], ids=["a-plot", "report.json"])
def test_a_full_disk_while_evaluate_writes_names_the_file_in_out_and_leaves_nothing(project, no_plots):
    # The line named the hidden staging folder, gone since: `.../ev/.staging-evaluate.host.4242.9f3ac1d2.tmp/roc.png`.
    tmp_path, recipe = project
    out = tmp_path / "small" / "ev"
    args = ["evaluate", recipe, "--out", out, "--json", "--no-progress", *(["--no-plots"] if no_plots else [])]
    done = run_on_a_small_disk(tmp_path / "small", biofound(*args), size="8k", fill=8192 - 100 * no_plots)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    error = json.loads(done.stdout)["error"]
    assert re.fullmatch(
        rf"{re.escape(str(out))}/(report\.json|\w+\.png): No space left on device; free space on that disk \(or raise your "
        r"quota\): what was finished is kept, so run the same command again",
        error,
    ), error
    assert no_plots == error.startswith(str(out / "report.json"))
    assert ".tmp" not in done.stderr and str(out / "") not in done.stderr.replace(error, "")  # nothing left in --out


def test_an_evaluate_into_an_out_another_evaluate_writes_is_refused_naming_it(project):
    """evaluate took no lock on its --out: two at once into one folder mixed one's report.json with the other's plots."""
    import os
    import subprocess

    from biofound_cli.store.folder_lock import held_lock

    tmp_path, recipe = project
    out = tmp_path / "eval"
    out.mkdir()
    (out / "report.json").write_text("{}")
    with held_lock(out / ".evaluate.lock", str, "", remove=True):  # the first evaluate's lock, held as the second starts
        second = subprocess.run(biofound("evaluate", recipe, "--out", out, "--no-progress"), capture_output=True, text=True)
    assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
    assert second.stderr.count("error: ") == 1, second.stderr
    line = " ".join(second.stderr.split("error: ", 1)[1].split())  # one line, however the terminal wraps it
    assert line.startswith(f"{out} is being evaluated into by pid {os.getpid()} on "), line
    assert line.endswith("wait for that evaluate to end (or stop it), or choose another --out"), line
    assert sorted(path.name for path in out.iterdir()) == ["report.json"] and (out / "report.json").read_text() == "{}"
