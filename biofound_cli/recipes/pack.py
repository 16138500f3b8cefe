"""The ``[pack]`` section: shards → packed train/val/test files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from biofound_cli.recipes.base import MAX_SEED, Section, Seed


class PackSection(Section):
    """How shards are split by subject and packed."""

    shards: Path | None = Field(None, description="Folder of shards written by preprocess.")
    out: Path | None = Field(None, description="Folder the packed split files are written to.")
    seed: Seed = Field(42, description=f"Seed of the subject-disjoint split (0 to {MAX_SEED}).")
    train: float = Field(0.8, ge=0.0, le=1.0, description="Fraction of windows (by subject) in the train split.")
    val: float = Field(0.1, ge=0.0, le=1.0, description="Fraction of windows (by subject) in the val split.")
    test: float = Field(0.1, ge=0.0, le=1.0, description="Fraction of windows (by subject) in the test split.")
    dtype: Literal["float32", "float16"] = Field(
        "float32", description="Storage type of x; float16 halves the size and clips values to ±65504 (counted)."
    )
    official_splits: bool = Field(
        True, description="Honour a corpus's official split (per-window or per-recording) where the shards carry one."
    )
    block_windows: int = Field(256, ge=1, description="Windows read from a shard at a time while packing (bounds memory).")
    layout: Literal["copy", "virtual"] = Field(
        "copy",
        description=(
            "copy: the windows are copied into each split file; virtual: each split file maps x onto the shards "
            "(HDF5 virtual datasets, no copy), so the shards must stay where they are."
        ),
    )

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "PackSection":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"pack.train + pack.val + pack.test = {total:g}; the three fractions must add up to 1")
        if self.train <= 0.0:
            raise ValueError("pack.train must be greater than 0; a split needs training data")
        if self.layout == "virtual" and self.dtype != "float32":
            # A virtual dataset reads the shards' values as they are: no clipping to the float16 range, no halving.
            raise ValueError(
                f'pack.layout = "virtual" cannot store x as {self.dtype} (it maps the shards\' values, it does not '
                'convert them); use pack.dtype = "float32" or pack.layout = "copy"'
            )
        return self

    @property
    def fractions(self) -> dict[str, float]:
        """The split fractions keyed by split name, in train, val, test order."""
        return {"train": self.train, "val": self.val, "test": self.test}
