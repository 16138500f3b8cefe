"""Throughput of ``biofound predict`` on the CPU: recordings/s and windows/s, PyTorch against onnxruntime.

Run ``python benchmarks/predict.py`` (``--quick`` for a smoke run). Prints a markdown table;
asserts nothing.

For each model family (``tinymyo``, ``femba-tiny``, ``luna-base`` at their registry sizes, with
a 2-class head and fresh weights), a checkpoint records an ``emg-csv`` chain (band-pass, 50 Hz
notch, z-scored windows of the model's length at its rate: 16 channels, 0.5 s at 2 kHz for
TinyMyo; 22 TCP channels, 5 s at 256 Hz for FEMBA and LUNA) and ``--recordings`` synthetic
recordings of ``--windows`` windows each are written as CSV files, the format of
``tests/unit/prediction/test_predict_shard.py``. The checkpoint is exported to ONNX with
:func:`biofound_cli.export.export_checkpoint`, so the same weights run through PyTorch (fp32,
``--precision bf16``, and with ``--compile`` compiled fp32 and bf16) and through onnxruntime, in
alternating rounds (load from other processes hits both alike); the fastest round is kept, since
on a shared machine interference only ever adds time. A round is:

* **end to end**: :func:`biofound_cli.prediction.run.run_predict` with ``workers=1`` and
  ``force=True`` (reading, the chain, the model, the tables, the PNGs and the summary), with the
  time spent inside the model's ``score`` calls summed (**model**);
* **preprocessing**: :func:`~biofound_cli.prediction.run.prepare_recording` on every recording
  again, alone (the reader and the chain, the code ``run_predict`` calls).

The rest of the end-to-end time is writing each recording's table and PNG and the summary.
The speed-up divides PyTorch fp32's end-to-end time by each way's, measured in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEFAULT_MODELS = ("tinymyo", "femba-tiny", "luna-base")
# The band each family's recordings are filtered to (EMG keeps its high band, EEG its low one).
BANDS = {"tinymyo": (20.0, 450.0), "femba": (0.5, 75.0), "luna": (0.5, 75.0)}


@dataclass
class Timing:
    """Seconds of each part in the fastest round."""

    total: float = float("inf")
    preprocessing: float = float("inf")
    model: float = float("inf")


def channel_names(name: str) -> list[str]:
    """The model's channels: TCP bipolar pairs for the EEG models (LUNA needs electrode names), EMG1.. else."""
    from biofound_cli.models import get_variant

    variant = get_variant(name)
    if variant.family in ("femba", "luna"):
        from biofound_cli.signals.montage import TCP_PAIRS

        return [f"{anode}-{cathode}" for anode, cathode in TCP_PAIRS][: variant.n_channels or len(TCP_PAIRS)]
    return [f"EMG{index}" for index in range(1, variant.n_channels + 1)]


def make_checkpoint(name: str, folder: Path) -> Path:
    """A ``name`` model with fresh weights, saved with the chain its recordings go through."""
    from biofound_cli.models import create_model, get_variant, save_checkpoint
    from biofound_cli.signals.chain import ChainConfig

    variant = get_variant(name)
    sfreq, names = float(variant.sfreq), channel_names(name)
    low, high = BANDS[variant.family]
    config = ChainConfig(
        window_seconds=variant.n_times / sfreq, l_freq=low, h_freq=min(high, sfreq / 2 - 1), notch_hz=(50.0,), zscore=True
    )
    chain = {"corpus": "emg-csv", "options": {"sfreq": sfreq, "channel_names": names}, **config.to_json_dict()}
    torch.manual_seed(0)
    model = create_model(name, task="mcc", num_classes=2)
    metadata = {"task": "mcc", "ch_names": names, "sfreq": sfreq, "n_times": variant.n_times, "preprocessing": chain}
    return save_checkpoint(
        model,
        folder / "model.safetensors",
        variant=name,
        model_name=variant.family,
        constructor_kwargs=variant.constructor_kwargs("mcc", 2),
        extra_metadata=metadata,
    )


def write_recordings(name: str, folder: Path, count: int, n_windows: int) -> Path:
    """``count`` CSV recordings of ``n_windows`` windows of noise plus a sine, one column per channel."""
    from biofound_cli.models import get_variant

    variant = get_variant(name)
    n_samples, n_channels = n_windows * variant.n_times, len(channel_names(name))
    rng = np.random.default_rng(0)
    recordings = folder / "recordings"
    recordings.mkdir()
    times = np.arange(n_samples) / variant.sfreq
    for index in range(count):
        signal = rng.normal(scale=20.0, size=(n_samples, n_channels)) + 30.0 * np.sin(2 * np.pi * 10.0 * times)[:, None]
        np.savetxt(recordings / f"R_{index}_C_0_EMG.csv", signal, delimiter=",", fmt="%.3f")
    return recordings


