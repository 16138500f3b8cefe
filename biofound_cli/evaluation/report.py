"""The evaluation report: metrics on windows and on recordings, seeded bootstrap intervals, JSON.

``build_report`` is pure (arrays in, a JSON-ready dict out) and deterministic: the bootstrap draws
from ``numpy.random.default_rng(seed)`` and nothing depends on the clock, so two runs on the same
predictions give byte-identical ``report.json`` files. ``write_report`` writes it atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from biofound_cli.atomic import write_json_atomic
from biofound_cli.evaluation.resampled_metrics import resample_scorer
from biofound_cli.metrics import (
    CLASSIFICATION_TASKS,
    REGRESSION_TASKS,
    compute_metrics,
    headline_names,
)

REPORT_SCHEMA_VERSION = 1

FEW_RECORDINGS = 10
"""Below this many recordings ``biofound evaluate`` warns: recording-level numbers and recording
bootstrap intervals rest on so few values that they are rough at best."""
MIN_RECORDINGS_TO_RESAMPLE = 2
"""The fewest recordings a bootstrap resamples whole. One recording resampled is the same windows
every time (a zero-width interval) and one recording scored alone is right or wrong, so with
fewer the window bootstrap resamples single windows and the recording-level scalars are null."""

REPORT_FILE = "report.json"
"""The file ``biofound evaluate`` writes its numbers to, beside its PNGs."""


def aggregate_recordings(
    task: str, y_true: np.ndarray, y_score: np.ndarray, recording_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Collapse windows into recordings: the mean of the window scores of each recording.

    Parameters
    ----------
    task : str
        The task type (see :mod:`biofound_cli.metrics`).
    y_true, y_score : np.ndarray
        Window targets and scores (probabilities, or predictions for regression), first axis N.
    recording_index : np.ndarray
        (N,) integer id of the recording each window comes from.

    Returns
    -------
    y_true_rec, y_score_rec : np.ndarray
        One row per recording, in increasing order of ``recording_ids``. The label of a recording
        is the most frequent window label (the smallest on ties; per channel for ``mc``/``mmc``);
        regression targets are averaged like the predictions.
    recording_ids : np.ndarray
        The sorted distinct values of ``recording_index``.
    n_mixed : int
        How many recordings hold windows with different labels (always 0 for regression).
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    recording_index = np.asarray(recording_index)
    if recording_index.shape != (y_true.shape[0],):
        raise ValueError(f"recording_index must have shape ({y_true.shape[0]},); got {recording_index.shape}")
    recording_ids, inverse = np.unique(recording_index, return_inverse=True)
    counts = np.bincount(inverse).astype(np.float64)

    def mean(values: np.ndarray) -> np.ndarray:
        """Each recording's mean of ``values`` (summed in one pass, divided by the window count)."""
        sums = np.zeros((recording_ids.size,) + values.shape[1:], dtype=np.float64)
        np.add.at(sums, inverse, values.astype(np.float64))
        return sums / counts.reshape((-1,) + (1,) * (values.ndim - 1))

    if task in REGRESSION_TASKS:
        return mean(y_true), mean(y_score), recording_ids, 0
    from scipy.stats import mode

    # The most frequent label of each recording (per channel); mode gives the smallest on ties.
    windows = [y_true[inverse == r].astype(np.int64) for r in range(recording_ids.size)]
    true_rec = np.stack([mode(labels, axis=0, keepdims=False).mode for labels in windows]).astype(np.int64)
    n_mixed = sum(int(np.any(labels != majority)) for labels, majority in zip(windows, true_rec, strict=True))
    return true_rec, mean(y_score), recording_ids, n_mixed


