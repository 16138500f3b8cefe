"""``biofound info PATH``: describe a packed file, a shard, a run, a checkpoint, a graph, predictions, a recording or a recipe."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any, Callable

import typer

from biofound_cli.cli.common import Output, size_text, with_output
from biofound_cli.errors import DataError, UsageError, existing_file
from biofound_cli.plural import counted, first_few


def describe(path: Path) -> tuple[str, dict[str, Any]]:
    """The title and summary of ``path``, chosen by its kind: a folder, then the file name's ending.

    Parameters
    ----------
    path : Path
        A file or folder named on the command line.
    """
    if path.is_dir():
        return _describe_folder(path)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        from biofound_cli.store.describe import describe_h5

        info = describe_h5(path)
        title = f"{'Packed split' if info['kind'] == 'packed' else 'Shard'} {path}"
        return title, info
    if suffix == ".toml" or _is_run_record(path):
        return _describe_recipe(path)
    if suffix == ".json" and _summarises_its_folder(path.name):
        return _describe_folder(path.parent)
    if suffix == ".onnx":
        from biofound_cli.export.describe import describe_onnx

        return f"ONNX graph {path}", describe_onnx(path)
    if suffix in (".safetensors", ".pt", ".pth", ".ckpt"):
        return _describe_weights(path)
    from biofound_cli.corpora.describe_recording import describe_recording, is_recording, is_table

    if is_recording(path):
        return f"Recording {path}", describe_recording(path)
    if is_table(path):
        return _describe_table(path)
    if not path.exists():  # e.g. a misspelt run folder: not a file of an unknown type
        raise UsageError(f"{path}: no such file or folder; check the path")
    raise UsageError(
        f"{path}: unknown file type {suffix or '(none)'}; info describes .h5, .safetensors, .pt, .onnx, .toml (and a run's "
        "recipe.json), .edf/.bdf/.fif/.vhdr/.set recordings, .csv/.tsv/.mat/.npy tables, run, checkpoint, export, "
        "evaluation, predict, shard and packed folders, and the .json file that sums one up (config.json, report.json, "
        "summary.json, splits.json, a preprocess report)"
    )


def _describe_table(path: Path) -> tuple[str, dict[str, Any]]:
    """A table of samples; or, for one of predict's per-recording tables (words in its columns), its folder, which
    sums it up as ``summary.json`` does."""
    from biofound_cli.corpora.describe_recording import describe_table
    from biofound_cli.corpora.not_read import is_predict_folder

    try:
        return f"Table {path}", describe_table(path)
    except DataError:
        if not is_predict_folder(path.parent):
            raise
        return _describe_folder(path.parent)


def _is_run_record(path: Path) -> bool:
    """Whether ``path`` is a run's ``recipe.json``: a recipe every command takes, described as one."""
    from biofound_cli.recipes.run_record import RECORD_NAME

    return path.name == RECORD_NAME


def _summarises_its_folder(name: str) -> bool:
    """Whether a JSON file of this name sums up the folder it is in: predict's summary (a slice's too), a preprocess
    report, pack's ``splits.json``, evaluate's ``report.json`` or export's ``config.json``; ``info`` then describes
    that folder."""
    from biofound_cli.evaluation.report import REPORT_FILE
    from biofound_cli.export.out_folder import CONFIG_FILE
    from biofound_cli.prediction.run import SUMMARY_NAME
    from biofound_cli.store.preprocess_reports import REPORT_STEM
    from biofound_cli.store.splits import MANIFEST_NAME

    return name.startswith((Path(SUMMARY_NAME).stem, REPORT_STEM)) or name in (MANIFEST_NAME, REPORT_FILE, CONFIG_FILE)


FolderKind = tuple[str, Callable[[Path], bool], Callable[[Path], dict[str, Any]]]


