"""The ``[pack]`` section: shards → packed train/val/test files."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from biofound_cli.recipes.base import Section


class PackSection(Section):
    """How shards are split by subject and packed."""

    shards: Path | None = Field(None, description="Folder of shards written by preprocess.")
    out: Path | None = Field(None, description="Folder the packed split files are written to.")
    seed: int = Field(42, description="Seed of the subject-disjoint split.")
