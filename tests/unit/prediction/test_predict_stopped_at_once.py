"""``biofound predict --workers 2`` stopped at once by a second Ctrl-C, then run again into the same folder.

A first Ctrl-C lets the recordings in flight finish; a second one a while after ends the process at
once (status 130, no summary). The journal beside the tables is what the next run resumes from: it
must end with every recording's table and PNG, whole, and the same tables as a run never stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.export_models import save_small
from fixtures.process_group import biofound, stopped_at_once

from biofound_cli.signals.chain import ChainConfig

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")]

CHANNELS = [f"EMG{index}" for index in range(1, 5)]
N_RECORDINGS = 6
FIRST = 2
"""The recordings the stopped run predicts: its workers hold every later one for ever."""

# predict whose pool workers prepare the first recordings and hold the others for ever, so the first Ctrl-C
# can only wait for them, whatever the machine's speed, until the second one.
LATER_RECORDINGS_HELD = f"""
import sys, time
import biofound_cli.prediction.run as run
from biofound_cli.__main__ import main
prepare = run.prepare_recording
def held_after_the_first(corpus_name, options, ref, *args):
    if int(ref.recording_id.split("_")[3]) >= {FIRST}:
        while True:
            time.sleep(1)
    return prepare(corpus_name, options, ref, *args)
run.prepare_recording = held_after_the_first
sys.argv = ["biofound", *sys.argv[1:]]
main()
"""


def _chain() -> dict:
    config = ChainConfig(window_seconds=0.2, stride_seconds=0.1, l_freq=None, h_freq=None, notch_hz=(), units="native")
    return {"corpus": "emg-csv", "options": {"sfreq": 200.0}, **config.to_json_dict()}


def _command(checkpoint: Path, recordings: Path, out: Path) -> list[str]:
    return ["predict", str(checkpoint), str(recordings), "--out", str(out), "--workers", "2", "--json", "--no-progress"]


def _journalled(out: Path) -> int:
    journal = out / "journal.jsonl"
    return journal.read_text().count("\n") if journal.is_file() else 0


def _outputs(out: Path) -> dict[str, bytes]:
    """Every table of ``out`` by name, its bytes; the PNGs by name, checked to be whole."""
    pngs = sorted(out.glob("*.png"))
    assert all(path.read_bytes().endswith(b"IEND\xaeB`\x82") for path in pngs), pngs
    return {path.name: path.read_bytes() for path in sorted(out.glob("*.csv"))} | {path.name: b"" for path in pngs}


def test_a_run_stopped_at_once_by_a_second_ctrl_c_is_finished_by_the_next_run_as_if_never_stopped(tmp_path) -> None:
    from biofound_cli.stop_signals import AT_ONCE

    checkpoint = save_small(
        tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=_chain(), n_times=40
    )
    recordings = tmp_path / "rec"
    recordings.mkdir()
    rng = np.random.default_rng(0)
    for index in range(N_RECORDINGS):
        np.savetxt(recordings / f"R_0_C_{index}_EMG.csv", rng.normal(size=(600, 4)), delimiter=",", fmt="%.4f")
    out, never_stopped = tmp_path / "out", tmp_path / "never-stopped"

    launched = [sys.executable, "-c", LATER_RECORDINGS_HELD, *_command(checkpoint, recordings, out)]
    status, lines = stopped_at_once(launched, lambda: _journalled(out) >= FIRST, "the first recordings' tables moved in")

    stderr = "".join(lines)
    assert status == 130, stderr
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == [f"error: {AT_ONCE}"], stderr
    assert not (out / "summary.json").exists() and _journalled(out) == FIRST
    rerun = subprocess.run(biofound(*_command(checkpoint, recordings, out)), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    printed = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert (printed["already_done"], printed["predicted"]) == (FIRST, N_RECORDINGS - FIRST), printed
    whole = subprocess.run(biofound(*_command(checkpoint, recordings, never_stopped)), capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr

    assert _outputs(out) == _outputs(never_stopped) and len(_outputs(out)) == 2 * N_RECORDINGS
    assert sorted(path.name for path in out.iterdir() if not path.name.endswith((".csv", ".png"))) == ["summary.json"]
    resumed, reference = (json.loads((folder / "summary.json").read_text()) for folder in (out, never_stopped))
    assert not resumed["interrupted"] and resumed["windows"] == reference["windows"]
    same = ("recording_id", "windows", "mean_probabilities", "predicted_label")
    assert [{key: entry[key] for key in same} for entry in resumed["recordings"]] == [
        {key: entry[key] for key in same} for entry in reference["recordings"]
    ]
