"""Deployable artefacts from a checkpoint, each verified after it is written.

:func:`export_checkpoint` is what ``biofound export`` calls::

    from biofound_cli.export import export_checkpoint

    result = export_checkpoint("runs/uci/checkpoints/best", "onnx", "exported/uci", quantize="int8",
                               split="packed/test.h5")

One module per format (``safetensors_export``, ``onnx_export``, ``torchscript_export``), plus
``quantize`` (int8), ``config`` (``config.json``) and ``model_card`` (``README.md`` and the
licence gate). Nothing here imports torch until an export runs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biofound_cli.errors import UsageError
from biofound_cli.progress import NO_PROGRESS, ProgressReporter

if TYPE_CHECKING:
    from biofound_cli.export.artefact import Artefact
    from biofound_cli.export.quantize import QuantizationReport

logger = logging.getLogger(__name__)

FORMATS = ("safetensors", "onnx", "torchscript")
QUANTIZE_SCHEMES = ("int8",)


@dataclass
class ExportResult:
    """What an export wrote and how each file checked out."""

    out_dir: Path
    artefacts: list[Artefact]
    """Every verified file in ``out_dir`` for this checkpoint (earlier exports included)."""
    written: list[Artefact]
    """The files this export wrote."""
    config_path: Path
    card_path: Path
    licence: dict[str, Any]
    quantization: QuantizationReport | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "out": str(self.out_dir),
            "files": [artefact.path.name for artefact in self.written] + [self.config_path.name, self.card_path.name],
            "max_abs_diff": {artefact.path.name: artefact.max_abs_diff for artefact in self.written},
            "license": self.licence["name"],
            "derived_from_official": self.licence["derived_from_official"],
            "card": self.licence["card"],
        }
        if self.quantization is not None:
            data["quantization"] = self.quantization.summary()
        return data


def _check_arguments(fmt: str, quantize: str | None, out: Path, tolerance: float) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: unknown format; choose one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE_SCHEMES:
        raise UsageError(f"--quantize {quantize}: unknown scheme; the one supported is int8")
    if quantize is not None and fmt == "safetensors":
        raise UsageError(
            "--quantize int8 needs --format onnx or torchscript; safetensors holds the float weights that "
            "biofound_cli.models.load rebuilds"
        )
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; give a folder to write the export into")
    if not tolerance > 0:
        raise UsageError(f"tolerance {tolerance}: must be a positive number")


def _check_split(source: Any, info: Any) -> None:
    from biofound_cli.evaluation.predict import check_head

    check_head(source.head, info, source.checkpoint)
    if source.ch_names and info.ch_names:
        ours = [name.upper() for name in source.ch_names]
        theirs = [name.upper() for name in info.ch_names]
        if ours != theirs:
            raise UsageError(
                f"{info.path}: the split's channels ({', '.join(info.ch_names[:4])}, …) are not the checkpoint's "
                f"({', '.join(source.ch_names[:4])}, …) in the same order; score on a split preprocessed for this model"
            )
    if info.n_times != source.n_times:
        raise UsageError(
            f"{info.path}: windows have {info.n_times} samples but the exported graph takes {source.n_times}; "
            "score on a split preprocessed for this model"
        )


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    fmt: str,
    out: str | os.PathLike[str],
    *,
    quantize: str | None = None,
    split: str | os.PathLike[str] | None = None,
    acknowledge_license: bool = False,
    reporter: ProgressReporter = NO_PROGRESS,
    tolerance: float = 1e-4,
    opset: int = 17,
) -> ExportResult:
    """Export a biofound checkpoint to ``fmt`` in the folder ``out``, verify it, and write its card.

    Parameters
    ----------
    checkpoint : path
        A biofound ``.safetensors`` checkpoint, or a checkpoint folder holding ``model.safetensors``.
    fmt : {"safetensors", "onnx", "torchscript"}
    out : path
        Folder for the files, ``config.json`` and ``README.md`` (created if missing).
    quantize : {"int8"} | None
        Also write a dynamically quantised copy (ONNX or TorchScript only).
    split : path | None
        A packed split (``PACKED/test.h5``): its task must match the head; with ``quantize`` the
        float and int8 files are scored on it. It also supplies LUNA's montage if the checkpoint
        does not name its channels.
    acknowledge_license : bool
        Write a model card meant for sharing even though the weights derive from the official
        CC BY-ND 4.0 checkpoints.
    reporter : ProgressReporter
        Shows the windows scored with ``quantize`` and ``split``; by default nothing is shown.
        The licence warning and each verified file are logged on this module's logger.
    tolerance : float
        Largest max-abs difference a float artefact may show against PyTorch.
    opset : int
        ONNX opset (17 or later).

    Returns
    -------
    ExportResult

    Raises
    ------
    UsageError
        Exit status 2, before anything is written: a missing checkpoint or split, an unknown
        format, a split whose task does not match the head, onnx packages missing.
    BiofoundError
        Exit status 1: an artefact failed its verification.
    """
    from biofound_cli.export import config as config_file
    from biofound_cli.export import model_card
    from biofound_cli.export.source import load_source

    out_dir = Path(out)
    _check_arguments(fmt, quantize, out_dir, tolerance)
    if fmt == "onnx":
        from biofound_cli.export.onnx_export import require_onnx

        require_onnx()
    info = None
    if split is not None:
        from biofound_cli.store.dataset import read_packed_info

        info = read_packed_info(Path(split))
    checkpoint_path = Path(checkpoint)
    run = model_card.find_run(checkpoint_path)
    source = load_source(checkpoint_path, split_info=info, run_recipe=run.recipe)
    if info is not None:
        _check_split(source, info)

    status = model_card.licence_status(source, run)
    if status.derived:
        logger.warning(model_card.licence_warning(source, status, acknowledge_license))

    out_dir.mkdir(parents=True, exist_ok=True)
    written, quantization, limits = _write_artefacts(source, fmt, out_dir, quantize, tolerance, opset, info, reporter)
    for artefact in written:
        logger.info(f"{artefact.path}: verified, max abs diff {artefact.max_abs_diff:.3g} vs {artefact.reference}")

    artefacts = config_file.merge_artefacts(config_file.previous_artefacts(out_dir, source), written)
    shared = acknowledge_license or not status.derived
    licence = {
        "name": model_card.LICENSE if status.derived else "set by the weights' owner",
        "derived_from_official": status.derived,
        "reason": status.reason,
        "acknowledged": acknowledge_license,
        "card": "for sharing" if shared else "internal use only",
    }
    quant_summary = quantization.summary() if quantization is not None else None
    config_path = config_file.write_config(
        out_dir,
        config_file.build_config(source, artefacts, licence=licence, quantization=quant_summary,
                                 onnx_opset=opset if any(a.format == "onnx" for a in artefacts) else None),
    )
    card = model_card.render_model_card(source, artefacts, run, status, acknowledged=acknowledge_license,
                                        quantization=quant_summary, limits=limits)
    card_path = model_card.write_model_card(out_dir, card)
    return ExportResult(out_dir, artefacts, written, config_path, card_path, licence, quantization)


def _write_artefacts(
    source: Any, fmt: str, out_dir: Path, quantize: str | None, tolerance: float, opset: int, info: Any,
    reporter: ProgressReporter,
) -> tuple[list[Artefact], QuantizationReport | None, list[str]]:
    """Write and verify the files of one format (and its int8 copy); score both on the split if given."""
    import torch

    from biofound_cli.export.quantize import QuantizationReport, quantize_linear, score_split

    written: list[Artefact] = []
    limits: list[str] = []
    int8_runner: Any = None
    diff_vs_float = float("nan")
    if fmt == "safetensors":
        from biofound_cli.export.safetensors_export import write_safetensors

        written.append(write_safetensors(source, out_dir, tolerance=tolerance))
        return written, None, limits
    if fmt == "onnx":
        from biofound_cli.export.onnx_export import count_int8_matmuls, onnx_runner, quantize_onnx, write_onnx

        written.append(write_onnx(source, out_dir, tolerance=tolerance, opset=opset))
        if quantize:
            written.append(quantize_onnx(source, written[0].path, out_dir))
            int8_runner = onnx_runner(written[1].path, source.input_names)
            n_quantized, kept = count_int8_matmuls(written[1].path), []
            diff_vs_float = written[1].max_abs_diff
            limits.append("The int8 ONNX file is onnxruntime's dynamic quantisation of the MatMul weights.")
    else:
        from biofound_cli.export.torchscript_export import LIMITS, write_torchscript

        written.append(write_torchscript(source, out_dir, tolerance=tolerance))
        limits.append(LIMITS)
        if quantize:
            int8_module, chosen, kept = quantize_linear(source.deploy_module())
            written.append(write_torchscript(source, out_dir, tolerance=tolerance, module=int8_module, quantized=True))
            inputs = source.example_inputs(3, seed=1)
            with torch.no_grad():
                diff_vs_float = float((int8_module(*inputs) - source.deploy_module()(*inputs)).abs().max())
            int8_runner, n_quantized = int8_module, len(chosen)
    if not quantize:
        return written, None, limits

    float_file, int8_file = written
    report = QuantizationReport(
        scheme=quantize,
        float_bytes=float_file.size_bytes,
        int8_bytes=int8_file.size_bytes,
        n_quantized=n_quantized,
        kept_float=kept,
        max_abs_diff_vs_float=diff_vs_float,
    )
    logger.info(
        f"int8: {report.float_bytes:,} B → {report.int8_bytes:,} B (×{report.size_ratio:.2f}), "
        f"{report.n_quantized} Linear layers quantised"
    )
    if info is not None:
        task = "regression" if info.regression else info.task
        with reporter.task(info.n_windows, f"Scoring {info.path.name}", unit="windows") as bar:
            metric, values, n_windows = score_split(
                {"float": source.deploy_module(), "int8": int8_runner}, source, info.path, task, on_batch=bar.advance
            )
        report.metric, report.float_value, report.int8_value = metric, values["float"], values["int8"]
        report.n_windows, report.split = n_windows, str(info.path)
        logger.info(f"{metric} on {info.path.name}: float32 {values['float']:.4f}, int8 {values['int8']:.4f} "
                    f"(change {report.change:+.4f})")
    return written, report, limits
