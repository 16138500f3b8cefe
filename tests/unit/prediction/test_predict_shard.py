"""``biofound predict --shard I/N``: the slices of an array job predict every recording once, as one run does.

A tiny TinyMyo checkpoint carries an ``emg-csv`` chain (4 channels at 200 Hz, 0.2 s windows);
the recordings are small CSV files of different lengths, so the slices are balanced by size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.export_models import save_small
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.signals.chain import ChainConfig

CHANNELS = [f"EMG{index}" for index in range(1, 5)]


@pytest.fixture(scope="module")
def model_and_recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("predict-shard")
    config = ChainConfig(window_seconds=0.2, stride_seconds=0.1, l_freq=None, h_freq=None, notch_hz=(), units="native")
    chain = {"corpus": "emg-csv", "options": {"sfreq": 200.0}, **config.to_json_dict()}
    checkpoint = save_small(
        folder / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=chain, n_times=40
    )
    recordings = folder / "recordings"
    recordings.mkdir()
    rng = np.random.default_rng(0)
    for index in range(5):
        samples = rng.normal(size=(60 + 30 * index, len(CHANNELS)))
        np.savetxt(recordings / f"R_0_C_{index}_EMG.csv", samples, delimiter=",", fmt="%.5f")
    return checkpoint, recordings


def _predict(*args: str, env: dict[str, str] | None = None) -> dict:
    result = CliRunner().invoke(app, ["predict", *args, "--json", "--no-progress"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _tables(out: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(out.glob("*.csv"))}


def test_slices_predict_every_recording_once_and_equal_one_run(model_and_recordings, tmp_path: Path) -> None:
    checkpoint, recordings = model_and_recordings
    whole = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "whole"))
    sliced = tmp_path / "sliced"
    first = _predict(str(checkpoint), str(recordings), "--out", str(sliced), "--shard", "1/2")
    second = _predict(str(checkpoint), str(recordings), "--out", str(sliced), "--shard", "2/2")

    assert first["slice"] == "1/2" and second["slice"] == "2/2"
    assert first["predicted"] > 0 and second["predicted"] > 0
    assert first["predicted"] + second["predicted"] == whole["predicted"] == 5
    summaries = {
        name: json.loads((sliced / name).read_text()) for name in ("summary.slice-1-of-2.json", "summary.slice-2-of-2.json")
    }
    predicted = [entry["recording_id"] for summary in summaries.values() for entry in summary["recordings"]]
    assert sorted(predicted) == sorted(set(predicted)) and len(predicted) == 5
    assert not (sliced / "summary.json").exists()
    assert _tables(sliced) == _tables(tmp_path / "whole")


def test_a_run_after_the_slices_finds_them_done_and_auto_reads_slurm(model_and_recordings, tmp_path: Path) -> None:
    checkpoint, recordings = model_and_recordings
    environ = {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "1"}
    auto = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path), "--shard", "auto", env=environ)
    assert auto["slice"] == "1/1" and auto["predicted"] == 5
    assert (tmp_path / "summary.slice-1-of-1.json").is_file()
    again = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path))
    assert (again["predicted"], again["already_done"]) == (0, 5)


def test_a_bad_shard_is_refused_in_one_line(model_and_recordings, tmp_path: Path) -> None:
    checkpoint, recordings = model_and_recordings
    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings), "--out", str(tmp_path), "--shard", "3/2"])
    assert result.exit_code == 2
    assert "I must be between 1 and N" in result.output and "Traceback" not in result.output


def test_a_recording_left_out_for_another_ones_id_is_found_and_skipped_once_over_the_slices(
    model_and_recordings, tmp_path: Path
) -> None:
    checkpoint, recordings = model_and_recordings
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "R_0_C_0_EMG.csv").write_bytes((recordings / "R_0_C_0_EMG.csv").read_bytes())
    given = [str(checkpoint), str(recordings), str(copy / "R_0_C_0_EMG.csv")]

    whole = _predict(*given, "--out", str(tmp_path / "whole"))
    assert (whole["found"], whole["predicted"], whole["skipped_by_reason"]) == (6, 5, {"duplicate_id": 1})
    summary = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert (summary["found"], summary["skipped_by_reason"]) == (6, {"duplicate_id": 1})
    [skipped] = [entry for entry in summary["recordings"] if entry["status"] == "skipped"]
    assert "one table in" in skipped["message"] and "--out" in skipped["message"] and "--root" not in skipped["message"]

    slices = [_predict(*given, "--out", str(tmp_path / "sliced"), "--shard", f"{index}/2") for index in (1, 2)]
    assert sum(part["found"] for part in slices) == 6 and sum(part["skipped"] for part in slices) == 1
    again = _predict(*given, "--out", str(tmp_path / "sliced"))
    assert (again["found"], again["already_done"], again["skipped"]) == (6, 5, 1)


def test_a_folder_of_one_repetition_is_predicted_without_the_training_splits_warning(tmp_path: Path) -> None:
    """The model's chain keeps the training data's split_by_repetition; new recordings go to no split."""
    config = ChainConfig(window_seconds=0.2, stride_seconds=0.1, l_freq=None, h_freq=None, notch_hz=(), units="native")
    options = {"sfreq": 200.0, "split_by_repetition": {"train": [0, 1], "val": [2], "test": [3]}}
    chain = {"corpus": "emg-csv", "options": options, **config.to_json_dict()}
    checkpoint = save_small(
        tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=chain, n_times=40
    )
    session = tmp_path / "session"
    session.mkdir()
    np.savetxt(session / "R_0_C_1_EMG.csv", np.random.default_rng(0).normal(size=(80, 4)), delimiter=",", fmt="%.5f")

    for given in (session, session / "R_0_C_1_EMG.csv"):
        result = CliRunner().invoke(app, ["predict", str(checkpoint), str(given), "--out", str(tmp_path / "out"), "--force"])
        assert result.exit_code == 0, result.output
        assert "split_by_repetition" not in result.output and "warning" not in result.output, result.output


# predict whose first recording waits, inside the run, until the test lets it go: the run holds its --out meanwhile.
HELD_DURING_PREDICT = """
import sys, time
from pathlib import Path
import biofound_cli.prediction.run as run
from biofound_cli.__main__ import main
inside, go = Path(sys.argv[1]), Path(sys.argv[2])
prepare = run.prepare_recording
def prepare_and_wait(*args):
    inside.touch()
    for _ in range(6000):  # until the test lets it go (a safety bound, not a timing)
        if go.exists():
            break
        time.sleep(0.05)
    return prepare(*args)
