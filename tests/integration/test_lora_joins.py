"""A LoRA fine-tuning of official weights through the stages after it, as a user chains them.

Its checkpoints record the adapters (rank, alpha, targets, merged or not) and the licence of the
weights it started from; ``info``, ``evaluate``, ``export`` and ``predict`` say so, the ONNX graph
(merged weights) gives the LoRA model's outputs, and a run preempted mid-epoch resumes bit-exact.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.official import official_copy
from fixtures.process_group import biofound, start_in_own_group
from fixtures.real_runs import (
    FAMILIES,
    assert_bit_identical,
    continue_command,
    environment,
    newest_weights,
    run,
    signal_when_logged,
    trained_weights,
    write_recipe,
)
from safetensors.torch import load_file

from biofound_cli.errors import ExitStatus

pytestmark = pytest.mark.slow

LORA = ["--set", "model.finetune=lora", "--set", "model.lora_rank=4"]


def summary_of(*args: object) -> dict:
    """``biofound ARGS --json`` as a user runs it; its summary."""
    result = run(biofound(*args, "--json", "--no-progress"))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def lora_model(best: Path, step: Path) -> torch.nn.Module:
    """The PyTorch LoRA model of ``step`` (adapters kept apart), rebuilt as training builds it."""
    from biofound_cli.export.source import DeployModule
    from biofound_cli.models.checkpoints import load, read_metadata
    from biofound_cli.models.registry import FAMILIES as REGISTERED
    from biofound_cli.models.registry import family_of
    from biofound_cli.training.adapters import apply_lora

    recorded = read_metadata(step)
    assert recorded.lora is not None
    model = load(best)
    family = REGISTERED[family_of(str(recorded.model)).key]
    head = family.finetune_head_prefixes
    apply_lora(
        model, rank=recorded.lora["rank"], alpha=recorded.lora["alpha"], targets=recorded.lora["targets"], head_prefixes=head
    )
    model.load_state_dict(load_file(str(step)))
    # The family's inference call, as export traces it (the head's output alone).
    return DeployModule(model, family, pretraining=False).eval()


def test_a_lora_checkpoint_says_so_and_its_licence_through_info_evaluate_export_and_predict(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    recipe = write_recipe(tmp_path, epochs=2)
    official = official_copy(trained_weights("pretrain", recipe, "pre"), tmp_path / "official.safetensors")
    # No data.val: the best is the last step, whose step-N keeps the adapters apart.
    summary = summary_of(
        "finetune", recipe, *LORA, "--set", f"model.checkpoint={official}", "--unset", "data.val", "--set", "output.run_name=lora"
    )
    best = Path(summary["best_checkpoint"]) / "model.safetensors"
    step = sorted((tmp_path / "runs" / "lora" / "checkpoints").glob("step-*"))[-1] / "model.safetensors"

    described = summary_of("info", best)
    assert described["fine_tuning"] == "LoRA rank 4, alpha 16.0, adapters merged into the weights"
    assert described["license"] == f"CC BY-ND 4.0; derivative of CC BY-ND 4.0 weights (fine-tuned from {official})"
    assert json.loads(described["metadata"]["lora"])["merged"] is True
    assert summary_of("info", step)["fine_tuning"] == "LoRA rank 4, alpha 16.0, adapters kept apart from the weights"

    report = summary_of("evaluate", recipe, "--checkpoint", best, "--split", "val", "--out", tmp_path / "eval")
    source = json.loads(Path(report["report"]).read_text())["source"]
    assert source["fine_tuning"] == described["fine_tuning"]

    out = tmp_path / "export"
    summary_of("export", best, "--format", "onnx", "--format", "safetensors", "--out", out)
    config = json.loads((out / "config.json").read_text())
    assert config["lora"] == {"rank": 4, "alpha": 16.0, "targets": config["lora"]["targets"], "merged": True}
    assert config["license"]["name"] == "CC BY-ND 4.0" and config["license"]["derived_from_official"] is True
    assert "- **Fine-tuning**: LoRA rank 4" in (out / "README.md").read_text()
    assert summary_of("info", out / "model.safetensors")["fine_tuning"] == described["fine_tuning"]
    # The graph holds the merged weights: it gives what the LoRA model (adapters apart) gives.
    *_, ch_names, n_times, _ = FAMILIES["tinymyo"]
    x = np.random.default_rng(0).normal(size=(3, len(ch_names), n_times)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (graph,) = session.run(None, {"x": x})
    with torch.no_grad():
        expected = lora_model(best, step)(torch.from_numpy(x)).numpy()
    assert np.abs(graph - expected).max() <= 1e-4

    from biofound_cli.prediction.model import load_prediction_model

    for model in (load_prediction_model(str(best)), load_prediction_model(str(out))):
        assert "LoRA rank 4, alpha 16.0, adapters merged into the weights" in model.description
        assert model.license is not None and model.license.startswith("CC BY-ND 4.0")


def test_a_lora_run_preempted_mid_epoch_resumes_bit_exact(tmp_path):
    # Evaluation every epoch over three, two loader workers; stopped at step 3 of the first epoch's 6.
    straight = write_recipe(tmp_path / "straight", epochs=3)
    summary_of("finetune", straight, *LORA)
    recipe = write_recipe(tmp_path / "stopped", epochs=3)
    run_folder = tmp_path / "stopped" / "runs" / "tinymyo-real"
    process = start_in_own_group(biofound("finetune", recipe, *LORA, "--json", "--no-progress"), env=environment())
    signal_when_logged(process, run_folder / "metrics.jsonl", signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.PREEMPTED, stderr
    assert json.loads(stdout)["step"] < 6
    resumed = run(continue_command(stderr))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == 18
    straight_run = tmp_path / "straight" / "runs" / "tinymyo-real"
    assert_bit_identical(newest_weights(run_folder), newest_weights(straight_run))
    best = Path("checkpoints") / "best" / "model.safetensors"
    assert_bit_identical(load_file(str(run_folder / best)), load_file(str(straight_run / best)))
