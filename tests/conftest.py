"""Shared fixtures: where the repository's bundled data live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = REPO_ROOT / "tests" / "data"


@pytest.fixture
def test_data() -> Path:
    return TEST_DATA
