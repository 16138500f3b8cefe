"""``evaluate``, ``preprocess`` and ``pack`` check their recipe once per command, as it loads.

Each stage's run takes what its check returned (run_checked_preprocess, pack_checked_shards,
evaluate_checked_recipe); a second check would pick the device again, or say a chain's warnings twice.
Training's single check is pinned in tests/unit/training/test_cli_train.py.
"""

from __future__ import annotations

import json

import numpy as np
from fixtures.emg_csv import PACK, preprocess_section, write_recordings
from fixtures.eval_split import write_checkpoint, write_packed
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


def counted(monkeypatch, module, name: str) -> list[tuple]:
    """Replace ``module.name`` by a function that records each call's arguments, then calls it."""
    calls: list[tuple] = []
    check = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(args)
        return check(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_evaluate_checks_its_recipe_once(tmp_path, monkeypatch):
    from biofound_cli.evaluation import evaluate

    write_checkpoint(tmp_path / "runs" / "tiny" / "checkpoints" / "best" / "model.safetensors")
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        f'name = "tiny"\n[data]\ntest = "{write_packed(tmp_path / "test.h5")}"\n'
        f'[output]\nruns_dir = "{tmp_path / "runs"}"\n[train]\ndevice = "cpu"\n'
    )
    calls = counted(monkeypatch, evaluate, "check_evaluation")

    result = runner.invoke(app, ["evaluate", str(recipe), "--no-plots", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["windows"] == 12
    assert [source for _, source in calls] == [str(recipe)]


def test_preprocess_and_pack_check_their_recipe_once(tmp_path, monkeypatch):
    from biofound_cli.store import packer, preprocess, preprocess_config

    monkeypatch.chdir(tmp_path)
    write_recordings(tmp_path / "raw", subjects=2, repetitions=1, samples=400, rng=np.random.default_rng(0))
    (tmp_path / "r.toml").write_text(preprocess_section(0.5, 0.5) + PACK)
    # The command reads check_preprocess from its module, run_preprocess from the one it was imported into.
    preprocessed = counted(monkeypatch, preprocess_config, "check_preprocess")
    monkeypatch.setattr(preprocess, "check_preprocess", preprocess_config.check_preprocess)
    packed = counted(monkeypatch, packer, "check_pack_paths")

    first = runner.invoke(app, ["preprocess", "--recipe", "r.toml", "--no-progress", "--json"])
    second = runner.invoke(app, ["pack", "--recipe", "r.toml", "--no-progress", "--json"])

    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["written"] == 2
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["windows"] == {"train": 4, "val": 4, "test": 0}
    assert [source for _, source in preprocessed] == ["r.toml"]
    assert [str(out) for _, out in packed] == ["packed"]