def timed(model, timing: list[float]):
    """``model`` whose ``score`` adds the seconds of each call to ``timing[0]``."""

    def score(x: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        scores = model.score(x)
        timing[0] += time.perf_counter() - start
        return scores

    return dataclasses.replace(model, score=score)


def time_once(model, chain, refs, out: Path, batch_size: int, timing: Timing) -> int:
    """One round: the end-to-end run (with its model calls timed), then the preprocessing alone; the windows."""
    from biofound_cli.prediction.run import predict_out_held, prepare_recording, run_predict

    in_model = [0.0]
    start = time.perf_counter()
    with predict_out_held(out) as held:
        report = run_predict(timed(model, in_model), chain, refs, held, batch_size=batch_size, force=True)
    total = time.perf_counter() - start
    start = time.perf_counter()
    for ref in refs:
        prepare_recording(chain.corpus_cls.name, chain.options_dict, ref, chain.config)
    preprocessing = time.perf_counter() - start
    if total < timing.total:
        timing.total, timing.model, timing.preprocessing = total, in_model[0], preprocessing
    return report.counts.windows


def runtimes(args: argparse.Namespace) -> dict[str, Any]:
    """The ways to run the checkpoint, by the runtime name predict reports: PyTorch fp32 first (the baseline)."""
    from biofound_cli.prediction.model import TorchWay

    ways = {"pytorch": TorchWay(), "pytorch bf16": TorchWay(precision="bf16")}
    if args.compile:
        ways["pytorch compiled"] = TorchWay(compiled=True)
        ways["pytorch compiled bf16"] = TorchWay(precision="bf16", compiled=True)
    return {**ways, "onnxruntime": None}


def compare(name: str, args: argparse.Namespace) -> None:
    from biofound_cli.export import export_checkpoint
    from biofound_cli.prediction.chain import resolve_prediction_chain
    from biofound_cli.prediction.model import load_prediction_model
    from biofound_cli.prediction.recordings import find_recordings

    with tempfile.TemporaryDirectory(prefix="biofound-bench-predict-") as tmp:
        folder = Path(tmp)
        checkpoint = make_checkpoint(name, folder)
        export_checkpoint(checkpoint, "onnx", folder / "export")
        recordings = write_recordings(name, folder, args.recordings, args.windows)
        models = {
            runtime: load_prediction_model(str(folder / "export" if runtime == "onnxruntime" else checkpoint), way=way)
            for runtime, way in runtimes(args).items()
        }
        chain = resolve_prediction_chain(
            models["pytorch"].preprocessing, ch_names=models["pytorch"].ch_names, sfreq=models["pytorch"].sfreq
        )
        refs = find_recordings([str(recordings)], chain.corpus()).refs  # no duplicate ids among the files made here
        timings = {runtime: Timing() for runtime in models}
        n_windows = 0
        for _ in range(args.rounds):
            for runtime in models:
                n_windows = time_once(models[runtime], chain, refs, folder / f"out-{runtime}", args.batch_size, timings[runtime])
    for runtime, timing in timings.items():
        ratio = timings["pytorch"].total / timing.total
        print(
            f"| {name} | {runtime} | {len(refs) / timing.total:.2f} | {n_windows / timing.total:.1f} | "
            f"{timing.preprocessing / timing.total:.0%} | {timing.model / timing.total:.0%} | "
            f"{max(1 - (timing.preprocessing + timing.model) / timing.total, 0):.0%} | {ratio:.2f}x |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated registry names")
    parser.add_argument("--recordings", type=int, default=3)
    parser.add_argument("--windows", type=int, default=32, help="windows per recording (its length)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the two runtimes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also PyTorch compiled, fp32 and bf16 (minutes of compiling)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 recordings of 4 windows, one round")
    args = parser.parse_args()
    if args.quick:
        args.recordings, args.windows, args.rounds = 2, 4, 1
    torch.set_num_threads(args.threads)
    # The export's licence warning (fresh weights count as derived from the official ones) is no finding here.
    logging.getLogger("biofound_cli.export").setLevel(logging.ERROR)

    print(
        f"biofound predict, CPU, {args.threads} threads, {args.recordings} recordings of {args.windows} windows, "
        f"batch {args.batch_size}, fastest of {args.rounds} alternating rounds\n"
    )
    print(
        "| model | runtime | recordings/s | windows/s | preprocessing | model | tables, PNGs, summary "
        "| speed-up over PyTorch fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        compare(name, args)
    print(
        "\npreprocessing, model: their share of the end-to-end time (reading and the chain; the model's "
        "score calls); the rest is writing each recording's table and PNG and the summary. speed-up: "
        "PyTorch fp32's end-to-end time / this way's, in the same run."
    )


if __name__ == "__main__":
    main()
