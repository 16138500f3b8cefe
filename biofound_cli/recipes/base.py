"""The base class of every recipe section."""

from __future__ import annotations

import os
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, PrivateAttr, ValidationInfo, field_validator


class Section(BaseModel):
    """A recipe section: unknown keys are errors, values are checked on assignment.

    ``true``/``false`` is refused where a number is expected: pydantic would read ``notch_hz = true``
    as a 1 Hz notch and ``window_seconds = true`` as 1 s. Where only ``true``/``false`` is allowed,
    nothing else is: pydantic reads ``"yes"``, ``"on"``, ``"0"`` and ``1`` as booleans, so
    ``--set train.compile=yes`` (TOML has no such word; it arrives as a string) was taken as true
    and ``--set train.compile=off`` as false without a word. An empty path is refused too: pydantic
    reads ``train = ""`` (or ``--set data.train=``) as the current folder, and a path starting with
    ``~`` is the home folder's, as the shell reads it on a command line (pydantic took ``root =
    "~/data"`` for a folder named ``~`` in the working folder). A number is finite:
    TOML's ``inf`` and ``nan`` ended in tracebacks (``optim.warmup_epochs``) or trained to nothing
    (``optim.eps``).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False)
    # Where the values came from (a RecipeOrigin), set by load_recipe on the recipe it returns; read by origin_of.
    _origin: Any = PrivateAttr(default=None)

    @field_validator("*", mode="before")
    @classmethod
    def _true_or_false_only_for_a_bool(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is None:
            return value
        types_allowed, value_items = _allowed_types_and_items(cls.model_fields[info.field_name].annotation, value)
        if {int, float} & set(types_allowed) and bool not in types_allowed:
            if any(isinstance(item, bool) for item in value_items):
                raise ValueError("expected a number, not true or false")
        elif set(types_allowed) - {type(None)} == {bool}:
            if any(isinstance(item, (str, int, float)) and not isinstance(item, bool) for item in value_items):
                raise ValueError("expected true or false (TOML's words, unquoted)")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _path_as_the_shell_reads_it(cls, value: Any, info: ValidationInfo) -> Any:
        # A quick flag (pack's SHARDS, --out) comes as a Path, a recipe's value as a string.
        if info.field_name is None or not isinstance(value, (str, Path)):
            return value
        if Path not in _members(cls.model_fields[info.field_name].annotation):
            return value
        if isinstance(value, str) and not value.strip():
            raise ValueError("expected a path, not an empty string; name a file or folder, or remove the field")
        # os.path's expansion leaves an unknown user's ~name as it is; Path.expanduser raises.
        return os.path.expanduser(value) if str(value).startswith("~") else value


def _allowed_types_and_items(annotation: Any, value: Any) -> tuple[list[Any], list[Any]]:
    """The types a field allows and the values to check against them: a list's items (``notch_hz = [50, true]``)."""
    types_allowed = _members(annotation)
    if isinstance(value, (list, tuple)):
        return [item for member in types_allowed for item in _members(*typing.get_args(member))], list(value)
    return types_allowed, [value]


def _members(*annotations: Any) -> list[Any]:
    """The types a value may take: the members of unions (``float | list[float] | None``), flattened."""
    found = []
    for annotation in annotations:
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            found += _members(*typing.get_args(annotation))
        else:
            found.append(annotation)
    return found


def _one_folder_name(name: str) -> str:
    """Refuse a run name that is not one folder: ``.``, ``..`` or ``a/b`` would train outside ``runs_dir``'s own folder."""
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"{name!r} is not one folder name; give a name without '/' that is not '.' or '..'")
    return name


FolderName = Annotated[str, AfterValidator(_one_folder_name)]
"""A run name: one folder inside ``output.runs_dir``."""


def _compiles(pattern: str) -> str:
    """Refuse a pattern Python's ``re`` cannot compile, quoting its reason."""
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"not a valid regular expression ({error})") from None
    return pattern


Regex = Annotated[str, AfterValidator(_compiles)]
"""A regular expression of a recipe (a file-name or path pattern)."""


MAX_SEED = 2**63 - 1
"""The largest seed: seeds are stored as int64 (a packed split's attribute), and training adds the rank and
the step to its seed for torch, whose seeds end at 2**64 - 1; numpy's generators take no negatives."""


def _seed_in_range(seed: int) -> int:
    """Refuse a seed the random generators cannot take (:data:`MAX_SEED`)."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"a seed is a whole number from 0 to {MAX_SEED}")
    return seed


Seed = Annotated[int, AfterValidator(_seed_in_range)]
"""A seed of ``[pack]`` or ``[train]``: 0 to :data:`MAX_SEED`."""
