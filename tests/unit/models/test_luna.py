"""LUNA against the upstream golden vectors and key manifests, plus determinism and ONNX export."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.golden import golden_cases
from safetensors.torch import load_file

from biofound_cli.models.luna import LUNA, dft_spectrum

GOLDEN_SUBMODULES = (
    "patch_embed", "freq_embed", "channel_location_embedder", "cross_attn", "blocks.0", "blocks.1",
    "norm", "classifier", "channel_emb", "decoder_head",
)  # fmt: skip
SMALL_KWARGS = dict(patch_size=40, embed_dim=32, num_heads=2, depth=2, num_queries=2)


def _golden_model(test_data, case: str) -> tuple[LUNA, dict[str, torch.Tensor]]:
    meta = json.loads((test_data / "golden" / f"{case}.json").read_text())
    model = LUNA(**meta["constructor_kwargs"]).eval()
    model.load_state_dict(load_file(test_data / "golden" / f"{case}.weights.safetensors"), strict=True)
    return model, load_file(test_data / "golden" / f"{case}.io.safetensors")


def _run_with_hooks(model: LUNA, io: dict[str, torch.Tensor]) -> tuple[tuple, dict[str, torch.Tensor]]:
    captured = {}
    for name in GOLDEN_SUBMODULES:
        if hasattr(model, name.split(".")[0]):
            model.get_submodule(name).register_forward_hook(
                lambda module, args, output, name=name: captured.__setitem__(name, output)
            )
    inputs = {"channel_locations": io["in.channel_locations"]}
    for name in ("mask", "channel_names", "channel_location_noise"):
        if f"in.{name}" in io:
            inputs[name] = io[f"in.{name}"]
    with torch.no_grad():
        outputs = model(io["in.x"], **inputs)
    return outputs, captured


def _captured(captured: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    name = key.removeprefix("inter.")
    if name.startswith("cross_attn."):
        return captured["cross_attn"][int(name.rsplit(".", 1)[1])]
    return captured[name]


@pytest.mark.parametrize("case", golden_cases("LUNA"))
def test_golden_outputs_and_intermediates(test_data, case):
    # The recon case is run in eval mode with the stored jitter draw, which LUNA applies whenever
    # channel_location_noise is given; expected outputs are the corrected per-sample ones.
    model, io = _golden_model(test_data, case)
    outputs, captured = _run_with_hooks(model, io)
    expected_outputs = sorted(key for key in io if key.startswith("out."))
    assert len(outputs) == len(expected_outputs)
    for index, key in enumerate(expected_outputs):
        torch.testing.assert_close(outputs[index], io[key], atol=1e-4, rtol=1e-4)
    intermediates = [key for key in io if key.startswith("inter.")]
    assert intermediates
    for key in intermediates:
        torch.testing.assert_close(_captured(captured, key), io[key], atol=1e-4, rtol=1e-4, msg=key)


KEYS_DIR = Path(__file__).resolve().parents[2] / "data" / "keys"
LUNA_MANIFESTS = {
    name: entry for name, entry in json.loads((KEYS_DIR / "_summary.json").read_text()).items() if entry["model"] == "LUNA"
}


@pytest.mark.parametrize("variant", sorted(LUNA_MANIFESTS))
def test_state_dict_matches_key_manifest(test_data, variant):
    entry = LUNA_MANIFESTS[variant]
    with torch.device("meta"):
        model = LUNA(**entry["kwargs"])
    got = [[key, list(tensor.shape), str(tensor.dtype).removeprefix("torch.")] for key, tensor in model.state_dict().items()]
    assert got == json.loads((test_data / "keys" / f"{variant}.json").read_text())
    assert sum(tensor.numel() for tensor in model.state_dict().values()) == entry["state_dict_numel"]
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    assert trainable == entry["num_trainable_at_init"]
    non_persistent = {name.rsplit(".", 1)[1] for name, _ in model.named_buffers()}
    assert non_persistent == set(entry["non_persistent_buffers"])


def test_golden_kwargs_all_construct(test_data):
    index = json.loads((test_data / "golden" / "index.json").read_text())
    luna_cases = [case for case in index.values() if case["model"] == "LUNA"]
    assert luna_cases
    for case in luna_cases:
        with torch.device("meta"):
            LUNA(**case["constructor_kwargs"])


def _inputs(batch: int, n_channels: int = 4, n_samples: int = 120, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_channels, n_samples, generator=generator)
    locations = torch.randn(batch, n_channels, 3, generator=generator)
    return x, locations


def test_eval_is_deterministic_and_samples_are_independent():
    torch.manual_seed(0)
    model = LUNA(**SMALL_KWARGS, num_classes=3, drop_path=0.1).eval()
    x, locations = _inputs(batch=3)
    mask = torch.zeros_like(x, dtype=torch.bool)  # upstream would jitter here; eval must not
    with torch.no_grad():
        first = model(x, mask, locations)[0]
        second = model(x, mask, locations)[0]
        alone = torch.cat([model(x[i : i + 1], mask[i : i + 1], locations[i : i + 1])[0] for i in range(3)])
    assert torch.equal(first, second)
    torch.testing.assert_close(first, alone, atol=1e-5, rtol=1e-5)


def test_reconstruction_of_a_mixed_montage_batch_matches_per_sample_runs():
    torch.manual_seed(1)
    model = LUNA(**SMALL_KWARGS, num_classes=0).eval()
    x, locations = _inputs(batch=2)
    channel_names = torch.tensor([[45, 48, 5, 8], [27, 29, 60, 62]])
    noise = torch.randn(2, 4, 3)
    with torch.no_grad():
        batched = model(x, None, locations, channel_names, noise)
        alone = [model(x[i : i + 1], None, locations[i : i + 1], channel_names[i : i + 1], noise[i : i + 1]) for i in range(2)]
    assert batched[0].shape == x.shape and batched[2].shape == (2 * 3, 2, 4)
    torch.testing.assert_close(batched[0], torch.cat([out[0] for out in alone]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[2], torch.cat([out[2] for out in alone]), atol=1e-5, rtol=1e-5)


def test_location_jitter_only_in_training_or_when_given():
    torch.manual_seed(2)
    model = LUNA(**SMALL_KWARGS, num_classes=2).eval()
    x, locations = _inputs(batch=2)
    noise = torch.randn(2, 4, 3)
    with torch.no_grad():
        clean = model.location_embedding(locations)
        assert torch.equal(clean, model.location_embedding(locations))
        jittered = model.location_embedding(locations, noise)
        assert not torch.allclose(clean, jittered)
        model.train()
        assert not torch.allclose(model.location_embedding(locations), model.location_embedding(locations))
        assert torch.equal(model.location_embedding(locations, noise), jittered)


def test_shared_locations_and_names_broadcast_over_the_batch():
    torch.manual_seed(3)
    model = LUNA(**SMALL_KWARGS, num_classes=0).eval()
    x, locations = _inputs(batch=2)
    names = torch.tensor([45, 48, 5, 8])
    with torch.no_grad():
        shared = model(x, None, locations[0], names)[0]
        explicit = model(x, None, locations[0].expand(2, -1, -1), names.expand(2, -1))[0]
    assert torch.equal(shared, explicit)


@pytest.mark.parametrize(
    "n_samples, locations_shape, match",
    [(130, (2, 4, 3), "multiple of patch_size"), (120, (2, 5, 3), "channel_locations must have shape")],
)
def test_bad_input_shapes_are_clear_errors(n_samples, locations_shape, match):
    model = LUNA(**SMALL_KWARGS, num_classes=2).eval()
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(2, 4, n_samples), channel_locations=torch.zeros(locations_shape))


def test_reconstruction_without_channel_names_is_a_clear_error():
    model = LUNA(**SMALL_KWARGS, num_classes=0).eval()
    x, locations = _inputs(batch=1)
    with pytest.raises(ValueError, match="channel_names"):
        model(x, channel_locations=locations)


def test_dft_spectrum_matches_rfft():
    generator = torch.Generator().manual_seed(6)
    patches = torch.randn(8, 40, generator=generator)
    patches[0] = -1.0  # DC bin on the phase branch cut: rfft gives +pi
    patches[1] = torch.tensor([-1.0, 1.0]).repeat(20)  # likewise the Nyquist bin
    spectrum = torch.fft.rfft(patches, dim=-1)
    magnitude, phase = dft_spectrum(patches)
    torch.testing.assert_close(magnitude, spectrum.abs(), atol=1e-5, rtol=1e-5)
    # The phase of a bin whose magnitude is rounding noise is arbitrary in both.
    defined = spectrum.abs() > 1e-3
    torch.testing.assert_close(phase[defined], spectrum.angle()[defined], atol=1e-5, rtol=1e-5)
    assert phase[0, 0] == torch.pi and phase[1, 20] == torch.pi


def test_phase_of_noise_bins_is_pinned_in_torch_and_export_paths(monkeypatch):
    x = torch.zeros(1, 2, 80)
    x[0, 0, :40] = -1.0  # constant patch: only DC is signal, with phase exactly pi
    x[0, 1, :40] = torch.randn(40)
    model = LUNA(**SMALL_KWARGS, num_classes=2).eval()
    captured = []
    model.freq_embed.frequency_to_embed.register_forward_hook(lambda module, args, output: captured.append(args[0]))
    with torch.no_grad():
        model.freq_embed(x, 40)
        monkeypatch.setattr(torch.jit, "is_tracing", lambda: True)  # take the export (DFT) path
        model.freq_embed(x, 40)
    torch.testing.assert_close(captured[1], captured[0], atol=1e-5, rtol=1e-5)
    phase = captured[0][0, :, 21:]
    assert phase[0, 0] == torch.pi and torch.all(phase[0, 1:] == 0) and torch.all(phase[1] == 0)


def test_loading_weights_refreshes_the_rotary_cache():
    torch.manual_seed(4)
    model = LUNA(**SMALL_KWARGS, num_classes=2).eval()
    x, locations = _inputs(batch=1)
    with torch.no_grad():
        model(x, channel_locations=locations)
    rotary = model.blocks[0].attn.rotary_emb
    assert rotary.cached_freqs.shape[0] == 3
    model.load_state_dict(model.state_dict())
    assert rotary.cached_freqs.shape[0] == 0


class _Classifier(torch.nn.Module):
    """Signals and locations in, logits out: the shape of an exported LUNA classifier."""

    def __init__(self, model: LUNA) -> None:
        super().__init__()
        self.model = model

    def forward(self, x_signal: torch.Tensor, channel_locations: torch.Tensor) -> torch.Tensor:
        return self.model(x_signal, channel_locations=channel_locations)[0]


def test_onnx_export_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(5)
    model = LUNA(**SMALL_KWARGS, num_classes=3).eval()
    x, locations = _inputs(batch=2)
    path = tmp_path / "luna.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on the shape checks, which hold for any batch
        torch.onnx.export(
            # The wrapper must be in eval mode: export restores the wrapper's mode onto the model.
            _Classifier(model).eval(), (x, locations), str(path), dynamo=False, opset_version=17,
            input_names=["x_signal", "channel_locations"], output_names=["logits"],
            dynamic_axes={"x_signal": {0: "batch"}, "channel_locations": {0: "batch"}, "logits": {0: "batch"}},
        )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x, locations = _inputs(batch=batch, seed=batch)
        x[:, 0, :40] = -1.0  # a negative DC bin: phase exactly pi in both runtimes
        with torch.no_grad():
            expected = model(x, channel_locations=locations)[0].numpy()
        (got,) = session.run(None, {"x_signal": x.numpy(), "channel_locations": locations.numpy()})
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert not model.training
