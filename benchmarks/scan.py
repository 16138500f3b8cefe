"""Speed of our CPU selective scan at FEMBA's shape, against two baselines.

Run ``python benchmarks/scan.py``. Prints a markdown table; asserts nothing.

Ours is timed twice for the forward pass: as ``selective_scan`` runs it without gradients (the
compiled C kernel of ``biofound_cli/models/scan_kernel.py``, where a compiler is found) and
with the kernel switched off (the pure-PyTorch scan, which training and export use).

* **reference**: a plain sequential scan that materialises the decay and input terms of every
  step up front, as mamba-ssm's ``selective_scan_ref`` does (written here from its description).
* **floor**: the time to read every input once and write the output once at the copy bandwidth
  measured in this run (``dst.copy_(src)`` on a large tensor).

The shape is one FEMBA-large Mamba layer on a batch of 8: d_inner 3476, L 80 tokens, d_state 16.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch
import torch.nn.functional as F

from biofound_cli.models import scan_kernel
from biofound_cli.models.selective_scan import selective_scan


def reference_scan(u, delta, A, B, C, D, z, delta_bias):
    """Sequential scan keeping the decay and input term of every step, like selective_scan_ref."""
    delta = F.softplus(delta + delta_bias[:, None])
    decay = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    delta_B_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    state = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        state = decay[:, :, t] * state + delta_B_u[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", state, C[:, :, t]))
    y = torch.stack(ys, dim=2) + u * D[:, None]
    return y * F.silu(z)


def make_inputs(batch, d_inner, seqlen, d_state, requires_grad):
    generator = torch.Generator().manual_seed(0)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=generator) * scale).requires_grad_(requires_grad)

    u = randn(batch, d_inner, seqlen)
    delta = randn(batch, d_inner, seqlen, scale=0.5)
    A = (-torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)).requires_grad_(requires_grad)
    B = randn(batch, d_state, seqlen)
    C = randn(batch, d_state, seqlen)
    D = torch.ones(d_inner).requires_grad_(requires_grad)
    z = randn(batch, d_inner, seqlen)
    delta_bias = randn(d_inner, scale=0.1)
    return u, delta, A, B, C, D, z, delta_bias


def time_calls(functions, repeats):
    """Best wall time of each function over ``repeats`` rounds, in seconds.

    The calls are interleaved round by round so that load from other processes on a shared
    machine hits all of them alike, and the best time is kept since interference only ever
    adds time. One untimed warm-up call each first.
    """
    for fn in functions:
        fn()
    best = [math.inf] * len(functions)
    for _ in range(repeats):
        for i, fn in enumerate(functions):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def copy_bandwidth(repeats):
    """Bytes per second moved by ``dst.copy_(src)`` (read + write) on a 256 MiB tensor."""
    src = torch.randn(64 * 1024 * 1024)
    dst = torch.empty_like(src)
    (seconds,) = time_calls([lambda: dst.copy_(src)], repeats)
    return 2 * src.numel() * src.element_size() / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--d-inner", type=int, default=3476)
    parser.add_argument("--seqlen", type=int, default=80)
    parser.add_argument("--d-state", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = (args.batch, args.d_inner, args.seqlen, args.d_state)

    inputs = make_inputs(*shape, requires_grad=False)

    def ours():
        return selective_scan(*inputs[:7], delta_bias=inputs[7], delta_softplus=True)

    def ours_pytorch():
        os.environ["BIOFOUND_SCAN_KERNEL"] = "0"
        try:
            return ours()
        finally:
            del os.environ["BIOFOUND_SCAN_KERNEL"]

    kernel = not scan_kernel.kernel_disabled() and scan_kernel.load_kernel() is not None
    with torch.no_grad():
        ours_fwd, pytorch_fwd, ref_fwd = time_calls([ours, ours_pytorch, lambda: reference_scan(*inputs)], args.repeats)

    grad_inputs = make_inputs(*shape, requires_grad=True)
    grad_out = torch.randn(args.batch, args.d_inner, args.seqlen)

    def ours_train():
        out = selective_scan(*grad_inputs[:7], delta_bias=grad_inputs[7], delta_softplus=True)
        out.backward(grad_out)

    def ref_train():
        reference_scan(*grad_inputs).backward(grad_out)

    (ours_bwd,) = time_calls([ours_train], args.repeats)
    # Autograd through the reference allocates a full (b, d, L, n) gradient per step and
    # takes seconds: one timed call, no warm-up.
    start = time.perf_counter()
    ref_train()
    ref_bwd = time.perf_counter() - start

    bandwidth = copy_bandwidth(args.repeats)
    min_bytes = sum(t.numel() * t.element_size() for t in inputs) + inputs[0].numel() * 4
    floor = min_bytes / bandwidth

    print(
        f"Selective scan, batch {args.batch}, d_inner {args.d_inner}, L {args.seqlen}, "
        f"d_state {args.d_state}, float32, {args.threads} threads"
    )
    print(f"copy bandwidth {bandwidth / 1e9:.1f} GB/s; minimum traffic {min_bytes / 1e6:.1f} MB -> floor {floor * 1e3:.2f} ms\n")
    print("| pass | ours (ms) | reference (ms) | reference / ours | ours / floor |")
    print("|---|---|---|---|---|")
    label = "forward (C kernel)" if kernel else "forward (no C compiler: PyTorch scan)"
    print(f"| {label} | {ours_fwd * 1e3:.1f} | {ref_fwd * 1e3:.1f} | {ref_fwd / ours_fwd:.1f}x | {ours_fwd / floor:.1f}x |")
    print(
        f"| forward (PyTorch scan) | {pytorch_fwd * 1e3:.1f} | {ref_fwd * 1e3:.1f} | {ref_fwd / pytorch_fwd:.1f}x | "
        f"{pytorch_fwd / floor:.1f}x |"
    )
    print(
        f"| forward + backward | {ours_bwd * 1e3:.1f} | {ref_bwd * 1e3:.1f} | {ref_bwd / ours_bwd:.1f}x | "
        f"{ours_bwd / floor:.1f}x |"
    )


if __name__ == "__main__":
    main()
