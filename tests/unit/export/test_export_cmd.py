"""``biofound export`` on the command line: summaries and exit statuses."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fixtures.export_models import LUNA_CHANNELS, N_TIMES, save_small, write_packed
from typer.testing import CliRunner

import biofound_cli.export.torchscript_export as torchscript_export
from biofound_cli.cli.app import app

runner = CliRunner()


def test_json_summary(tinymyo_ckpt, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["export", str(tinymyo_ckpt), "--format", "onnx", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files"] == ["model.onnx", "config.json", "README.md"]
    assert summary["max_abs_diff"]["model.onnx"] <= 1e-4 and summary["card"] == "internal use only"
    assert "verified, max abs diff" in result.stderr and "CC BY-ND 4.0" in result.stderr


def test_every_format_given_is_exported(tinymyo_ckpt, tmp_path):
    # `-f onnx -f torchscript`: typer kept the last --format of several, so one format was written without a word.
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["export", str(tinymyo_ckpt), "-f", "onnx", "--format", "torchscript", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"] == ["model.onnx", "model.pt", "config.json", "README.md"]
    listed = [entry["file"] for entry in json.loads((out / "config.json").read_text())["artefacts"]]
    assert listed == ["model.onnx", "model.pt"]


def test_missing_checkpoint_exits_2(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path / "nope.safetensors"), "--format", "onnx", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope.safetensors: no such checkpoint file" in result.stderr and "Traceback" not in result.output


def test_unknown_format_exits_2(tinymyo_ckpt, tmp_path):
    result = runner.invoke(app, ["export", str(tinymyo_ckpt), "--format", "tflite", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "--format tflite: unknown format; choose one of safetensors, onnx, torchscript" in result.stderr
    assert not (tmp_path / "out").exists()


def test_an_opset_the_exporter_cannot_write_exits_2_in_one_line(tinymyo_ckpt, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["export", str(tinymyo_ckpt), "--format", "onnx", "--opset", "99", "--out", str(out)])
    assert result.exit_code == 2, result.output
    error = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert len(error) == 1 and error[0].startswith("error: --opset 99:") and "exports ONNX opsets 17 to" in error[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("/proc/biofound-export-test", "the folder cannot be created"),  # /proc takes no new folder, even from root
        ("file", "a file is in the way of the output folder"),
    ],
)
def test_an_out_that_cannot_be_a_writable_folder_exits_2_in_one_line(tinymyo_ckpt, tmp_path, where, says):
    out = tmp_path / "a-file" if where == "file" else Path(where)
    if where == "file":
        out.write_text("keep me")
    result = runner.invoke(app, ["export", str(tinymyo_ckpt), "--format", "onnx", "--out", str(out), "--json"])
    assert result.exit_code == 2, result.output
    error = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert len(error) == 1 and error[0].startswith(f"error: --out {out}: {says}"), result.output
    assert json.loads(result.stdout)["exit_status"] == 2
    assert where != "file" or out.read_text() == "keep me"


def test_split_of_another_task_exits_2(tinymyo_ckpt, tmp_path):
    split = write_packed(tmp_path / "test.h5", task="regression", num_classes=1)
    args = [
        "export",
        str(tinymyo_ckpt),
        "--format",
        "torchscript",
        "--out",
        str(tmp_path / "out"),
        "--quantize",
        "int8",
        "--split",
        str(split),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "the split's task is regression but" in result.stderr and "mcc head" in result.stderr
    assert not (tmp_path / "out").exists()


def test_split_with_other_channels_exits_2(tinymyo_ckpt, tmp_path):
    split = write_packed(tmp_path / "test.h5", ch_names=["CH3", "CH2", "CH1", "CH0"])
    args = ["export", str(tinymyo_ckpt), "--format", "onnx", "--out", str(tmp_path / "out"), "--split", str(split)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "in the same order" in result.stderr
    # Four channels are all of them: an ellipsis said there were more.
    assert "the split's channels (CH3, CH2, CH1, CH0) are not the checkpoint's (CH0, CH1, CH2, CH3) in the same order" in (
        " ".join(result.stderr.split())
    )


def test_a_split_of_other_window_lengths_is_one_line_and_exit_2(tinymyo_ckpt, tmp_path):
    # TinyMyo takes windows of any length, so evaluate scores them with a warning; export's graph takes the checkpoint's
    # 40 samples: the refusal came after a warning that the split's chain differed, two lines for one problem.
    split = write_packed(tmp_path / "test.h5", n_times=80)
    args = ["export", str(tinymyo_ckpt), "--format", "onnx", "--out", str(tmp_path / "out"), "--split", str(split)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and "another chain" not in result.stderr
    assert "windows have 80 samples but the exported graph takes 40" in " ".join(result.stderr.split())
    assert not (tmp_path / "out").exists()


def test_a_luna_split_of_fewer_unnamed_channels_is_one_line_and_exit_2(tmp_path):
    # LUNA's head takes any channel count and the split names no channels to compare: scoring the 5-channel graph on
    # its 4-channel windows ended in a ValueError traceback (exit status 1).
    import h5py

    checkpoint = save_small(tmp_path / "luna.safetensors", "luna")
    split = write_packed(tmp_path / "test.h5", n_channels=4, n_times=N_TIMES["luna"])
    with h5py.File(split, "a") as handle:
        del handle.attrs["channel_names"]
    args = ["export", str(checkpoint), "--format", "onnx", "--quantize", "int8", "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, "--split", str(split)])
    assert result.exit_code == 2, result.output
    assert " ".join(result.stderr.split()) == (
        f"error: {split}: windows have 4 channels but the exported graph takes {len(LUNA_CHANNELS)}; score on a split "
        "preprocessed for this model"
    )
    assert not (tmp_path / "out").exists()


def test_pretraining_checkpoint_with_a_split_exits_2(tmp_path):
    ckpt = save_small(tmp_path / "pre.safetensors", "tinymyo", task="reconstruction", num_classes=None)
    split = write_packed(tmp_path / "test.h5")
    args = ["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, "--split", str(split)])
    assert result.exit_code == 2 and "pre-training model" in result.stderr
    # No run folder records a recipe: the command to fine-tune from it has a placeholder, not a bare RECIPE.
    assert f"(`biofound finetune YOUR_RECIPE.toml --set model.checkpoint={ckpt}`)" in " ".join(result.stderr.split())
    # The advice is export's, not evaluate's ("... and evaluate that run"), and the export it names is written.
    advice = "and export that run, or export this one without --split (its reconstruction graph)"
    assert advice in " ".join(result.stderr.split()) and not (tmp_path / "out").exists()
    assert runner.invoke(app, args).exit_code == 0 and (tmp_path / "out" / "model.onnx").is_file()


def test_a_pretraining_run_with_a_split_is_sent_to_fine_tune_from_its_recorded_recipe(tmp_path):
    run = tmp_path / "runs" / "pre"
    ckpt = save_small(run / "checkpoints" / "best" / "model.safetensors", "tinymyo", task="reconstruction", num_classes=None)
    (run / "recipe.json").write_text(json.dumps({"name": "pre", "output": {"runs_dir": str(run.parent), "run_name": "pre"}}))
    args = ["export", str(run), "--format", "safetensors", "--split", str(write_packed(tmp_path / "test.h5"))]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    # The recorded recipe names the pre-training's folder, so the fine-tuning gets a run name of its own.
    expected = f"`biofound finetune {run / 'recipe.json'} --set output.run_name=pre-finetune --set model.checkpoint={ckpt}`"
    assert expected in " ".join(result.stderr.split())


def test_a_runs_export_without_format_says_how_to_write_the_formats_its_recorded_recipe_names(tmp_path):
    """`export RUN` wrote model.safetensors alone without a word, though RUN/recipe.json's [export] named ONNX and int8.
    The section stays unapplied (docs/export.md: the flags say what to write), and one info line says how to get them."""
    run = tmp_path / "runs" / "myo"
    save_small(run / "checkpoints" / "best" / "model.safetensors", "tinymyo")
    recorded = {"formats": ["safetensors", "onnx"], "quantize": "int8", "calibration_split": "test"}
    output = {"runs_dir": str(run.parent), "run_name": "myo"}
    (run / "recipe.json").write_text(json.dumps({"name": "myo", "output": output, "export": recorded}))
    result = runner.invoke(app, ["export", str(run)])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (run / "export").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    line = (
        f"wrote safetensors only, as --format defaults to; the [export] section of {run / 'recipe.json'} is not applied "
        "to a run's checkpoint, so for the formats it names pass -f safetensors -f onnx --quantize int8 --split test"
    )
    assert line in " ".join(result.output.split()), result.output
    # Formats given, or a recorded section asking for no more than was written: no such line.
    again = runner.invoke(app, ["export", str(run), "-f", "safetensors", "--overwrite"])
    assert again.exit_code == 0 and "is not applied" not in again.output, again.output


def test_the_line_about_a_runs_recorded_export_names_the_file_not_a_set_option(tmp_path):
    """The line names what RUN/recipe.json's [export] holds: a --set of that section (which a run's export
    does not apply either) is not the recorded section, and asks for no line of its own."""
    run = tmp_path / "runs" / "myo"
    save_small(run / "checkpoints" / "best" / "model.safetensors", "tinymyo")
    output = {"runs_dir": str(run.parent), "run_name": "myo"}
    (run / "recipe.json").write_text(json.dumps({"name": "myo", "output": output, "export": {"formats": ["safetensors"]}}))
    both = 'export.formats=["safetensors", "onnx"]'
    result = runner.invoke(app, ["export", str(run), "--set", both, "--set", "export.quantize=int8"])
    assert result.exit_code == 0 and "is not applied" not in result.output, result.output


def test_failed_trace_exits_1(tinymyo_ckpt, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("unsupported operation in trace")

    monkeypatch.setattr(torchscript_export.torch.jit, "trace", refuse)
    result = runner.invoke(app, ["export", str(tinymyo_ckpt), "--format", "torchscript", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "cannot be traced to TorchScript (RuntimeError: unsupported operation in trace)" in result.stderr


def test_onnxruntime_missing_exits_2_with_the_install_hint(tinymyo_ckpt, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    result = runner.invoke(app, ["export", str(tinymyo_ckpt), "--format", "onnx", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "needs the onnxruntime package" in result.stderr and "biofound[export]" in result.stderr


def test_file_without_biofound_metadata_exits_2(test_data, tmp_path):
    official = test_data / "golden" / "tinymyo_small_cls.weights.safetensors"
    result = runner.invoke(app, ["export", str(official), "--format", "safetensors", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "has no biofound metadata" in result.stderr


def test_a_split_made_by_another_chain_than_the_models_is_named_in_one_warning(tmp_path):
    # What export measures on --split (the int8 accuracy change) describes windows the model never saw.
    from fixtures import eval_split

    from biofound_cli.signals.chain import ChainConfig

    chain = {"corpus": "emg-csv", "options": {"sfreq": 2000.0}, **ChainConfig(window_seconds=0.02, units="native").to_json_dict()}
    checkpoint = eval_split.write_checkpoint(tmp_path / "model.safetensors", preprocessing=chain)
    split = eval_split.write_packed(tmp_path / "test.h5", preprocessing={**chain, "zscore": True})
    args = ["export", str(checkpoint), "--format", "safetensors", "--out", str(tmp_path / "out"), "--split", str(split)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "another chain" in line]
    assert len(warnings) == 1 and "zscore False vs True" in warnings[0], result.output


def test_a_lora_run_without_a_best_checkpoint_is_sent_to_resume_not_to_its_step_folders(tmp_path):
    # A LoRA run stopped before its first evaluation: the advice was to pass a checkpoints/step-N folder, whose
    # adapters are stored apart from the weights, so that export was refused in turn with "use checkpoints/best".
    import torch
    from safetensors.torch import save_file

    run = tmp_path / "runs" / "lora"
    step = run / "checkpoints" / "step-00000004"
    step.mkdir(parents=True)
    save_file({"blocks.0.attn.qkv.parametrizations.weight.0.lora_a": torch.zeros(2, 4)}, str(step / "model.safetensors"))
    result = runner.invoke(app, ["export", str(run), "--format", "onnx", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert " ".join(result.stderr.split()) == (
        f"error: {run}: the run has no best checkpoint yet (none of its evaluations ran or improved); its "
        "checkpoints/step-N folders hold LoRA adapters apart from the weights: continue the run with --resume, which "
        "merges them into checkpoints/best"
    )


def test_split_classes_are_matched_by_name_as_evaluate_does_and_another_set_is_refused(tinymyo_ckpt, tmp_path):
    # --split checked the class count only: a split packed with the model's classes in another order was scored against
    # the wrong classes (the int8 accuracy a quantisation is judged by), and one of other classes was scored as if same.
    import h5py
    import numpy as np
    import torch

    import biofound_cli.models as models

    split = write_packed(tmp_path / "test.h5")
    with h5py.File(split, "a") as handle, torch.no_grad():
        predicted = models.load(tinymyo_ckpt).eval()(torch.from_numpy(handle["x"][()]))[0].argmax(dim=-1).numpy()
        order = ["class2", "class0", "class1"]  # the same windows and targets, packed in another class order
        handle["y"][...] = np.array([order.index(f"class{k}") for k in predicted])
        handle.attrs["label_names"] = order
    args = ["export", str(tinymyo_ckpt), "--format", "onnx", "--quantize", "int8", "--json"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out"), "--split", str(split)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["quantization"]["model.int8.onnx"]["float"] == 1.0
    assert "orders its classes class2, class0, class1 but" in " ".join(result.stderr.split())

    with h5py.File(split, "a") as handle:
        handle.attrs["label_names"] = ["rest", "fist", "pinch"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "other"), "--split", str(split)])
    assert result.exit_code == 2, result.output
    assert f"{split} holds the classes rest, fist, pinch but {tinymyo_ckpt} was trained on class0, class1, class2; score" in (
        " ".join(result.stderr.split())
    )
    assert not (tmp_path / "other").exists()


def test_split_without_quantize_is_checked_all_the_same_and_says_nothing_was_scored(tinymyo_ckpt, tmp_path):
    # --split without --quantize scores nothing, so its class order was looked at only when quantising: a split packed
    # with the model's classes in another order passed without a word, and nothing said the split had only been checked.
    import h5py

    split = write_packed(tmp_path / "test.h5")
    with h5py.File(split, "a") as handle:
        handle.attrs["label_names"] = ["class2", "class0", "class1"]
    result = runner.invoke(
        app, ["export", str(tinymyo_ckpt), "--format", "onnx", "--out", str(tmp_path / "out"), "--split", str(split)]
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert said.count("orders its classes class2, class0, class1 but") == 1, said
    assert f"{split}: checked against {tinymyo_ckpt} (task, classes, channels, window length); nothing is scored" in said


def test_a_set_of_the_export_section_applies_to_a_runs_export(tmp_path):
    """A run's recorded [export] is not applied, but a --set of it on the command line is: the section the
    run's record is replaced by must not swallow the options the user gave."""
    run = tmp_path / "runs" / "myo"
    save_small(run / "checkpoints" / "best" / "model.safetensors", "tinymyo")
    output = {"runs_dir": str(run.parent), "run_name": "myo"}
    (run / "recipe.json").write_text(json.dumps({"name": "myo", "output": output, "export": {"opset": 16}}))
    result = runner.invoke(app, ["export", str(run), "-f", "onnx", "--set", "export.opset=18", "--json"])
    assert result.exit_code == 0, result.output
    import onnx

    assert onnx.load(str(run / "export" / "model.onnx")).opset_import[0].version == 18


