"""A window geometry other than the published one: each stage agrees with the model, or says at once why not.

FEMBA built for 512-sample windows (``model.overrides.seq_length``) at 128 Hz: ``preprocess`` refuses windows
that model cannot take before writing a shard, and official-shaped weights built for 1280-sample windows are
refused naming the window, at ``validate`` as at ``finetune``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import save_file
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus
from biofound_cli.models import registry

runner = CliRunner()

RECIPE = """
name = "geometry"
[preprocess]
corpus = "tuab"
sfreq = 128.0
montage = "tcp"
window_seconds = 4.0
[data]
train = "packed/train.h5"
[model]
variant = "femba-tiny"
overrides = {{ seq_length = 512 }}
task = "bc"
num_classes = 2
{checkpoint}
[train]
device = "cpu"
"""


def official_femba(path: Path) -> Path:
    """femba-tiny's published shapes (22 channels × 1280 samples), saved without biofound metadata."""
    variant = registry.get_variant("femba-tiny")
    model = registry.build_model("femba", variant.kwargs)
    save_file({key: value.contiguous() for key, value in model.state_dict().items()}, str(path))
    return path


def flat(output: str) -> str:
    return " ".join(output.split())


def test_preprocess_refuses_windows_the_recipes_model_cannot_take_before_writing_a_shard(tmp_path):
    # preprocess cut and wrote 525-sample windows for a model built for 512; only finetune, after pack, refused them.
    from fixtures.tuh import build_tuab

    root = build_tuab(tmp_path / "tuab")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(checkpoint=""))
    out = tmp_path / "shards"
    args = ["preprocess", "--recipe", str(recipe), "--root", str(root), "--out", str(out), "--no-progress"]
    result = runner.invoke(app, [*args, "--set", "preprocess.window_seconds=4.1"])
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert (
        "error: --set preprocess.window_seconds=4.1: preprocess.window_seconds = 4.1 cuts 525-sample windows at 128 Hz, "
        "but femba-tiny takes 512-sample windows (4 s); set preprocess.window_seconds = 4"
    ) in flat(result.output)
    assert not out.exists() and "Traceback" not in result.output


@pytest.mark.parametrize("seq_length", [512, 1280])
def test_official_weights_built_for_other_windows_are_refused_naming_the_window(tmp_path, seq_length):
    # validate said "valid"; finetune then refused "pos_embed: checkpoint [1, 80, 385] vs model [1, 32, 385]".
    start = official_femba(tmp_path / "official.safetensors")
    recipe = tmp_path / "recipe.toml"
    body = f'checkpoint = "{start}"\noverrides = {{ seq_length = {seq_length}, embed_dim = 35 }}'
    recipe.write_text(RECIPE.format(checkpoint=body).replace("overrides = { seq_length = 512 }\n", ""))
    window = str(seq_length / 128)
    result = runner.invoke(app, ["validate", str(recipe), "--set", f"preprocess.window_seconds={window}"])
    if seq_length == 1280:  # the published windows, at another rate: the weights load
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert (
        f"{start} holds femba-tiny's published body, built for windows of seq_length = 1280, and this recipe builds "
        "seq_length = 512 (model.overrides), whose positional weights have another shape; to start from it, preprocess "
        "windows of that shape and unset those model.overrides, or leave model.checkpoint unset to train from scratch"
    ) in flat(result.output)


def test_finetune_names_the_window_official_weights_were_built_for(tmp_path):
    # The same refusal where finetune loads them (its data may come from another --set than validate saw).
    from biofound_cli.errors import CheckpointError
    from biofound_cli.training.setup import _build_model

    start = official_femba(tmp_path / "official.safetensors")
    variant = registry.get_variant("femba-tiny")
    kwargs = {**variant.constructor_kwargs("bc", 2), "seq_length": 512}
    with pytest.raises(CheckpointError) as raised:
        _build_model(variant, kwargs, start, "finetune", 0)
    assert "built for windows of seq_length = 1280, and this recipe builds seq_length = 512" in raised.value.message


@pytest.mark.slow
def test_finetune_on_windows_preprocessed_at_another_length_advises_the_nearest_lengths_below_and_above(tmp_path):
    """journey28: SCP1 preprocessed alone with 3 s windows (768 samples) and packed, then fine-tuned with LUNA.

    The advice named only the longest length under 3 s (2.96875); the user did not see that 3.125 fits too
    (where the trials last that long: SCP1's are 3.5 s), nor which side of their choice each lies.
    """
    from biofound_cli.recipes.shipped import shipped_recipe

    recipe = str(shipped_recipe("luna_scp1"))
    shards, packed = tmp_path / "shards", tmp_path / "packed"
    window = ["--unset", "model", "--set", "preprocess.window_seconds=3"]
    done = runner.invoke(app, ["preprocess", "--recipe", recipe, *window, "--out", str(shards), "--no-progress"])
    assert done.exit_code == 0, done.output
    assert runner.invoke(app, ["pack", str(shards), "--out", str(packed), "--no-progress"]).exit_code == 0
    data = [arg for split in ("train", "val", "test") for arg in ("--set", f"data.{split}={packed / split}.h5")]
    result = runner.invoke(app, ["finetune", recipe, *data, "--set", f"output.runs_dir={tmp_path / 'runs'}", "--no-progress"])
    assert result.exit_code == ExitStatus.FAILED, result.output  # the data, not the recipe, do not fit
    assert flat(result.stderr) == (
        f"error: {packed / 'train.h5'} has windows of 768 samples but luna-base takes windows of a multiple of 40 samples "
        "(its patch); re-run preprocess with preprocess.window_seconds = 2.96875, or 3.125 if the recordings and their "
        "labelled events last that long"
    )