run.prepare_recording = prepare_and_wait
sys.argv = ["biofound", *sys.argv[3:]]
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize("shard", [None, "1/2"])
def test_a_second_predict_of_the_same_slice_into_a_folder_is_refused_while_other_slices_run_beside(
    model_and_recordings, tmp_path: Path, shard: str | None
) -> None:
    """Two predicts into one --out (a resubmitted array task, two shells) both appended to one journal and both moved
    tables in; the slices of an array job share the folder by design, each with its own journal, and still do."""
    import subprocess
    import sys

    checkpoint, recordings = model_and_recordings
    out, inside, go = tmp_path / "out", tmp_path / "inside", tmp_path / "go"
    sliced = [] if shard is None else ["--shard", shard]
    command = ["predict", str(checkpoint), str(recordings), "--out", str(out), "--no-progress"]
    first = subprocess.Popen(
        [sys.executable, "-c", HELD_DURING_PREDICT, str(inside), str(go), *command, *sliced], stderr=subprocess.PIPE, text=True
    )
    try:
        while not inside.exists() and first.poll() is None:
            subprocess.run([sys.executable, "-c", "import time; time.sleep(0.1)"])
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        second = subprocess.run(
            [sys.executable, "-m", "biofound_cli", *command, *sliced, "--json"], capture_output=True, text=True, timeout=300
        )
        beside = (
            subprocess.run([sys.executable, "-m", "biofound_cli", *command, "--shard", "2/2"], capture_output=True, text=True)
            if shard is not None
            else None
        )
    finally:
        go.touch()
        _, first_err = first.communicate(timeout=300)

    assert second.returncode == 2, second.stderr
    [line] = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    line = line.removeprefix("error: ")
    for_slice = "" if shard is None else f" for slice {shard}"
    assert line.startswith(f"{out} is being predicted into{for_slice} by pid {first.pid} on "), line
    assert line.endswith("wait for that predict to end (or stop it), or choose another --out"), line
    assert json.loads(second.stdout)["exit_status"] == 2 and "Traceback" not in second.stderr
    assert first.returncode == 0, first_err
    if beside is not None:
        assert beside.returncode == 0, beside.stderr
    summaries = sorted(path.name for path in out.glob("summary*.json"))
    assert summaries == (["summary.json"] if shard is None else ["summary.slice-1-of-2.json", "summary.slice-2-of-2.json"])
    predicted = [entry["recording_id"] for name in summaries for entry in json.loads((out / name).read_text())["recordings"]]
    assert sorted(predicted) == sorted(set(predicted)) and len(predicted) == 5  # each recording once, by its own slice
    assert not list(out.glob(".*.lock")) and not list(out.glob("journal*"))  # no lock or journal left


