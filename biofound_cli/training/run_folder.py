"""The run folder ``runs/NAME/``: resolved recipe, environment, metrics, checkpoints, curves.

::

    runs/NAME/
      recipe.json          the recipe after --set overrides and defaults
      recipe_history.jsonl every start of the run: time, checkpoint resumed, changes, recipe, environment
      environment.json     the latest start's package versions, each rank's host, device and GPU, git commit
      metrics.jsonl        one JSON object per logged step or evaluation
      checkpoints/step-*/  resumable checkpoints (model.safetensors + trainer_state.pt)
      checkpoints/best/    weights of the best evaluation
      debug/               the weights at a NaN loss, for inspection
      train_curve.png      the one training-curve figure: logged loss, each epoch's mean of it, watched metric, best step
      .lock                held by the one job training here (:meth:`RunFolder.held`)

Only rank 0 writes here.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import platform
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from biofound_cli.atomic import (
    append_line,
    atomic_folder,
    read_json_object,
    remove_leftovers,
    write_json_atomic,
    write_text_atomic,
)
from biofound_cli.errors import BiofoundError, UsageError
from biofound_cli.models.checkpoints import BEST_IN_RUN, WEIGHTS_FILE, read_metadata
from biofound_cli.recipes.run_record import RECORD_NAME
from biofound_cli.store.folder_lock import held_lock
from biofound_cli.store.output_folder import missing_folders, remove_empty
from biofound_cli.tasks import RECONSTRUCTION

logger = logging.getLogger(__name__)

# Fields a resumed run may change without a word: they change neither the weights nor the
# data order (loader workers draw no random numbers of their own; see training/loop.py).
FREE_TO_CHANGE = frozenset(
    {
        "data.num_workers",
        "data.test",
        "train.log_every",
        "train.keep_checkpoints",
        "train.checkpoint_every",
        "train.preemption_signals",
        "train.device",
    }
)
_TRAINING_SECTIONS = ("data", "model", "optim", "train")
_SPLIT_FIELDS = ("train", "val")
"""The ``[data]`` files a run trains and validates on: a new path to the same windows is a move, not a change."""
# How far above a checkpoint file its run folder can be: runs/NAME/checkpoints/best/model.safetensors.
_RUN_FOLDER_DEPTH = 4


def read_metrics_file(metrics_jsonl_path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file; blank and malformed lines (a run killed mid-write) are skipped.

    Parameters
    ----------
    metrics_jsonl_path : Path
        The file, one JSON object per line.
    """
    records = []
    with Path(metrics_jsonl_path).open(encoding="utf-8") as stream:
        for line in stream:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a blank line too
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def run_folder_of(path: Path) -> RunFolder | None:
    """The run folder holding ``path``: the nearest parent (or ``path`` itself) with a ``recipe.json``, else ``None``.

    Found by its record, not by the path's shape, so a checkpoint anywhere in a run (``best/``,
    ``step-N/``, ``export/``) and a run folder moved or renamed are found alike.

    Parameters
    ----------
    path : Path
        A checkpoint file or folder, or a run folder; its parents are searched a few levels up.
    """
    given = Path(path)
    resolved = given.resolve()
    for level, folder in enumerate([resolved, *resolved.parents][: _RUN_FOLDER_DEPTH + 1]):
        if RunFolder(folder).recipe_file.is_file():
            return RunFolder(_as_given(given, level, folder))
    return None


def _as_given(given: Path, level: int, found: Path) -> Path:
    """``found``, ``level`` folders above ``given``, written as ``given`` was: relative to the working folder if it was.

    Every other path a command prints is the user's own; the run's (its curve, the export's default
    ``--out``) was absolute. Through a link the lexical parent is another folder: the found one is then
    written relative to the working folder, or absolute where ``given`` was.
    """
    lexical = [given, *given.parents]
    if level < len(lexical) and lexical[level].resolve() == found:
        return lexical[level]
    return Path(os.path.relpath(found)) if not given.is_absolute() else found


