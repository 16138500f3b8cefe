"""The imports agree with docs/architecture.md: no module imports from a layer above its own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "biofound_cli"


def documented_layers() -> dict[str, int]:
    """Module name prefix → layer, from the table in docs/architecture.md."""
    layers: dict[str, int] = {}
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        row = re.match(r"^\| (\d+) \| (.+?) \|", line)
        if row:
            for name in re.findall(r"`([\w.]+)`", row.group(2)):
                layers[name] = int(row.group(1))
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int:
    # `biofound_cli` is its __init__ alone: a module the table does not name is in no layer, not in layer 0.
    matches = [prefix for prefix in layers if module == prefix or (prefix != "biofound_cli" and module.startswith(prefix + "."))]
    assert matches, f"{module} is in no layer of docs/architecture.md; add it to the table"
    return layers[max(matches, key=len)]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every biofound_cli module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("biofound_cli"):
                found.add(node.module)
                if node.module == "biofound_cli":  # the names that are modules, not attributes (PACKAGE_LOGGER)
                    found.update(f"biofound_cli.{alias.name}" for alias in node.names if _is_module(alias.name))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("biofound_cli"))
    return found


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file()


def test_the_layer_table_is_there():
    layers = documented_layers()
    assert layers["biofound_cli.signals"] < layers["biofound_cli.store"] < layers["biofound_cli.models"]
    assert layers["biofound_cli.models"] < layers["biofound_cli.training"] < layers["biofound_cli.evaluation"]
    assert layers["biofound_cli.cli"] == max(layers.values())


def test_a_module_the_table_does_not_name_is_in_no_layer():
    layers = documented_layers()
    assert layer_of("biofound_cli", layers) == 0 and layer_of("biofound_cli.store.packer", layers) == layers["biofound_cli.store"]
    with pytest.raises(AssertionError, match="biofound_cli.new_module is in no layer"):
        layer_of("biofound_cli.new_module", layers)


def test_no_module_imports_from_a_higher_layer():
    layers = documented_layers()
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        own = layer_of(importer, layers)
        for imported in sorted(imported_modules(path)):
            if layer_of(imported, layers) > own:
                upward.append(f"{importer} (layer {own}) imports {imported} (layer {layer_of(imported, layers)})")
    assert not upward, "imports against the one-way flow of docs/architecture.md:\n" + "\n".join(upward)
