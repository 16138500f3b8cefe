"""One recipe drives every stage: the quick start's recipes run stage by stage with ``--recipe``.

``download → preprocess → pack → finetune → evaluate → export``, each given the recipe file and
nothing else (no positional paths): the recipe's own sections say where everything goes. The
recipes are the shipped ones, copied as a user does (``biofound recipes cp``), with the sample
folder made absolute; training is shortened to 2 epochs (steps only).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from biofound_cli.recipes.shipped import shipped_recipe

pytestmark = pytest.mark.slow
PACKAGE = Path(shipped_recipe("tinymyo_myo.toml")).parents[2]


def biofound(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "biofound_cli", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=900
    )


@pytest.mark.parametrize("name", ["tinymyo_myo", "luna_scp1"])
def test_every_stage_runs_from_the_recipe_alone(tmp_path, name):
    copied = biofound("recipes", "cp", name, tmp_path / f"{name}.toml", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    recipe = tmp_path / f"{name}.toml"
    text = recipe.read_text().replace('root = "biofound_cli/', f'root = "{PACKAGE}/')
    recipe.write_text(text.replace("epochs = 15", "epochs = 2"))

    fetched = biofound("download", "--recipe", recipe, "--json", cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout)["fetched"] == []  # bundled samples, trained from scratch
    for stage in (["preprocess", "--recipe"], ["pack", "--recipe"], ["finetune"], ["evaluate"], ["export", "--recipe"]):
        result = biofound(*stage, recipe, "--json", "--no-progress", cwd=tmp_path)
        assert result.returncode == 0, (stage, result.stderr)
    run = next((tmp_path / "out" / name / "runs").iterdir())
    exported = json.loads(result.stdout)
    assert exported["out"] == str(Path("out") / name / "runs" / run.name / "export")
    assert exported["files"] == ["model.onnx", "config.json", "README.md"]
    assert (run / "export" / "model.onnx").is_file() and (run / "eval" / "test" / "report.json").is_file()
