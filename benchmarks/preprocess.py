"""Preprocess + pack against a baseline that mimics the reference pipeline.

The corpus is a TUAB-layout tree of synthetic EDF files (default 20 recordings × 10 min at
250 Hz, 21 referential channels plus one extra). Three pipelines turn it into train/val/test HDF5:

* **biofound (mne, default)**: ``biofound preprocess tuab`` (one float32 shard per recording)
  then ``biofound pack`` (subject-disjoint split files), each run as a user runs it, a
  ``python -m biofound_cli`` process (start-up and imports count), with the defaults, which
  reproduce the published data (MNE's resampling);
* **biofound (grid)**: the same with ``resample_method = "grid"`` (resampling onto the exact
  256 Hz grid, fused with the FIR);
* **baseline**: the reference design: a process pool writes one pickle per 5 s window
  (float64, MNE ``raw.filter`` / ``notch_filter`` / ``resample`` on the whole recording), then a
  serial pass loads every pickle and writes float64 HDF5 in groups of 1000 windows.

Each phase runs in its own process, which reports its wall time and peak resident memory (itself
and its workers); before each phase the earlier phases' writes are flushed to disk, untimed.
Processes run as from an installed package, with bytecode caches (the benchmark unsets
``PYTHONDONTWRITEBYTECODE`` and compiles the package first, as pip does at install). The
pipelines take turns ``--repeats`` times and each reports its fastest run. Three more processes
measure one worker's memory growth, for its first recording (over the idle worker, imports done)
and for a second one (over the worker after the first), against one recording's size in float32.
Prints windows/s per pipeline, the speed ratio and peak RSS; never asserts. ``--methods grid``
(or ``mne``) runs one biofound pipeline against the baseline and ``--no-memory`` skips the
memory processes, for quicker runs while iterating. Usage::

    python benchmarks/preprocess.py --recordings 20 --minutes 10 --workers 2 --repeats 3
    python benchmarks/preprocess.py --methods grid --repeats 1 --no-memory
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ELECTRODES = ("FP1 FP2 F3 F4 C3 C4 P3 P4 O1 O2 F7 F8 T3 T4 T5 T6 A1 A2 FZ CZ PZ").split()
TCP = [
    ("FP1", "F7"), ("F7", "T3"), ("T3", "T5"), ("T5", "O1"), ("FP2", "F8"), ("F8", "T4"), ("T4", "T6"), ("T6", "O2"),
    ("A1", "T3"), ("T3", "C3"), ("C3", "CZ"), ("CZ", "C4"), ("C4", "T4"), ("T4", "A2"),
    ("FP1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"), ("FP2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
]  # fmt: skip


def make_corpus(root: Path, n_recordings: int, minutes: float, sfreq: float = 250.0) -> Path:
    """Write a TUAB-layout tree of synthetic EDF files (1/f-like noise plus a 10 Hz rhythm and 60 Hz hum)."""
    import mne
    import numpy as np

    rng = np.random.default_rng(0)
    edf = root / "edf"
    n_samples = int(minutes * 60 * sfreq)
    t = np.arange(n_samples) / sfreq
    for index in range(n_recordings):
        split = "eval" if index % 5 == 4 else "train"
        label = "abnormal" if index % 2 else "normal"
        path = edf / split / label / "01_tcp_ar" / f"s{index:07d}_s001_t000.edf"
        path.parent.mkdir(parents=True, exist_ok=True)
        walk = np.cumsum(rng.normal(0, 1e-6, (len(ELECTRODES) + 1, n_samples)), axis=1)
        walk -= walk.mean(axis=1, keepdims=True)
        data = walk + 20e-6 * np.sin(2 * np.pi * 10 * t) + 5e-6 * np.sin(2 * np.pi * 60 * t)
        names = [f"EEG {name}-REF" for name in ELECTRODES] + ["EEG EKG1-REF"]
        raw = mne.io.RawArray(data, mne.create_info(names, sfreq, "eeg"), verbose="error")
        mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose="error")
    return edf


# -- baseline: the reference design ------------------------------------------------------------


def _baseline_one(job: tuple[str, str]) -> int:
    import mne
    import numpy as np

    path, out = job
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    raw.pick([f"EEG {name}-REF" for name in ELECTRODES])
    raw.filter(0.1, 75.0, verbose="error")
    raw.notch_filter(60.0, verbose="error")
    if int(raw.info["sfreq"]) != 256:
        raw.resample(256.0, verbose="error")
    data = raw.get_data(units="uV")
    row = {name: index for index, name in enumerate(ELECTRODES)}
    bipolar = np.stack([data[row[a]] - data[row[c]] for a, c in TCP])
    label = 1 if "/abnormal/" in path else 0
    split = "test" if "/eval/" in path else "train"
    folder = Path(out) / split
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(path).name.split(".")[0]
    n_windows = bipolar.shape[1] // 1280
    for index in range(n_windows):
        with open(folder / f"{stem}_{index}.pkl", "wb") as handle:
            pickle.dump({"X": bipolar[:, index * 1280 : (index + 1) * 1280], "y": label}, handle)
    return n_windows


def baseline_pickles(edf: Path, out: Path, workers: int) -> int:
    import multiprocessing

    jobs = [(str(path), str(out)) for path in sorted(edf.rglob("*.edf"))]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return sum(pool.imap_unordered(_baseline_one, jobs))


def baseline_pack(pickles: Path, out: Path) -> int:
    import h5py
    import numpy as np

    total = 0
    out.mkdir(parents=True, exist_ok=True)
    for split_folder in sorted(p for p in pickles.iterdir() if p.is_dir()):
        files = sorted(split_folder.glob("*.pkl"))
        with h5py.File(out / f"{split_folder.name}.h5", "w") as handle:
            for group_index, first in enumerate(range(0, len(files), 1000)):
                xs, ys = [], []
                for path in files[first : first + 1000]:
                    with open(path, "rb") as source:
                        item = pickle.load(source)
                    xs.append(item["X"])
                    ys.append(item["y"])
                group = handle.create_group(f"data_group_{group_index}")
                group.create_dataset("X", data=np.stack(xs))
                group.create_dataset("y", data=np.asarray(ys, dtype=np.int64))
                total += len(xs)
    return total


# -- biofound ----------------------------------------------------------------------------------


def biofound_preprocess(edf: Path, shards: Path, workers: int, resample_method: str = "mne") -> int:
    """``biofound preprocess tuab``, as a user runs it: a fresh CLI process (start-up and imports included)."""
    command = ["preprocess", "tuab", "--root", str(edf), "--out", str(shards), "--workers", str(workers)]
    if resample_method != "mne":
        command += ["--set", f"preprocess.resample_method={resample_method}"]
    return int(_biofound(command)["windows_written"])


def biofound_pack(shards: Path, packed: Path) -> int:
    """``biofound pack``, as a user runs it: a fresh CLI process."""
    _biofound(["pack", str(shards), "--out", str(packed)])
    return 0


def _biofound(arguments: list[str]) -> dict:
    """Run ``python -m biofound_cli ARGUMENTS --json`` and return its JSON summary (stdout)."""
    command = [sys.executable, "-m", "biofound_cli", *arguments, "--json"]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout)


def _worker_memory(edf: Path, work: Path, pipeline: str) -> dict:
    """One worker's memory growth for a first and then a second recording, as a pool worker sees them.

    ``first``: peak RSS while processing a recording, above the worker idle with its imports
    done; it includes what the first recording loads once per process (lazy imports, cached FFT
    plans and filter kernels, heap the allocator keeps). ``steady``: the same worker's peak while
    processing another recording, above its resident size just before once freed heap is handed
    back: what every later recording costs. The second needs Linux's resettable peak (``/proc/self/clear_refs``);
    elsewhere it is ``None``.
    """
    import h5py  # noqa: F401 - imported before the idle reading, as a pool worker has it
    import mne
    import numpy as np

    paths = sorted(edf.rglob("*.edf"))[:2]
    header = mne.io.read_raw_edf(paths[0], preload=False, verbose="error")
    recording_mb = len(header.ch_names) * header.n_times * np.dtype(np.float32).itemsize / 2**20
    if pipeline == "baseline":
        import scipy.signal  # noqa: F401 - MNE's filter design imports it

        def process(path: Path) -> None:
            _baseline_one((str(path), str(work / "memory-pickles")))
    else:
        import importlib

        from biofound_cli.corpora import get_corpus
        from biofound_cli.recipes.preprocess import PreprocessSection
        from biofound_cli.store.preprocess_config import resolve_chain_config
        from biofound_cli.store.preprocess_recording import process_recording
        from biofound_cli.store.worker_pool import WORKER_MODULES

        corpus = get_corpus("tuab")
        for module in (*WORKER_MODULES, *corpus.reader_modules):
            importlib.import_module(module)  # what a pool worker has before its first recording
        refs = {ref.path: ref for ref in corpus().discover(edf)}
        method = "grid" if pipeline == "biofound-grid" else "mne"
        config = resolve_chain_config(PreprocessSection(resample_method=method), corpus)

        def process(path: Path) -> None:
            process_recording("tuab", None, refs[path], config, str(work / "memory-shards"))

    idle = _maxrss_mb()
    process(paths[0])
    first = _maxrss_mb() - idle
    steady = None
    if len(paths) > 1 and _reset_peak():
        before = _status_mb("VmRSS")
        process(paths[1])
        steady = _maxrss_mb() - before
    return {"idle_mb": idle, "first_mb": first, "steady_mb": steady, "recording_float32_mb": recording_mb}


def _reset_peak() -> bool:
    """Hand freed heap back to the OS, then reset this process's VmHWM to its current RSS (Linux).

    Without the trim, the heap glibc keeps from the first recording would be reused by the
    second unseen, and its working set would look smaller than it is. False where either step
    is not possible.
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        _status_mb("VmRSS")
    except (OSError, AttributeError):
        return False
    return True


