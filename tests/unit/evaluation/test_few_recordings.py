"""``biofound evaluate`` on splits of 1, 4 and 12 recordings: warnings, the bootstrap unit, n/a."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.eval_split import write_checkpoint, write_packed
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.evaluation.report import build_report

runner = CliRunner()


@pytest.fixture
def evaluate_split(tmp_path):
    """Evaluate a tiny checkpoint on a split of ``n`` recordings; returns the CLI result and report.json."""
    checkpoint = write_checkpoint(tmp_path / "model.safetensors")

    def run(n_recordings: int, *flags: str):
        packed = write_packed(tmp_path / f"test{n_recordings}.h5", n_recordings=n_recordings)
        recipe = tmp_path / f"r{n_recordings}.toml"
        recipe.write_text(f'name = "tiny"\n[data]\ntest = "{packed}"\nbatch_size = 8\n[train]\ndevice = "cpu"\n')
        out = tmp_path / f"eval{n_recordings}"
        result = runner.invoke(
            app, ["evaluate", str(recipe), "-c", str(checkpoint), "-o", str(out), "--no-plots", "--no-progress", *flags]
        )
        assert result.exit_code == 0, result.output
        return result, json.loads((out / "report.json").read_text())

    return run


def test_one_recording_resamples_windows_and_leaves_recording_metrics_undefined(evaluate_split):
    result, report = evaluate_split(1, "--bootstrap", "20")
    assert "holds 1 recording (fewer than 10)" in result.output
    assert report["recordings"]["n_recordings"] == 1
    # One recording is right or wrong: no recording-level score means anything.
    assert set(report["headline"]["recordings"].values()) == {None}
    assert report["bootstrap"]["windows"]["unit"] == "window"
    assert report["bootstrap"]["recordings"] is None
    assert any("resample single windows" in note for note in report["notes"])
    # Its windows hold 3 classes: how its label was chosen explains no recording-level score, all null.
    assert not any("different labels" in note for note in report["notes"])
    assert "(windows resampled)" in result.output and "resample single windows" in result.output
    recording_column = [line for line in result.output.splitlines() if "balanced_accuracy" in line][0]
    assert "n/a" in recording_column and "0.0000" not in recording_column.split("│")[3]


def test_four_recordings_warn_and_resample_recordings(evaluate_split):
    result, report = evaluate_split(4, "--bootstrap", "20")
    warning = [line for line in result.output.splitlines() if "holds 4 recordings" in line]
    assert len(warning) == 1 and "fewer than 10" in warning[0] and "intervals" in warning[0]
    assert report["bootstrap"]["windows"]["unit"] == "recording"
    assert report["bootstrap"]["recordings"]["unit"] == "recording"
    # Every recording's majority label is class 0: its AUROC is undefined, null in JSON and n/a on screen.
    assert report["headline"]["recordings"]["auroc"] is None
    auroc_row = [line for line in result.output.splitlines() if line.strip("│ ").startswith("auroc")][0]
    assert auroc_row.split("│")[3].strip() == "n/a"
    assert "(recordings resampled)" in result.output


def test_four_recordings_without_bootstrap_still_warn(evaluate_split):
    result, report = evaluate_split(4)
    assert "holds 4 recordings (fewer than 10)" in result.output
    assert report["bootstrap"] is None


def test_twelve_recordings_resample_recordings_without_a_warning(evaluate_split):
    result, report = evaluate_split(12, "--bootstrap", "20")
    assert "fewer than" not in result.output
    assert report["recordings"]["n_recordings"] == 12
    assert report["bootstrap"]["windows"]["unit"] == "recording"
    assert report["bootstrap"]["recordings"]["unit"] == "recording"
    assert not any("resample single windows" in note for note in report["notes"])


def test_report_of_one_recording_without_the_cli():
    p1 = np.array([0.2, 0.7, 0.4, 0.9])
    report = build_report(
        "bc",
        np.array([0, 1, 0, 1]),
        np.stack([1 - p1, p1], axis=1),
        recording_index=np.zeros(4, dtype=int),
        n_bootstrap=10,
        seed=0,
    )
    assert report["windows"]["auroc"] == 1.0
    assert report["recordings"]["metrics"]["accuracy"] is None
    assert report["bootstrap"]["windows"]["unit"] == "window"
    assert report["bootstrap"]["recordings"] is None
