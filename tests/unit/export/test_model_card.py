"""The model card: provenance from the run folder, the last evaluation, and the licence gate."""

from __future__ import annotations

import json
import logging

import pytest
from fixtures.export_models import save_small, write_packed
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.export import export_checkpoint
from biofound_cli.models.checkpoints import file_sha256


def warnings_logged(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def make_run(tmp_path, *, start_from: str | None):
    """A run folder as `biofound finetune` leaves it (a best checkpoint and the resolved recipe)."""
    run = tmp_path / "runs" / "uci"
    ckpt = save_small(run / "checkpoints" / "best" / "model.safetensors", "tinymyo", step=120)
    recipe = {
        "name": "uci",
        "data": {"train": "packed/train.h5", "transform": "none", "batch_size": 32},
        "model": {"variant": "tinymyo", "task": "mcc", "checkpoint": start_from},
        "optim": {"lr": 0.0005},
    }
    (run / "recipe.json").write_text(json.dumps(recipe))
    return ckpt


def evaluate(tmp_path, checkpoint=None):
    """Run the real `biofound evaluate` of the run in tmp_path/runs/uci on a small test split."""
    split = tmp_path / "test.h5"
    if not split.exists():
        write_packed(split, ch_names=["CH0", "CH1", "CH2", "CH3"])
    recipe = tmp_path / "uci.toml"
    recipe.write_text(f'name = "uci"\n[output]\nruns_dir = "{tmp_path / "runs"}"\n[data]\ntest = "{split}"\ntransform = "none"\n')
    args = ["evaluate", str(recipe), "--no-plots", "--json"] + (["--checkpoint", str(checkpoint)] if checkpoint else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["metrics"]


def test_card_without_acknowledgement_is_internal_only(tinymyo_ckpt, tmp_path, caplog):
    result = export_checkpoint(tinymyo_ckpt, "safetensors", tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Internal use only. Do not redistribute." in card and "license: cc-by-nd-4.0" not in card
    assert "CC BY-ND 4.0" in card and "--acknowledge-license" in card
    assert warnings_logged(caplog)
    assert result.licence == {**result.licence, "derived_from_official": True, "card": "internal use only"}
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["license"]["name"] == "CC BY-ND 4.0" and config["license"]["acknowledged"] is False


def test_acknowledged_card_carries_licence_and_attribution(tinymyo_ckpt, tmp_path, caplog):
    result = export_checkpoint(tinymyo_ckpt, "safetensors", tmp_path / "out", acknowledge_license=True)
    card = (tmp_path / "out" / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-nd-4.0\n")
    assert "Attribution: TinyMyo, BioFoundation" in card and "Internal use only" not in card
    assert any("sharing adapted material is yours to clear" in w for w in warnings_logged(caplog))  # it still says so
    assert result.licence["card"] == "for sharing"


def test_card_reads_recipe_and_the_evaluation_of_these_weights(tmp_path):
    ckpt = make_run(tmp_path, start_from="checkpoints/tinymyo/base.safetensors")
    metrics = evaluate(tmp_path)
    report = json.loads((tmp_path / "runs" / "uci" / "eval" / "test" / "report.json").read_text())
    assert report["source"]["checkpoint_sha256"] == file_sha256(ckpt)
    export_checkpoint(ckpt.parent, "safetensors", tmp_path / "out")  # a checkpoint folder works too
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"| balanced_accuracy | {metrics['balanced_accuracy']:.4g} |" in card
    assert "train = packed/train.h5" in card and "lr = 0.0005" in card
    assert "Training step of the checkpoint: 120" in card
    assert "started from checkpoints/tinymyo/base.safetensors" in card
    assert "Labels" not in card  # none stored in this checkpoint
    evaluation = json.loads((tmp_path / "out" / "config.json").read_text())["evaluation"]
    assert evaluation["windows"] == metrics and evaluation["checkpoint_sha256"] == file_sha256(ckpt)


def test_an_evaluation_of_other_weights_is_never_cited(tmp_path):
    ckpt = make_run(tmp_path, start_from=None)
    evaluate(tmp_path)
    other = save_small(tmp_path / "other.safetensors", "tinymyo", seed=1)
    evaluate(tmp_path, checkpoint=other)  # overwrites runs/uci/eval/test/report.json
    export_checkpoint(ckpt, "safetensors", tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Not evaluated: no `biofound evaluate` report of exactly these weights" in card
    assert "| balanced_accuracy |" not in card
    assert json.loads((tmp_path / "out" / "config.json").read_text())["evaluation"] == "not evaluated"


def test_a_report_written_before_hashes_were_recorded_is_not_cited(tmp_path):
    ckpt = make_run(tmp_path, start_from=None)
    (tmp_path / "runs" / "uci" / "eval" / "test").mkdir(parents=True)
    old = {"task": "mcc", "source": {"checkpoint": str(ckpt)}, "headline": {"windows": {"balanced_accuracy": 0.8}}}
    (tmp_path / "runs" / "uci" / "eval" / "test" / "report.json").write_text(json.dumps(old))
    export_checkpoint(ckpt, "safetensors", tmp_path / "out")
    assert "Not evaluated" in (tmp_path / "out" / "README.md").read_text()


def test_weights_trained_from_scratch_need_no_acknowledgement(tmp_path, caplog):
    ckpt = make_run(tmp_path, start_from=None)
    result = export_checkpoint(ckpt, "safetensors", tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "do not derive from the official checkpoints" in card and "from scratch" in card
    assert "Internal use only" not in card
    assert result.licence["derived_from_official"] is False and not warnings_logged(caplog)


def test_card_without_evaluation_says_so(tinymyo_ckpt, tmp_path):
    export_checkpoint(tinymyo_ckpt, "safetensors", tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Not evaluated" in card and "not a medical device" in card
    assert "Labels** (class order): class0, class1, class2" in card and "at 256 Hz" in card


def test_the_licence_travels_in_the_exported_weights_and_info_shows_it(tinymyo_ckpt, tmp_path):
    from biofound_cli.models.checkpoints import read_header

    export_checkpoint(tinymyo_ckpt, "safetensors", tmp_path / "out")
    exported = tmp_path / "out" / "model.safetensors"
    header = read_header(exported)
    assert header["license"] == "CC BY-ND 4.0" and header["license_note"].startswith("derivative of CC BY-ND 4.0 weights")
    result = CliRunner().invoke(app, ["info", str(exported), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["license"].startswith("CC BY-ND 4.0; derivative of CC BY-ND 4.0 weights")
    plain = CliRunner().invoke(app, ["info", str(exported)])
    assert "derivative of CC BY-ND 4.0 weights" in " ".join(plain.output.split())


def test_weights_trained_from_scratch_carry_no_derivative_note(tmp_path):
    from biofound_cli.models.checkpoints import read_header

    ckpt = make_run(tmp_path, start_from=None)
    export_checkpoint(ckpt, "safetensors", tmp_path / "out")
    header = read_header(tmp_path / "out" / "model.safetensors")
    assert "license" not in header and "license_note" not in header and header["derived_from_official"] == "false"


def test_exported_weights_and_run_checkpoints_are_readable_by_the_group(tinymyo_ckpt, tmp_path):
    import os

    previous = os.umask(0o022)
    try:
        ckpt = save_small(tmp_path / "run" / "checkpoints" / "last" / "model.safetensors", "tinymyo")
        export_checkpoint(tinymyo_ckpt, "safetensors", tmp_path / "out")
    finally:
        os.umask(previous)
    for path in (ckpt, *(tmp_path / "out").iterdir()):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_the_card_states_the_window_the_checkpoint_records(tmp_path):
    """A LUNA checkpoint trained on 880-sample windows at 256 Hz: its card and config.json say 3.4375 s of 880 samples."""
    checkpoint = save_small(tmp_path / "luna.safetensors", "luna", n_times=880, sfreq=256.0)
    export_checkpoint(checkpoint, "safetensors", tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "× 880 samples at 256 Hz (3.4375 s)" in card
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (config["n_times"], config["sfreq"]) == (880, 256.0)


def test_a_card_without_a_recorded_rate_states_no_seconds(tmp_path):
    # Trained on a split packed without its rate, which training records as 0.
    checkpoint = save_small(tmp_path / "tinymyo.safetensors", "tinymyo", ch_names=["CH0", "CH1", "CH2", "CH3"], sfreq=0.0)
    export_checkpoint(checkpoint, "safetensors", tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "- Windows of 4 channels × 40 samples\n" in card


@pytest.mark.parametrize(
    "task, labels, shape, scores",
    [
        ("mc", ["clean", "artifact"], [4], "sigmoid of each channel's logit: the probability of artifact"),
        ("mmc", ["none", "chew", "eyem"], [4, 3], "class probabilities of each channel (none, chew, eyem)"),
        ("mcc", ["a", "b", "c"], [3], "softmax over the last axis: the class probabilities (a, b, c)"),
    ],
)
def test_card_config_and_info_give_the_graphs_output_shape(tmp_path, task, labels, shape, scores):
    # A 4-channel mc head gives 4 logits (one per channel), not one per class: the card said "2 output(s)".
    ckpt = save_small(
        tmp_path / "femba.safetensors", "femba", task=task, num_classes=len(labels), label_names=labels, sfreq=256.0
    )
    out = tmp_path / "export"
    exported = CliRunner().invoke(app, ["export", str(ckpt), "--format", "onnx", "--out", str(out), "--json"])
    assert exported.exit_code == 0, exported.output
    described = CliRunner().invoke(app, ["info", str(out / "model.onnx"), "--json"])
    graph = json.loads(described.stdout)
    config = json.loads((out / "config.json").read_text())
    assert graph["outputs"][0]["shape"] == config["outputs"]["logits"]["shape"] == ["batch", *shape]
    assert scores in config["outputs"]["logits"]["scores"] and config["num_classes"] == len(labels)
    assert graph["biofound"]["outputs"] == config["outputs"]
    card = (out / "README.md").read_text()
    assert f"**Head**: {task}; output `logits` of shape (batch, {', '.join(map(str, shape))}): " in card


def test_a_regression_heads_card_and_config_name_its_outputs_not_classes(tmp_path):
    """A head of two outputs named force and angle was carded as "Labels (class order)", its graph
    output described without them, though predict names its columns and means by them."""
    ckpt = save_small(
        tmp_path / "tinymyo.safetensors",
        "tinymyo",
        task="regression",
        num_classes=2,
        overrides={"reg_target_len": 1},
        label_names=["force", "angle"],
        sfreq=200.0,
    )
    out = tmp_path / "export"
    exported = CliRunner().invoke(app, ["export", str(ckpt), "--format", "onnx", "--out", str(out), "--json"])
    assert exported.exit_code == 0, exported.output
    config = json.loads((out / "config.json").read_text())
    expected = "the predicted values themselves, one per output on the last axis (force, angle)"
    assert config["outputs"]["prediction"]["scores"] == expected
    card = (out / "README.md").read_text()
    assert "- **Outputs** (last axis): force, angle\n" in card and "class order" not in card
    assert f"output `prediction` of shape (batch, 1, 2): {expected}" in card


def test_info_on_an_export_reads_back_the_chain_and_licence_config_json_records(tmp_path):
    # `info` on the checkpoint shows the chain raw recordings go through before the model, and its licence; on the
    # export of that checkpoint (the folder, or its model.onnx) both were left out, though predict runs the folder
    # through that chain and the licence decides whether the files may be shared.
    from biofound_cli.signals.chain import ChainConfig

    chain = {
        "corpus": "emg-csv",
        "options": {"sfreq": 256.0},
        **ChainConfig(window_seconds=40 / 256, units="native").to_json_dict(),
    }
    ckpt = save_small(tmp_path / "model.safetensors", "tinymyo", sfreq=256.0, preprocessing=chain)
    out = tmp_path / "export"
    exported = CliRunner().invoke(app, ["export", str(ckpt), "--format", "onnx", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    config = json.loads((out / "config.json").read_text())
    assert config["preprocessing"] == chain and config["license"]["derived_from_official"] is True
    folder = json.loads(CliRunner().invoke(app, ["info", str(out), "--json"]).stdout)
    graph = json.loads(CliRunner().invoke(app, ["info", str(out / "model.onnx"), "--json"]).stdout)["biofound"]
    for described in (folder, graph):
        assert described["preprocessing"] == chain and described["license"] == config["license"]


def test_a_pretraining_export_lists_no_classes_of_the_split_it_was_pretrained_on(tmp_path):
    # Pre-training on a labelled split records its class names; the card gave them as the reconstruction model's
    # "Labels (class order)" and config.json as its label_names, beside num_classes 0.
    ckpt = save_small(
        tmp_path / "pre.safetensors", "tinymyo", task="reconstruction", num_classes=None, label_names=["rest", "fist"]
    )
    out = tmp_path / "export"
    exported = CliRunner().invoke(app, ["export", str(ckpt), "--format", "onnx", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    config = json.loads((out / "config.json").read_text())
    assert (config["task"], config["num_classes"], config["label_names"]) == ("reconstruction", 0, None)
    card = (out / "README.md").read_text()
    assert "masked-reconstruction (pre-training)" in card and "Labels" not in card and "fist" not in card
