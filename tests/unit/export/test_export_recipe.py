"""``biofound export --recipe R.toml``: the ``[export]`` section, flags that win, and bad values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


def write_recipe(tmp_path: Path, export: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(f'name = "exp"\n[output]\nruns_dir = "{tmp_path / "runs"}"\n[export]\n{export}\n')
    return path


def test_the_section_drives_every_format_into_the_run_folder(tinymyo_ckpt, tmp_path):
    recipe = write_recipe(tmp_path, f'checkpoint = "{tinymyo_ckpt}"\nformats = ["safetensors", "onnx"]\n')
    result = runner.invoke(app, ["export", "--recipe", str(recipe), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    out = tmp_path / "runs" / "exp" / "export"  # export.out unset: RUN/export
    assert summary["out"] == str(out)
    assert summary["files"] == ["model.safetensors", "model.onnx", "config.json", "README.md"]
    listed = [entry["file"] for entry in json.loads((out / "config.json").read_text())["artefacts"]]
    assert sorted(listed) == ["model.onnx", "model.safetensors"]


def test_a_positional_checkpoint_and_flags_win_over_the_section(tinymyo_ckpt, tmp_path):
    recipe = write_recipe(tmp_path, 'checkpoint = "missing.safetensors"\nformats = ["onnx"]\n')
    out = tmp_path / "elsewhere"
    result = runner.invoke(
        app, ["export", str(tinymyo_ckpt), "--recipe", str(recipe), "--format", "safetensors", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"] == ["model.safetensors", "config.json", "README.md"]
    assert (out / "model.safetensors").is_file() and not (out / "model.onnx").exists()


def test_without_a_checkpoint_the_runs_best_is_exported_or_named_missing(tmp_path):
    recipe = write_recipe(tmp_path, 'formats = ["safetensors"]\n')
    result = runner.invoke(app, ["export", "--recipe", str(recipe)])
    assert result.exit_code == 2
    assert "the run has no best checkpoint yet" in result.stderr and "export.checkpoint" in result.stderr


@pytest.mark.parametrize(
    ("export", "words"),
    [
        ('formats = ["tflite"]', "export.formats.0"),
        ('formats = ["onnx", "onnx"]', "export.formats names a format twice"),
        ('quantize = "int4"', "export.quantize"),
        ("opset = 12", "export.opset"),
        ("tolerance = 0", "export.tolerance"),
        ('quantize = "int8"', "export.quantize = 'int8' needs onnx or torchscript in export.formats"),
        ('formats = ["onnx"]\ncalibration_split = "val"', "export.calibration_split = 'val' but data.val is not set"),
        ('checkpoint = "hub:luna/Gigantic"', "export.checkpoint = 'hub:luna/Gigantic'"),
        ('out_folder = "x"', "export.out_folder"),
    ],
)
def test_each_bad_value_is_exit_2_and_one_line_in_validate_and_export(tinymyo_ckpt, tmp_path, export, words):
    if "checkpoint" not in export:  # only the bad value is wrong
        export += f'\ncheckpoint = "{tinymyo_ckpt}"'
    recipe = write_recipe(tmp_path, export)
    for command in (["validate", str(recipe)], ["export", "--recipe", str(recipe)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.output, (command, result.output)


def test_an_opset_too_new_for_the_exporter_is_refused_before_any_format_is_written(tinymyo_ckpt, tmp_path):
    recipe = write_recipe(tmp_path, f'checkpoint = "{tinymyo_ckpt}"\nformats = ["safetensors", "onnx"]\nopset = 99\n')
    result = runner.invoke(app, ["export", "--recipe", str(recipe)])
    assert result.exit_code == 2, result.output
    assert "--opset 99: this PyTorch" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "runs" / "exp" / "export").exists()  # not even the safetensors file of the first format


def test_export_needs_a_checkpoint_or_a_recipe():
    result = runner.invoke(app, ["export", "--format", "onnx"])
    assert result.exit_code == 2 and "name the checkpoint to export, or pass --recipe" in result.stderr


def test_overwrite_clears_another_export_once_and_every_format_lands(tinymyo_ckpt, tmp_path):
    from fixtures.export_models import save_small

    out = tmp_path / "runs" / "exp" / "export"
    other = save_small(tmp_path / "other.safetensors", "tinymyo", seed=1)
    assert runner.invoke(app, ["export", str(other), "--format", "torchscript", "--out", str(out)]).exit_code == 0
    recipe = write_recipe(tmp_path, f'checkpoint = "{tinymyo_ckpt}"\nformats = ["safetensors", "onnx"]\n')
    refused = runner.invoke(app, ["export", "--recipe", str(recipe)])
    assert refused.exit_code == 2 and "export.overwrite = true" in refused.stderr
    result = runner.invoke(app, ["export", "--recipe", str(recipe), "--set", "export.overwrite=true", "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "config.json", "model.onnx", "model.safetensors"]
    listed = [entry["file"] for entry in json.loads((out / "config.json").read_text())["artefacts"]]
    assert listed == ["model.safetensors", "model.onnx"]


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.slow
def test_a_later_format_failing_its_check_leaves_no_file_of_the_earlier_ones(tinymyo_ckpt, tmp_path):
    """A real `biofound export --recipe` run: ONNX fails its check after safetensors verified; the folder is as it was."""
    out = tmp_path / "out"
    earlier = runner.invoke(app, ["export", str(tinymyo_ckpt), "--format", "torchscript", "--out", str(out)])
    assert earlier.exit_code == 0, earlier.output
    (out / "notes.txt").write_text("kept by the user")
    before = _folder_bytes(out)
    # Reloaded safetensors weights give exactly the same outputs; onnxruntime's differ by ~1e-7.
    recipe = write_recipe(
        tmp_path, f'checkpoint = "{tinymyo_ckpt}"\nformats = ["safetensors", "onnx"]\ntolerance = 1e-30\nout = "{out}"\n'
    )
    for folder in (out, tmp_path / "new"):
        args = ["--set", f"export.out={folder}"]
        result = subprocess.run(
            [sys.executable, "-m", "biofound_cli", "export", "--recipe", str(recipe), *args, "--no-progress"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 1, result.stderr
        assert f"{folder / 'model.onnx'}: verification failed" in result.stderr and "Traceback" not in result.stderr
    assert _folder_bytes(out) == before  # no model.safetensors, config.json still lists model.pt alone
    assert not (tmp_path / "new").exists()
