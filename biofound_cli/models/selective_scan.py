"""The selective scan of Mamba: mamba-ssm's CUDA kernel when available, a pure-PyTorch scan otherwise.

* On a GPU, when ``mamba_ssm`` imports (the import is attempted once, lazily), its fused
  ``selective_scan_fn`` runs.
* On a CPU, when no gradient is needed (inference, evaluation), a small C kernel compiled on
  first use (:mod:`biofound_cli.models.scan_kernel`) keeps every channel's state in registers;
  ~4x faster than the PyTorch scan at FEMBA's shape. ``BIOFOUND_SCAN_KERNEL=0`` switches it off.
* Otherwise :func:`selective_scan`, a pure-PyTorch scan, keeps only one
  ``(batch, d_state, d_inner)`` state in memory at a time, has a hand-written backward that
  recomputes states chunk by chunk instead of storing all of them, accepts float32 and
  bfloat16 (the state is always accumulated in float32) and exports to ONNX.

:func:`selective_scan_reference` is a plain, step-by-step scan in the input's own precision
(use float64 inputs for a ground truth); tests and ``benchmarks/scan.py`` compare against it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch
import torch._compile
import torch.nn.functional as F

from biofound_cli.models import scan_kernel

# The backward pass recomputes the states of one chunk of this many steps at a time from a
# checkpointed state, so its extra memory is (L / chunk + chunk) states instead of L.
_BACKWARD_CHUNK = 16

_MAMBA_SSM_UNSET = object()
_mamba_ssm_scan: object = _MAMBA_SSM_UNSET


def _cuda_selective_scan_fn():
    """Return mamba-ssm's fused ``selective_scan_fn``, or None when it does not import.

    The import is attempted once per process: a missing or broken CUDA extension must not
    cost an import attempt on every forward call.
    """
    global _mamba_ssm_scan
    if _mamba_ssm_scan is _MAMBA_SSM_UNSET:
        try:
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        except Exception:  # ImportError, or an extension built for another torch/CUDA
            selective_scan_fn = None
        _mamba_ssm_scan = selective_scan_fn
    return _mamba_ssm_scan


def _is_exporting() -> bool:
    """Whether a graph is being traced for export (ONNX, torch.export, TorchScript), not run eagerly."""
    if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
        return True
    # torch.compiler.is_exporting is newer than the oldest torch biofound supports (2.2).
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting()) if is_exporting is not None else False


# ---------------------------------------------------------------------------------------------
# The selective scan
# ---------------------------------------------------------------------------------------------


def _per_step_layout(BC: torch.Tensor, d_inner: int, seqlen: int) -> torch.Tensor:
    """Lay B or C out as (L, batch | 1, d_state, d_inner | 1), one contiguous slice per step.

    Accepts mamba-ssm's three forms: fixed (d_inner, d_state), variable (batch, d_state, L)
    and grouped variable (batch, n_groups, d_state, L).
    """
    if BC.dim() == 2:
        layout = BC.t()[None, None].expand(seqlen, 1, BC.shape[1], d_inner)
    elif BC.dim() == 3:
        layout = BC.permute(2, 0, 1)[..., None]
    elif BC.dim() == 4:
        n_groups = BC.shape[1]
        if d_inner % n_groups:
            raise ValueError(f"d_inner {d_inner} is not divisible by the {n_groups} groups of B/C")
        layout = BC.repeat_interleave(d_inner // n_groups, dim=1).permute(3, 0, 2, 1)
    else:
        raise ValueError(f"B and C must have 2, 3 or 4 dimensions, got shape {tuple(BC.shape)}")
    return layout.contiguous()


def _contract_state(h: torch.Tensor, C_t: torch.Tensor) -> torch.Tensor:
    """y[b, d] = sum_n C_t[b | 1, n, d | 1] * h[b, n, d]."""
    if C_t.shape[-1] == 1 and C_t.shape[0] == h.shape[0]:
        # Shared across channels: one batched vector-matrix product, no (b, n, d) temporary.
        return torch.bmm(C_t.transpose(1, 2), h).squeeze(1)
    return (h * C_t).sum(1)


_SINGLE_THREAD_STEP_NUMEL = 1 << 22
"""Steps whose state has fewer elements than this (16 MiB of float32) may run on one thread."""


def _cores_are_busy(threads: int) -> bool:
    """Whether other work competes for the cores this process may use, right now.

    Reads the kernel's count of runnable tasks (``/proc/loadavg``, 4th field), which counts
    this process's own running threads too. Where that is unavailable, assume busy: one thread
    is the safe choice.
    """
    try:
        with open("/proc/loadavg") as handle:
            runnable = int(handle.read().split()[3].split("/")[0])
        cores = len(os.sched_getaffinity(0))
    except (OSError, ValueError, IndexError, AttributeError):
        return True
    return runnable > min(cores, threads)


def _kernel_threads() -> int:
    """Threads for the C kernel: torch's setting, or one while other work competes for the cores."""
    threads = torch.get_num_threads()
    return 1 if threads > 1 and _cores_are_busy(threads) else threads


