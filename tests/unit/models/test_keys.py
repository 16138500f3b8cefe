"""Every official variant's state-dict keys, shapes, dtypes and order, from the key manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biofound_cli.models.registry import build_model

KEYS_DIR = Path(__file__).resolve().parents[2] / "data" / "keys"
SUMMARY = json.loads((KEYS_DIR / "_summary.json").read_text())
MANIFESTS = sorted(path.stem for path in KEYS_DIR.glob("*.json") if path.name != "_summary.json")


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_state_dict_matches_manifest(manifest):
    entry = SUMMARY[manifest]
    model = build_model(entry["model"], entry["kwargs"], device="meta")
    got = [[key, list(value.shape), str(value.dtype).removeprefix("torch.")] for key, value in model.state_dict().items()]
    want = json.loads((KEYS_DIR / f"{manifest}.json").read_text())
    assert got == want
    assert sum(p.numel() for p in model.parameters()) == entry["num_parameters"]
