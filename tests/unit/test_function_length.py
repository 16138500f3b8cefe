"""No function in the package is longer than one screen (issue #15), unless it is listed here with a reason.

A function's length is its body: the lines from its first statement to its last, less its
docstring. The numpy docstrings are long on purpose and are read apart from the code, and a
command's signature declares one Typer option per flag, formatted one argument per line.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "biofound_cli"
MAX_LINES = 80

# "module path::function": why it stays longer. Keep this short; split a function rather than list it.
ALLOWED: dict[str, str] = {}


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    first = body[0]
    if (
        len(body) > 1
        and isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        body = body[1:]  # the docstring
    return (node.end_lineno or node.lineno) - body[0].lineno + 1


def _long_functions() -> dict[str, int]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = _body_lines(node)
                if length > MAX_LINES:
                    found[f"{path.relative_to(PACKAGE).as_posix()}::{node.name}"] = length
    return found


def test_no_function_is_longer_than_one_screen():
    too_long = {name: length for name, length in _long_functions().items() if name not in ALLOWED}
    assert not too_long, (
        f"functions whose body is over {MAX_LINES} lines (docstring not counted): {too_long}; split them into named steps "
        "or, with a reason, add them to ALLOWED in tests/unit/test_function_length.py"
    )


def test_the_allow_list_names_only_functions_still_too_long():
    stale = sorted(set(ALLOWED) - set(_long_functions()))
    assert not stale, f"these functions are no longer over {MAX_LINES} lines; take them off ALLOWED: {stale}"
