"""Fixtures of the export tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.export_models import save_small


@pytest.fixture
def tinymyo_ckpt(tmp_path) -> Path:
    return save_small(
        tmp_path / "tinymyo.safetensors",
        "tinymyo",
        ch_names=["CH0", "CH1", "CH2", "CH3"],
        label_names=["class0", "class1", "class2"],
        sfreq=256.0,
    )
