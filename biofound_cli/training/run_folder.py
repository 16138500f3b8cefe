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
        if not self.read_metrics():
            return None
        from biofound_cli.evaluation.plots import plot_training_curves

        # The loss panel already shows a watched loss; then the second panel shows a task metric.
        return plot_training_curves(self.metrics_file, self.curve_file, metric=None if "loss" in metric else metric)


def describe_environment(device: str, world_size: int) -> dict[str, Any]:
    """Versions, device and git commit: what a bug report or a reproduction needs."""
    import torch

    from biofound_cli.environment import git_commit, package_versions

    return {
        **package_versions(("torch", "numpy", "mne", "h5py", "safetensors")),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device,
        "world_size": world_size,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
    }
