"""The task names: what a model's head is trained to output, each spelled one way.

``reconstruction`` is the pre-training task (masked-signal reconstruction, no labels); the
others are the upstream classification types (``bc`` binary, ``ml`` / ``mcc`` multi-class,
``mc`` multi-label per channel, ``mmc`` multi-class per channel) and ``regression``. The
stage that trains a reconstruction head is ``biofound pretrain``: a stage is not a task.

Earlier versions spelled the pre-training task ``pretrain`` (the model registry, the Python
API) or ``pretraining`` (checkpoint metadata); :func:`normalise_task` reads those where a task
name comes in (recipes, packed files and shards, checkpoint metadata, the registry's
functions), so everything else compares with :data:`RECONSTRUCTION` only.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

TaskName = Literal["bc", "ml", "mc", "mcc", "mmc", "regression", "reconstruction"]
"""A task name as recipes, packed files and checkpoints spell it."""

TASKS: Final[tuple[str, ...]] = get_args(TaskName)

RECONSTRUCTION: Final = "reconstruction"
"""The pre-training task."""

OLD_PRETRAINING_SPELLINGS: Final = ("pretrain", "pretraining")
"""Earlier spellings of :data:`RECONSTRUCTION`, still read."""

LABEL_LAYOUT: Final[dict[str, str]] = {
    "bc": "window",
    "ml": "window",
    "mcc": "window",
    "mc": "channel",
    "mmc": "channel",
    "regression": "value",
}
"""How each task's labels are laid out: one class per window, classes per channel, or values."""


def labelled_alike(task: str, other: str | None) -> bool:
    """Whether a head of ``task`` is trained and scored on labels packed for the task ``other``.

    The same task, or two tasks of one class per window (``bc`` / ``ml`` / ``mcc``: a ``bc`` head on the two
    classes ``pack`` recorded as ``mcc``); the per-channel tasks and regression only on their own labels.
    ``finetune`` refuses, and ``evaluate`` / ``export --split`` score by, this one rule.

    Parameters
    ----------
    task : str
        The head's task.
    other : str or None
        The packed labels' task; None (no stated task) is alike no task.
    """
    return task == other or LABEL_LAYOUT.get(task) == LABEL_LAYOUT.get(other or "") == "window"


def normalise_task(task: str) -> str:
    """``task`` as this module spells it: an earlier spelling of pre-training becomes ``reconstruction``.

    Other names, known or not, come back unchanged for the caller to check.

    Parameters
    ----------
    task : str
        A task name as a file, recipe or caller gave it.
    """
    return RECONSTRUCTION if task in OLD_PRETRAINING_SPELLINGS else task


MULTI_CLASS_TASKS: Final = ("ml", "mcc", "mmc")
"""The tasks whose head scores each class with an output of its own (a softmax over them)."""


def head_size_problem(task: str, num_classes: int | None) -> str | None:
    """Why a ``task`` head cannot be built with ``num_classes`` outputs (one clause naming ``num_classes``), or ``None``.

    A multi-class head of one output was scored as a single-logit binary head (:func:`score_rule`)
    yet counted as a head of one class (:func:`head_classes`): ``finetune`` trained it and
    ``evaluate`` reported a class 1 that the split does not have.

    Parameters
    ----------
    task : str
        A downstream task (not ``reconstruction``, whose head has no classes).
    num_classes : int | None
        The head's ``num_classes``; ``None`` when not given.
    """
    if num_classes is None or num_classes < 1:
        return f"task {task!r} needs num_classes (a positive whole number), got {num_classes}"
    if task in MULTI_CLASS_TASKS and num_classes < 2:
        return (
            f"a head of task {task!r} scores each class with an output of its own, so num_classes must be at least 2, "
            f"got {num_classes} (a binary head of one logit is task 'bc')"
        )
    return None


def head_classes(task: str, num_classes: int) -> int:
    """The classes a head of ``num_classes`` outputs tells apart: 2 for a single-logit ``bc`` head, else ``num_classes``.

    A single-logit binary head scores class 1 by a sigmoid (``model.num_classes = 1`` with
    ``train.loss = "bce"``), so it learns and is scored on splits of two classes.

    Parameters
    ----------
    task : str
        The head's task.
    num_classes : int
        Its ``num_classes`` (outputs per window, or per channel for ``mmc``).
    """
    return 2 if task == "bc" and num_classes == 1 else num_classes


def score_rule(task: str, last_axis: int) -> str:
    """How a head's output becomes scores: ``values``, ``sigmoid`` or ``softmax``.

    :func:`~biofound_cli.training.evaluate.scores_from_logits` applies it. The one place the
    decoding is decided, so that an export folder's card and ``config.json``
    describe the graph's output as evaluate and predict read it, and ``train.loss = "auto"``
    trains the head for that reading (:func:`~biofound_cli.training.objectives.default_loss`).

    Parameters
    ----------
    task : str
        The head's task.
    last_axis : int
        Length of the output's last axis (1 for a single-logit binary head).
    """
    if task == "regression":
        return "values"
    return "sigmoid" if task == "mc" or last_axis == 1 else "softmax"
