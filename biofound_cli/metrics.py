"""Evaluation metrics per task type, from numpy arrays, computed with scikit-learn.

The task types are those of the packed splits (``docs/evaluate.md``):

* ``bc``, ``ml``, ``mcc`` — one label per window: ``y_true`` (N,) int, ``y_score`` (N, K) class
  probabilities;
* ``mc`` — one binary label per channel: ``y_true`` (N, C) in {0, 1}, ``y_score`` (N, C) probability
  of the positive class;
* ``mmc`` — one label per channel: ``y_true`` (N, C) int, ``y_score`` (N, C, K) class probabilities;
* ``regression`` — ``y_true`` and ``y_score`` float arrays of the same shape (N, ...).

Every value returned is plain JSON (dicts, lists, ``float``, ``int``, ``None``). A metric that is
undefined on the data at hand (AUROC of a class absent from ``y_true``, R² of a constant target) is
``None`` — the JSON form of NaN — and a sentence in ``notes`` says why; it never raises.

Binary AUROC and AUPR rank windows by the softmax probability of class 1. The upstream BioFoundation
code ranks by the raw class-1 logit alone, which ignores the class-0 logit; the
two agree only when the class-0 logit is constant, so our binary AUROC can differ from the papers'.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal, Sequence

import numpy as np

from biofound_cli.atomic import finite

CLASSIFICATION_TASKS = ("bc", "ml", "mcc")
"""One label per window."""
CHANNEL_TASKS = ("mc", "mmc")
"""One label per channel of each window."""
REGRESSION_TASKS = ("regression",)
TASKS = CLASSIFICATION_TASKS + CHANNEL_TASKS + REGRESSION_TASKS

HEADLINE_CLASSIFICATION = ("balanced_accuracy", "auroc", "aupr", "cohen_kappa", "f1_weighted", "accuracy")
"""The scalar classification metrics shown in the summary table and given bootstrap intervals."""
HEADLINE_REGRESSION = ("mae", "rmse", "r2")
SMALLER_IS_BETTER = ("loss", "mae", "rmse")
"""The metrics a smaller value of is better; a larger value is better for every other one."""


def better_when(metric: str) -> Literal["min", "max"]:
    """``"min"`` when a smaller ``metric`` is better (a loss, an error), else ``"max"``.

    Parameters
    ----------
    metric : str
        A metric name as reported, with or without the ``val_`` prefix of training's records.
    """
    return "min" if metric.removeprefix("val_") in SMALLER_IS_BETTER else "max"


def headline_names(task: str) -> tuple[str, ...]:
    """The scalar metric names reported for ``task`` (the keys bootstrap intervals are given for).

    Parameters
    ----------
    task : str
        The task type, one of ``metrics.TASKS``; a ``ValueError`` for any other.
    """
    _check_task(task)
    return HEADLINE_REGRESSION if task in REGRESSION_TASKS else HEADLINE_CLASSIFICATION


def compute_metrics(
    task: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    label_names: Sequence[str] | None = None,
    *,
    ch_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """All metrics of one task type.

    Parameters
    ----------
    task : str
        One of ``bc``, ``ml``, ``mcc``, ``mc``, ``mmc``, ``regression``.
    y_true : np.ndarray
        Targets; shape per task as in the module docstring.
    y_score : np.ndarray
        Class probabilities (classification) or predictions (regression).
    label_names : sequence of str | None
        Names of the classes (classification) or of the output dimensions (regression).
    ch_names : sequence of str | None
        Channel names for ``mc`` / ``mmc``; ``ch0``, ``ch1``, ... when not given.

    Returns
    -------
    dict
        JSON-serialisable metrics. Classification: the scalars of ``HEADLINE_CLASSIFICATION``,
        ``per_class``, ``confusion_matrix``, ``label_names``, ``n_samples``, ``notes``. Channel tasks:
        the same scalars averaged over channels, the confusion matrix summed over channels, and
        ``per_channel``. Regression: ``mae``, ``rmse``, ``r2`` and ``per_output``.

    Raises
    ------
    ValueError
        When ``task`` is unknown or the shapes do not fit the task.
    """
    _check_task(task)
    if task in CLASSIFICATION_TASKS:
        return classification_metrics(y_true, y_score, label_names)
    if task in CHANNEL_TASKS:
        return channel_metrics(task, y_true, y_score, label_names, ch_names=ch_names)
    return regression_metrics(y_true, y_score, label_names)


def predicted_classes(task: str, y_score: np.ndarray) -> np.ndarray:
    """The class the scores decide, as the metrics decide it.

    An ``mc`` head gives one probability ``p`` of class 1 per channel: class 1 where ``p > 0.5``,
    the argmax of ``[1 - p, p]`` (a tie is class 0). Every other head: the argmax over the last
    axis (per window, or per window and channel for ``mmc``).

    Parameters
    ----------
    task : str
        The head's task type (``bc``, ``ml``, ``mcc``, ``mc``, ``mmc``); regression has no classes.
    y_score : np.ndarray
        Probabilities: (N, K), (N, C) for ``mc``, (N, C, K) for ``mmc``.
    """
    if task not in CLASSIFICATION_TASKS + CHANNEL_TASKS:
        raise ValueError(f"a {task!r} head predicts values, not classes")
    y_score = np.asarray(y_score)
    return (y_score > 0.5).astype(np.int64) if task == "mc" else y_score.argmax(axis=-1)


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, label_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Metrics of single-label classification from ``y_true`` (N,) and ``probabilities`` (N, K).

    The predicted class is the argmax of the probabilities. Binary AUROC/AUPR score class 1; with
    more classes they are the unweighted (macro) mean of the one-vs-rest values of the classes for
    which they are defined.

    Parameters
    ----------
    y_true : np.ndarray
        (N,) integer class index of each sample, in ``0 .. K-1``.
    probabilities : np.ndarray
        (N, K) probability of each class.
    label_names : sequence of str | None
        Names of the K classes; ``0``, ``1``, ... when not given.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix

    y_true, probabilities = check_classification(y_true, probabilities)
    n_samples, n_classes = probabilities.shape
    names = class_names(label_names, n_classes)
    labels = np.arange(n_classes)
    y_pred = predicted_classes("mcc", probabilities)
    notes: list[str] = []

    confusion = confusion_matrix(y_true, y_pred, labels=labels)
    support = confusion.sum(axis=1)
    notes += _missing_classes_notes(names, support)

    precision, recall, f1, f1_weighted, kappa = _label_scores(y_true, y_pred, labels)
    if np.count_nonzero(support) == 1:
        # Targets of one class make the agreement expected by chance equal to the agreement seen,
        # whatever the predictions: kappa is 0/0 when they are all that class and 0 otherwise,
        # a number that measures nothing. Undefined, as the AUROC of the same targets is.
        kappa = math.nan
    # A class absent from the targets has no recall, so no F1 either: scikit-learn's 2TP / (2TP + FP + FN)
    # gives 0 wherever it is predicted, which reads as a class the model fails on.
    f1[support == 0] = np.nan
    never_predicted = [names[k] for k in labels if confusion[:, k].sum() == 0]
    if never_predicted:
        classes, verb, whose = _classes(never_predicted)
        notes.append(f"{classes} {verb} never predicted: {whose} precision is undefined (null)")

    # Balanced accuracy = mean recall over the classes present in the targets (sklearn's definition).
    present_recall = recall[support > 0]
    balanced_accuracy = float(present_recall.mean()) if present_recall.size else math.nan

    auroc_per_class, aupr_per_class = _one_vs_rest_curves(y_true, probabilities)
    if n_classes == 2:
        auroc, aupr = auroc_per_class[1], aupr_per_class[1]
    else:
        auroc, aupr = defined_mean(auroc_per_class), defined_mean(aupr_per_class)

    per_class = [
        {
            "label": names[k],
            "support": int(support[k]),
            "precision": finite(precision[k]),
            "recall": finite(recall[k]),
            "f1": finite(f1[k]),
            "auroc": finite(auroc_per_class[k]),
            "aupr": finite(aupr_per_class[k]),
        }
        for k in labels
    ]
    return {
        "n_samples": int(n_samples),
        "label_names": names,
        "balanced_accuracy": finite(balanced_accuracy),
        "auroc": finite(auroc),
        "aupr": finite(aupr),
        "cohen_kappa": finite(kappa),
        "f1_weighted": finite(f1_weighted),
        "accuracy": finite(accuracy_score(y_true, y_pred)),
        "per_class": per_class,
        "confusion_matrix": confusion.astype(int).tolist(),
        "notes": notes,
    }


def _missing_classes_notes(names: list[str], support: np.ndarray) -> list[str]:
    """The one note on the classes the targets lack (their recall, F1, AUROC and AUPR are null), if any.

    Targets of one class leave the headline AUROC and AUPR null too (nothing is ranked), and Cohen's
    kappa (no agreement beyond chance can be measured): one note says so, where a second one on the
    absent classes used to repeat it.
    """
    absent = [name for name, count in zip(names, support, strict=True) if count == 0]
    present = [name for name, count in zip(names, support, strict=True) if count > 0]
    if not absent:
        return []
    if len(present) == 1:
        return [
            f"the targets hold only one class ({present[0]}): AUROC, AUPR, Cohen's kappa and the other classes' recall "
            "and F1 are undefined (null)"
        ]
    classes, _, whose = _classes(absent)
    return [
        f"{classes} {'does' if len(absent) == 1 else 'do'} not occur in the targets: {whose} recall, F1, AUROC and AUPR "
        "are undefined (null) and left out of the balanced accuracy and of the macro averages"
    ]


def _classes(names: list[str]) -> tuple[str, str, str]:
    """``class a``, ``is``, ``its`` for one name; ``classes a, b``, ``are``, ``their`` for several."""
    if len(names) == 1:
        return f"class {names[0]}", "is", "its"
    return f"classes {', '.join(names)}", "are", "their"


def _label_scores(
    y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """scikit-learn's per-class precision, recall and F1 (NaN where undefined), weighted F1 and Cohen's kappa."""
    from sklearn.metrics import cohen_kappa_score, f1_score, precision_recall_fscore_support

    with warnings.catch_warnings():
        # sklearn warns on ill-defined precision or kappa; we report those as null with a note instead.
        warnings.simplefilter("ignore")
        precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=np.nan)
        f1_weighted = f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0.0)
        kappa = cohen_kappa_score(y_true, y_pred, labels=labels)
    return precision, recall, f1, float(f1_weighted), float(kappa)


def channel_metrics(
    task: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    label_names: Sequence[str] | None = None,
    *,
    ch_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Metrics of ``mc`` / ``mmc``: the classification metrics of each channel, then their mean.

    The averaged scalars are the mean over the channels where the metric is defined; the averaged
    confusion matrix is the sum of the per-channel matrices (every channel-window counted once).

    Parameters
    ----------
    task : str
        ``mc`` (y_score: the probability of the positive class per channel) or ``mmc`` (y_score: the
        class probabilities per channel).
    y_true : np.ndarray
        (N, C) class index of each channel of each window.
    y_score : np.ndarray
        (N, C) for ``mc``, (N, C, K) for ``mmc``.
    label_names : sequence of str | None
        Names of the K classes; ``0``, ``1``, ... when not given.
    ch_names : sequence of str | None
        Names of the C channels; ``ch0``, ``ch1``, ... when not given.
    """
    y_true, probabilities = channel_probabilities(task, y_true, y_score)
    n_channels = probabilities.shape[1]
    channels = list(ch_names) if ch_names is not None else [f"ch{c}" for c in range(n_channels)]
    if len(channels) != n_channels:
        raise ValueError(f"{len(channels)} channel names given for {n_channels} channels")

    per_channel = [
        {"channel": name, **classification_metrics(y_true[:, c], probabilities[:, c, :], label_names)}
        for c, name in enumerate(channels)
    ]

    result: dict[str, Any] = {
        "n_samples": int(y_true.shape[0]),
        "n_channels": int(n_channels),
        "label_names": per_channel[0]["label_names"] if per_channel else class_names(label_names, probabilities.shape[-1]),
    }
    notes: list[str] = []
    for key in HEADLINE_CLASSIFICATION:
        values = [entry[key] for entry in per_channel if entry[key] is not None]
        result[key] = float(np.mean(values)) if values else None
        # Null on every channel: the channels' own notes (below) say why.
        if 0 < len(values) < n_channels:
            notes.append(f"{key} is averaged over the {len(values)} of {n_channels} channels where it is defined")
    return {
        **result,
        "confusion_matrix": np.sum([entry["confusion_matrix"] for entry in per_channel], axis=0).astype(int).tolist(),
        "per_channel": per_channel,
        "notes": notes + _channel_notes(per_channel),
    }


