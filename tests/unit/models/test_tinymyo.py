from __future__ import annotations

import json

import pytest
import torch
from fixtures.golden import golden_cases
from safetensors.torch import load_file

from biofound_cli.models.tinymyo import TinyMyo

CASES = golden_cases("TinyMyo")
HOOKED = ("patch_embedding", "blocks.0", "blocks.1", "norm", "model_head")


def small_model(**overrides) -> TinyMyo:
    kwargs = dict(img_size=200, patch_size=20, in_chans=4, embed_dim=48, n_layer=2, n_head=3, num_classes=5)
    kwargs.update(overrides)
    return TinyMyo(**kwargs)


@pytest.mark.parametrize("case", CASES)
def test_golden_outputs_and_intermediates(test_data, case):
    golden = test_data / "golden"
    meta = json.loads((golden / f"{case}.json").read_text())
    model = TinyMyo(**meta["constructor_kwargs"]).eval()
    model.load_state_dict(load_file(golden / f"{case}.weights.safetensors"), strict=True)
    io = load_file(golden / f"{case}.io.safetensors")
    captured = {}
    for name in HOOKED:
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))
    args = [io[key] if key else None for key in meta["forward_call"]["args"]]
    with torch.no_grad():
        out, x_copy = model(*args)
    torch.testing.assert_close(out, io["out.out0"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(x_copy, io["out.out1"], atol=0, rtol=0)
    for name in HOOKED:
        torch.testing.assert_close(captured[name], io[f"inter.{name}"], atol=1e-4, rtol=1e-4)


def test_position_free_rope_matches_upstream_rotation():
    torch.manual_seed(0)
    model = small_model().eval()
    plain = small_model(rope="none").eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 4, 200)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], plain(x)[0], atol=1e-5, rtol=1e-5)


def test_rope_buffers_are_not_saved():
    keys = small_model().state_dict()
    assert not any(key.endswith(("theta", "cache")) for key in keys)


def test_mask_replaces_whole_patches_with_mask_token():
    torch.manual_seed(0)
    model = small_model(num_classes=0).eval()
    x = torch.randn(1, 4, 200)
    mask = torch.zeros(1, 4, 200, dtype=torch.bool)
    mask[0, 1, 25] = True  # one sample of channel 1, patch 1 → token 1*10 + 1
    tokens = model.prepare_tokens(x, mask)
    assert torch.equal(tokens[0, 11], model.mask_token[0, 0])
    unmasked = model.prepare_tokens(x, None)
    assert torch.equal(torch.cat([tokens[0, :11], tokens[0, 12:]]), torch.cat([unmasked[0, :11], unmasked[0, 12:]]))


def test_head_shapes_and_any_multiple_of_patch_size():
    x = torch.randn(2, 4, 120)  # not img_size: any multiple of patch_size works
    with torch.no_grad():
        assert small_model(num_classes=0)(x)[0].shape == (2, 24, 20)
        assert small_model(num_classes=5, reduction_type="mean")(x)[0].shape == (2, 5)
        assert small_model(num_classes=3, task="regression", reg_target_len=50)(x)[0].shape == (2, 50, 3)
        # Upstream's regression "mean" crashes; ours averages channels.
        assert small_model(num_classes=3, task="regression", reduction_type="mean")(x)[0].shape == (2, 500, 3)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = small_model(attn_drop=0.5, proj_drop=0.5, drop_path=0.5)
    x = torch.randn(2, 4, 200)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[0], model(x)[0])
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x)[0], model(x)[0])


def test_upstream_initialisation():
    torch.manual_seed(0)
    model = small_model()
    assert model.mask_token.abs().max() <= 0.02
    assert torch.count_nonzero(model.model_head.classifier.bias) == 0
    assert torch.count_nonzero(model.blocks[0].attn.qkv.bias) == 0
    assert torch.equal(model.norm.weight, torch.ones(48))
    # Residual projections of block i (from 1) are scaled by 1/sqrt(2 i): block 2 is smaller.
    assert model.blocks[1].mlp.fc2.weight.std() < model.blocks[0].mlp.fc2.weight.std()


def test_bad_input_shape_is_explained():
    with pytest.raises(ValueError, match=r"\(batch, 4, n_times\)"):
        small_model()(torch.randn(2, 3, 200))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        small_model(img_size=210)
