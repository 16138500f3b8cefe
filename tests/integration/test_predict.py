"""``biofound predict`` on the bundled raw recordings equals ``evaluate`` on their packed windows.

The models are the quick start's (TinyMyo on Myo, LUNA on SCP1: the session fixture
``quickstart_run`` in tests/integration/conftest.py, so no model is trained for this file), with
their best checkpoints, ONNX exports and packed test splits. Each best checkpoint is scored once
on its packed test split; ``biofound predict`` then runs the checkpoint and the export folder on
the *raw* test recordings: every packed test window must come back with the same start and the
same probabilities (within 1e-5 through PyTorch, 5e-5 through onnxruntime, whose kernels round
differently), and no other window.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app

if TYPE_CHECKING:
    from integration.conftest import QuickstartRun

pytestmark = pytest.mark.slow

SAMPLES = Path(__file__).resolve().parents[2] / "biofound_cli" / "data" / "samples"
# The raw recordings of each chain's test split (Myo repetition 3; SCP1's official test file).
TEST_RECORDINGS = {
    "tinymyo": [str(SAMPLES / "emg" / "myo" / "R_3_*_EMG.csv")],
    "luna": [str(SAMPLES / "eeg" / "scp1" / "SelfRegulationSCP1_TEST.ts.gz")],
}


@dataclass
class Trained:
    checkpoint: Path
    export_dir: Path
    test_split: Path
    window_scores: np.ndarray


def _scored(name: str, run: QuickstartRun, out: Path) -> Trained:
    """The quick start's model of chain ``name``, its best checkpoint scored on the packed test split."""
    from biofound_cli.evaluation.evaluate import evaluate_recipe
    from biofound_cli.quickstart import load_chain_recipe

    artefacts = run.summary[name]["artefacts"]
    weights = Path(artefacts["best_checkpoint"])
    path, recipe = load_chain_recipe(name, run.out)
    evaluated = evaluate_recipe(recipe, source=str(path), checkpoint=weights, split="test", out_dir=out / name, plots=False)
    # predict is given the checkpoint folder, as a user names it.
    return Trained(weights.parent, Path(artefacts["export"]), Path(recipe.data.test), evaluated.window_scores)