@contextmanager
def _step_loop_threads(state_numel: int, device: torch.device) -> Iterator[None]:
    """Run a scan's step loop on one CPU thread when its steps are small and the cores are busy.

    A step is a few element-wise ops over (batch, d_state, d_inner). On oversubscribed cores
    (a shared node, a busy CI runner) every parallel op waits for a descheduled worker: a
    FEMBA-base Mamba layer took 2.6 s on two threads against 52 ms on one on a loaded 2-core
    machine. On idle cores two threads are ~1.5x faster, so they are kept there.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1 or state_numel >= _SINGLE_THREAD_STEP_NUMEL or not _cores_are_busy(threads):
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _scan_states(
    delta: torch.Tensor,
    delta_u: torch.Tensor,
    A_t: torch.Tensor,
    B_steps: torch.Tensor,
    C_steps: torch.Tensor,
    checkpoint_every: int = 0,
    in_place: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t, y_t = C_t . h_t from h_0 = 0.

    ``delta`` and ``delta_u`` are (L, batch, d_inner) float32 and ``A_t`` is A transposed,
    (d_state, d_inner). The state is kept as (batch, d_state, d_inner) so that every
    element-wise op runs along the long, contiguous d_inner axis. Returns the outputs
    (L, batch, d_inner) and, when ``checkpoint_every`` is set, the state entering every chunk
    of that many steps. ``in_place=False`` uses only out-of-place ops, for graph tracing
    (ONNX export) where parameters require grad.
    """
    seqlen, batch, d_inner = delta.shape
    h = delta.new_zeros(batch, A_t.shape[0], d_inner)
    decay = torch.empty_like(h) if in_place else None
    ys = []
    checkpoints = []
    with _step_loop_threads(h.numel(), delta.device):
        for t in range(seqlen):
            if checkpoint_every and t % checkpoint_every == 0:
                checkpoints.append(h.clone())
            if in_place:
                # Reused buffers: the step is memory-bound, and fresh (b, n, d) allocations
                # every step cost more than the arithmetic.
                assert decay is not None  # allocated above when in_place
                torch.mul(delta[t].unsqueeze(1), A_t, out=decay)
                decay.exp_()
                h.mul_(decay).addcmul_(delta_u[t].unsqueeze(1), B_steps[t])
            else:
                decay_t = torch.exp(delta[t].unsqueeze(1) * A_t)
                h = torch.addcmul(delta_u[t].unsqueeze(1) * B_steps[t], h, decay_t)
            ys.append(_contract_state(h, C_steps[t]))
        return torch.stack(ys), checkpoints


