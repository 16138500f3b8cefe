"""An exported ONNX graph, run with onnxruntime on a packed split as its config.json says, scores as ``evaluate`` does.

The graph takes windows after the normalisation config.json names (FEMBA's fixed affine, LUNA's per-window
z-score): a user who applies it and a softmax gets the window scores ``evaluate`` measured on the same
checkpoint and split, so the same metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures.eval_split import write_packed
from fixtures.export_models import LUNA_CHANNELS, save_small
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


def _json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("family", "n_times", "channels"),
    [("femba", 256, [f"EMG{c}" for c in range(4)]), ("luna", 160, LUNA_CHANNELS)],
)
def test_an_onnx_graph_fed_as_its_config_says_gives_evaluates_metrics_on_the_packed_split(
    tmp_path: Path, family: str, n_times: int, channels: list[str]
) -> None:
    import onnxruntime
    import torch

    from biofound_cli.models.transforms import get_transform
    from biofound_cli.store.dataset import PackedDataset

    split = write_packed(tmp_path / "test.h5", n_channels=len(channels), n_times=n_times, n_recordings=6)
    with h5py.File(split, "a") as handle:  # the split's montage is the model's
        handle.attrs["channel_names"] = channels
    checkpoint = save_small(tmp_path / "model.safetensors", family, ch_names=channels, sfreq=2000.0, n_times=n_times)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'[data]\ntest = "{split}"\nnum_workers = 2\n[train]\ndevice = "cpu"\n', encoding="utf-8")

    _json("export", str(checkpoint), "--format", "onnx", "--split", str(split), "--out", str(tmp_path / "export"))
    evaluated = _json("evaluate", str(recipe), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "eval"))

    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["normalisation"]["name"] != "none"  # the user's step this test takes
    dataset = PackedDataset(split)
    windows = torch.stack([dataset[index]["x"] for index in range(len(dataset))])
    targets = np.array([int(dataset[index]["y"]) for index in range(len(dataset))])
    feeds = {"x": get_transform(config["normalisation"]["name"])(windows).numpy()}
    session = onnxruntime.InferenceSession(str(tmp_path / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    if "channel_locations" in [graph_input.name for graph_input in session.get_inputs()]:
        locations = np.asarray(config["channel_locations"], dtype=np.float32)
        feeds["channel_locations"] = np.broadcast_to(locations, (len(windows), *locations.shape)).copy()
    (logits,) = session.run(None, feeds)

    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets)).item()
    report = json.loads(Path(evaluated["report"]).read_text())
    assert evaluated["metrics"] == report["headline"]["windows"] and evaluated["windows"] == len(targets)
    assert evaluated["metrics"]["accuracy"] == pytest.approx(float(np.mean(logits.argmax(axis=1) == targets)))
    assert evaluated["metrics"]["loss"] == pytest.approx(loss, abs=1e-5)
    assert report["windows"]["confusion_matrix"] == [
        [int(np.sum((targets == t) & (logits.argmax(axis=1) == p))) for p in range(3)] for t in range(3)
    ]
