"""``biofound finetune`` / ``pretrain`` end to end on a tiny TinyMyo and hand-made packed splits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures.official import official_release
from fixtures.packed import N_TIMES, TINYMYO, toml_table, write_packed
from fixtures.tiny_training import N_CHANNELS, N_CLASSES, TINY, tiny_recipe
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus

runner = CliRunner()


@pytest.fixture
def recipe(tmp_path) -> Path:
    train = 'max_steps = 6\neval_every = 3\nearly_stopping_metric = "val_balanced_accuracy"\nearly_stopping_mode = "max"'
    return tiny_recipe(tmp_path, train, optim="lr = 1e-3\nwarmup_steps = 1")


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", ["validate", "finetune"])
def test_a_multi_class_head_of_one_output_is_refused_before_any_work(recipe, tmp_path, command):
    # validate passed it; finetune refused it against a split of 2 classes only, and trained it on one.
    head = ["--set", "model.task=mcc", "--set", "model.num_classes=1"]
    refused = invoke(command, str(recipe), *head, "--json")
    assert refused.exit_code == ExitStatus.USAGE, refused.output
    error = json.loads(refused.stdout.strip().splitlines()[-1])["error"]
    assert "model.task = 'mcc', model.num_classes = 1: a head of task 'mcc' scores each class with an output" in error
    assert "num_classes must be at least 2, got 1 (a binary head of one logit is task 'bc')" in error
    assert not (tmp_path / "runs").exists()
    # A binary head of one logit is one.
    assert invoke("validate", str(recipe), "--set", "model.task=bc", "--set", "model.num_classes=1").exit_code == 0


def test_finetune_writes_the_run_folder_and_a_json_summary(recipe, tmp_path):
    result = invoke("finetune", str(recipe), "--json", "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 6 and summary["stage"] == "finetune"
    assert "val_balanced_accuracy" in summary["metrics"]
    run = tmp_path / "runs" / "tiny"
    for name in ("recipe.json", "environment.json", "metrics.jsonl", "train_curve.png", "checkpoints/best/model.safetensors"):
        assert (run / name).is_file(), name
    assert json.loads((run / "recipe.json").read_text())["model"]["variant"] == "tinymyo"

    from biofound_cli.models.checkpoints import load

    model = load(run / "checkpoints" / "best" / "model.safetensors")
    assert type(model).__name__ == "TinyMyo"

    again = invoke("finetune", str(recipe), "--quiet")
    assert again.exit_code == ExitStatus.USAGE
    assert "--resume auto" in again.output
    # A missing split was told after "already holds checkpoints", whose two ways on need it too.
    for field in ("train", "val"):
        missing = invoke("finetune", str(recipe), "--set", f"data.{field}=nope.h5")
        assert missing.exit_code == ExitStatus.USAGE, missing.output
        assert f"data.{field} = 'nope.h5' does not exist" in missing.output
        assert "already holds checkpoints" not in missing.output

    # A requeue after the last step whose staged data is gone: it was refused for the missing data.train.
    for split in ("train.h5", "val.h5"):
        (tmp_path / split).rename(tmp_path / f"{split}.away")
    finished = invoke("finetune", str(recipe), "--resume", "auto", "--json", "--quiet")
    assert finished.exit_code == 0, finished.output
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert report["steps"] == 6 and report["last_checkpoint"].endswith("step-00000006")
    assert "val_balanced_accuracy" in report["metrics"] and report["best_metrics"] == summary["best_metrics"]
    for split in ("train.h5", "val.h5"):
        (tmp_path / f"{split}.away").rename(tmp_path / split)

    changed = invoke("finetune", str(recipe), "--resume", "auto", "--set", "train.max_steps=9", "--json", "--quiet")
    assert changed.exit_code == ExitStatus.USAGE
    failure = json.loads(changed.stdout.strip().splitlines()[-1])
    assert failure["exit_status"] == ExitStatus.USAGE and "train.max_steps: 6 -> 9" in failure["error"]

    resumed = invoke(
        "finetune", str(recipe), "--resume", "auto", "--set", "train.max_steps=9", "--allow-changes", "--json", "--quiet"
    )
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["steps"] == 9
    # The cosine now runs over 9 steps: step 7 trains at its rate there, not at the 6-step one's end (optim.min_lr).
    assert "the learning rate at step 7 is 0.000252 under this recipe's schedule and was 2.5e-06 under the one" in resumed.stderr
    history = [json.loads(line) for line in (run / "recipe_history.jsonl").read_text().splitlines()]
    # The re-run of the finished run trained nothing and is recorded as a start all the same; the refused one is not.
    assert [record["changes"] for record in history] == [[], [], ["train.max_steps: 6 -> 9"]]
    assert history[1]["resumed_from"].endswith("step-00000006")
    assert history[-1]["recipe"]["train"]["max_steps"] == 9 and history[0]["recipe"]["train"]["max_steps"] == 6


def test_a_run_killed_between_the_renames_of_its_nan_weights_finds_them_whole_on_its_next_start(recipe, tmp_path):
    # The run folder's start cleared the leftovers of root/ and checkpoints/ but not of debug/: weights kept at a NaN
    # loss, written again there by a resume diverging at the same step, stayed moved aside (.old) for good, beside
    # the half of the new copy (.tmp), when the run was killed between atomic_folder's two renames.
    assert invoke("finetune", str(recipe), "--quiet").exit_code == 0
    debug = tmp_path / "runs" / "tiny" / "debug"
    debug.mkdir()
    aside = debug / ".step-00000004-nonfinite.node99.4242.0123abcd.old"  # the earlier copy, moved aside
    aside.mkdir()
    (aside / "model.safetensors").write_bytes(b"the weights at the NaN loss")
    new = debug / ".step-00000004-nonfinite.node99.4242.89abcdef.tmp"  # the new copy, not yet renamed in
    new.mkdir()
    (new / "model.safetensors").write_bytes(b"half")

    result = invoke("finetune", str(recipe), "--resume", "auto", "--quiet")

    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in debug.iterdir()) == ["step-00000004-nonfinite"]
    assert (debug / "step-00000004-nonfinite" / "model.safetensors").read_bytes() == b"the weights at the NaN loss"


def test_finetune_checks_the_recipe_once(recipe, monkeypatch):
    """Building the job ran check_training again on every rank after the command's check_start had run it as the recipe
    loaded (picking the device a second time)."""
    from biofound_cli.training import run, setup

    calls = []
    check = setup.check_training

    def counted(*args):
        calls.append(args[1])
        return check(*args)

    monkeypatch.setattr(setup, "check_training", counted)
    monkeypatch.setattr(run, "check_training", counted)
    assert invoke("finetune", str(recipe), "--quiet").exit_code == 0
    assert calls == ["finetune"]


def test_a_resumed_runs_progress_counts_its_steps_from_where_it_resumed(recipe, tmp_path):
    # A run resumed at step 6 of 9 showed "training: 3/3 steps": a bar from 0 over the steps left, where
    # metrics.jsonl and the bar's own "step 9 loss ..." count the run's steps.
    assert invoke("finetune", str(recipe), "--quiet").exit_code == 0
    resumed = invoke(
        "finetune", str(recipe), "--resume", "auto", "--set", "train.max_steps=9", "--allow-changes", "--no-progress"
    )
    assert resumed.exit_code == 0, resumed.output
    # The plain line's description is the bar's last ("step 9 loss ..."): the count follows it.
    [line] = [line for line in resumed.output.splitlines() if " steps/s" in line]
    assert "step 9 loss " in line and ": 9/9 steps (" in line, resumed.output


@pytest.mark.parametrize("mode", ["frozen", "lora"])
def test_frozen_and_lora_modes_train_and_save_plain_weights(recipe, tmp_path, mode):
    result = invoke(
        "finetune",
        str(recipe),
        "--quiet",
        "--set",
        f"model.finetune={mode}",
        "--set",
        f"output.run_name={mode}",
        "--set",
        "train.max_steps=3",
    )
    assert result.exit_code == 0, result.output
    from biofound_cli.models.checkpoints import load

    load(tmp_path / "runs" / mode / "checkpoints" / "best" / "model.safetensors")


def test_a_resumable_lora_checkpoint_is_refused_by_evaluate_in_one_line(recipe, tmp_path):
    # A step-N of a LoRA run keeps its adapters apart (for resuming): evaluate, export and predict
    # used to report it as "does not fit the model ... for this model variant and task".
    trained = invoke("finetune", str(recipe), "--quiet", "--set", "model.finetune=lora", "--set", "train.max_steps=3")
    assert trained.exit_code == 0, trained.output
    step = tmp_path / "runs" / "tiny" / "checkpoints" / "step-00000003"
    result = invoke("evaluate", str(recipe), "--split", "val", "--checkpoint", str(step), "--no-plots")
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert "resumable checkpoint of a LoRA run" in result.output and "checkpoints/best" in result.output
    assert "does not fit" not in result.output


@pytest.mark.parametrize("command", ["validate", "finetune"])
def test_an_empty_lora_targets_is_refused_by_the_recipe_check_before_any_work(recipe, tmp_path, command):
    # validate said "Recipe is valid"; finetune built the model, then said the empty list "matched no layer".
    lora = ("--set", "model.finetune=lora", "--set", "model.lora_targets=[]", "--set", "data.num_workers=2")
    refused = invoke(command, str(recipe), *lora, "--json")
    assert refused.exit_code == ExitStatus.USAGE, refused.output
    error = json.loads(refused.stdout.strip().splitlines()[-1])["error"]
    assert "model.lora_targets is empty, so model.finetune = 'lora' would adapt no layer" in error
    assert "\n" not in error and "matched no layer" not in error and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.overrides.mlp_ratio=1e30", "TinyMyo with mlp_ratio = 1e+30 would have more than 2**63 parameters"),
        ("model.overrides.embed_dim=1200000", "TinyMyo with embed_dim = 1200000 would have 3.46e+13 parameters"),
        ("model.overrides.n_layer=10000000", "TinyMyo with n_layer = 10000000 would have"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "finetune"])
def test_a_model_too_large_for_memory_is_refused_naming_the_argument(recipe, tmp_path, command, override, named):
    # A finite but absurd size passed validate (or ended it in a traceback) and died in torch's allocator.
    refused = invoke(command, str(recipe), "--set", override, "--json")
    assert refused.exit_code == ExitStatus.USAGE, refused.output
    error = json.loads(refused.stdout.strip().splitlines()[-1])["error"]
    assert named in error and "above the 4.29e+09 (16 GiB of float32 weights) a model may have" in error
    # Only the recipe field is named: no checkpoint is involved ("or the checkpoint's constructor_kwargs").
    assert error.endswith(f"lower {override.split('=')[0]}")
    assert "\n" not in error and not (tmp_path / "runs").exists()


def test_lora_targets_matching_no_layer_are_refused_naming_the_layers_the_model_has(recipe, tmp_path):
    # The refusal said "name Linear layers such as qkv, fc1", names a FEMBA model does not have.
    result = invoke("finetune", str(recipe), "--set", "model.finetune=lora", "--set", 'model.lora_targets=["x_proj", "dt_proj"]')
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert "model.lora_targets = ['x_proj', 'dt_proj'] matched no layer of this model" in result.output
    assert "its layers that take adapters are fc1, fc2, proj, qkv" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs" / "tiny").exists()


def test_a_model_built_for_the_data_as_the_starting_run_was_is_advised_without_dropping_its_weights(recipe, tmp_path):
    # Fine-tuning from a run trained on 4 channels (model.overrides.in_chans = 4) with a recipe that
    # left the override out: the advice was "set model.overrides.in_chans = 4 to train from scratch",
    # sending the user away from the weights the setting starts from.
    first = invoke("finetune", str(recipe), "--quiet", "--set", "data.num_workers=2")
    assert first.exit_code == 0, first.output
    run = tmp_path / "runs" / "tiny"
    overrides = "model.overrides=" + toml_table({key: value for key, value in TINYMYO.items() if key != "in_chans"})
    start = ("--set", f"model.checkpoint={run}", "--set", "output.run_name=second", "--set", "model.finetune=lora")
    refused = invoke("finetune", str(recipe), "--set", overrides, *start)
    assert refused.exit_code == ExitStatus.FAILED, refused.output
    assert (
        "has 4 channels but tinymyo expects 16; set model.overrides.in_chans = 4, which keeps the weights of " in refused.output
    )
    assert "to train from scratch" not in refused.output
    advised = invoke("finetune", str(recipe), "--quiet", "--set", overrides.replace("{", "{in_chans = 4, "), *start)
    assert advised.exit_code == 0, advised.output


def test_a_channel_subset_keeps_the_starting_tinymyo_weights_in_the_advice(recipe, tmp_path):
    # TinyMyo's in_chans sizes the head alone, yet data of 3 of the starting run's 4 channels were told
    # "set model.overrides.in_chans = 3 and leave model.checkpoint unset to train from scratch".
    first = invoke("finetune", str(recipe), "--quiet", "--set", "data.num_workers=2")
    assert first.exit_code == 0, first.output
    for split in ("train", "val"):
        with h5py.File(tmp_path / f"{split}.h5", "a") as handle:
            x = handle["x"][:, :3]
            del handle["x"]
            handle.create_dataset("x", data=x)
            handle.attrs["channel_names"] = [f"EMG{c}" for c in range(3)]
    start = ("--set", f"model.checkpoint={tmp_path / 'runs' / 'tiny'}", "--set", "output.run_name=subset")
    refused = invoke("finetune", str(recipe), *start, "--set", "model.finetune=lora")
    assert refused.exit_code == ExitStatus.FAILED, refused.output
    said = " ".join(refused.output.split())
    assert "has 3 channels but tinymyo expects 4; set model.overrides.in_chans = 3, which keeps the weights of " in said
    assert "from scratch" not in said
    advised = invoke(
        "finetune", str(recipe), "--quiet", *start, "--set", "model.overrides.in_chans=3", "--set", "data.num_workers=2"
    )
    assert advised.exit_code == 0, advised.output


def test_resuming_a_lora_run_with_another_rank_is_refused_in_one_line_and_leaves_the_run_as_it_was(recipe, tmp_path):
    # --allow-changes with another model.lora_rank stopped in a traceback of torch's "size mismatch"
    # lines, after rewriting recipe.json: resuming with the original settings was then refused too.
    by_epoch = tmp_path / "by_epoch.toml"
    by_epoch.write_text(recipe.read_text().replace("max_steps = 6\neval_every = 3", "epochs = 1"))
    lora = ("--set", "model.finetune=lora", "--set", "data.num_workers=2")
    first = invoke("finetune", str(by_epoch), "--quiet", *lora)
    assert first.exit_code == 0, first.output
    run = tmp_path / "runs" / "tiny"
    recorded = (run / "recipe.json").read_text()
    longer = ("--resume", "auto", "--allow-changes", "--set", "train.epochs=3")
    refused = invoke("finetune", str(by_epoch), *lora, *longer, "--set", "model.lora_rank=4")
    assert refused.exit_code == ExitStatus.USAGE, refused.output
    [line] = refused.output.strip().splitlines()[-1:]
    assert "step-00000006 holds another model than this recipe builds (model.lora_rank: 8 -> 4)" in line
    assert f"--set model.checkpoint={run / 'checkpoints' / 'best'} --set output.run_name=NEW_NAME" in line
    assert "Traceback" not in refused.output and "size mismatch" not in refused.output
    assert (run / "recipe.json").read_text() == recorded
    resumed = invoke("finetune", str(by_epoch), "--json", "--quiet", *lora, *longer)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["steps"] == 18


def test_a_lora_run_without_validation_keeps_its_last_weights_as_best_for_evaluate_and_export(recipe, tmp_path):
    # Without data.val nothing chose a best, and a LoRA run's step-N folders keep the adapters apart:
    # evaluate, export and predict refused every checkpoint of such a run, which had trained for nothing.
    val = f'val = "{tmp_path / "val.h5"}"'
    no_val = tmp_path / "no_val.toml"
    text = recipe.read_text().replace(val, f'test = "{tmp_path / "val.h5"}"\nnum_workers = 2')
    no_val.write_text(text.replace("max_steps = 6", "epochs = 3"))
    lora = ("--set", "model.finetune=lora", "--set", "train.early_stopping_patience=2")
    trained = invoke("finetune", str(no_val), "--json", "--quiet", *lora)
    assert trained.exit_code == 0, trained.output
    # The patience has no evaluation to count: it was passed over without a word.
    assert "train.early_stopping_patience = 2 has nothing to count: data.val is not set" in trained.stderr
    summary = json.loads(trained.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 18 and summary["best_step"] == 18, summary
    best = tmp_path / "runs" / "tiny" / "checkpoints" / "best"
    assert summary["best_checkpoint"] == str(best)

    from biofound_cli.models.checkpoints import read_metadata

    assert read_metadata(best / "model.safetensors").extra["step"] == 18
    scored = invoke("evaluate", str(no_val), "--split", "test", "--no-plots", "--json", "--quiet")
    assert scored.exit_code == 0, scored.output
    exported = invoke("export", str(best), "--out", str(tmp_path / "export"), "--quiet")
    assert exported.exit_code == 0, exported.output
    again = invoke("finetune", str(no_val), "--resume", "auto", "--json", "--quiet", *lora)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout.strip().splitlines()[-1])["best_checkpoint"] == str(best)


@pytest.mark.parametrize("watched", ["val_auroc", "val_cohen_kappa"])
def test_a_watched_metric_undefined_at_every_evaluation_keeps_the_last_weights_as_best(recipe, tmp_path, watched):
    # val_auroc of a data.val holding one class is null at every evaluation: nothing ever improved,
    # the run "finished" with best_checkpoint null and a LoRA run left no weights evaluate would take.
    # Each such evaluation counted toward the patience too: the run stopped after the first epoch.
    # val_cohen_kappa of the same split was 0.0 (chance agrees with one class as the model does): the
    # first evaluation was the best and the patience stopped the run at the second.
    with h5py.File(tmp_path / "val.h5", "r+") as handle:
        handle["y"][...] = 0
    by_epoch = tmp_path / "by_epoch.toml"
    by_epoch.write_text(recipe.read_text().replace("max_steps = 6\neval_every = 3", "epochs = 3"))
    watch = ("--set", "model.finetune=lora", "--set", "data.num_workers=2", "--set", f"train.early_stopping_metric={watched}")
    trained = invoke("finetune", str(by_epoch), "--json", "--no-progress", *watch, "--set", "train.early_stopping_patience=1")
    assert trained.exit_code == 0, trained.output
    assert f"'{watched}' was undefined (null in metrics.jsonl) at every evaluation" in trained.stderr
    summary = json.loads(trained.stdout.strip().splitlines()[-1])
    best = tmp_path / "runs" / "tiny" / "checkpoints" / "best"
    assert summary["best_step"] == summary["steps"] == 18 and summary["best_checkpoint"] == str(best), summary
    undefined = f"{watched} undefined (null): neither an improvement nor counted toward train.early_stopping_patience"
    assert [line.split(":")[0] for line in trained.stderr.splitlines() if undefined in line] == ["step 6", "step 12", "step 18"]
    scored = invoke("evaluate", str(by_epoch), "--split", "val", "--no-plots", "--json", "--quiet")
    assert scored.exit_code == 0, scored.output
    rows = [json.loads(line) for line in (tmp_path / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()]
    last = [row for row in rows if row["split"] == "val"][-1]
    metrics = json.loads(scored.stdout.strip().splitlines()[-1])["metrics"]
    assert last["val_auroc"] is last["val_cohen_kappa"] is metrics["cohen_kappa"] is None
    assert metrics["auroc"] is None and metrics["accuracy"] == pytest.approx(last["val_accuracy"], abs=1e-12)


def test_a_val_loss_nan_at_every_evaluation_keeps_no_weights_as_best_and_says_so_each_epoch(recipe, tmp_path):
    # A window of data.val holding inf makes every val_loss NaN. The metrics scored from those outputs
    # raised scikit-learn's "Input contains NaN" as a traceback; a val_loss NaN, compared as no
    # improvement, was the best at the first evaluation and a strike at every other, silently.
    with h5py.File(tmp_path / "val.h5", "r+") as handle:
        handle["x"][0, 0, 0] = np.inf
    by_epoch = tmp_path / "by_epoch.toml"
    by_epoch.write_text(recipe.read_text().replace("max_steps = 6\neval_every = 3", "epochs = 3"))
    options = ("--set", "model.finetune=lora", "--set", "data.num_workers=2", "--set", "train.early_stopping_patience=1")
    trained = invoke("finetune", str(by_epoch), "--json", "--no-progress", *options)
    assert trained.exit_code == ExitStatus.FAILED, trained.output
    warned = [line for line in trained.stderr.splitlines() if line.startswith("warning: step") and "val_loss is NaN" in line]
    assert [line.split(":")[1] for line in warned] == [" step 6 (epoch 0)", " step 12 (epoch 1)", " step 18 (epoch 2)"]
    report = json.loads(trained.stdout.strip().splitlines()[-1])
    assert report["error"].startswith("val_loss was NaN or inf at the last step (18) and no evaluation chose a best")
    assert not (tmp_path / "runs" / "tiny" / "checkpoints" / "best").exists()
    rows = [json.loads(line) for line in (tmp_path / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()]
    assert {value for row in rows if row["split"] == "val" for key, value in row.items() if key.startswith("val_")} == {None}


def test_the_summary_gives_the_best_steps_metrics_beside_the_best_checkpoint(recipe, tmp_path):
    # `metrics` is the last evaluation: beside best_checkpoint it gave another step's numbers,
    # which a researcher would report for the kept weights.
    result = invoke("finetune", str(recipe), "--json", "--quiet", "--set", "train.eval_every=1")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    rows = [json.loads(line) for line in (tmp_path / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()]
    at_best = [row for row in rows if row["split"] == "val" and row["step"] == summary["best_step"]][-1]
    assert summary["best_metrics"] == {key: value for key, value in at_best.items() if key.startswith("val_")}
    assert summary["best_metrics"]["val_balanced_accuracy"] == summary["best_metric"]["val_balanced_accuracy"]
    last = [row for row in rows if row["split"] == "val"][-1]
    assert summary["metrics"]["val_loss"] == last["val_loss"]


def test_the_same_training_writes_the_same_checkpoint_bytes(recipe, tmp_path):
    # safetensors wrote the metadata in a hash map's order, new in every process: the same weights
    # had another sha256 (which evaluate's reports and predict's journal go by) on every write.
    for name in ("first", "second"):
        assert invoke("finetune", str(recipe), "--quiet", "--set", f"output.run_name={name}").exit_code == 0
    for checkpoint in ("best", "step-00000006"):
        first, second = (
            tmp_path / "runs" / name / "checkpoints" / checkpoint / "model.safetensors" for name in ("first", "second")
        )
        assert first.read_bytes() == second.read_bytes(), checkpoint


def test_a_resume_from_before_the_best_puts_back_that_checkpoints_best(recipe, tmp_path):
    # Evaluated every step, checkpointed every other: the first run's best (a later step) replaced
    # checkpoints/best. Resumed from step 2 with another learning rate, step 3 does worse than the
    # best so far, and checkpoints/best kept the weights of the first run, which this run reports
    # nowhere: evaluate and export took them, under another step than the summary's best_step.
    watch = [
        "--set",
        "train.early_stopping_metric=val_loss",
        "--set",
        "train.early_stopping_mode=min",
        "--set",
        "train.keep_checkpoints=3",
    ]
    first = invoke("finetune", str(recipe), "--quiet", *watch, "--set", "train.eval_every=1", "--set", "train.checkpoint_every=2")
    assert first.exit_code == 0, first.output
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    resumed = invoke(
        "finetune", str(recipe), "--json", "--quiet", *watch, "--set", "train.eval_every=1", "--set", "train.checkpoint_every=2",
        "--resume", str(checkpoints / "step-00000002"), "--allow-changes", "--set", "optim.lr=1000", "--set", "train.max_steps=3",
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["best_step"] <= 2

    from biofound_cli.models.checkpoints import read_metadata

    best = read_metadata(checkpoints / "best" / "model.safetensors").extra
    assert best == {"step": summary["best_step"], "val_loss": summary["best_metric"]["val_loss"]}


@pytest.mark.slow
def test_two_steps_an_epoch_draw_a_training_point_beside_each_validation_point_and_a_resume_draws_the_same(tmp_path, monkeypatch):
    # 24 windows in batches of 12: two steps an epoch under the default log_every (10). train_curve.png drew one
    # training point (the last step's) against the three epochs' validation points.
    from biofound_cli.training import curves

    drawn = []
    figure = curves.training_curves_figure

    def spied(*args, **kwargs):
        made = figure(*args, **kwargs)
        drawn.append({line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in made.axes[0].lines})
        return made

    monkeypatch.setattr(curves, "training_curves_figure", spied)
    recipe = tiny_recipe(tmp_path, "epochs = 3\nkeep_checkpoints = 3", data="num_workers = 2", optim="lr = 1e-3")
    finetune = ("finetune", str(recipe), "--quiet", "--set", "data.batch_size=12")
    assert invoke(*finetune).exit_code == 0
    [straight] = drawn
    assert straight["train_loss"][0] == straight["val_loss"][0] == [2, 4, 6], straight

    # Resumed from the first epoch's checkpoint, the run draws the curve of the run that was not stopped.
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    resumed = invoke(*finetune, "--resume", str(checkpoints / "step-00000002"))
    assert resumed.exit_code == 0, resumed.output
    assert drawn[1] == straight


@pytest.mark.slow
def test_the_training_curve_names_its_epoch_means_as_means_of_the_logged_steps(tmp_path, monkeypatch):
    # Six steps an epoch, the loss logged at steps 4 and 6 of them: the thick line was labelled
    # "train_loss (epoch mean)" though it averaged the logged records, not every step the epoch trained.
    from biofound_cli.training import curves

    drawn = []
    figure = curves.training_curves_figure

    def spied(*args, **kwargs):
        made = figure(*args, **kwargs)
        drawn.append({line.get_label(): list(line.get_ydata()) for line in made.axes[0].lines})
        return made

    monkeypatch.setattr(curves, "training_curves_figure", spied)
    recipe = tiny_recipe(tmp_path, "epochs = 1\nlog_every = 4", data="num_workers = 2", optim="lr = 1e-3")
    assert invoke("finetune", str(recipe), "--quiet").exit_code == 0
    rows = [json.loads(line) for line in (tmp_path / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()]
    logged = [row["loss"] for row in rows if row["split"] == "train"]
    assert [row["step"] for row in rows if row["split"] == "train"] == [4, 6]  # of the epoch's 6 steps
    [labels] = drawn
    assert labels["train_loss (logged steps)"] == pytest.approx(logged)
    assert labels["train_loss (epoch mean of logged steps)"] == pytest.approx([sum(logged) / 2])
    assert not [label for label in labels if label.endswith("(epoch mean)")]


def test_resume_refuses_another_runs_checkpoint_and_the_best_weights_and_its_advice_runs(recipe, tmp_path):
    # `--resume runs/tiny/checkpoints/step-2` with another run name continued tiny's steps,
    # optimiser and best into runs/other without a word, its recipe compared with nothing.
    loaders = ["--set", "data.num_workers=2", "--set", "train.checkpoint_every=2"]
    assert invoke("finetune", str(recipe), "--quiet", *loaders).exit_code == 0
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    other = ["--set", "output.run_name=other"]
    step = checkpoints / "step-00000004"
    refused = invoke("finetune", str(recipe), "--json", "--quiet", *loaders, *other, "--resume", str(step))
    assert refused.exit_code == ExitStatus.USAGE
    error = json.loads(refused.stdout.strip().splitlines()[-1])["error"]
    assert f"a checkpoint of {tmp_path / 'runs' / 'tiny'}, not of this recipe's run {tmp_path / 'runs' / 'other'}" in error
    assert not list((tmp_path / "runs").glob("other/checkpoints/step-*"))
    best = invoke("finetune", str(recipe), "--json", "--quiet", *loaders, "--resume", str(checkpoints / "best"))
    assert best.exit_code == ExitStatus.USAGE
    assert "the best weights keep no optimiser or sampler state" in json.loads(best.stdout.strip().splitlines()[-1])["error"]
    # The advice of the refusal: a new run from those weights.
    advised = invoke(
        "finetune", str(recipe), "--json", "--quiet", *loaders, *other, "--set", f"model.checkpoint={step}", "--resume", "none"
    )
    assert advised.exit_code == 0, advised.output
    assert json.loads(advised.stdout.strip().splitlines()[-1])["steps"] == 6


@pytest.mark.parametrize("finetune", ["lora", "frozen", "full"])
def test_a_frozen_or_lora_body_without_starting_weights_is_named_in_a_warning(recipe, finetune):
    # LoRA or a linear probe on a random body trains almost nothing: usually model.checkpoint was forgotten.
    result = invoke("finetune", str(recipe), "--no-progress", "--set", f"model.finetune={finetune}")
    assert result.exit_code == 0, result.output
    warned = "trains adapters and the head" if finetune == "lora" else "trains the head alone"
    assert (f"model.finetune = '{finetune}' {warned} on a body of random weights" in result.output) == (finetune != "full")


def test_pretrain_runs_the_masked_reconstruction(recipe, tmp_path):
    result = invoke(
        "pretrain",
        str(recipe),
        "--json",
        "--quiet",
        "--set",
        "train.early_stopping_metric=val_loss",
        "--set",
        "train.early_stopping_mode=min",
        "--set",
        "output.run_name=pre",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["metrics"]["val_loss"] > 0
    # The split's classes (gesture0, ...) were recorded as the checkpoint's, though a reconstruction head has none.
    from biofound_cli.models.checkpoints import read_metadata

    best = tmp_path / "runs" / "pre" / "checkpoints" / "best" / "model.safetensors"
    assert "label_names" not in read_metadata(best).as_dict()


def test_pretraining_femba_on_a_channel_count_its_patches_do_not_tile_is_one_line(recipe, tmp_path):
    # A 19-electrode 10-20 montage with model.overrides.num_channels = 19: pre-training crashed with a
    # reshape traceback at the first batch, and fine-tuning trained with the last channel never seen.
    from fixtures.eval_split import write_packed as write_odd

    train = write_odd(tmp_path / "odd_train.h5", n_channels=5, n_times=64)
    val = write_odd(tmp_path / "odd_val.h5", n_channels=5, n_times=64)
    femba = "{seq_length = 64, num_channels = 5, embed_dim = 8, num_blocks = 1, exp = 1}"
    for stage in ("pretrain", "finetune"):
        result = invoke(
            stage,
            str(recipe),
            *("--set", f"data.train={train}", "--set", f"data.val={val}"),
            *("--set", "model.variant=femba-tiny", "--set", f"model.overrides={femba}"),
            *("--set", "train.early_stopping_metric=val_loss", "--set", "train.early_stopping_mode=min"),
        )
        assert result.exit_code == ExitStatus.USAGE, result.output
        assert "Traceback" not in result.output
        assert "cover 4 of the 5 channels, so the last 1 would never be seen; give it 4 or 6 channels" in result.output


def test_clear_errors_for_fp16_on_cpu_and_mismatched_data(recipe, tmp_path):
    fp16 = invoke("finetune", str(recipe), "--set", "train.precision=fp16")
    assert fp16.exit_code == ExitStatus.USAGE and "fp16" in fp16.output
    wrong = invoke("finetune", str(recipe), "--set", "model.overrides={in_chans = 8, img_size = 40, patch_size = 20}")
    assert wrong.exit_code == ExitStatus.FAILED
    assert "has 4 channels but tinymyo expects 8" in wrong.output
    # Refused after the run folder was taken: the folder it made goes too, .lock and all (it
    # looked like a run that had started).
    assert not (tmp_path / "runs").exists()  # runs/ too: this first job made it
    missing = invoke("finetune", str(recipe), "--set", "data.train=nowhere.h5")
    assert missing.exit_code == ExitStatus.USAGE and "data.train" in missing.output


@pytest.mark.parametrize("command", ["finetune", "pretrain"])
def test_a_val_split_of_no_windows_is_refused_in_one_line_before_training(recipe, tmp_path, command):
    # It trained, logging val_loss 0.0 (the best there can be) and null metrics at every evaluation.
    write_packed(tmp_path / "val.h5", 0, seed=1)
    watch = ["--set", "train.early_stopping_metric=val_loss", "--set", "train.early_stopping_mode=min"]
    refused = invoke(command, str(recipe), *watch, "--json")
    assert refused.exit_code == ExitStatus.FAILED, refused.output
    error = json.loads(refused.stdout.strip().splitlines()[-1])["error"]
    assert error == (
        f"{tmp_path / 'val.h5'} holds no windows, so no validation metric can be computed; pack it again, "
        "or --unset data.val to train without validation"
    )
    assert "Traceback" not in refused.output and not (tmp_path / "runs").exists()
    # The way out it names runs.
    assert invoke(command, str(recipe), *watch, "--unset", "data.val", "--quiet").exit_code == 0


def test_an_empty_split_is_refused_in_one_sentence_by_every_stage_with_its_own_advice(recipe, tmp_path):
    # Training said "the training split has 0 windows, fewer than one batch of 4; lower data.batch_size", evaluate
    # "FILE: the split holds no windows; pack it again" once the model was loaded, export --split scored nothing.
    empty = write_packed(tmp_path / "empty.h5", 0, seed=2)

    def refusal(*args: str) -> str:
        result = invoke(*args, "--json")
        assert result.exit_code == ExitStatus.FAILED and "Traceback" not in result.output, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])["error"]

    said = f"{empty} holds no windows, so "
    trained = refusal("finetune", str(recipe), "--set", f"data.train={empty}")
    assert trained == said + "there is nothing to train on; pack it again"
    assert not (tmp_path / "runs").exists()
    assert invoke("finetune", str(recipe), "--quiet").exit_code == 0
    scored = refusal("evaluate", str(recipe), "--set", f"data.test={empty}", "--no-plots")
    assert scored == said + "there is nothing to score; pack it again, or evaluate another --split"
    best = tmp_path / "runs" / "tiny" / "checkpoints" / "best"
    exported = refusal("export", str(best), "--split", str(empty), "--out", str(tmp_path / "export"))
    assert exported == said + "the export cannot be scored or calibrated on it; pack it again, or pass another --split"
    assert not (tmp_path / "export").exists()


def test_a_val_split_numbering_its_classes_otherwise_is_refused_before_training(recipe, tmp_path):
    # val.h5 packed with the same classes in another order: its target 0 is gesture2, while the
    # head's output 0 is train.h5's gesture0, so every val_* metric and early stopping was computed
    # against the wrong classes, silently.
    with h5py.File(tmp_path / "val.h5", "r+") as handle:
        handle.attrs["label_names"] = ["gesture2", "gesture0", "gesture1"]
    result = invoke("finetune", str(recipe))
    assert result.exit_code == ExitStatus.FAILED
    assert f"{tmp_path / 'val.h5'} names its classes gesture2, gesture0, gesture1 but" in result.output
    assert not (tmp_path / "runs" / "tiny" / "metrics.jsonl").exists()


def _no_labels(handle) -> None:
    del handle["y"]


def _regression_targets(handle) -> None:
    del handle["y"]
    handle.create_dataset("y", data=np.linspace(0.0, 1.0, 9, dtype=np.float32))
    handle.attrs.update({"task": "regression", "num_classes": 0, "label_names": []})


def _per_channel_labels(handle) -> None:
    del handle["y"]
    handle.create_dataset("y", data=np.zeros((9, N_CHANNELS), dtype=np.int64))
    handle.attrs["task"] = "mc"


def _a_fourth_class_without_names(handle) -> None:
    handle["y"][0] = 3
    handle.attrs.update({"num_classes": 4, "label_names": []})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_no_labels, "holds no labels but"),
        (_regression_targets, "holds regression targets but"),
        (_per_channel_labels, "holds 'mc' labels but"),
        (_a_fourth_class_without_names, "holds 4 classes but the model learns 3 from"),
    ],
)
def test_a_val_split_of_another_task_or_more_classes_is_refused_before_training(recipe, tmp_path, change, expected):
    # Only the label names were compared: a val split of another task, or one naming no classes
    # but indexing a class the head lacks, went into training and failed (or scored nonsense) at
    # the first evaluation, after the run folder was written.
    with h5py.File(tmp_path / "val.h5", "r+") as handle:
        change(handle)
    result = invoke("finetune", str(recipe))
    assert result.exit_code == ExitStatus.FAILED
    assert f"{tmp_path / 'val.h5'} {expected}" in result.output and str(tmp_path / "train.h5") in result.output
    assert not (tmp_path / "runs" / "tiny" / "metrics.jsonl").exists()


def test_a_single_logit_bc_head_trains_on_two_classes_and_evaluates_without_the_softmax_note(recipe, tmp_path):
    # model.num_classes = 1 with train.loss = "bce" (a sigmoid head) passed the training split's
    # check, then its 2-class val split was refused: "holds 2 classes but the model learns 1".
    for split in ("train", "val"):
        with h5py.File(tmp_path / f"{split}.h5", "r+") as handle:
            handle["y"][...] = handle["y"][()] % 2
            handle.attrs.update({"task": "bc", "num_classes": 2, "label_names": ["rest", "fist"]})
    single = ["--set", "model.num_classes=1", "--set", "train.loss=bce", "--set", "data.num_workers=2"]
    trained = invoke("finetune", str(recipe), *single, "--quiet")
    assert trained.exit_code == 0, trained.output
    evaluated = invoke("evaluate", str(recipe), "--split", "val", "--no-plots", "--json", "--quiet")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((tmp_path / "runs" / "tiny" / "eval" / "val" / "report.json").read_text())
    assert report["windows"]["label_names"] == ["rest", "fist"] and report["windows"]["auroc"] is not None
    # A sigmoid of the one logit ranks as the logit does: the note on softmax ranking is not about this head.
    assert not any("softmax" in note for note in report["notes"])


def test_a_two_logit_bc_head_trains_with_the_loss_of_the_probabilities_it_reports(recipe, tmp_path):
    """``loss = "auto"`` trained a 2-logit bc head with BCE on each logit, while evaluate, predict and
    export read its scores as a softmax over both: the val_loss and the best checkpoint it chose were
    not about the probabilities reported (and train.label_smoothing did nothing)."""
    from biofound_cli.evaluation.evaluate import evaluate_recipe
    from biofound_cli.recipes import load_recipe

    for split in ("train", "val"):
        with h5py.File(tmp_path / f"{split}.h5", "r+") as handle:
            handle["y"][...] = handle["y"][()] % 2
            handle.attrs.update({"task": "bc", "num_classes": 2, "label_names": ["rest", "fist"]})
    by_loss = ["--set", "train.early_stopping_metric=val_loss", "--set", "train.early_stopping_mode=min"]
    trained = invoke("finetune", str(recipe), *by_loss, "--set", "data.num_workers=2", "--quiet")
    assert trained.exit_code == 0, trained.output
    records = [json.loads(line) for line in (tmp_path / "runs" / "tiny" / "metrics.jsonl").read_text().splitlines()]
    val_losses = [record["val_loss"] for record in records if "val_loss" in record]
    assert len(val_losses) == 2  # an evaluation every 3 of the 6 steps
    scored = evaluate_recipe(load_recipe(recipe), source=str(recipe), split="val", plots=False)
    assert scored.window_scores is not None and scored.window_scores.shape == (9, 2)
    with h5py.File(tmp_path / "val.h5", "r") as handle:
        y = handle["y"][()]
    cross_entropy = -np.log(scored.window_scores[np.arange(len(y)), y]).mean()
    assert cross_entropy == pytest.approx(min(val_losses), rel=1e-4)


def test_a_val_split_missing_the_last_class_without_names_still_trains(recipe, tmp_path):
    # A small val split may hold no window of the last class: packed without names its count is
    # lower, which is no other class set.
    for split in ("train", "val"):
        with h5py.File(tmp_path / f"{split}.h5", "r+") as handle:
            handle.attrs["label_names"] = []
            if split == "val":
                handle["y"][...] = np.arange(9) % 2
                handle.attrs["num_classes"] = 2
    result = invoke("finetune", str(recipe), "--quiet", "--json", "--set", "data.num_workers=2")
    assert result.exit_code == 0, result.output
    # evaluate refused the split the best checkpoint was chosen on ("the split has 2 classes but the head gives 3").
    scored = invoke("evaluate", str(recipe), "--split", "val", "--no-plots", "--json", "--quiet")
    assert scored.exit_code == 0, scored.output
    best = json.loads(result.stdout.strip().splitlines()[-1])["best_metrics"]
    metrics = json.loads(scored.stdout.strip().splitlines()[-1])["metrics"]
    assert metrics == pytest.approx({name.removeprefix("val_"): value for name, value in best.items()})


def test_a_metric_the_packed_task_does_not_compute_is_refused_before_the_run_folder_is_touched(recipe, tmp_path):
    # The task comes from train.h5 (mcc), so validate cannot know it; fit() used to refuse it after
    # recipe.json and a recipe_history line were written.
    result = invoke("finetune", str(recipe), "--set", "train.early_stopping_metric=val_r2")
    assert result.exit_code == ExitStatus.USAGE
    assert (
        "--set train.early_stopping_metric=val_r2: train.early_stopping_metric = 'val_r2' is not computed for task 'mcc'"
        in result.output
    )
    assert not (tmp_path / "runs" / "tiny" / "recipe.json").exists()


@pytest.mark.parametrize("override", ["model.variant=tinymio", "model.overrides.no_such_argument=1", "train.precision=fp16"])
def test_a_recipe_validate_refuses_leaves_no_run_folder(recipe, tmp_path, override):
    # The run folder and its .lock were made before the recipe checks, so a refused recipe left runs/tiny behind.
    result = invoke("finetune", str(recipe), "--set", override)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert invoke("validate", str(recipe), "--set", override).exit_code == ExitStatus.USAGE
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("loss", ["mse", "smooth_l1"])
def test_a_loss_of_another_kind_of_head_is_refused_before_the_first_batch(recipe, tmp_path, loss):
    # train.loss = "mse" on the classes of train.h5 crashed at the first batch with a reshape traceback.
    result = runner.invoke(app, ["finetune", str(recipe), "--set", f"train.loss={loss}"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert f"--set train.loss={loss}: train.loss = '{loss}' does not fit task 'mcc'; use one of auto, ce, bce" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "runs" / "tiny" / "recipe.json").exists()


def regression_splits(tmp_path: Path, train_shape: tuple[int, ...], val_shape: tuple[int, ...]) -> list[str]:
    """``--set`` arguments that train on regression splits with targets of these shapes per window."""
    from fixtures.eval_split import write_packed as write_regression

    train, val = (
        write_regression(tmp_path / f"reg_{split}.h5", task="regression", num_classes=0, target_shape=shape)
        for split, shape in (("train", train_shape), ("val", val_shape))
    )
    return ["--set", f"data.train={train}", "--set", f"data.val={val}", "--set", "train.early_stopping_metric=val_r2"]


@pytest.mark.parametrize(("target_shape", "steps", "outputs"), [((), 1, 1), ((3,), 1, 3), ((2, 3), 2, 3)])
def test_a_regression_split_sizes_the_head_as_classes_size_a_classifier(recipe, tmp_path, target_shape, steps, outputs):
    # A regression split reads num_classes 0: fine-tuning one stopped at "needs num_classes", and with
    # model.num_classes set, TinyMyo's 500 default steps failed the first step with a reshape traceback.
    from biofound_cli.models.checkpoints import read_metadata

    result = invoke("finetune", str(recipe), *regression_splits(tmp_path, target_shape, target_shape), "--quiet")
    assert result.exit_code == 0, result.output
    best = tmp_path / "runs" / "tiny" / "checkpoints" / "best" / "model.safetensors"
    recorded = read_metadata(best).constructor_kwargs or {}
    assert (recorded["reg_target_len"], recorded["num_classes"]) == (steps, outputs)
    scored = invoke("evaluate", str(recipe), *regression_splits(tmp_path, target_shape, target_shape), "--split", "val")
    assert scored.exit_code == 0, scored.output
    report = json.loads((tmp_path / "runs" / "tiny" / "eval" / "val" / "report.json").read_text())
    assert len(report["windows"]["per_output"]) == outputs


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("model.overrides.reg_target_len=4", "gives 4 × 3 values per window"),
        ("model.num_classes=2", "gives 2 × 2 values per window"),
    ],
)
def test_a_regression_head_that_does_not_give_the_targets_is_refused_before_training(recipe, tmp_path, change, expected):
    result = runner.invoke(app, ["finetune", str(recipe), *regression_splits(tmp_path, (2, 3), (2, 3)), "--set", change])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert (
        f"{tmp_path / 'reg_train.h5'}: the model of {recipe} {expected} (model.overrides.reg_target_len × model.num_classes) "
        "but the split's regression targets are 2 × 3 per window; a model built with" in result.output
    )
    assert not (tmp_path / "runs" / "tiny" / "recipe.json").exists()


def test_a_val_split_of_other_regression_targets_is_refused_before_training(recipe, tmp_path):
    result = runner.invoke(app, ["finetune", str(recipe), *regression_splits(tmp_path, (2, 3), (3, 2))])
    assert result.exit_code == ExitStatus.FAILED, result.output
    assert (
        f"{tmp_path / 'reg_val.h5'} holds regression targets of shape (3, 2) per window but {tmp_path / 'reg_train.h5'} (2, 3)"
        in result.output
    )
    assert not (tmp_path / "runs" / "tiny" / "recipe.json").exists()


def _pretrain_then_finetune(recipe: Path, start: Path, *pretrain_flags: str):
    """``pretrain`` of two steps into ``runs/pre``, then ``finetune`` into ``runs/tuned`` from ``start``, a path in it."""
    pre = invoke(
        "pretrain",
        str(recipe),
        *pretrain_flags,
        "--set",
        "output.run_name=pre",
        "--set",
        "train.max_steps=2",
        "--set",
        "train.early_stopping_metric=val_loss",
        "--set",
        "train.early_stopping_mode=min",
    )
    assert pre.exit_code == 0, pre.output
    tuned = invoke(
        "finetune",
        str(recipe),
        "--set",
        f"model.checkpoint={json.dumps(str(start))}",
        "--set",
        "output.run_name=tuned",
        "--set",
        "train.max_steps=2",
    )
    assert tuned.exit_code == 0, tuned.output
    return pre, tuned


def test_finetune_starts_from_a_pretrained_checkpoint_and_refuses_another_variant(recipe, tmp_path):
    pretrained = tmp_path / "runs" / "pre" / "checkpoints" / "best" / "model.safetensors"
    _, tuned = _pretrain_then_finetune(recipe, pretrained, "--quiet")
    assert "start fresh (the head)" in tuned.output
    # The pre-training decoder is left out, and said: so would a deeper checkpoint's extra blocks be.
    assert "of the file's have no place in it (e.g. " in tuned.output
    # Deeper than the pre-training run: the metadata says why, where 8 missing keys were listed.
    deeper = invoke(
        "finetune",
        str(recipe),
        "--set",
        f"model.checkpoint={json.dumps(str(pretrained))}",
        "--set",
        "model.overrides.n_layer=3",
        "--set",
        "output.run_name=deeper",
        "--json",
    )
    assert deeper.exit_code == ExitStatus.USAGE, deeper.output
    assert json.loads(deeper.stdout.strip().splitlines()[-1])["error"] == (
        f"{pretrained} was saved from a model with n_layer = 2 and this recipe builds n_layer = 3; "
        "set model.overrides.n_layer = 2 to start from it"
    )

    from biofound_cli.models import create_model, save_checkpoint

    model = create_model("tinymyo", **TINYMYO)
    other = save_checkpoint(
        model, tmp_path / "other.safetensors", variant="femba-tiny", model_name="TinyMyo", constructor_kwargs={}
    )
    refused = invoke(
        "finetune", str(recipe), "--set", f"model.checkpoint={json.dumps(str(other))}", "--set", "output.run_name=refused"
    )
    assert refused.exit_code == ExitStatus.USAGE
    assert "holds femba-tiny weights" in refused.output


def test_a_starting_file_of_another_family_is_refused_without_a_sampling_rate_warning(recipe, tmp_path):
    # The data are at 1000 Hz, TinyMyo was pre-trained at 2000 Hz: the rate warning printed first used to
    # suggest resampling for a file that could never be loaded.
    for split in ("train", "val"):
        with h5py.File(tmp_path / f"{split}.h5", "a") as handle:
            handle.attrs["sfreq"] = 1000.0

    from biofound_cli.models import create_model

    femba = tmp_path / "femba_official.safetensors"  # an official release: no metadata, its keys tell
    official_release(create_model("femba-tiny"), femba)
    refused = invoke("finetune", str(recipe), "--set", f"model.checkpoint={json.dumps(str(femba))}")
    assert refused.exit_code == ExitStatus.USAGE, refused.output
    assert "holds a FEMBA model (by its keys), not TinyMyo" in refused.output
    assert "Hz" not in refused.output and "warning" not in refused.output


# The starting checkpoint records its transform: a fine-tuning that normalised its inputs otherwise (here
# data.transform left unset, so TinyMyo's fine-tuning default, none) fed the pre-trained body inputs of
# another scale without a word. The published pair (minmax in pre-training, none after) stays silent.
def test_finetune_warns_when_its_inputs_are_normalised_otherwise_than_the_starting_weights(recipe, tmp_path):
    start = tmp_path / "runs" / "pre" / "checkpoints" / "best"
    _, tuned = _pretrain_then_finetune(recipe, start, "--set", "data.transform=zscore")
    assert "was trained on inputs normalised by 'zscore' and this run normalises them by 'none'" in tuned.output
    assert "set data.transform = 'zscore'" in tuned.output
    shutil.rmtree(tmp_path / "runs")
    _, published = _pretrain_then_finetune(recipe, start)
    assert "normalised by" not in published.output


# model.checkpoint may name the run's checkpoint folder, as evaluate, export and predict take it (a
# folder used to be refused as "a folder without model.safetensors", its rate never read), and the
# run's checkpoints folder (read as its best; it was refused so too).
@pytest.mark.parametrize("start", ["best/model.safetensors", "best", "."])
def test_sampling_rate_is_compared_with_the_rate_the_starting_checkpoint_records(recipe, tmp_path, start):
    for split in ("train", "val"):
        with h5py.File(tmp_path / f"{split}.h5", "a") as handle:
            handle.attrs["sfreq"] = 1000.0
    pre, tuned = _pretrain_then_finetune(recipe, tmp_path / "runs" / "pre" / "checkpoints" / start)
    assert "published weights at 2000 Hz" in pre.output  # from scratch: the variant's published rate, a note only
    assert "Hz" not in tuned.output  # the checkpoint records 1000 Hz, like the data


def test_a_recipe_without_a_name_trains_and_evaluates_through_one_run_folder(recipe, tmp_path):
    text = recipe.read_text().replace('name = "tiny"\n', "")
    text = text.replace("[data]\n", f'[data]\ntest = "{tmp_path / "val.h5"}"\n', 1)
    unnamed = tmp_path / "unnamed.toml"
    unnamed.write_text(text)
    trained = invoke("finetune", str(unnamed), "--json", "--quiet")
    assert trained.exit_code == 0, trained.output
    run = Path(json.loads(trained.stdout.strip().splitlines()[-1])["run"])
    assert run == tmp_path / "runs" / "tinymyo-finetune"
    evaluated = invoke("evaluate", str(unnamed), "--json", "--quiet", "--no-plots")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert Path(report["report"]).is_relative_to(run) and Path(report["checkpoint"]).is_relative_to(run)


def test_a_nameless_recipe_that_only_pretrained_points_export_at_its_pretrain_run(recipe, tmp_path):
    # Without a name, pretrain writes runs/tinymyo-pretrain and export/evaluate look in runs/tinymyo-finetune.
    recipe.write_text(recipe.read_text().replace('name = "tiny"\n', ""))
    pretrain = ["--set", "train.early_stopping_metric=val_loss", "--set", "train.early_stopping_mode=min"]
    assert invoke("pretrain", str(recipe), "--quiet", *pretrain).exit_code == 0
    refused = invoke("export", "--recipe", str(recipe), "--format", "safetensors", "--out", str(tmp_path / "exp"))
    assert refused.exit_code == ExitStatus.USAGE
    assert f"this recipe pre-trained into {tmp_path / 'runs' / 'tinymyo-pretrain'}" in refused.output
    advised = str(tmp_path / "runs" / "tinymyo-pretrain")
    exported = invoke("export", advised, "--format", "safetensors", "--out", str(tmp_path / "exp"), "--quiet")
    assert exported.exit_code == 0, exported.output


def test_the_published_pretrain_recipe_exports_its_pretraining_run_as_its_header_says(tmp_path):
    # recipes/tinymyo_pretrain.toml says `biofound export --recipe recipes/tinymyo_pretrain.toml`
    # after pretraining; export looked for a fine-tuned run and refused ("no fine-tuned run").
    from biofound_cli.recipes.shipped import shipped_recipe

    write_packed(tmp_path / "train.h5", 24, seed=0)
    write_packed(tmp_path / "val.h5", 9, seed=1)
    shrunk = [
        *("--set", f"data.train={json.dumps(str(tmp_path / 'train.h5'))}"),
        *("--set", f"data.val={json.dumps(str(tmp_path / 'val.h5'))}"),
        *("--set", f"model.overrides={TINY}", "--set", "data.batch_size=4", "--set", "optim.accumulation_steps=2"),
        *("--set", "train.epochs=2", "--set", "optim.warmup_epochs=1", "--set", "data.num_workers=2"),
        *("--set", f"output.runs_dir={json.dumps(str(tmp_path / 'runs'))}"),
    ]
    published = str(shipped_recipe("tinymyo_pretrain"))
    assert invoke("pretrain", published, "--quiet", *shrunk).exit_code == 0
    exported = invoke("export", "--recipe", published, "--json", "--quiet", *shrunk)
    assert exported.exit_code == 0, exported.output
    run = tmp_path / "runs" / "tinymyo-pretrain"
    assert Path(json.loads(exported.stdout.strip().splitlines()[-1])["out"]) == run / "export"
    from biofound_cli.models.checkpoints import read_metadata

    assert read_metadata(run / "export" / "model.safetensors").task == "reconstruction"
    # Fine-tuning into that folder is refused, so export.stage = 'pretrain' never meets a fine-tuned run there;
    # the default stage still refuses to pass the encoder off as a fine-tuned model.
    refused = invoke("export", "--recipe", published, "--set", "export.stage=finetune", "--overwrite", *shrunk)
    assert refused.exit_code == ExitStatus.USAGE and "no fine-tuned run" in refused.output


def test_a_finetune_into_the_folder_its_recipe_pretrained_into_is_refused_and_not_evaluated(recipe, tmp_path):
    # A recipe with a name pre-trains and fine-tunes into runs/NAME: --resume auto took the
    # pre-training's checkpoint, --resume none sent the user back to --resume auto, and export
    # --recipe exported the pre-trained encoder as the fine-tuned model.
    run = tmp_path / "runs" / "tiny"
    pretrain = ["--set", "train.early_stopping_metric=val_loss", "--set", "train.early_stopping_mode=min"]
    assert invoke("pretrain", str(recipe), "--quiet", *pretrain).exit_code == 0
    for resume in ("auto", "none"):
        refused = invoke("finetune", str(recipe), "--resume", resume, "--json", "--quiet")
        assert refused.exit_code == ExitStatus.USAGE, refused.output
        error = json.loads(refused.stdout.strip().splitlines()[-1])["error"]
        assert error.startswith(f"{run} holds the pretrain run of this recipe")
        assert f"--set output.run_name=tiny-finetune and --set model.checkpoint={run / 'checkpoints' / 'best'}" in error
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["best", "step-00000003", "step-00000006"]
    exported = invoke("export", "--recipe", str(recipe), "--format", "safetensors", "--out", str(tmp_path / "exp"))
    assert exported.exit_code == ExitStatus.USAGE and not (tmp_path / "exp").exists()
    assert "no fine-tuned run; this recipe pre-trained into" in exported.output
    assert "--set output.run_name=tiny-finetune" in exported.output
    # evaluate is not sent to the pre-trained encoder, which it refuses (no classifier).
    evaluated = invoke("evaluate", str(recipe), "--split", "val", "--json", "--quiet")
    assert evaluated.exit_code == ExitStatus.USAGE
    error = json.loads(evaluated.stdout.strip().splitlines()[-1])["error"]
    assert "no fine-tuned run" in error and "--checkpoint" not in error
    # The fine-tuning it names starts from the pre-trained weights (without model.checkpoint it started from scratch).
    best = run / "checkpoints" / "best"
    assert f"`biofound finetune {recipe} --set output.run_name=tiny-finetune --set model.checkpoint={best}`" in error

    # What the message says: a run of its own, from the pre-trained weights.
    own = ["--set", "output.run_name=tiny-finetune", "--set", f"model.checkpoint={run / 'checkpoints' / 'best'}"]
    assert invoke("finetune", str(recipe), "--quiet", *own).exit_code == 0
    again = invoke("pretrain", str(recipe), "--quiet", "--resume", "auto", *pretrain, "--set", "output.run_name=tiny-finetune")
    assert again.exit_code == ExitStatus.USAGE
    assert f"{tmp_path / 'runs' / 'tiny-finetune'} holds the finetune run of this recipe" in again.output


@pytest.mark.parametrize(
    ("n_windows", "expected"),
    [
        (30, "was trained on a training split of 24 windows and data.train now holds 30"),
        (24, "was trained on a training split of fingerprint "),
    ],
    ids=["another-size", "same-size-other-seed"],
)
def test_resuming_on_another_training_split_is_refused_even_with_allow_changes(
    recipe, tmp_path, n_windows, expected, monkeypatch
):
    # The sampler's order and the place in the epoch follow from the windows: resumed on a train.h5
    # repacked with another seed, the run went on silently over a reshuffled epoch (another size)
    # or over other recordings (the same size, which only the split's fingerprint tells apart).
    # The split is compared once a resume, before its start is recorded (the loop compared it again).
    from biofound_cli.training import state

    checked = []
    monkeypatch.setattr(state, "check_same_split", lambda *args, check=state.check_same_split: checked.append(check(*args)))
    every_epoch = recipe.read_text().replace("max_steps = 6\neval_every = 3\n", "epochs = 3\n")
    recipe.write_text(every_epoch.replace("batch_size = 4\n", "batch_size = 4\nnum_workers = 2\n"))
    first = invoke("finetune", str(recipe), "--json", "--quiet")
    assert first.exit_code == 0, first.output
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    assert sorted(path.name for path in checkpoints.glob("step-*")) == ["step-00000012", "step-00000018"]
    shutil.rmtree(checkpoints / "step-00000018")  # as a kill before the last checkpoint leaves it
    newest = checkpoints / "step-00000012"
    write_packed(tmp_path / "train.h5", n_windows, seed=2)

    refused = invoke("finetune", str(recipe), "--resume", "auto", "--allow-changes", "--json", "--quiet")
    assert refused.exit_code == ExitStatus.USAGE, refused.output
    error = json.loads(refused.stdout.strip().splitlines()[-1])["error"]
    assert error.startswith(f"{newest} {expected}")
    assert "\n" not in error and f"--set model.checkpoint={newest}" in error
    assert not (checkpoints / "step-00000018").exists()

    write_packed(tmp_path / "train.h5", 24, seed=0)  # the split the run started with, packed again
    checked.clear()
    resumed = invoke("finetune", str(recipe), "--resume", "auto", "--json", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["steps"] == 18
    assert len(checked) == 1


def test_resuming_with_another_global_batch_or_accumulation_is_refused_even_with_allow_changes(recipe, tmp_path):
    # The place in the epoch and the steps left are counted in batches: resumed with batch 3, a
    # finished 4-epoch run of batch 4 reported "epochs: 6.75" for 6 epochs asked.
    recipe.write_text(recipe.read_text().replace("max_steps = 6\n", "epochs = 4\n"))
    first = invoke("finetune", str(recipe), "--json", "--quiet")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout.strip().splitlines()[-1])["epochs"] == 4
    newest = tmp_path / "runs" / "tiny" / "checkpoints" / "step-00000024"
    more = ["--set", "train.epochs=6", "--allow-changes", "--json", "--quiet"]

    refused = invoke("finetune", str(recipe), "--resume", "auto", "--set", "data.batch_size=3", *more)
    assert refused.exit_code == ExitStatus.USAGE, refused.output
    error = json.loads(refused.stdout.strip().splitlines()[-1])["error"]
    assert error.startswith(f"{newest} was trained with a global batch of 4 windows (data.batch_size x processes)")
    assert "this start has 3 (3 x 1)" in error and f"--set model.checkpoint={newest}" in error
    assert not (tmp_path / "runs" / "tiny" / "checkpoints" / "step-00000025").exists()
    # Steps are counted in optimiser steps: with 2 micro-batches a step the 24 done were already
    # past the 18 that 6 epochs then make, and the resumed run trained nothing.
    refused = invoke("finetune", str(recipe), "--resume", "auto", "--set", "optim.accumulation_steps=2", *more)
    assert refused.exit_code == ExitStatus.USAGE, refused.output
    error = json.loads(refused.stdout.strip().splitlines()[-1])["error"]
    assert error.startswith(f"{newest} was trained with optim.accumulation_steps = 1 and this start has 2")

    # What the message says to do: a new run from these weights, with the new batch.
    fresh = invoke(
        "finetune",
        str(recipe),
        "--set",
        f"model.checkpoint={newest}",
        "--set",
        "output.run_name=bigger",
        "--resume",
        "none",
        "--set",
        "data.batch_size=3",
        "--set",
        "train.epochs=2",
        "--json",
        "--quiet",
    )
    assert fresh.exit_code == 0, fresh.output
    assert json.loads(fresh.stdout.strip().splitlines()[-1])["epochs"] == 2

    # The same global batch continues as before: 6 epochs of 6 batches.
    longer = invoke("finetune", str(recipe), "--resume", "auto", *more)
    assert longer.exit_code == 0, longer.output
    summary = json.loads(longer.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 6 and summary["steps"] == 36


def test_a_resume_from_data_staged_at_another_path_is_a_move_not_a_change(recipe, tmp_path):
    # Cluster jobs copy the packed files to the node's local disk, at a path of the job: a requeued
    # run was refused as "started with another recipe" (data.train: ... -> ...) unless --allow-changes,
    # which would let real changes through unattended too.
    every_epoch = recipe.read_text().replace("max_steps = 6\neval_every = 3\n", "epochs = 3\n")
    recipe.write_text(every_epoch.replace("batch_size = 4\n", "batch_size = 4\nnum_workers = 2\n"))
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    first = invoke("finetune", str(recipe), "--json", "--quiet")
    assert first.exit_code == 0, first.output
    shutil.rmtree(checkpoints / "step-00000018")  # as a preemption before the last checkpoint leaves it

    def staged(folder: str) -> list[str]:
        (tmp_path / folder).mkdir(exist_ok=True)
        for split in ("train", "val"):
            shutil.copy(tmp_path / f"{split}.h5", tmp_path / folder / f"{split}.h5")
        return [
            arg
            for split in ("train", "val")
            for arg in ("--set", f"data.{split}={json.dumps(str(tmp_path / folder / f'{split}.h5'))}")
        ]

    moved = invoke("finetune", str(recipe), "--resume", "auto", "--json", "--quiet", *staged("node2"))
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout.strip().splitlines()[-1])["steps"] == 18
    history = [json.loads(line) for line in (tmp_path / "runs" / "tiny" / "recipe_history.jsonl").read_text().splitlines()]
    assert history[-1]["changes"] == []

    # Other windows at the new path are a change, as before.
    shutil.rmtree(checkpoints / "step-00000018")
    other = staged("node3")
    write_packed(tmp_path / "node3" / "val.h5", 9, seed=5)
    refused = invoke("finetune", str(recipe), "--resume", "auto", "--json", "--quiet", *other)
    assert refused.exit_code == ExitStatus.USAGE, refused.output
    error = json.loads(refused.stdout.strip().splitlines()[-1])["error"]
    assert "data.val:" in error and "data.train:" not in error


def test_a_resumed_run_whose_saved_best_is_nan_takes_the_next_evaluation_as_its_best(recipe, tmp_path):
    # A run saved before a NaN val metric was refused as the best holds best_metric NaN in its trainer state:
    # on resume nothing compared better than NaN, so every evaluation was a strike and the run stopped early
    # on the patience, keeping the diverged weights as its best.
    import torch

    by_epoch = tmp_path / "by_epoch.toml"
    by_epoch.write_text(recipe.read_text().replace("max_steps = 6\neval_every = 3", "epochs = 4\ncheckpoint_every = 6"))
    options = ("--set", "data.num_workers=2", "--set", "train.early_stopping_patience=2", "--set", "train.keep_checkpoints=4")
    assert invoke("finetune", str(by_epoch), "--quiet", *options).exit_code == 0
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    for later in ("step-00000018", "step-00000024"):  # as if the run had been stopped at step 12
        shutil.rmtree(checkpoints / later)
    saved = checkpoints / "step-00000012" / "trainer_state.pt"
    trainer_state = torch.load(saved, weights_only=False)
    trainer_state["progress"].update(best_metric=float("nan"), evals_without_improvement=1, stopped_early=False)
    torch.save(trainer_state, saved)

    resumed = invoke("finetune", str(by_epoch), "--resume", "auto", "--json", "--no-progress", *options)
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    # The evaluation of epoch 3 (step 18) is the first best; at most one strike follows, below the patience of 2.
    assert summary["steps"] == 24 and not summary["stopped_early"], summary
    assert summary["best_step"] >= 18 and summary["best_metric"]["val_balanced_accuracy"] is not None, summary


def test_the_small_checkpoints_of_the_export_and_predict_tests_record_what_training_records(recipe, tmp_path):
    # save_small recorded no n_times, n_chans, sfreq or transform (real checkpoints do), so the export and
    # predict tests ran on checkpoints no training writes: a window length they never checked, say.
    from fixtures.export_models import save_small

    from biofound_cli.models.checkpoints import read_metadata

    by_epoch = tmp_path / "by_epoch.toml"
    by_epoch.write_text(recipe.read_text().replace("max_steps = 6\neval_every = 3", "epochs = 2"))
    trained = invoke("finetune", str(by_epoch), "--quiet", "--set", "data.num_workers=2")
    assert trained.exit_code == 0, trained.output
    written = read_metadata(tmp_path / "runs" / "tiny" / "checkpoints" / "best" / "model.safetensors").as_dict()
    small = save_small(
        tmp_path / "small.safetensors",
        "tinymyo",
        ch_names=[f"EMG{c}" for c in range(N_CHANNELS)],
        overrides={"n_layer": 2},
        sfreq=2000.0,
        label_names=[f"gesture{k}" for k in range(N_CLASSES)],
    )
    saved = read_metadata(small).as_dict()
    # What the weights come from and the step they were kept at are the run's own, not the model's record.
    provenance = {"derived_from_official", "source_checkpoint", "step", "val_balanced_accuracy"}
    assert {key: saved.get(key) for key in written if key not in provenance} == {
        key: value for key, value in written.items() if key not in provenance
    }


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_a_training_seed_numpy_or_torch_cannot_take_is_refused_in_one_line_before_the_run_folder(recipe, tmp_path, seed):
    # train.seed = -1 built the model, then the loader's first shuffle ended in numpy's traceback (2**64: torch's).
    result = invoke("finetune", str(recipe), "--set", f"train.seed={seed}", "--set", "data.num_workers=2")
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert f"train.seed = {seed}: a seed is a whole number from 0 to {2**63 - 1}" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()
    assert invoke("validate", str(recipe), "--set", f"train.seed={seed}").exit_code == ExitStatus.USAGE


@pytest.mark.parametrize(
    ("setting", "refusal"),
    [
        ("optim.warmup_epochs=inf", "optim.warmup_epochs = inf: expected a finite number"),
        ("optim.eps=inf", "optim.eps = inf: expected a finite number"),
        ("model.overrides.mlp_ratio=inf", "TinyMyo argument mlp_ratio = inf must be a finite number above 0"),
    ],
)
def test_an_infinite_number_is_refused_in_one_line_before_the_run_folder(recipe, tmp_path, setting, refusal):
    # warmup_epochs = inf ended in a traceback once the data were open, mlp_ratio = inf in one from validate;
    # eps = inf trained every step to no update at all, and said nothing.
    for command in ("validate", "finetune"):
        result = invoke(command, str(recipe), "--unset", "optim.warmup_steps", "--set", setting)
        assert result.exit_code == ExitStatus.USAGE, result.output
        assert refusal in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_pretraining_masks_whole_patches_of_the_models_own_patch_size(recipe):
    # Under model.overrides.patch_size = 40 the published rectangles of 20 samples still masked the input,
    # and a patch was hidden when either half was: 3 in 4 of them for train.mask_ratio = 0.5.
    import torch

    from biofound_cli.recipes import load_recipe
    from biofound_cli.training.objectives import patch_mask
    from biofound_cli.training.setup import build_checked_job

    settings = ["model.overrides.patch_size=40", "train.mask_ratio=0.5"]
    loaded = load_recipe(recipe, settings, unset=["train.early_stopping_metric", "train.early_stopping_mode"])
    scheme = build_checked_job(loaded, stage="pretrain", source=str(recipe)).objective.scheme
    assert scheme.patch == (1, 40) and scheme.ratio == 0.5
    mask = patch_mask(N_CHANNELS, N_TIMES, scheme.patch, scheme.ratio, batch_size=8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mask.all(dim=-1), mask.any(dim=-1))
    assert mask.any(dim=-1).float().mean().item() == 0.5


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_label_beyond_the_files_classes_is_refused_in_one_line_before_training(recipe, tmp_path, split):
    # An edited or hand-made split: the loss failed with torch's IndexError and a traceback
    # at the first batch holding it (training or evaluating), under torchrun on the one rank that drew it.
    with h5py.File(tmp_path / f"{split}.h5", "r+") as handle:
        handle["y"][5] = N_CLASSES + 4
    refused = invoke("finetune", str(recipe), "--json", "--quiet")
    assert refused.exit_code == ExitStatus.FAILED, refused.output
    error = json.loads(refused.stdout.strip().splitlines()[-1])["error"]
    assert error == (
        f"{tmp_path / f'{split}.h5'}: window 5 has label 7, outside the 3 classes (0 to 2) of its num_classes "
        "attribute (1 such label); pack the split again from its shards"
    )
    assert not (tmp_path / "runs" / "tiny" / "checkpoints").exists()
