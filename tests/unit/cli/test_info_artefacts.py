"""``biofound info`` on what training and export leave behind, and on raw recordings.

One tiny fine-tuning run (TinyMyo, hand-made packed splits, six steps) and its ONNX and
TorchScript exports are shared by the module; every test reads them through the real CLI.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures.process_group import biofound, start_in_own_group, terminate_group, wait_until
from fixtures.tiny_training import tiny_recipe
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus

REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLE_EDF = REPO_ROOT / "biofound_cli" / "data" / "samples" / "eeg" / "eegmmidb" / "S001R02.edf"
runner = CliRunner()


def info_json(path: Path) -> dict:
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The run folder of a six-step fine-tuning, with an ONNX and a TorchScript export of its best weights."""
    root = tmp_path_factory.mktemp("info_run")
    recipe = tiny_recipe(root, "max_steps = 6\neval_every = 3\ncheckpoint_every = 3")
    result = runner.invoke(app, ["finetune", str(recipe), "--quiet"])
    assert result.exit_code == 0, result.output
    folder = root / "runs" / "tiny"
    for fmt in ("onnx", "torchscript"):
        result = runner.invoke(
            app, ["export", str(folder / "checkpoints" / "best"), "--format", fmt, "--out", str(folder / "export"), "--quiet"]
        )
        assert result.exit_code == 0, result.output
    return folder


def newest_step(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("step-*"))[-1]


def test_checkpoint_folder_shows_its_files_weights_metadata_and_trainer_state(run):
    info = info_json(newest_step(run))
    assert info["kind"] == "checkpoint_folder" and info["resumable"] is True
    # best.safetensors: the best weights when the checkpoint was written, put back by a resume from it
    assert set(info["files"]) == {"model.safetensors", "trainer_state.pt", "best.safetensors"}
    assert info["weights"]["model"] == "TinyMyo" and info["weights"]["metadata"]["variant"] == "tinymyo"
    assert info["trainer_state"]["step"] == 6 and info["trainer_state"]["world_size"] == 1
    best = info_json(run / "checkpoints" / "best")
    assert best["resumable"] is False and "trainer_state" not in best and best["weights"]["head"] == "classification"
    table = runner.invoke(app, ["info", str(run / "checkpoints" / "best")])
    assert table.exit_code == 0 and "weights.metadata.variant" in table.stdout


def test_trainer_state_says_where_the_run_was_and_what_it_holds(run):
    info = info_json(newest_step(run) / "trainer_state.pt")
    assert info["kind"] == "trainer_state"
    # Six batches of four of 24 windows: the first epoch (0) done, as the loop saves it before moving on.
    assert (info["step"], info["epoch"], info["batch"]) == (6, 0, 6)
    assert (info["model"], info["variant"]) == ("TinyMyo", "tinymyo")
    assert {"optimizer", "schedule", "scaler", "rng"} <= set(info["holds"])
    assert "parameters" in info["holds"]["optimizer"]


def test_a_pickle_with_foreign_objects_is_refused_unloaded(tmp_path):
    path = tmp_path / "trainer_state.pt"
    torch.save({"progress": {"step": 1}, "thing": Path("x")}, path)
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 2 and "was not loaded" in result.output and "Traceback" not in result.output


def test_onnx_file_shows_inputs_outputs_opset_and_the_export_config(run):
    info = info_json(run / "export" / "model.onnx")
    assert info["kind"] == "onnx" and info["opset"]["ai.onnx"] >= 17
    (graph_input,) = info["inputs"]
    assert graph_input["name"] == "x" and graph_input["shape"] == ["batch", 4, 40] and graph_input["dtype"] == "float32"
    assert info["outputs"][0]["shape"] == ["batch", 3]
    assert info["biofound"]["variant"] == "tinymyo" and info["biofound"]["ch_names"] == [f"EMG{c}" for c in range(4)]


def test_torchscript_file_is_recognised_with_its_inputs(run):
    info = info_json(run / "export" / "model.pt")
    assert info["kind"] == "torchscript"
    assert info["inputs"] == [{"name": "x", "type": "Tensor", "shape": ["batch", 4, 40]}]
    assert info["n_parameters"] > 0