class _SelectiveScanFn(torch.autograd.Function):
    """The float32 recurrence with a backward pass that recomputes states chunk by chunk.

    Autograd through the step loop would keep every step's state and decay alive
    (several batch x d_inner x L x d_state tensors per layer); this keeps one state per chunk.
    """

    @staticmethod
    def forward(ctx, delta, delta_u, A_t, B_steps, C_steps):
        # The recurrence is float32 by design; autocast (bf16 training) must not lower its matmuls.
        with torch.autocast(device_type=delta.device.type, enabled=False):
            ys, checkpoints = _scan_states(delta, delta_u, A_t, B_steps, C_steps, checkpoint_every=_BACKWARD_CHUNK)
        ctx.save_for_backward(delta, delta_u, A_t, B_steps, C_steps, *checkpoints)
        return ys

    @staticmethod
    def backward(ctx, grad_ys):
        delta, _, A_t = ctx.saved_tensors[:3]
        state_numel = delta.shape[1] * A_t.shape[0] * delta.shape[2]
        with torch.autocast(device_type=grad_ys.device.type, enabled=False), _step_loop_threads(state_numel, grad_ys.device):
            return _SelectiveScanFn._backward(ctx, grad_ys.float())

    @staticmethod
    def _backward(ctx, grad_ys):
        delta, delta_u, A_t, B_steps, C_steps, *checkpoints = ctx.saved_tensors
        seqlen = delta.shape[0]
        grad_ys = grad_ys.contiguous()
        grad_delta = torch.empty_like(delta)
        grad_delta_u = torch.empty_like(delta_u)
        grad_A_t = torch.zeros_like(A_t)
        grad_B = torch.empty_like(B_steps)
        grad_C = torch.empty_like(C_steps)
        grad_h = torch.zeros_like(checkpoints[0])  # dLoss/dh_t through the steps after t
        grad_log_decay = torch.empty_like(grad_h)

        for chunk in reversed(range(len(checkpoints))):
            start = chunk * _BACKWARD_CHUNK
            stop = min(start + _BACKWARD_CHUNK, seqlen)
            # Recompute this chunk's decays and states (states[i] = h_{start + i - 1}).
            states = [checkpoints[chunk]]
            decays = []
            for t in range(start, stop):
                decay = torch.exp(delta[t].unsqueeze(1) * A_t)
                decays.append(decay)
                states.append(torch.addcmul(delta_u[t].unsqueeze(1) * B_steps[t], states[-1], decay))

            for t in reversed(range(start, stop)):
                h_t, h_prev, decay = states[t - start + 1], states[t - start], decays[t - start]
                grad_y = grad_ys[t].unsqueeze(1)  # (b, 1, d)
                grad_C[t] = _weighted_sum_to(h_t, grad_y, C_steps[t].shape)
                grad_h.addcmul_(grad_y, C_steps[t])
                # h_t = decay * h_prev + delta_u * B
                grad_B[t] = _weighted_sum_to(grad_h, delta_u[t].unsqueeze(1), B_steps[t].shape)
                grad_delta_u[t] = _contract_state(grad_h, B_steps[t])
                # decay = exp(delta * A), so d(loss)/d(delta * A) = grad_h * h_prev * decay.
                torch.mul(grad_h, h_prev, out=grad_log_decay).mul_(decay)
                grad_delta[t] = (grad_log_decay * A_t).sum(1)
                grad_A_t.add_((grad_log_decay * delta[t].unsqueeze(1)).sum(0))
                grad_h.mul_(decay)
        return grad_delta, grad_delta_u, grad_A_t, grad_B, grad_C


