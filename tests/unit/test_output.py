from __future__ import annotations

import itertools
import json

import pytest

from biofound_cli.output import Output


def test_plain_progress_logs_done_total_rate_and_eta(capsys):
    output = Output(progress=False, log_interval=0.0)
    with output.task(total=4, description="preprocess", unit="files") as task:
        for _ in range(4):
            task.advance()
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert lines, "plain mode must log progress lines"
    assert "preprocess: 1/4 files" in lines[0]
    assert "files/s" in lines[0] and "ETA" in lines[0]
    assert "preprocess: 4/4 files" in lines[-1]


def test_plain_progress_of_work_that_stops_short_ends_without_an_eta(capsys):
    # After early stopping the log's last line read "training: 18/48 steps (..., ETA 0:41)".
    output = Output(progress=False, log_interval=3600.0)
    with output.task(total=48, description="training", unit="steps") as task:
        task.advance(18)
    [line] = [line for line in capsys.readouterr().out.splitlines() if line]
    assert "training: stopped at 18/48 steps (" in line and "ETA" not in line


def test_plain_progress_of_resumed_work_counts_from_where_it_resumed_and_rates_only_this_starts_work(capsys, monkeypatch):
    # A run resumed at step 6 of 10 counted 0/4 from its resume; counting from 6/10, its rate and
    # ETA must still be this start's 2 steps in 1 s, not 8 steps in 1 s.
    from biofound_cli import output as output_module

    clock = itertools.chain([100.0, 100.0], itertools.repeat(101.0))
    monkeypatch.setattr(output_module.time, "monotonic", lambda: next(clock))
    output = Output(progress=False, log_interval=0.5)
    with output.task(total=10, description="training", unit="steps", done=6) as task:
        task.advance(2)
    progress, final = [line for line in capsys.readouterr().out.splitlines() if line]
    assert "training: 8/10 steps (2.0 steps/s, ETA 0:01)" in progress
    assert "training: stopped at 8/10 steps (2.0 steps/s)" in final


def test_plain_progress_rate_limited(capsys):
    output = Output(progress=False, log_interval=3600.0)
    with output.task(total=100, description="pack", unit="windows") as task:
        for _ in range(100):
            task.advance()
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(lines) == 1  # only the final line
    assert "100/100 windows" in lines[0]


def test_quiet_hides_info_and_progress_but_not_summary_or_warnings(capsys):
    output = Output(quiet=True, progress=False, log_interval=0.0)
    output.info("hidden")
    with output.task(total=2, description="x") as task:
        task.advance(2)
    output.warn("careful")
    output.summary({"windows": 3})
    captured = capsys.readouterr()
    assert "hidden" not in captured.out
    assert "x:" not in captured.out
    assert "careful" in captured.err
    assert "windows" in captured.out and "3" in captured.out


def test_json_summary_is_the_only_stdout(capsys):
    output = Output(json_summary=True, progress=False, log_interval=0.0)
    output.info("human text")
    with output.task(total=1, description="work") as task:
        task.advance()
    output.summary({"windows": 12, "paths": ["a", "b"], "elapsed_seconds": 1.5})
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"windows": 12, "paths": ["a", "b"], "elapsed_seconds": 1.5}
    assert "human text" in captured.err


def test_force_color_does_not_turn_on_live_bars_without_a_terminal(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert Output().live is False


def test_a_table_of_tables_reads_by_its_outer_keys(capsys):
    # pack's class counts by split read "train=normal=18, abnormal=24, val=normal=6" in the summary table.
    output = Output(progress=False, log_interval=0.0)
    output.summary({"class_counts": {"train": {"normal": 18, "abnormal": 24}, "val": {"normal": 6}}, "kept": {"a": 1, "b": 2}})
    shown = " ".join(capsys.readouterr().out.split())
    assert "train: normal=18, abnormal=24; val: normal=6" in shown and "a=1, b=2" in shown


def test_a_live_bar_shows_its_description_as_text():
    # Live bars read their description as markup: `Scoring [b]x[/b].h5` showed `Scoring x.h5`,
    # and a bracketed file name such as `[1]-rest.edf` lost its brackets or raised MarkupError.
    import io

    from rich.console import Console

    output = Output(progress=True)
    buffer = io.StringIO()
    output.stdout, output.live = Console(file=buffer, force_terminal=True, width=200, color_system=None), True
    with output.task(total=2, description="Scoring [b]x[/b].h5 [/]", unit="windows") as task:
        task.advance(2)
    assert "Scoring [b]x[/b].h5 [/]" in buffer.getvalue()


def test_a_table_off_a_terminal_keeps_each_cell_on_one_line(tmp_path):
    """`biofound env | tee log` (CI): a table folded at 160 columns, or at the COLUMNS a shell exported,
    broke a long path across lines, each piece padded to the column; off a terminal a table is as wide as its rows."""
    import os
    import subprocess
    import sys

    cache = tmp_path / ("a-long-folder-name-of-a-shared-cluster-file-system/" * 5) / "hub"
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "COLUMNS": "80"}
    shown = subprocess.run([sys.executable, "-m", "biofound_cli", "env"], env=env, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    [row] = [line for line in shown.stdout.splitlines() if "Hugging Face cache" in line]
    assert str(cache) in row, shown.stdout


@pytest.mark.parametrize("asked", ["FORCE_COLOR=1", "TTY_COMPATIBLE=1"])
def test_colour_asked_for_colours_a_pipe_but_never_json_nor_a_file(asked, tmp_path):
    """A CI runner's FORCE_COLOR asks for colour: its log viewer shows it; a script's --json and a log file stay text."""
    import os
    import subprocess
    import sys

    name, value = asked.split("=")
    plain = {key: text for key, text in os.environ.items() if key not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
    (tmp_path / "empty.toml").write_text("")  # valid, with a warning that no stage check ran
    command = [sys.executable, "-m", "biofound_cli", "validate", str(tmp_path / "empty.toml")]

    def run(*flags: str, **streams) -> subprocess.CompletedProcess:
        return subprocess.run([*command, *flags], env={**plain, name: value}, text=True, timeout=300, **streams)

    piped = run(capture_output=True)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr.startswith("\x1b[") and "warning: " in piped.stderr, repr(piped.stderr)
    as_json = run("--json", capture_output=True)
    assert json.loads(as_json.stdout)["valid"] is True
    assert "\x1b" not in as_json.stdout + as_json.stderr and as_json.stderr.startswith("warning: "), repr(as_json.stderr)
    with open(tmp_path / "run.log", "w") as log:
        assert run(stdout=log, stderr=log).returncode == 0
    logged = (tmp_path / "run.log").read_text()
    assert "\x1b" not in logged and "warning: " in logged and "Recipe is valid" in logged, repr(logged)


def test_a_summary_shows_a_setting_as_given_and_a_metric_to_four_digits(capsys):
    # pack's and info's tables read window_seconds=3.438 for the SCP1 recipe's 3.4375 s (880 samples at 256 Hz).
    output = Output(progress=False, log_interval=0.0)
    output.summary({"window_seconds": 3.4375, "config": {"sfreq": 250.0123, "stride_seconds": 3.4375}, "auroc": 2 / 3})
    shown = capsys.readouterr().out
    assert "3.4375" in shown and "stride_seconds=3.4375" in shown and "sfreq=250.0123" in shown
    assert "0.6667" in shown and "0.666666" not in shown
