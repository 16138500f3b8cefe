"""``hub:MODEL/FOLDER`` checkpoint references: official weights named the way the hub files them.

A recipe can say ``model.checkpoint = "hub:luna/Base"`` (LUNA-base, pre-trained) or
``"hub:femba-base/TUAR"`` (FEMBA-base fine-tuned on TUAR) instead of a path. ``FOLDER`` is a
size folder (``Base``, ``Large``, ``Huge``: the pre-trained weights of that size) or a
downstream task folder (``TUAB``, ``DB5``, ``UCI_EMG``, ...: the fine-tuned weights); ``MODEL``
is a family or a variant. The reference is resolved offline, from the hub cache (or the
``[download] dest`` folder), where ``biofound download --recipe R.toml`` put the file: the same
request, so the file read is exactly the file fetched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeGuard

from biofound_cli.errors import DownloadError, UsageError
from biofound_cli.hub import DamagedCopy, NotDownloaded, WeightsRequest, download_weights, hub_offline, weights_request
from biofound_cli.models.registry import FAMILIES
from biofound_cli.recipes.origin import RecipeOrigin
from biofound_cli.recipes.shipped import is_recipe_file

HUB_SCHEME = "hub:"
EXAMPLES = "hub:luna/Base (pre-trained LUNA-base) or hub:femba-base/TUAR (FEMBA-base fine-tuned on TUAR)"


def is_hub_reference(value: str | os.PathLike[str] | None) -> TypeGuard[str | os.PathLike[str]]:
    """Whether ``value`` is a ``hub:`` reference rather than a path.

    Parameters
    ----------
    value : str | os.PathLike | None
        A recipe's weights value; None is not a reference.
    """
    return value is not None and str(value).startswith(HUB_SCHEME)


def hub_request(reference: str | os.PathLike[str], where: str) -> WeightsRequest:
    """The weights a ``hub:MODEL/FOLDER`` reference names.

    Parameters
    ----------
    reference : str
        The reference, e.g. ``"hub:luna/Base"``.
    where : str
        The recipe file and field holding it, named in messages (``"R.toml: model.checkpoint"``).

    Raises
    ------
    UsageError
        One sentence naming ``where`` for a malformed reference or an unknown model, size or task.
    """
    text = str(reference)
    parts = text[len(HUB_SCHEME) :].strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise UsageError(f"{where} = {text!r} is not a hub reference; write hub:MODEL/FOLDER, e.g. {EXAMPLES}")
    model, folder = parts
    family = model.lower().split("-", 1)[0]
    if family not in FAMILIES:
        raise UsageError(f"{where} = {text!r}: unknown model {model!r}; use one of {', '.join(FAMILIES)}")
    task_keys = FAMILIES[family].hub_task_folders
    try:
        if folder.lower().replace("_", "-") in task_keys:
            return weights_request(model, None, folder)
        if "-" in model:
            raise UsageError(f"{model!r} already names a size; write hub:{family}/{folder} or hub:{model}/TASK")
        return weights_request(model, folder, None)
    except UsageError as error:
        folders = ", ".join(task_keys.values())
        raise UsageError(
            f"{where} = {text!r}: {error.message.replace('--variant', 'size').replace('--task', 'task')} "
            f"(FOLDER is a size or one of {folders})"
        ) from None


def local_checkpoint(
    value: str | os.PathLike[str],
    where: str,
    *,
    revision: str | None = None,
    dest: str | os.PathLike[str] | None = None,
    origin: RecipeOrigin | None = None,
) -> Path:
    """The file a checkpoint value reads: a path as it is, a ``hub:`` reference from the local copy.

    Parameters
    ----------
    value : path or str
        ``model.checkpoint`` (or ``--checkpoint``): a path or a ``hub:`` reference.
    where : str
        The recipe file and field, named in messages.
    revision : str | None
        The ``[download] revision`` the weights were fetched at.
    dest : path | None
        The ``[download] dest`` folder they were copied into; unset: the hub cache.
    origin : RecipeOrigin | None
        Where the recipe's values came from: one an option gave is not what ``download --recipe`` fetches.

    Raises
    ------
    UsageError
        When ``value`` names a recipe, the weights are not there yet (naming the command that
        fetches them), or more than one file matches.
    DownloadError
        When the copy there cannot be read (naming the command that fetches it again), or does
        not match the variant's key manifest.
    """
    if is_recipe_file(value):  # evaluate and the training stages take a recipe first; it was read as weights
        raise UsageError(
            f"{where} {value} is a recipe, not weights; give the weights it trained (its run's checkpoints/best) "
            "or an export folder"
        )
    if not is_hub_reference(value):
        return Path(value)
    request = hub_request(value, where)
    try:
        result = download_weights(request, revision=revision, dest=dest, progress=False, local_only=True)
    except NotDownloaded as missing:
        place = f"{dest}" if dest is not None else "the hub cache"
        fetch = f"`{_fetch_command(request, where, revision, dest, origin)}`"
        if hub_offline():  # the download command named would refuse as this did: say what lets it run, or what else works
            how = f"finish it with {fetch}" if missing.partial else f"fetch them with {fetch}"
            advice = (
                f"{missing.partial + ': ' if missing.partial else ''}HF_HUB_OFFLINE is set, so nothing is fetched: "
                f"unset it and {how} where there is network access, or give the path of a checkpoint file instead"
            )
        else:
            advice = (
                f"{missing.partial}: finish it with {fetch} with network access"
                if missing.partial
                else f"fetch them with {fetch}"
            )
        raise UsageError(f"{where} = {str(value)!r}: the {request.description} are not in {place} yet; {advice}") from None
    except DamagedCopy as damaged:  # there but unreadable: fetching it again needs --force (status 1)
        raise DownloadError(
            f"{where} = {str(value)!r}: {damaged.problem}; fetch the {request.description} again with "
            f"`{_fetch_command(request, where, revision, dest, origin)} --force`"
        ) from None
    if len(result.files) > 1:
        names = ", ".join(str(path) for path in result.files)
        raise UsageError(f"{where} = {str(value)!r}: several files match ({names}); set the path of one instead")
    return result.files[0]


def _fetch_command(request: WeightsRequest, where: str, revision: str | None, dest: Any, origin: RecipeOrigin | None) -> str:
    """``download --recipe R.toml`` when ``where`` is the recipe's ``model.checkpoint``, which it fetches, else the flags.

    Not when an option gave that value or the ``[download]`` section (``--set model.checkpoint=hub:...``):
    ``download --recipe R.toml`` fetches what the file says.
    """
    recipe, _, field = where.partition(": ")
    given = origin is not None and (origin.gives("model.checkpoint") or origin.gives("download"))
    # Not evaluate's --checkpoint either, which `download --recipe` does not read.
    if recipe.endswith(".toml") and field == "model.checkpoint" and not given:
        return f"biofound download --recipe {recipe}"
    words = ["biofound download", request.variant.family, "--variant", request.variant.name]
    words += ["--task", request.task] if request.task else []
    words += ["--revision", revision] if revision else []
    words += ["--dest", str(dest)] if dest is not None else []
    return " ".join(words)


def reference_of(request: WeightsRequest) -> str:
    """The ``hub:`` reference naming ``request``'s weights (the inverse of :func:`hub_request`).

    Parameters
    ----------
    request : WeightsRequest
        What :func:`~biofound_cli.hub.weights_request` resolved.
    """
    if request.task is None:
        return f"{HUB_SCHEME}{request.variant.family}/{request.patterns[0].split('/', 1)[0]}"
    folder = FAMILIES[request.variant.family].hub_task_folders[request.task]
    return f"{HUB_SCHEME}{request.variant.name}/{folder}"
