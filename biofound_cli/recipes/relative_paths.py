"""Recipe paths are read from the working folder, not from the recipe's: say so when that is why one is missing.

A recipe copied into a study folder and run from elsewhere (``biofound finetune ../study/r.toml``)
reads ``root = "raw"`` as ``./raw``; each stage then said only that its input was missing, and
advised running the stage before it again. When such a path is found beside the recipe instead,
one warning names it and the folder to run from.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from pydantic import BaseModel

from biofound_cli.errors import SAID_AT_ONCE

logger = logging.getLogger(__name__)


def warn_paths_beside_recipe(recipe: BaseModel, recipe_file: Path | None) -> list[str]:
    """Warn, once, about the relative paths of ``recipe`` that exist from ``recipe_file``'s folder alone.

    Parameters
    ----------
    recipe : BaseModel
        The validated recipe.
    recipe_file : Path | None
        The file it was read from; ``None`` (flags alone) or a file in the working folder checks nothing.

    Returns
    -------
    list of str
        The fields warned about (``preprocess.root``), in the recipe's order.
    """
    if recipe_file is None:
        return []
    folder = Path(recipe_file).parent
    if folder.resolve() == Path.cwd().resolve():
        return []
    found = [(name, path) for name, path in _relative_paths(recipe, "") if not path.exists() and (folder / path).exists()]
    if found:
        (name, path), more = found[0], len(found) - 1
        logger.warning(
            "%s: %s = %r%s is not found from the working folder %s but is beside the recipe; paths in a recipe are "
            "relative to the working folder: run from %s",
            recipe_file,
            name,
            str(path),
            f" (and {more} more path{'s' if more > 1 else ''})" if more else "",
            Path.cwd(),
            folder.resolve(),
            extra={SAID_AT_ONCE: True},  # the why of a refusal of that path: said with it
        )
    return [name for name, _ in found]


def _relative_paths(section: BaseModel, prefix: str) -> Iterator[tuple[str, Path]]:
    """Every relative path value of ``section`` and the sections in it, with its dotted name."""
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            yield from _relative_paths(value, f"{prefix}{name}.")
        elif isinstance(value, Path) and not value.is_absolute() and str(value) not in ("", "."):
            yield f"{prefix}{name}", value
