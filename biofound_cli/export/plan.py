"""What a recipe's ``[export]`` section asks for, checked before anything is written.

``biofound export --recipe R.toml`` (and ``biofound validate``) run :func:`check_export`; a
positional checkpoint and the quick flags are applied to the section first, so they win.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from biofound_cli.errors import RecipeError, UsageError, refusal
from biofound_cli.export import QUANTIZABLE, ExportResult, export_checkpoint
from biofound_cli.progress import NO_PROGRESS, ProgressReporter
from biofound_cli.recipes.export import ExportSection
from biofound_cli.recipes.schema import Recipe
from biofound_cli.store.splits import SPLITS, missing_split_advice


@dataclass(frozen=True)
class ExportPlan:
    """One export run: the weights, the formats in order, and where the files go."""

    checkpoint: Path
    formats: tuple[str, ...]
    quantize: str | None
    split: Path | None
    opset: int
    tolerance: float
    out: Path
    acknowledge_license: bool
    overwrite: bool = False
    transform: str | None = None
    """The recipe's ``data.transform`` (a run's: the one it trained with); else the checkpoint's."""


def check_export(recipe: Recipe, source: str, *, require_files: bool = True) -> ExportPlan:
    """The checks ``export`` runs before writing anything; ``biofound validate`` runs them too.

    Parameters
    ----------
    recipe : Recipe
        The loaded recipe, flags applied to ``[export]``.
    source : str
        The recipe file, named in messages.
    require_files : bool
        Whether the checkpoint and calibration split must exist now (``validate`` runs before
        training has written them, and reads no file).

    Raises
    ------
    RecipeError
        One line per problem: int8 without a format that takes it, a calibration split the
        ``[data]`` section does not name, a checkpoint or split that is not there, ONNX asked
        for without the onnx packages or at an opset the exporter cannot write.
    """
    section = recipe.export or ExportSection()
    problems: list[str] = []
    takes = QUANTIZABLE.get(section.quantize or "", ())
    if section.quantize is not None and not set(section.formats) & set(takes):
        problems.append(
            f"{source}: export.quantize = {section.quantize!r} needs {' or '.join(takes)} in export.formats "
            "(safetensors keeps the float weights"
            + (", TorchScript has dynamic int8 only)" if section.quantize == "int8-static" else ")")
        )
    if section.quantize == "int8-static" and section.calibration_split is None:
        problems.append(
            f"{source}: export.quantize = 'int8-static' needs export.calibration_split (--split), "
            "the windows its activation scales are calibrated on"
        )
    checkpoint = _checkpoint(recipe, section, source, require_files, problems)
    split = _calibration_split(recipe, section, source, problems)
    if require_files and split is not None and not split.is_file():
        problems.append(f"{source}: export.calibration_split: {split} does not exist: {missing_split_advice(split)}")
    if require_files and "onnx" in section.formats:
        problems += _onnx_problems(section.opset)
    if problems:
        raise RecipeError(problems)
    return ExportPlan(
        checkpoint=checkpoint,
        formats=tuple(section.formats),
        quantize=section.quantize,
        split=split,
        opset=section.opset,
        tolerance=section.tolerance,
        out=section.out or recipe.run_dir("finetune") / "export",
        acknowledge_license=section.acknowledge_license,
        overwrite=section.overwrite,
        transform=recipe.data.transform if recipe.data is not None else None,
    )


def _checkpoint(recipe: Recipe, section: ExportSection, source: str, require_files: bool, problems: list[str]) -> Path:
    """The weights to export; a ``hub:`` reference is refused unread, since official weights are never exported."""
    from biofound_cli.evaluation.evaluate import resolve_checkpoint
    from biofound_cli.export.source import official_weights_advice
    from biofound_cli.hub_reference import is_hub_reference

    if is_hub_reference(section.checkpoint):
        # Resolved, it said "not in the hub cache yet; fetch them", and the export of the fetched file was refused.
        reference = str(section.checkpoint)
        problems.append(
            f"{source}: export.checkpoint = {reference!r} names official weights, which carry no biofound metadata"
            f"{official_weights_advice(reference)}"
        )
        return Path(reference)
    if not require_files:
        from biofound_cli.training.run_folder import RunFolder

        return Path(section.checkpoint or RunFolder(recipe.run_dir(section.stage)).best)
    # resolve_checkpoint returns only weights that are there (existing_weights) and says why not otherwise.
    try:
        return resolve_checkpoint(recipe, section.checkpoint, source, field="export.checkpoint", stage=section.stage)
    except UsageError as error:
        problems.append(error.message)
        return Path(section.checkpoint or ".")


def _onnx_problems(opset: int) -> list[str]:
    """Why the ONNX file cannot be written (package missing, opset out of range), found before any format is written."""
    from biofound_cli.export.onnx_export import check_opset, require_onnx

    return refusal(require_onnx) or refusal(lambda: check_opset(opset))


def _calibration_split(recipe: Recipe, section: ExportSection, source: str, problems: list[str]) -> Path | None:
    """``train``/``val``/``test`` name the ``[data]`` file; anything else is a packed file path."""
    name = section.calibration_split
    if name is None or name not in SPLITS:
        return Path(name) if name is not None else None
    path = getattr(recipe.data, name, None) if recipe.data is not None else None
    if path is None:
        problems.append(
            f"{source}: export.calibration_split = {name!r} but data.{name} is not set; set it or give the packed file's path"
        )
    return path


def run_export(plan: ExportPlan, reporter: ProgressReporter = NO_PROGRESS) -> ExportResult:
    """Export ``plan.checkpoint`` in every format of the plan, into one folder, all or nothing.

    The int8 copy is made for the formats the scheme applies to (``int8``: onnx and
    torchscript; ``int8-static``: onnx). Every file is staged and verified before any moves in,
    so a format that fails its check leaves no file of the others (nor a ``config.json`` naming
    them); ``plan.overwrite`` only ever clears another checkpoint's export.

    Parameters
    ----------
    plan : ExportPlan
    reporter : ProgressReporter

    Returns
    -------
    ExportResult
        Every file written, in the order of the plan's formats; ``config.json`` and the card list them all.
    """
    return export_checkpoint(
        plan.checkpoint,
        plan.formats,
        plan.out,
        quantize=plan.quantize,
        split=plan.split,
        acknowledge_license=plan.acknowledge_license,
        overwrite=plan.overwrite,
        reporter=reporter,
        tolerance=plan.tolerance,
        opset=plan.opset,
        transform=plan.transform,
    )
