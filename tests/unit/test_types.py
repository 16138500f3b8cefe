"""mypy finds no type error in the modules it checks (pyproject.toml ``[tool.mypy]``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_mypy_finds_nothing(tmp_path):
    pytest.importorskip("mypy", reason="mypy is part of the [test] extra")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_exempt_list_names_only_modules_that_exist():
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    exempt = [name for override in config.get("overrides", []) for name in override["module"]]
    path = {name: REPO / name.replace(".", "/") for name in exempt}
    missing = [name for name in exempt if not (path[name].with_suffix(".py").is_file() or (path[name] / "__init__.py").is_file())]
    assert not missing, f"take these off [[tool.mypy.overrides]]: {missing}"