def test_an_int8_torchscript_file_is_described_without_a_raw_torch_line(run, tmp_path):
    """`info model.int8.pt` (export --quantize int8) printed torch's C++ deprecation notice of quantized tensors on
    stderr, a raw `[W... Quantizer.cpp:111] Warning: ...` line, before the description."""
    out = tmp_path / "export"
    exported = runner.invoke(
        app, ["export", str(run / "checkpoints" / "best"), "-f", "torchscript", "--quantize", "int8", "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    # A process of its own: torch raises the notice once per process.
    result = subprocess.run(
        [sys.executable, "-m", "biofound_cli", "info", str(out / "model.int8.pt"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["kind"] == "torchscript"
    assert "Quantizer.cpp" not in result.stderr and "[W" not in result.stderr, result.stderr


def test_models_load_takes_a_checkpoint_folder_and_returns_eval_mode(run):
    from biofound_cli.models import load

    model = load(run / "checkpoints" / "best")
    assert not model.training
    with torch.no_grad():
        logits, _ = model(torch.zeros(2, 4, 40))
    assert logits.shape == (2, 3)


def test_raw_recording_shows_channels_rate_duration_and_annotation_counts():
    info = info_json(SAMPLE_EDF)
    assert info["kind"] == "recording" and info["format"] == "edf"
    assert info["n_channels"] == 64 and info["ch_names"][:2] == ["Fc5.", "Fc3."]
    assert info["channel_types"] == {"eeg": 64} and info["sfreq"] == 160.0
    assert info["duration_seconds"] == pytest.approx(61.0) and info["truncated"] is False
    assert info["annotations"] == {"T0": 1} and info["n_annotations"] == 1


def test_a_truncated_or_foreign_recording(tmp_path):
    cut = tmp_path / "cut.edf"
    data = SAMPLE_EDF.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert info_json(cut)["truncated"] is True
    junk = tmp_path / "junk.vhdr"
    junk.write_text("not a header")
    result = runner.invoke(app, ["info", str(junk)])
    assert result.exit_code == 1 and "not a readable recording" in result.output and "Traceback" not in result.output
    empty = tmp_path / "empty.edf"
    empty.touch()
    result = runner.invoke(app, ["info", str(empty)])
    assert result.exit_code == 1 and "(the file is empty, 0 bytes)" in result.output


def test_a_reader_error_is_quoted_by_its_type_and_first_line_without_the_full_stop(tmp_path):
    from biofound_cli.errors import reader_failure

    (tmp_path / "x.edf").write_bytes(b"x")
    assert reader_failure(tmp_path / "x.edf", AssertionError()) == "AssertionError"
    assert reader_failure(tmp_path / "x.edf", ValueError("Bad EDF file provided.\nmore")) == "ValueError: Bad EDF file provided"
    assert reader_failure(tmp_path / "x.edf", OSError("cut short...")) == "OSError: cut short..."


def test_a_folder_that_is_not_a_checkpoint(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 2 and "not a run, checkpoint, export, evaluation, predict, shard or packed folder" in result.output


def test_a_run_folder_shows_its_checkpoints_last_records_and_best(run):
    info = info_json(run)
    assert info["kind"] == "run_folder" and info["resumable_checkpoints"] == ["step-00000003", "step-00000006"]
    assert info["last_train"]["step"] == 6 and info["last_val"]["step"] == 6
    assert info["best"]["kind"] == "checkpoint_folder" and info["best"]["weights"]["metadata"]["variant"] == "tinymyo"
    table = runner.invoke(app, ["info", str(run)])
    assert table.exit_code == 0 and "best.weights.metadata.variant" in table.stdout


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the run folder's lock is probed with fcntl")
def test_a_run_folder_says_whether_it_is_trained_into_and_how_its_training_ended(run, tmp_path):
    """`info runs/NAME` said nothing of a job training into it, nor whether its training had finished or been stopped."""
    assert info_json(run)["training"] == "finished: step 6 of 6"
    recipe = tmp_path / "long.toml"
    tiny = (run.parent.parent / "tiny.toml").read_text()
    recipe.write_text(tiny.replace("max_steps = 6", "max_steps = 100000").replace(str(run.parent), str(tmp_path / "runs")))
    folder = tmp_path / "runs" / "tiny"
    process = start_in_own_group(biofound("finetune", recipe, "--json"))
    try:
        wait_until(process, lambda: any((folder / "checkpoints").glob("step-*")), "a checkpoint was written")
        assert info_json(folder)["training"].startswith(f"running: pid {process.pid} on ")
    finally:
        terminate_group(process)
    assert process.returncode == ExitStatus.PREEMPTED
    training = info_json(folder)["training"]
    assert re.fullmatch(r"stopped at step (\d+) of 100000; --resume auto continues it from step-0*\1", training), training


def test_a_checkpoints_folder_lists_each_checkpoint_in_one_line(run, tmp_path):
    # It was refused: "a folder holding what info describes, not one itself: best (checkpoint folder), ...".
    info = info_json(run / "checkpoints")
    assert info["kind"] == "checkpoints_folder" and info["run"] == str(run)
    lines = info["checkpoints"]
    assert list(lines) == ["best", "step-00000003", "step-00000006"]
    assert re.fullmatch(r"step [36], val_loss \d\.\d+; tinymyo; weights only", lines["best"]), lines
    assert lines["step-00000003"] == "step 3; tinymyo; resumable" and lines["step-00000006"] == "step 6; tinymyo; resumable"
    table = runner.invoke(app, ["info", str(run / "checkpoints")])
    assert table.exit_code == 0 and "checkpoints.step-00000003 │ step 3; tinymyo; resumable" in table.stdout
    # A damaged weights file is said in its line; the others are listed.
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(run / "checkpoints", copy / "checkpoints")
    (copy / "checkpoints" / "step-00000003" / "model.safetensors").write_bytes(b"")
    lines = info_json(copy / "checkpoints")["checkpoints"]
    assert lines["step-00000003"].startswith("unreadable: ") and "is empty or truncated (0 bytes)" in lines["step-00000003"]
    assert lines["step-00000006"] == "step 6; tinymyo; resumable"


def test_an_export_folder_shows_its_model_and_each_verified_file(run):
    info = info_json(run / "export")
    assert info["kind"] == "export_folder" and info["variant"] == "tinymyo" and info["n_times"] == 40
    assert set(info["artefacts"]) == {"model.onnx", "model.pt"}
    assert all(entry["present"] and entry["max_abs_diff"] is not None for entry in info["artefacts"].values())
    assert info["source_checkpoint"].endswith("model.safetensors")
    # Its config.json said "unknown file type .json", though predict's summary.json and evaluate's report.json
    # describe their folders.
    assert info_json(run / "export" / "config.json") == info


def test_an_export_folder_of_lora_weights_says_so_with_its_licence(run, tmp_path):
    """tidy28: `info` of a LoRA export's folder (or its graphs) listed config.json's facts but not its `fine_tuning`."""
    copy = shutil.copytree(run / "export", tmp_path / "export")
    config = json.loads((copy / "config.json").read_text())
    # What export writes for a LoRA best (tests/integration/test_lora_joins.py exports one end to end).
    said = "LoRA rank 4, alpha 16.0, adapters merged into the weights"
    config.update(fine_tuning=said, lora={"rank": 4, "alpha": 16.0, "targets": ["qkv"], "merged": True})
    (copy / "config.json").write_text(json.dumps(config))
    info = info_json(copy)
    assert info["fine_tuning"] == said and info["license"] == config["license"]
    assert info_json(copy / "model.onnx")["biofound"]["fine_tuning"] == said
    shown = runner.invoke(app, ["info", str(copy)])
    assert shown.exit_code == 0 and said in " ".join(shown.stdout.split()), shown.output


def test_an_export_folder_names_a_listed_file_gone_or_cut_short(run, tmp_path):
    """A folder whose model.pt was gone, or whose model.onnx a copy had cut short, said only `present: False` (or
    `present: True`) deep in its table, exit 0, and nothing on stderr."""
    assert all(entry["problem"] is None for entry in info_json(run / "export")["artefacts"].values())
    copy = shutil.copytree(run / "export", tmp_path / "export")
    (copy / "model.pt").unlink()
    onnx = (copy / "model.onnx").read_bytes()
    (copy / "model.onnx").write_bytes(onnx[: len(onnx) // 2])
    result = runner.invoke(app, ["info", str(copy), "--json"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    artefacts = json.loads(result.stdout)["artefacts"]
    assert artefacts["model.pt"]["present"] is False and "not there" in artefacts["model.pt"]["problem"]
    assert artefacts["model.onnx"]["problem"].startswith(f"{len(onnx) // 2} bytes where config.json records {len(onnx)}")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    expected = [f"warning: {copy / name}: {artefacts[name]['problem']}" for name in ("model.onnx", "model.pt")]
    assert sorted(warnings) == expected, result.stderr


def test_an_evaluation_folder_shows_what_was_evaluated_and_its_headline(run, tmp_path):
    """`info runs/NAME/eval/val` (or its report.json) said "unknown file type .json" / "not a run ... folder"."""
    recipe = run.parent.parent / "tiny.toml"
    result = runner.invoke(app, ["evaluate", str(recipe), "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    folder = run / "eval" / "val"
    info = info_json(folder)
    assert info["kind"] == "evaluation" and info["split"] == "val" and info["windows"] == 9
    # Counted in evaluate --json's words (it said n_recordings).
    assert info["recordings"] == json.loads(result.stdout)["recordings"] and "n_recordings" not in info
    assert info["checkpoint"].endswith("best/model.safetensors") and len(info["checkpoint_sha256"]) == 64
    assert 0.0 <= info["headline"]["windows"]["balanced_accuracy"] <= 1.0 and "confusion.png" in info["plots"]
    assert info_json(folder / "report.json") == info
    broken = tmp_path / "eval"
    broken.mkdir()
    (broken / "report.json").write_text('{"headline": ')
    result = runner.invoke(app, ["info", str(broken)])
    assert result.exit_code == 1 and "report.json: cannot be read" in result.output and "Traceback" not in result.output
