"""``biofound validate RECIPE``: check a recipe without running anything."""

from __future__ import annotations

import typer

from biofound_cli.cli.common import JsonOption, QuietOption, RecipeArgument, SetOption, make_output, run_command


def validate(
    recipe: RecipeArgument,
    overrides: SetOption = None,
    json_summary: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Check a recipe file: every field, type and allowed value, before any work starts."""
    output = make_output(json_summary, quiet)

    def work() -> None:
        from biofound_cli.recipes import load_recipe

        loaded = load_recipe(recipe, overrides or [])
        sections = [name for name, value in loaded if value is not None and name not in ("name", "description")]
        output.summary({"recipe": str(recipe), "valid": True, "sections": sections}, title="Recipe is valid")

    run_command(output, work)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
