"""A run's record of its recipe, ``runs/NAME/recipe.json``, read back as a recipe.

Training writes the recipe it runs, after ``--set``, ``--unset`` and the defaults, into its run
folder; every command that takes a recipe takes that record as it takes a TOML file
(:func:`~biofound_cli.recipes.loading.read_recipe_file`), so ``biofound evaluate runs/NAME/recipe.json``
scores the run with the recipe it trained with. JSON has the ``null`` TOML lacks: a field at
``null`` is the field unset, as the record was written.

A record sits in the run folder it names: ``output.runs_dir`` / ``output.run_name``. A run copied or
moved (``rsync`` from a cluster, a moved project folder) keeps the ``runs_dir`` of the machine it
trained on, so a record found in a folder of its run's name, where that ``runs_dir`` no longer
leads, names the folder it is in instead (logged): the record's own run is the one meant.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from biofound_cli.errors import RecipeError

logger = logging.getLogger(__name__)

RECORD_NAME = "recipe.json"
"""The file in a run folder that records its recipe."""


def is_run_record(path: Path) -> bool:
    """Whether ``path`` names a recipe as a run records it (JSON), not a TOML recipe.

    Parameters
    ----------
    path : Path
        A recipe file given on the command line.
    """
    return Path(path).suffix.lower() == ".json"


def parse_run_record(path: Path, text: str) -> dict[str, Any]:
    """The recipe tables of a run's record, its ``output.runs_dir`` pointing at the folder the record is in.

    Parameters
    ----------
    path : Path
        The record (``runs/NAME/recipe.json``).
    text : str
        Its content.

    Raises
    ------
    RecipeError
        The text is not one JSON object.
    """
    advice = "pass a .toml recipe, or the recipe.json a training run wrote into its run folder"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecipeError([f"{path}: not valid JSON ({error.msg} at line {error.lineno}); {advice}"]) from None
    if not isinstance(data, dict):
        raise RecipeError([f"{path}: holds a JSON {type(data).__name__}, not a recipe's tables; {advice}"])
    _point_at_own_run_folder(data, Path(path))
    return data


def recorded_run_name(data: dict[str, Any]) -> str | None:
    """The name of the run folder a run's record names: ``output.run_name``, else the recipe's ``name``.

    Training records ``output.run_name`` for every run
    (:meth:`~biofound_cli.recipes.schema.Recipe.run_output`); a record of an earlier version may
    hold only the recipe's ``name``, or neither (``None``).

    Parameters
    ----------
    data : dict
        The record's tables (``recipe.json``).
    """
    output = data.get("output")
    name = (output.get("run_name") if isinstance(output, dict) else None) or data.get("name")
    return str(name) if name else None


def _point_at_own_run_folder(data: dict[str, Any], path: Path) -> None:
    """Set ``output.runs_dir`` to the folder holding the record's run folder when the recorded one leads elsewhere.

    Only a record named :data:`RECORD_NAME` in a folder named as its run (:func:`recorded_run_name`);
    a copy elsewhere keeps what it records.
    """
    output = data.get("output")
    if not isinstance(output, dict) or not isinstance(output.get("runs_dir"), str):
        return
    name = recorded_run_name(data)
    folder = path.absolute().parent
    if path.name != RECORD_NAME or not name or folder.name != name:
        return
    recorded = Path(output["runs_dir"]) / name
    if recorded.is_dir() and recorded.samefile(folder):
        return
    output["runs_dir"] = str(folder.parent)
    logger.info(f"{path}: the run is the folder holding this record, {folder} (its output.runs_dir led to {recorded})")
