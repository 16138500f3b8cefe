"""The licence an export carries follows the chain of starting weights, as users chain the stages.

A model pre-trained from scratch with ``biofound pretrain`` and fine-tuned from there (LoRA,
evaluation every epoch, loader workers) is the user's own: its export needs no acknowledgement.
Weights started from a file without biofound metadata (as the official checkpoints are) derive
from the official, CC BY-ND 4.0, weights, and so does everything trained from them.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
from fixtures.official import official_copy
from fixtures.process_group import biofound as command
from fixtures.process_group import start_in_own_group
from fixtures.real_runs import continue_command, environment, run, signal_when_logged, trained_weights, write_recipe

from biofound_cli.errors import ExitStatus
from biofound_cli.models.checkpoints import read_metadata

pytestmark = pytest.mark.slow


def biofound(*args: object) -> dict:
    """Run ``biofound ARGS --json`` as a user does; its summary."""
    result = run([sys.executable, "-m", "biofound_cli", *map(str, args), "--json", "--no-progress"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def train(stage: str, recipe: Path, name: str, start_from: Path | None = None, *extra: str) -> Path:
    start = ["--set", f"model.checkpoint={start_from}"] if start_from else []
    return trained_weights(stage, recipe, name, *start, *extra)


def recorded(checkpoint: Path) -> dict:
    """The provenance the checkpoint records, as ``biofound info`` shows it (header text)."""
    metadata = biofound("info", checkpoint)["metadata"]
    return {key: metadata.get(key) for key in ("derived_from_official", "source_checkpoint")}


def exported_licence(checkpoint: Path, out: Path) -> tuple[dict, str]:
    result = run(
        [sys.executable, "-m", "biofound_cli", "export", str(checkpoint), "--format", "safetensors"]
        + ["--out", str(out), "--json", "--no-progress"]
    )
    assert result.returncode == 0, result.stderr
    return json.loads((out / "config.json").read_text())["license"], result.stderr


def test_weights_pretrained_from_scratch_stay_the_users_through_finetuning(tmp_path):
    recipe = write_recipe(tmp_path, "tinymyo", epochs=2)
    pretrained = train("pretrain", recipe, "pre")
    assert recorded(pretrained) == {"derived_from_official": "false", "source_checkpoint": None}
    lora = train("finetune", recipe, "lora", pretrained, "--set", "model.finetune=lora")
    assert recorded(lora) == {"derived_from_official": "false", "source_checkpoint": str(pretrained)}

    licence, stderr = exported_licence(lora, tmp_path / "export-lora")
    assert licence["derived_from_official"] is False and licence["card"] == "for sharing"
    assert "CC BY-ND" not in stderr
    card = (tmp_path / "export-lora" / "README.md").read_text()
    assert "do not derive from the official checkpoints" in card and f"started from {pretrained}" in card
    # The exported weights carry the decision on: trained from them, still the user's.
    exported = tmp_path / "export-lora" / "model.safetensors"
    assert recorded(train("finetune", recipe, "from-export", exported)) == {
        "derived_from_official": "false",
        "source_checkpoint": str(exported),
    }


def test_weights_started_from_a_file_without_biofound_metadata_are_derived_and_pass_it_on(tmp_path):
    recipe = write_recipe(tmp_path, "tinymyo", epochs=2)
    pretrained = train("pretrain", recipe, "pre")
    # As an official checkpoint is: the tensors, no biofound metadata.
    official = official_copy(pretrained, tmp_path / "official.safetensors")
    tuned = train("finetune", recipe, "tuned", official)
    assert recorded(tuned) == {"derived_from_official": "true", "source_checkpoint": str(official)}
    again = train("finetune", recipe, "again", tuned, "--set", "model.finetune=lora")
    assert recorded(again)["derived_from_official"] == "true"

    licence, stderr = exported_licence(again, tmp_path / "export-again")
    assert licence["derived_from_official"] is True and licence["card"] == "internal use only"
    assert "treated as a derivative of the official checkpoints" in stderr


def test_a_resumed_run_carries_the_licence_of_the_official_weights_it_started_from(tmp_path):
    """tidy28: a resume reads no starting weights, so its checkpoints' licence comes from the run's own record
    (`training.setup._recorded_provenance`); nothing checked that it does."""
    recipe = write_recipe(tmp_path, "tinymyo", epochs=2)
    official = official_copy(train("pretrain", recipe, "pre"), tmp_path / "official.safetensors")
    run_folder = tmp_path / "runs" / "tuned"
    args = ("finetune", recipe, "--set", "output.run_name=tuned", "--set", f"model.checkpoint={official}")
    process = start_in_own_group(command(*args, "--json", "--no-progress"), env=environment())
    signal_when_logged(process, run_folder / "metrics.jsonl", signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.PREEMPTED, stderr
    stopped_at = json.loads(stdout)["step"]
    first = read_metadata(sorted((run_folder / "checkpoints").glob("step-*"))[-1] / "model.safetensors")
    assert first.license == "CC BY-ND 4.0" and first.license_note == (
        f"derivative of CC BY-ND 4.0 weights (fine-tuned from {official})"
    )
    resumed = run(continue_command(stderr))
    assert resumed.returncode == 0, resumed.stderr
    newest = sorted((run_folder / "checkpoints").glob("step-*"))[-1]
    assert int(newest.name.split("-")[1]) > stopped_at
    for written in (newest, run_folder / "checkpoints" / "best"):
        metadata = read_metadata(written / "model.safetensors")
        assert (metadata.license, metadata.license_note) == (first.license, first.license_note), written
        assert (metadata.derived_from_official, metadata.source_checkpoint) == (True, str(official)), written
