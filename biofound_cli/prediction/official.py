"""Official checkpoints (no biofound metadata) run with the published chain of their task.

An official file says neither its task nor how its data were preprocessed. The task comes from
where ``biofound download`` put it: the hub reference (``hub:luna/TUAB``) or the hub layout's
task folder the file sits in (``…/TUAB/LUNA_base.safetensors``, in the hub cache or a
``--dest`` folder); pre-trained weights (a reconstruction head) have the task ``pretrain``.
The chain, head and normalisation of that task are the ones its shipped recipe publishes
(:func:`~biofound_cli.recipes.shipped.task_recipe`, e.g. ``luna_tuab.toml``): predict reads
them from there, never from a copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biofound_cli.errors import UsageError
from biofound_cli.hub_reference import hub_request, is_hub_reference
from biofound_cli.models.checkpoints import describe_checkpoint
from biofound_cli.models.registry import FAMILIES, family_of
from biofound_cli.prediction.chain import PredictionChain, recipe_chain
from biofound_cli.recipes.shipped import task_recipe, task_recipe_name
from biofound_cli.tasks import RECONSTRUCTION

PRETRAIN = "pretrain"


@dataclass(frozen=True)
class PublishedTask:
    """What an official checkpoint is and the published recipe of its task.

    Attributes
    ----------
    family : str
        Model family key.
    variant : str | None
        The registered variant whose body the file matches (``None``: the recipe's).
    task : str
        Downstream data set (``tuab``, ``uci-emg``) or ``pretrain``.
    recipe : Recipe
        The shipped recipe of that task.
    chain : PredictionChain | None
        Its ``[preprocess]`` chain, checked as it loaded (:func:`~biofound_cli.prediction.chain.recipe_chain`).
    source : str
        How the chain is reported (``published chain of tuab (luna_tuab.toml)``).
    """

    family: str
    variant: str | None
    task: str
    recipe: Any
    chain: PredictionChain | None
    source: str

    def model_fields(self) -> dict[str, Any]:
        """``variant``, ``task``, ``num_classes`` and ``overrides`` to build the model with.

        The recipe's constructor overrides describe the recipe's variant; a file of another size
        is built as its registered variant.
        """
        section = self.recipe.model
        variant = self.variant or section.variant
        overrides = dict(section.overrides or {}) if variant == section.variant else {}
        if self.task == PRETRAIN:
            return {"variant": variant, "task": RECONSTRUCTION, "num_classes": 0, "overrides": overrides}
        task = recipe_head_task(self.recipe, self.source)
        return {"variant": variant, "task": task, "num_classes": section.num_classes, "overrides": overrides}


def recipe_head_task(recipe: Any, source: str) -> str | None:
    """The head task a recipe builds: ``[model] task``, else its ``[preprocess]`` corpus's (the task of the data it makes).

    Parameters
    ----------
    recipe : Recipe
        A recipe with a ``[model]`` section.
    source : str
        The recipe file, named in messages.
    """
    from biofound_cli.corpora import get_corpus
    from biofound_cli.store.preprocess_config import resolve_options

    if recipe.model.task:
        return str(recipe.model.task)
    section = recipe.preprocess
    if section is None or section.corpus is None:
        return None
    # The reader and its options only: the chain was checked (and warned about) once, as the recipe loaded.
    corpus_cls = get_corpus(section.corpus)
    return str(corpus_cls(resolve_options(section, corpus_cls, source)).task)


def published_task(weights: Path, reference: str) -> PublishedTask:
    """The published recipe of the task of the official file ``weights``.

    Parameters
    ----------
    weights : Path
        The ``.safetensors`` file.
    reference : str
        The ``MODEL`` argument as given (a ``hub:`` reference names the task itself).

    Raises
    ------
    UsageError
        When the file is no known model, its task cannot be told, or no recipe publishes it.
    """
    from biofound_cli.recipes import load_checked

    described = describe_checkpoint(weights)
    if described["model"] is None:
        raise UsageError(
            f"{weights} has no biofound metadata and its keys match no FEMBA, LUNA or TinyMyo checkpoint; "
            "give a biofound checkpoint or an official file as `biofound download` fetched it"
        )
    family = family_of(str(described["model"])).key
    task = PRETRAIN if described["head"] == "reconstruction" else _task_of(weights, reference, family)
    path = task_recipe(family, task)
    if path is None:
        raise UsageError(
            f"{weights}: no shipped recipe publishes the {family} {task} chain ({task_recipe_name(family, task)}.toml); "
            "pass --recipe with its [model] and [preprocess] sections"
        )
    source = f"published chain of {task} ({path.name})"
    recipe, chain = load_checked(path, [], check=lambda loaded: recipe_chain(loaded, source))
    return PublishedTask(family, described["variant"], task, recipe, chain, source)


def predict_command(weights: str | Path) -> str | None:
    """How ``biofound predict`` runs the official weights ``weights``, as advice to a command that cannot.

    Parameters
    ----------
    weights : str | Path
        A ``hub:`` reference, or a file without biofound metadata.

    Returns
    -------
    str | None
        The command alone where predict tells the task itself (a hub reference, a file in the hub's task
        folders, pre-trained weights), with ``--recipe`` where the file's task is unknown; ``None`` for keys
        that match no model, which no command runs.
    """
    if is_hub_reference(str(weights)):
        return f"`biofound predict {weights} RECORDINGS --out DIR` runs official weights as they are"
    try:
        published = published_task(Path(weights), str(weights))
    except UsageError:
        if describe_checkpoint(weights)["model"] is None:
            return None
        return (
            f"`biofound predict {weights} RECORDINGS --recipe RECIPE --out DIR` runs them with a RECIPE whose "
            "[model] sets variant and task and whose [preprocess] gives the chain of its training data"
        )
    return f"`biofound predict {weights} RECORDINGS --out DIR` runs them with the {published.source}"


def _task_of(weights: Path, reference: str, family: str) -> str:
    """The downstream task of a fine-tuned file: the hub reference's, else its hub-layout folder's."""
    if is_hub_reference(reference):
        task = hub_request(reference, "MODEL").task
        if task is not None:
            return task
    folders = FAMILIES[family].hub_task_folders
    by_folder = {folder.lower(): key for key, folder in folders.items()}
    # The link's folder in the hub cache (snapshots/REV/TUAB/…), or the real file's.
    for parent in (weights.absolute().parent, weights.resolve().parent):
        if parent.name.lower() in by_folder:
            return by_folder[parent.name.lower()]
    raise UsageError(
        f"{weights} is an official fine-tuned {family} file outside the hub's task folders "
        f"({', '.join(folders.values())}), so its task is unknown; predict hub:{family}/TASK after "
        "`biofound download`, or pass --recipe with its task's [model] and [preprocess] sections"
    )
