"""The fast paths against eager fp32: the channels-last causal convolution, and torch.compile with its fallback.

Small shapes only; the compiled tests are slow (inductor builds C++ on a few cores) and marked so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from biofound_cli.models.compiled import compile_model
from biofound_cli.models.femba import FEMBA
from biofound_cli.models.luna import LUNA
from biofound_cli.models.mamba import causal_depthwise_conv
from biofound_cli.models.tinymyo import TinyMyo


def test_causal_depthwise_conv_matches_mamba_ssm_conv1d():
    # mamba-ssm's form: a grouped Conv1d padded both sides on (batch, d, L), first L outputs kept.
    torch.manual_seed(0)
    conv = nn.Conv1d(12, 12, kernel_size=4, groups=12, padding=3)
    x = torch.randn(3, 17, 24)[..., :12]  # channels-last and strided, like a chunk of in_proj's output
    expected = conv(x.transpose(1, 2))[..., :17].transpose(1, 2)
    got = causal_depthwise_conv(x, conv.weight, conv.bias)
    assert got.shape == (3, 17, 12)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    got.sum().backward()  # the training path differentiates through it


def _tiny_models() -> dict[str, tuple[nn.Module, tuple]]:
    torch.manual_seed(0)
    femba = FEMBA(seq_length=64, num_channels=4, num_classes=3, embed_dim=8, num_blocks=1, classification_type="mcc")
    luna = LUNA(patch_size=40, num_queries=2, embed_dim=16, depth=1, num_heads=2, num_classes=3)
    tinymyo = TinyMyo(img_size=40, patch_size=20, in_chans=2, embed_dim=24, n_layer=1, n_head=3, num_classes=3)
    x_femba, x_luna, x_tinymyo = torch.randn(2, 4, 64), torch.randn(2, 3, 80), torch.randn(2, 2, 40)
    return {
        "femba": (femba, (x_femba, torch.zeros_like(x_femba, dtype=torch.bool))),
        "luna": (luna, (x_luna, None, torch.rand(2, 3, 3))),
        "tinymyo": (tinymyo, (x_tinymyo, None)),
    }


@pytest.mark.slow
@pytest.mark.parametrize("family", ["femba", "luna", "tinymyo"])
def test_compiled_inference_matches_eager(family):
    model, inputs = _tiny_models()[family]
    model.eval()
    compiled = compile_model(model, inference=True)
    with torch.inference_mode():
        expected = model(*inputs)[0]
        got = compiled(*inputs)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got_bf16 = compiled(*inputs)[0]
    assert not compiled.failed
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert torch.equal(got_bf16.float().argmax(-1), expected.argmax(-1))


@pytest.mark.slow
@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="inductor prepacks fp32 linears through oneDNN")
def test_compiled_inference_freezes_and_prepacks_the_weights():
    # The point of inference compiling: the weights become constants and the linears run packed
    # (oneDNN's linear with the batch dimension dynamic; MKL's, which needs a fixed batch, otherwise).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4)).eval()
    x = torch.randn(8, 16)
    compiled = compile_model(model, inference=True)
    with torch.inference_mode():
        expected = model(x)
        compiled(x)
        with torch.profiler.profile() as profile:
            got = compiled(x)
    operators = {event.key for event in profile.key_averages()}
    assert not compiled.failed
    assert {"mkldnn::_linear_pointwise", "mkl::_mkl_linear"} & operators, sorted(operators)
    assert "aten::addmm" not in operators
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_one_inference_graph_serves_every_batch_size_one_included():
    import torch._dynamo

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4)).eval()
    compiled = compile_model(model, inference=True)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch.inference_mode():
        for batch in (8, 5, 1, 3, 8, 2, 1):
            x = torch.randn(batch, 3, 16)
            got = compiled(x)
            assert got.shape == (batch, 3, 4)
            torch.testing.assert_close(got, model(x), atol=1e-5, rtol=0)
    assert not compiled.failed
    # Dynamo would specialise a size-one batch into a graph of its own; the wrapper sends it twice.
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


@pytest.mark.slow
def test_compiled_training_step_matches_eager_gradients():
    model, (x, mask) = _tiny_models()["tinymyo"]
    model.eval()  # dropout off, so both sides compute the same function
    compiled = compile_model(model)
    y = torch.tensor([0, 2])
    grads = []
    for runner in (model, compiled):
        model.zero_grad()
        nn.functional.cross_entropy(runner(x, mask)[0], y).backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert not compiled.failed
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-4, rtol=1e-4, msg=name)


def test_compiled_model_keeps_the_models_keys_under_orig_mod():
    model, _ = _tiny_models()["tinymyo"]
    compiled = compile_model(model)
    assert compiled._orig_mod is model
    assert set(compiled.state_dict()) == {f"_orig_mod.{key}" for key in model.state_dict()}


FALLBACK_SCRIPT = textwrap.dedent(
    """
    import logging, torch
    from biofound_cli.models.compiled import compile_model
    from biofound_cli.models.tinymyo import TinyMyo
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    torch.manual_seed(0)
    model = TinyMyo(img_size=40, patch_size=20, in_chans=2, embed_dim=24, n_layer=1, n_head=3, num_classes=3).eval()
    x = torch.randn(2, 2, 40)
    compiled = compile_model(model, inference=True)
    with torch.inference_mode():
        for _ in range(2):
            assert torch.equal(compiled(x)[0], model(x)[0])
        try:
            compiled(torch.randn(2, 3, 40))
        except ValueError as error:
            print("user error:", error)
    print("failed:", compiled.failed)
    """
)


@pytest.mark.slow
def test_compile_failure_logs_one_warning_and_runs_eagerly(tmp_path):
    # No C++ compiler for inductor: the first call's compile fails, the model runs uncompiled.
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING biofound_cli.models.compiled")]
    assert len(warnings) == 1, result.stderr[-2000:]
    assert "could not compile TinyMyo" in warnings[0]
    assert "failed: True" in result.stdout
    assert "user error: TinyMyo expects input" in result.stdout  # the model's own errors still reach the caller


def test_loading_femba_leaves_torch_dynamo_unimported():
    """tidy28: the scan kernel's `@torch.compiler.disable` imported torch._dynamo as FEMBA's module loaded, ~1 s of
    every `biofound validate` of a FEMBA recipe that compiles nothing."""
    loaded = "print('torch._dynamo' in sys.modules)"
    script = f"import sys, torch; {loaded}; import biofound_cli.models.femba; {loaded}"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    by_torch, by_femba = result.stdout.split()
    if by_torch == "True":
        pytest.skip("this torch imports torch._dynamo itself")
    assert by_femba == "False"


@pytest.mark.slow
def test_the_scan_kernel_runs_outside_a_graph_traced_before_any_eager_call(monkeypatch):
    """The kernel's pointers cannot be traced (FEMBA gave NaN); decorated at its first call, it stays out of a graph
    even when tracing it is that first call (test_compiled_inference_matches_eager runs the model eagerly first)."""
    from biofound_cli.models import scan_kernel, selective_scan

    if scan_kernel.load_kernel() is None:
        pytest.skip("no C compiler for the scan kernel")
    calls = []
    original = scan_kernel.scan_forward
    monkeypatch.setattr(scan_kernel, "scan_forward", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    torch.manual_seed(0)
    u, delta, z, B, C = (torch.randn(2, 8, 16) for _ in range(5))
    args = (u, delta, -torch.rand(8, 4), B[:, :4], C[:, :4], torch.randn(8), z, torch.randn(8))

    def scan(*args):
        return selective_scan.selective_scan(*args, delta_softplus=True) * 2

    compiled = torch.compile(scan, backend="eager")
    with torch.inference_mode():
        got = [compiled(*args) for _ in range(2)]
        assert len(calls) == 2
        expected = scan(*args)
    for value in got:
        torch.testing.assert_close(value, expected, atol=0, rtol=0)
