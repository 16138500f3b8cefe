"""The entry point notes the preemption signals of a command that handles stops before anything heavy is imported.

Each case runs the real entry point (:func:`biofound_cli.cli.entry.main`) in a child Python, with
the app replaced by a stand-in that reports what was imported by then and signals its own process:
the entry point's handlers live in that child, not in pytest. The end-to-end case (a real
``finetune`` signalled as soon as it handles SIGTERM) is in tests/integration/test_real_conditions.py, those
of the other commands in test_ctrl_c_edges.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]

# The app as the entry point imports it, replaced: it prints which heavy modules were imported
# when it was reached, sends itself SIGTERM, and takes what was noted if the command is training.
WITH_A_STAND_IN_APP = """
import os, signal, sys, types

def main():
    print(sorted(name for name in ("typer", "rich", "pydantic", "torch") if name in sys.modules), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    print("still running", flush=True)
    if sys.argv[-1] == "take":
        from biofound_cli.stop_signals import noted_at_start
        print(noted_at_start(), flush=True)

app = types.ModuleType("biofound_cli.cli.app")
app.main = main
sys.modules["biofound_cli.cli.app"] = app
sys.argv = ["biofound", *sys.argv[1:]]
from biofound_cli.cli.entry import main as entry_main
entry_main()
"""


def run_entry(*words: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITH_A_STAND_IN_APP, *words], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("command", ["finetune", "pretrain", "preprocess", "predict", "quickstart"])
def test_the_sigterm_of_a_command_that_handles_stops_is_noted_before_typer_and_torch_and_handed_over(command):
    result = run_entry(command, "recipe.toml", "take")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "still running", f"[{int(signal.SIGTERM)}]"]


def test_a_noted_sigterm_no_command_took_ends_the_process_as_sigterm_does_once_it_is_done():
    # e.g. `biofound finetune --help` or a parse error: nothing takes the signal, which then acts as it would have.
    result = run_entry("finetune", "--help")
    assert result.returncode == -signal.SIGTERM
    assert result.stdout.splitlines() == ["[]", "still running"]


@pytest.mark.parametrize("command", ["validate", "info", "models", "env", "recipes"])
def test_commands_that_write_nothing_keep_the_default_action_of_sigterm(command):
    result = run_entry(command, "r.toml")
    assert result.returncode == -signal.SIGTERM
    assert result.stdout.splitlines() == ["[]"]


# Ctrl-C as the command starts: while the app is imported (the entry point's stand-in app
# raises it as the default SIGINT handler would), while click reads the arguments (the real app,
# its parser interrupted), or as the command's own set-up begins (the output set-up interrupted).
CTRL_C_AT_START = """
import sys, types
if sys.argv[1] == "import":
    def main():
        raise KeyboardInterrupt
    app = types.ModuleType("biofound_cli.cli.app")
    app.main = main
    sys.modules["biofound_cli.cli.app"] = app
elif sys.argv[1] == "parsing":
    from biofound_cli.cli.app import _BiofoundGroup
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    _BiofoundGroup.parse_args = interrupted
else:
    import biofound_cli.cli.common as common
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    common.make_output = interrupted
sys.argv = ["biofound", "pack", "shards", "--out", "packed", *sys.argv[2:]]
from biofound_cli.cli.entry import main
main()
"""


@pytest.mark.parametrize("where", ["import", "parsing", "arguments"])
@pytest.mark.parametrize("json_summary", [False, True])
def test_ctrl_c_as_the_command_starts_is_one_line_and_status_130(where, json_summary):
    # It printed Python's traceback (and died of SIGINT), or click's "Aborted!" with status 1 (while parsing: until now).
    flags = ["--json"] if json_summary else []
    result = subprocess.run(
        [sys.executable, "-c", CTRL_C_AT_START, where, *flags], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    message = "stopped by Ctrl-C as the command started; nothing was done"
    assert result.returncode == 130, result.stderr
    assert [line for line in result.stderr.splitlines() if line] == [f"error: {message}"]  # click closes the ^C echo
    expected = [f'{{"ok": false, "exit_status": 130, "error": "{message}"}}'] if json_summary else []
    assert result.stdout.splitlines() == expected


@pytest.mark.parametrize("where", ["import", "parsing"])
def test_ctrl_c_as_the_command_starts_with_json_given_a_value_is_the_json_object(where):
    # Before the parser refuses --json=true, a Ctrl-C answers as --json asks wherever it lands (the import said nothing).
    result = subprocess.run(
        [sys.executable, "-c", CTRL_C_AT_START, where, "--json=true"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 130, result.stderr
    assert json.loads(result.stdout)["exit_status"] == 130


# A command line of each command that gets past the parser (its files need not exist).
PARSED = {
    "quickstart": [],
    "download": ["tinymyo"],
    "preprocess": ["tuab"],
    "pack": ["shards"],
    "pretrain": ["r.toml"],
    "finetune": ["r.toml"],
    "evaluate": ["r.toml"],
    "export": ["run"],
    "predict": ["model.onnx", "recordings", "--out", "predicted"],
    "models": [],
    "recipes": ["ls"],
    "info": ["r.toml"],
    "validate": ["r.toml"],
    "env": [],
}


@pytest.mark.parametrize("command", sorted(PARSED))
def test_ctrl_c_ends_every_command_with_the_status_its_row_declares(command, monkeypatch):
    """docs/exit-status.md gave 130 to none of the read-only commands; each declares it, and ends with it."""
    from typer.testing import CliRunner

    import biofound_cli.cli.common as common
    from biofound_cli.cli.app import app
    from biofound_cli.errors import COMMAND_STATUSES, ExitStatus

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(common, "Output", interrupted)  # as the command's output is set up: every command makes one
    result = CliRunner().invoke(app, [command, *PARSED[command], "--json"])
    assert ExitStatus.INTERRUPTED in COMMAND_STATUSES[command]
    assert result.exit_code == ExitStatus.INTERRUPTED, result.output
    assert result.stderr.splitlines() == ["error: stopped by Ctrl-C as the command started; nothing was done"]
