"""FEMBA against the golden vectors of the reference model, the key manifests and ONNX."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.golden import golden_cases
from safetensors.torch import load_file

from biofound_cli.models.femba import FEMBA

DATA = Path(__file__).resolve().parents[2] / "data"
GOLDEN = DATA / "golden"
KEYS = DATA / "keys"
INDEX = json.loads((GOLDEN / "index.json").read_text())
FEMBA_CASES = golden_cases("FEMBA")
SUMMARY = json.loads((KEYS / "_summary.json").read_text())
FEMBA_MANIFESTS = sorted(name for name in SUMMARY if name.startswith("FEMBA_"))


def assert_close(got: torch.Tensor, want: torch.Tensor, name: str) -> None:
    tolerance = 1e-4 + 1e-4 * want.abs()
    excess = (got - want).abs() - tolerance
    assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert (excess <= 0).all(), f"{name}: max abs diff {(got - want).abs().max().item():.3g}"


@pytest.mark.parametrize("case", FEMBA_CASES)
def test_golden_outputs_and_intermediates(case):
    entry = INDEX[case]
    model = FEMBA(**entry["constructor_kwargs"]).eval()
    model.load_state_dict(load_file(GOLDEN / f"{case}.weights.safetensors"), strict=True)
    io = load_file(GOLDEN / f"{case}.io.safetensors")

    captured = {}
    wanted = [key.removeprefix("inter.") for key in io if key.startswith("inter.")]
    modules = dict(model.named_modules())
    for name in wanted:
        modules[name].register_forward_hook(lambda module, args, output, name=name: captured.__setitem__(name, output))
    with torch.no_grad():
        outputs = model(*[io[key] for key in entry["forward_args"]])

    assert_close(outputs[0], io["out.out0"], "out0")
    assert torch.equal(outputs[1], io["out.out1"])
    assert sorted(captured) == sorted(wanted)
    for name in wanted:
        assert_close(captured[name], io[f"inter.{name}"], name)


def test_mask_none_equals_all_false_and_input_is_returned_unmodified():
    torch.manual_seed(0)
    model = FEMBA(seq_length=64, num_channels=4, num_classes=2, exp=2, embed_dim=8, num_blocks=1).eval()
    x = torch.randn(2, 4, 64)
    original = x.clone()
    with torch.no_grad():
        out_none, returned = model(x)
        out_false, _ = model(x, torch.zeros_like(x, dtype=torch.bool))
        out_masked, _ = model(x, torch.ones_like(x, dtype=torch.bool))
        out_zeros, _ = model(torch.zeros_like(x))
    assert torch.equal(out_none, out_false)
    assert torch.equal(out_masked, out_zeros)
    assert torch.equal(returned, original) and torch.equal(x, original)


@pytest.mark.parametrize("manifest", FEMBA_MANIFESTS)
def test_state_dict_matches_manifest(manifest):
    entry = SUMMARY[manifest]
    with torch.device("meta"):  # the huge variants have 386M parameters: allocate nothing
        model = FEMBA(**entry["kwargs"])
    got = [[key, list(value.shape), str(value.dtype).removeprefix("torch.")] for key, value in model.state_dict().items()]
    assert got == json.loads((KEYS / f"{manifest}.json").read_text())
    assert sum(p.numel() for p in model.parameters()) == entry["num_parameters"]


@pytest.mark.parametrize(
    ("classification_type", "num_classes", "shape"),
    [("bc", 2, (3, 2)), ("ml", 4, (3, 4)), ("mcc", 5, (3, 5)), ("mc", 2, (3, 6)), ("mmc", 4, (3, 6, 4))],
)
def test_classifier_output_shapes(classification_type, num_classes, shape):
    model = FEMBA(
        seq_length=32,
        num_channels=6,
        num_classes=num_classes,
        exp=1,
        embed_dim=4,
        num_blocks=1,
        classification_type=classification_type,
    )
    with torch.no_grad():
        logits, _ = model(torch.randn(3, 6, 32))
    assert logits.shape == shape


def test_reconstruction_shape():
    model = FEMBA(seq_length=64, num_channels=4, num_classes=0, exp=1, embed_dim=4, num_blocks=1, kernel_dec=(3, 3))
    with torch.no_grad():
        reconstruction, _ = model(torch.randn(2, 4, 64))
    assert reconstruction.shape == (2, 4, 64)


def test_unknown_classification_type_fails_at_construction():
    with pytest.raises(ValueError, match="classification_type must be one of bc, ml, mcc, mc, mmc, got 'multi'"):
        FEMBA(num_classes=2, classification_type="multi", seq_length=32, num_channels=2, embed_dim=4)


@pytest.mark.parametrize(
    ("num_channels", "seq_length", "says"),
    [
        (19, 64, "cover 18 of the 19 channels, so the last 1 would never be seen; give it 18 or 20 channels"),
        (4, 70, "cover 64 of the 70 samples, so the last 6 would never be seen; give it 64 or 80 samples"),
    ],
)
def test_an_input_the_patches_do_not_tile_is_refused_at_construction(num_channels, seq_length, says):
    # 19 channels (a 10-20 montage) trained with the 19th never seen by the patch convolution, and
    # pre-training crashed with a reshape error (the reconstruction one row short of its target).
    with pytest.raises(ValueError, match=says):
        FEMBA(seq_length=seq_length, num_channels=num_channels, num_classes=2, embed_dim=4, num_blocks=1)


def test_backward_reaches_every_parameter():
    torch.manual_seed(0)
    model = FEMBA(seq_length=32, num_channels=4, num_classes=0, exp=1, embed_dim=4, num_blocks=1, kernel_dec=(3, 3))
    x = torch.randn(2, 4, 32)
    reconstruction, target = model(x, torch.rand(2, 4, 32) < 0.5)
    torch.nn.functional.smooth_l1_loss(reconstruction, target).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_onnx_export_matches_onnxruntime(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = FEMBA(
        seq_length=64,
        num_channels=4,
        num_classes=3,
        exp=2,
        embed_dim=8,
        num_blocks=1,
        classification_type="mcc",
    ).eval()
    with torch.no_grad():
        model.pos_embed.normal_(0, 0.02)
    x = torch.randn(2, 4, 64)
    path = tmp_path / "femba.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter deprecation warnings
        torch.onnx.export(model, (x,), str(path), opset_version=17, dynamo=False, input_names=["x"])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        want = model(x)[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
