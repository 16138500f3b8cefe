"""The run folder ``runs/NAME/``: resolved recipe, environment, metrics, checkpoints, curves.

::

    runs/NAME/
      recipe.json          the recipe after --set overrides and defaults
      environment.json     package versions, device, world size, git commit
      metrics.jsonl        one JSON object per logged step or evaluation
      checkpoints/step-*/  resumable checkpoints (model.safetensors + trainer_state.pt)
      checkpoints/best/    weights of the best evaluation
      debug/               the weights at a NaN loss, for inspection
      train_curve.png      training loss and the watched validation metric

Only rank 0 writes here.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def _write_text_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


class RunFolder:
    """Paths and writers of one run folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best"

    @property
    def debug(self) -> Path:
        return self.root / "debug"

    @property
    def metrics_file(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def curve_file(self) -> Path:
        return self.root / "train_curve.png"

    def create(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    def write_recipe(self, recipe: dict[str, Any]) -> Path:
        path = self.root / "recipe.json"
        _write_text_atomic(path, json.dumps(recipe, indent=2, default=str) + "\n")
        return path

    def write_environment(self, *, device: str, world_size: int) -> Path:
        path = self.root / "environment.json"
        _write_text_atomic(path, json.dumps(describe_environment(device, world_size), indent=2) + "\n")
        return path

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics_file.open("a") as handle:
            handle.write(json.dumps(record, default=float) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_file.is_file():
            return []
        records = []
        for line in self.metrics_file.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
        return records

    def truncate_metrics(self, step: int) -> None:
        """Drop records after ``step`` so a resumed run does not log those steps twice."""
        kept = [record for record in self.read_metrics() if record.get("step", 0) <= step]
        _write_text_atomic(self.metrics_file, "".join(json.dumps(record) + "\n" for record in kept))

    def plot_curve(self, metric: str) -> Path | None:
        """Training loss and ``metric`` against the step; ``None`` when nothing was logged."""
        records = self.read_metrics()
        train = [(r["step"], r["loss"]) for r in records if r.get("split") == "train" and "loss" in r]
        val = [(r["step"], r[metric]) for r in records if r.get("split") == "val" and r.get(metric) is not None]
        if not train and not val:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, loss_axis = plt.subplots(figsize=(7, 4))
        if train:
            loss_axis.plot(*zip(*train), color="tab:blue", label="training loss")
        loss_axis.set_xlabel("optimiser step")
        loss_axis.set_ylabel("training loss", color="tab:blue")
        if val:
            metric_axis = loss_axis.twinx()
            metric_axis.plot(*zip(*val), color="tab:orange", marker="o", label=metric)
            metric_axis.set_ylabel(metric, color="tab:orange")
        figure.tight_layout()
        temporary = self.curve_file.with_name(f".train_curve.tmp-{os.getpid()}.png")
        figure.savefig(temporary, dpi=100)
        plt.close(figure)
        os.replace(temporary, self.curve_file)
        return self.curve_file


def describe_environment(device: str, world_size: int) -> dict[str, Any]:
    """Versions, device and git commit: what a bug report or a reproduction needs."""
    import numpy
    import torch

    from biofound_cli import __version__

    environment: dict[str, Any] = {
        "biofound": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "device": device,
        "world_size": world_size,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
        "git_commit": _git_commit(),
    }
    for package in ("mne", "h5py", "safetensors"):
        try:
            environment[package] = __import__(package).__version__
        except ImportError:
            environment[package] = None
    return environment


def _git_commit() -> str | None:
    """The commit of the biofound source tree, when it is a git checkout."""
    source = Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
