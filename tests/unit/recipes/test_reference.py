from __future__ import annotations

from pathlib import Path

from biofound_cli.recipes.reference import render
from biofound_cli.recipes.schema import Recipe

REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "recipe-reference.md"


def test_reference_is_up_to_date():
    assert REFERENCE.read_text() == render(), (
        "docs/recipe-reference.md is stale: run `python -m biofound_cli.recipes.reference > docs/recipe-reference.md`"
    )


def test_reference_lists_every_field_of_every_section():
    text = render()
    for name, field in Recipe.model_fields.items():
        section = field.annotation
        for candidate in getattr(section, "__args__", (section,)):
            if hasattr(candidate, "model_fields"):
                assert f"## `[{name}]`" in text
                for field_name in candidate.model_fields:
                    assert f"| `{field_name}` |" in text
