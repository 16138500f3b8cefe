"""The export folder: whose weights it holds, what stays, and what ``--overwrite`` clears.

An export folder holds the files of one checkpoint, identified by the sha256 of its weights
(``config.json`` ``source_checkpoint_sha256``). Exporting the same weights again, to another
format, adds to it: the earlier files whose sha256 still matches ``config.json`` stay listed.
A folder holding another checkpoint's export (other weights, or files this check cannot tie to
any weights) is refused before anything is written, unless ``overwrite`` is given; then those
files, and only those (never other files a user keeps there), are removed when the new export
has been verified and moves in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biofound_cli.atomic import read_json_object
from biofound_cli.errors import UsageError
from biofound_cli.export.artefact import Artefact
from biofound_cli.models.checkpoints import WEIGHTS_FILE, file_sha256
from biofound_cli.plural import first_few

# The names of every file an export folder holds, here only: the writers and `predict` import them.
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
ONNX_FILE = "model.onnx"
ONNX_INT8_FILES = {"int8": "model.int8.onnx", "int8-static": "model.int8-static.onnx"}
TORCHSCRIPT_FILE = "model.pt"
TORCHSCRIPT_INT8_FILE = "model.int8.pt"


def file_names(fmt: str, quantize: str | None) -> list[str]:
    """The model files an export of ``fmt`` (with its int8 copy, if ``quantize``) writes.

    Parameters
    ----------
    fmt : {"safetensors", "onnx", "torchscript"}
    quantize : {"int8", "int8-static"} | None
    """
    if fmt == "safetensors":
        return [WEIGHTS_FILE]
    if fmt == "onnx":
        return [ONNX_FILE] + ([ONNX_INT8_FILES[quantize]] if quantize else [])
    return [TORCHSCRIPT_FILE] + ([TORCHSCRIPT_INT8_FILE] if quantize else [])


def _model_files() -> set[str]:
    """Every model file name any export writes."""
    return {
        name
        for fmt in ("safetensors", "onnx", "torchscript")
        for scheme in (None, "int8", "int8-static")
        for name in file_names(fmt, scheme)
    }


@dataclass
class FolderState:
    """What an export finds in its folder before writing."""

    previous: list[Artefact] = field(default_factory=list)
    """Verified files of an earlier export of the same weights: they stay and stay listed."""
    foreign: list[Path] = field(default_factory=list)
    """Files of another export, removed when this one moves in (``overwrite`` only)."""


def _listed(out_dir: Path, config: dict[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    """The files ``config.json`` lists (plain names inside the folder only) with their entries."""
    found = []
    for entry in config.get("artefacts") or []:
        name = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(name, str) and name and Path(name).name == name and (out_dir / name).is_file():
            found.append((out_dir / name, entry))
    return found


def _still_ours(path: Path, entry: dict[str, Any]) -> Artefact | None:
    """The artefact of a listed file whose bytes are still those the earlier export verified."""
    try:
        if not entry.get("sha256") or file_sha256(path) != entry["sha256"]:
            return None
        opset = entry.get("opset")
        if opset is None and entry["format"] == "onnx":
            from biofound_cli.export.onnx_export import graph_opset

            opset = graph_opset(path)  # listed before each ONNX file recorded its own opset
        return Artefact(
            path,
            entry["format"],
            path.stat().st_size,
            float(entry["max_abs_diff"]),
            entry["reference"],
            bool(entry.get("quantized", False)),
            entry["sha256"],
            dict(entry.get("quantization") or {}),
            None if opset is None else int(opset),
        )
    except (KeyError, TypeError, ValueError):
        return None


def inspect_out_folder(
    out_dir: Path, sha256: str, writes: list[str], *, overwrite: bool, checkpoint: Path | None = None
) -> FolderState:
    """Decide what an export of the weights ``sha256`` keeps in ``out_dir`` and what it would replace.

    Parameters
    ----------
    out_dir : Path
        The export folder (may not exist yet).
    sha256 : str
        Hash of the checkpoint being exported.
    writes : list of str
        File names this export writes (replaced whatever they hold).
    overwrite : bool
        ``--overwrite``: clear another export's files instead of refusing.
    checkpoint : Path | None
        The checkpoint file being exported, which the export may neither replace nor remove.

    Raises
    ------
    UsageError
        Exit status 2, nothing written: the folder holds another export and ``overwrite`` is off, or
        ``checkpoint`` itself under a name the export writes or clears (``--overwrite`` or not).
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return FolderState()
    config = read_json_object(out_dir / CONFIG_FILE)
    listed = _listed(out_dir, config) if config is not None else []
    candidates = {path for path, _ in listed} | {out_dir / name for name in _model_files() if (out_dir / name).is_file()}
    for path in sorted(candidates | {out_dir / name for name in (*writes, CONFIG_FILE, CARD_FILE)}):
        # `export ckpt/model.safetensors --out ckpt`: the export's own model.safetensors replaced the weights it was
        # made from (its config.json then gave a sha256 no file there had), and --overwrite deleted them.
        if checkpoint is not None and path.is_file() and path.samefile(checkpoint):
            raise UsageError(
                f"{out_dir}: holds the checkpoint being exported ({path.name}), which this export would replace; "
                "choose another --out"
            )
    state = FolderState()
    if config is not None and config.get("source_checkpoint_sha256") == sha256:
        state.previous = [a for a in (_still_ours(p, e) for p, e in listed if p.name not in writes) if a is not None]
    kept = {artefact.path for artefact in state.previous}
    state.foreign = sorted(path for path in candidates if path not in kept and path.name not in writes)
    if config is not None and config.get("source_checkpoint_sha256") != sha256:
        state.foreign += [out_dir / name for name in (CONFIG_FILE, CARD_FILE) if (out_dir / name).is_file()]
    if state.foreign and not overwrite:
        known = config or {}
        owner = known.get("source_checkpoint")
        whose = (
            f"the export of another checkpoint file ({owner})"
            if owner and known.get("source_checkpoint_sha256") != sha256
            else "files that are not a verified export of these weights"
        )
        names = first_few([path.name for path in state.foreign], 4)
        raise UsageError(
            f"{out_dir}: holds {whose} ({names}); pass --overwrite (export.overwrite = true) to replace them, "
            "or choose another --out"
        )
    return state
