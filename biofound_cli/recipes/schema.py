"""The whole recipe: one TOML file per model × task, each stage reading its own sections."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from biofound_cli.recipes.base import FolderName, Section
from biofound_cli.recipes.download import DownloadSection
from biofound_cli.recipes.export import ExportSection
from biofound_cli.recipes.pack import PackSection
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.recipes.training import DataSection, ModelSection, OptimSection, OutputSection, TrainSection


class Recipe(Section):
    """A recipe file. Every section is optional; a stage checks that the ones it needs are there."""

    name: FolderName | None = Field(None, description="Name of the run; the run folder is named after it.")
    description: str = Field("", description="Free text shown by `biofound validate`.")
    download: DownloadSection | None = None
    preprocess: PreprocessSection | None = None
    pack: PackSection | None = None
    data: DataSection | None = None
    model: ModelSection | None = None
    optim: OptimSection | None = None
    train: TrainSection | None = None
    output: OutputSection | None = None
    export: ExportSection | None = None

    def run_dir(self, stage: str = "finetune") -> Path:
        """The run folder of ``stage`` (``pretrain`` or ``finetune``): ``runs_dir / run name`` (:meth:`run_output`).

        Training writes there and ``evaluate`` / ``export`` read the fine-tuned run from there.

        Parameters
        ----------
        stage : str
            ``pretrain`` or ``finetune``; named in the folder only when neither ``output.run_name`` nor
            the recipe's ``name`` is set.
        """
        output = self.run_output(stage)
        return Path(output.runs_dir) / str(output.run_name)

    def run_output(self, stage: str = "finetune") -> OutputSection:
        """``[output]`` with ``run_name`` the name of ``stage``'s run folder, as a run records it in ``recipe.json``.

        The name is ``output.run_name``, else the recipe's ``name``, else ``VARIANT-STAGE``: a
        record of a recipe without a name names its folder too.

        Parameters
        ----------
        stage : str
            ``pretrain`` or ``finetune``.
        """
        output = self.output or OutputSection()
        variant = self.model.variant if self.model and self.model.variant else "model"
        return output.model_copy(update={"run_name": output.run_name or self.name or f"{variant}-{stage}"})


_TRAINING_READS = ("download", "data", "model", "optim", "train", "output")
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    # download: model.checkpoint's hub: weights. preprocess: model.variant, whose windows it checks.
    "download": ("download", "model"),
    "preprocess": ("preprocess", "model"),
    "pack": ("pack",),
    "pretrain": _TRAINING_READS,
    "finetune": _TRAINING_READS,
    # evaluate and export find the run by output and model.variant; download.dest/revision locate hub: weights;
    # evaluate reads train.device, export the [data] split that calibrates int8; both data.transform.
    "evaluate": ("download", "data", "model", "train", "output"),
    "export": ("export", "data", "model", "output"),
}
"""The recipe sections each stage reads: a ``--set`` of another is said to have no effect there
(:func:`~biofound_cli.recipes.loading.load_recipe`)."""


def stages_reading(section: str) -> list[str]:
    """The stages that read ``section`` (:data:`STAGE_SECTIONS`), in pipeline order.

    Parameters
    ----------
    section : str
        A recipe section's name, e.g. ``optim``.
    """
    return [stage for stage, sections in STAGE_SECTIONS.items() if section in sections]
