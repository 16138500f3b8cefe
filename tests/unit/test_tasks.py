"""One spelling of the pre-training task (``reconstruction``); the older ones are still read."""

from __future__ import annotations

import h5py
import pytest
from fixtures.export_models import save_small, write_packed
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from biofound_cli.models import registry
from biofound_cli.models.checkpoints import read_metadata
from biofound_cli.recipes import load_recipe
from biofound_cli.store.dataset import read_packed_info
from biofound_cli.tasks import RECONSTRUCTION, TASKS


@pytest.mark.parametrize("family", sorted(registry.FAMILY_MODULES))
def test_every_family_names_its_tasks_with_the_task_names(family):
    model_family = registry.family_of(family)
    assert set(model_family.tasks) <= set(TASKS)
    variant = registry.get_variant(model_family.default_variant)
    assert model_family.head_task(variant.constructor_kwargs(RECONSTRUCTION)) == RECONSTRUCTION


@pytest.mark.parametrize("old", ["pretrain", "pretraining"])
def test_the_registry_still_takes_the_old_spellings(old):
    variant = registry.get_variant("tinymyo")
    assert variant.constructor_kwargs(old) == variant.constructor_kwargs(RECONSTRUCTION)
    assert variant.default_transform(old) == variant.default_transform(RECONSTRUCTION) == "minmax"
    assert registry.count_parameters(registry.create_model("tinymyo", task=old, device="meta")) == 3_567_380


def test_a_recipe_spelling_pretrain_loads_as_reconstruction(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("[model]\nvariant = 'tinymyo'\ntask = 'pretrain'\n")
    assert load_recipe(path).model.task == RECONSTRUCTION
    assert load_recipe(None, ["model.task=pretraining"]).model.task == RECONSTRUCTION


def test_a_packed_file_spelling_pretrain_reads_as_reconstruction(tmp_path):
    split = write_packed(tmp_path / "train.h5")
    with h5py.File(split, "a") as handle:
        handle.attrs["task"] = "pretrain"
    assert read_packed_info(split).task == RECONSTRUCTION


@pytest.mark.parametrize("old", ["pretrain", "pretraining"])
def test_a_checkpoint_of_an_earlier_version_is_read_as_a_pretraining_model(tmp_path, old):
    ckpt = save_small(tmp_path / "pre.safetensors", "tinymyo", task=RECONSTRUCTION, num_classes=None)
    with safe_open(str(ckpt), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        header = {**handle.metadata(), "task": old}
    save_file(tensors, str(ckpt), metadata=header)  # as an earlier version wrote it
    assert read_metadata(ckpt).task == RECONSTRUCTION

    from biofound_cli.cli.app import app

    split = write_packed(tmp_path / "test.h5")
    args = ["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "out"), "--split", str(split)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "holds a pre-training model" in result.stderr, result.output
