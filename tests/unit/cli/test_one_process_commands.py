"""Commands other than pretrain and finetune refuse to run as several torchrun processes.

A cluster job template that launches every stage with torchrun would otherwise run each
command once per process, every copy doing all the work and writing the same files (two
``report.json`` writers, two ``predict`` runs racing over one folder's tables and summary).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app

# One invocation per command that runs as one process; arguments only as far as parsing needs.
COMMANDS = [
    ["preprocess", "tuab", "--root", "raw", "--out", "shards"],
    ["pack", "shards", "--out", "packed"],
    ["evaluate", "recipe.toml"],
    ["export", "checkpoint.safetensors", "--out", "export"],
    ["predict", "model", "raw", "--out", "predictions"],
    ["download", "tinymyo"],
    ["quickstart"],
    ["validate", "recipe.toml"],
    ["info", "recipe.toml"],
    ["models"],
    ["env"],
    ["recipes", "cp", "luna_tuab", "mine.toml"],
]


@pytest.mark.parametrize(
    "command", COMMANDS, ids=lambda command: "-".join(command[:2]) if command[0] == "recipes" else command[0]
)
def test_rank_zero_refuses_in_one_line_and_the_other_ranks_exit_alike(command, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    first = CliRunner().invoke(app, [*command, "--json"])
    assert first.exit_code == 2, first.output
    words = " ".join(command[:2]) if command[0] == "recipes" else command[0]
    assert json.loads(first.stdout)["error"].startswith(f"`biofound {words}` runs as one process, but torchrun started 2")
    assert first.stderr.count("error:") == 1 and "Traceback" not in first.stderr

    monkeypatch.setenv("RANK", "1")
    other = CliRunner().invoke(app, [*command, "--json"])
    assert other.exit_code == 2 and other.stdout == "" and other.stderr == ""
    assert list(tmp_path.iterdir()) == []  # nothing was started


def test_a_world_size_exported_by_a_job_script_is_not_torchrun(monkeypatch, tmp_path):
    # A SLURM script that exports WORLD_SIZE for its training step runs its other steps with it.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "8")
    result = CliRunner().invoke(app, ["recipes", "cp", "luna_tuab", "mine.toml"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mine.toml").is_file()


def test_under_torchrun_the_job_prints_one_refusal_and_writes_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
        + ["-m", "biofound_cli", "pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert json.loads(result.stdout)["exit_status"] == 2  # one object, from rank 0
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        "error: `biofound pack` runs as one process, but torchrun started 2 (WORLD_SIZE); run it without torchrun: "
        "only pretrain and finetune use several processes"
    ]
    assert list(tmp_path.iterdir()) == []
