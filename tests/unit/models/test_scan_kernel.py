"""The compiled CPU kernel of the selective scan: values, dispatch, build cache and fallbacks."""

from __future__ import annotations

import logging
import multiprocessing
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from biofound_cli.models import scan_kernel
from biofound_cli.models import selective_scan as scan_module
from biofound_cli.models.selective_scan import selective_scan, selective_scan_reference

needs_compiler = pytest.mark.skipif(scan_kernel.find_compiler() is None, reason="needs a C compiler")


def make_inputs(seed, batch, d_inner, d_state, seqlen, n_groups=0, dtype=torch.float32):
    """Scan inputs; ``n_groups`` 0 gives B/C in the variable (batch, d_state, L) form."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=generator, dtype=torch.float64) * scale).to(dtype)

    bc_shape = (batch, d_state, seqlen) if not n_groups else (batch, n_groups, d_state, seqlen)
    return {
        "u": randn(batch, d_inner, seqlen),
        "delta": randn(batch, d_inner, seqlen, scale=0.5),
        "A": (-torch.rand(d_inner, d_state, generator=generator, dtype=torch.float64) * 4 - 0.1).to(dtype),
        "B": randn(*bc_shape),
        "C": randn(*bc_shape),
        "D": randn(d_inner),
        "z": randn(batch, d_inner, seqlen),
        "delta_bias": randn(d_inner, scale=0.5),
    }


def run_kernel(inputs, softplus=True, threads=1, optional=True):
    extra = {name: inputs[name] if optional else None for name in ("D", "z", "delta_bias")}
    return scan_kernel.scan_forward(
        inputs["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], extra["D"], extra["z"],
        extra["delta_bias"], softplus, threads=threads,
    )  # fmt: skip


def run_reference(inputs, softplus=True, optional=True):
    as64 = {name: value.double() for name, value in inputs.items()}
    return selective_scan_reference(
        as64["u"], as64["delta"], as64["A"], as64["B"], as64["C"],
        as64["D"] if optional else None, z=as64["z"] if optional else None,
        delta_bias=as64["delta_bias"] if optional else None, delta_softplus=softplus,
    )  # fmt: skip


def assert_close_to(got, want, rel_tolerance):
    scale = want.abs().max().item() + 1e-6
    error = (got.double() - want).abs().max().item()
    assert error <= rel_tolerance * scale, f"error {error:.3g} vs scale {scale:.3g}"


@needs_compiler
@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    st.integers(0, 2**16),  # seed
    st.integers(1, 3),  # batch
    st.sampled_from([1, 5, 16, 17, 40]),  # d_inner: below, at and across the 16-channel lane group
    st.sampled_from([1, 3, 16, 20]),  # d_state: 16 takes the unrolled path
    st.sampled_from([1, 7, 64, 65, 150]),  # L: across the kernel's 64-step blocks
    st.sampled_from([0, 1, 2]),  # B/C: variable, or grouped
    st.booleans(),  # softplus
    st.booleans(),  # D, z and delta_bias given
    st.sampled_from([1, 2, 3]),  # threads
)
def test_kernel_matches_float64_reference(seed, batch, d_inner, d_state, seqlen, n_groups, softplus, optional, threads):
    if n_groups and d_inner % n_groups:
        n_groups = 1
    inputs = make_inputs(seed, batch, d_inner, d_state, seqlen, n_groups)
    if not softplus:
        # Steps are positive in Mamba; negative ones grow the state past float32's range.
        inputs["delta"] = inputs["delta"].abs()
    got = run_kernel(inputs, softplus, threads, optional)
    assert got is not None and got.dtype == torch.float32 and got.shape == (batch, d_inner, seqlen)
    assert_close_to(got, run_reference(inputs, softplus, optional), rel_tolerance=2e-5)


@needs_compiler
def test_kernel_groups_of_B_and_C_split_inside_a_lane_group():
    # 2 groups of 10 channels: the first 16-channel lane group straddles the boundary.
    inputs = make_inputs(5, 2, 20, 4, 30, n_groups=2)
    assert_close_to(run_kernel(inputs, threads=2), run_reference(inputs), rel_tolerance=2e-5)


@needs_compiler
def test_kernel_bfloat16_in_and_out():
    inputs = make_inputs(6, 2, 24, 16, 50, dtype=torch.bfloat16)
    got = run_kernel(inputs)
    assert got.dtype == torch.bfloat16
    assert_close_to(got, run_reference(inputs), rel_tolerance=1e-2)


@needs_compiler
def test_kernel_large_steps_stay_finite():
    # exp(delta * A) underflows (decays of e^-2000): states must go to 0, never to inf, NaN or a
    # denormal-slowed crawl; gates far out on both sides must give 0 and z.
    inputs = make_inputs(7, 1, 20, 16, 70)
    inputs["delta"] = torch.full_like(inputs["delta"], 200.0)
    inputs["A"] = inputs["A"] * 10
    inputs["z"][0, 0, :10] = -120.0
    inputs["z"][0, 1, :10] = 120.0
    got = run_kernel(inputs)
    assert torch.isfinite(got).all()
    assert_close_to(got, run_reference(inputs), rel_tolerance=2e-5)


@needs_compiler
def test_selective_scan_uses_the_kernel_only_without_gradients(monkeypatch):
    calls = []
    original = scan_kernel.scan_forward

    def counting(*args, **kwargs):
        calls.append(kwargs.get("threads"))
        return original(*args, **kwargs)

    monkeypatch.setattr(scan_kernel, "scan_forward", counting)
    inputs = make_inputs(8, 2, 6, 4, 12)
    args = [inputs[name] for name in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    with torch.no_grad():
        fast = selective_scan(*args, delta_softplus=True)
    assert len(calls) == 1

    args[0] = args[0].clone().requires_grad_()
    slow = selective_scan(*args, delta_softplus=True)
    assert len(calls) == 1, "a scan that needs gradients must take the autograd path"
    torch.testing.assert_close(fast, slow.detach(), atol=1e-5, rtol=1e-5)


@needs_compiler
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kernel_threads_work_in_a_process_forked_after_use():
    # A forked child inherits the thread pool object but not its threads.
    inputs = make_inputs(13, 2, 40, 16, 20)
    want = run_kernel(inputs, threads=2)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        got = pool.apply_async(_scan_in_child, (inputs,)).get(timeout=60)
    torch.testing.assert_close(got, want, atol=0, rtol=0)


def _scan_in_child(inputs):
    return run_kernel(inputs, threads=2)


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv("BIOFOUND_SCAN_KERNEL", "0")
    inputs = make_inputs(9, 1, 4, 3, 10)
    assert run_kernel(inputs) is None
    assert scan_kernel.kernel_status() == "switched off (BIOFOUND_SCAN_KERNEL)"
    with torch.no_grad():
        got = selective_scan(*[inputs[n] for n in ("u", "delta", "A", "B", "C", "D", "z")], delta_softplus=True)
    assert_close_to(got, selective_scan_reference(
        *[inputs[n].double() for n in ("u", "delta", "A", "B", "C", "D", "z")], delta_softplus=True
    ), rel_tolerance=2e-5)  # fmt: skip


def test_unsupported_inputs_fall_back():
    inputs = make_inputs(10, 1, 4, 3, 10)
    fixed = dict(inputs, B=torch.randn(4, 3), C=torch.randn(4, 3))  # per-channel B/C: not the kernel's
    assert run_kernel(fixed) is None
    wide = make_inputs(11, 1, 2, scan_kernel.MAX_STATE + 1, 4)
    assert run_kernel(wide) is None


@pytest.fixture
def fresh_kernel(monkeypatch, tmp_path):
    """No kernel loaded yet in this process, and an empty build cache."""
    monkeypatch.setattr(scan_kernel, "_library", scan_kernel._UNSET)
    monkeypatch.setenv("BIOFOUND_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("BIOFOUND_SCAN_KERNEL", raising=False)
    return tmp_path / "kernels"


@needs_compiler
def test_build_is_cached_and_reused(fresh_kernel, monkeypatch):
    assert scan_kernel.load_kernel() is not None
    assert scan_kernel.kernel_status().startswith(f"built ({fresh_kernel}")
    built = sorted(path.name for path in fresh_kernel.iterdir())
    assert len(built) == 1 and built[0].startswith("selective_scan-") and built[0].endswith(".so")

    def no_compiling(*args, **kwargs):
        raise AssertionError("a cached build must not be compiled again")

    monkeypatch.setattr(scan_kernel, "_library", scan_kernel._UNSET)
    monkeypatch.setattr(scan_kernel, "_compile", no_compiling)
    assert scan_kernel.load_kernel() is not None
    assert sorted(path.name for path in fresh_kernel.iterdir()) == built


def test_no_compiler_falls_back_to_pytorch(fresh_kernel, monkeypatch, caplog):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with caplog.at_level(logging.DEBUG, logger=scan_kernel.__name__):
        assert scan_kernel.load_kernel() is None
    assert "no C compiler" in caplog.text
    assert scan_kernel.kernel_status() == "unavailable, PyTorch scan used (no C compiler ($CC, cc, gcc, clang))"
    inputs = make_inputs(12, 1, 4, 3, 10)
    assert run_kernel(inputs) is None
    with torch.no_grad():
        got = selective_scan(*[inputs[n] for n in ("u", "delta", "A", "B", "C")])
    assert_close_to(got, selective_scan_reference(*[inputs[n].double() for n in ("u", "delta", "A", "B", "C")]), 2e-5)


def test_failing_compiler_falls_back_and_leaves_no_files(fresh_kernel, monkeypatch, tmp_path, caplog):
    failing = tmp_path / "failing-cc"
    failing.write_text("#!/bin/sh\necho 'cc: error: no such thing' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setenv("CC", str(failing))
    with caplog.at_level(logging.DEBUG, logger=scan_kernel.__name__):
        assert scan_kernel.load_kernel() is None
    assert "could not build" in caplog.text and "no such thing" in caplog.text
    assert scan_kernel.kernel_status().startswith("unavailable, PyTorch scan used (")
    assert not fresh_kernel.exists() or not any(fresh_kernel.iterdir())


@pytest.mark.parametrize("busy", [True, False])
def test_kernel_threads_drop_to_one_on_busy_cores(monkeypatch, busy):
    monkeypatch.setattr(scan_module, "_cores_are_busy", lambda threads: busy)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert scan_module._kernel_threads() == (1 if busy else 2)
