"""The base class of every recipe section."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class Section(BaseModel):
    """A recipe section: unknown keys are errors, values are checked on assignment.

    ``true``/``false`` is refused where a number is expected: pydantic would read ``notch_hz = true``
    as a 1 Hz notch and ``window_seconds = true`` as 1 s.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _no_true_or_false_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if _names(annotation, (int, float)) and not _names(annotation, (bool,)):
                raise ValueError("expected a number, not true or false")
        return value


def _names(annotation: Any, wanted: tuple[type, ...]) -> bool:
    """Whether ``annotation`` is one of ``wanted`` or a union holding one (``float | list[float] | None``)."""
    if annotation in wanted:
        return True
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and any(
        _names(argument, wanted) for argument in typing.get_args(annotation)
    )
