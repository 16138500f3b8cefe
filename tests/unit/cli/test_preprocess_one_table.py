"""`biofound preprocess` prints its counts once: the summary table, not a "Recordings" and a "Skipped, by reason"
table before it repeating the same numbers."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from biofound_cli.cli.app import app


def test_the_counts_and_the_skips_by_reason_are_printed_once(tmp_path):
    raw = tmp_path / "raw"
    for subject in ("s0", "s1"):
        (raw / subject).mkdir(parents=True)
        np.savetxt(raw / subject / "0.csv", np.random.default_rng(0).normal(size=(400, 4)), delimiter=",")
    (raw / "s1" / "1.csv").write_text("")  # an empty file: skipped, with its reason
    args = ["preprocess", "emg-csv", "--root", str(raw), "--out", str(tmp_path / "shards"), "--no-progress"]
    options = "preprocess.options={pattern = '(?P<subject>[^/]+)/(?P<repetition>\\d+)\\.csv', sfreq = 200.0}"

    result = CliRunner().invoke(
        app, [*args, "--set", options, "--set", "preprocess.window_seconds=0.5", "--set", "preprocess.stride_seconds=0.5"]
    )

    assert result.exit_code == 0, result.output
    table_lines = [line for line in result.stdout.splitlines() if line.startswith(("│", "┃"))]
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in table_lines if line.startswith("│")}
    assert (rows["found"], rows["written"], rows["skipped"]) == ("3", "2", "1"), result.stdout
    assert rows["skipped_by_reason"] == "unusable=1", rows
    assert [line.split()[1] for line in table_lines if line.startswith("┃")] == ["field"], result.stdout
    assert "Skipped, by reason" not in result.stdout and "Recordings" not in result.stdout
