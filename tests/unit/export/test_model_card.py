"""The model card: provenance from the run folder, the last evaluation, and the licence gate."""

from __future__ import annotations

import json
import logging

from fixtures.export_models import save_small

from biofound_cli.export import export_checkpoint


def warnings_logged(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def make_run(tmp_path, *, start_from: str | None):
    """A run folder as `biofound finetune` and `biofound evaluate` leave it."""
    run = tmp_path / "runs" / "uci"
    ckpt = save_small(run / "checkpoints" / "best" / "model.safetensors", "tinymyo", step=120)
    recipe = {
        "name": "uci",
        "data": {"train": "packed/train.h5", "transform": "none", "batch_size": 32},
        "model": {"variant": "tinymyo", "task": "mcc", "checkpoint": start_from},
        "optim": {"lr": 0.0005},
    }
    (run / "recipe.json").write_text(json.dumps(recipe))
    (run / "eval" / "test").mkdir(parents=True)
    report = {"task": "mcc", "headline": {"windows": {"balanced_accuracy": 0.8125, "cohen_kappa": 0.75}}}
    (run / "eval" / "test" / "report.json").write_text(json.dumps(report))
    return ckpt


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


def test_card_reads_recipe_and_last_evaluation_from_the_run_folder(tmp_path):
    ckpt = make_run(tmp_path, start_from="checkpoints/tinymyo/base.safetensors")
    export_checkpoint(ckpt.parent, "safetensors", tmp_path / "out")  # a checkpoint folder works too
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| balanced_accuracy | 0.8125 |" in card and "| cohen_kappa | 0.75 |" in card
    assert "train = packed/train.h5" in card and "lr = 0.0005" in card
    assert "Training step of the checkpoint: 120" in card
    assert "started from checkpoints/tinymyo/base.safetensors" in card
    assert "Labels" not in card  # none stored in this checkpoint


def test_weights_trained_from_scratch_need_no_acknowledgement(tmp_path, caplog):
    ckpt = make_run(tmp_path, start_from=None)
    result = export_checkpoint(ckpt, "safetensors", tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "trained from scratch" in card and "Internal use only" not in card
    assert result.licence["derived_from_official"] is False and not warnings_logged(caplog)


def test_card_without_evaluation_says_so(tinymyo_ckpt, tmp_path):
    export_checkpoint(tinymyo_ckpt, "safetensors", tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "No `biofound evaluate` report was found" in card and "not a medical device" in card
    assert "Labels** (output order): class0, class1, class2" in card and "at 256 Hz" in card
