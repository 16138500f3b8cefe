"""Run every benchmark and write their results, with the machine they ran on, to one markdown file.

Usage::

    python benchmarks/run_all.py                 # full runs, writes benchmarks/RESULTS.md
    python benchmarks/run_all.py --quick         # smoke-sized runs, a minute or two
    python benchmarks/run_all.py --only scan,models --out /tmp/results.md

Each benchmark runs as its own subprocess (so one's memory and threads never colour another's)
and prints markdown; this script adds a summary table and the machine description. ``--quick``
passes ``--quick`` to the benchmarks that have it and small sizes to those that take sizes
instead. It asserts nothing about speed; it exits 1 if a benchmark itself failed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, arguments of a full run, arguments of a quick run). scan, loader, pack_layout and
# preprocess take sizes, not --quick.
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "scan": ("scan.py", [], ["--d-inner", "512", "--repeats", "2"]),
    "loader": ("loader.py", [], ["--windows", "512"]),
    "pack_layout": ("pack_layout.py", [], ["--windows", "1024", "--repeats", "1"]),
    "models": ("models.py", [], ["--quick"]),
    "train": ("train.py", [], ["--quick"]),
    "train_fast_paths": ("train.py", ["--fast-paths"], ["--quick", "--fast-paths", "--no-compile"]),
    "preprocess": ("preprocess.py", [], ["--recordings", "2", "--minutes", "1", "--workers", "2", "--repeats", "1"]),
    "predict": ("predict.py", [], ["--quick"]),
    "predict_startup": ("predict_startup.py", [], ["--rounds", "1", "--recordings", "1", "--windows", "2"]),
    "bootstrap": ("bootstrap.py", [], ["--quick"]),
}


def describe_machine() -> dict[str, str]:
    """CPU model, cores, memory, load, Python and torch versions, date; without importing torch."""
    cpu = platform.processor() or platform.machine()
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:  # not Linux: keep what platform reports
        pass
    torch_version = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "load average at start (1, 5, 15 min)": load,
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "torch": torch_version or "not importable",
        "git commit": commit.stdout.strip() if commit.returncode == 0 else "unknown",
    }


def run_benchmark(script: str, arguments: list[str]) -> tuple[int, float, str, str]:
    """Run one benchmark script; return its exit status, wall seconds, stdout and stderr."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(HERE / script), *arguments], capture_output=True, text=True)
    return result.returncode, time.perf_counter() - start, result.stdout, result.stderr


def as_markdown(text: str) -> str:
    """Benchmark output as markdown: tables stay tables, plain lines go in a code block."""
    text = text.strip()
    if "|---" in text:
        return text
    return f"```\n{text}\n```"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
    os.replace(handle.name, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke-sized runs of every benchmark")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="markdown file to write")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")

    machine = describe_machine()
    summary, sections, failed = [], [], []
    for name in names:
        script, full_arguments, quick_arguments = BENCHMARKS[name]
        arguments = quick_arguments if args.quick else full_arguments
        command = shlex.join(["python", f"benchmarks/{script}", *arguments])
        print(f"running {command} ...", file=sys.stderr, flush=True)
        status, seconds, stdout, stderr = run_benchmark(script, arguments)
        print(f"  {name}: exit {status} after {seconds:.0f} s", file=sys.stderr, flush=True)
        summary.append(f"| {name} | `{command}` | {'ok' if status == 0 else f'failed (exit {status})'} | {seconds:.0f} |")
        body = as_markdown(stdout) if stdout.strip() else "(no output)"
        if status != 0:
            failed.append(name)
            tail = "\n".join(stderr.strip().splitlines()[-15:])
            body += f"\n\nThe benchmark failed; the end of its error output:\n\n```\n{tail}\n```"
        sections.append(f"## {name}\n\n`{command}`\n\n{body}\n")

    kind = "quick smoke-sized runs (`--quick`): sizes are not the published ones" if args.quick else "full runs"
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python benchmarks/run_all.py{' --quick' if args.quick else ''}`: {kind}. "
        "On a shared machine absolute times are noisy; quote the ratios, each measured against a "
        "baseline run alongside.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine.items()),
        "",
        "| benchmark | command | status | wall (s) |",
        "|---|---|---|---|",
        *summary,
        "",
        *sections,
    ]
    write_atomic(args.out, "\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
