"""FEMBA, LUNA and TinyMyo on one CUDA GPU, and mamba-ssm's selective scan against ours.

Run ``python benchmarks/gpu.py machine models scan`` on a machine with a CUDA device
(``--device cpu --quick`` runs the same code on the CPU as a smoke test). Prints markdown
tables; asserts nothing. The sections, in the order given:

* ``machine``: the GPU, its memory, the driver, torch and CUDA versions, the CPU count.
* ``models``: each model at ``--batch`` (64) with fresh weights and a 2-class head.
  *Inference* under ``torch.inference_mode`` in four ways: fp32 (TF32 off; its first windows
  are checked against the same model on the CPU, at most 1e-4), fp32 with TF32 matrix products,
  bf16 and fp16 autocast (the share of windows whose argmax agrees with fp32). *Training* as
  ``biofound finetune`` runs it: :func:`biofound_cli.training.loop.fit` on in-memory windows in
  fp32, bf16 and fp16 (with its gradient scaler), against the **reference** step in the same
  run: a bare eager fp32 step with torch's default AdamW, as the upstream training code takes
  it. FEMBA runs whichever scan the process has (ours unless mamba-ssm imports).
* ``build-mamba SRC``: builds mamba-ssm's ``selective_scan_cuda`` extension from an unpacked
  mamba-ssm source tree, for the present GPU's architecture only, with
  ``torch.utils.cpp_extension.load`` and mamba-ssm's own compiler flags. mamba-ssm's
  ``setup.py`` builds every architecture from sm_75 to sm_121 (an hour of compiling); one
  takes minutes.
* ``scan``: with mamba-ssm importable (``--mamba-build DIR``, the folder ``build-mamba`` wrote),
  at FEMBA-base's Mamba shape (the arguments its first block passes, captured): mamba-ssm's
  fused ``selective_scan_fn`` against our pure-PyTorch scan, forward and forward + backward,
  fp32 and bf16, each checked against :func:`selective_scan_reference` in float64; then
  FEMBA-base inference and fit steps with each scan.

Times are CUDA-event medians of ``--repeats`` calls after two untimed ones (on the CPU,
``perf_counter``). A fit step's time runs from one ``on_step`` callback to the next, with the
device synchronised in the callback.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import build_inputs  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
from train import Setup, WindowDataset  # noqa: E402

DEFAULT_MODELS = ("femba-tiny", "femba-base", "luna-base", "tinymyo")
FP32_TOLERANCE = 1e-4
PARITY_WINDOWS = 4


def rate(per_second: float) -> str:
    """Windows per second: whole numbers with thousands separators, three figures under 100."""
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.3g}"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(work: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median time of ``work()`` over ``repeats`` calls after two untimed ones."""
    for _ in range(2):
        work()
    synchronize(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            work()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            began = time.perf_counter()
            work()
            times.append(time.perf_counter() - began)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------
# machine
# ---------------------------------------------------------------------------------------------


def machine(device: torch.device) -> None:
    """Print what the numbers were taken on."""
    print(f"- torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}")
    print(f"- CPU: {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        print(f"- GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs, "
              f"compute capability {props.major}.{props.minor}")  # fmt: skip
        query = ["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit", "--format=csv,noheader"]
        smi = subprocess.run(query, capture_output=True, text=True)
        print(f"- nvidia-smi: driver, max SM clock, power limit = {smi.stdout.strip() or smi.stderr.strip()}")
    print()


# ---------------------------------------------------------------------------------------------
# models: inference
# ---------------------------------------------------------------------------------------------


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def inference_ways(device: torch.device) -> dict[str, tuple[torch.dtype | None, bool]]:
    """Way name → (autocast dtype, TF32 matrix products)."""
    ways: dict[str, tuple[torch.dtype | None, bool]] = {"fp32": (None, False)}
    if device.type == "cuda":
        ways["fp32 + TF32"] = (None, True)
        ways["fp16"] = (torch.float16, False)
    ways["bf16"] = (torch.bfloat16, False)
    return ways


def inference_rows(name: str, device: torch.device, batch: int, repeats: int) -> list[str]:
    """One table row per way of running the model forward."""
    model, inputs = build_inputs(name, batch)
    with torch.inference_mode():
        on_cpu = model(*(t[:PARITY_WINDOWS] if torch.is_tensor(t) else t for t in inputs))[0].float()
    model = model.to(device)
    inputs = tuple(t.to(device) if torch.is_tensor(t) else t for t in inputs)
    rows, baseline, reference = [], None, None
    for way, (dtype, tf32) in inference_ways(device).items():
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32

        def forward(dtype: torch.dtype | None = dtype) -> torch.Tensor:
            with torch.inference_mode(), _autocast(device, dtype):
                return model(*inputs)[0]

        output = forward().float()
        if reference is None:
            reference = output
            diff = (output[:PARITY_WINDOWS].cpu() - on_cpu).abs().max().item()
            check = f"vs CPU: max abs diff {diff:.1e} ({'ok' if diff <= FP32_TOLERANCE else 'FAILS'})"
        else:
            same = (output.argmax(-1) == reference.argmax(-1)).float().mean().item()
            check = f"argmax agrees {same:.0%}, max abs diff {(output - reference).abs().max().item():.1e}"
        seconds = median_seconds(forward, device, repeats)
        baseline = baseline or seconds
        rows.append(f"| {name} | inference {way} | {rate(batch / seconds)} | {seconds * 1e3:.1f} | "
                    f"**{baseline / seconds:.2f}×** | {check} |")  # fmt: skip
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    return rows


# ---------------------------------------------------------------------------------------------
# models: training
# ---------------------------------------------------------------------------------------------


def reference_step_seconds(setup: Setup, device: torch.device, repeats: int) -> tuple[float, float]:
    """(median seconds, first loss) of a bare eager fp32 step with torch's default AdamW, as upstream trains."""
    model = copy.deepcopy(setup.model).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    moved = copy.copy(setup)
    moved.model = model
    moved.locations = None if setup.locations is None else setup.locations.to(device)
    x, y = setup.x[: setup.batch_size].to(device), setup.y[: setup.batch_size].to(device)
    losses = []

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(moved.logits(x).float(), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())

    seconds = median_seconds(step, device, repeats)
    return seconds, losses[0].item()


def fit_step_seconds(setup: Setup, device: torch.device, precision: str, steps: int) -> tuple[float, float]:
    """(median seconds of a step after the first, first loss) of ``fit`` in ``precision`` on a copy of the model."""
    from biofound_cli.recipes.training import OptimSection, TrainSection
    from biofound_cli.training.distributed import DistributedContext
    from biofound_cli.training.loop import TrainingJob, fit
    from biofound_cli.training.run_folder import RunFolder

    total = steps + 2
    job = TrainingJob(
        model=copy.deepcopy(setup.model),
        objective=setup.objective,
        train_set=WindowDataset(setup.x, setup.y),
        val_set=None,
        optim=OptimSection(lr=1e-4, weight_decay=0.05, warmup_steps=0, grad_clip=None),
        train=TrainSection(max_steps=total, precision=precision, device=device.type, checkpoint_every=total,
                           keep_checkpoints=1, log_every=1),
        batch_size=setup.batch_size,
    )  # fmt: skip
    stamps: list[float] = []

    def on_step(step: int) -> None:
        synchronize(device)
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="biofound-bench-gpu-") as folder:
        fit(job, RunFolder(Path(folder) / "run"), context=DistributedContext(device=device), on_step=on_step)
        first_loss = _first_logged_loss(Path(folder) / "run")
    durations = [later - earlier for earlier, later in zip(stamps, stamps[1:], strict=False)]
    return statistics.median(durations[1:] or durations), first_loss