def channel_probabilities(task: str, y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The targets (N, C) and class probabilities (N, C, K) of an ``mc`` or ``mmc`` split.

    Parameters
    ----------
    task : str
        ``mc`` (``y_score`` (N, C): the probability of the positive class, made two columns ``[1 - p, p]``)
        or ``mmc`` (``y_score`` (N, C, K)).
    y_true, y_score : np.ndarray
        As :func:`channel_metrics` takes them; a ``ValueError`` when their shapes do not fit ``task``.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if task == "mc":
        if y_score.ndim != 2 or y_true.shape != y_score.shape:
            raise ValueError(f"mc expects y_true and y_score of the same shape (N, C); got {y_true.shape} and {y_score.shape}")
        # One probability of the positive class per channel → two-column probabilities.
        return y_true, np.stack([1.0 - y_score, y_score], axis=-1)
    if task == "mmc":
        if y_score.ndim != 3 or y_true.shape != y_score.shape[:2]:
            raise ValueError(f"mmc expects y_true (N, C) and y_score (N, C, K); got {y_true.shape} and {y_score.shape}")
        return y_true, y_score
    raise ValueError(f"channel_metrics handles mc and mmc, not {task!r}")


def _channel_notes(per_channel: list[dict[str, Any]]) -> list[str]:
    """Each channel's notes, one line per distinct note naming the channels it holds for.

    A note per channel buried the summary under 4 × 22 lines for one sparse TUAR split; each
    channel's own notes stay in its ``per_channel`` entry.
    """
    channels_of: dict[str, list[str]] = {}
    for entry in per_channel:
        for note in entry["notes"]:
            channels_of.setdefault(note, []).append(str(entry["channel"]))
    n_channels = len(per_channel)
    return [
        f"every channel: {note}"
        if len(channels) == n_channels
        else f"{', '.join(channels)} ({len(channels)} of {n_channels} channels): {note}"
        for note, channels in channels_of.items()
    ]


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, output_names: Sequence[str] | None = None) -> dict[str, Any]:
    """MAE, RMSE and R² of a regression.

    Arrays of shape (N, ..., K) are read as K outputs (the last axis; one output for (N,)), every
    other axis pooled. MAE and RMSE run over all elements; R² is the mean of the per-output R²
    (sklearn's ``uniform_average``), each output scored against its own mean.

    Parameters
    ----------
    y_true, y_pred : np.ndarray
        Targets and predictions of the same shape, (N,) or (N, ..., K).
    output_names : sequence of str | None
        Names of the K outputs; ``output0``, ``output1``, ... when not given.
    """
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    flat_true, flat_pred = regression_outputs(y_true, y_pred)
    n_outputs = flat_true.shape[1]
    names = class_names(output_names, n_outputs, prefix="output")
    notes: list[str] = []

    mae = mean_absolute_error(flat_true, flat_pred, multioutput="raw_values")
    rmse = np.sqrt(mean_squared_error(flat_true, flat_pred, multioutput="raw_values"))
    if flat_true.shape[0] >= 2:
        with np.errstate(divide="ignore", invalid="ignore"):  # a constant target gives NaN, reported below
            r2 = r2_score(flat_true, flat_pred, multioutput="raw_values", force_finite=False)
    else:
        r2 = np.full(n_outputs, np.nan)
    constant = [names[k] for k in range(n_outputs) if not math.isfinite(r2[k])]
    if constant:
        notes.append(f"R² is undefined for {', '.join(constant)}: the target is constant (or a single value)")
    return {
        "n_samples": int(np.shape(y_true)[0]),
        "output_names": names,
        "mae": finite(np.abs(flat_true - flat_pred).mean()),
        "rmse": finite(np.sqrt(((flat_true - flat_pred) ** 2).mean())),
        "r2": finite(defined_mean(r2)),
        "per_output": [
            {"output": names[k], "mae": finite(mae[k]), "rmse": finite(rmse[k]), "r2": finite(r2[k])} for k in range(n_outputs)
        ],
        "notes": notes,
    }


