"""``config.json``: what a program needs to use the exported files without biofound's code.

It names the model, variant, head and constructor arguments, the input (channels in order,
sampling rate, samples per window, LUNA's electrode positions), the label names, the input
normalisation with its formula, the sha256 of the weights, the evaluation of exactly those
weights (or ``"not evaluated"``), and every artefact in the folder with its sha256, its
verification result and, for an int8 file, its quantisation report. Exporting the same weights
to another format into the same folder adds to the list (:mod:`~biofound_cli.export.out_folder`).
"""

from __future__ import annotations

from typing import Any

from biofound_cli import __version__
from biofound_cli.export.artefact import Artefact
from biofound_cli.export.source import ExportSource
from biofound_cli.models.transforms import transform_formula

FORMAT_VERSION = "2"


def merge_artefacts(earlier: list[Artefact], new: list[Artefact]) -> list[Artefact]:
    """``earlier`` followed by ``new``, a file written now replacing its earlier entry.

    Parameters
    ----------
    earlier : list of Artefact
        The artefacts an earlier export listed and left in place.
    new : list of Artefact
        The artefacts written now.
    """
    names = {artefact.path.name for artefact in new}
    return [artefact for artefact in earlier if artefact.path.name not in names] + list(new)


def build_config(
    source: ExportSource,
    artefacts: list[Artefact],
    *,
    licence: dict[str, Any],
    evaluation: dict[str, Any] | str = "not evaluated",
) -> dict[str, Any]:
    """The content of ``config.json``.

    Parameters
    ----------
    source : ExportSource
    artefacts : list of Artefact
        Every file of the export folder (this export's and the earlier ones of the same weights).
    licence : dict
        The licence block (name, whether derived, why, whether acknowledged, the card's use).
    evaluation : dict | str
        :func:`~biofound_cli.export.model_card.evaluation_entry`.
    """
    head = source.head
    # Every input the families' graphs may take; each graph lists its own (ExportSource.input_names).
    input_specs = {
        "x": {"shape": ["batch", source.n_channels, source.n_times], "dtype": "float32"},
        "channel_locations": {"shape": ["batch", source.n_channels, 3], "dtype": "float32"},
        "channel_names": {"shape": ["batch", source.n_channels], "dtype": "int64"},
    }
    config: dict[str, Any] = {
        "format": "biofound-export",
        "format_version": FORMAT_VERSION,
        "biofound_version": __version__,
        "source_checkpoint": str(source.checkpoint.resolve()),
        "source_checkpoint_sha256": source.sha256,
        "model": source.model_name,
        "family": source.family,
        "variant": head.variant,
        # A LoRA checkpoint's adapters: the exported weights have them merged (a step-N's are refused).
        "fine_tuning": source.metadata.fine_tuning,
        "lora": source.metadata.lora,
        "task": head.task,
        # The classes the head tells apart; the graph's output shape is under "outputs" (22 logits for a 22-channel mc head).
        "num_classes": head.num_outputs,
        "constructor_kwargs": head.constructor_kwargs,
        "ch_names": source.ch_names,
        "sfreq": source.sfreq,
        "n_channels": source.n_channels,
        "n_times": source.n_times,
        "label_names": source.label_names,
        "normalisation": {"name": source.transform, "formula": transform_formula(source.transform)},
        "inputs": {name: input_specs[name] for name in source.input_names},
        "output": source.output_name,
        "outputs": {source.output_name: source.output_spec()},
        "dynamic_axes": {"batch": 0},
        "artefacts": [artefact.summary() for artefact in artefacts],
        "evaluation": evaluation,
        "license": licence,
    }
    if source.channel_locations is not None:
        config["channel_locations"] = source.channel_locations
    if source.metadata.preprocessing:
        # The chain raw recordings go through before the graph (`biofound predict` reads it).
        config["preprocessing"] = source.metadata.preprocessing
    elif source.metadata.preprocessing_chains:
        config["preprocessing_chains"] = source.metadata.preprocessing_chains
    onnx_opset = onnx_graph_opset(artefacts)
    if onnx_opset is not None:
        config["onnx_opset"] = onnx_opset
    return config


def onnx_graph_opset(artefacts: list[Artefact]) -> int | None:
    """The opset of the folder's float ONNX graph (else of its first ONNX file); ``None`` without one.

    Each ONNX artefact records the opset read from its own file, so a folder whose ONNX files
    came from an earlier export (at another ``--opset``) still states theirs.

    Parameters
    ----------
    artefacts : list of Artefact
        Every file of the export folder.
    """
    onnx_files = [artefact for artefact in artefacts if artefact.format == "onnx" and artefact.opset is not None]
    onnx_files.sort(key=lambda artefact: artefact.quantized)
    return onnx_files[0].opset if onnx_files else None
