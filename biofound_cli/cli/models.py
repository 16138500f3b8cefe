"""``biofound models [PATTERN|ls]``: the registered model variants and their published facts."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from biofound_cli.cli.common import Output, with_output

COLUMNS = ("name", "family", "params", "input C×T", "Hz", "hub repo", "licence")


def _rows(pattern: str) -> list[dict[str, Any]]:
    from biofound_cli.errors import UsageError
    from biofound_cli.models.registry import VARIANTS, count_parameters, create_model, list_models

    names = list_models(pattern)
    if not names:
        # A bare family name (`biofound models luna`) is the common slip: a pattern is matched
        # against whole names, so suggest the prefix pattern when that one would match.
        hint = f" (a pattern matches whole names: try '{pattern}*')" if list_models(f"{pattern}*") else ""
        raise UsageError(f"no model matches {pattern!r}{hint}; known models: {', '.join(VARIANTS)}")
    rows = []
    for name in names:
        variant = VARIANTS[name]
        try:
            # The meta device allocates nothing, so even the 386M-parameter variants count instantly.
            n_parameters: int | None = count_parameters(create_model(name, device="meta"))
        except UsageError:  # that family's model file is not installed
            n_parameters = None
        rows.append(
            {
                "name": name,
                "family": variant.model_name,
                "parameters": n_parameters,
                "n_channels": variant.n_channels,
                "n_times": variant.n_times,
                "sfreq": variant.sfreq,
                "hub_repo": variant.hub_repo,
                "hub_file": variant.hub_file,
                "license": variant.license,
                "transform": variant.transform,
                "description": variant.description,
            }
        )
    return rows


@with_output
def models(
    output: Output,
    pattern: Annotated[
        str, typer.Argument(help="Shell-style filter on the names, e.g. 'luna*'; ls lists them all, as `biofound recipes ls`.")
    ] = "*",
) -> None:
    """List the model variants: family, size, expected input, sampling rate, weights and licence."""
    rows = _rows("*" if pattern == "ls" else pattern)  # `models ls`, as `recipes ls`: no variant is named ls
    if output.json_summary:
        output.summary({"models": rows})
        return
    table = [
        (
            row["name"],
            row["family"],
            "n/a" if row["parameters"] is None else f"{row['parameters'] / 1e6:.1f}M",
            f"{row['n_channels'] or 'any'}×{row['n_times']}",
            f"{row['sfreq']:g}",
            row["hub_repo"],
            row["license"],
        )
        for row in rows
    ]
    output.result_table("Model variants (parameters of the pre-training model)", COLUMNS, table)
