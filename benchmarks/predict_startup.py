"""Whole-process cost of ``biofound predict`` with a TinyMyo checkpoint: what the model's imports add.

Run ``python benchmarks/predict_startup.py`` (``--rounds 1`` for a smoke run). Prints a markdown
table; asserts nothing.

Each round runs ``python -m biofound_cli predict`` as users run it (start-up, imports, reading,
the chain, the model, the tables and PNGs) on the same checkpoint and recordings twice, in turn:

* **as shipped**: the command itself;
* **FEMBA imported too**: the same command in a process that imports ``biofound_cli.models.femba``
  first, which is what predict and evaluate of a TinyMyo or LUNA checkpoint did before they found
  the model's family among the model files already imported (FEMBA's scan imports torch's compiler).

The user + system CPU time of each process (``RUSAGE_CHILDREN``) and its wall time are taken, and
the lowest of the rounds is kept: on a shared machine interference only ever adds time. The
checkpoint and recordings are ``benchmarks/predict.py``'s (fresh weights, an ``emg-csv`` chain).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from predict import make_checkpoint, write_recordings  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

ROOT = Path(__file__).resolve().parents[1]
WAYS = {
    "as shipped": "",
    "FEMBA imported too": "import biofound_cli.models.femba; ",
}


def run_once(prelude: str, arguments: list[str]) -> tuple[float, float]:
    """CPU seconds (user + system) and wall seconds of one ``biofound predict`` process."""
    code = f"{prelude}import runpy, sys; sys.argv[0] = 'biofound'; runpy.run_module('biofound_cli', run_name='__main__')"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", code, *arguments], check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tinymyo", help="a registry name of a family other than FEMBA")
    parser.add_argument("--recordings", type=int, default=5)
    parser.add_argument("--windows", type=int, default=9, help="windows per recording (its length)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the two ways")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        checkpoint = make_checkpoint(args.model, work)
        recordings = write_recordings(args.model, work, args.recordings, args.windows)
        arguments = ["predict", str(checkpoint), str(recordings), "--out", str(work / "out"), "--force", "--json"]
        best = {way: (float("inf"), float("inf")) for way in WAYS}
        for _ in range(args.rounds):
            for way, prelude in WAYS.items():
                cpu, wall = run_once(prelude, arguments)
                best[way] = (min(best[way][0], cpu), min(best[way][1], wall))
    shipped_cpu, shipped_wall = best["as shipped"]
    print(f"`biofound predict`, {args.model}, {args.recordings} recordings of {args.windows} windows, best of {args.rounds}\n")
    print("| way | CPU s | wall s | CPU / as shipped | wall / as shipped |")
    print("|---|---|---|---|---|")
    for way, (cpu, wall) in best.items():
        print(f"| {way} | {cpu:.2f} | {wall:.2f} | **{cpu / shipped_cpu:.2f}×** | {wall / shipped_wall:.2f}× |")


if __name__ == "__main__":
    main()
