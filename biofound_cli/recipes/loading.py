"""Reading a recipe: TOML (or a run's ``recipe.json``) → ``--set`` overrides → pydantic validation → one line per problem."""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

from pydantic import BaseModel, ValidationError

from biofound_cli.errors import SAID_AT_ONCE, RecipeError, closest_names, said_once_it_passes, shown, you_mean
from biofound_cli.recipes.origin import Flag, RecipeOrigin, dotted_names, options_named, recipe_source
from biofound_cli.recipes.relative_paths import warn_paths_beside_recipe
from biofound_cli.recipes.run_record import RECORD_NAME, is_run_record, parse_run_record
from biofound_cli.recipes.schema import STAGE_SECTIONS, Recipe, stages_reading

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ModelT = TypeVar("ModelT", bound=BaseModel)
Checked = TypeVar("Checked")
logger = logging.getLogger(__name__)


def read_recipe_file(path: Path) -> dict[str, Any]:
    """A recipe file's tables: a TOML recipe, or the ``recipe.json`` a training run wrote.

    The one reader of a recipe file for every command (the record: :mod:`~biofound_cli.recipes.run_record`);
    every way either can fail is a :class:`RecipeError` naming the file and what to do.

    Parameters
    ----------
    path : Path
        The recipe file given on the command line.
    """
    path = Path(path)
    return parse_run_record(path, _recipe_text(path)) if is_run_record(path) else read_toml(path)


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every way it can fail into a :class:`RecipeError`.

    Parameters
    ----------
    path : Path
        The TOML file.
    """
    text = _recipe_text(Path(path))
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RecipeError([f"{path}: not valid TOML ({error}); fix the syntax at that line"]) from None


def _recipe_text(path: Path) -> str:
    """The text of a recipe file, or a :class:`RecipeError` that says why it cannot be read."""
    if path.is_dir():  # e.g. a run folder passed where its recipe was meant
        record = path / RECORD_NAME
        raise RecipeError(
            [
                f"{path}: is a folder, not a recipe file; pass the path of a .toml recipe "
                + (
                    f"or {record}, the recipe its run trained with"
                    if record.is_file()
                    else "(`biofound recipes ls` lists the shipped ones)"
                )
            ]
        )
    if not path.is_file():
        raise RecipeError(
            [
                f"{path}: recipe file not found; pass the path of a .toml recipe "
                "(`biofound recipes ls` lists the shipped ones, `biofound recipes cp NAME .` copies one)"
            ]
        )
    try:
        # utf-8-sig: Windows editors (Notepad) start a UTF-8 file with a byte-order mark, which TOML refuses.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise RecipeError(
            [f"{path}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x}); save the recipe as UTF-8"]
        ) from None
    except OSError as error:
        fix = "make it readable (chmod u+r)" if isinstance(error, PermissionError) else "check the file or copy it elsewhere"
        raise RecipeError([f"{path}: cannot be read ({error.strerror or error}); {fix}"]) from None


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
    dotted, equals, raw = text.partition("=")
    dotted = dotted.strip()
    if not equals or not dotted or any(not part for part in dotted.split(".")):
        raise RecipeError([f"--set {text}: expected section.key=value, e.g. --set optim.lr=1e-4"])
    raw = raw.strip()
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError as error:
        if _looks_like_a_list_or_table(raw):  # kept as a string, it would only be "expected a list"
            # A list is written back with its strings quoted, as the user means it; a table gets an example.
            quoted = _written_list(raw) if raw.startswith("[") else '{name = "text"}'
            raise RecipeError(
                [
                    f"--set {dotted}: {raw} is not a TOML list or table ({error}); "
                    f"quote the strings in it: --set '{dotted}={quoted}'"
                ]
            ) from None
        value = _unquoted(raw)
    return dotted.split("."), value


def _looks_like_a_list_or_table(raw: str) -> bool:
    """``[Fp1, Fp2]`` or ``{a = b, c = d}`` with unquoted strings; not a regex such as ``[0-9]+`` or ``[A-Z]``."""
    return (raw[:1], raw[-1:]) == ("[", "]") and "," in raw or (raw[:1], raw[-1:]) == ("{", "}") and "=" in raw


def _unquoted(raw: str) -> str:
    """``raw`` without one pair of matching surrounding quotes (``"..."`` or ``'...'``), taken literally."""
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'" else raw


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
    for depth, key in enumerate(keys[:-1], start=1):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            value = ".".join(keys[:depth])
            raise RecipeError(
                [f"--set {'.'.join(keys)}: {value} is a value, not a section; set it whole, e.g. --set {value}=..."]
            )
        node = child
    node[keys[-1]] = value


def remove_field(data: dict[str, Any], text: str, schema: type[BaseModel]) -> str:
    """Remove the field ``text`` names (``--unset model.checkpoint``) from ``data``, so its default applies.

    A field of a section must be one the section has (a typo is refused with the closest name, as
    in a file); a key inside a free table (``model.overrides``, ``preprocess.options``) must be in
    the recipe. A field the recipe does not set is left at its default, as asked.

    Parameters
    ----------
    data : dict
        The parsed recipe, changed in place.
    text : str
        One ``--unset`` argument, the field's dotted name.
    schema : type of pydantic model
        The recipe's model, which knows the field names.

    Returns
    -------
    str
        The field's dotted name.
    """
    dotted = text.strip()
    keys = dotted.split(".")
    if "=" in dotted or any(not key for key in keys):
        raise RecipeError([f"--unset {text}: expected section.key, e.g. --unset model.checkpoint (--set gives a value)"])
    section = _section_at(schema, keys[:-1])
    if section is not None and keys[-1] not in section.model_fields:
        raise RecipeError([f"--unset {dotted}: {_unknown_field_message(schema, keys)}"])
    node: Any = data
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if section is None and not (isinstance(node, dict) and keys[-1] in node):
        raise RecipeError([f"--unset {dotted}: the recipe sets no {dotted}; check its spelling"])
    if isinstance(node, dict):
        node.pop(keys[-1], None)
    return dotted


def _warn_flag_replaces_option(origin: RecipeOrigin, dotted: str, flag: Flag) -> None:
    """Say that a quick flag wins over a ``--set``/``--unset`` of the same field, both typed (one was ignored silently)."""
    typed = [option for key, option in origin.given.items() if dotted == key or dotted.startswith(key + ".")]
    if typed:
        value = "" if flag.value is True else f" {flag.value}"
        logger.warning(
            f"{flag.spelling}{value} replaces {typed[0]} (a command's own flag wins); give {dotted} once",
            extra={SAID_AT_ONCE: True},  # which value a refusal of the field is about: said with it
        )


def format_validation_error(source: str, error: ValidationError, data: Any, schema: type[BaseModel]) -> list[str]:
    """One line per problem: ``source: dotted.field = value: what is allowed``.

    A value that may take several types (``notch_hz``: a number or a list) gets one line saying
    each, not one per type named as if it were a field (``notch_hz.float``). A table is not
    printed back (a check of a whole section names its fields itself).

    Parameters
    ----------
    source : str
        Where the data came from (the recipe file), at the start of each line.
    error : pydantic.ValidationError
        The error raised by validating the data.
    data : Any
        What was validated; the location parts it does not hold are the types pydantic tried
        (left out of the field's name).
    schema : type of pydantic model
        The model ``data`` was validated against; an unknown field then names the known one
        it is closest to (``optim.lrr``: did you mean ``lr``?).
    """
    problems: dict[str, tuple[Any, list[str]]] = {}
    union_members: set[str] = set()
    for problem in error.errors(include_url=False):
        location = _field_location(problem["loc"], data, keep_last=problem["type"] == "missing")
        if location != ".".join(str(part) for part in problem["loc"]):
            union_members.add(location)
        kind = problem["type"]
        fixed = _fixed_length_problem(schema, problem["loc"], kind)
        if fixed is not None:  # [0.9] for betas: the list is at fault, not a "missing field" betas.1
            field_loc, message = fixed
            location = _field_location(field_loc, data, keep_last=True)
        elif kind == "extra_forbidden":
            message = _unknown_field_message(schema, problem["loc"])
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "list_type" and isinstance(problem.get("input"), str) and location not in union_members:
            message = _list_advice(location, problem["input"])
        else:
            message = _friendly(problem["msg"])
        value, messages = problems.setdefault(location, (problem.get("input"), []))
        if (kind in ("extra_forbidden", "missing") and fixed is None) or isinstance(value, dict):
            value = _NOT_SHOWN
        problems[location] = (value, messages + [message] if message not in messages else messages)
    # A union's type that got further into the value ([50, "x"] as a list: item 1) says more than one that did not.
    outgrown = {short for short in union_members if any(long.startswith(short + ".") for long in union_members)}
    return [
        f"{source}: {location}{'' if value is _NOT_SHOWN else f' = {shown(value)}'}: {_either(messages)}"
        + _unset_advice(location, value)
        for location, (value, messages) in problems.items()
        if location not in outgrown
    ]


def _unset_advice(location: str, value: Any) -> str:
    """How to say "no value" where a user wrote one as a word (``--set export.quantize=none``): TOML has no null."""
    if isinstance(value, str) and value.strip().lower() in ("none", "null", "nil", "unset"):
        return f"; to leave it unset (its default), pass --unset {location} or remove it from the recipe"
    return ""


_NOT_SHOWN = object()


def _list_advice(location: str, text: str) -> str:
    """``expected a list; write ["Fp1", "Fp2"] ...`` for a string where a list goes, written back as that list.

    ``--set preprocess.channels=[Fp1]`` arrives as a string (TOML needs the quotes, and a regex such as
    ``[0-9]`` must stay one), as does ``channels = "Fp1"`` in a file; pydantic said only "expected a list".
    """
    written = _written_list(text)
    if written == "[]":
        return "expected a list"
    return f"expected a list; write {written} (on the command line: --set '{location}={written}')"


def _written_list(text: str) -> str:
    """``[Fp1, 2]`` (or ``Fp1``) written as a TOML list, its strings quoted: ``["Fp1", 2]``."""
    items = [item.strip() for item in text.strip().removeprefix("[").removesuffix("]").split(",") if item.strip()]
    return "[" + ", ".join(item if _is_number(item) else json.dumps(_unquoted(item)) for item in items) + "]"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unknown_field_message(schema: type[BaseModel], loc: Sequence[int | str]) -> str:
    """``unknown field; ...``, naming the fields the unknown name is most likely meant as.

    A field of that very name in another section of the recipe is named whole first
    (``train.batch_size``: did you mean ``data.batch_size``?; ``lr`` outside any section:
    ``optim.lr``): a user who put it in the wrong section was told only to check its spelling.
    Then the fields of its own section it may mean (:func:`~biofound_cli.errors.closest_names`;
    ``output.out``: ``runs_dir`` after ``preprocess.out``), a near spelling only when no other
    section has the name.
    """
    name, section = str(loc[-1]), _section_at(schema, loc[:-1])
    elsewhere = [
        f"{other}.{name}"
        for other, field in schema.model_fields.items()
        if len(loc) <= 2 and other != loc[0] and name in getattr(section_model(field.annotation), "model_fields", ())
    ]
    # The very name elsewhere says more than a near spelling here (optim.epochs: train.epochs, not eps).
    here = closest_names(name, section.model_fields, misspelt=not elsewhere) if section else []
    suggestion = you_mean(elsewhere + here)
    return f"unknown field; {suggestion or 'remove it or check its spelling'}"


_FIXED_LENGTH_SHAPE = frozenset({"missing", "too_long", "too_short", "tuple_type"})
_ITEM_WORDS = {float: "numbers", int: "whole numbers", str: "strings", bool: "true/false values"}


def _fixed_length_problem(schema: type[BaseModel], loc: Sequence[int | str], kind: str) -> tuple[Sequence[int | str], str] | None:
    """(the field's location, ``expected a list of 2 numbers, e.g. [0.9, 0.999]``) for a wrong-sized tuple field.

    pydantic reports a list one item short as that item missing (``optim.betas.1: required
    field is missing``); every fixed-length tuple field of a recipe is named whole instead.
    """
    if kind not in _FIXED_LENGTH_SHAPE or not loc:
        return None
    field_loc = loc[:-1] if isinstance(loc[-1], int) else loc
    if kind == "missing" and field_loc is loc:  # the field itself is missing, not one of its items
        return None
    section = _section_at(schema, field_loc[:-1])
    field = section.model_fields.get(str(field_loc[-1])) if section is not None else None
    annotation = field.annotation if field is not None else None
    members = [member for member in (annotation, *typing.get_args(annotation)) if typing.get_origin(member) is tuple]
    items = typing.get_args(members[0]) if members else ()
    if not items or Ellipsis in items:
        return None
    words = _ITEM_WORDS.get(items[0], "values") if len(set(items)) == 1 else "values"
    example = f", e.g. {shown(list(field.default))}" if field is not None and isinstance(field.default, tuple) else ""
    return field_loc, f"expected a list of {len(items)} {words}{example}"


def _section_at(schema: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model of the section ``loc`` names inside ``schema`` (``("optim",)`` → OptimSection), if it is one."""
    model = schema
    for part in loc:
        field = model.model_fields.get(str(part))
        found = section_model(field.annotation) if field is not None else None
        if found is None:
            return None
        model = found
    return model


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds (``OptimSection``, also as ``OptimSection | None``); ``None`` for a value.

    Parameters
    ----------
    annotation : type
        The field's annotation.
    """
    candidates = (annotation, *typing.get_args(annotation))
    return next((member for member in candidates if isinstance(member, type) and issubclass(member, BaseModel)), None)


def _field_location(loc: Sequence[int | str], data: Any, *, keep_last: bool) -> str:
    """``loc`` as a dotted field name, without the parts ``data`` does not hold (the types of a union)."""
    parts, node = [], data
    for index, part in enumerate(loc):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif not (keep_last and index == len(loc) - 1):
            continue
        parts.append(str(part))
    return ".".join(parts)


def _either(messages: list[str]) -> str:
    """``expected a number or a list`` from the messages of a union's types."""
    if len(messages) > 1 and all(message.startswith("expected ") for message in messages):
        return "expected " + " or ".join(message.removeprefix("expected ") for message in messages)
    return "; or ".join(messages)


_BOUND = re.compile(
    r"Input should be (?P<relation>greater than or equal to|greater than|less than or equal to|less than) (?P<limit>\S+)"
)
_BOUND_WORDS = {
    "greater than or equal to": "at least",
    "greater than": "above",
    "less than or equal to": "at most",
    "less than": "below",
}


_TOO_SHORT = re.compile(r"List should have at least (?P<least>\d+) items? after validation, not 0")
_NOT_A_SECTION = re.compile(r"Input should be a valid dictionary( or instance of \w+)?")
_ONE_OF = re.compile(r"Input should be (?P<choices>'[^']*'(?:, '[^']*')*(?: or '[^']*')?)")


def _friendly(message: str) -> str:
    replacements = {
        "Input should be a valid number, unable to parse string as a number": "expected a number",
        "Input should be a valid integer, unable to parse string as an integer": "expected a whole number",
        "Input should be a valid boolean, unable to interpret input": "expected true or false",
        "Input should be a valid number": "expected a number",
        "Input should be a valid integer": "expected a whole number",
        "Input should be a valid string": "expected a string",
        "Input should be a valid list": "expected a list",
        "Input should be a finite number": "expected a finite number",
        "Input should be a valid integer, got a number with a fractional part": "expected a whole number",
        "Input is not a valid path for <class 'pathlib.Path'>": "expected a path (a string)",
    }
    message = replacements.get(message, message)
    bound = _BOUND.fullmatch(message)
    if bound:
        return f"must be {_BOUND_WORDS[bound['relation']]} {bound['limit']}"
    too_short = _TOO_SHORT.fullmatch(message)
    if too_short:
        return f"expected at least {too_short['least']} item{'' if too_short['least'] == '1' else 's'}, not an empty list"
    if _NOT_A_SECTION.fullmatch(message):
        return "expected a table: a [section] or {key = value, ...}"
    one_of = _ONE_OF.fullmatch(message)
    if one_of:  # a field of a few allowed words (precision, on_truncated)
        return f"expected {one_of['choices']}"
    return message.removeprefix("Value error, ")


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
        raise RecipeError(format_validation_error(source, error, data, schema)) from None


def load_recipe(
    path: Path | None,
    overrides: Sequence[str] = (),
    *,
    flags: Mapping[str, Any] | None = None,
    unset: Sequence[str] = (),
    stage: str | None = None,
) -> Recipe:
    """Load and validate a recipe.

    Parameters
    ----------
    path : Path | None
        The TOML file, or a run's ``recipe.json`` (:func:`read_recipe_file`); ``None`` starts from an
        empty recipe (every field at its default).
    overrides : sequence of str
        ``section.key=value`` strings from ``--set``, applied after the file.
    flags : mapping of str to value | None
        Quick flags of the command (``{"preprocess.root": Flag("--root", path)}``), applied last;
        ``None`` values are ignored so that unset flags leave the recipe alone. A value given as a
        :class:`~biofound_cli.recipes.origin.Flag` is named by its flag in errors about it. A dict
        replaces the file's whole table before ``unset`` and ``overrides`` apply to it.
    unset : sequence of str
        Dotted field names from ``--unset``, removed from the file before ``overrides`` apply, so
        each takes its default (``model.checkpoint``: train from scratch).
    stage : str | None
        The command loading it (a key of :data:`~biofound_cli.recipes.schema.STAGE_SECTIONS`): a
        ``--set`` or ``--unset`` of a section it does not read is a warning that it has no effect
        (the file may hold sections for other stages). ``None`` (``validate``): every section counts.

    Returns
    -------
    Recipe
        The validated recipe, carrying where each value came from
        (:func:`~biofound_cli.recipes.origin.origin_of`): an error about a value given by ``--set``
        or a flag names that option, not the file (:func:`~biofound_cli.recipes.origin.options_named`).
    """
    data: dict[str, Any] = read_recipe_file(path) if path is not None else {}
    origin = RecipeOrigin(recipe_source(path), frozenset(dotted_names(data)))
    # Before --unset and --set change them in place: what the file holds where a flag replaces a whole table.
    origin.replaced = {
        name: copy.deepcopy(data[name]) for name, value in (flags or {}).items() if value is not None and name in data
    }
    # A flag that replaces a whole table replaces the file's table, not the --set values given for it.
    tables = {name: value for name, value in (flags or {}).items() if isinstance(value, dict)}
    data.update(copy.deepcopy(tables))
    for text in unset:
        dotted = remove_field(data, text, Recipe)
        origin.give(dotted, f"--unset {dotted}")
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(data, keys, value)
        origin.give(".".join(keys), f"--set {text.strip()}")
    for dotted, value in (flags or {}).items():
        if dotted in tables:
            continue
        flag = value if isinstance(value, Flag) else None
        if flag is not None:
            value = flag.value
        if value is not None:
            apply_override(data, dotted.split("."), value)
            if flag is not None:
                _warn_flag_replaces_option(origin, dotted, flag)
                origin.give(dotted, flag.spelling)
    try:
        recipe = validate_data(Recipe, data, origin.source)
    except RecipeError as error:
        origin.rename(error)
        raise
    recipe._origin = origin
    if stage is not None:
        _warn_sections_not_read(
            stage, [f"--set {text.strip()}" for text in overrides] + [f"--unset {text.strip()}" for text in unset]
        )
    warn_paths_beside_recipe(recipe, path)
    return recipe


def load_checked(
    path: Path | None,
    overrides: Sequence[str] = (),
    *,
    check: Callable[[Recipe], Checked],
    flags: Mapping[str, Any] | None = None,
    unset: Sequence[str] = (),
    stage: str | None = None,
) -> tuple[Recipe, Checked]:
    """:func:`load_recipe`, then ``check`` of it: the one place where what a recipe warns of waits for its stage's checks.

    Every command that runs a recipe's stage loads it here. A warning of the loading (a ``--set`` of a
    section ``stage`` does not read, a path beside the recipe) or of the check (a stride longer than
    the window) is said once the check passes; a refusal (exit status 2) prints alone
    (:func:`~biofound_cli.errors.said_once_it_passes`). What the stage warns of as it works is not held.

    Parameters
    ----------
    path : Path | None
        The recipe file, as :func:`load_recipe` takes it.
    overrides : sequence of str
        ``--set`` strings, as :func:`load_recipe` takes them.
    flags : mapping of str to value | None
        The command's quick flags, as :func:`load_recipe` takes them.
    unset : sequence of str
        ``--unset`` field names, as :func:`load_recipe` takes them.
    stage : str | None
        The command, as :func:`load_recipe` takes it (``None``: ``validate``).
    check : callable
        The stage's checks before any work, given the loaded recipe, run with the options that set
        its fields named in its errors (:func:`~biofound_cli.recipes.origin.options_named`); what it
        returns is returned beside the recipe (export's plan), so the stage does not check again.

    Returns
    -------
    recipe, checked
        The loaded recipe and what ``check`` returned.
    """
    with said_once_it_passes():
        recipe = load_recipe(path, overrides, flags=flags, unset=unset, stage=stage)
        with options_named(recipe):
            return recipe, check(recipe)


def _warn_sections_not_read(stage: str, options: Sequence[str]) -> None:
    """One warning per option of a section ``stage`` does not read: it looked applied, and was silently ignored."""
    for option in options:
        dotted = option.split(" ", 1)[1].partition("=")[0].strip()
        section = dotted.split(".", 1)[0]
        readers = stages_reading(section)
        if section in STAGE_SECTIONS[stage] or not readers:  # name, description: a field of the whole recipe
            continue
        others = ", ".join(readers[:-1]) + (" and " if len(readers) > 1 else "") + readers[-1]
        read = "reads" if len(readers) == 1 else "read"
        logger.warning(
            f"{option}: {stage} does not read [{section}], so it has no effect here; give it to {others}, which {read} it"
        )
