"""DataLoader throughput from a packed file against per-item random access (the upstream way).

Writes a few fake shards, packs them with ``biofound_cli.store.packer``, then times a
shuffled epoch (batch 64) three ways and prints windows/s and ratios against the baseline:

* baseline: a Dataset that reads ``x[i]`` one window at a time from an unchunked HDF5 file
  (as upstream's loaders do), shuffled by the DataLoader, no workers;
* packed: :class:`PackedDataset` + :class:`ChunkedBatchSampler`, whose batches are read with
  one slice per contiguous run, with 0 and 2 workers.

Then, as a run with ``data.num_workers = 2`` that evaluates every epoch reads them, it times
``--epochs`` epochs of a training pass and a validation pass (a quarter of the windows) two ways,
in alternating rounds: a loader (and its 2 workers) per pass, as the loop did before 2026-12-07,
against the loop's loaders whose workers live the whole run (``persistent_workers``, validation's
through :class:`~biofound_cli.training.evaluate.ValidationBatches`): wall time and CPU time of the
main process and its workers, and the ratio.

Run: ``python benchmarks/loader.py [--windows 4096] [--epochs 4] [--rounds 3]`` (EEG-sized windows use a
quarter of the windows). It asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from biofound_cli import __version__
from biofound_cli.recipes.pack import PackSection
from biofound_cli.store.dataset import PackedDataset, collate_windows
from biofound_cli.store.packer import pack_shards
from biofound_cli.store.sampler import ChunkedBatchSampler
from biofound_cli.store.shards import SHARD_MARK
from biofound_cli.training.evaluate import ValidationBatches
from biofound_cli.training.preemption import stop_workers

BATCH_SIZE = 64


class PerItemDataset(Dataset):
    """Upstream-style reader: one ``x[i]`` read per window from a contiguous dataset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with h5py.File(path, "r") as handle:
            self.n_windows = handle["x"].shape[0]
        self.handle = None

    def __len__(self) -> int:
        return self.n_windows

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.handle is None:
            self.handle = h5py.File(self.path, "r")
        return {"x": torch.from_numpy(self.handle["x"][index]), "y": torch.tensor(int(self.handle["y"][index]))}


