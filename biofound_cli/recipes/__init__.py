"""Recipes: pydantic schemas for every stage, loaded from TOML, with ``--set`` overrides."""

from biofound_cli.recipes.loading import load_checked, load_recipe, parse_override
from biofound_cli.recipes.schema import Recipe

__all__ = ["Recipe", "load_checked", "load_recipe", "parse_override"]