def _first_logged_loss(run: Path) -> float:
    import json

    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            return float(record["loss"])
    return float("nan")


def training_rows(name: str, device: torch.device, batch: int, repeats: int) -> list[str]:
    """The reference step, then fit in each precision the device has, as table rows."""
    setup = Setup(name, batch, n_batches=max(repeats + 2, 4))
    reference, reference_loss = reference_step_seconds(setup, device, repeats)
    rows = [f"| {name} | train reference fp32 (bare, default AdamW) | {rate(batch / reference)} | "
            f"{reference * 1e3:.1f} | **1.00×** | first loss {reference_loss:.4f} |"]  # fmt: skip
    precisions = ("fp32", "bf16", "fp16") if device.type == "cuda" else ("fp32", "bf16")
    for precision in precisions:
        try:
            seconds, loss = fit_step_seconds(setup, device, precision, repeats)
        except Exception as error:  # a precision a model cannot train in is a finding, not a crash
            rows.append(f"| {name} | train fit {precision} | failed: {str(error).splitlines()[0][:120]} | - | - | - |")
            continue
        rows.append(f"| {name} | train fit {precision} | {rate(batch / seconds)} | {seconds * 1e3:.1f} | "
                    f"**{reference / seconds:.2f}×** | first loss {loss:.4f} |")  # fmt: skip
    return rows


