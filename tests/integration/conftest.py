"""One quick-start run shared by the end-to-end tests, so no model is trained twice in CI."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class QuickstartRun:
    """The output folder, the ``--json`` summary and the human-readable text of one quick start."""

    out: Path
    summary: dict[str, Any]
    text: str
    seconds: float


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> QuickstartRun:
    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    out = tmp_path_factory.mktemp("quickstart")
    started = time.monotonic()
    result = CliRunner().invoke(app, ["quickstart", "--out", str(out), "--json", "--no-progress"])
    seconds = time.monotonic() - started
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return QuickstartRun(out=out, summary=summary, text=result.stderr, seconds=seconds)


QUICKSTART_TIMEOUT = 2700
"""pytest's limit in seconds for a test that uses the shared quick start (the rest keep pyproject's 900 s).

Whichever of them runs first also runs the quick start itself. On 2 cores that other work keeps
busy, that took more than 900 s.
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test that uses :func:`quickstart_run` (itself or through a fixture) :data:`QUICKSTART_TIMEOUT`."""
    for item in items:
        if "quickstart_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(QUICKSTART_TIMEOUT))