def _status_mb(field: str) -> float:
    """A ``kB`` field of ``/proc/self/status`` (Linux) in MB; raises OSError where there is none."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


def _maxrss_mb() -> float:
    """This process's peak RSS. VmHWM resets at exec, unlike ru_maxrss, which a child inherits."""
    try:
        return _status_mb("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


PHASES = {
    "baseline-pickles": lambda a: baseline_pickles(Path(a.edf), Path(a.work) / "pickles", a.workers),
    "baseline-pack": lambda a: baseline_pack(Path(a.work) / "pickles", Path(a.work) / "baseline"),
    "biofound-preprocess": lambda a: biofound_preprocess(Path(a.edf), Path(a.work) / "shards", a.workers),
    "biofound-pack": lambda a: biofound_pack(Path(a.work) / "shards", Path(a.work) / "packed"),
    "grid-preprocess": lambda a: biofound_preprocess(Path(a.edf), Path(a.work) / "grid-shards", a.workers, "grid"),
    "grid-pack": lambda a: biofound_pack(Path(a.work) / "grid-shards", Path(a.work) / "grid-packed"),
}
PIPELINES = {
    # name: (preprocess phase, pack phase), (folders written)
    "baseline": (("baseline-pickles", "baseline-pack"), ("pickles", "baseline")),
    "biofound (mne, default)": (("biofound-preprocess", "biofound-pack"), ("shards", "packed")),
    "biofound (grid)": (("grid-preprocess", "grid-pack"), ("grid-shards", "grid-packed")),
}


MEMORY_PHASES = {
    "baseline-worker-memory": lambda a: _worker_memory(Path(a.edf), Path(a.work), "baseline"),
    "biofound-worker-memory": lambda a: _worker_memory(Path(a.edf), Path(a.work), "biofound"),
    "biofound-grid-worker-memory": lambda a: _worker_memory(Path(a.edf), Path(a.work), "biofound-grid"),
}


def _method(pipeline: str) -> str:
    """``mne`` or ``grid`` for a biofound pipeline's name in :data:`PIPELINES`."""
    return "grid" if "grid" in pipeline else "mne"


def _memory_method(phase: str) -> str:
    """``baseline``, ``mne`` or ``grid`` for a phase of :data:`MEMORY_PHASES`."""
    return "baseline" if phase.startswith("baseline") else _method(phase)


def _run_phase(args: argparse.Namespace) -> None:
    if args.phase in MEMORY_PHASES:
        print(json.dumps(MEMORY_PHASES[args.phase](args)))
        return
    start = time.perf_counter()
    windows = PHASES[args.phase](args)
    seconds = time.perf_counter() - start
    # CPU seconds of this process and its workers: steadier than wall time on a shared machine.
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu_seconds = sum(u.ru_utime + u.ru_stime for u in usage)
    # ru_maxrss is in KiB on Linux: the largest of this process and of any worker it waited for.
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "windows": windows, "peak_rss_mb": peak / 1024}))


