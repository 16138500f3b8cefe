"""The ``[preprocess]`` section: raw recordings → shards."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from biofound_cli.recipes.base import Section


class PreprocessSection(Section):
    """How raw recordings of one corpus become shards."""

    corpus: str | None = Field(None, description="Corpus reader: tuab, tuar, tusl, tueg, siena, seedv, edf, db5, uci-emg, epn612, emg-csv.")
    root: Path | None = Field(None, description="Folder holding the raw recordings.")
    out: Path | None = Field(None, description="Folder the shards are written to.")
    workers: int = Field(1, ge=1, description="Recordings processed in parallel.")
