"""Reading a recipe: TOML → ``--set`` overrides → pydantic validation → one line per problem."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, TypeVar, overload

from pydantic import BaseModel, ValidationError

from biofound_cli.errors import RecipeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from biofound_cli.recipes.schema import Recipe

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every way it can fail into a :class:`RecipeError`.

    Parameters
    ----------
    path : Path
        The TOML file.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(
            [
                f"{path}: recipe file not found; pass the path of a .toml recipe "
                "(`biofound recipes ls` lists the shipped ones, `biofound recipes cp NAME .` copies one)"
            ]
        )
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise RecipeError([f"{path}: not valid TOML ({error}); fix the syntax at that line"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError([f"{path}: cannot be read ({error})"]) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``section.key=value`` into its dotted path and a value.

    The value is read as a TOML value (``3``, ``1e-4``, ``true``, ``[1, 2]``, ``"text"``) and,
    when that fails, kept as a plain string, without one level of matching quotes: TOML rejects
    ``"(?P<subject>\\d+)"`` (``\\d`` is no TOML escape), and the quotes are not part of the
    regex. pydantic then converts the value to the field's type.

    Parameters
    ----------
    text : str
        One ``--set`` argument.
    """
    if "=" not in text:
        raise RecipeError([f"--set {text}: expected section.key=value, e.g. --set optim.lr=1e-4"])
    dotted, raw = text.split("=", 1)
    dotted = dotted.strip()
    if not dotted or any(not part for part in dotted.split(".")):
        raise RecipeError([f"--set {text}: expected section.key=value, e.g. --set optim.lr=1e-4"])
    raw = raw.strip()
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = _unquoted(raw)
    return dotted.split("."), value


def _unquoted(raw: str) -> str:
    """``raw`` without one pair of matching surrounding quotes (``"..."`` or ``'...'``), taken literally."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


def apply_override(data: dict[str, Any], keys: Sequence[str], value: Any) -> None:
    """Set ``data[k1][k2]...[kn] = value``, creating the tables on the way.

    Parameters
    ----------
    data : dict
        The parsed recipe, changed in place.
    keys : sequence of str
        The dotted name of the field, split at the dots (``["optim", "lr"]``).
    value : Any
        The value to set, already parsed.
    """
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            dotted = ".".join(keys)
            raise RecipeError([f"--set {dotted}: {key} is a value, not a section"])
        node = child
    node[keys[-1]] = value


def _show(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


def format_validation_error(source: str, error: ValidationError) -> list[str]:
    """One line per problem: ``source: dotted.field = value: what is allowed``.

    Parameters
    ----------
    source : str
        Where the data came from (the recipe file), at the start of each line.
    error : pydantic.ValidationError
        The error raised by validating the data.
    """
    lines = []
    for problem in error.errors(include_url=False):
        location = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"]
        kind = problem["type"]
        if kind == "extra_forbidden":
            lines.append(f"{source}: {location}: unknown field; remove it or check its spelling")
        elif kind == "missing":
            lines.append(f"{source}: {location}: required field is missing")
        else:
            lines.append(f"{source}: {location} = {_show(problem.get('input'))}: {_friendly(message)}")
    return lines


def _friendly(message: str) -> str:
    replacements = {
        "Input should be a valid number, unable to parse string as a number": "expected a number",
        "Input should be a valid integer, unable to parse string as an integer": "expected a whole number",
        "Input should be a valid boolean, unable to interpret input": "expected true or false",
        "Input should be a valid number": "expected a number",
        "Input should be a valid integer": "expected a whole number",
        "Input should be a valid string": "expected a string",
        "Input should be a valid list": "expected a list",
    }
    message = replacements.get(message, message)
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return message


def validate_data(schema: type[ModelT], data: Mapping[str, Any], source: str) -> ModelT:
    """Validate ``data`` against ``schema``, raising a :class:`RecipeError` that lists every problem.

    Parameters
    ----------
    schema : type of pydantic model
        The model to validate against (the recipe or one of its sections).
    data : mapping
        The parsed TOML (with overrides applied).
    source : str
        Where the data came from (the recipe file), at the start of each problem line.
    """
    try:
        return schema.model_validate(dict(data))
    except ValidationError as error:
        raise RecipeError(format_validation_error(source, error)) from None


@overload
def load_recipe(
    path: Path | None, overrides: Sequence[str] = (), *, flags: Mapping[str, Any] | None = None, schema: None = None
) -> Recipe: ...


@overload
def load_recipe(
    path: Path | None, overrides: Sequence[str] = (), *, flags: Mapping[str, Any] | None = None, schema: type[ModelT]
) -> ModelT: ...


def load_recipe(
    path: Path | None,
    overrides: Sequence[str] = (),
    *,
    flags: Mapping[str, Any] | None = None,
    schema: type[BaseModel] | None = None,
) -> BaseModel:
    """Load and validate a recipe.

    Parameters
    ----------
    path : Path | None
        The TOML file; ``None`` starts from an empty recipe (every field at its default).
    overrides : sequence of str
        ``section.key=value`` strings from ``--set``, applied after the file.
    flags : mapping of str to value | None
        Quick flags of the command (``{"preprocess.root": Path(...)}``), applied last;
        ``None`` values are ignored so that unset flags leave the recipe alone.
    schema : type | None
        The pydantic model to validate against; :class:`~biofound_cli.recipes.schema.Recipe` by default.
    """
    if schema is None:
        from biofound_cli.recipes.schema import Recipe

        schema = Recipe
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "recipe"
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(data, keys, value)
    for dotted, value in (flags or {}).items():
        if value is not None:
            apply_override(data, dotted.split("."), value)
    return validate_data(schema, data, source)
