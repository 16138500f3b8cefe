"""``biofound recipes ls | show NAME | cp NAME DEST``: the recipes shipped with the package.

The recipes live in ``biofound_cli/data/recipes/`` and are found by
:mod:`biofound_cli.recipes.shipped`.
``recipes/`` at the repository root is a link to that folder.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from biofound_cli.cli.common import Output, run_option, with_output
from biofound_cli.errors import RecipeError, UsageError
from biofound_cli.recipes.shipped import SUFFIX, find_recipe, is_recipe_file, shipped_recipes

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

recipes_app = typer.Typer(
    name="recipes",
    help="The recipes shipped with biofound: list them, print one, copy one to edit.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

NameArgument = Annotated[
    str,
    typer.Argument(
        help="Recipe name: the file stem as `biofound recipes ls` lists it (e.g. luna_tuab); .toml accepted.", show_default=False
    ),
]


def _description(entry: Traversable) -> str:
    from biofound_cli.recipes.loading import read_toml

    try:
        description = read_toml(Path(str(entry))).get("description", "")
    except RecipeError:  # a broken file is listed without its description
        return ""
    return description if isinstance(description, str) else ""


def rows() -> list[dict[str, Any]]:
    """``{name, description, path}`` of every shipped recipe."""
    return [{"name": name, "description": _description(entry), "path": str(entry)} for name, entry in shipped_recipes().items()]


@recipes_app.command("ls", epilog="Example: biofound recipes ls")
@with_output
def ls(output: Output) -> None:
    """List the shipped recipes and their descriptions; --json prints {"recipes": [{name, description, path}, ...]}."""
    listed = rows()
    if output.json_summary:
        # An object, as every --json is (`models --json`: {"models": [...]}), so `jq .exit_status` and `warnings` work.
        output.summary({"recipes": listed})
        return
    output.result_table(
        "Shipped recipes (biofound recipes show NAME / cp NAME DEST)",
        ("name", "description"),
        [(row["name"], row["description"]) for row in listed],
    )


@recipes_app.command("show", epilog="Example: biofound recipes show luna_tuab")
@with_output
def show(output: Output, name: NameArgument) -> None:
    """Print a shipped recipe's TOML text; --json prints {name, path, toml}."""
    _print(output, *find_recipe(name))


def _print(output: Output, stem: str, entry: Traversable) -> None:
    """Write the recipe's TOML text (or ``{name, path, toml}`` with --json) to stdout."""
    text = entry.read_text(encoding="utf-8")
    if output.json_summary:
        output.summary({"name": stem, "path": str(entry), "toml": text})
        return
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


@recipes_app.command("cp", epilog="Example: biofound recipes cp luna_tuab my_luna.toml")
@with_output
def cp(
    output: Output,
    name: NameArgument,
    dest: Annotated[
        str,
        typer.Argument(
            help="File to write (a .toml name), or a folder (existing, ending in /, or a new name without a suffix) "
            "where the recipe keeps its file name; - prints it, as `show` does.",
            show_default=False,
        ),
    ],
    overwrite: Annotated[bool, run_option("--overwrite", help="Replace DEST if it exists.")] = False,
) -> None:
    """Copy a shipped recipe to DEST to edit it; refuses to replace a file unless --overwrite."""
    from biofound_cli.atomic import write_bytes_atomic

    stem, entry = find_recipe(name)
    if dest == "-":  # the usual name of stdout: `cp luna_tuab -` made a folder named "-"
        _print(output, stem, entry)
        return
    if not dest.strip():  # an unset $DIR in `cp luna_tuab "$DIR"` wrote into the working folder
        raise UsageError("DEST is empty; name a .toml file or a folder (. for the working folder)")
    folder = Path(dest)
    # `cp luna_tuab my_runs` (the trailing / forgotten) means a folder: a recipe file named my_runs is never meant.
    is_folder = folder.is_dir() or dest.endswith(("/", "\\")) or (not folder.exists() and not folder.suffix)
    target = folder / f"{stem}{SUFFIX}" if is_folder else folder
    if target.is_dir():
        raise UsageError(f"{target}: is a folder; pass a file path or another folder")
    # `cp luna_tuab x.yaml` wrote TOML into a file every reader takes for YAML; x.TOML is a recipe to every command.
    if not is_recipe_file(target):
        raise UsageError(f"{target}: a recipe is TOML; name the copy {target.with_suffix(SUFFIX).name} or pass a folder")
    if target.exists() and not overwrite:
        raise UsageError(f"{target}: already exists; pass --overwrite to replace it")
    try:
        write_bytes_atomic(target, entry.read_bytes())
    except FileNotFoundError as error:  # /proc: the folder exists, but no new file can be made there
        raise UsageError(f"{target}: cannot be written ({error.strerror}); choose another DEST") from None
    if output.json_summary:
        output.summary({"recipe": stem, "source": str(entry), "dest": str(target)})
    else:
        output.info(f"copied {stem}{SUFFIX} to {target}")
