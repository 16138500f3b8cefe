"""Every format for every model family: files written, verified, and independently re-checked."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from fixtures.export_models import LUNA_CHANNELS, N_TIMES, save_small, write_packed
from safetensors import safe_open

import biofound_cli.export.onnx_export as onnx_export
import biofound_cli.models as models
from biofound_cli.errors import BiofoundError, ExitStatus, UsageError
from biofound_cli.export import export_checkpoint
from biofound_cli.models.checkpoints import read_metadata

FAMILIES = ("tinymyo", "femba", "luna")
N_CHANNELS = {"tinymyo": 4, "femba": 4, "luna": len(LUNA_CHANNELS)}


def reference_output(model, family, x):
    """The head output of the PyTorch model, called the way each family is called for inference."""
    from biofound_cli.signals.electrodes import channel_positions

    with torch.no_grad():
        if family == "luna":
            locations = torch.tensor(channel_positions(LUNA_CHANNELS), dtype=torch.float32).expand(x.shape[0], -1, -1)
            return model(x, None, locations)[0], locations
        return model(x)[0], None


@pytest.fixture(params=FAMILIES)
def family_ckpt(request, tmp_path):
    family = request.param
    # FEMBA's head is binary in the upstream fine-tuning; the others get three classes.
    task, num_classes = ("bc", 2) if family == "femba" else ("mcc", 3)
    return family, save_small(tmp_path / f"{family}.safetensors", family, task=task, num_classes=num_classes)


def test_safetensors_round_trip(family_ckpt, tmp_path):
    family, ckpt = family_ckpt
    result = export_checkpoint(ckpt, "safetensors", tmp_path / "out")
    path = tmp_path / "out" / "model.safetensors"
    assert [a.path for a in result.written] == [path] and result.written[0].max_abs_diff <= 1e-4
    original = models.load(ckpt).eval()
    reloaded = models.load(path).eval()
    with safe_open(str(path), "pt") as handle:
        keys = set(handle.keys())
    assert keys == set(original.state_dict()) and not any(key.startswith("model.") for key in keys)
    x = torch.randn(3, N_CHANNELS[family], N_TIMES[family])
    assert torch.equal(reference_output(reloaded, family, x)[0], reference_output(original, family, x)[0])
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model"] == type(original).__name__ and config["family"] == family
    assert config["constructor_kwargs"] == read_metadata(ckpt).constructor_kwargs
    assert config["n_channels"] == N_CHANNELS[family] and config["normalisation"]["name"]
    assert (tmp_path / "out" / "README.md").is_file()


def test_onnx_parity_with_dynamic_batch(family_ckpt, tmp_path):
    family, ckpt = family_ckpt
    result = export_checkpoint(ckpt, "onnx", tmp_path / "out")
    path = tmp_path / "out" / "model.onnx"
    assert result.written[0].path == path and result.written[0].max_abs_diff <= 1e-4
    graph = onnx.load(str(path))
    assert max(entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx")) >= 17
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    # Parity checked here too, on a batch size neither the export nor its verification used.
    model = models.load(ckpt).eval()
    x = torch.randn(5, N_CHANNELS[family], N_TIMES[family])
    expected, locations = reference_output(model, family, x)
    feeds = {"x": x.numpy()}
    if locations is not None:
        feeds["channel_locations"] = locations.contiguous().numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)[0]
    assert got.shape == tuple(expected.shape)
    assert np.abs(got - expected.numpy()).max() <= 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_trace_reloads(family_ckpt, tmp_path):
    family, ckpt = family_ckpt
    result = export_checkpoint(ckpt, "torchscript", tmp_path / "out")
    traced = torch.jit.load(str(tmp_path / "out" / "model.pt"))
    model = models.load(ckpt).eval()
    x = torch.randn(4, N_CHANNELS[family], N_TIMES[family])
    expected, locations = reference_output(model, family, x)
    with torch.no_grad():
        got = traced(x) if locations is None else traced(x, locations)
    assert torch.allclose(got, expected, atol=1e-5)
    assert "fixed at trace time" in (tmp_path / "out" / "README.md").read_text()
    assert result.written[0].format == "torchscript"


@pytest.mark.parametrize("family", ["tinymyo", "femba", "luna"])
def test_pretraining_models_export_to_onnx(family, tmp_path):
    ckpt = save_small(tmp_path / "pre.safetensors", family, task="reconstruction", num_classes=None)
    result = export_checkpoint(ckpt, "onnx", tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["output"] == "reconstruction" and result.written[0].max_abs_diff <= 1e-4
    assert ("channel_names" in config["inputs"]) == (family == "luna")


def test_failed_verification_exits_1_and_leaves_no_file(tinymyo_ckpt, tmp_path, monkeypatch):
    real_runner = onnx_export.onnx_runner

    def off_by_a_little(path, input_names):
        run = real_runner(path, input_names)
        return lambda *inputs: run(*inputs) + 1e-3

    monkeypatch.setattr(onnx_export, "onnx_runner", off_by_a_little)
    with pytest.raises(BiofoundError, match=r"verification failed, max abs diff 0\.001.* above 0\.0001") as caught:
        export_checkpoint(tinymyo_ckpt, "onnx", tmp_path / "out")
    assert caught.value.status == ExitStatus.FAILED
    assert not any(tmp_path.joinpath("out").glob("*.onnx"))
    assert not any(tmp_path.joinpath("out").glob(".*tmp*"))


def test_luna_without_montage_needs_a_split(tmp_path):
    from biofound_cli.models import create_model, get_variant, save_checkpoint

    kwargs = {"embed_dim": 32, "depth": 1, "num_queries": 2}
    model = create_model("luna-base", task="mcc", num_classes=3, **kwargs)
    ckpt = save_checkpoint(
        model,
        tmp_path / "luna.safetensors",
        variant="luna-base",
        model_name="LUNA",
        constructor_kwargs={**get_variant("luna-base").constructor_kwargs("mcc", 3), **kwargs},
        extra_metadata={"task": "mcc"},
    )
    with pytest.raises(UsageError, match="names no channels .*pass --split"):
        export_checkpoint(ckpt, "onnx", tmp_path / "out")
    split = write_packed(tmp_path / "test.h5", n_channels=3, n_times=120, ch_names=["C3", "CZ", "C4"])
    export_checkpoint(ckpt, "onnx", tmp_path / "out", split=split)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["ch_names"] == ["C3", "CZ", "C4"] and config["n_times"] == 120
    assert len(config["channel_locations"]) == 3


def test_luna_is_exported_for_its_checkpoints_channels_and_a_split_of_another_montage_is_refused(tmp_path):
    """docs/export.md said the graph was exported for the checkpoint's channels "or those of --split",
    yet a split of another montage was refused with "score on a split preprocessed for this model"."""
    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    ckpt = save_small(tmp_path / "luna.safetensors", "luna")
    n_times = N_TIMES["luna"]
    other = write_packed(tmp_path / "other.h5", n_channels=3, n_times=n_times, ch_names=["C3", "CZ", "C4"])
    args = ["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "out"), "--split"]
    refused = CliRunner().invoke(app, [*args, str(other)])
    assert refused.exit_code == 2, refused.output
    assert (
        f"{other}: the split's channels (C3, CZ, C4) are not the checkpoint's "
        f"(FP1, FP2, C3, C4 and {len(LUNA_CHANNELS) - 4} more) in the same order; "
        "the graph takes the channels its checkpoint records and --split only scores and calibrates it: pass a split "
        "of those channels, or predict this montage with the checkpoint and --recipe (docs/predict.md)"
    ) in " ".join(refused.stderr.split())
    assert not (tmp_path / "out").exists()
    # A split of the checkpoint's channels scores the graph, which is exported for them.
    own = write_packed(tmp_path / "own.h5", n_channels=len(LUNA_CHANNELS), n_times=n_times, ch_names=LUNA_CHANNELS)
    exported = CliRunner().invoke(app, [*args, str(own)])
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "out" / "config.json").read_text())["ch_names"] == LUNA_CHANNELS


def test_exports_of_one_checkpoint_share_the_folder(tinymyo_ckpt, tmp_path):
    export_checkpoint(tinymyo_ckpt, "safetensors", tmp_path / "out")
    export_checkpoint(tinymyo_ckpt, "onnx", tmp_path / "out")
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert [entry["file"] for entry in config["artefacts"]] == ["model.safetensors", "model.onnx"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "`model.safetensors`" in card and "`model.onnx`" in card