def write_inputs(folder: Path, n_windows: int, n_channels: int, n_times: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    ch_names = [f"C{i}" for i in range(n_channels)]
    n_recordings = 16
    per_recording = -(-n_windows // n_recordings)
    baseline_path = folder / "baseline.h5"
    (folder / "shards").mkdir()
    with h5py.File(baseline_path, "w") as baseline:
        x_all = baseline.create_dataset("x", (n_recordings * per_recording, n_channels, n_times), dtype=np.float32)
        y_all = baseline.create_dataset("y", (n_recordings * per_recording,), dtype=np.int64)
        for number in range(n_recordings):
            x = rng.standard_normal((per_recording, n_channels, n_times), dtype=np.float32)
            y = np.full(per_recording, number % 2, dtype=np.int64)
            rows = slice(number * per_recording, (number + 1) * per_recording)
            x_all[rows], y_all[rows] = x, y
            with h5py.File(folder / "shards" / f"rec{number:02d}.h5", "w") as shard:
                shard.create_dataset("x", data=x)
                shard.create_dataset("y", data=y)
                shard.attrs.update(sfreq=256.0, channel_names=ch_names, subject=f"s{number}", task="bc", label_names=["a", "b"])
                shard.attrs[SHARD_MARK] = __version__  # pack takes only files biofound's shard writer marked
    pack_shards(folder / "shards", folder / "packed", PackSection(train=1.0, val=0.0, test=0.0))
    return baseline_path, folder / "packed" / "train.h5"


def epoch_rate(loader: DataLoader) -> float:
    """Windows per second of the second of two epochs (the first starts workers and warms caches)."""
    for _ in loader:
        pass
    start = time.perf_counter()
    count = sum(batch["x"].shape[0] for batch in loader)
    return count / (time.perf_counter() - start)


def epochs_with_evaluation(dataset: PackedDataset, epochs: int, *, kept: bool) -> tuple[float, float]:
    """Wall and CPU seconds (this process and its reaped workers) of ``epochs`` training and validation passes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = usage.ru_utime + usage.ru_stime
    wall, cpu = time.perf_counter(), time.process_time()
    n_train = 3 * len(dataset) // 4
    val_set = Subset(dataset, range(n_train, len(dataset)))
    val = ValidationBatches(val_set, batch_size=BATCH_SIZE, num_workers=2) if kept else None
    sampler = ChunkedBatchSampler(n_train, BATCH_SIZE, shuffle=True, seed=0)
    train = DataLoader(dataset, batch_sampler=sampler, num_workers=2, persistent_workers=kept, collate_fn=collate_windows)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        sum(batch["x"].shape[0] for batch in train)
        evaluation = val or ValidationBatches(val_set, batch_size=BATCH_SIZE, num_workers=2)
        sum(batch["x"].shape[0] for batch in evaluation)
        if val is None:
            evaluation.close()
    stop_workers(train)
    if val is not None:
        val.close()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = usage.ru_utime + usage.ru_stime - children
    return time.perf_counter() - wall, time.process_time() - cpu + workers


def compare_kept_workers(packed_path: Path, epochs: int, rounds: int) -> None:
    dataset = PackedDataset(packed_path)
    best: dict[bool, tuple[float, float]] = {}
    for _ in range(rounds):
        for kept in (False, True):
            wall, cpu = epochs_with_evaluation(dataset, epochs, kept=kept)
            wall_best, cpu_best = best.get(kept, (wall, cpu))
            best[kept] = (min(wall, wall_best), min(cpu, cpu_best))
    (wall_then, cpu_then), (wall_now, cpu_now) = best[False], best[True]
    print(f"  {epochs} epochs + evaluations, 2 workers, best of {rounds}:")
    print(f"    a loader per pass (before):   wall {wall_then:6.2f} s, CPU {cpu_then:6.2f} s")
    print(f"    workers kept the whole run:   wall {wall_now:6.2f} s, CPU {cpu_now:6.2f} s")
    print(f"    kept / per pass: wall {wall_now / wall_then:.2f}x, CPU {cpu_now / cpu_then:.2f}x")


def compare(n_windows: int, n_channels: int, n_times: int, epochs: int = 4, rounds: int = 3) -> None:
    with tempfile.TemporaryDirectory() as temp:
        baseline_path, packed_path = write_inputs(Path(temp), n_windows, n_channels, n_times)
        print(f"{n_windows} windows of {n_channels}x{n_times} float32, batch {BATCH_SIZE}, shuffled")
        generator = torch.Generator().manual_seed(0)
        baseline = epoch_rate(DataLoader(PerItemDataset(baseline_path), batch_size=BATCH_SIZE, shuffle=True, generator=generator))
        print(f"  baseline per-item h5py reads, 0 workers: {baseline:10.0f} windows/s  (1.00x)")
        dataset = PackedDataset(packed_path)
        for workers in (0, 2):
            sampler = ChunkedBatchSampler(len(dataset), BATCH_SIZE, shuffle=True, seed=0)
            loader = DataLoader(
                dataset,
                batch_sampler=sampler,
                num_workers=workers,
                persistent_workers=workers > 0,
                collate_fn=collate_windows,
            )
            rate = epoch_rate(loader)
            print(f"  packed + chunked sampler, {workers} workers:    {rate:10.0f} windows/s  ({rate / baseline:.2f}x)")
            stop_workers(loader)
        compare_kept_workers(packed_path, epochs, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # EEG-sized windows (FEMBA/LUNA: 22 bipolar channels, 5 s at 256 Hz) and EMG-sized ones.
    compare(args.windows // 4, 22, 1280, args.epochs, args.rounds)
    compare(args.windows, 8, 200, args.epochs, args.rounds)


if __name__ == "__main__":
    main()
