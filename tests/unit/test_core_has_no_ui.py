"""The core logs and reports progress through small interfaces; only the command line draws.

Core modules call ``logging.getLogger(__name__)`` and take a
:class:`~biofound_cli.progress.ProgressReporter`; rich and :mod:`biofound_cli.output` belong to
the CLI layer (``biofound_cli/cli``), which routes both to the terminal.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "biofound_cli"
CORE_PACKAGES = ("signals", "corpora", "recipes", "store", "models", "training", "evaluation", "export")
CORE_MODULES = ("hub.py", "dataset_download.py", "quickstart.py", "progress.py")
UI_MODULES = ("rich", "biofound_cli.output", "biofound_cli.cli")


def core_files() -> list[Path]:
    files = [path for name in CORE_PACKAGES for path in sorted((PACKAGE / name).rglob("*.py"))]
    return files + [PACKAGE / name for name in CORE_MODULES]


def ui_imports(path: Path) -> list[str]:
    """Each UI module ``path`` imports, at module level, inside a function or under ``TYPE_CHECKING``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        ui_names = [name for name in names if any(name == ui or name.startswith(ui + ".") for ui in UI_MODULES)]
        found += [f"{ui_names[0]} (line {node.lineno})"] if ui_names else []
    return found


def test_the_core_files_are_found():
    files = core_files()
    assert all(path.is_file() for path in files)
    assert {"preprocess.py", "packer.py", "loop.py", "run.py", "evaluate.py"} <= {path.name for path in files}


def test_no_core_module_imports_rich_or_the_output():
    offending = [f"{path.relative_to(PACKAGE.parent)} imports {name}" for path in core_files() for name in ui_imports(path)]
    assert not offending, "the core must log and take a ProgressReporter, not draw:\n" + "\n".join(offending)


def test_the_check_sees_every_form_of_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "from biofound_cli import __version__\n"
        "if TYPE_CHECKING:\n    from biofound_cli.output import Output\n"
        "def f():\n    from biofound_cli import output\n    import rich.progress\n"
    )
    assert ui_imports(sample) == ["biofound_cli.output (line 4)", "biofound_cli.output (line 6)", "rich.progress (line 7)"]
