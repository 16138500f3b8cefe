"""preprocess at native rates warns of a second rate before any work when the EDF headers tell it.

A folder of recordings at two rates gives shards ``pack`` cannot put together. The warning came once
a shard at the second rate was written, after that much work; the headers (a few hundred bytes
each) tell it before the first recording is read.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from fixtures.edf_files import write_edf
from fixtures.tuh import write_tuh_edf
from typer.testing import CliRunner

from biofound_cli.cli.app import app

EARLY = "preprocess.sfreq = 0 keeps each file's own rate, and pack packs one rate only"


class ShardsWhenWarned(logging.Handler):
    """Notes the shards on disk each time the early warning is logged."""

    def __init__(self, out: Path) -> None:
        super().__init__(logging.WARNING)
        self.out = out
        self.seen: list[list[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if EARLY in record.getMessage():
            self.seen.append(sorted(path.name for path in self.out.rglob("*.h5")))


def test_a_second_rate_in_the_headers_is_said_before_any_recording_is_processed(tmp_path):
    rng = np.random.default_rng(0)
    for number, rate in enumerate([128, 128, 256, 128]):
        folder = tmp_path / "raw" / f"s{number + 1}"
        folder.mkdir(parents=True)
        digital = [rng.integers(-2000, 2000, 30 * rate).astype(np.int16) for _ in range(3)]
        write_edf(folder / "a.edf", ["Fp1", "Fp2", "C3"], digital, n_samps=[rate] * 3)
    out = tmp_path / "shards"
    heard = ShardsWhenWarned(out)
    logging.getLogger("biofound_cli").addHandler(heard)
    try:
        command = ["preprocess", "edf", "--root", str(tmp_path / "raw"), "--out", str(out), "--workers", "2"]
        result = CliRunner().invoke(app, [*command, "--no-progress"])
    finally:
        logging.getLogger("biofound_cli").removeHandler(heard)
    assert result.exit_code == 0, result.output
    assert heard.seen == [[]], heard.seen  # once, with no shard written yet
    log = " ".join(result.stderr.split())
    assert f"{tmp_path}/raw/s3/a.edf is at 256 Hz and {tmp_path}/raw/s1/a.edf at 128 Hz: {EARLY}" in log, log
    # The end of the run still names the recording pack will skip.
    assert f"will skip 1 of 4: {tmp_path}/raw/s3/a.edf (256 Hz)" in log, log


@pytest.mark.parametrize("corpus", ["tueg", "tuab"])
def test_the_tuh_corpora_say_a_second_rate_in_the_headers_before_any_recording_is_processed(tmp_path, corpus):
    """TUH files come at 250, 256, 400 or 512 Hz; at the native rate the TUH readers (TUEG's montage picked per
    recording, TUAB's TCP channels) gave no header rate, so the warning waited for a shard at the second rate."""
    folder = {"tueg": "", "tuab": "edf/train/normal/"}[corpus]
    for number, rate in enumerate([250.0, 250.0, 400.0]):
        path = tmp_path / "raw" / f"{folder}{number:03d}" / "01_tcp_ar" / f"aaaaaaa{number}_s001_t000.edf"
        write_tuh_edf(path, sfreq=rate, seconds=12.0)
    out = tmp_path / "shards"
    heard = ShardsWhenWarned(out)
    logging.getLogger("biofound_cli").addHandler(heard)
    try:
        command = ["preprocess", corpus, "--root", str(tmp_path / "raw"), "--out", str(out), "--workers", "2"]
        result = CliRunner().invoke(app, [*command, "--set", "preprocess.sfreq=0", "--no-progress"])
    finally:
        logging.getLogger("biofound_cli").removeHandler(heard)
    assert result.exit_code == 0, result.output
    assert heard.seen == [[]], heard.seen  # once, with no shard written yet
    second = tmp_path / "raw" / f"{folder}002" / "01_tcp_ar" / "aaaaaaa2_s001_t000.edf"
    assert f"{second} is at 400 Hz and " in " ".join(result.stderr.split()), result.stderr
