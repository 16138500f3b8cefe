"""Adding a model family is one file plus a registry line: a toy family goes through the pipeline."""

from __future__ import annotations

import json

import pytest
from fixtures.packed import write_packed
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.models import registry

runner = CliRunner()


@pytest.fixture
def toy_registered(monkeypatch):
    # The registry line and the variant a contributor adds (docs/contributing.md).
    monkeypatch.setitem(registry.FAMILY_MODULES, "toy", "fixtures.toy_family")
    monkeypatch.setitem(
        registry.VARIANTS,
        "toy-small",
        registry.ModelVariant(
            name="toy-small",
            family="toy",
            kwargs={"n_chans": 4, "n_times": 32, "num_classes": 0},
            n_channels=4,
            n_times=32,
            sfreq=256.0,
            hub_repo="example/toy",
            transform="zscore",
            finetune_transform="zscore",
            description="a toy family for the tests",
        ),
    )


def test_a_toy_family_trains_evaluates_and_exports_without_other_changes(toy_registered, tmp_path):
    for split, n in (("train", 16), ("val", 8), ("test", 8)):
        channels, classes = ["C3", "C4", "CZ", "PZ"], ["rest", "task"]
        write_packed(tmp_path / f"{split}.h5", n, len(split), channels=channels, n_times=32, sfreq=256.0, label_names=classes)
    recipe = tmp_path / "toy.toml"
    recipe.write_text(f"""
name = "toy"
[data]
train = "{tmp_path / "train.h5"}"
val = "{tmp_path / "val.h5"}"
test = "{tmp_path / "test.h5"}"
batch_size = 4
[model]
variant = "toy-small"
[train]
max_steps = 4
eval_every = 2
device = "cpu"
[output]
runs_dir = "{tmp_path / "runs"}"
""")
    assert runner.invoke(app, ["validate", str(recipe)]).exit_code == 0
    trained = runner.invoke(app, ["finetune", str(recipe), "--json", "--quiet"])
    assert trained.exit_code == 0, trained.output
    evaluated = runner.invoke(app, ["evaluate", str(recipe), "--json", "--quiet", "--no-plots"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["metrics"]["accuracy"] is not None
    best = tmp_path / "runs" / "toy" / "checkpoints" / "best"
    # biofound info tells the head by the keys the family declares; checkpoints.py names no family's keys.
    info = runner.invoke(app, ["info", str(best), "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["weights"]["head"] == "classification"
    exported = runner.invoke(
        app, ["export", str(best), "--format", "onnx", "--out", str(tmp_path / "export"), "--json", "--quiet"]
    )
    assert exported.exit_code == 0, exported.output
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["model"] == "ToyNet" and (config["n_channels"], config["n_times"]) == (4, 32)
