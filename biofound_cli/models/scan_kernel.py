"""A small C kernel for the selective scan's forward pass on CPU, compiled on first use.

The pure-PyTorch scan (:mod:`biofound_cli.models.selective_scan`) runs five element-wise ops
per step over a (batch, d_state, d_inner) state that does not fit in cache, so it streams that
state through memory every step. The kernel in ``kernels/selective_scan.c`` keeps each
channel's state in registers for the whole sequence and reads every input once: at FEMBA's
shape it is ~10x faster than the PyTorch loop (``benchmarks/scan.py``).

It is forward-only and float32, so :func:`~biofound_cli.models.selective_scan.selective_scan`
uses it for inference (no gradient needed) on CPU tensors and keeps the PyTorch scan for
training, for ONNX/TorchScript export and wherever the kernel is unavailable.

How it is built: with the C compiler found as ``$CC``, ``cc``, ``gcc`` or ``clang``, tuned
for the CPU it runs on (``-march=native``; the first flags the compiler accepts of :data:`FLAG_ATTEMPTS`), into
``$BIOFOUND_CACHE_DIR/kernels`` (default ``~/.cache/biofound/kernels``). The file name
carries a hash of the source, the flags, the compiler and the CPU's feature flags, so a home
directory shared by cluster nodes with different CPUs keeps one build per kind of node. The
build is written to a temporary file and renamed, so concurrent processes (DDP ranks, loader
workers) never load a half-written library. Without a compiler, or when the build fails,
the PyTorch scan runs and a debug message says why. ``BIOFOUND_SCAN_KERNEL=0`` switches the
kernel off.

Why not ``torch.utils.cpp_extension`` (measured with torch 2.13, gcc 12, cold caches in temporary
folders): ``load`` needs ninja, which neither torch nor biofound installs (without it:
``RuntimeError: Ninja is required to load C++ extensions``), and a C++ compiler (with only
``gcc``, as Debian's ``gcc`` package gives: ``c++: not found``); here a C compiler is enough.
Where both are present, ``load`` of a C++ file that includes this C source in ``extern "C"``
builds in 1.3 s against 0.95 s for this module; ``load_inline`` prepends ``torch/extension.h``
and takes 43 s and 1.5 GB of memory. Its build folder is named by the extension, and its
version hash covers the sources and flags but not the CPU, so a ``-march=native`` build in a
home directory shared by different nodes would be loaded on a CPU that lacks its instructions
(a crash, not a fallback), and it has no retry with other flags (:data:`FLAG_ATTEMPTS`). The
kernel is called through ctypes with raw pointers and uses no torch header, so the torch
include and link flags ``cpp_extension`` adds buy nothing.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

MAX_STATE = 64
"""Largest ``d_state`` the kernel handles (its state lives in a fixed-size array)."""

LANES = 16
"""Channels per vector group in the kernel (its ``LANES``); threads split the work by groups."""

SOURCE_NAME = "selective_scan.c"
ENTRY_POINT = "biofound_selective_scan_forward"
FLAGS = ("-O3", "-fopenmp-simd", "-fno-trapping-math", "-fno-math-errno", "-fPIC", "-shared", "-std=c99")
FLAG_ATTEMPTS = (("-march=native", "-mprefer-vector-width=512"), ("-march=native",), ())
"""Tried in turn: tuned for this CPU (with 512-bit vectors where it has them: ~1.25x faster on
AVX-512), tuned without the x86-only option, then portable."""

_UNSET = object()
_library: object = _UNSET
_unavailable_reason = ""
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_pid = 0


def kernel_disabled() -> bool:
    """Whether ``BIOFOUND_SCAN_KERNEL`` switches the kernel off (``0``, ``off``, ``false``, ``no``)."""
    return os.environ.get("BIOFOUND_SCAN_KERNEL", "").strip().lower() in ("0", "off", "false", "no")


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$BIOFOUND_CACHE_DIR/kernels`` or ``~/.cache/biofound/kernels``."""
    root = os.environ.get("BIOFOUND_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "biofound"
    )
    return Path(root) / "kernels"


def find_compiler() -> str | None:
    """The C compiler to build with: ``$CC``, else the first of ``cc``, ``gcc``, ``clang`` on PATH."""
    candidates = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    return next(filter(None, map(shutil.which, candidates)), None)


def _cpu_signature() -> str:
    """The CPU's identity for the cache key: architecture plus its feature flags where Linux lists them."""
    signature = platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("flags", "Features", "model name")):
                    signature += line
                if line.strip() == "":
                    break
    except OSError:
        signature += platform.processor()
    return signature


