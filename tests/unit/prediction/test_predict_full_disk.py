"""``predict`` meeting a full disk in an output folder an earlier run filled (journey28).

A recording's PNG moved in before its table was written, so a second run whose table did not fit left
this run's PNG beside the earlier run's table: a picture of windows no table in the folder holds.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.export_models import save_small
from fixtures.process_group import biofound
from fixtures.small_disk import run_on_a_small_disk

from biofound_cli.signals.chain import ChainConfig

CHANNELS = [f"EMG{index}" for index in range(1, 5)]


def _write(path: Path, n_samples: int) -> None:
    np.savetxt(path, np.random.default_rng(n_samples).normal(size=(n_samples, len(CHANNELS))), delimiter=",", fmt="%.5f")


@pytest.mark.slow
def test_a_second_run_whose_table_does_not_fit_leaves_the_earlier_png_and_table_together(tmp_path) -> None:
    chain = ChainConfig(window_seconds=0.2, stride_seconds=0.1, l_freq=None, h_freq=None, notch_hz=(), units="native")
    checkpoint = save_small(
        tmp_path / "model.safetensors",
        "tinymyo",
        ch_names=CHANNELS,
        sfreq=200.0,
        n_times=40,
        preprocessing={"corpus": "emg-csv", "options": {"sfreq": 200.0}, **chain.to_json_dict()},
    )
    recordings = tmp_path / "rec"
    recordings.mkdir()
    recording = recordings / "R_0_C_0_EMG.csv"
    _write(recording, 400)
    small = tmp_path / "small"
    out = small / "out"
    predict = shlex.join(biofound("predict", checkpoint, recordings, "--out", out, "--no-progress", "--json"))
    # The session exported again, 150 times as long: its PNG (~140 kB) fits in the 200 kB left, its table (~265 kB) not.
    rewrite = shlex.join(
        [
            sys.executable,
            "-c",
            f"import numpy as np; np.savetxt({str(recording)!r}, "
            f"np.random.default_rng(1).normal(size=(60000, 4)), delimiter=',', fmt='%.5f')",
        ]
    )
    fill = f"head -c $(( $(df -B1 --output=avail {small} | tail -1) - 200000 )) /dev/zero > {small}/filler"
    script = f"{predict} >/dev/null && cp -r {out} {tmp_path}/before && {rewrite} && {fill} && {predict}"
    done = run_on_a_small_disk(small, ["sh", "-c", script], size="1m", then=f"cp -r {out} {tmp_path}/after")

    assert (tmp_path / "before").is_dir(), done.stderr
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    error = json.loads(done.stdout.strip().splitlines()[-1])["error"]
    assert error.startswith(f"{out}/R_0_C_0_EMG.csv: No space left on device"), error
    before, after = tmp_path / "before", tmp_path / "after"
    # Both of the earlier run, byte for byte: the PNG still pictures the table beside it.
    for name in ["R_0_C_0_EMG.png", "R_0_C_0_EMG.csv"]:
        assert (after / name).read_bytes() == (before / name).read_bytes(), name
    assert not [path.name for path in after.iterdir() if path.name.startswith(".")]
