"""The recipes shipped with the package, and the one that publishes each downstream task's chain.

They live in ``biofound_cli/data/recipes/`` (package data, so an installed biofound has them
too) and are found through :mod:`importlib.resources`, never through a repository path. The
fine-tuning recipe of a downstream task, ``<family>_<task>.toml`` (``luna_tuab``,
``tinymyo_uci_emg``), is where the published preprocessing chain, head and normalisation of
that task are written down; ``biofound predict`` reads an official checkpoint's chain from it.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from biofound_cli.errors import UsageError, unknown_name

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

SUFFIX = ".toml"
PACKAGE = "biofound_cli"


def is_recipe_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a recipe (by its suffix), e.g. given where a command takes weights.

    Parameters
    ----------
    path : str | os.PathLike
        A path as a flag or an argument gives it.
    """
    return Path(path).suffix.lower() == SUFFIX


def bundled_path(path: Path) -> Path:
    """``path``, or the package's own file when it names one (``biofound_cli/data/...``) not found here.

    Recipe paths are relative to the working directory. The sample recipes (``tinymyo_myo``,
    ``luna_scp1``, ``preprocess_scp1``) read recordings shipped inside the package, written
    as in a checkout; resolved against the installed package, such a recipe runs from any
    folder, copied with ``biofound recipes cp`` or not.

    Parameters
    ----------
    path : Path
        A path as a recipe or a flag gives it.
    """
    if path.is_absolute() or not path.parts or path.parts[0] != PACKAGE or path.exists():
        return path
    return Path(str(resources.files(PACKAGE).joinpath(*path.parts[1:])))


def shipped_recipes() -> dict[str, Traversable]:
    """Every shipped recipe, name (file stem) → file, sorted by name."""
    folder = resources.files(PACKAGE).joinpath("data", "recipes")
    if not folder.is_dir():
        return {}
    found = {entry.name[: -len(SUFFIX)]: entry for entry in folder.iterdir() if entry.name.endswith(SUFFIX) and entry.is_file()}
    return dict(sorted(found.items()))


def find_recipe(name: str) -> tuple[str, Traversable]:
    """``(name, file)`` of the shipped recipe ``name`` (stem, or stem + ``.toml``).

    Parameters
    ----------
    name : str
        The recipe's name as ``biofound recipes ls`` lists it.

    Raises
    ------
    UsageError
        Naming the valid names when there is no such recipe.
    """
    recipes = shipped_recipes()
    stem = name[: -len(SUFFIX)] if is_recipe_file(name) else name
    if stem not in recipes:
        if not recipes:
            raise UsageError(
                f"unknown recipe {name!r}; no recipe is shipped (the package data is incomplete; reinstall biofound)"
            )
        # `recipes show recipes/luna_tuab.toml`, the path the docs run stages with: the name is the file's.
        named = Path(name).name
        if named != name and (named[: -len(SUFFIX)] if is_recipe_file(named) else named) in recipes:
            raise UsageError(f"unknown recipe {name!r}; name it without its folder: {Path(named).stem}")
        raise UsageError(unknown_name("recipe", name, recipes, listed_by="`biofound recipes ls`"))
    return stem, recipes[stem]


def shipped_recipe(name: str) -> Path:
    """The file of the shipped recipe ``name`` (e.g. ``luna_scp1`` or ``luna_scp1.toml``).

    Parameters
    ----------
    name : str
        The recipe's name as ``biofound recipes ls`` lists it.

    Raises
    ------
    UsageError
        Naming the valid names when there is no such recipe.
    """
    return Path(str(find_recipe(name)[1]))


def task_recipe_name(family: str, task: str) -> str:
    """The name of the recipe that publishes ``family``'s fine-tuning on downstream ``task``.

    Parameters
    ----------
    family : str
        Model family key (``femba``, ``luna``, ``tinymyo``).
    task : str
        Downstream data set in recipe spelling (``tuab``, ``uci-emg``).
    """
    return f"{family}_{task.lower().replace('-', '_')}"


def task_recipe(family: str, task: str) -> Path | None:
    """The shipped recipe of ``family`` on downstream ``task`` as a file path; ``None`` if none ships.

    Parameters
    ----------
    family : str
        Model family key.
    task : str
        Downstream data set in recipe spelling.
    """
    entry = shipped_recipes().get(task_recipe_name(family, task))
    return Path(str(entry)) if entry is not None else None