def regression_outputs(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Regression targets and predictions as (M, K) float arrays: K outputs (the last axis), every other axis pooled.

    Parameters
    ----------
    y_true, y_pred : np.ndarray
        Of the same shape, (N,) or (N, ..., K); a ``ValueError`` otherwise.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim == 0 or y_true.shape[0] == 0:
        raise ValueError(
            f"regression expects y_true and y_pred of the same shape (N, ...); got {y_true.shape} and {y_pred.shape}"
        )
    flat_true = y_true.reshape(-1, 1) if y_true.ndim == 1 else y_true.reshape(-1, y_true.shape[-1])
    return flat_true, y_pred.reshape(flat_true.shape)


# -- helpers ------------------------------------------------------------------------------------
def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def check_classification(y_true: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` as int64 class indices and ``probabilities`` as float64 (N, K); a ``ValueError`` when they do not fit.

    Parameters
    ----------
    y_true : np.ndarray
        (N,) whole class indices in ``0 .. K-1`` (floats holding whole numbers are taken).
    probabilities : np.ndarray
        (N, K) class probabilities, N ≥ 1 and K ≥ 2.
    """
    y_true = np.asarray(y_true)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or y_true.shape != probabilities.shape[:1]:
        raise ValueError(
            f"classification expects y_true (N,) and probabilities (N, K); got {y_true.shape} and {probabilities.shape}"
        )
    n_samples, n_classes = probabilities.shape
    if n_samples == 0 or n_classes < 2:
        raise ValueError(f"classification needs at least one sample and two classes; got {probabilities.shape}")
    if not np.issubdtype(y_true.dtype, np.integer):
        rounded = np.rint(y_true)
        if not np.array_equal(rounded, y_true):
            raise ValueError("classification targets must be whole class indices")
        y_true = rounded
    y_true = y_true.astype(np.int64)
    if y_true.min() < 0 or y_true.max() >= n_classes:
        raise ValueError(f"classification targets must lie in [0, {n_classes - 1}]; found {y_true.min()}..{y_true.max()}")
    return y_true, probabilities


def _one_vs_rest_curves(y_true: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class one-vs-rest AUROC and average precision; NaN where a class is absent or the only one.

    A class that is every target has no negatives: any ranking has precision 1 at every recall, so
    its average precision would be 1 whatever the scores; like its AUROC it is undefined (NaN).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    n_classes = probabilities.shape[1]
    auroc = np.full(n_classes, np.nan)
    aupr = np.full(n_classes, np.nan)
    for k in range(n_classes):
        positive = y_true == k
        if positive.all() or not positive.any():
            continue  # no positives, or no negatives: nothing is ranked, AUROC and AP are undefined
        aupr[k] = average_precision_score(positive, probabilities[:, k])
        auroc[k] = roc_auc_score(positive, probabilities[:, k])
    return auroc, aupr


def class_names(names: Sequence[str] | None, count: int, prefix: str = "class") -> list[str]:
    """The names of ``count`` classes (or outputs) as strings; their numbers where none are given.

    Parameters
    ----------
    names : sequence of str | None
        The names of the first classes (a head may give more outputs than its split names classes:
        the others are numbered), or ``None``.
    count : int
        How many classes (or regression outputs) there are.
    prefix : str
        ``"class"`` numbers unnamed classes ``0``, ``1``, ...; any other prefix is written before
        the number (``output0``).

    Raises
    ------
    ValueError
        When ``names`` gives more names than there are classes.
    """
    names = [str(name) for name in names or []]
    if len(names) > count:
        raise ValueError(f"{len(names)} label names given for {count} {'classes' if prefix == 'class' else 'outputs'}")
    return names + [f"{prefix}{k}" if prefix != "class" else str(k) for k in range(len(names), count)]


def defined_mean(values: np.ndarray) -> float:
    """The mean of the finite ``values``, NaN when none is: a macro average over the classes, outputs or channels
    where a metric is defined.

    Parameters
    ----------
    values : np.ndarray
        The values, NaN or inf where undefined.
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else math.nan


def nonfinite_scores(scores: np.ndarray, windows_of: str) -> str | None:
    """What is wrong with a finite model's ``scores`` (a clause about the model), or ``None`` when all are finite.

    Weights holding NaN or inf are refused as they are read
    (:func:`~biofound_cli.models.checkpoints.load_state_dict_file`); finite ones still give such scores on
    windows they overflow on (a window holding inf, or values far beyond training's). No metric measures
    them (``evaluate`` raised scikit-learn's traceback) and a table of them predicts nothing (``predict`` wrote NaN).

    Parameters
    ----------
    scores : np.ndarray
        One row of scores per window, (N, ...).
    windows_of : str
        What the windows are of (a split, a recording), as the clause names it.
    """
    bad = ~np.isfinite(scores).all(axis=tuple(range(1, scores.ndim)))
    if not bad.any():
        return None
    return (
        f"its scores are NaN or inf for {int(bad.sum())} of {len(bad)} windows of {windows_of}, "
        "though its weights are finite: the model overflows on them"
    )
