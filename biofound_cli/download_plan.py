"""What a recipe asks ``biofound download`` to fetch, checked before any transfer.

The weights come from ``[download] model/variant/task`` or, when those are unset, from the
``hub:`` reference in ``model.checkpoint``; when both are set they must name the same file, so
``download --recipe R.toml`` fetches exactly what ``finetune R.toml`` then reads. The data set is
``[download] dataset``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from biofound_cli.errors import RecipeError, UsageError
from biofound_cli.hub import WeightsRequest, weights_request
from biofound_cli.hub_reference import hub_request, is_hub_reference
from biofound_cli.recipes.download import DownloadSection
from biofound_cli.recipes.schema import Recipe


@dataclass(frozen=True)
class DownloadPlan:
    """The weights and the data set one recipe needs; either may be absent."""

    weights: WeightsRequest | None
    revision: str | None
    dest: Path | None
    dataset: str | None
    dataset_dir: Path
    checked: tuple[str, ...] = ()
    """What :func:`check_download` checked of the recipe, in ``biofound validate``'s words: only what it holds."""

    @property
    def empty(self) -> bool:
        """Nothing to fetch: no weights named and no data set."""
        return self.weights is None and self.dataset is None


def check_download(recipe: Recipe, source: str) -> DownloadPlan:
    """The checks ``download --recipe`` runs before any transfer; ``biofound validate`` runs them too.

    Parameters
    ----------
    recipe : Recipe
        The loaded recipe (flags already applied to its ``[download]`` section).
    source : str
        The recipe file, named in messages.

    Raises
    ------
    RecipeError
        One line per problem: an unknown model, size, task or data set, a size or task without
        a model, weights that differ from those ``model.checkpoint`` reads.
    """
    from biofound_cli.dataset_download import OPEN_DATASETS, TUH_CORPORA

    section = recipe.download or DownloadSection()
    problems: list[str] = []
    checked: list[str] = []
    named = referenced = None
    if section.model is not None or section.variant is not None or section.task is not None:
        checked.append("model, size and task names")
    if section.model is not None:
        try:
            named = weights_request(section.model, section.variant, section.task)
        except UsageError as error:
            message = error.message.replace("--variant", "download.variant").replace("--task", "download.task")
            # A size or task the model lacks is that field's problem (and --variant's or --task's, when given so).
            lead = "" if message.startswith(("download.variant", "download.task")) else f"download.model = {section.model!r}: "
            problems.append(f"{source}: {lead}{message}")
    elif section.variant is not None or section.task is not None:
        field = "download.variant" if section.variant is not None else "download.task"
        problems.append(f"{source}: {field} is set but download.model is not; name the model too (femba, luna or tinymyo)")
    checkpoint = recipe.model.checkpoint if recipe.model is not None else None
    if is_hub_reference(checkpoint):
        checked.append(
            "the same weights as model.checkpoint" if section.model is not None else "model.checkpoint's hub reference"
        )
        try:
            referenced = hub_request(checkpoint, f"{source}: model.checkpoint")
        except UsageError as error:
            problems.append(error.message)
    if named is not None and referenced is not None and named != referenced:
        problems.append(
            f"{source}: download.model fetches {named.description} but model.checkpoint = {str(checkpoint)!r} reads "
            f"{referenced.description}; make them name the same weights or remove download.model"
        )
    known = (*OPEN_DATASETS, *TUH_CORPORA)
    if section.dataset is not None:
        checked.append("data set name")
    if section.dataset is not None and section.dataset.lower() not in known:
        problems.append(
            f"{source}: download.dataset = {section.dataset!r} is not a data set biofound fetches; use one of {', '.join(known)}"
        )
    if problems:
        raise RecipeError(problems)
    return DownloadPlan(
        weights=named or referenced,
        revision=section.revision,
        dest=section.dest,
        dataset=section.dataset.lower() if section.dataset else None,
        dataset_dir=section.dataset_dir,
        checked=tuple(checked),
    )
