"""The quick start: the whole pipeline on the bundled real samples, one chain per model.

Each chain runs the same functions as the stage commands, in one process, on a recipe shipped
as package data (``biofound_cli/data/recipes/``) so that it works from an installed package:

    preprocess → pack → finetune → evaluate (test split) → export ONNX → predict (raw test recordings)

* ``tinymyo``: TinyMyo on the Myo armband gestures (8 EMG channels, 200 Hz, 5 classes).
* ``luna``: LUNA on the SCP1 slow-cortical-potential trials (6 EEG channels, custom positions).

Every path of a shipped recipe is moved under ``out_dir / <chain>``; the recipe's
``preprocess.root`` names a sample folder inside the package (``biofound_cli/data/samples/...``)
and is resolved against the installed package, wherever it lives.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from biofound_cli.errors import UsageError
from biofound_cli.progress import NO_PROGRESS, ProgressReporter
from biofound_cli.recipes.pack import PackSection
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.recipes.schema import Recipe
from biofound_cli.recipes.shipped import bundled_path, shipped_recipe
from biofound_cli.store.worker_lifetime import Stopped, signal_of, sigterm_as_interrupt

if TYPE_CHECKING:
    from biofound_cli.training.run import RunResult

logger = logging.getLogger(__name__)

# Chain name → shipped recipe, in the order the quick start runs them.
CHAINS: dict[str, str] = {"tinymyo": "tinymyo_myo.toml", "luna": "luna_scp1.toml"}

# Held-out metrics shown in the final table, in this order.
METRICS = ("accuracy", "balanced_accuracy", "auroc", "cohen_kappa", "f1_weighted")


@dataclass
class ChainResult:
    """Where one chain put its artefacts and what it scored on the test split."""

    name: str
    recipe: Path
    variant: str
    chance: float
    metrics: dict[str, float | None]
    artefacts: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The chain's part of the ``--json`` summary."""
        return {
            "recipe": str(self.recipe),
            "variant": self.variant,
            "chance": self.chance,
            "metrics": self.metrics,
            "artefacts": self.artefacts,
            "seconds": self.seconds,
        }


def load_chain_recipe(name: str, out_dir: Path) -> tuple[Path, Recipe]:
    """Load the shipped recipe of chain ``name`` with every output path moved under ``out_dir / name``.

    Parameters
    ----------
    name : {"tinymyo", "luna"}
    out_dir : Path
        The quick start's output folder.

    Returns
    -------
    path : Path
        The shipped recipe file.
    recipe : Recipe
        The validated recipe, with absolute sample and output paths.
    """
    from biofound_cli.recipes import load_recipe
    from biofound_cli.recipes.loading import read_toml

    if name not in CHAINS:
        raise UsageError(f"--only {name}: unknown chain; choose one of {', '.join(CHAINS)}")
    path = shipped_recipe(CHAINS[name])
    root = Path(read_toml(path)["preprocess"]["root"])
    chain_dir = Path(out_dir).resolve() / name
    shards, packed = chain_dir / "shards", chain_dir / "packed"
    flags = {
        "preprocess.root": str(bundled_path(root).resolve()),
        "preprocess.out": str(shards),
        "pack.shards": str(shards),
        "pack.out": str(packed),
        "data.train": str(packed / "train.h5"),
        "data.val": str(packed / "val.h5"),
        "data.test": str(packed / "test.h5"),
        "output.runs_dir": str(chain_dir / "runs"),
    }
    return path, load_recipe(path, flags=flags)