@pytest.fixture(scope="module")
def trained(quickstart_run: QuickstartRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    out = tmp_path_factory.mktemp("predict-scores")
    return {name: _scored(name, quickstart_run, out) for name in TEST_RECORDINGS}


def _predict(*args: str) -> dict:
    # Two workers, as users run it: recordings are read and preprocessed in a pool beside the model.
    result = CliRunner().invoke(app, ["predict", *args, "--workers", "2", "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _read_rows(out: Path) -> dict[tuple[str, int], dict[str, str]]:
    rows = {}
    for table in sorted(out.glob("*.csv")):
        with open(table, newline="") as handle:
            for row in csv.DictReader(handle):
                rows[(row["recording"], int(row["window_index"]))] = row
    return rows


def _assert_same_as_evaluate(model: Trained, out: Path, atol: float) -> None:
    import h5py

    rows = _read_rows(out)
    with h5py.File(model.test_split, "r") as handle:
        names = [name.decode() for name in handle["recordings"][()]]
        recording_index = handle["recording_index"][()]
        window_index = handle["window_index"][()]
        starts = handle["window_start_seconds"][()]
    expected = {(names[r].split("/", 1)[1], int(w)) for r, w in zip(recording_index, window_index, strict=True)}
    assert set(rows) == expected
    for i, (r, w) in enumerate(zip(recording_index, window_index, strict=True)):
        row = rows[(names[r].split("/", 1)[1], int(w))]
        assert float(row["start_seconds"]) == pytest.approx(float(starts[i]), abs=1e-6)
        probabilities = [float(value) for key, value in row.items() if key.startswith("p_")]
        np.testing.assert_allclose(probabilities, model.window_scores[i], atol=atol, rtol=0)


@pytest.mark.parametrize("chain", list(TEST_RECORDINGS))
@pytest.mark.parametrize("form", ["checkpoint", "onnx"])
def test_predict_on_raw_recordings_equals_evaluate_on_packed_windows(trained, tmp_path, chain, form) -> None:
    model = trained[chain]
    source = model.checkpoint if form == "checkpoint" else model.export_dir
    summary = _predict(str(source), *TEST_RECORDINGS[chain], "--out", str(tmp_path))
    assert summary["runtime"] == ("pytorch" if form == "checkpoint" else "onnxruntime")
    assert summary["skipped"] == 0 and summary["predicted"] == summary["found"] > 0
    # The same windows go in either way; onnxruntime's float32 kernels differ from PyTorch's by
    # about 1e-5 on LUNA's attention (the export's own check allows more), PyTorch by rounding only.
    _assert_same_as_evaluate(model, tmp_path, atol=1e-5 if form == "checkpoint" else 5e-5)
    report = json.loads((tmp_path / "summary.json").read_text())
    for entry in report["recordings"]:
        assert Path(entry["figure"]).is_file()
        rows = [row for key, row in _read_rows(tmp_path).items() if key[0] == entry["recording_id"]]
        mean = np.mean([[float(v) for k, v in row.items() if k.startswith("p_")] for row in rows], axis=0)
        np.testing.assert_allclose(list(entry["mean_probabilities"].values()), mean, atol=1e-6)


def test_a_rerun_skips_what_this_model_predicted_unless_forced(trained, tmp_path) -> None:
    args = [str(trained["tinymyo"].checkpoint), *TEST_RECORDINGS["tinymyo"], "--out", str(tmp_path)]
    first = _predict(*args)
    again = _predict(*args)
    assert again["already_done"] == first["predicted"] and again["predicted"] == 0
    forced = _predict(*args, "--force", "--format", "jsonl")
    assert forced["predicted"] == first["predicted"]
    lines = (tmp_path / "R_3_C_0_EMG.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["window_index"] == 0 and len(lines) == 9


def test_bad_files_are_skipped_with_their_reasons_and_the_good_one_predicted(trained, tmp_path) -> None:
    folder = tmp_path / "new-session"
    folder.mkdir()
    myo = SAMPLES / "emg" / "myo"
    shutil.copy(myo / "R_3_C_0_EMG.csv", folder / "R_3_C_0_EMG.csv")
    # Cut off in the middle of a row, as a copy that stopped early.
    text = (myo / "R_3_C_1_EMG.csv").read_text()
    (folder / "R_3_C_1_EMG.csv").write_text(text[: len(text) // 2 + 3])
    (folder / "R_3_C_2_EMG.csv").write_bytes(b"\x00\xff\x13binary, not a table\x00\n\x01")
    # A session recorded with one electrode short: 7 columns, so EMG8 is missing.
    rows = [line.split(",")[:7] for line in (myo / "R_3_C_3_EMG.csv").read_text().splitlines()]
    (folder / "R_3_C_3_EMG.csv").write_text("\n".join(",".join(row) for row in rows) + "\n")

    out = tmp_path / "predictions"
    summary = _predict(str(trained["tinymyo"].checkpoint), str(folder), "--out", str(out))
    assert (summary["found"], summary["predicted"], summary["skipped"]) == (4, 1, 3)
    entries = {entry["recording_id"]: entry for entry in json.loads((out / "summary.json").read_text())["recordings"]}
    assert entries["R_3_C_0_EMG"]["status"] == "predicted"
    assert entries["R_3_C_3_EMG"]["reason"] == "missing_channels" and "EMG8" in entries["R_3_C_3_EMG"]["message"]
    for name in ("R_3_C_1_EMG", "R_3_C_2_EMG"):
        assert entries[name]["status"] == "skipped" and name in entries[name]["message"]
    assert sum(summary["skipped_by_reason"].values()) == 3
    assert sorted(path.name for path in out.glob("*.csv")) == ["R_3_C_0_EMG.csv"]


@pytest.mark.parametrize("chain", list(TEST_RECORDINGS))
def test_an_int8_export_predicts_the_raw_recordings_and_reports_its_agreement(trained, tmp_path, chain) -> None:
    """The int8 graph sees the same windows; its agreement is that with the float model, window by window."""
    from biofound_cli.export import export_checkpoint

    model = trained[chain]
    export = tmp_path / "export"
    export_checkpoint(model.checkpoint, "onnx", export, quantize="int8")
    summary = _predict(str(export / "model.int8.onnx"), *TEST_RECORDINGS[chain], "--out", str(tmp_path / "int8"))
    assert summary["runtime"] == "onnxruntime" and summary["skipped"] == 0

    rows = _read_rows(tmp_path / "int8")
    assert len(rows) == len(model.window_scores) == summary["int8_agreement"]["windows"]
    import h5py

    with h5py.File(model.test_split, "r") as handle:
        names = [name.decode() for name in handle["recordings"][()]]
        keys = [
            (names[r].split("/", 1)[1], int(w))
            for r, w in zip(handle["recording_index"][()], handle["window_index"][()], strict=True)
        ]
    int8_scores = np.array([[float(v) for k, v in rows[key].items() if k.startswith("p_")] for key in keys])
    # The float graph equals evaluate's scores within 5e-5 (the test above), so the agreement the
    # run reports is the int8 graph's agreement with evaluate's predictions on the packed windows.
    agreement = 100 * np.mean(int8_scores.argmax(axis=1) == model.window_scores.argmax(axis=1))
    assert summary["int8_agreement"]["argmax_agreement_percent"] == pytest.approx(agreement, abs=1e-3)
    assert summary["int8_agreement"]["max_probability_diff"] == pytest.approx(
        np.abs(int8_scores - model.window_scores).max(), abs=1e-4
    )