# Holds --out as a predict of the slice argv[2] ("" for a whole run) holds it, until told to end.
HOLDING_OUT = """
import sys
from pathlib import Path
from biofound_cli.store.folder_lock import held_out_folder
from biofound_cli.store.slices import parse_slice
out = Path(sys.argv[1])
out.mkdir(exist_ok=True)
with held_out_folder(out, "predict", "predicted into", parse_slice(sys.argv[2]) if sys.argv[2] else None):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _holding(out: Path, shard: str | None):
    """A process holding ``out`` as a predict of ``shard`` does, once it says so."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDING_OUT, str(out), shard or ""],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


@pytest.mark.parametrize("shard", [None, "1/2"])
def test_a_second_predict_of_a_held_slice_is_refused_before_its_model_loads(
    model_and_recordings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shard: str | None
) -> None:
    # The lock was taken once the model had loaded and the recordings were listed: with a big model or --compile the
    # second run of a slice loaded for minutes to be refused.
    import biofound_cli.prediction.model as model_module

    loads = []
    monkeypatch.setattr(model_module, "load_prediction_model", lambda *args, **kwargs: loads.append(args) or 1 / 0)
    checkpoint, recordings = model_and_recordings
    out = tmp_path / "out"
    sliced = [] if shard is None else ["--shard", shard]
    holder = _holding(out, shard)
    try:
        result = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings), "--out", str(out), *sliced])
    finally:
        holder.communicate("\n", timeout=60)
    assert result.exit_code == 2, result.output
    for_slice = "" if shard is None else f" for slice {shard}"
    assert f"{out} is being predicted into{for_slice} by pid {holder.pid} on " in " ".join(result.stderr.split())
    assert loads == []