def run_chain(
    name: str,
    out_dir: Path,
    *,
    reporter: ProgressReporter = NO_PROGRESS,
    export: bool = True,
    continue_command: str | None = None,
) -> ChainResult:
    """Run one chain of the quick start end to end.

    Parameters
    ----------
    name : {"tinymyo", "luna"}
    out_dir : Path
        Everything is written under ``out_dir / name``.
    reporter : ProgressReporter
        Progress of each stage; by default nothing is shown. Each stage's start is logged on
        this module's logger, its messages on the stage's own.
    export : bool
        Export the best checkpoint to ONNX (verified against PyTorch) at the end.
    continue_command : str | None
        The command that continues the quick start, named when a stop signal ends training (a
        re-run resumes: the quick start trains with ``resume="auto"``).

    Returns
    -------
    ChainResult
        Where the chain's artefacts went and its held-out metrics.
    """
    from biofound_cli.evaluation.evaluate import evaluate_recipe
    from biofound_cli.store.dataset import read_packed_info
    from biofound_cli.store.output_folder import prepare_output_folder
    from biofound_cli.store.packer import pack_shards
    from biofound_cli.store.preprocess import run_preprocess
    from biofound_cli.training.run import run_training

    path, recipe = load_chain_recipe(name, out_dir)
    prepare_output_folder(out_dir)  # a file given as --out is named as given, not as DIR/<chain>/shards
    source = str(path)
    chain = _chain_parts(path, recipe)
    seconds: dict[str, float] = {}
    artefacts: dict[str, str] = {}

    # _stops_named before _timed: a stop right after the stage's first line is the stage's.
    with (
        _stops_named("preprocess", continue_command),
        _timed(seconds, "preprocess", f"[{name}] preprocess {chain.preprocess.root}"),
    ):
        preprocessed = run_preprocess(chain.preprocess, source, reporter=reporter)
        artefacts["shards"] = str(preprocessed.out)
    with _stops_named("pack", continue_command), _timed(seconds, "pack", f"[{name}] pack → {chain.packed}"):
        pack_shards(chain.shards, chain.packed, chain.pack, reporter=reporter)
        artefacts["packed"] = str(chain.packed)
    with _timed(seconds, "finetune", f"[{name}] finetune {chain.variant}"):
        # resume="auto": a re-run reuses the finished run. Training words its own stops (75, 130).
        run = run_training(
            recipe, stage="finetune", source=source, reporter=reporter, resume="auto", continue_command=continue_command
        )
        artefacts.update(_finetune_artefacts(run))
    with _stops_named("evaluate", continue_command), _timed(seconds, "evaluate", f"[{name}] evaluate on the held-out test split"):
        evaluated = evaluate_recipe(recipe, source=source, reporter=reporter, split="test")
        artefacts["report"] = str(evaluated.report_path)
        artefacts.update({f"plot_{plot.stem}": str(plot) for plot in evaluated.plot_paths})
    if export:
        with _stops_named("export", continue_command), _timed(seconds, "export"):
            artefacts.update(_export(name, recipe, source, reporter))
    with (
        _stops_named("predict", continue_command),
        _timed(seconds, "predict", f"[{name}] predict on the raw test recordings"),
    ):
        predictions = _predict_test_recordings(recipe, chain, artefacts.get("best_checkpoint"), reporter)
        artefacts["predictions"] = str(predictions)

    windows = evaluated.report["headline"]["windows"]
    return ChainResult(
        name=name,
        recipe=path,
        variant=chain.variant,
        chance=round(1.0 / read_packed_info(chain.test).num_classes, 4),
        metrics={metric: windows.get(metric) for metric in METRICS},
        artefacts=artefacts,
        seconds=seconds,
    )


@dataclass(frozen=True)
class _ChainParts:
    """What the quick start reads from a chain's recipe, each checked present."""

    preprocess: PreprocessSection
    pack: PackSection
    shards: Path
    packed: Path
    test: Path
    variant: str


def _chain_parts(path: Path, recipe: Recipe) -> _ChainParts:
    """The sections and paths of a chain's recipe (:func:`load_chain_recipe` sets every path)."""
    preprocess, pack, data, model = recipe.preprocess, recipe.pack, recipe.data, recipe.model
    if preprocess is None or pack is None or pack.shards is None or pack.out is None:
        raise UsageError(f"{path}: the quick start needs [preprocess] and [pack] sections; reinstall biofound")
    if data is None or data.test is None or model is None or model.variant is None:
        raise UsageError(f"{path}: the quick start needs data.test and model.variant; reinstall biofound")
    return _ChainParts(preprocess, pack, pack.shards, pack.out, data.test, model.variant)


@contextmanager
def _timed(seconds: dict[str, float], stage: str, start_message: str | None = None) -> Iterator[None]:
    """Log ``start_message``, then record the seconds the ``with`` block took under ``seconds[stage]`` (when it does not fail)."""
    if start_message:
        logger.info(start_message)
    started = time.monotonic()
    yield
    seconds[stage] = round(time.monotonic() - started, 1)


def stop_error(signal_name: str, continue_command: str | None, when: str = "") -> Stopped:
    """The one line of a quick start stopped by Ctrl-C, SIGTERM or SIGUSR1 outside training, with the command that continues it.

    Parameters
    ----------
    signal_name : str
        The signal that stopped it: ``"SIGINT"`` for Ctrl-C (status 130), ``"SIGTERM"`` or ``"SIGUSR1"`` (143).
    continue_command : str | None
        The ``biofound quickstart`` command that continues (a re-run reuses the finished stages);
        ``None`` from Python, where the line says to run the quick start again.
    when : str
        The stage the stop came in or before, when known: ``"during evaluate"``, ``"before pack"``.
    """
    during = f" {when}" if when else ""
    then = f"continue with: {continue_command}" if continue_command else "run the quick start again with the same out_dir"
    details = {"resume_command": continue_command} if continue_command else {}
    return Stopped(signal_name, f"{during}; the finished stages are kept, {then}", details=details)


@contextmanager
def _stops_named(stage: str, continue_command: str | None) -> Iterator[None]:
    """A stop signal during ``stage``, or taken before it, ends the quick start with :func:`stop_error`.

    Run in this process the stages said "re-run the same command" (``biofound export ...``,
    which the user never typed) or, for evaluate, which has no SIGTERM handler of its own
    below the command line, nothing at all: the default action killed the process silently.
    Not for training, whose stops write a checkpoint and name this command themselves. A stop
    that an earlier stage took as its last recordings finished, and finished, is raised as this
    stage starts (:func:`~biofound_cli.store.worker_lifetime.sigterm_as_interrupt`): "before pack".
    """
    when = f"before {stage}"
    try:
        with sigterm_as_interrupt():
            when = f"during {stage}"
            yield
    except KeyboardInterrupt as stop:
        raise stop_error(signal_of(stop), continue_command, when) from None
    except Stopped as error:  # the stage's own stop line (export, predict, preprocess, pack)
        raise stop_error(error.signal_name, continue_command, when) from None


