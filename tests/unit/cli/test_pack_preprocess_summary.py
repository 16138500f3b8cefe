"""What `pack` says about the preprocessing of an array job (issue #16 item 6).

Two slices (`preprocess --shard 1/2` and `--shard 2/2`) write one report each. pack showed their
numeric settings added up (l_freq 40 after two slices of 20) and dropped the rest; the settings
must be shown as written, slices with different settings refused, and float16 clipping and the
corpus's exclusions shown in the summary, clipping also as a warning.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.plural import counted

runner = CliRunner()

SFREQ = 256.0
SAMPLES = 128
SETTINGS = [
    "--set",
    "preprocess.l_freq=20",
    "--set",
    "preprocess.h_freq=90",
    "--set",
    "preprocess.sfreq=200",
    "--set",
    "preprocess.notch_hz=[50]",
]


def _ts_file(path: Path, n_trials: int, seed: int, scale: float = 1.0) -> None:
    rng = np.random.default_rng(seed)
    lines = ["@dimensions 2", "@classLabel true neg pos", "@data"]
    for index in range(n_trials):
        channels = [",".join(f"{v:.1f}" for v in scale * rng.standard_normal(SAMPLES)) for _ in range(2)]
        lines.append(":".join(channels) + (":neg" if index % 2 else ":pos"))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    _ts_file(root / "Two_TRAIN.ts", 8, seed=0)
    # Values far beyond the float16 range (±65504): a float16 preprocess clips them.
    _ts_file(root / "Two_TEST.ts", 6, seed=1, scale=1e6)
    return root


def _preprocess(archive: Path, out: Path, *extra: str) -> None:
    args = [
        "preprocess",
        "ts",
        "--root",
        str(archive),
        "--out",
        str(out),
        "--json",
        "--no-progress",
        "--set",
        f"preprocess.options.sfreq={SFREQ}",
        "--set",
        "preprocess.window_seconds=0.5",
        *extra,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


def _pack(shards: Path, out: Path):
    return runner.invoke(app, ["pack", str(shards), "--out", str(out), "--json", "--no-progress"])


def test_slice_settings_are_shown_as_written_and_counts_summed(archive, tmp_path):
    shards = tmp_path / "shards"
    for spec in ("1/2", "2/2"):
        _preprocess(archive, shards, "--shard", spec, *SETTINGS)
    assert sorted(p.name for p in shards.glob("preprocess_report*.json")) == [
        "preprocess_report.ts.slice-1-of-2.json",
        "preprocess_report.ts.slice-2-of-2.json",
    ]
    result = _pack(shards, tmp_path / "packed")
    assert result.exit_code == 0, result.output
    preprocess = json.loads(result.stdout)["preprocess"]
    config = preprocess["config"]
    assert (config["l_freq"], config["h_freq"], config["sfreq"]) == (20, 90, 200)
    assert config["notch_hz"] == [50.0] and config["filter_method"] == "fir" and config["montage"] == "none"
    assert preprocess["options"]["split_patterns"] == {"test": "*_TEST.ts*"}
    assert preprocess["corpus"] == "ts" and preprocess["slices"] == ["1/2", "2/2"] and preprocess["reports"] == 2
    assert (preprocess["found"], preprocess["written"]) == (2, 2)


def test_slices_with_different_settings_are_refused_before_packing(archive, tmp_path):
    shards = tmp_path / "shards"
    _preprocess(archive, shards, "--shard", "1/2", *SETTINGS)
    _preprocess(archive, shards, "--shard", "2/2", *SETTINGS, "--set", "preprocess.l_freq=1", "--force")
    result = _pack(shards, tmp_path / "packed")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "config.l_freq 20" in errors[0] and "vs 1" in errors[0]
    assert "preprocess_report.ts.slice-1-of-2.json" in errors[0] and "preprocess_report.ts.slice-2-of-2.json" in errors[0]
    assert not (tmp_path / "packed" / "splits.json").exists()


def test_float16_clipping_and_exclusions_are_in_the_summary(archive, tmp_path):
    shards = tmp_path / "shards"
    _preprocess(archive, shards, "--set", "preprocess.dtype=float16")
    report_path = shards / "preprocess_report.ts.json"
    report = json.loads(report_path.read_text())
    assert report["clipped_values"] > 0
    # What TUEG's reader records at discovery (recordings left out of the corpus, by reason).
    report["excluded_by_reason"] = {"in TUAB evaluation set": 3}
    report_path.write_text(json.dumps(report))
    result = _pack(shards, tmp_path / "packed")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["preprocess_clipped_values"] == report["clipped_values"] == summary["preprocess"]["clipped_values"]
    assert summary["preprocess_excluded"] == 3 and summary["preprocess_excluded_by_reason"] == {"in TUAB evaluation set": 3}
    assert f"preprocess clipped {counted(report['clipped_values'], 'value')} to the float16 range" in result.stderr
    assert "(most in Two_TEST: " in result.stderr
    table = runner.invoke(app, ["pack", str(shards), "--out", str(tmp_path / "packed"), "--no-progress"])
    assert table.exit_code == 0 and "preprocess_clipped_values" in table.stdout and "preprocess_excluded" in table.stdout


def test_the_summary_reads_in_a_log_and_on_an_80_column_terminal(archive, tmp_path):
    # The preprocess entry (the chain and the reader's options) was one row ~800 columns wide: off a terminal every
    # row of the table was padded to it, and an 80-column terminal folded the run-on text wherever it fell.
    shards = tmp_path / "shards"
    _preprocess(archive, shards, *SETTINGS)
    command = ["pack", str(shards), "--out", str(tmp_path / "packed"), "--no-progress"]
    logged = runner.invoke(app, command)
    assert logged.exit_code == 0, logged.output
    table = [line for line in logged.stdout.splitlines() if line.startswith("│")]
    # A path is never broken, so the files row is as wide as its longest path (the test folder's, longer in CI).
    widest_item = len(f"train={tmp_path / 'packed' / 'train.h5'},")
    assert max(len(line) for line in table) <= max(120, widest_item + 40), logged.stdout
    rows = [line.split("│")[2].strip() for line in table]
    assert "corpus: ts" in rows and "config: window_seconds=0.5, stride_seconds=0.5, l_freq=20, h_freq=90," in rows, rows

    shown = _on_a_terminal(["biofound", *command], columns=80)
    lines = [line for line in shown.splitlines() if line.startswith("│")]
    assert lines and all(len(line) <= 80 for line in lines), shown
    cells = [line.split("│")[2].rstrip() for line in lines]
    assert " corpus: ts" in cells and " config: window_seconds=0.5," in cells, shown
    assert " options: sfreq: 256" in cells and "   split_patterns: test=*_TEST.ts*" in cells, shown


def _on_a_terminal(command: list[str], columns: int) -> str:
    """What ``command`` prints on a terminal ``columns`` wide (a pseudo-terminal), colour off."""
    import fcntl
    import os
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "NO_COLOR": "1", "TERM": "xterm"}
    env.pop("COLUMNS", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "biofound_cli", *command[1:]], stdout=follower, stderr=subprocess.DEVNULL, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the command
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=300) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")
