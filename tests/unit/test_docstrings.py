"""Every public function of the package documents its arguments in a numpy-style Parameters section (issue #15).

Checked: each public (no leading underscore) module-level function, and each public method of a
public module-level class, that takes arguments besides ``self``/``cls``. Its docstring must have
a ``Parameters`` / ``----------`` section with a ``name : type`` entry for every argument
(``a, b : type`` documents both; ``*args`` and ``**kwargs`` may be left out). Exempt, because
their arguments are documented elsewhere or are not the reader's to pass:

* ``@overload`` stubs: the implementation below them carries the docstring.
* Properties (``@property``, ``@cached_property``, ``@x.setter``): they take no arguments a caller
  passes.
* Methods overriding a base-class method: a method whose name a base class in the package
  defines (``Corpus.discover``/``read``, the ``ModelFamily`` hooks, ...), where the base documents
  the contract; and ``forward``, ``extra_repr``, ``state_dict``, ``load_state_dict`` and ``step`` of
  a class that derives from a class outside the package (``torch.nn.Module``, torch's schedulers
  and optimisers), which torch documents.
* Typer command functions in ``biofound_cli/cli/`` (named in ``app.COMMANDS``, or registered with
  ``app.command(...)``): their docstring is the ``--help`` text and each option carries its own ``help=``.
* ``TO_DOCUMENT`` below: functions not yet documented, to be emptied.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from biofound_cli.cli.app import COMMANDS

PACKAGE = Path(__file__).resolve().parents[2] / "biofound_cli"
CLI = PACKAGE / "cli"

# Methods torch defines on nn.Module, its optimisers and schedulers, which a subclass overrides.
TORCH_OVERRIDES = frozenset({"forward", "extra_repr", "state_dict", "load_state_dict", "step"})
PROPERTY_DECORATORS = frozenset({"property", "cached_property", "setter", "getter", "deleter"})

# "module path::qualified name" of functions still to document. Keep it empty; document rather than list.
TO_DOCUMENT: frozenset[str] = frozenset()

SECTION_HEADER = re.compile(r"^(\S[^\n]*)\n-{3,}[ \t]*$", re.M)
ENTRY = re.compile(r"^(\*{0,2}[A-Za-z_][\w, *]*?)\s+:", re.M)


@dataclass
class _Class:
    name: str
    bases: list[str]
    methods: set[str] = field(default_factory=set)


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Subscript):  # Generic[T], Protocol[T]
        node = node.value
    return _decorator_name(node)


def _modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path)) for path in sorted(PACKAGE.rglob("*.py"))}


def _classes(modules: dict[Path, ast.Module]) -> dict[str, list[_Class]]:
    """Every class of the package by its name (names may repeat across modules)."""
    found: dict[str, list[_Class]] = {}
    for tree in modules.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                methods = {item.name for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
                found.setdefault(node.name, []).append(_Class(node.name, [_base_name(b) for b in node.bases], methods))
    return found


def _ancestors(bases: list[str], classes: dict[str, list[_Class]]) -> tuple[set[str], bool]:
    """The methods the package's classes among ``bases`` and their bases define, and whether one base is from outside."""
    methods: set[str] = set()
    external = False
    seen: set[str] = set()
    todo = list(bases)
    while todo:
        base = todo.pop()
        if base in seen or base in ("object", ""):
            continue
        seen.add(base)
        if base not in classes:
            external = True
            continue
        for candidate in classes[base]:
            methods |= candidate.methods
            todo.extend(candidate.bases)
    return methods, external


def _commands(tree: ast.Module) -> set[str]:
    """Names of the functions a cli module registers with ``app.command(...)``, as a call or a decorator."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(_decorator_name(d) in ("command", "callback") for d in node.decorator_list):
                names.add(node.name)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Call) and _decorator_name(node.func) == "command":
            names.update(arg.id for arg in node.args if isinstance(arg, ast.Name))
    return names


def _arguments(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[str]:
    positional = node.args.posonlyargs + node.args.args
    if method and positional and positional[0].arg in ("self", "cls"):
        positional = positional[1:]
    return [a.arg for a in positional + node.args.kwonlyargs]


def documented_parameters(docstring: str) -> set[str] | None:
    """The names of the ``name : type`` entries of a numpy Parameters section, or None without one."""
    headers = list(SECTION_HEADER.finditer(docstring))
    for index, header in enumerate(headers):
        if header.group(1).strip() == "Parameters":
            end = headers[index + 1].start() if index + 1 < len(headers) else len(docstring)
            section = docstring[header.end() : end]
            names: set[str] = set()
            for entry in ENTRY.finditer(section):
                names.update(name.strip().lstrip("*") for name in entry.group(1).split(","))
            return names
    return None


def _problem(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> str | None:
    arguments = _arguments(node, method)
    if not arguments:
        return None
    docstring = ast.get_docstring(node)
    if docstring is None:
        return "no docstring"
    documented = documented_parameters(docstring)
    if documented is None:
        return "no Parameters section"
    missing = [name for name in arguments if name not in documented]
    return f"Parameters lacks {', '.join(missing)}" if missing else None


def _is_exempt(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    decorators = {_decorator_name(d) for d in node.decorator_list}
    return "overload" in decorators or bool(decorators & PROPERTY_DECORATORS)


def undocumented(to_document: frozenset[str] = TO_DOCUMENT) -> dict[str, str]:
    """``{"path:line qualified.name": what is missing}`` for every public function the rule covers, but ``to_document``."""
    modules = _modules()
    classes = _classes(modules)
    found: dict[str, str] = {}
    for path, tree in modules.items():
        relative = path.relative_to(PACKAGE.parent).as_posix()
        in_cli = CLI in path.parents
        commands = _commands(tree) | set(COMMANDS) if in_cli else set()
        candidates: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str, bool]] = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                if node.name in commands:
                    continue
                candidates.append((node, node.name, False))
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                inherited, external = _ancestors([_base_name(b) for b in node.bases], classes)
                for item in node.body:
                    if not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) or item.name.startswith("_"):
                        continue
                    if item.name in inherited or (external and item.name in TORCH_OVERRIDES):
                        continue
                    candidates.append((item, f"{node.name}.{item.name}", True))
        for node, name, method in candidates:
            if _is_exempt(node) or f"{relative}::{name}" in to_document:
                continue
            problem = _problem(node, method)
            if problem:
                found[f"{relative}:{node.lineno} {name}"] = problem
    return found


def test_public_functions_document_their_parameters():
    missing = undocumented()
    listing = "\n".join(f"  {where}: {problem}" for where, problem in sorted(missing.items()))
    assert not missing, (
        f"{len(missing)} public functions lack a numpy-style Parameters section naming each argument "
        f"(`name : type` then an indented description):\n{listing}"
    )


def test_the_to_document_list_names_only_functions_still_undocumented():
    flagged = {f"{where.split(':')[0]}::{where.split(' ', 1)[1]}" for where in undocumented(frozenset())}
    stale = sorted(TO_DOCUMENT - flagged)
    assert not stale, f"these are documented now (or gone); take them off TO_DOCUMENT: {stale}"


def test_the_parser_reads_numpy_entries():
    docstring = (
        "Summary.\n\nParameters\n----------\na, b : int\n    Two.\n*args : Any\n    More.\nc : str\n\nReturns\n-------\nd : int\n"
    )
    assert documented_parameters(docstring) == {"a", "b", "args", "c"}
    assert documented_parameters("Summary only.") is None