class RunFolder:
    """Paths and writers of one run folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / BEST_IN_RUN.parent
        self.best = self.root / BEST_IN_RUN
        self.recipe_file = self.root / RECORD_NAME
        self.history_file = self.root / "recipe_history.jsonl"
        self.environment_file = self.root / "environment.json"
        self.debug = self.root / "debug"
        self.metrics_file = self.root / "metrics.jsonl"
        self.curve_file = self.root / "train_curve.png"
        self.lock_file = self.root / ".lock"

    def create(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    def trained_stage(self) -> str | None:
        """``pretrain`` or ``finetune``: the stage whose checkpoints this folder holds (``None``: none yet).

        Pre-training is the one stage that trains the reconstruction task (``finetune`` refuses
        it), so the task in a checkpoint's metadata names its stage, in runs of every version.
        """
        from biofound_cli.training.state import latest_checkpoint

        newest = latest_checkpoint(self.checkpoints)
        for folder in (self.best, newest):
            weights = folder / WEIGHTS_FILE if folder is not None else None
            if weights is None or not weights.is_file():
                continue
            try:
                task = read_metadata(weights).task
            except BiofoundError:  # a damaged file: --resume auto names it and tries the next one
                continue
            if task is not None:
                return "pretrain" if task == RECONSTRUCTION else "finetune"
        return None

    def check_stage(self, stage: str) -> None:
        """Refuse to train ``stage`` into a folder that holds the other stage's run.

        A recipe with a ``name`` (or ``output.run_name``) pre-trains and fine-tunes into the same
        folder (:meth:`~biofound_cli.recipes.schema.Recipe.run_dir`): a fine-tuning would resume the
        pre-training's checkpoint, and ``evaluate`` / ``export`` would take its weights for the
        fine-tuned model.

        Parameters
        ----------
        stage : str
            ``pretrain`` or ``finetune``, the stage about to start.
        """
        other = self.trained_stage()
        if other is None or other == stage:
            return
        own = f"{self.root.name}-{stage}"
        fine_tuning = stage == "finetune"
        start_from = f" and --set model.checkpoint={self.best}" if fine_tuning else ""
        also = ", and the same run name for evaluate and export" if fine_tuning else ""
        raise UsageError(
            f"{self.root} holds the {other} run of this recipe, since {other} and {stage} of a recipe with a name "
            f"share one run folder; give the {stage} its own: output.run_name = {own!r} in the recipe (or "
            f"--set output.run_name={own}{start_from} here{also})"
        )

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the run folder for this process while the block runs, then clear what a killed run left.

        Two jobs of one recipe (a second ``sbatch``, a requeue while the first still runs) would
        otherwise both train into the folder, interleave ``metrics.jsonl`` and overwrite each
        other's checkpoints. The lock is an ``fcntl`` lock on ``.lock`` (a ``msvcrt`` byte lock
        on Windows): the kernel (or the NFS lock manager) drops it when the process ends, SIGKILL
        included, and the forked loader workers do not inherit it. On a file system or platform
        without locks the run goes on with a warning. Once held, no other process writes here, so the temporaries left by a killed
        run are removed (a half-written checkpoint can be as large as the model and optimiser) and a checkpoint it had moved
        aside is put back, in every folder training writes checkpoints into: ``checkpoints/`` and ``debug/``.

        Raises
        ------
        UsageError
            Another process holds the folder.
        """
        made = missing_folders(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        with held_lock(
            self.lock_file,
            lambda holder: (
                f"{self.root} is in use by {holder}; wait for that run to end (or stop it), or set "
                "output.run_name to train a separate run"
            ),
            "the run folder is not held; make sure no other job trains into it",
            opened=self._open_lock_file,
        ):
            for folder in (self.root, self.checkpoints, self.debug):
                for leftover in remove_leftovers(folder):
                    logger.info(f"cleared {leftover}, left by a run that was killed while writing it")
            try:
                yield
            finally:
                if made:
                    self._remove_if_unused(made)

    def _open_lock_file(self) -> IO[str]:
        """``.lock``, opened to append; a run folder training cannot write (a read-only copy) is refused, naming the way on."""
        try:
            return self.lock_file.open("a+")
        except OSError as error:
            if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise UsageError(
                f"{self.root}: the run folder is not writable ({error.strerror}), and training writes its checkpoints "
                "there; copy it to a folder you can write to and point output.runs_dir at the folder holding the copy "
                "(--set output.runs_dir=FOLDER)"
            ) from None

    def _remove_if_unused(self, made: list[Path]) -> None:
        """Remove the folder of a run that ended before it trained (no checkpoint, metric or debug weights).

        The folders above it that this start made (``runs/`` of a first run; ``made``, deepest first, begins with
        the run folder) go too once empty: an empty ``runs/`` left by a refused first job looked like a started project.

        A refusal that needs the data (windows that do not fit the model, fewer windows than one
        global batch) comes after the folder is taken, some after the start was recorded
        (``recipe.json``, ``environment.json``, an empty ``metrics.jsonl``); leaving ``runs/NAME``
        behind looked like a run that had started. Called only for a folder this start made, while
        the lock is still held, so every file in it is this start's and no other job is inside.
        """
        start_records = {self.recipe_file, self.history_file, self.environment_file, self.lock_file}
        for path in self.root.iterdir():
            untrained = path in start_records or (path == self.metrics_file and not self.read_metrics())
            if not (untrained or (path == self.checkpoints and not any(path.iterdir()))):
                return
        for path in self.root.iterdir():
            path.rmdir() if path.is_dir() else path.unlink()
        remove_empty(made)  # up to a folder in which another job's run folder appeared beside this one

    def recipe_changes(self, recipe: dict[str, Any], world_size: int) -> list[str]:
        """What ``recipe`` and ``world_size`` change against the run's ``recipe.json`` and environment.

        One ``"section.key: old -> new"`` line per changed training field (see
        :data:`FREE_TO_CHANGE` for the fields left out); empty when nothing changed or the
        folder has no recipe yet.

        Parameters
        ----------
        recipe : dict
            The recipe of this start.
        world_size : int
            The number of processes of this start.
        """
        previous = read_json_object(self.recipe_file)
        if previous is None:
            return []
        changes = []
        environment = read_json_object(self.environment_file) or {}
        fingerprints = self.recorded_fingerprints()
        for section in _TRAINING_SECTIONS:
            old, new = previous.get(section) or {}, recipe.get(section) or {}
            for key in sorted(set(old) | set(new)):
                if f"{section}.{key}" in FREE_TO_CHANGE or old.get(key) == new.get(key):
                    continue
                if section == "data" and _moved(key, old.get(key), new.get(key), fingerprints):
                    continue
                if section == "model" and _start_moved(key, old.get(key), new.get(key)):
                    continue
                changes.append(f"{section}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
        if environment.get("world_size", world_size) != world_size:
            changes.append(f"world size (processes): {environment['world_size']} -> {world_size}")
        return changes

    def splits_at_new_paths(self, recipe: dict[str, Any]) -> dict[str, str]:
        """The ``[data]`` splits trained and validated on that ``recipe`` names at another path than ``recipe.json``.

        Empty when the folder has no recipe yet.

        Parameters
        ----------
        recipe : dict
            The recipe of this start.

        Returns
        -------
        dict of str to str
            The new path by field (``train``, ``val``); a split set or unset is not a new path.
        """
        previous = (read_json_object(self.recipe_file) or {}).get("data") or {}
        new = recipe.get("data") or {}
        return {
            key: str(new[key])
            for key in _SPLIT_FIELDS
            if previous.get(key) is not None and new.get(key) is not None and previous[key] != new[key]
        }

    def recorded_fingerprints(self) -> dict[str, str]:
        """The provenance digest of each split the run trained and validated on, as ``environment.json`` records it.

        A resume that finds nothing left to train records them again: it opens no data, and a
        split at a new path holds the same windows (:meth:`recipe_changes` said so).
        """
        return dict((read_json_object(self.environment_file) or {}).get("data_fingerprints") or {})

    def record_start(
        self, recipe: dict[str, Any], environment: dict[str, Any], *, resumed_from: Path | None, changes: list[str]
    ) -> None:
        """Record one start of the run: ``recipe.json`` and ``environment.json`` describe it, and a line of
        ``recipe_history.jsonl`` keeps it with the starts before it.

        A requeue on another node rewrote ``environment.json``, and the machine that trained the
        earlier steps was nowhere on file: each history line keeps its start's environment.

        Parameters
        ----------
        recipe : dict
            The recipe as this start runs it (overrides applied; values JSON does not know are written as text).
        environment : dict
            This start's machine, from :func:`describe_environment`.
        resumed_from : Path | None
            The checkpoint folder this start resumed from; None for a fresh start.
        changes : list of str
            What changed against the run's recipe, from :meth:`recipe_changes`.
        """
        self.create()
        record = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "resumed_from": str(resumed_from) if resumed_from else None,
            "changes": changes,
            "recipe": recipe,
            "environment": environment,
        }
        append_line(self.history_file, json.dumps(record, default=str))
        write_json_atomic(self.recipe_file, recipe)
        write_json_atomic(self.environment_file, environment)

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Add one record to ``metrics.jsonl`` (values JSON does not know are written as floats), whole or not at all.

        Parameters
        ----------
        record : dict
            One line's fields, e.g. ``split``, ``step``, ``loss``.
        """
        append_line(self.metrics_file, json.dumps(record, default=float))

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every record of ``metrics.jsonl`` (none when the run has not logged yet)."""
        return read_metrics_file(self.metrics_file) if self.metrics_file.is_file() else []

    def last_record(self, split: str, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The newest ``metrics.jsonl`` record of ``split`` (``train`` or ``val``), or ``{}``.

        Parameters
        ----------
        split : str
            ``train`` or ``val``.
        records : list of dict | None
            The records already read (:meth:`read_metrics`), so that several splits read the file once.
        """
        of_split = [record for record in (self.read_metrics() if records is None else records) if record.get("split") == split]
        return of_split[-1] if of_split else {}

    def truncate_metrics(self, step: int) -> None:
        """Drop records after ``step`` so a resumed run does not log those steps twice.

        Parameters
        ----------
        step : int
            The step of the checkpoint resumed from; records without a step are kept.
        """
        kept = [record for record in self.read_metrics() if record.get("step", 0) <= step]
        write_text_atomic(self.metrics_file, "".join(json.dumps(record) + "\n" for record in kept))

    def restore_best(self, checkpoint: Path, step: int, best_step: int | None) -> None:
        """Make ``checkpoints/best`` the best weights as of ``checkpoint``, the checkpoint a run resumes from.

        An evaluation after that checkpoint may have replaced them before the run stopped (a kill,
        ``--resume`` of an older checkpoint); a resumed run that does not retrace its steps
        exactly (``--allow-changes``, another number of processes or threads, a GPU) would
        otherwise keep weights it never trained as its best, under another step than it reports.

        Parameters
        ----------
        checkpoint : Path
            The ``step-N`` folder resumed from; its :data:`~biofound_cli.training.state.BEST_FILE`
            holds the best weights of that moment.
        step : int
            That checkpoint's step: weights of the best evaluated up to it stay (after another
            ``train.early_stopping_metric`` they are the old metric's best until the next evaluation).
        best_step : int | None
            The step of the best evaluation that checkpoint records; ``None`` before the first.
        """
        from biofound_cli.training.state import BEST_FILE, link_or_copy

        weights = self.best / WEIGHTS_FILE
        held = read_metadata(weights).extra.get("step") if weights.is_file() else None
        if held is None or held <= step:  # written up to the checkpoint: its best, or the old metric's
            return
        saved = Path(checkpoint) / BEST_FILE
        if best_step is None:
            logger.info(f"removed {self.best}: step {held}'s weights, evaluated after {checkpoint} was written")
            shutil.rmtree(self.best)
        elif saved.is_file():
            with atomic_folder(self.best) as temporary:
                link_or_copy(saved, temporary / WEIGHTS_FILE)
            logger.info(f"put back {self.best} as it was at {checkpoint} (step {best_step}'s weights)")
        else:
            logger.warning(
                f"{self.best} holds step {held}'s weights, evaluated after {checkpoint} was written, and that checkpoint "
                f"keeps no copy of step {best_step}'s; they stay until an evaluation of this run does better"
            )

    def plot_curve(self, metric: str, *, best_step: int | None = None, title: str | None = None) -> Path | None:
        """Training loss and ``metric`` against the step, the best checkpoint marked; ``None`` when nothing was logged.

        Parameters
        ----------
        metric : str
            The watched validation metric.
        best_step : int | None
            The step the best checkpoint was saved at, marked on every panel.
        title : str | None
            The figure's title; the run folder's name when ``None``.
        """
        if not self.read_metrics():
            return None
        from biofound_cli.training.curves import plot_training_curves

        # The loss panel already shows a watched loss; then the second panel shows a task metric.
        return plot_training_curves(
            self.metrics_file,
            self.curve_file,
            metric=None if "loss" in metric else metric,
            best_step=best_step,
            title=title or self.root.name,
        )


def _moved(key: str, old: Any, new: Any, fingerprints: dict[str, str]) -> bool:
    """Whether ``data.KEY`` names, at a new path, the windows the run started on (same provenance digest).

    Jobs that stage their packed files to a node's local disk give them another path at every
    requeue; ``--resume auto`` refused that as a change of recipe, and ``--allow-changes``, the only
    way on, would let real changes through unattended too.
    """
    from biofound_cli.store.dataset import read_packed_info

    recorded = fingerprints.get(key)
    if key not in _SPLIT_FIELDS or not recorded or old is None or new is None:
        return False
    try:
        same = read_packed_info(Path(new)).fingerprint == recorded
    except BiofoundError:  # unreadable: the run's own checks name it (a missing one was refused as a fresh run is)
        return False
    if same:
        logger.info(f"data.{key} moved: {old} -> {new} (the same windows)")
    return same


def _start_moved(key: str, old: Any, new: Any) -> bool:
    """Whether ``model.KEY`` is ``model.checkpoint`` at another path, which a resume does not read.

    Jobs that stage the starting weights to a node's local disk (``$TMPDIR``) name them at another
    path at every requeue; the resume takes its weights from its checkpoint and keeps the
    provenance the first start recorded, so the path was refused as a change of recipe for nothing.
    Setting or unsetting it is still a change.
    """
    if key != "checkpoint" or old is None or new is None:
        return False
    logger.info(f"model.checkpoint moved: {old} -> {new} (not read: a resume's weights come from its checkpoint)")
    return True


def describe_rank(rank: int, device: str) -> dict[str, Any]:
    """One process of the job as ``environment.json`` lists it: rank, host, process id, device and GPU.

    Parameters
    ----------
    rank : int
        The process's rank (0 with one process).
    device : str
        The device it trains on.
    """
    import torch

    on_gpu = torch.device(device).type == "cuda"
    return {
        "rank": rank,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": device,
        "gpu": torch.cuda.get_device_name(torch.device(device)) if on_gpu else None,
    }


def describe_environment(ranks: list[dict[str, Any]], data_fingerprints: dict[str, str]) -> dict[str, Any]:
    """Versions, every rank's host, device and GPU, git commit and the data's digests: what a bug report
    or a reproduction needs.

    Parameters
    ----------
    ranks : list of dict
        :func:`describe_rank` of each process, in rank order: a multi-node job may mix GPUs.
    data_fingerprints : dict of str to str
        The provenance digest of each ``[data]`` split trained and validated on (``train``,
        ``val``): a resume that finds the same windows at another path (data staged to a
        node's local disk) takes it for a move, not a change of recipe.
    """
    import torch

    from biofound_cli.environment import git_commit, package_versions

    return {
        **package_versions(("torch", "numpy", "mne", "h5py", "safetensors")),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "world_size": len(ranks),
        "ranks": ranks,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "data_fingerprints": data_fingerprints,
    }
