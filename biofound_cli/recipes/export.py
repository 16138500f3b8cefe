"""The ``[export]`` section: deployable artefacts of a trained checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from biofound_cli.recipes.base import Section

ExportFormat = Literal["safetensors", "onnx", "torchscript"]
"""The artefact formats; ``biofound_cli.export.FORMATS`` lists these."""
QuantizeScheme = Literal["int8", "int8-static"]
"""The int8 schemes; ``biofound_cli.export.QUANTIZE_SCHEMES`` lists these."""


class ExportSection(Section):
    """What ``biofound export --recipe R.toml`` writes; a positional checkpoint and flags win."""

    checkpoint: Path | None = Field(
        None,
        description="Weights to export (.safetensors or a checkpoint folder); unset: the best checkpoint of the run stage names.",
    )
    stage: Literal["finetune", "pretrain"] = Field(
        "finetune",
        description="The recipe's run whose best checkpoint is exported when checkpoint is unset: the fine-tuned "
        "model, or (pretrain) the pre-training run's encoder with its reconstruction head.",
    )
    formats: list[ExportFormat] = Field(
        ["safetensors"],
        min_length=1,
        description="Files to write, each verified: safetensors (reloadable), onnx (onnxruntime-checked), torchscript.",
    )
    quantize: QuantizeScheme | None = Field(
        None,
        description="Also write an int8 copy: int8 (dynamic, batch-dependent) of each onnx and torchscript "
        "file, or int8-static (calibrated on calibration_split, batch-independent) of the onnx file.",
    )
    calibration_split: str | None = Field(
        None,
        description="Split to measure the int8 accuracy change and agreement on (and to calibrate "
        "int8-static on): train, val or test (the [data] file) or a packed file path; its task must match the head.",
    )
    opset: int = Field(17, ge=17, description="ONNX opset.")
    tolerance: float = Field(1e-4, gt=0.0, description="Largest max abs difference from PyTorch a float file may show.")
    out: Path | None = Field(None, description="Folder for the files, config.json and README.md; unset: RUN/export.")
    overwrite: bool = Field(
        False,
        description="Replace another checkpoint's export found in out instead of refusing.",
    )
    acknowledge_license: bool = Field(
        False,
        description="Write a model card meant for sharing although the weights derive from CC BY-ND 4.0 ones.",
    )

    @field_validator("formats")
    @classmethod
    def _each_once(cls, formats: list[str]) -> list[str]:
        if len(set(formats)) != len(formats):
            raise ValueError("export.formats names a format twice; list each once")
        return formats