@pytest.mark.parametrize(
    ("held", "second", "holder_named"),
    [
        ("1/2", None, ", for slice 1/2; wait for that predict to end"),
        (None, "1/2", ", without --shard; wait for that predict to end"),
        ("1/2", "1/3", ", for slice 1/2; wait for that predict to end"),
        ("1/2", "2/2", None),
    ],
)
def test_a_whole_run_and_slices_of_another_count_refuse_each_other_in_one_out(
    model_and_recordings, tmp_path: Path, held: str | None, second: str | None, holder_named: str | None
) -> None:
    # Each took only its own slice's lock (a whole run its own): a whole run beside slices, or slices 1/2 beside 1/3,
    # predicted the same recordings into one folder, each writing its summary as if alone.
    checkpoint, recordings = model_and_recordings
    out = tmp_path / "out"
    sliced = [] if second is None else ["--shard", second]
    holder = _holding(out, held)
    try:
        result = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings), "--out", str(out), *sliced])
    finally:
        holder.communicate("\n", timeout=60)
    if holder_named is None:  # the slices of one array job run side by side, as before
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    refusal = " ".join(result.stderr.split())
    assert f"{out} is being predicted into by pid {holder.pid} on " in refusal and holder_named in refusal, refusal
    assert not list(out.glob("summary*")) and not list(out.glob("*.csv"))


def test_info_of_a_predict_folder_shows_the_windows_this_run_predicted_and_that_none_runs_there(
    model_and_recordings, tmp_path: Path
) -> None:
    """`info` of a predict --out folder showed `windows` alone, not the `windows_predicted` its summary.json holds
    beside them (a re-run that found every recording done predicted none of them), nor whether a predict runs there."""
    checkpoint, recordings = model_and_recordings
    out = tmp_path / "out"
    command = [str(checkpoint), str(recordings), "--out", str(out), "--workers", "2"]
    for predicted in (True, False):  # a run, then a re-run that finds every recording done
        result = _predict(*command)
        described = json.loads(CliRunner().invoke(app, ["info", str(out), "--json"]).stdout)
        assert described["windows"] == result["windows"] > 0, described
        assert described["windows_predicted"] == result["windows_predicted"] == (result["windows"] if predicted else 0)
        assert described["predicting"] == "not running", described

    shown = CliRunner().invoke(app, ["info", str(out)])
    assert shown.exit_code == 0, shown.output
    rows = [" ".join(line.replace("│", " ").split()) for line in shown.stdout.splitlines()]
    assert any("windows_predicted 0" in row for row in rows) and any("predicting not running" in row for row in rows), rows


@pytest.mark.slow
@pytest.mark.parametrize(
    ("before", "held", "slice"), [([], ["--force"], ""), (["--shard", "1/2"], ["--shard", "2/2"], ", for slice 2/2")]
)
def test_info_of_a_predict_folder_names_the_predict_writing_into_it_now(
    model_and_recordings, tmp_path: Path, before: list[str], held: list[str], slice: str
) -> None:
    """`info` did not say whether a predict writes into the folder now, though predict holds its lock there (one per
    slice), which names it: a user could not tell a folder being written from a finished one."""
    import socket
    import subprocess
    import sys

    checkpoint, recordings = model_and_recordings
    out, inside, go = tmp_path / "out", tmp_path / "inside", tmp_path / "go"
    command = ["predict", str(checkpoint), str(recordings), "--out", str(out), "--no-progress", "--workers", "2"]
    _predict(*command[1:], *before)  # a finished run: its summary makes the folder a predict folder
    first = subprocess.Popen(
        [sys.executable, "-c", HELD_DURING_PREDICT, str(inside), str(go), *command, *held], stderr=subprocess.PIPE, text=True
    )
    try:
        while not inside.exists() and first.poll() is None:
            subprocess.run([sys.executable, "-c", "import time; time.sleep(0.1)"])
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        during = subprocess.run(
            [sys.executable, "-m", "biofound_cli", "info", str(out), "--json"], capture_output=True, text=True
        )
    finally:
        go.touch()
        _, first_err = first.communicate(timeout=300)

    assert during.returncode == 0 and first.returncode == 0, (during.stderr, first_err)
    said = json.loads(during.stdout)["predicting"]
    assert said.startswith(f"running: pid {first.pid} on {socket.gethostname()}, started ") and said.endswith(slice), said
    after = CliRunner().invoke(app, ["info", str(out), "--json"])
    assert json.loads(after.stdout)["predicting"] == "not running", after.output
