"""``biofound validate RECIPE``: check a recipe without running anything."""

from __future__ import annotations

from typing import Annotated, Any, Callable, Iterator, Optional

from biofound_cli.cli.common import Output, RecipeArgument, SetOption, UnsetOption, run_option, with_output
from biofound_cli.errors import RecipeError, UsageError, did_you_mean

# Which training stage a recipe is for is not written in it: without --stage, both are named.
BOTH_STAGES = "pretrain and finetune"

StageOption = Annotated[
    Optional[str],
    run_option(
        "--stage",
        metavar="pretrain|finetune",
        help="The training stage the recipe is for, checked as that stage checks it (pretraining watches val_loss "
        "alone), even one for evaluate alone; without it, the checks both stages share.",
        show_default=False,
    ),
]


@with_output
def validate(
    output: Output, recipe: RecipeArgument, stage: StageOption = None, overrides: SetOption = None, unset: UnsetOption = None
) -> None:
    """Check a recipe with the checks its stages run before any work: every field, type and value."""
    from biofound_cli.recipes import load_checked

    if stage not in (None, "pretrain", "finetune"):
        suggestion = did_you_mean(stage, ("pretrain", "finetune"))
        raise UsageError(f"--stage {stage}: choose pretrain or finetune" + (f" ({suggestion})" if suggestion else ""))
    loaded, checked = load_checked(
        recipe,
        overrides or [],
        unset=unset or [],
        check=lambda loaded: run_stage_checks(loaded, str(recipe), stage or BOTH_STAGES),
    )
    sections = [name for name, value in loaded if value is not None and name not in ("name", "description")]
    if not checked:  # an empty file, or one meant for another tool: "valid" alone read as "ready to run"
        output.warn(f"{recipe}: no stage section ([preprocess], [data], [model], [export], ...), so no stage check ran")
    output.summary(
        {"recipe": str(recipe), "valid": True, "description": loaded.description, "sections": sections, "checked": checked},
        title="Recipe is valid",
    )


def run_stage_checks(recipe, source: str, stage: str = BOTH_STAGES) -> list[str]:
    """Run the checks of every stage the recipe is for (:func:`_stage_checks`); their names, in pipeline order.

    These are the functions the stages themselves call before any work, so a recipe that
    passes here fails later only on its data (a missing or mismatched file).

    Parameters
    ----------
    recipe : Recipe
        The loaded recipe.
    source : str
        The recipe file, at the start of each problem line.
    stage : str
        ``pretrain`` or ``finetune``, checked as that stage checks a recipe, even one that
        looks meant for ``evaluate`` alone; by default :data:`BOTH_STAGES`, the checks both
        share (``model.task`` as ``finetune`` reads it).
    """
    checked: list[str] = []
    problems: list[str] = []
    for label, check in _stage_checks(recipe, source, stage):
        try:
            what = check()
        except RecipeError as error:  # a field two stages read (model.variant) is one problem, said once
            problems += [problem for problem in error.problems if problem not in problems]
        else:
            checked.append(label if what is None else what)
    if problems:
        raise RecipeError(problems)
    return checked


def _stage_checks(recipe, source: str, stage: str) -> Iterator[tuple[str, Callable[[], str | None]]]:
    """``(what is checked, the check)`` of every stage the recipe is for, in pipeline order.

    A check whose parts depend on the fields set returns what it checked; one returning None
    checked what its label says.

    Which stages a recipe is for is decided here alone, from the sections and fields it holds:
    ``pretrain``/``finetune`` for a ``[data]``, ``[model]``, ``[optim]`` or ``[train]`` section
    unless the recipe is for ``evaluate`` alone (:func:`_for_evaluate_alone`; ``--stage`` says it
    is for training), ``evaluate`` for a ``data.val`` or ``data.test``.

    Each stage's module is imported only when the recipe has its sections (training imports torch).
    """
    from biofound_cli.hub_reference import is_hub_reference

    if recipe.download is not None or (recipe.model is not None and is_hub_reference(recipe.model.checkpoint)):
        from biofound_cli.download_plan import check_download

        yield "download", lambda: "download: " + (", ".join(check_download(recipe, source).checked) or "nothing to fetch")
    resolved: dict[str, Any] = {}  # the chain the preprocess check resolved, for the window check: its warnings said once
    if recipe.preprocess is not None:
        from biofound_cli.store.preprocess_config import check_preprocess

        yield (
            "preprocess: corpus, corpus options and signal chain",
            lambda: resolved.update(chain=check_preprocess(recipe.preprocess, source, require_paths=False)),
        )
    if recipe.pack is not None:
        yield "pack: split fractions", lambda: None
    training = any(section is not None for section in (recipe.data, recipe.model, recipe.optim, recipe.train))
    if training and (stage != BOTH_STAGES or not _for_evaluate_alone(recipe)):
        from biofound_cli.training.setup import check_preprocess_windows, check_training

        def check_training_and_windows() -> None:
            check_training(recipe, stage, source)
            if "chain" in resolved:
                corpus, chain = resolved["chain"]
                check_preprocess_windows(recipe, source, corpus, chain, stage)

        yield (
            f"{stage.replace(' and ', '/')}: data and model sections, variant, head, model.overrides, precision on this machine, "
            f"early-stopping metric and loss of {'pre-training' if stage == 'pretrain' else 'model.task'}"
            + (", the model takes preprocess's windows" if recipe.preprocess is not None else ""),
            check_training_and_windows,
        )
    if recipe.data is not None and (recipe.data.val is not None or recipe.data.test is not None):
        from biofound_cli.evaluation.evaluate import check_evaluation

        yield (
            "evaluate: model.variant, its head and model.overrides where set, train.device on this machine",
            lambda: check_evaluation(recipe, source),
        )
    if recipe.export is not None:
        from biofound_cli.export.plan import check_export

        def check_export_fields() -> None:  # its plan is export's, not a word of what was checked
            check_export(recipe, source, require_files=False)

        yield "export: formats, int8 and its calibration split, checkpoint reference", check_export_fields


def _for_evaluate_alone(recipe) -> bool:
    """Whether a recipe is for ``evaluate`` alone, so training's checks are not run on it.

    It is when its ``[data]`` names a split to score (val or test) but no train split, and it
    holds nothing only training reads: no ``[optim]``, no ``[train]`` field but ``device``.
    """
    data, train = recipe.data, recipe.train
    scores = data is not None and data.train is None and (data.val is not None or data.test is not None)
    return scores and recipe.optim is None and (train is None or train.model_fields_set <= {"device"})
