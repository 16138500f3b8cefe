"""Where each value of a loaded recipe came from: its file, a ``--set`` option or a quick flag.

An error about a recipe field starts with the recipe file (``recipe.toml: optim.lr = "abc": ...``).
When the value was given on the command line instead, the user would search the file for a
value that is not there: :meth:`RecipeOrigin.blame` names the option that gave it
(``--set optim.lr=abc: optim.lr = "abc": ...``). :func:`~biofound_cli.recipes.loading.load_recipe`
records the origin on the recipe it returns, and :func:`options_named` applies it to every error
a stage raises about that recipe, its own checks' and pydantic's alike.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, NamedTuple

from biofound_cli.errors import BiofoundError, RecipeError

COMMAND_LINE = "the command line"
"""The source of a recipe made of flags and ``--set`` options alone, without a file."""


def recipe_source(path: object | None) -> str:
    """What an error names as a recipe's source: its file, or :data:`COMMAND_LINE` without one.

    Parameters
    ----------
    path : path-like | None
        The recipe file given, if any.
    """
    return str(path) if path is not None else COMMAND_LINE


class Flag(NamedTuple):
    """A quick flag's value, with its spelling on the command line (``--root``, ``CORPUS``) for errors to name."""

    spelling: str
    value: Any


# A dotted field name at the start of a problem, ended by the end, a space, ``:``, ``=``, ``,`` or ``;``.
_FIELD = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)*(?=$|[\s:=,;])")


@dataclass
class RecipeOrigin:
    """Where a loaded recipe's values came from.

    Parameters
    ----------
    source : str
        The recipe file (or :data:`COMMAND_LINE`), at the start of each problem line.
    in_file : frozenset of str
        The dotted name of every table and value the file holds.
    given : dict of str to str
        The fields given on the command line, each with the option that gave it
        (``{"optim.lr": "--set optim.lr=abc", "preprocess.root": "--root"}``).
    replaced : dict of str to value
        The file's tables a command's flag replaced whole, as the file holds them (a run's
        ``[export]``, which ``export`` does not apply, but whose formats it names).
    """

    source: str
    in_file: frozenset[str] = frozenset()
    given: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, Any] = field(default_factory=dict)

    def give(self, dotted: str, option: str) -> None:
        """Record that ``option`` set ``dotted`` whole: what was given inside it before is replaced.

        Parameters
        ----------
        dotted : str
            The field's dotted name.
        option : str
            How it was given, as the user typed it.
        """
        for key in [key for key in self.given if key == dotted or key.startswith(dotted + ".")]:
            del self.given[key]
        self.given[dotted] = option

    def gives(self, dotted: str) -> bool:
        """Whether an option gave ``dotted``, a table holding it, or a value inside it.

        Parameters
        ----------
        dotted : str
            The field's dotted name.
        """
        return any(key == dotted or dotted.startswith(key + ".") or key.startswith(dotted + ".") for key in self.given)

    def blame(self, line: str) -> str:
        """``line`` with its source replaced by the option that gave the field it names.

        ``recipe.toml: data.train ...`` becomes ``--set data.train=x: data.train ...`` when
        ``data.train`` (or the whole ``data`` table) came from ``--set``; a problem that starts by
        naming that field alone (``data.train: ...``) loses the name, which the option already
        says. A quick flag takes the field's place (``--workers = 0: ...``). When only values inside
        the field came from the command line (a check of the whole ``optim`` section), the file
        is named with them (``recipe.toml with --set optim.lr=1e-4: optim: ...``), or they alone
        when the file holds nothing there or the problem names only values they gave; a problem
        that names only the file's values names the file. Any other line is returned as it is.

        Parameters
        ----------
        line : str
            One problem, ``source: field ...``.
        """
        prefix = f"{self.source}: "
        match = _FIELD.match(line, len(prefix)) if line.startswith(prefix) and self.given else None
        if match is None:
            return line
        name, problem = match.group(), line[len(prefix) :]
        whole = [key for key in self.given if name == key or name.startswith(key + ".")]
        if whole:
            option = self.given[max(whole, key=len)]
            if name in self.given and not option.startswith(("--set ", "--unset ")):
                # A quick flag stands for its field ("CHECKPOINT: export.checkpoint = ..." named the place twice).
                return option + problem[len(name) :]
            if option.startswith(f"--set {name}=") and problem.startswith(f"{name}: "):
                # The option names the field already ("--set model.checkpoint=x: model.checkpoint: ..." named it twice).
                problem = problem[len(name) + 2 :]
            return f"{option}: {problem}"
        inside = [option for key, option in self.given.items() if key.startswith(name + ".")]
        if not inside:
            return line
        # A check of the section that names its fields (pack.train + pack.val + pack.test) blames the
        # options that gave those, not every option in the section (SHARDS, --out).
        named = [option for key, option in self.given.items() if key.startswith(name + ".") and _names(problem, key)]
        # The file's own values it names (those no option replaced): a problem of one source names that one alone.
        from_file = [key for key in self.in_file if key.startswith(name + ".") and not self.gives(key) and _names(problem, key)]
        if from_file and not named:
            return line
        options = " and ".join(named or inside)
        if not (named and not from_file) and any(key == name or key.startswith(name + ".") for key in self.in_file):
            return f"{self.source} with {options}: {problem}"
        return f"{options}: {problem}"

    def rename(self, error: BiofoundError) -> None:
        """Blame each line of ``error``'s message (each problem of a :class:`RecipeError`) in place.

        Parameters
        ----------
        error : BiofoundError
            An error raised about this recipe; its type, status and details are kept.
        """
        if isinstance(error, RecipeError):
            error.problems = [self.blame(line) for line in error.problems]
            error.args = ("\n".join(error.problems), *error.args[1:])
        else:
            error.args = ("\n".join(self.blame(line) for line in error.message.split("\n")), *error.args[1:])


def dotted_names(data: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """The dotted name of every table and value in ``data`` (``optim``, ``optim.lr``, ...).

    Parameters
    ----------
    data : mapping
        A parsed TOML document or table.
    prefix : str
        The dotted name of ``data`` itself, with its trailing dot.
    """
    for key, value in data.items():
        yield prefix + str(key)
        if isinstance(value, Mapping):
            yield from dotted_names(value, f"{prefix}{key}.")


def origin_of(recipe: object) -> RecipeOrigin | None:
    """The origin :func:`~biofound_cli.recipes.loading.load_recipe` recorded on ``recipe``, if any.

    Parameters
    ----------
    recipe : object
        A loaded recipe (or one of its sections, which carry none).
    """
    origin = getattr(recipe, "_origin", None)
    return origin if isinstance(origin, RecipeOrigin) else None


@contextmanager
def options_named(recipe: object) -> Iterator[None]:
    """Errors raised in the block name the ``--set`` option or flag that gave a field, not the recipe file.

    Wrap the stage that runs a recipe loaded from the command line: its own checks (and what it
    finds wrong with the data the recipe names) then point at what the user typed.

    Parameters
    ----------
    recipe : object
        The recipe the block runs, as :func:`~biofound_cli.recipes.loading.load_recipe` returned it.
    """
    try:
        yield
    except BiofoundError as error:
        origin = origin_of(recipe)
        if origin is not None:
            origin.rename(error)
        raise


def _names(problem: str, dotted: str) -> bool:
    """Whether ``problem`` names the field ``dotted`` (as a whole name: ``data.val`` is not ``data.validation``)."""
    return re.search(rf"(?<![\w.]){re.escape(dotted)}(?![\w])", problem) is not None