def test_a_checkpoint_that_does_not_say_its_normalisation_is_refused_until_data_transform_names_it(tmp_path):
    # A custom configuration (no registered variant) that records no normalisation: config.json said `none`, so a
    # deployment fed windows the model was never trained on, without a word. evaluate and predict refused it already.
    from dataclasses import replace

    from safetensors.torch import load_file

    from biofound_cli.models.checkpoints import read_metadata, save_state_dict

    ckpt = save_small(tmp_path / "custom.safetensors", "tinymyo")
    save_state_dict(ckpt, load_file(ckpt), replace(read_metadata(ckpt), variant=None, transform=None))
    out = tmp_path / "out"
    refused = runner.invoke(app, ["export", str(ckpt), "-f", "safetensors", "--out", str(out)])
    assert refused.exit_code == 2, refused.output
    said = " ".join(refused.stderr.split())
    assert (
        f"error: {ckpt}: the checkpoint does not say which input normalisation it was trained with; name it with "
        "--set data.transform=NAME (or data.transform in the recipe), NAME one of femba-affine, zscore, minmax, none"
    ) in said
    assert "Traceback" not in refused.output and not out.exists()
    named = runner.invoke(app, ["export", str(ckpt), "-f", "safetensors", "--out", str(out), "--set", "data.transform=minmax"])
    assert named.exit_code == 0, named.output
    assert json.loads((out / "config.json").read_text())["normalisation"]["name"] == "minmax"


def test_data_transform_names_the_exports_normalisation_as_it_does_evaluates_with_a_warning(tinymyo_ckpt, tmp_path):
    # export kept the checkpoint's own and ignored data.transform, which evaluate and predict follow.
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["export", str(tinymyo_ckpt), "-f", "safetensors", "--out", str(out), "--set", "data.transform=minmax"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["normalisation"]["name"] == "minmax"
    said = " ".join(result.stderr.split())
    assert "data.transform = 'minmax' but the checkpoint was trained with 'none'; exporting the graph with 'minmax'" in said
    assert "scoring" not in said
