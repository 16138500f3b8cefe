"""The quick start's chain on a corpus of a few recordings of one gesture, as a user starts a study.

Two Myo recordings of gesture 0 (repetitions 0 and 3: train and test) pack into one class; the
fine-tuning head then had one output, cross-entropy over one logit is 0 from the first step, and
the run "trained" to val_loss 0.0000 with every metric meaningless. It is refused before training,
saying what to add.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus
from biofound_cli.recipes.shipped import shipped_recipe

runner = CliRunner()
MYO = Path(__file__).resolve().parents[2] / "biofound_cli" / "data" / "samples" / "emg" / "myo"
ROOT = ["--set", "preprocess.root=few"]
SETTINGS = ["--set", "data.num_workers=2", "--set", "train.epochs=3"]
"""The shipped tinymyo_myo recipe on the copied recordings (``ROOT``, preprocess's), shrunk in epochs only, with loader
workers; each stage is given the fields it reads (a --set of another section is warned of)."""


def _preprocess_and_pack(folder: Path, recordings: tuple[str, ...]) -> None:
    """Copy ``recordings`` of the bundled Myo set to ``folder/few`` beside the recipe; preprocess and pack them."""
    (folder / "few").mkdir()
    for name in recordings:
        shutil.copy(MYO / name, folder / "few" / name)
    shutil.copy(shipped_recipe("tinymyo_myo"), folder / "r.toml")
    for stage in (["preprocess", "--recipe", "r.toml", *ROOT], ["pack", "--recipe", "r.toml"]):
        result = runner.invoke(app, stage)
        assert result.exit_code == 0, result.output


def test_one_class_is_refused_before_training_and_repacking_gives_the_same_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _preprocess_and_pack(tmp_path, ("R_0_C_0_EMG.csv", "R_3_C_0_EMG.csv"))
    again = runner.invoke(app, ["pack", "--recipe", "r.toml"])
    assert "shards are gone" not in again.stderr, again.stderr
    result = runner.invoke(app, ["finetune", "r.toml", "--unset", "data.val", *SETTINGS])
    assert result.exit_code == ExitStatus.FAILED, result.output
    assert result.stderr.strip() == (
        "error: out/tinymyo_myo/packed/train.h5: every packed split holds class 0 alone, and a classifier needs at "
        "least 2 classes; preprocess and pack recordings of other classes, or set model.num_classes to the corpus's "
        "number of classes"
    )
    assert not (tmp_path / "out" / "tinymyo_myo" / "runs" / "tinymyo-myo" / "checkpoints").exists()


@pytest.mark.slow
def test_a_run_trained_without_val_is_evaluated_from_its_last_weights_and_a_one_class_test_split_is_scored(tmp_path, monkeypatch):
    """Three recordings: two gestures of repetition 0 (train) and one of repetition 3 (test), none for val.

    Pack leaves val empty and fine-tuning refuses data.val, advising ``--unset data.val``; the run
    then trains without evaluations, and evaluate said "the run has no best checkpoint yet; finish
    `biofound finetune` first" of a finished run. Its last weights are its best now.
    """
    monkeypatch.chdir(tmp_path)
    _preprocess_and_pack(tmp_path, ("R_0_C_0_EMG.csv", "R_0_C_1_EMG.csv", "R_3_C_1_EMG.csv"))
    refused = runner.invoke(app, ["finetune", "r.toml", *SETTINGS])
    assert refused.exit_code == ExitStatus.USAGE and "(--unset data.val trains without validation)" in refused.stderr
    trained = runner.invoke(app, ["finetune", "r.toml", "--unset", "data.val", *SETTINGS, "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["best_checkpoint"]
    scored = runner.invoke(app, ["evaluate", "r.toml", *SETTINGS, "--json"])
    assert scored.exit_code == 0, scored.output
    summary = json.loads(scored.stdout)
    assert summary["windows"] == 8 and summary["metrics"]["auroc"] is None  # one class in the test split
    assert all(Path(plot).is_file() for plot in summary["plots"])


@pytest.mark.slow
def test_a_training_split_of_one_class_in_a_corpus_of_two_is_named_once_at_finetune(tmp_path, monkeypatch):
    """Repetitions 0 and 1 (train) of gesture 0 alone, repetition 2 (val) and 3 (test) of gestures 0 and 1.

    Pack warns that train lacks class 1; `finetune` trained a model that answers 0 whatever the
    input, through an evaluation every epoch, without a word. It warns once, naming the file and the class.
    """
    monkeypatch.chdir(tmp_path)
    _preprocess_and_pack(
        tmp_path, ("R_0_C_0_EMG.csv", "R_1_C_0_EMG.csv", "R_2_C_0_EMG.csv", "R_2_C_1_EMG.csv", "R_3_C_1_EMG.csv")
    )
    trained = runner.invoke(app, ["finetune", "r.toml", *SETTINGS, "--json", "--no-progress"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["epochs"] == 3
    warning = "training split out/tinymyo_myo/packed/train.h5 holds only class '0' of 2"
    assert trained.stderr.count(warning) == 1, trained.stderr
    rows = [json.loads(line) for line in (tmp_path / "out/tinymyo_myo/runs/tinymyo-myo/metrics.jsonl").read_text().splitlines()]
    assert len([row for row in rows if row["split"] == "val"]) == 3
