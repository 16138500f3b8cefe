"""The recipe reference (``docs/recipe-reference.md``), generated from the pydantic schemas.

Every field, its type, default and description comes from the schema itself, so the
reference cannot drift from what ``biofound validate`` accepts. Regenerate it with::

    python -m biofound_cli.recipes.reference > docs/recipe-reference.md

``tests/unit/recipes/test_reference.py`` fails when the file is out of date.
"""

from __future__ import annotations

import json
import sys
import typing
from typing import Any, Mapping

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from biofound_cli.recipes.loading import section_model
from biofound_cli.recipes.schema import Recipe


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:  # FolderName, Regex: the type they check
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(arg) for arg in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " \\| ".join(_type_name(arg) for arg in args)
    if origin in (list, tuple, dict):
        inner = ", ".join(_type_name(arg) for arg in args if arg is not Ellipsis)
        return f"{origin.__name__}[{inner}]"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        value = list(value)
    try:
        return f"`{json.dumps(value, default=str)}`"
    except (TypeError, ValueError):
        return f"`{value}`"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def field_table(fields: Mapping[str, FieldInfo]) -> list[str]:
    """Markdown rows for a section's fields (or the recipe's top-level ones).

    Parameters
    ----------
    fields : mapping of str to FieldInfo
        The fields by name, as a schema's ``model_fields`` holds them; each field's
        ``description`` becomes its row's text.
    """
    return [
        "| field | type | default | description |",
        "|---|---|---|---|",
        *(
            f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {_escape(field.description or '')} |"
            for name, field in fields.items()
        ),
    ]


def corpus_option_models() -> list[tuple[str, type[BaseModel]]]:
    """The ``[preprocess.options]`` model of every corpus that has one."""
    from biofound_cli.corpora import CORPUS_NAMES, get_corpus

    options = {name: get_corpus(name).Options for name in sorted(CORPUS_NAMES)}
    return [(name, model) for name, model in options.items() if model is not None]


def render() -> str:
    """The whole reference as markdown."""
    lines = [
        "# Recipe reference",
        "",
        "Generated from the pydantic schemas by `python -m biofound_cli.recipes.reference`; do not edit by hand.",
        "Every section is optional in the file; each command checks that the sections it needs are present.",
        "Unset fields take the default shown (for `[preprocess]`, unset means the corpus's own default).",
        "",
        "## Top level",
        "",
    ]
    lines += field_table({name: field for name, field in Recipe.model_fields.items() if section_model(field.annotation) is None})
    for name, field in Recipe.model_fields.items():
        model = section_model(field.annotation)
        if model is None:
            continue
        lines += ["", f"## `[{name}]`", ""]
        if model.__doc__:
            lines += [" ".join(model.__doc__.split()), ""]
        lines += field_table(model.model_fields)
    options = corpus_option_models()
    if options:
        lines += ["", "## `[preprocess.options]` per corpus", ""]
        for corpus, model in options:
            lines += [f"### `{corpus}`", ""]
            lines += field_table(model.model_fields)
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
