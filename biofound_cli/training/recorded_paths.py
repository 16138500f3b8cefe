"""The paths a run folder's ``recipe.json`` records, checked against where the folder is now.

A run trained on a cluster and copied to a laptop (``rsync``, a moved project folder, a run
shared with a colleague) keeps the paths of the machine it trained on: ``output.runs_dir`` and
the packed ``data.train`` / ``val`` / ``test`` files, relative to the folder training ran from, or
absolute. ``biofound info RUN`` names, for each packed file, whether it is at the recorded path,
where it is if the data moved along with the run (the same layout under the folder the run moved
to), or that it is missing, and the ``--set`` that points the recipe at it. A file at the recorded
path that holds other windows than the run trained on (a stale copy left behind) is named too.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from biofound_cli.atomic import read_json_object
from biofound_cli.errors import BiofoundError
from biofound_cli.recipes.run_record import recorded_run_name
from biofound_cli.store.splits import SPLITS
from biofound_cli.training.run_folder import RunFolder


def describe_recorded_paths(run_root: Path, recipe: dict[str, Any], environment: dict[str, Any] | None) -> dict[str, Any]:
    """Where the run folder and its packed files were recorded, and what is found of them now.

    Parameters
    ----------
    run_root : Path
        The run folder, where it is now.
    recipe : dict
        Its ``recipe.json``.
    environment : dict | None
        Its ``environment.json`` (the fingerprints of the windows it trained and validated on).

    Returns
    -------
    dict
        ``run_folder``: ``recorded`` (``output.runs_dir`` / ``output.run_name``) and ``moved`` (that
        path, from the working folder when relative, does not lead here); per split named in
        ``[data]`` (``train``, ``val``, ``test``): ``recorded``, ``status`` (``found``, ``moved``,
        ``missing`` or ``other windows``) and a ``note`` naming the path to use and the ``--set`` that uses it.
    """
    output = recipe.get("output") or {}
    recorded_runs = Path(str(output.get("runs_dir") or "runs"))
    # The name the record gives: a folder renamed when moved keeps its run's name there.
    # Lexically absolute: `biofound info .` (or `..`) names a folder whose parent is not "." itself.
    here = Path(os.path.abspath(run_root))
    name = recorded_run_name(recipe) or here.name
    recorded_run = recorded_runs / name
    # The path given, and the real one when reached through a link (a symlinked runs folder).
    places = dict.fromkeys((here, run_root.resolve()))
    bases = [_moved_bases(recorded_runs, place.parent) for place in places]
    # Moved: the recipe's runs_dir (from the working folder, when relative) no longer leads here.
    moved = not _same_folder(recorded_run, run_root)
    flags = _set_flag("output.runs_dir", here.parent)
    if here.name != name:  # renamed: runs_dir alone leads to a folder of the old name
        flags += f" {_set_flag('output.run_name', here.name)}"
    fingerprints = (environment or {}).get("data_fingerprints") or {}
    data = recipe.get("data") or {}
    return {
        "run_folder": {"recorded": str(recorded_run), "moved": moved}
        | ({"note": f"evaluate and --resume find it with {flags}"} if moved else {}),
        **{
            split: _split_status(split, Path(str(data[split])), bases, fingerprints.get(split))
            for split in SPLITS
            if data.get(split)
        },
    }


def read_recorded_paths(run_root: Path) -> dict[str, Any] | None:
    """:func:`describe_recorded_paths` of a run folder, from its own files; ``None`` without a ``recipe.json``.

    Parameters
    ----------
    run_root : Path
        The run folder.
    """
    run = RunFolder(run_root)
    recipe = read_json_object(run.recipe_file)
    return None if recipe is None else describe_recorded_paths(run_root, recipe, read_json_object(run.environment_file))


def _moved_bases(recorded: Path, now: Path) -> tuple[Path | None, Path | None]:
    """The folder the run's recorded paths hang from, then and now: the parts above their common ending.

    ``recorded`` is the recorded ``runs_dir``, ``now`` the folder holding the run now: the run
    folder's own name may have changed on the way (``mv runs/NAME /scratch/old-run``).

    A relative ``runs_dir`` was relative to the folder training ran from, which is not recorded:
    then (``None``, the folder now) when the folder holding the run ends with it, so relative paths map too.
    """
    tail = 0
    while tail < min(len(recorded.parts), len(now.parts)) and recorded.parts[-1 - tail] == now.parts[-1 - tail]:
        tail += 1
    new_base = Path(*now.parts[: len(now.parts) - tail])
    if not recorded.is_absolute():
        return None, (new_base if tail == len(recorded.parts) else None)
    return Path(*recorded.parts[: len(recorded.parts) - tail]), new_base


def _split_status(
    split: str, recorded: Path, bases: list[tuple[Path | None, Path | None]], fingerprint: str | None
) -> dict[str, Any]:
    """What is found of one recorded packed file: at its path, moved with the run, missing, or other windows."""
    as_given = recorded if recorded.is_absolute() else Path.cwd() / recorded
    places = [place for old, new in bases if (place := _mapped(recorded, old, new)) is not None]
    beside_run = next((place for place in places if place.is_file()), places[0] if places else None)
    entry: dict[str, Any] = {"recorded": str(recorded)}
    if as_given.is_file() and not _same_windows(as_given, fingerprint):
        own = beside_run if beside_run is not None and beside_run.is_file() and _same_windows(beside_run, fingerprint) else None
        entry["status"] = "other windows"
        entry["note"] = f"{recorded} holds other windows than the run trained on" + (
            f"; its own are at {own}: {_set_flag(split, own)}" if own is not None else ""
        )
    elif as_given.is_file():
        entry["status"] = "found"
    elif beside_run is not None and beside_run.is_file():
        entry["status"] = "moved"
        entry["note"] = f"found at {beside_run}, not at the recorded path: {_set_flag(split, beside_run)}"
    else:
        entry["status"] = "missing"
        elsewhere = f" nor at {beside_run}" if beside_run is not None else ""
        entry["note"] = f"not found there{elsewhere}; copy the packed file there or point --set data.{split}=PATH at it"
    return entry


def _set_flag(field: str, path: Path | str) -> str:
    """The ``--set`` that points ``field`` (a split: ``data.SPLIT``) at ``path``, quoted for a shell (paths with spaces)."""
    dotted = field if "." in field else f"data.{field}"
    return f"--set {shlex.quote(f'{dotted}={path}')}"


def _mapped(recorded: Path, old_base: Path | None, new_base: Path | None) -> Path | None:
    """``recorded`` under the folder the run moved to, when it was under the folder it moved from."""
    if new_base is None:
        return None
    if not recorded.is_absolute():  # relative to where training ran: mapped only when runs_dir was relative too
        return new_base / recorded if old_base is None else None
    if old_base is None:
        return None
    try:
        return new_base / recorded.relative_to(old_base)
    except ValueError:  # outside the run's old project folder: it did not move with it
        return None


def _same_folder(first: Path, second: Path) -> bool:
    """Whether both paths lead to one folder (through links too)."""
    try:
        return first.exists() and first.samefile(second)
    except OSError:
        return False


def _same_windows(path: Path, fingerprint: str | None) -> bool:
    """Whether the packed file holds the windows the run recorded (always, when none was recorded: test)."""
    from biofound_cli.store.dataset import read_packed_info

    if not fingerprint:
        return True
    try:
        return read_packed_info(path).fingerprint == fingerprint
    except BiofoundError:
        return False