def _folder_kinds() -> tuple[FolderKind, ...]:
    """The folders ``info`` describes: title, test and description, in the order they are tried."""
    from biofound_cli.corpora.not_read import is_predict_folder
    from biofound_cli.evaluation.describe import describe_evaluation_folder, is_evaluation_folder
    from biofound_cli.export.describe import describe_export_folder, is_export_folder
    from biofound_cli.prediction.describe import describe_predict_folder
    from biofound_cli.store.describe_folders import describe_packed_folder, describe_shard_folder, is_shard_folder
    from biofound_cli.store.splits import is_packed_folder
    from biofound_cli.training.describe import (
        describe_checkpoint_folder,
        describe_checkpoints_folder,
        describe_run_folder,
        is_checkpoint_folder,
        is_checkpoints_folder,
        is_run_folder,
    )

    return (
        ("Export folder", is_export_folder, describe_export_folder),
        ("Checkpoint folder", is_checkpoint_folder, describe_checkpoint_folder),
        ("Run folder", is_run_folder, describe_run_folder),
        ("Checkpoints", is_checkpoints_folder, describe_checkpoints_folder),
        ("Predictions", is_predict_folder, describe_predict_folder),
        ("Evaluation", is_evaluation_folder, describe_evaluation_folder),
        ("Shards", is_shard_folder, describe_shard_folder),
        ("Packed splits", is_packed_folder, describe_packed_folder),
    )


def _kind_of(path: Path, kinds: tuple[FolderKind, ...]) -> FolderKind | None:
    """The first kind that fits ``path``, in the order of ``kinds``."""
    return next((kind for kind in kinds if kind[1](path)), None)


def _describe_folder(path: Path) -> tuple[str, dict[str, Any]]:
    from biofound_cli.corpora.describe_recording import describe_recordings_folder
    from biofound_cli.store.describe_folders import describe_shard_folder, is_shard_folder

    kinds = _folder_kinds()
    kind = _kind_of(path, kinds)
    if kind is not None:
        return f"{kind[0]} {path}", kind[2](path)
    shards = sorted(path.glob("*.h5"))
    if shards and is_shard_folder(path.parent):  # one corpus's shards: the preprocess --out above them
        return f"Shards {path.parent}", describe_shard_folder(path.parent)
    if shards:
        raise UsageError(
            f"{path}: a folder of {counted(len(shards), '.h5 file')} without preprocess's report or pack's splits.json; "
            f"describe one file at a time, e.g. biofound info {shards[0]}"
        )
    below = _described_below(path, kinds)
    recordings = None if below else describe_recordings_folder(path)
    if recordings is not None:  # a corpus folder, what preprocess --root takes
        return f"Recordings {path}", recordings
    if below:
        # A folder above the artefacts (the quick start's --out, a runs_dir): name them, not what it lacks.
        shown = first_few([f"{found.relative_to(path)} ({title.lower()})" for found, title in below], MAX_NAMED)
        example = next((found for found, title in below if title == "Run folder"), below[0][0])
        raise UsageError(
            f"{path}: a folder holding what info describes, not one itself: {shown}; pass one of them, "
            f"e.g. biofound info {shlex.quote(str(example))}"
        )
    raise UsageError(
        f"{path}: not a run, checkpoint, export, evaluation, predict, shard or packed folder (no checkpoints/, "
        "model.safetensors, config.json, report.json, predict's summary.json, a preprocess report or splits.json), nor "
        "a folder of recordings (no .edf/.bdf/.fif/.vhdr/.set or .csv/.tsv/.mat/.npy file below it); pass "
        "runs/NAME, runs/NAME/checkpoints/best or step-N, runs/NAME/eval/SPLIT, an export folder, a predict, preprocess "
        "or pack --out folder, a folder of recordings, or a file in them"
    )


MAX_NAMED = 6
"""How many of the folders below a folder ``info`` does not describe its refusal names."""
SEARCH_DEPTH = 3
"""How deep below it ``info`` looks: the quick start's ``DIR/<chain>/runs/<name>`` is 3 levels down."""
SEARCH_FOLDERS = 200
"""The most folders looked into, so a path such as ``/`` or a home folder is refused at once."""


def _described_below(path: Path, kinds: tuple[FolderKind, ...]) -> list[tuple[Path, str]]:
    """The folders ``info`` describes up to :data:`SEARCH_DEPTH` levels below ``path``, with their titles, by path.

    A folder found is not looked into (a run folder's checkpoints and export are described with it).
    """
    found: list[tuple[Path, str]] = []
    level, visited = [path], 0
    for _ in range(SEARCH_DEPTH):
        children = []
        for folder in level:
            try:
                children += sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
            except OSError:  # unreadable: nothing to name there
                continue
        level = []
        for child in children:
            visited += 1
            if visited > SEARCH_FOLDERS:
                return sorted(found)
            kind = _kind_of(child, kinds)
            if kind is None:
                level.append(child)
            else:
                found.append((child, kind[0]))
    return sorted(found)