def models(device: torch.device, names: list[str], batch: int, repeats: int) -> None:
    """Print the inference and training table."""
    print(f"Models on {device.type}, batch {batch}, median of {repeats} calls; ratios against the first row "
          "of each part (inference: fp32; training: the reference step)\n")  # fmt: skip
    print("| model | way | windows/s | ms / batch | × baseline, same run | check |")
    print("|---|---|---|---|---|---|", flush=True)
    for name in names:
        for part in (inference_rows, training_rows):
            try:
                rows = part(name, device, batch, repeats)
            except Exception as error:
                rows = [f"| {name} | {part.__name__} | failed: {type(error).__name__}: {str(error).splitlines()[0][:160]} "
                        "| - | - | - |"]  # fmt: skip
            print("\n".join(rows), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print()


# ---------------------------------------------------------------------------------------------
# mamba-ssm
# ---------------------------------------------------------------------------------------------


def build_mamba(source: Path, build_dir: Path) -> None:
    """Compile mamba-ssm's ``selective_scan_cuda`` for this GPU only, with mamba-ssm's nvcc flags."""
    from torch.utils.cpp_extension import load

    major, minor = torch.cuda.get_device_capability()
    os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
    csrc = source / "csrc" / "selective_scan"
    kinds = ["fwd_fp32", "fwd_fp16", "fwd_bf16"] + [f"bwd_{t}_{k}" for t in ("fp32", "fp16", "bf16") for k in ("real", "complex")]
    build_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load(
        name="selective_scan_cuda",
        sources=[str(csrc / "selective_scan.cpp"), *(str(csrc / f"selective_scan_{kind}.cu") for kind in kinds)],
        extra_include_paths=[str(csrc)],
        extra_cflags=["-O3", "-std=c++17"],
        extra_cuda_cflags=[
            "-O3",
            "-std=c++17",
            "-U__CUDA_NO_HALF_OPERATORS__",
            "-U__CUDA_NO_HALF_CONVERSIONS__",
            "-U__CUDA_NO_BFLOAT16_OPERATORS__",
            "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
            "-U__CUDA_NO_BFLOAT162_OPERATORS__",
            "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
            "--expt-relaxed-constexpr",
            "--expt-extended-lambda",
            "--use_fast_math",
        ],  # fmt: skip
        build_directory=str(build_dir),
        verbose=True,
    )
    print(f"built selective_scan_cuda for sm_{major}{minor} in {time.perf_counter() - started:.0f} s")


def import_mamba(source: Path, build_dir: Path) -> Callable[..., torch.Tensor]:
    """mamba-ssm's ``selective_scan_fn`` from its source tree and the extension ``build_mamba`` built.

    ``mamba_ssm/__init__.py`` imports every module (Mamba2, Mamba3, the language model); a
    package stub with the real path imports the selective-scan interface alone.
    """
    sys.path.insert(0, str(build_dir))
    package = types.ModuleType("mamba_ssm")
    package.__path__ = [str(source / "mamba_ssm")]  # type: ignore[attr-defined]
    sys.modules["mamba_ssm"] = package
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    return selective_scan_fn


def captured_scan_arguments(device: torch.device, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments FEMBA-base's first Mamba block passes to the selective scan, at batch ``batch``."""
    from biofound_cli.models import mamba

    captured: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    real = mamba.selective_scan

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        if not captured:
            kept = {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in kwargs.items()}
            captured.append((tuple(a.detach().clone() for a in args), kept))
        return real(*args, **kwargs)

    model, inputs = build_inputs("femba-base", batch)
    model = model.to(device)
    mamba.selective_scan = spy
    try:
        with torch.no_grad():
            model(*(t.to(device) for t in inputs))
    finally:
        mamba.selective_scan = real
    return captured[0]


def using_scan(fused: Callable[..., torch.Tensor] | None) -> Any:
    """A context in which ``selective_scan`` on CUDA runs ``fused`` (None: our pure-PyTorch scan)."""
    from contextlib import contextmanager

    from biofound_cli.models import selective_scan as scan_module

    @contextmanager
    def swapped():
        kept = scan_module._mamba_ssm_scan
        scan_module._mamba_ssm_scan = fused
        try:
            yield
        finally:
            scan_module._mamba_ssm_scan = kept

    return swapped()


def scan_rows(device: torch.device, batch: int, repeats: int, fused: Callable[..., torch.Tensor] | None) -> list[str]:
    """The two scans, forward and forward + backward, fp32 and bf16, with their error against float64."""
    from biofound_cli.models.selective_scan import selective_scan_reference

    args, kwargs = captured_scan_arguments(device, batch)
    reference = selective_scan_reference(*_first_windows(args, 2, torch.float64), **_narrow(kwargs, 2, torch.float64))
    scans = {"ours (pure PyTorch)": None, "mamba-ssm selective_scan_fn": fused} if fused else {"ours (pure PyTorch)": None}
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        # Inputs in dtype, A, D and the bias in fp32: what FEMBA passes under autocast.
        typed = tuple(a.to(dtype) if a.dim() == 3 else a for a in args)
        typed_kwargs = {k: v.to(dtype) if torch.is_tensor(v) and v.dim() == 3 else v for k, v in kwargs.items()}
        for label, scan in scans.items():
            with using_scan(scan):
                forward, backward, error = _time_scan(typed, typed_kwargs, reference, device, repeats)
            dtype_name = str(dtype).removeprefix("torch.")
            rows.append(f"| {label} | {dtype_name} | {forward * 1e3:.2f} | {backward * 1e3:.2f} | {error:.1e} |")
    return rows


def _time_scan(
    args: tuple[torch.Tensor, ...], kwargs: dict[str, Any], reference: torch.Tensor, device: torch.device, repeats: int
) -> tuple[float, float, float]:
    """(forward seconds, forward + backward seconds, relative error on 2 windows) of ``selective_scan``."""
    from biofound_cli.models.selective_scan import selective_scan

    out = selective_scan(*_first_windows(args, 2, None), **_narrow(kwargs, 2, None)).double()
    error = ((out - reference).norm() / reference.norm()).item()
    forward = median_seconds(lambda: selective_scan(*args, **kwargs), device, repeats)
    leaves = tuple(a.clone().requires_grad_(a.dim() == 3) for a in args)
    backward = median_seconds(lambda: selective_scan(*leaves, **kwargs).float().sum().backward(), device, repeats)
    return forward, backward, error


def _first_windows(tensors: tuple[torch.Tensor, ...], windows: int, dtype: torch.dtype | None) -> tuple[torch.Tensor, ...]:
    """The batch-first (3-d) tensors cut to their first ``windows``; all optionally cast."""
    cut = (t[:windows] if t.dim() == 3 else t for t in tensors)
    return tuple(t.to(dtype) if dtype is not None else t for t in cut)


def _narrow(kwargs: dict[str, Any], windows: int, dtype: torch.dtype | None) -> dict[str, Any]:
    """:func:`_first_windows` on the tensor values of ``kwargs``."""
    return {k: _first_windows((v,), windows, dtype)[0] if torch.is_tensor(v) else v for k, v in kwargs.items()}


def scan(device: torch.device, batch: int, repeats: int, mamba_build: Path | None, mamba_source: Path | None) -> None:
    """Print the scan table and FEMBA-base with each scan."""
    fused, why = None, "no --mamba-build given"
    if mamba_build is not None and mamba_source is not None:
        try:
            fused = import_mamba(mamba_source, mamba_build)
        except Exception as error:
            why = f"{type(error).__name__}: {error}"
    print(f"mamba-ssm: {'imported' if fused else 'not available (' + why + ')'}\n")
    print(f"Selective scan at FEMBA-base's shape, batch {batch}, median of {repeats} calls\n")
    print("| scan | input dtype | forward ms | forward + backward ms | ‖out − float64 ref‖ / ‖ref‖ (2 windows) |")
    print("|---|---|---|---|---|", flush=True)
    print("\n".join(scan_rows(device, batch, repeats, fused)), flush=True)
    print()
    if fused is None:
        return
    print(f"FEMBA-base with each scan, batch {batch}; ratios against our scan's fp32 row of the same part\n")
    print("| scan | way | windows/s | ms / batch | × baseline, same run | check |")
    print("|---|---|---|---|---|---|", flush=True)
    for label, chosen in (("ours", None), ("mamba-ssm", fused)):
        with using_scan(chosen):
            rows = inference_rows("femba-base", device, batch, repeats) + training_rows("femba-base", device, batch, repeats)
        print("\n".join(row.replace("| femba-base |", f"| {label} |", 1) for row in rows), flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="+", choices=("machine", "models", "build-mamba", "scan"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", help=f"comma-separated registry names (default {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--mamba-source", type=Path, help="an unpacked mamba-ssm source tree (sdist)")
    parser.add_argument("--mamba-build", type=Path, help="the folder build-mamba writes and scan imports from")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 2, 2 repeats, the small models by default")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.repeats = 2, 2
    args.models = args.models or ("femba-tiny,tinymyo" if args.quick else ",".join(DEFAULT_MODELS))
    device = torch.device(args.device)
    for section in args.sections:
        if section == "machine":
            machine(device)
        elif section == "models":
            models(device, args.models.split(","), args.batch, args.repeats)
        elif section == "build-mamba":
            build_mamba(args.mamba_source, args.mamba_build)
        else:
            scan(device, args.batch, args.repeats, args.mamba_build, args.mamba_source)


if __name__ == "__main__":
    main()
