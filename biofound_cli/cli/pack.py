"""``biofound pack SHARDS --out PACKED``: shards → subject-disjoint train/val/test files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from biofound_cli.cli.common import (
    Output,
    Overrides,
    out_option,
    recipe_option,
    recipe_stage,
    run_option,
    set_option,
    unset_option,
    with_output,
)
from biofound_cli.recipes.pack import PackSection

ShardsArgument = Annotated[
    Optional[Path], typer.Argument(help="Folder of shards written by `biofound preprocess`.", show_default=False)
]
OutOption = Annotated[Optional[Path], out_option("Folder for train.h5, val.h5, test.h5 and splits.json.")]
SeedOption = Annotated[
    Optional[int],
    run_option(
        "--seed",
        help=f"Seed of the subject split, a whole number from 0 (recipe default: {PackSection.model_fields['seed'].default}).",
    ),
]
PackRecipeOption = Annotated[Optional[Path], recipe_option("Recipe whose \\[pack] section sets fractions and dtype.")]


@with_output
def pack(
    output: Output,
    shards: ShardsArgument = None,
    out: OutOption = None,
    seed: SeedOption = None,
    recipe: PackRecipeOption = None,
    overrides: Annotated[Overrides, set_option("pack.seed=7")] = None,
    unset: Annotated[Overrides, unset_option("pack.dtype")] = None,
) -> None:
    """Split shards by subject (seeded; official splits win) and pack them into train/val/test HDF5 files."""
    from biofound_cli.recipes.origin import Flag
    from biofound_cli.store.packer import pack_checked_shards

    flags = {"pack.shards": Flag("SHARDS", shards), "pack.out": Flag("--out", out), "pack.seed": Flag("--seed", seed)}
    with recipe_stage(
        recipe, overrides, flags=flags, unset=unset, stage="pack", check=_check_pack, stopped="; nothing was done", ctrl_c=True
    ) as (_, section):
        assert section.shards is not None and section.out is not None  # _check_pack refused a pack without them
        result = pack_checked_shards(section.shards, section.out, section, reporter=output)
    output.summary(result.summary(), title=f"Packed {section.shards} → {section.out}", timed=True)


def _check_pack(recipe: Any) -> Any:
    """The recipe's ``[pack]`` section, refused without the shard folder or the output folder it needs, or with wrong ones."""
    from biofound_cli.errors import UsageError
    from biofound_cli.store.packer import check_pack_paths

    section = recipe.pack
    if section is None or section.shards is None:
        raise UsageError("pack: no shard folder given; pass SHARDS or set pack.shards in the recipe")
    if section.out is None:
        raise UsageError("pack: no output folder given; pass --out PACKED or set pack.out in the recipe")
    check_pack_paths(section.shards, section.out)
    return section