def bootstrap_intervals(
    task: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    n_bootstrap: int,
    seed: int,
    confidence: float = 0.95,
    groups: np.ndarray | None = None,
    unit: str = "window",
    on_replicate: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Percentile bootstrap confidence intervals of the headline metrics.

    Each resample is scored by :func:`~biofound_cli.evaluation.resampled_metrics.resample_scorer`:
    the values :func:`~biofound_cli.metrics.compute_metrics` gives, without scikit-learn's checks.

    Parameters
    ----------
    task : str
        The task type.
    y_true, y_score : np.ndarray
        Targets and scores, first axis N.
    n_bootstrap : int
        Number of resamples (at least 1).
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same intervals.
    confidence : float
        Coverage of the interval, e.g. 0.95 for the 2.5th–97.5th percentiles.
    groups : np.ndarray | None
        (N,) cluster id per row. When given, whole clusters are resampled (a cluster bootstrap:
        windows of one recording are correlated, so resampling them singly gives too narrow
        intervals); when ``None`` each row is resampled on its own.
    unit : str
        What one row is (``"window"``, or ``"recording"`` for recording-level scores): the
        ``unit`` reported when ``groups`` is ``None``. With ``groups`` the unit is ``"recording"``.
    on_replicate : callable | None
        Called once after each resample (for a progress bar).

    Returns
    -------
    dict
        ``{"n_bootstrap", "seed", "confidence", "unit", "intervals": {metric: {"low", "high",
        "n_valid"}}}``; a metric undefined on every resample has ``low`` = ``high`` = ``None``.
        ``n_valid`` counts the resamples where the metric was defined.
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be at least 1; got {n_bootstrap}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1; got {confidence}")
    y_true = np.asarray(y_true)
    score = resample_scorer(task, y_true, y_score)
    samples: dict[str, list[float]] = {name: [] for name in headline_names(task)}
    for rows in _resampled_rows(np.random.default_rng(seed), y_true.shape[0], groups, n_bootstrap):
        for name, value in score(rows).items():
            if np.isfinite(value):
                samples[name].append(value)
        if on_replicate is not None:
            on_replicate()
    return {
        "n_bootstrap": int(n_bootstrap),
        "seed": int(seed),
        "confidence": float(confidence),
        "unit": unit if groups is None else "recording",
        "intervals": _percentile_intervals(samples, confidence),
    }


def _resampled_rows(rng: np.random.Generator, n_rows: int, groups: np.ndarray | None, n_bootstrap: int) -> Iterator[np.ndarray]:
    """The row indices of each of ``n_bootstrap`` resamples: of single rows, or of whole ``groups``."""
    if groups is not None:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    for _ in range(n_bootstrap):
        if groups is None:
            yield rng.integers(0, n_rows, size=n_rows)
        else:
            chosen = rng.integers(0, len(members), size=len(members))
            yield np.concatenate([members[g] for g in chosen])


def _percentile_intervals(samples: dict[str, list[float]], confidence: float) -> dict[str, dict[str, Any]]:
    """The percentile interval of each metric's resampled values (``None`` bounds where it never was defined)."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    intervals: dict[str, dict[str, Any]] = {}
    for name, sampled in samples.items():
        values = np.asarray(sampled, dtype=np.float64)
        if values.size:
            low, high = np.percentile(values, [tail, 100.0 - tail])
            intervals[name] = {"low": float(low), "high": float(high), "n_valid": int(values.size)}
        else:
            intervals[name] = {"low": None, "high": None, "n_valid": 0}
    return intervals


def build_report(
    task: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    label_names: Sequence[str] | None = None,
    ch_names: Sequence[str] | None = None,
    recording_index: np.ndarray | None = None,
    recording_names: Sequence[str] | None = None,
    n_bootstrap: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
    metadata: Mapping[str, Any] | None = None,
    on_replicate: Callable[[], None] | None = None,
    scored_by: str = "softmax",
) -> dict[str, Any]:
    """The whole evaluation report of one split.

    Parameters
    ----------
    task : str
        ``bc``, ``ml``, ``mcc``, ``mc``, ``mmc`` or ``regression``.
    y_true, y_score : np.ndarray
        Window targets and scores (class probabilities, or predictions for regression).
    label_names, ch_names : sequence of str | None
        Passed to :func:`~biofound_cli.metrics.compute_metrics`.
    recording_index : np.ndarray | None
        (N,) recording id per window (the packed split's ``recording_index``). When given, the
        report also scores recordings (mean of window scores) and the window-level bootstrap
        resamples recordings, given at least :data:`MIN_RECORDINGS_TO_RESAMPLE` of them (else it
        resamples windows, says so in ``notes``, and the recording-level scalars are null).
    recording_names : sequence of str | None
        Names of the recordings, indexed by ``recording_index`` (the split's ``recordings``);
        used only for the ``recordings.ids`` list.
    n_bootstrap : int
        Bootstrap resamples for the intervals; 0 leaves them out.
    seed : int
        Seed of the bootstrap.
    confidence : float
        Coverage of the bootstrap intervals.
    metadata : mapping | None
        JSON-ready facts about the run (checkpoint, split, model) copied into ``source``. Keep it
        free of timestamps so the report stays reproducible.
    on_replicate : callable | None
        Called after each bootstrap resample (for a progress bar).
    scored_by : str
        How the head's output became ``y_score``
        (:func:`~biofound_cli.tasks.score_rule`): the note on binary AUROC ranking
        by a softmax comes only with ``softmax``; a sigmoid ranks as its logit does.

    Returns
    -------
    dict
        ``schema_version``, ``task``, ``source``, ``windows`` (metrics), ``recordings`` (metrics,
        or ``None``), ``headline`` (the headline scalars per level), ``bootstrap`` (per level, each
        with the ``unit`` it resampled; ``recordings`` is ``None`` when there are too few to resample;
        the whole block is ``None`` without ``n_bootstrap``) and ``notes``.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    names = headline_names(task)
    window_metrics = compute_metrics(task, y_true, y_score, label_names, ch_names=ch_names)
    recording_notes: list[str] = []
    recordings_block, rec_true, rec_score = None, None, None
    if recording_index is not None:
        recordings_block, rec_true, rec_score = _recording_level(
            task, y_true, y_score, recording_index, recording_names, label_names, ch_names, recording_notes
        )
    notes = _level_notes(window_metrics["notes"], recording_notes)

    bootstrap = None
    if n_bootstrap > 0:
        bootstrap = _bootstrap_levels(
            task,
            (y_true, y_score),
            (rec_true, rec_score),
            recording_index,
            dict(n_bootstrap=n_bootstrap, seed=seed, confidence=confidence, on_replicate=on_replicate),
            notes,
        )

    headline = {"windows": {name: window_metrics[name] for name in names}}
    if recordings_block is not None:
        headline["recordings"] = {name: recordings_block["metrics"][name] for name in names}
    # mc scores are a sigmoid of each channel's own logit, which ranks as upstream's logit does; a
    # binary AUROC null at every level (targets of one class) was ranked by nothing.
    ranked = any(level.get("auroc") is not None for level in headline.values())
    if ranked and scored_by == "softmax" and task in CLASSIFICATION_TASKS + ("mmc",) and y_score.shape[-1] == 2:
        notes.append(
            "binary AUROC/AUPR rank by the softmax probability of class 1, not by the class-1 logit "
            "alone as the upstream code does"
        )
    from biofound_cli import __version__

    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "biofound_version": __version__,
        "task": task,
        "source": dict(metadata or {}),
        "n_windows": int(y_true.shape[0]),
        "headline": headline,
        "windows": window_metrics,
        "recordings": recordings_block,
        "bootstrap": bootstrap,
        "notes": notes,
    }


def _recording_level(
    task: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    recording_index: np.ndarray,
    recording_names: Sequence[str] | None,
    label_names: Sequence[str] | None,
    ch_names: Sequence[str] | None,
    notes: list[str],
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The ``recordings`` block (recordings scored by their mean window score) and the recordings' targets and scores.

    Appends its notes to ``notes``, without the level's name (:func:`_level_notes` adds it).
    """
    rec_true, rec_score, recording_ids, n_mixed = aggregate_recordings(task, y_true, y_score, recording_index)
    recording_metrics = compute_metrics(task, rec_true, rec_score, label_names, ch_names=ch_names)
    if recording_ids.size < MIN_RECORDINGS_TO_RESAMPLE:
        notes.append(
            "the split holds one recording, so the recording-level scores are undefined (null), each class's too "
            "(the counts are kept): one recording is simply right or wrong"
        )
        recording_metrics = _counts_only(recording_metrics)
        return _recordings_block(recording_ids, recording_names, recording_metrics), rec_true, rec_score
    if n_mixed:  # first: how the recordings' labels were chosen explains the notes on them
        notes.append(
            f"{n_mixed} of {recording_ids.size} recordings hold windows with different labels; "
            "each is scored against its most frequent label (the smallest class on ties)"
        )
    notes += recording_metrics["notes"]
    return _recordings_block(recording_ids, recording_names, recording_metrics), rec_true, rec_score


_COUNTS = frozenset({"n_samples", "n_channels", "support", "confusion_matrix"})
"""The numbers of a metrics block that count rather than score: kept where the scores are undefined."""


def _counts_only(metrics: Any, key: str = "") -> Any:
    """``metrics`` (a :func:`~biofound_cli.metrics.compute_metrics` result) with every score null, at every depth.

    Scores of one recording are undefined: its per-class precision (1.0 or 0.0, right or wrong) said no more than
    its null balanced accuracy. Counts and names stay; notes go, as they would explain scores not reported
    (e.g. "cohen_kappa is averaged over 13 channels", or how the one recording's label was chosen).
    """
    if key == "notes":
        return []
    if isinstance(metrics, dict):
        return {name: _counts_only(value, name) for name, value in metrics.items()}
    if isinstance(metrics, list) and key not in _COUNTS:
        return [_counts_only(value, key) for value in metrics]
    if isinstance(metrics, (int, float)) and not isinstance(metrics, bool) and key not in _COUNTS:
        return None
    return metrics


def _recordings_block(
    recording_ids: np.ndarray, recording_names: Sequence[str] | None, recording_metrics: dict[str, Any]
) -> dict[str, Any]:
    """The report's ``recordings`` block: how many, their names (else numbers) and their metrics."""
    numbers = [int(i) for i in recording_ids]
    ids: list[int] | list[str] = numbers if recording_names is None else [str(recording_names[i]) for i in numbers]
    return {"n_recordings": int(recording_ids.size), "ids": ids, "metrics": recording_metrics}


def _level_notes(window_notes: list[str], recording_notes: list[str]) -> list[str]:
    """The notes of both levels, each named by its level; a note that holds for both comes once, naming both.

    Targets of one class at either level gave the same sentence twice, once per level.
    """
    both = set(window_notes) & set(recording_notes)
    return [f"{'windows and recordings' if note in both else 'windows'}: {note}" for note in window_notes] + [
        f"recordings: {note}" for note in recording_notes if note not in both
    ]


def resamples_recordings(recording_index: np.ndarray | None) -> bool:
    """Whether the window bootstrap resamples whole recordings (else single windows).

    Parameters
    ----------
    recording_index : np.ndarray | None
        (N,) recording id per window, or ``None`` when the split does not say.
    """
    return recording_index is not None and np.unique(recording_index).size >= MIN_RECORDINGS_TO_RESAMPLE


def _bootstrap_levels(
    task: str,
    windows: tuple[np.ndarray, np.ndarray],
    recordings: tuple[np.ndarray | None, np.ndarray | None],
    recording_index: np.ndarray | None,
    options: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """The ``bootstrap`` block: window intervals, and recording intervals when recordings can be resampled."""
    by_recording = resamples_recordings(recording_index)
    if recording_index is not None and not by_recording:
        notes.append(
            "bootstrap: the split holds one recording, so the window intervals resample single windows "
            '(unit "window"); windows of one recording are correlated, so these intervals are too narrow'
        )
    block: dict[str, Any] = {
        "windows": bootstrap_intervals(task, *windows, groups=recording_index if by_recording else None, **options)
    }
    if recording_index is not None:
        # Recording scores are one row per recording: resampling rows resamples recordings.
        rec_true, rec_score = recordings
        assert rec_true is not None and rec_score is not None  # computed whenever recording_index is
        block["recordings"] = (
            bootstrap_intervals(task, rec_true, rec_score, unit="recording", **options) if by_recording else None
        )
    return block


def write_report(report: Mapping[str, Any], path: Path) -> Path:
    """Write ``report`` to ``path`` atomically (a temporary file in the same folder, then a rename).

    Parameters
    ----------
    report : mapping
        The report, written as :func:`~biofound_cli.atomic.strict_json` (undefined metrics are ``null``).
    path : Path
        The JSON file to write.
    """
    return write_json_atomic(Path(path), dict(report))
