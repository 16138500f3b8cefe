"""A Ctrl-C (or a SIGTERM or SIGUSR1) at the edges of a command's work ends it with the status the exit-status table gives.

Each case runs the real entry point and command in a child Python that sends itself the signal at
one moment: as a module is first looked for (an import hook of the test's), inside code run by a
string ``exec``, or after the entry point has returned. The entry point's handlers live in that
child, not in pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.process_group import assert_terminated

REPO_ROOT = Path(__file__).resolve().parents[3]

SIGNAL_AS_A_MODULE_IS_IMPORTED = """
import os, signal, sys
signal_name, module, *words = sys.argv[1:]

class SignalAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == module:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.Signals[signal_name])
        return None

sys.meta_path.insert(0, SignalAtImport())
sys.argv = ["biofound", *words]
from biofound_cli.cli.entry import main
main()
"""

SIGINT_ONCE_THE_COMMAND_HAS_ENDED = """
import os, signal, sys
sys.argv = ["biofound", *sys.argv[1:]]
from biofound_cli.cli.entry import main
try:
    main()
finally:
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(100_000):  # Python's shutdown runs code too
        pass
"""


# `python -m` (as torchrun starts each rank): the command's output is set up by code a string `exec` runs.
CTRL_C_INSIDE_AN_EXEC = """
import sys
import biofound_cli.cli.common as common

def interrupted(*args, **kwargs):
    exec("raise KeyboardInterrupt")  # as dataclasses and namedtuples run the methods they build

common.make_output = interrupted
sys.argv = ["biofound", *sys.argv[1:]]
from biofound_cli.cli.entry import main
main()
"""


def run_child(script: str, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *words], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", ["numpy.linalg", "torch.nn"])
def test_ctrl_c_while_torch_is_imported_stops_the_command_with_one_line(module):
    # At numpy.linalg (imported by `import torch`) torch's start swallowed it: the command ran on and exited 0.
    result = run_child(SIGNAL_AS_A_MODULE_IS_IMPORTED, "SIGINT", module, "models")
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [result.stderr.strip()]
    assert result.stderr.startswith("error: ")
    assert "luna" not in result.stdout  # the table of models: the work did not run


def started(command: str, tmp_path: Path) -> list[str]:
    """A command line of ``command`` that gets as far as its own stop handling (its files need not exist)."""
    (tmp_path / "tiny.toml").write_text('name = "tiny"\n[data]\ntest = "test.h5"\n')
    return {
        "preprocess": ["tuab", "--root", tmp_path / "raw", "--out", tmp_path / "shards"],
        "pack": [tmp_path / "shards", "--out", tmp_path / "packed"],
        "evaluate": [tmp_path / "tiny.toml"],
        "export": [tmp_path / "model.safetensors", "--out", tmp_path / "exported"],
        "download": ["tinymyo", "--dest", tmp_path / "weights"],
        "predict": [tmp_path / "model.onnx", tmp_path / "recordings", "--out", tmp_path / "predicted"],
        "quickstart": ["--out", tmp_path / "quickstart"],
    }[command]


@pytest.mark.parametrize(
    ("command", "signal_name"),
    [(command, "SIGUSR1") for command in ("preprocess", "pack", "evaluate", "export", "download", "predict", "quickstart")]
    + [("preprocess", "SIGTERM"), ("export", "SIGTERM")],
)
def test_a_stop_signal_as_the_command_starts_is_its_stop_line_and_status_143(command, signal_name, tmp_path):
    """SLURM's SIGTERM, or the SIGUSR1 of ``sbatch --signal``, while typer was imported (before the command's own
    handlers) killed every command but training with no line, no --json object and status -15 or -10."""
    words = [str(word) for word in started(command, tmp_path)]
    result = run_child(SIGNAL_AS_A_MODULE_IS_IMPORTED, signal_name, "typer", command, *words, "--json")
    assert_terminated(result, result.stdout, result.stderr, by=signal_name)
    assert [path.name for path in tmp_path.iterdir()] == ["tiny.toml"]  # nothing was done


def test_ctrl_c_once_the_command_has_ended_leaves_its_status_and_output():
    # It raised KeyboardInterrupt in the code after the command (a traceback), or killed the process by SIGINT.
    result = run_child(SIGINT_ONCE_THE_COMMAND_HAS_ENDED, "models")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "luna" in result.stdout


def test_ctrl_c_inside_an_exec_ends_a_module_run_with_status_130(tmp_path):
    # CPython marked it unhandled: the line was printed, then the process died of SIGINT (-2).
    (tmp_path / "interrupted_in_exec.py").write_text(CTRL_C_INSIDE_AN_EXEC)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT)])}
    result = subprocess.run(
        [sys.executable, "-m", "interrupted_in_exec", "pack", "shards", "--out", "packed"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines() == ["error: stopped by Ctrl-C as the command started; nothing was done"]


READ_ONLY = {"models": [], "env": [], "info": ["r.toml"], "validate": ["r.toml"], "recipes": ["ls"]}
WRITING = {"pack": ["shards", "--out", "packed"], "evaluate": ["r.toml"], "predict": ["m.onnx", "recordings", "--out", "o"]}


@pytest.mark.parametrize("command", sorted({**READ_ONLY, **WRITING}))
def test_ctrl_c_during_the_work_says_what_is_left(command, monkeypatch):
    # Every command said "finished outputs are kept and a re-run resumes where this one stopped",
    # `models` and `validate` too, which write nothing.
    from typer.testing import CliRunner

    import biofound_cli.cli.common as common
    from biofound_cli.cli.app import app

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(common, "_refuse_several_processes", interrupted)  # the first step of every command's work
    result = CliRunner().invoke(app, [command, *{**READ_ONLY, **WRITING}[command]])
    assert result.exit_code == 130, result.output
    if command in READ_ONLY:
        assert result.stderr.splitlines() == ["error: stopped by Ctrl-C before the command finished; run it again"]
    else:
        assert result.stderr.splitlines() == [f"error: {common.INTERRUPTED}"]