def _phase(name: str, edf: Path, work: Path, workers: int) -> dict:
    # Earlier phases' writes go to disk first, untimed, so that no phase pays for another's.
    os.sync()
    command = [sys.executable, __file__, "--phase", name, "--edf", str(edf), "--work", str(work), "--workers", str(workers)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _dir_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--repeats", type=int, default=3, help="runs per pipeline; the fastest is reported")
    parser.add_argument(
        "--methods",
        default="mne,grid",
        help="biofound pipelines to run, comma-separated: mne (the default method), grid; the baseline always runs",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the three worker-memory measurements")
    parser.add_argument("--phase", choices=sorted([*PHASES, *MEMORY_PHASES]), help=argparse.SUPPRESS)
    parser.add_argument("--edf", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _run_phase(args)
        return
    # As installed: pip compiles a package's bytecode at install time, so no run should pay for
    # compiling it (an environment with PYTHONDONTWRITEBYTECODE set would charge every process).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).parents[1] / "biofound_cli")], check=False)
    methods = {method.strip() for method in args.methods.split(",") if method.strip()}
    pipelines = {name: value for name, value in PIPELINES.items() if name == "baseline" or _method(name) in methods}
    with tempfile.TemporaryDirectory(prefix="biofound-bench-") as folder:
        work = Path(folder)
        # In a child process: ru_maxrss survives exec, so a big parent would inflate every phase's peak.
        make = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import preprocess; "
            f"preprocess.make_corpus(__import__('pathlib').Path({str(work / 'raw')!r}), {args.recordings}, {args.minutes})"
        )
        subprocess.run([sys.executable, "-c", make], check=True)
        edf = work / "raw" / "edf"
        print(
            f"corpus: {args.recordings} recordings x {args.minutes:g} min at 250 Hz, {_dir_mb(edf):.0f} MB of EDF; "
            f"workers={args.workers}"
        )
        # Pipelines take turns, so that a burst of load elsewhere hits them alike; each keeps its fastest run.
        runs: dict[str, list[dict[str, dict]]] = {name: [] for name in pipelines}
        for _ in range(args.repeats):
            for name, (parts, folders) in pipelines.items():
                for output in folders:
                    shutil.rmtree(work / output, ignore_errors=True)
                runs[name].append({part: _phase(part, edf, work, args.workers) for part in parts})
        best = {name: min(tries, key=lambda run: sum(phase["seconds"] for phase in run.values())) for name, tries in runs.items()}
        phases = {part: phase for run in best.values() for part, phase in run.items()}
        windows = next(phase["windows"] for part, phase in phases.items() if part.endswith("-preprocess"))
        print(f"fastest of {args.repeats} run(s) per pipeline:")
        for name, phase in phases.items():
            print(
                f"  {name:20s} {phase['seconds']:8.2f} s wall {phase['cpu_seconds']:8.2f} s CPU   "
                f"peak RSS {phase['peak_rss_mb']:8.0f} MB"
            )
        wall = {name: sum(phase["seconds"] for phase in run.values()) for name, run in best.items()}
        cpu = {name: sum(phase["cpu_seconds"] for phase in run.values()) for name, run in best.items()}
        for name, (_, folders) in pipelines.items():
            written = sum(_dir_mb(work / folder) for folder in folders)
            line = f"{name + ':':26s}{windows / wall[name]:8.1f} windows/s, {written:5.0f} MB written"
            if name != "baseline":
                line += f", speed-up {wall['baseline'] / wall[name]:.2f}x (CPU time {cpu['baseline'] / cpu[name]:.2f}x)"
            print(line)
        print(
            f"{windows} windows; speed-up: the baseline's wall time over the pipeline's, preprocess + pack; "
            'mne: resample_method = "mne", the published data; grid: resample_method = "grid"'
        )
        for name in [] if args.no_memory else [name for name in MEMORY_PHASES if _memory_method(name) in methods | {"baseline"}]:
            memory = _phase(name, edf, work, args.workers)
            size = memory["recording_float32_mb"]
            steady = memory["steady_mb"]
            steady_text = "n/a" if steady is None else f"+{steady:.0f} MB = {steady / size:.1f}x"
            print(
                f"{name}: idle {memory['idle_mb']:.0f} MB; first recording +{memory['first_mb']:.0f} MB = "
                f"{memory['first_mb'] / size:.1f}x, each later recording {steady_text} one recording in "
                f"float32 ({size:.1f} MB)"
            )


if __name__ == "__main__":
    main()