def _weighted_sum_to(state: torch.Tensor, weight: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum ``state * weight`` (b, n, d) down to the (b | 1, n, d | 1) shape of B or C."""
    if shape[-1] == 1 and shape[0] == state.shape[0]:
        # weight is (b, 1, d): contract d with one batched matrix-vector product.
        return torch.bmm(state, weight.transpose(1, 2))
    product = state * weight
    dims = [i for i, (have, want) in enumerate(zip(product.shape, shape, strict=True)) if want == 1 and have != 1]
    return product.sum(dim=dims, keepdim=True) if dims else product


# torch.compiler.disable, applied at the first call: the decorator imports torch._dynamo (~1 s), which nothing but a
# compiled model needs (`biofound validate` of a FEMBA recipe imports this module). torch decorates its own
# optimizers so; a graph traced by torch.compile calls this outside it all the same (tests/unit/models/test_compiled.py).
@torch._compile._disable_dynamo
def _kernel_forward(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
) -> torch.Tensor | None:
    """The C kernel's output, or ``None``; outside any ``torch.compile`` graph.

    The kernel takes raw pointers through ctypes, which a traced graph cannot represent: traced
    by ``torch.compile``, FEMBA gave NaN. Left out of the graph, it runs as it does eagerly,
    and the thread count is read at every call, not frozen into the graph.
    """
    return scan_kernel.scan_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, threads=_kernel_threads())


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """The selective scan of Mamba, with mamba-ssm's ``selective_scan_fn`` signature.

    Parameters
    ----------
    u, delta : torch.Tensor
        Input and step size, shape (batch, d_inner, L).
    A : torch.Tensor
        State matrix (diagonal per channel), shape (d_inner, d_state); real and negative.
    B, C : torch.Tensor
        Input and output projections: (d_inner, d_state), (batch, d_state, L) or
        (batch, n_groups, d_state, L).
    D : torch.Tensor | None
        Skip connection per channel, shape (d_inner,).
    z : torch.Tensor | None
        Gate, shape (batch, d_inner, L); the output is multiplied by SiLU(z).
    delta_bias : torch.Tensor | None
        Added to ``delta`` before the softplus, shape (d_inner,).
    delta_softplus : bool
        Apply softplus to ``delta`` (after adding ``delta_bias``).

    Returns
    -------
    torch.Tensor
        Shape (batch, d_inner, L), in the dtype of ``u``. On CUDA with mamba-ssm installed
        the fused kernel computes it; elsewhere a pure-PyTorch scan accumulating in float32.
    """
    exporting = _is_exporting()
    if u.is_cuda and not exporting:
        fused = _cuda_selective_scan_fn()
        if fused is not None:
            return fused(u, delta, A, B, C, D, z, delta_bias, delta_softplus)

    if not u.is_cuda and not exporting:
        tensors = (u, delta, A, B, C, D, z, delta_bias)
        needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
        if not needs_grad:
            out = _kernel_forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
            if out is not None:
                return out

    out_dtype = u.dtype
    d_inner, seqlen = u.shape[1], u.shape[2]
    # Everything below works on the (L, batch, d_inner) layout, one contiguous slice per step.
    u_steps = u.permute(2, 0, 1).float()
    delta_steps = delta.permute(2, 0, 1).float()
    if delta_bias is not None:
        delta_steps = delta_steps + delta_bias.float()
    if delta_softplus:
        delta_steps = F.softplus(delta_steps)
    delta_steps = delta_steps.contiguous()
    delta_u_steps = (delta_steps * u_steps).contiguous()
    B_steps = _per_step_layout(B.float(), d_inner, seqlen)
    C_steps = _per_step_layout(C.float(), d_inner, seqlen)
    A_t = A.float().t().contiguous()

    inputs = (delta_steps, delta_u_steps, A_t, B_steps, C_steps)
    if torch.is_grad_enabled() and not exporting and any(t.requires_grad for t in inputs):
        ys = _SelectiveScanFn.apply(*inputs)
    else:
        ys, _ = _scan_states(*inputs, in_place=not exporting)

    if D is not None:
        ys = torch.addcmul(ys, u_steps, D.float())
    if z is not None:
        ys = ys * F.silu(z.permute(2, 0, 1).float())
    return ys.permute(1, 2, 0).to(out_dtype)


def _reference_form(BC: torch.Tensor, d_inner: int, seqlen: int) -> torch.Tensor:
    """B or C as (batch | 1, d_inner | 1, d_state, L), ready to broadcast against the state."""
    if BC.dim() == 2:
        return BC[None, :, :, None].expand(-1, -1, -1, seqlen)
    if BC.dim() == 3:
        return BC[:, None]
    return BC.repeat_interleave(d_inner // BC.shape[1], dim=1)


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """The selective scan written step by step, in the precision of ``u`` (float64 works).

    Plain autograd, no chunking, no dispatch. Meant as a ground truth, not for speed.

    Parameters
    ----------
    u, delta, A, B, C, D, z, delta_bias, delta_softplus : torch.Tensor | None | bool
        As :func:`selective_scan`'s; so is the result.
    """
    out_dtype = u.dtype
    dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    batch, d_inner, seqlen = u.shape
    u, delta, A = u.to(dtype), delta.to(dtype), A.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    B = _reference_form(B.to(dtype), d_inner, seqlen)
    C = _reference_form(C.to(dtype), d_inner, seqlen)
    h = u.new_zeros(batch, d_inner, A.shape[1])
    ys = []
    for t in range(seqlen):
        decay = torch.exp(delta[:, :, t, None] * A)
        h = decay * h + (delta[:, :, t] * u[:, :, t])[:, :, None] * B[..., t]
        ys.append((h * C[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.to(dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(dtype))
    return y.to(out_dtype)
