"""``biofound evaluate --bootstrap``: a resample scored by hand-written numpy against scikit-learn's metric functions.

Run ``python benchmarks/bootstrap.py`` (``--quick`` for a smoke run). Prints a markdown table;
asserts nothing.

Each row times :func:`biofound_cli.evaluation.report.bootstrap_intervals` (each resample scored by
``evaluation.resampled_metrics``) against the path it replaced in the same run: the same seeded
resamples, each scored by :func:`biofound_cli.metrics.compute_metrics` (scikit-learn, its input checks
in every call), then the same percentile intervals. The two take turns for ``--rounds`` rounds and
the fastest of each is kept (interference on a shared machine only adds time); the last column is
the largest difference between their interval bounds. One resample of the old path runs first, so
that neither path's timing holds scikit-learn's import.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from biofound_cli.evaluation.report import _percentile_intervals, _resampled_rows, bootstrap_intervals
from biofound_cli.metrics import compute_metrics, headline_names


def split(task: str, windows: int, recordings: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets, two-decimal scores (so that some tie, as a model's do) and recording ids of a synthetic split."""
    rng = np.random.default_rng(seed)
    n_classes = {"bc": 2, "mcc": 5, "mmc": 4}[task]
    shape = (windows, 4) if task == "mmc" else (windows,)
    y_true = rng.integers(0, n_classes, size=shape)
    logits = rng.normal(size=shape + (n_classes,)) + np.eye(n_classes)[y_true]
    probabilities = np.round(np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True), 2)
    return y_true, probabilities, np.sort(rng.integers(0, recordings, size=windows))


def sklearn_intervals(task: str, y_true: np.ndarray, y_score: np.ndarray, groups: np.ndarray | None, n: int) -> dict:
    """The intervals as ``bootstrap_intervals`` computed them before: ``compute_metrics`` on each resample."""
    samples: dict[str, list[float]] = {name: [] for name in headline_names(task)}
    for rows in _resampled_rows(np.random.default_rng(0), y_true.shape[0], groups, n):
        metrics = compute_metrics(task, y_true[rows], y_score[rows])
        for name in samples:
            if metrics[name] is not None:
                samples[name].append(metrics[name])
    return _percentile_intervals(samples, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--recordings", type=int, default=40)
    parser.add_argument("--resamples", type=int, default=40, help="resamples timed per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200 windows, 5 resamples, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.windows, args.resamples, args.rounds = 200, 5, 1
    print(f"{args.windows} windows over {args.recordings} recordings, {args.resamples} resamples, best of {args.rounds} rounds\n")
    print("| task | resamples | numpy (ms/resample) | scikit-learn (ms/resample) | ratio | largest bound difference |")
    print("|---|---|---|---|---|---|")
    cases = [("bc", "windows"), ("bc", "recordings"), ("mcc", "windows"), ("mcc", "recordings"), ("mmc", "recordings")]
    for task, unit in cases:
        y_true, y_score, recording = split(task, args.windows, args.recordings)
        groups = recording if unit == "recordings" else None
        sklearn_intervals(task, y_true, y_score, groups, 1)  # imports and first calls out of the timing
        ours, theirs = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            new = bootstrap_intervals(task, y_true, y_score, n_bootstrap=args.resamples, seed=0, groups=groups)["intervals"]
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            old = sklearn_intervals(task, y_true, y_score, groups, args.resamples)
            theirs.append(time.perf_counter() - start)
        gap = max(
            (
                abs(new[name][bound] - old[name][bound])
                for name in old
                for bound in ("low", "high")
                if old[name][bound] is not None
            ),
            default=0.0,
        )
        label = f"{task}" + (" (4 channels)" if task == "mmc" else "")
        ms_ours, ms_theirs = 1e3 * min(ours) / args.resamples, 1e3 * min(theirs) / args.resamples
        print(f"| {label} | {unit} | {ms_ours:.2f} | {ms_theirs:.1f} | **{ms_theirs / ms_ours:.0f}×** | {gap:.1e} |")


if __name__ == "__main__":
    main()
