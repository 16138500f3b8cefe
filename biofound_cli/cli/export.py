"""``biofound export CKPT --format ... --out PATH``: deployable artefacts, verified after writing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from biofound_cli.cli.common import JsonOption, NoProgressOption, QuietOption, make_output, run_command


def export(
    checkpoint: Annotated[
        Path, typer.Argument(help="Checkpoint to export: a biofound .safetensors file or a checkpoint folder.", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the files, config.json and the model card README.md.", show_default=False)
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="safetensors (reloadable weights), onnx (opset 17, onnxruntime-checked) or torchscript (traced).")
    ] = "safetensors",
    quantize: Annotated[
        Optional[str], typer.Option("--quantize", help="Also write a dynamically quantised copy: int8 (onnx and torchscript).")
    ] = None,
    split: Annotated[
        Optional[Path],
        typer.Option("--split", help="Packed split (PACKED/test.h5) to measure the int8 accuracy change on; its task must match the head."),
    ] = None,
    acknowledge_license: Annotated[
        bool,
        typer.Option("--acknowledge-license", help="Write a model card for sharing although the weights derive from CC BY-ND 4.0 official ones."),
    ] = False,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Largest max abs difference from PyTorch a float artefact may show.")
    ] = 1e-4,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (17 or later).")] = 17,
    json_summary: JsonOption = False,
    quiet: QuietOption = False,
    no_progress: NoProgressOption = False,
) -> None:
    """Export a checkpoint to safetensors, ONNX or TorchScript, verify each file, and write config.json and a model card."""
    output = make_output(json_summary, quiet, no_progress)

    def work() -> None:
        from biofound_cli.export import export_checkpoint

        result = export_checkpoint(
            checkpoint, fmt, out,
            quantize=quantize, split=split, acknowledge_license=acknowledge_license,
            reporter=output, tolerance=tolerance, opset=opset,
        )
        output.summary(result.summary(), title=f"Exported {checkpoint} to {result.out_dir}")

    run_command(output, work)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
