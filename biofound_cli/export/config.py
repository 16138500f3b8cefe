"""``config.json``: what a program needs to use the exported files without biofound's code.

It names the model, variant, head and constructor arguments, the input (channels in order,
sampling rate, samples per window, LUNA's electrode positions), the label names, the input
normalisation with its formula, and every artefact in the folder with its verification result.
Exporting the same checkpoint to another format into the same folder adds to the list.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from biofound_cli import __version__
from biofound_cli.export.artefact import Artefact, write_json_atomic
from biofound_cli.export.source import NORMALISATIONS, ExportSource

FILE_NAME = "config.json"
FORMAT_VERSION = "1"


def previous_artefacts(out_dir: Path, source: ExportSource) -> list[Artefact]:
    """Artefacts an earlier export of the same checkpoint left in ``out_dir`` (files still present)."""
    path = Path(out_dir) / FILE_NAME
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    if not isinstance(config, dict) or config.get("source_checkpoint") != str(source.checkpoint.resolve()):
        return []
    found = []
    for entry in config.get("artefacts") or []:
        try:
            file = Path(out_dir) / entry["file"]
            if file.is_file():
                found.append(Artefact(file, entry["format"], file.stat().st_size, float(entry["max_abs_diff"]),
                                      entry["reference"], bool(entry.get("quantized", False))))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def merge_artefacts(earlier: list[Artefact], new: list[Artefact]) -> list[Artefact]:
    """``earlier`` followed by ``new``, a file written now replacing its earlier entry."""
    names = {artefact.path.name for artefact in new}
    return [artefact for artefact in earlier if artefact.path.name not in names] + list(new)


def build_config(
    source: ExportSource,
    artefacts: list[Artefact],
    *,
    licence: dict[str, Any],
    quantization: dict[str, Any] | None = None,
    onnx_opset: int | None = None,
) -> dict[str, Any]:
    """The content of ``config.json``."""
    head = source.head
    graph_input: dict[str, Any] = {
        "x": {"shape": ["batch", source.n_channels, source.n_times], "dtype": "float32"},
    }
    if "channel_locations" in source.input_names:
        graph_input["channel_locations"] = {"shape": ["batch", source.n_channels, 3], "dtype": "float32"}
    if "channel_names" in source.input_names:
        graph_input["channel_names"] = {"shape": ["batch", source.n_channels], "dtype": "int64"}
    config: dict[str, Any] = {
        "format": "biofound-export",
        "format_version": FORMAT_VERSION,
        "biofound_version": __version__,
        "source_checkpoint": str(source.checkpoint.resolve()),
        "model": source.model_name,
        "family": source.family,
        "variant": head.variant,
        "task": head.task,
        "num_outputs": head.num_outputs,
        "constructor_kwargs": head.constructor_kwargs,
        "ch_names": source.ch_names,
        "sfreq": source.sfreq,
        "n_channels": source.n_channels,
        "n_times": source.n_times,
        "label_names": source.label_names,
        "normalisation": {"name": source.transform, "formula": NORMALISATIONS.get(source.transform)},
        "inputs": graph_input,
        "output": source.output_name,
        "dynamic_axes": {"batch": 0},
        "artefacts": [artefact.summary() for artefact in artefacts],
        "license": licence,
    }
    if source.channel_locations is not None:
        config["channel_locations"] = source.channel_locations
    if source.metadata.preprocessing:
        # The chain raw recordings go through before the graph (`biofound predict` reads it).
        config["preprocessing"] = source.metadata.preprocessing
    if onnx_opset is not None:
        config["onnx_opset"] = onnx_opset
    if quantization is not None:
        config["quantization"] = quantization
    return config


def write_config(out_dir: Path, config: dict[str, Any]) -> Path:
    return write_json_atomic(Path(out_dir) / FILE_NAME, config)
