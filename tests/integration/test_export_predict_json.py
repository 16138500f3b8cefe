"""Export, then predict through the export, as a pipeline script runs them: separate processes, ``--json``
read from a pipe, ``--workers 2``.

Each family's export (ONNX and TorchScript) at a window of other length than the variant's, read
back by ``predict`` through onnxruntime with the geometry ``config.json`` records, gives the
checkpoint's scores; every ``--json`` is one object on stdout, the logs on stderr.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fixtures.brainvision import write_brainvision
from fixtures.export_models import LUNA_CHANNELS, save_small
from fixtures.process_group import biofound

from biofound_cli.signals.chain import ChainConfig

pytestmark = pytest.mark.slow

EMG = [f"EMG{index}" for index in range(1, 5)]


def _json(*args: object) -> dict:
    """``biofound ARGS --json`` in its own process: exit 0 and one JSON object on stdout, nothing else."""
    result = subprocess.run(biofound(*args, "--json", "--no-progress"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _tinymyo(folder: Path) -> tuple[Path, Path]:
    """TinyMyo on 80-sample windows (its variant: 1000) and two EMG tables."""
    config = ChainConfig(window_seconds=0.4, stride_seconds=0.4, l_freq=None, h_freq=None, notch_hz=(), units="native")
    chain = {"corpus": "emg-csv", "options": {"sfreq": 200.0}, **config.to_json_dict()}
    checkpoint = save_small(
        folder / "model.safetensors",
        "tinymyo",
        overrides={"img_size": 80},
        ch_names=EMG,
        sfreq=200.0,
        preprocessing=chain,
        n_times=80,
        label_names=["fist", "open", "rest"],
    )
    rng = np.random.default_rng(0)
    (folder / "rec").mkdir()
    for index in range(2):
        np.savetxt(folder / "rec" / f"R_0_C_{index}_EMG.csv", rng.normal(size=(500, 4)), delimiter=",", fmt="%.5f")
    return checkpoint, folder / "rec"


def _luna(folder: Path) -> tuple[Path, Path]:
    """LUNA on 160-sample windows (its variant: 1280) and two BrainVision recordings."""
    chain = {"corpus": "edf", "options": {}, **ChainConfig(window_seconds=160 / 256, sfreq=256.0).to_json_dict()}
    checkpoint = save_small(
        folder / "model.safetensors", "luna", task="bc", num_classes=2, sfreq=256.0, preprocessing=chain, n_times=160
    )
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        write_brainvision(folder / "rec" / f"{name}.vhdr", rng.normal(scale=20.0, size=(5, 1280)), 256.0, LUNA_CHANNELS)
    return checkpoint, folder / "rec"


def _scores(folder: Path) -> dict[str, np.ndarray]:
    """Every table's probability columns, by table name."""
    tables = {}
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        tables[path.name] = np.array([[float(row[name]) for name in row if name.startswith("p_")] for row in rows])
    return tables


@pytest.mark.parametrize("family", ["tinymyo", "luna"])
def test_an_export_predicts_what_its_checkpoint_predicts_and_every_json_is_one_object(tmp_path, family) -> None:
    checkpoint, recordings = {"tinymyo": _tinymyo, "luna": _luna}[family](tmp_path)
    export = tmp_path / "export"

    exported = _json("export", checkpoint, "--out", export, "--format", "onnx", "--format", "torchscript")
    by_checkpoint = _json("predict", checkpoint, recordings, "--out", tmp_path / "torch", "--workers", "2")
    by_graph = _json("predict", export, recordings, "--out", tmp_path / "onnx", "--workers", "2")

    assert sorted(exported["files"]) == ["README.md", "config.json", "model.onnx", "model.pt"]
    n_times = {"tinymyo": 80, "luna": 160}[family]
    assert json.loads((export / "config.json").read_text())["n_times"] == n_times
    assert (by_checkpoint["runtime"], by_graph["runtime"]) == ("pytorch", "onnxruntime")
    assert by_checkpoint["predicted"] == by_graph["predicted"] == 2
    assert by_checkpoint["windows"] == by_graph["windows"] > 0
    ours, theirs = _scores(tmp_path / "torch"), _scores(tmp_path / "onnx")
    assert list(ours) == list(theirs) and all(ours[name].size for name in ours)
    for name in ours:
        np.testing.assert_allclose(theirs[name], ours[name], atol=5e-5)