def _describe_recipe(path: Path) -> tuple[str, dict[str, Any]]:
    """A recipe's sections, once it passes `biofound validate`'s checks: "valid" means what it means there."""
    from biofound_cli.cli.validate import run_stage_checks
    from biofound_cli.recipes import load_recipe

    recipe = load_recipe(path)
    run_stage_checks(recipe, str(path))
    sections = {
        name: value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        for name, value in recipe
        if value is not None
    }
    return f"Recipe {path}", {"path": str(path), "kind": "recipe", "valid": True, **sections}


def _describe_weights(path: Path) -> tuple[str, dict[str, Any]]:
    """A weights file, a TorchScript archive or a training run's ``trainer_state.pt``."""
    existing_file(path)
    if path.suffix.lower() == ".pt":
        from biofound_cli.export.describe import describe_torchscript, is_torchscript
        from biofound_cli.training.describe import describe_trainer_state
        from biofound_cli.training.state import TRAINER_STATE_FILE

        if is_torchscript(path):
            return f"TorchScript module {path}", describe_torchscript(path)
        if path.name == TRAINER_STATE_FILE:
            return f"Trainer state {path}", describe_trainer_state(path)
    from biofound_cli.models.checkpoints import describe_checkpoint

    return f"Checkpoint {path}", {"kind": "checkpoint", **describe_checkpoint(path)}


# Parts of a description that are whole descriptions themselves: one table row per field on a terminal.
NESTED = (
    "weights",
    "metadata",
    "trainer_state",
    "biofound",
    "best",
    "newest",
    "last_train",
    "last_val",
    "recorded_paths",
    "checkpoints",
)


def _flattened(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``summary`` with the :data:`NESTED` parts spread over rows named ``part.field``."""
    rows: dict[str, Any] = {}
    for key, value in summary.items():
        if key in NESTED and isinstance(value, dict) and value:
            rows.update(_flattened(value, f"{prefix}{key}."))
        else:
            rows[f"{prefix}{key}"] = _read_back(value)
    return rows


def _read_back(value: Any) -> Any:
    """A JSON object or list held as text read back, so the table breaks it between its items.

    A safetensors header holds every metadata value as text: a checkpoint's ``preprocessing`` chain,
    one line of some 800 characters, made the whole table as wide in a log (and folded anywhere on a terminal).
    """
    if isinstance(value, str) and value.startswith(("{", "[")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


PathArgument = Annotated[
    Path,
    typer.Argument(
        help="A packed split or shard (.h5), a run, shard, packed, evaluation, export or predict --out folder (or the .json "
        "that sums it up, or one of predict's tables), a folder of recordings, a checkpoint (.safetensors, or its "
        "folder), a trainer_state.pt, an exported graph (.onnx, TorchScript .pt), a recording (.edf/.bdf/.fif/.vhdr/.set) "
        "or table of samples (.csv/.tsv/.mat/.npy), a recipe (.toml, or a run's recipe.json), or official weights as "
        "hub:MODEL/FOLDER (read from the hub cache).",
        show_default=False,
    ),
]


@with_output
def info(output: Output, path: PathArgument) -> None:
    """Describe a file: a packed split, shard, checkpoint, trainer state, ONNX or TorchScript graph, raw recording
    (or table of samples) or recipe; or a folder: a run, checkpoint, shard, packed, evaluation, export or predict output folder.
    """
    from biofound_cli.hub_reference import is_hub_reference, local_checkpoint

    # The reference every other command reads weights by: the file download put in the hub cache.
    title, summary = describe(local_checkpoint(str(path), "PATH") if is_hub_reference(str(path)) else path)
    if not output.json_summary:
        if "size_bytes" in summary:
            summary = {**summary, "size": size_text(summary["size_bytes"])}
        summary = _flattened(summary)
    output.summary(summary, title=title)
