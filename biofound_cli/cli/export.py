"""``biofound export [CKPT] [--recipe R.toml]``: deployable artefacts, verified after writing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from biofound_cli.cli.common import (
    Output,
    Overrides,
    out_option,
    recipe_option,
    recipe_stage,
    run_option,
    set_option,
    unset_option,
    with_output,
)
from biofound_cli.recipes.export import ExportSection

# The defaults and bounds the help states are the [export] section's own.
_FIELDS = ExportSection.model_fields
_OPSET_MINIMUM = next(bound.ge for bound in _FIELDS["opset"].metadata if getattr(bound, "ge", None) is not None)


@with_output
def export(
    output: Output,
    checkpoint: Annotated[
        Optional[Path],
        typer.Argument(
            help="Checkpoint to export: a biofound .safetensors file, a checkpoint folder or a run folder; "
            "official weights (hub:MODEL/FOLDER) are refused: predict runs them, or fine-tune from them "
            "(default: export.checkpoint, else the recipe's best checkpoint).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        out_option("Folder for the files, config.json and the model card README.md (default: RUN/export).", show_default=False),
    ] = None,
    fmt: Annotated[
        Optional[List[str]],
        typer.Option(
            "--format",
            "-f",
            rich_help_panel="Input and output",
            metavar="safetensors|onnx|torchscript",
            help="safetensors (reloadable weights; the default), "
            f"onnx (opset {_FIELDS['opset'].default} by default, onnxruntime-checked) or torchscript (traced); "
            "repeat for several (-f onnx -f torchscript).",
        ),
    ] = None,
    quantize: Annotated[
        Optional[str],
        run_option(
            "--quantize",
            metavar="int8|int8-static",
            help="Also write an int8 copy: int8 (dynamic, batch-dependent; onnx and torchscript) "
            "or int8-static (calibrated on --split, batch-independent; onnx).",
        ),
    ] = None,
    split: Annotated[
        Optional[str],
        typer.Option(
            "--split",
            rich_help_panel="Input and output",
            help="Packed split (PACKED/test.h5, or train/val/test of the recipe's \\[data]) to measure "
            "the int8 accuracy change and agreement on (and to calibrate int8-static on); its task must match the head.",
        ),
    ] = None,
    acknowledge_license: Annotated[
        bool,
        run_option(
            "--acknowledge-license",
            help="Write a model card for sharing although the weights derive from CC BY-ND 4.0 official ones.",
        ),
    ] = False,
    overwrite: Annotated[
        bool, run_option("--overwrite", help="Replace another checkpoint's export found in --out instead of refusing.")
    ] = False,
    tolerance: Annotated[
        Optional[float],
        run_option(
            "--tolerance",
            help=f"Largest max abs difference from PyTorch a float artefact may show (default {_FIELDS['tolerance'].default:g}).",
        ),
    ] = None,
    opset: Annotated[
        Optional[int], run_option("--opset", help=f"ONNX opset ({_OPSET_MINIMUM} or later; default {_FIELDS['opset'].default}).")
    ] = None,
    recipe: Annotated[Optional[Path], recipe_option("Recipe whose \\[export] section sets what to write.")] = None,
    overrides: Annotated[Overrides, set_option("export.opset=18")] = None,
    unset: Annotated[Overrides, unset_option("export.quantize")] = None,
) -> None:
    """Export a checkpoint to safetensors, ONNX or TorchScript, verify each file, and write config.json and a model card."""
    from biofound_cli.errors import UsageError
    from biofound_cli.export import check_names
    from biofound_cli.export.plan import check_export, run_export
    from biofound_cli.recipes.origin import Flag, recipe_source
    from biofound_cli.recipes.shipped import is_recipe_file
    from biofound_cli.training.run_folder import run_folder_of

    check_names(None, quantize)
    for name in fmt or []:
        check_names(name, quantize)
    if checkpoint is None and recipe is None:
        raise UsageError("name the checkpoint to export, or pass --recipe R.toml (its [export] section or its best checkpoint)")
    if recipe is None and checkpoint is not None and is_recipe_file(checkpoint):
        # evaluate and the training stages take their recipe first; export takes the weights first.
        raise UsageError(f"CHECKPOINT {checkpoint} is a recipe; pass it as --recipe {checkpoint}")
    run = run_folder_of(checkpoint) if recipe is None and checkpoint is not None and checkpoint.exists() else None
    if run is not None:  # its record is the recipe it trained with: its [data] names the splits --split train/val/test mean
        recipe, out = run.recipe_file, out or run.root / "export"
    flags: dict[str, Any] = {
        # A run's record says how it trained, not how to export it (its [export] asked int8 of formats --format drops);
        # the load keeps the section it replaces (RecipeOrigin.replaced) for the line that names its formats.
        "export": {} if run is not None else None,
        "export.checkpoint": Flag("CHECKPOINT", str(checkpoint) if checkpoint is not None else None),
        "export.out": Flag("--out", str(out) if out is not None else None),
        # Every --format given: typer kept only the last of several without a word.
        "export.formats": Flag("--format", list(fmt) if fmt else None),
        "export.quantize": Flag("--quantize", quantize),
        "export.calibration_split": Flag("--split", split),
        "export.acknowledge_license": Flag("--acknowledge-license", True if acknowledge_license else None),
        "export.overwrite": Flag("--overwrite", True if overwrite else None),
        "export.tolerance": Flag("--tolerance", tolerance),
        "export.opset": Flag("--opset", opset),
    }
    if recipe is None and out is None:
        raise UsageError(
            f"--out: required without --recipe when {checkpoint} is not in a run folder; give the folder to write the export into"
        )
    # Before the export's own stop handling (run_export), while the checkpoint is read and onnx imports.
    with recipe_stage(
        recipe,
        overrides,
        flags=flags,
        unset=unset,
        stage="export",
        check=lambda loaded: check_export(loaded, recipe_source(recipe)),
        stopped="; nothing was exported, so re-run the same command",
    ) as (loaded, plan):
        summary = run_export(plan, reporter=output).summary()
    if run is not None and not fmt and quantize is None:
        left = _recorded_export_left(loaded, plan.formats)
        if left:
            output.info(
                f"wrote {', '.join(plan.formats)} only, as --format defaults to; the [export] section of "
                f"{run.recipe_file} is not applied to a run's checkpoint, so for the formats it names pass {left}"
            )
    output.summary(summary, title=f"Exported {plan.checkpoint} to {plan.out}", timed=True)


def _recorded_export_left(loaded: object, written: tuple[str, ...]) -> str:
    """The flags that write what a run's recorded ``[export]`` names beyond ``written``; empty: nothing beyond it.

    A run's ``recipe.json`` says how it trained, and its ``[export]`` is not applied (docs/export.md), but a user
    who wrote one there expects its formats: say how to get them. The load kept the section the flags replaced.
    """
    from pydantic import ValidationError

    from biofound_cli.recipes.export import ExportSection
    from biofound_cli.recipes.origin import origin_of

    origin = origin_of(loaded)
    try:
        section = ExportSection.model_validate(origin.replaced.get("export") if origin else None)
    except ValidationError:  # none recorded, or one this version does not read: nothing to suggest
        return ""
    if set(section.formats) <= set(written) and not section.quantize:
        return ""
    flags = [f"-f {name}" for name in section.formats]
    flags += [f"--quantize {section.quantize}"] if section.quantize else []
    flags += [f"--split {section.calibration_split}"] if section.quantize and section.calibration_split else []
    return " ".join(flags)