def _finetune_artefacts(trained: RunResult) -> dict[str, str]:
    """The run folder, best checkpoint and training curve of a fine-tuning."""
    run_folder, fitted, curve = trained.run_folder, trained.fit, trained.curve
    artefacts = {"run": str(run_folder.root)}
    if fitted.best_checkpoint is not None:
        artefacts["best_checkpoint"] = str(Path(fitted.best_checkpoint) / "model.safetensors")
    if curve:
        artefacts["train_curve"] = str(curve)
    return artefacts


def _export(name: str, recipe: Recipe, source: str, reporter: ProgressReporter) -> dict[str, str]:
    """Export the best checkpoint as the recipe's ``[export]`` asks; the files written and the model card."""
    from biofound_cli.export.plan import check_export, run_export

    # A rerun retrains into the same run folder: the export there is this chain's own, older one.
    plan = replace(check_export(recipe, source), overwrite=True)
    logger.info(f"[{name}] export {', '.join(plan.formats)}")
    exported = run_export(plan, reporter=reporter)
    return {
        **{artefact.path.suffix.lstrip(".") or artefact.path.name: str(artefact.path) for artefact in exported.written},
        # The folder is what `biofound predict` takes; config.json holds the inputs a deployment needs.
        "export": str(exported.out_dir),
        "export_config": str(exported.config_path),
        "model_card": str(exported.card_path),
    }


def _predict_test_recordings(recipe: Recipe, chain: _ChainParts, checkpoint: str | None, reporter: ProgressReporter) -> Path:
    """``biofound predict`` with the best checkpoint on the raw files of the test split; its ``summary.json``.

    The raw files are the ``source_path`` of the shards the packed test split was made from.
    """
    from biofound_cli.evaluation.predict import read_recordings
    from biofound_cli.prediction.chain import resolve_prediction_chain
    from biofound_cli.prediction.model import load_prediction_model
    from biofound_cli.prediction.recordings import find_recordings
    from biofound_cli.prediction.run import SUMMARY_NAME, predict_out_held, run_predict
    from biofound_cli.store.preprocess_plan import stored_source
    from biofound_cli.training.run_folder import RunFolder

    _, names = read_recordings(chain.test)
    sources = [stored_source(chain.shards / f"{name}.h5") for name in names or []]
    model = load_prediction_model(str(checkpoint or RunFolder(recipe.run_dir("finetune")).best))
    steps = resolve_prediction_chain(
        model.preprocessing, ch_names=model.ch_names, sfreq=model.sfreq, n_times=model.n_times, model_name=str(model.path)
    )
    out = chain.packed.parent / "predictions"
    found = find_recordings([source for source in sources if source], steps.corpus())
    with predict_out_held(out) as held:
        run_predict(model, steps, found.refs, held, duplicates=found.duplicates, reporter=reporter)
    return out / SUMMARY_NAME


def run_quickstart(
    out_dir: Path,
    *,
    reporter: ProgressReporter = NO_PROGRESS,
    only: str | None = None,
    export: bool = True,
    continue_command: str | None = None,
) -> list[ChainResult]:
    """Run every chain of the quick start (or only one) and return their results in order.

    Parameters
    ----------
    out_dir : Path
        Each chain writes under ``out_dir / <chain>``.
    reporter : ProgressReporter
        Progress of each stage; by default nothing is shown.
    only : str | None
        Run this chain alone (a key of ``CHAINS``).
    export : bool
        Export each chain's best checkpoint to ONNX before predict; skipped, with a logged warning, when onnx is missing.
    continue_command : str | None
        The command that continues the quick start after a stop signal (see :func:`run_chain`).

    Returns
    -------
    list[ChainResult]
        One per chain, in the order run.
    """
    names = [only] if only else list(CHAINS)
    if export and not onnx_available():
        logger.warning(
            "onnx and onnxruntime are not installed, so the quick start skips the ONNX export (predict still runs the "
            "checkpoint); `pip install 'biofound[export]'` (or -e '.[export]') adds the export step"
        )
        export = False
    try:  # the stages' blocks share its stop: one that a stage finished under stops the quick start before the next
        with sigterm_as_interrupt():
            return [
                run_chain(name, out_dir, reporter=reporter, export=export, continue_command=continue_command) for name in names
            ]
    except KeyboardInterrupt as stop:  # between stages (reading a recipe)
        raise stop_error(signal_of(stop), continue_command) from None


def onnx_available() -> bool:
    """Whether the optional ``export`` extra (onnx and onnxruntime) is installed."""
    from importlib.util import find_spec

    return find_spec("onnx") is not None and find_spec("onnxruntime") is not None
