"""Several corpora packed together whose official splits leave train empty: pack names each corpus's own fix.

With one corpus the advice named where its recipe set the splits (``split_by_repetition.train``); with two it fell
back to "re-run preprocess --force so the training recordings are marked train", which marks the same ones again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus

PATTERN = r"(?P<subject>[^/]+)/(?P<repetition>\d+)\.csv"
CHANNELS = '["EMG1", "EMG2", "EMG3", "EMG4"]'


def _preprocess(corpus: str, root: Path, shards: Path, splits: str) -> None:
    options = f"{{pattern = '{PATTERN}', sfreq = 200.0, channel_names = {CHANNELS}, split_by_repetition = {splits}}}"
    args = ["preprocess", corpus, "--root", str(root), "--out", str(shards), "--workers", "2", "--no-progress"]
    args += ["--set", "preprocess.window_seconds=0.5", "--set", "preprocess.stride_seconds=0.5"]
    args += ["--set", "preprocess.l_freq=20", "--set", "preprocess.h_freq=90", "--set", "preprocess.notch_hz=50"]
    result = CliRunner().invoke(app, [*args, "--set", f"preprocess.options={options}"])
    assert result.exit_code == 0, result.output


def test_two_corpora_with_no_train_repetition_are_each_told_where_to_list_one(tmp_path):
    rng = np.random.default_rng(0)
    for corpus in ("emg", "table"):
        for subject in ("s0", "s1"):
            (tmp_path / corpus / subject).mkdir(parents=True)
            for repetition in range(2):
                np.savetxt(tmp_path / corpus / subject / f"{repetition}.csv", rng.normal(size=(400, 4)), delimiter=",")
    shards = tmp_path / "shards"
    _preprocess("emg-csv", tmp_path / "emg", shards, "{val = [0], test = [1]}")
    _preprocess("table", tmp_path / "table", shards, "{test = [0, 1]}")
    result = CliRunner().invoke(app, ["pack", str(shards), "--out", str(tmp_path / "packed"), "--no-progress"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = " ".join(result.stderr.split())
    assert (
        "give one corpus's training recordings split 'train' (emg-csv: list the training repetitions under "
        "preprocess.options.split_by_repetition.train; table: list the training repetitions under "
        "preprocess.options.split_by_repetition.train) and run preprocess again, or set pack.official_splits = false"
    ) in error, error
    assert "--force" not in error
