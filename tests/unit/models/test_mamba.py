"""The Mamba block and the pure-PyTorch selective scan against a float64 sequential reference."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from biofound_cli.models import mamba as mamba_module
from biofound_cli.models import selective_scan as scan_module
from biofound_cli.models.mamba import Mamba
from biofound_cli.models.selective_scan import selective_scan, selective_scan_reference

INPUT_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(seed, batch, d_inner, d_state, seqlen, bc_form):
    """float64 scan inputs with leaf tensors that require grad."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale

    bc_shape = {
        "variable": (batch, d_state, seqlen),
        "fixed": (d_inner, d_state),
        "grouped": (batch, 1 if d_inner % 2 else 2, d_state, seqlen),
    }[bc_form]
    inputs = {
        "u": randn(batch, d_inner, seqlen),
        "delta": randn(batch, d_inner, seqlen, scale=0.5),
        "A": -torch.rand(d_inner, d_state, generator=generator, dtype=torch.float64) * 4 - 0.1,
        "B": randn(*bc_shape),
        "C": randn(*bc_shape),
        "D": randn(d_inner),
        "z": randn(batch, d_inner, seqlen),
        "delta_bias": randn(d_inner, scale=0.5),
    }
    return {name: value.requires_grad_() for name, value in inputs.items()}


def run_scan(scan, inputs):
    return scan(
        inputs["u"],
        inputs["delta"],
        inputs["A"],
        inputs["B"],
        inputs["C"],
        inputs["D"],
        z=inputs["z"],
        delta_bias=inputs["delta_bias"],
        delta_softplus=True,
    )


def check_against_reference(inputs64, dtype, rel_tolerance):
    """Forward and every input gradient of the fast scan vs the float64 reference."""
    # The reference sees exactly the values the low-precision run sees.
    inputs = {name: value.detach().to(dtype).requires_grad_() for name, value in inputs64.items()}
    reference_inputs = {name: value.detach().double().requires_grad_() for name, value in inputs.items()}

    out = run_scan(selective_scan, inputs)
    want = run_scan(selective_scan_reference, reference_inputs)
    assert out.dtype == dtype
    grad_out = torch.randn(want.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out.backward(grad_out.to(dtype))
    want.backward(grad_out)

    def assert_close(got, expected, name):
        scale = expected.abs().max().item() + 1e-6
        error = (got.double() - expected).abs().max().item()
        assert error <= rel_tolerance * scale, f"{name}: error {error:.3g} vs scale {scale:.3g}"

    assert_close(out.detach(), want.detach(), "output")
    for name in INPUT_NAMES:
        assert inputs[name].grad is not None, name
        assert inputs[name].grad.dtype == dtype
        assert_close(inputs[name].grad, reference_inputs[name].grad, f"grad {name}")


scan_shapes = st.tuples(
    st.integers(0, 2**16),  # seed
    st.integers(1, 3),  # batch
    st.integers(1, 6),  # d_inner
    st.integers(1, 5),  # d_state
    st.integers(1, 40),  # L: below, at and across the backward chunk of 16
    st.sampled_from(["variable", "fixed", "grouped"]),
)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(scan_shapes)
def test_fast_scan_matches_float64_reference_float32(shape):
    # 5e-5 of scale: gradients such as delta_bias's are sums over batch and time, whose float32
    # rounding (and thread-dependent summation order) reaches ~1e-5 of their largest entry.
    check_against_reference(make_inputs(*shape), torch.float32, rel_tolerance=5e-5)


@settings(max_examples=4, deadline=None, derandomize=True)
@given(scan_shapes)
def test_fast_scan_matches_float64_reference_bfloat16(shape):
    # bfloat16 keeps 8 mantissa bits; the state is accumulated in float32 either way.
    check_against_reference(make_inputs(*shape), torch.bfloat16, rel_tolerance=3e-2)


def test_scan_without_optional_terms():
    inputs = make_inputs(3, 2, 4, 3, 20, "variable")
    args = [inputs[name].detach() for name in ("u", "delta", "A", "B", "C")]
    got = selective_scan(*[a.float() for a in args])
    want = selective_scan_reference(*args)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_scan_no_overflow_with_large_steps():
    # exp(delta * A) underflows to 0 for large steps; nothing may become inf or NaN.
    inputs = make_inputs(4, 1, 3, 4, 33, "variable")
    with torch.no_grad():
        inputs["delta"].mul_(0).add_(200.0)
        inputs["A"].mul_(10)
    check_against_reference(inputs, torch.float32, rel_tolerance=1e-5)


def test_mamba_parameters_shapes_and_order():
    block = Mamba(d_model=40, expand=2)
    d_inner, dt_rank = 80, math.ceil(40 / 16)
    assert [(name, tuple(p.shape)) for name, p in block.state_dict().items()] == [
        ("A_log", (d_inner, 16)),
        ("D", (d_inner,)),
        ("in_proj.weight", (2 * d_inner, 40)),
        ("conv1d.weight", (d_inner, 1, 4)),
        ("conv1d.bias", (d_inner,)),
        ("x_proj.weight", (dt_rank + 32, d_inner)),
        ("dt_proj.weight", (d_inner, dt_rank)),
        ("dt_proj.bias", (d_inner,)),
        ("out_proj.weight", (40, d_inner)),
    ]


def test_mamba_init_statistics():
    torch.manual_seed(0)
    dt_min, dt_max = 0.002, 0.05
    block = Mamba(d_model=64, d_state=8, expand=2, dt_min=dt_min, dt_max=dt_max)
    expected_rows = torch.log(torch.arange(1, 9, dtype=torch.float32)).expand(128, 8)
    assert torch.equal(block.A_log.detach(), expected_rows)
    assert torch.equal(block.D.detach(), torch.ones(128))
    dt = torch.nn.functional.softplus(block.dt_proj.bias.detach().double())
    assert dt.min() >= dt_min * (1 - 1e-5) and dt.max() <= dt_max * (1 + 1e-5)
    # log-uniform: the mean of log(dt) is near the middle of [log dt_min, log dt_max]
    middle = (math.log(dt_min) + math.log(dt_max)) / 2
    assert abs(dt.log().mean().item() - middle) < 0.3
    bound = block.dt_rank**-0.5
    assert block.dt_proj.weight.abs().max() <= bound
    assert block.dt_proj.weight.abs().max() > 0.8 * bound


def test_mamba_forward_matches_reference_scan_and_is_causal():
    torch.manual_seed(0)
    block = Mamba(d_model=16, d_state=4, expand=2).double()
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    out = block(x)
    assert out.shape == x.shape

    # Same block with the reference scan in place of the fast one.
    original = mamba_module.selective_scan
    mamba_module.selective_scan = selective_scan_reference
    try:
        want = block(x)
    finally:
        mamba_module.selective_scan = original
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)

    # Changing a later token leaves the earlier outputs untouched.
    changed = x.clone()
    changed[:, 7:] += 1.0
    torch.testing.assert_close(block(changed)[:, :7], out[:, :7], atol=1e-6, rtol=1e-6)