def _compiler_version(compiler: str) -> str:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _compile(compiler: str, source_path: Path, target: Path) -> None:
    """Build the library at ``target`` (via a temporary file and a rename), native flags first."""
    from biofound_cli.atomic import atomic_path

    # The temporary's name is unique (pid + random token): DDP ranks, loader workers and nodes
    # sharing the cache folder never write into one another's file.
    with atomic_path(target) as temporary:
        errors = ""
        for extra in FLAG_ATTEMPTS:
            result = subprocess.run(
                [compiler, *FLAGS, *extra, "-o", str(temporary), str(source_path)],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if result.returncode == 0:
                return  # leaving the block renames the library onto target
            errors = result.stderr.strip()
        raise RuntimeError(f"{compiler} could not build {source_path.name}: {errors[-500:]}")


def _unavailable(reason: str) -> None:
    global _unavailable_reason
    _unavailable_reason = reason
    logger.debug("selective-scan kernel unavailable (%s); using the PyTorch scan", reason)


def _build_and_load() -> ctypes.CDLL | None:
    compiler = find_compiler()
    if compiler is None:
        _unavailable("no C compiler ($CC, cc, gcc, clang)")
        return None
    source = resources.files("biofound_cli.models").joinpath("kernels", SOURCE_NAME).read_bytes()
    key = hashlib.sha256(
        b"\0".join([source, repr((FLAGS, FLAG_ATTEMPTS)).encode(), _compiler_version(compiler).encode(),
                    _cpu_signature().encode()])
    ).hexdigest()[:16]  # fmt: skip
    target = cache_dir() / f"selective_scan-{key}.so"
    try:
        if not target.exists():
            with tempfile.TemporaryDirectory() as scratch:
                source_path = Path(scratch) / SOURCE_NAME
                source_path.write_bytes(source)
                _compile(compiler, source_path, target)
        library = ctypes.CDLL(str(target))
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        _unavailable(str(error))
        return None
    function = getattr(library, ENTRY_POINT)
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_int64] * 6 + [ctypes.c_void_p] * 8 + [ctypes.c_int, ctypes.c_void_p]
    return library


def load_kernel() -> ctypes.CDLL | None:
    """The compiled kernel, building it on the first call; ``None`` when it cannot be had.

    The attempt is made once per process: a machine without a compiler pays for one lookup.
    """
    global _library
    if _library is _UNSET:
        with _lock:
            if _library is _UNSET:
                _library = _build_and_load()
    return _library  # type: ignore[return-value]


def kernel_status() -> str:
    """One line for ``biofound env``: where the built kernel is, or why the PyTorch scan runs instead."""
    if kernel_disabled():
        return "switched off (BIOFOUND_SCAN_KERNEL)"
    library = load_kernel()
    if library is None:
        return f"unavailable, PyTorch scan used ({_unavailable_reason})"
    return f"built ({library._name})"  # noqa: SLF001 - ctypes keeps the path there


def _thread_pool(threads: int) -> ThreadPoolExecutor:
    """A pool of at least ``threads`` threads, owned by this process.

    A process forked after the pool was made (a DataLoader worker, a multiprocessing pool)
    inherits the pool object but none of its threads; work submitted there would wait forever,
    so each process makes its own.
    """
    global _pool, _pool_size, _pool_pid
    if _pool is None or _pool_pid != os.getpid() or _pool_size < threads:
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="biofound-scan")
        _pool_size, _pool_pid = threads, os.getpid()
    return _pool


def scan_forward(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
    threads: int = 1,
) -> torch.Tensor | None:
    """The selective scan's output computed by the kernel, or ``None`` if it cannot take these inputs.

    Takes :func:`~biofound_cli.models.selective_scan.selective_scan`'s arguments with B and C
    in the variable (batch, d_state, L) or grouped (batch, groups, d_state, L) form, on the
    CPU, ``d_state <= MAX_STATE``. Computes in float32 and returns ``u``'s dtype. The channels
    are split across ``threads`` threads (the C calls release the GIL).

    Parameters
    ----------
    u, delta, A, B, C, D, z, delta_bias, delta_softplus : torch.Tensor | None | bool
        As :func:`~biofound_cli.models.selective_scan.selective_scan`'s, B and C in the forms above.
    threads : int
        Threads the channels are split across.
    """
    if kernel_disabled() or u.device.type != "cpu" or B.dim() not in (3, 4) or C.dim() != B.dim():
        return None
    batch, d_inner, seqlen = u.shape
    n_state = A.shape[1]
    if n_state > MAX_STATE or batch * d_inner * seqlen == 0:
        return None
    library = load_kernel()
    if library is None:
        return None

    # B and C as (batch, groups, L, d_state): one contiguous row of states per step.
    B_rows, C_rows = (t.detach().float().reshape(batch, -1, n_state, seqlen).transpose(-1, -2).contiguous() for t in (B, C))
    n_groups = B_rows.shape[1]
    if d_inner % n_groups or C_rows.shape[1] != n_groups:
        return None
    # Named, so that every float32 copy outlives the C calls that read it through its pointer.
    inputs = [None if t is None else t.detach().float().contiguous() for t in (u, delta, A, B_rows, C_rows, D, z, delta_bias)]
    out = torch.empty(batch, d_inner, seqlen, dtype=torch.float32)
    function = getattr(library, ENTRY_POINT)
    pointers = [None if t is None else t.data_ptr() for t in inputs]

    def run(first: int, last: int) -> int:
        return function(first, last, d_inner, seqlen, n_state, n_groups, *pointers, int(delta_softplus), out.data_ptr())

    groups = batch * -(-d_inner // LANES)
    threads = max(1, min(threads, groups))
    if threads == 1:
        status = [run(0, groups)]
    else:
        bounds = [groups * i // threads for i in range(threads + 1)]
        futures = [_thread_pool(threads).submit(run, bounds[i], bounds[i + 1]) for i in range(threads)]
        status = [future.result() for future in futures]
    return None if any(status) else out.to(u.dtype)
