"""Inference speed and peak memory of FEMBA, LUNA and TinyMyo on the CPU, float32 and bfloat16.

Run ``python benchmarks/models.py`` (``--quick`` for a smoke run). Prints a markdown table;
asserts nothing.

Each (model, precision) pair runs in a fresh subprocess so that its peak resident memory
(``ru_maxrss``) belongs to that pair alone: ``tracemalloc`` does not see torch's allocations.
The child builds the model with freshly initialised weights and a classification head, records
its resident memory, runs one untimed warm-up batch and then ``--repeats`` timed batches under
``torch.inference_mode`` (bfloat16: ``torch.autocast("cpu")``), and reports the best time, since
load from other processes on a shared machine only ever adds time.

Inputs are the published shapes: FEMBA and LUNA 22 TCP bipolar channels x 1280 samples
(5 s at 256 Hz), TinyMyo 16 channels x 1000 samples (0.5 s at 2 kHz).

The last column quotes the upstream code's speed from ``/work/shared/BASELINES.md``: measured
on another machine of the same kind, for context only; it is not a baseline run alongside.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

DEFAULT_MODELS = ("femba-base", "luna-base", "tinymyo")
PRECISIONS = ("fp32", "bf16")
# Upstream BioFoundation code, CPU, batch 8, 2 threads (BASELINES.md), windows/s.
UPSTREAM_WINDOWS_PER_SECOND = {
    ("luna-base", "fp32"): 184.0,
    ("luna-base", "bf16"): 210.0,
    ("tinymyo", "fp32"): 12.6,
    ("tinymyo", "bf16"): 17.9,
    ("femba-base", "fp32"): 2.1,
    ("femba-base", "bf16"): 2.2,
}


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_inputs(name: str, batch_size: int):
    """The model ``name`` with a 2-class head, and the positional arguments of one forward call."""
    import torch

    from biofound_cli.models import create_model, get_variant

    variant = get_variant(name)
    torch.manual_seed(0)
    model = create_model(name, task="mcc", num_classes=2).eval()
    n_channels = variant.n_channels or 22
    x = torch.randn(batch_size, n_channels, variant.n_times)
    if variant.family == "luna":
        from biofound_cli.signals.electrodes import channel_positions
        from biofound_cli.signals.montage import TCP_PAIRS

        ch_names = [f"{anode}-{cathode}" for anode, cathode in TCP_PAIRS]
        locations = torch.as_tensor(channel_positions(ch_names), dtype=torch.float32)
        # mask=None is evaluation mode: no location jitter.
        return model, (x, None, locations.expand(batch_size, -1, -1))
    return model, (x, torch.zeros_like(x, dtype=torch.bool))


def measure(name: str, precision: str, batch_size: int, repeats: int, threads: int) -> dict[str, float]:
    """Time ``repeats`` forward passes of one batch; runs inside the child process."""
    import torch

    torch.set_num_threads(threads)
    model, inputs = build_inputs(name, batch_size)
    resident_mb = _peak_rss_mb()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    best = float("inf")
    with torch.inference_mode(), autocast:
        model(*inputs)
        for _ in range(repeats):
            start = time.perf_counter()
            model(*inputs)
            best = min(best, time.perf_counter() - start)
    return {
        "windows_per_second": batch_size / best,
        "batch_seconds": best,
        "resident_mb": resident_mb,
        "peak_mb": _peak_rss_mb(),
    }


def run_child(name: str, precision: str, args: argparse.Namespace) -> dict[str, float] | str:
    """The child's measurements, or the last line of its error output if it failed."""
    command = [
        sys.executable, __file__, "--child", name, precision,
        "--batch", str(args.batch), "--repeats", str(args.repeats), "--threads", str(args.threads),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
        return lines[-1].replace("|", "/")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated registry names")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 1, one timed call")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.batch, args.repeats = 1, 1
    if args.child:
        print(json.dumps(measure(*args.child, args.batch, args.repeats, args.threads)))
        return

    print(
        f"Model inference, CPU, batch {args.batch}, {args.threads} threads, best of {args.repeats} "
        f"after one warm-up; fresh weights, 2-class head\n"
    )
    print(
        "| model | input | precision | windows/s | ms / batch | model RSS (MiB) | peak RSS (MiB) "
        "| upstream windows/s, measured elsewhere |"
    )
    print("|---|---|---|---|---|---|---|---|")
    from biofound_cli.models import get_variant

    for name in args.models.split(","):
        variant = get_variant(name)
        shape = f"{variant.n_channels or 22}x{variant.n_times}"
        for precision in PRECISIONS:
            row = run_child(name, precision, args)
            upstream = UPSTREAM_WINDOWS_PER_SECOND.get((name, precision))
            if isinstance(row, str):
                print(f"| {name} | {shape} | {precision} | failed: {row} | - | - | - | {upstream or '-'} |", flush=True)
                continue
            print(
                f"| {name} | {shape} | {precision} | {row['windows_per_second']:.2f} | "
                f"{row['batch_seconds'] * 1e3:.0f} | {row['resident_mb']:.0f} | {row['peak_mb']:.0f} | "
                f"{upstream if upstream is not None else '-'} |",
                flush=True,
            )
    print(
        "\nmodel RSS: the process after building the model and its input; peak RSS: its high-water "
        "mark after the timed calls (activations and workspace on top)."
    )


if __name__ == "__main__":
    main()
