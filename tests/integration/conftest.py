"""One quick-start run shared by the end-to-end tests, so no model is trained twice in CI."""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
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


def _run_quickstart(out: Path) -> QuickstartRun:
    from typer.testing import CliRunner

    from biofound_cli.cli.app import app

    started = time.monotonic()
    result = CliRunner().invoke(app, ["quickstart", "--out", str(out), "--json", "--no-progress"])
    seconds = time.monotonic() - started
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return QuickstartRun(out=out, summary=summary, text=result.stderr, seconds=seconds)


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> QuickstartRun:
    """The one quick start of the session, shared by every pytest-xdist worker.

    Each worker is a session of its own, so the first to need the run trains it under a lock in
    the folder the workers share, and records it there; the others wait for the lock and read it.
    The names carry the run's id: a ``--basetemp`` given again keeps the folder of an earlier run.
    """
    if "PYTEST_XDIST_TESTRUNUID" not in os.environ:
        return _run_quickstart(tmp_path_factory.mktemp("quickstart"))
    shared = tmp_path_factory.getbasetemp().parent / f"quickstart-{os.environ['PYTEST_XDIST_TESTRUNUID']}"
    shared.mkdir(exist_ok=True)
    record = shared / "run.json"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if record.is_file():
            recorded = json.loads(record.read_text())
            return QuickstartRun(**{**recorded, "out": Path(recorded["out"])})
        (shared / "out").mkdir(exist_ok=True)
        run = _run_quickstart(shared / "out")
        record.write_text(json.dumps({**asdict(run), "out": str(run.out)}))
        return run


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
