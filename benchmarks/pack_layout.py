"""``pack.layout = "virtual"`` against the default copy: pack time and loader throughput, same run.

Writes a synthetic shard corpus with the shard writer ``preprocess`` uses (so the shards are
chunked as real ones are: one channel of up to 64 windows per chunk), default 10 240 EEG windows
of 22 × 1280 float32 (1.15 GB, 10× ``loader.py``'s EEG corpus) in recordings of 120 windows
(10 min of 5 s windows), packs them both ways into train/val/test and times a shuffled epoch of
``train.h5`` (batch 64, :class:`ChunkedBatchSampler`) through ``PackedDataset`` + ``DataLoader``
with 0 and 2 workers. The layouts take turns ``--repeats`` times and each reports its best run;
ratios are against the copy layout. The page cache is warm for both (the shards were just
written), as on a machine whose corpus fits in memory. It asserts nothing.

Run: ``python benchmarks/pack_layout.py [--windows 10240] [--per-recording 120] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from biofound_cli.recipes.pack import PackSection
from biofound_cli.store.dataset import PackedDataset, collate_windows
from biofound_cli.store.packer import pack_shards
from biofound_cli.store.sampler import ChunkedBatchSampler
from biofound_cli.store.shards import ShardMeta, ShardWriter

BATCH_SIZE = 64
N_CHANNELS, N_TIMES, SFREQ = 22, 1280, 256.0
LAYOUTS = ("copy", "virtual")


def write_shards(folder: Path, n_windows: int, per_recording: int) -> int:
    """Write the corpus, one shard per recording and subject; returns the bytes of ``x`` written."""
    rng = np.random.default_rng(0)
    n_recordings = -(-n_windows // per_recording)
    ch_names = [f"C{i}" for i in range(N_CHANNELS)]
    for number in range(n_recordings):
        count = min(per_recording, n_windows - number * per_recording)
        meta = ShardMeta(
            corpus="synthetic",
            subject=f"s{number:04d}",
            session="s001",
            source_path=f"/raw/r{number}.edf",
            sfreq=SFREQ,
            channel_names=ch_names,
            label_names=["normal", "abnormal"],
            task="bc",
            window_seconds=N_TIMES / SFREQ,
            stride_seconds=N_TIMES / SFREQ,
            preprocess_config={},
        )
        with ShardWriter(folder / "synthetic" / f"r{number:04d}.h5") as writer:
            writer.open(count, N_CHANNELS, N_TIMES, np.float32, window_start_seconds=np.arange(count) * 5.0)
            for channel in range(N_CHANNELS):
                writer.write_channel(channel, rng.standard_normal((count, N_TIMES), dtype=np.float32))
            writer.commit(np.full(count, number % 2, dtype=np.int64), meta)
    return n_windows * N_CHANNELS * N_TIMES * 4


def pack_seconds(shards: Path, out: Path, layout: str) -> float:
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    pack_shards(shards, out, PackSection(layout=layout))
    return time.perf_counter() - start


def epoch_rate(path: Path, workers: int) -> float:
    """Windows per second of the second of two shuffled epochs (the first starts workers)."""
    dataset = PackedDataset(path)
    sampler = ChunkedBatchSampler(len(dataset), BATCH_SIZE, shuffle=True, seed=0)
    loader = DataLoader(
        dataset, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0, collate_fn=collate_windows
    )
    for _ in loader:
        pass
    sampler.set_epoch(1)
    start = time.perf_counter()
    count = sum(batch["x"].shape[0] for batch in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=10240)
    parser.add_argument("--per-recording", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        started = time.perf_counter()
        size = write_shards(root / "shards", args.windows, args.per_recording)
        print(
            f"{args.windows} windows of {N_CHANNELS}x{N_TIMES} float32 ({size / 1e9:.2f} GB) in "
            f"{-(-args.windows // args.per_recording)} shards, written in {time.perf_counter() - started:.0f} s; "
            f"batch {BATCH_SIZE}, shuffled, best of {args.repeats}\n"
        )
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.repeats):
            for layout in LAYOUTS:
                out = root / layout
                seconds = pack_seconds(root / "shards", out, layout)
                best[layout, "pack"] = min(best.get((layout, "pack"), float("inf")), seconds)
                for workers in (0, 2):
                    rate = epoch_rate(out / "train.h5", workers)
                    best[layout, f"w{workers}"] = max(best.get((layout, f"w{workers}"), 0.0), rate)
        sizes = {layout: sum(p.stat().st_size for p in (root / layout).glob("*.h5")) for layout in LAYOUTS}
        print("| layout | pack s | packed bytes | loader 0 workers, windows/s | loader 2 workers, windows/s |")
        print("|---|---|---|---|---|")
        for layout in LAYOUTS:
            cells = [
                f"{best[layout, 'pack']:.2f} ({best[layout, 'pack'] / best['copy', 'pack']:.3f}x)",
                f"{sizes[layout] / 1e6:.1f} MB",
            ]
            cells += [f"{best[layout, key]:.0f} ({best[layout, key] / best['copy', key]:.2f}x)" for key in ("w0", "w2")]
            print(f"| {layout} | " + " | ".join(cells) + " |")
        print(
            f"\npack throughput, copy: {size / best['copy', 'pack'] / 1e9:.2f} GB/s of x; "
            f"virtual: {size / best['virtual', 'pack'] / 1e9:.2f} GB/s of x (nothing copied)"
        )


if __name__ == "__main__":
    main()
