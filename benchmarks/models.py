"""Inference speed of FEMBA, LUNA and TinyMyo on the CPU: every fast path against our eager fp32, same run.

Run ``python benchmarks/models.py`` (``--quick`` for a smoke run, ``--no-compile`` to skip
``torch.compile``'s minutes of compiling on two cores). Prints a markdown table; asserts nothing.

Each model runs in a fresh subprocess (so its peak resident memory, ``ru_maxrss``, is its own)
with freshly initialised weights and a classification head, batch 8, under
``torch.inference_mode``. The ways to run it:

* **eager fp32**: the plain model, the baseline every ratio is quoted against. Our eager LUNA
  and TinyMyo run the same operators as the upstream code, op for op (profiled), so this is a
  fair same-run stand-in for it;
* **eager bf16**: the same under ``torch.autocast("cpu", torch.bfloat16)``;
* **compiled fp32 / bf16**: :func:`biofound_cli.models.compiled.compile_model` (inductor with
  ``freezing``), the path ``train.compile = true`` gives ``biofound evaluate``;
* FEMBA only, **reference scan fp32**: our model with its selective scan swapped for the
  step-by-step reference scan (mamba-ssm's ``selective_scan_ref`` design, which is what the
  upstream code runs on a CPU), so FEMBA also gets a same-run ratio against upstream's design.

Every way runs once untimed (compiling, where it compiles), its output is checked against eager
fp32 in the same run (fp32: largest absolute difference, at most 1e-4; bf16: the share of
windows whose argmax agrees), then the ways take turns for ``--rounds`` rounds, each timing one
batch; a way's time is its fastest round, since load from other processes only ever adds time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from contextlib import nullcontext
from typing import Any, Callable

DEFAULT_MODELS = ("femba-base", "luna-base", "tinymyo")
BASELINE = "eager fp32"
FP32_TOLERANCE = 1e-4


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


def reference_scan():
    """A context in which FEMBA's Mamba blocks run the step-by-step reference scan (upstream's design)."""
    from contextlib import contextmanager

    from biofound_cli.models import mamba
    from biofound_cli.models.selective_scan import selective_scan_reference

    @contextmanager
    def swapped():
        fast = mamba.selective_scan
        mamba.selective_scan = selective_scan_reference
        try:
            yield
        finally:
            mamba.selective_scan = fast

    return swapped()


def runners(name: str, model: Any, compile_: bool) -> dict[str, Callable[[], Any]]:
    """The ways to run the model, by name; each a function of no arguments giving the model's call context."""
    import torch

    from biofound_cli.models.compiled import compile_model

    def bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)

    ways: dict[str, tuple[Any, Callable[[], Any]]] = {BASELINE: (model, nullcontext), "eager bf16": (model, bf16)}
    if compile_:
        ways["compiled fp32"] = (compile_model(model, inference=True), nullcontext)
        ways["compiled bf16"] = (compile_model(model, inference=True), bf16)
    if name.startswith("femba"):
        ways["reference scan fp32"] = (model, reference_scan)
    return ways  # type: ignore[return-value]


def _agreement(reference: Any, output: Any, precision_fp32: bool) -> str:
    if precision_fp32:
        diff = (output.float() - reference).abs().max().item()
        verdict = "ok" if diff <= FP32_TOLERANCE else "FAILS"
        return f"max abs diff {diff:.1e} ({verdict})"
    same = (output.float().argmax(-1) == reference.argmax(-1)).float().mean().item()
    return f"argmax agrees {same:.0%}"


def measure(name: str, batch_size: int, rounds: int, threads: int, compile_: bool) -> list[dict[str, Any]]:
    """Warm up and check every way, then time them in turns; runs inside the child process."""
    import torch

    torch.set_num_threads(threads)
    model, inputs = build_inputs(name, batch_size)
    resident_mb = _peak_rss_mb()
    ways = runners(name, model, compile_)
    rows: dict[str, dict[str, Any]] = {}
    with torch.inference_mode():
        reference = model(*inputs)[0].float()
        for way, (module, context) in ways.items():
            start = time.perf_counter()
            with context():
                output = module(*inputs)[0]
            failed = getattr(module, "failed", False)
            rows[way] = {
                "way": way,
                "warm_up_seconds": time.perf_counter() - start,
                "parity": "compile failed, ran eagerly" if failed else _agreement(reference, output, "fp32" in way),
                "best": float("inf"),
            }
        for _ in range(rounds):
            for way, (module, context) in ways.items():
                with context():
                    start = time.perf_counter()
                    module(*inputs)
                    rows[way]["best"] = min(rows[way]["best"], time.perf_counter() - start)
    for row in rows.values():
        row["ratio"] = rows[BASELINE]["best"] / row["best"]
        row["windows_per_second"] = batch_size / row["best"]
        row["resident_mb"], row["peak_mb"] = resident_mb, _peak_rss_mb()
    return list(rows.values())


def run_child(name: str, args: argparse.Namespace) -> list[dict[str, Any]] | str:
    """The child's rows, or the last line of its error output if it failed."""
    command = [
        sys.executable, __file__, "--child", name, "--batch", str(args.batch), "--rounds", str(args.rounds),
        "--threads", str(args.threads), *(["--no-compile"] if args.no_compile else []),
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
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds; the fastest counts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 1, one round, no compiling")
    parser.add_argument("--child", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.batch, args.rounds, args.no_compile = 1, 1, True
    if args.child:
        print(json.dumps(measure(args.child, args.batch, args.rounds, args.threads, not args.no_compile)))
        return

    print(
        f"Model inference, CPU, batch {args.batch}, {args.threads} threads, fastest of {args.rounds} "
        f"alternating rounds after one untimed call; fresh weights, 2-class head\n"
    )
    print(
        "| model | input | way | windows/s | ms / batch | × eager fp32, same run | output vs eager fp32 "
        "| first call (s) | peak RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    from biofound_cli.models import get_variant

    for name in args.models.split(","):
        variant = get_variant(name)
        shape = f"{variant.n_channels or 22}x{variant.n_times}"
        rows = run_child(name, args)
        if isinstance(rows, str):
            print(f"| {name} | {shape} | - | failed: {rows} | - | - | - | - | - |", flush=True)
            continue
        for row in rows:
            print(
                f"| {name} | {shape} | {row['way']} | {row['windows_per_second']:.2f} | {row['best'] * 1e3:.0f} | "
                f"**{row['ratio']:.2f}×** | {row['parity']} | {row['warm_up_seconds']:.1f} | {row['peak_mb']:.0f} |",
                flush=True,
            )
    print(
        "\n× eager fp32: the eager fp32 batch time divided by this way's, both the fastest of the same "
        "alternating rounds. For FEMBA, eager fp32 / reference scan fp32 is the speed-up over the upstream "
        "design. first call: the untimed first batch, compiling included."
    )


if __name__ == "__main__":
    main()