def test_cuda_import_is_attempted_once(monkeypatch):
    attempts = []
    real_import = __builtins__["__import__"] if isinstance(__builtins__, dict) else __builtins__.__import__

    def counting_import(name, *args, **kwargs):
        if name.startswith("mamba_ssm"):
            attempts.append(name)
            raise ImportError("mamba_ssm is not installed here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(scan_module, "_mamba_ssm_scan", scan_module._MAMBA_SSM_UNSET)
    monkeypatch.setattr("builtins.__import__", counting_import)
    assert scan_module._cuda_selective_scan_fn() is None
    assert scan_module._cuda_selective_scan_fn() is None
    assert len(attempts) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_path_matches_reference():
    inputs = make_inputs(5, 2, 8, 4, 64, "variable")
    cuda_inputs = {name: value.detach().float().cuda() for name, value in inputs.items()}
    got = run_scan(selective_scan, cuda_inputs).cpu().double()
    want = run_scan(selective_scan_reference, {n: v.detach() for n, v in inputs.items()})
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_autocast_bf16_training_step_backpropagates_close_to_float32():
    """bf16 autocast on the CPU: the scan stays float32 inside, so backward works and agrees."""
    torch.manual_seed(0)
    block = Mamba(d_model=8)
    x = torch.randn(2, 20, 8)
    x32 = x.clone().requires_grad_()
    block(x32).sum().backward()
    want = block.A_log.grad.clone()
    block.zero_grad()
    x16 = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x16)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert torch.isfinite(block.A_log.grad).all()
    torch.testing.assert_close(block.A_log.grad, want, atol=5e-2 * want.abs().max().item(), rtol=0)


@pytest.mark.parametrize("busy", [True, False])
def test_step_loop_uses_one_thread_only_when_cores_are_busy(monkeypatch, busy):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(scan_module, "_cores_are_busy", lambda count: busy)
        with scan_module._step_loop_threads(1000, torch.device("cpu")):
            inside = torch.get_num_threads()
        assert inside == (1 if busy else 2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_busy_cores_read_from_the_runnable_count(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open

    def fake_loadavg(runnable):
        def opener(path, *args, **kwargs):
            if path == "/proc/loadavg":
                fake = tmp_path / "loadavg"
                fake.write_text(f"0.5 0.5 0.5 {runnable}/300 123\n")
                return real_open(fake, *args, **kwargs)
            return real_open(path, *args, **kwargs)

        return opener

    monkeypatch.setattr(scan_module.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(builtins, "open", fake_loadavg(2))
    assert scan_module._cores_are_busy(2) is False
    monkeypatch.setattr(builtins, "open", fake_loadavg(4))
    assert scan_module._cores_are_busy(2) is True
