"""What ``biofound predict`` writes for each kind of model, in each format, and the int8 agreement.

Tiny checkpoints carry an ``emg-csv`` chain (4 channels at 200 Hz); the recordings are small CSV
files the tests write. Per-channel heads (FEMBA ``mc``/``mmc``) give a probability per channel
and class, through PyTorch and, exported, through onnxruntime; a pre-training model (no head)
gives a reconstruction error per window; ``--format
parquet`` writes the same table as CSV; an int8 ONNX graph reports its agreement with the float
graph beside it.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest
from fixtures.brainvision import write_brainvision
from fixtures.eeglab import write_eeglab
from fixtures.emg_csv import CHANNELS, emg_chain, emg_model, write_emg_recordings
from fixtures.export_models import N_TIMES, save_small
from fixtures.process_group import (
    assert_group_gone,
    assert_terminated,
    biofound,
    biofound_signalled_as_it_calls,
    start_in_own_group,
    terminate_group,
    wait_until,
)
from fixtures.small_disk import run_on_a_small_disk
from typer.testing import CliRunner

from biofound_cli.atomic import host_label, parse_temporary_name
from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus
from biofound_cli.plural import counted
from biofound_cli.signals.chain import ChainConfig


def _predict(*args: str) -> dict:
    result = CliRunner().invoke(app, ["predict", *args, "--workers", "2", "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    return json.loads(Path(json.loads(result.stdout.strip().splitlines()[-1])["summary"]).read_text())


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(("task", "num_classes", "classes"), [("mmc", 3, ["a", "b", "c"]), ("mc", 2, ["clean", "artifact"])])
def test_a_per_channel_head_gives_a_probability_per_channel_and_class(tmp_path, task, num_classes, classes) -> None:
    checkpoint = save_small(
        tmp_path / "model.safetensors",
        "femba",
        task=task,
        num_classes=num_classes,
        ch_names=CHANNELS,
        sfreq=200.0,
        preprocessing=emg_chain(256),
        label_names=classes,
    )
    summary = _predict(str(checkpoint), str(write_emg_recordings(tmp_path / "rec", 700)), "--out", str(tmp_path / "out"))

    rows = _rows(tmp_path / "out" / "R_0_C_0_EMG.csv")
    assert len(rows) == summary["recordings"][0]["windows"] > 0
    columns = [f"p_{channel}/{name}" for channel in CHANNELS for name in classes]
    assert [name for name in rows[0] if name.startswith("p_")] == columns
    assert [name for name in rows[0] if name.startswith("predicted")] == [f"predicted_{channel}" for channel in CHANNELS]
    for row in rows:
        for channel in CHANNELS:
            p = np.array([float(row[f"p_{channel}/{name}"]) for name in classes])
            assert abs(p.sum() - 1) < 1e-5 and row[f"predicted_{channel}"] == classes[int(p.argmax())]
    entry = summary["recordings"][0]
    assert set(entry["predicted_labels"]) == set(CHANNELS) and len(entry["mean_probabilities"]) == len(columns)
    assert (tmp_path / "out" / "R_0_C_0_EMG.png").stat().st_size > 0

    # The same checkpoint exported to ONNX predicts the same table through onnxruntime.
    pytest.importorskip("onnxruntime")
    from biofound_cli.export import export_checkpoint

    export_checkpoint(checkpoint, "onnx", tmp_path / "export")
    onnx = _predict(str(tmp_path / "export"), str(tmp_path / "rec"), "--out", str(tmp_path / "onnx"))
    assert onnx["runtime"] == "onnxruntime" and onnx["predicted"] == summary["predicted"] == 2
    # Described alike whichever way it runs (the graph's name, which PNG titles add, was in the ONNX one twice).
    assert onnx["model_description"] == summary["model_description"]
    onnx_rows = _rows(tmp_path / "onnx" / "R_0_C_0_EMG.csv")
    assert list(onnx_rows[0]) == list(rows[0])
    np.testing.assert_allclose(
        [[float(row[name]) for name in columns] for row in onnx_rows],
        [[float(row[name]) for name in columns] for row in rows],
        atol=1e-4,
    )
    assert [row[f"predicted_{CHANNELS[0]}"] for row in onnx_rows] == [row[f"predicted_{CHANNELS[0]}"] for row in rows]


def test_a_pretraining_model_gives_a_reconstruction_error_per_window_whatever_the_batch(tmp_path) -> None:
    checkpoint = emg_model(tmp_path / "model.safetensors", task="pretrain", num_classes=None)
    recordings = write_emg_recordings(tmp_path / "rec", 300)
    one = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "one"), "--batch-size", "1")
    many = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "many"), "--batch-size", "64")

    rows = _rows(tmp_path / "one" / "R_0_C_0_EMG.csv")
    assert list(rows[0]) == ["recording", "window_index", "start_seconds", "end_seconds", "reconstruction_error"]
    errors = np.array([float(row["reconstruction_error"]) for row in rows])
    assert len(errors) == one["recordings"][0]["windows"] > 1 and np.all(np.isfinite(errors)) and np.all(errors > 0)
    # The same mask for every window: a window's error does not depend on what it is batched with.
    again = np.array([float(row["reconstruction_error"]) for row in _rows(tmp_path / "many" / "R_0_C_0_EMG.csv")])
    np.testing.assert_allclose(errors, again, rtol=1e-5)
    # The mean of the table's values, summed in float64 as evaluate sums: it was their float32 mean, off in the 8th digit.
    assert one["recordings"][0]["mean_reconstruction_error"] == pytest.approx(errors.mean(), rel=1e-12)
    assert one["label_names"] == [] and many["predicted"] == 2


def test_a_pretraining_export_folder_with_a_graph_too_predicts_with_its_weights(tmp_path) -> None:
    """`export --recipe NAME_pretrain.toml` writes model.safetensors, which `predict EXPORT` ran; exporting the run
    to onnx into the same folder as well made `predict EXPORT` refuse ("model.onnx is a pre-training graph; predict
    its reconstruction error with the checkpoint it was exported from"), the checkpoint being right beside it."""
    pytest.importorskip("onnxruntime")
    checkpoint = emg_model(tmp_path / "model.safetensors", task="pretrain", num_classes=None)
    export = tmp_path / "export"
    for fmt in ("safetensors", "onnx"):
        result = CliRunner().invoke(app, ["export", str(checkpoint), "--out", str(export), "-f", fmt, "--quiet"])
        assert result.exit_code == 0, result.output
    recordings = write_emg_recordings(tmp_path / "rec", 300)

    predicted = _predict(str(export), str(recordings), "--out", str(tmp_path / "out"))

    assert predicted["predicted"] == 2 and predicted["runtime"] == "pytorch"
    assert predicted["recordings"][0]["mean_reconstruction_error"] > 0
    alone = CliRunner().invoke(app, ["predict", str(export / "model.onnx"), str(recordings), "--out", str(tmp_path / "g")])
    assert alone.exit_code == 2 and "is a pre-training graph" in alone.output  # the graph alone still cannot
    # ... and is told the command that runs the checkpoint config.json names.
    assert f"(`biofound predict {checkpoint.resolve()} RECORDINGS --out DIR`)" in " ".join(alone.stderr.split())


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("predict-classifier")
    checkpoint = emg_model(folder / "model.safetensors")
    return checkpoint, write_emg_recordings(folder / "rec", 400)


def test_each_recordings_png_is_titled_with_the_model_the_recording_and_its_windows(classifier, tmp_path, monkeypatch) -> None:
    # Evaluate's PNGs name the model, the split and N; predict's named the model and the recording only.
    # The recording by its file's name: UCI EMG's subjects 01 and 31 each holding 1_raw_data_....txt gave PNGs
    # titled alike; it is named by its id, as its PNG, its table and the summary name it.
    from biofound_cli.prediction import outputs

    titles: dict[str, str] = {}
    save = outputs.save_png

    def keep_title(figure, path):
        # Written under a temporary name beside the table's, and moved in with it.
        written = parse_temporary_name(Path(path).name)
        titles[Path(written.target if written else path).stem] = figure.axes[0].get_title()
        return save(figure, path)

    monkeypatch.setattr(outputs, "save_png", keep_title)
    checkpoint, recordings = classifier
    for subject in ("s01", "s31"):
        shutil.copytree(recordings, tmp_path / "rec" / subject)
    pattern = r"preprocess.options.pattern=(?P<subject>s\d+)/R_(?P<repetition>\d+)_C_(?P<class>\d+)_EMG\.csv"
    summary = _predict(str(checkpoint), str(tmp_path / "rec"), "--set", pattern, "--out", str(tmp_path / "out"))
    assert summary["predicted"] == 4 and len({title.split(" on ")[1] for title in titles.values()}) == 4
    for entry in summary["recordings"]:
        title = titles[entry["recording_id"]]
        assert title.startswith("TinyMyo") and f"({checkpoint.name}) on {entry['recording_id']}, " in title
        assert title.endswith(f", {entry['windows']} windows"), title


@pytest.mark.parametrize(("scores", "plotted"), [((5, 3), ["artifact"]), ((5, 3, 2), ["clean", "artifact"])])
def test_a_per_channel_png_plots_the_classes_whose_maximum_over_channels_means_something(scores, plotted) -> None:
    # An mc head's PNG drew "clean (max over channels)", near 1 whenever any one channel is clean.
    from biofound_cli.prediction.outputs import score_table

    probabilities = np.random.default_rng(0).dirichlet([1, 1], size=scores[:2])
    given = probabilities[..., 1] if len(scores) == 2 else probabilities
    table = score_table("mc" if len(scores) == 2 else "mmc", given, ["clean", "artifact"], ["C3", "C4", "O1"])
    assert table.plot_names == [f"{name} (max over channels)" for name in plotted]
    np.testing.assert_allclose(table.plot_values[:, -1], probabilities[..., 1].max(axis=1))
    assert table.plot_values.shape == (5, len(plotted))


def test_parquet_holds_the_same_table_as_csv(classifier, tmp_path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    checkpoint, recordings = classifier
    _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "csv"))
    summary = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "pq"), "--format", "parquet")

    assert summary["format"] == "parquet" and summary["predicted"] == 2
    table = pq.read_table(tmp_path / "pq" / "R_0_C_0_EMG.parquet").to_pydict()
    rows = _rows(tmp_path / "csv" / "R_0_C_0_EMG.csv")
    assert list(table) == list(rows[0])
    assert table["window_index"] == [int(row["window_index"]) for row in rows]
    assert table["predicted_label"] == [row["predicted_label"] for row in rows]
    np.testing.assert_allclose(table["p_0"], [float(row["p_0"]) for row in rows], rtol=1e-12)
    again = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "pq"), "--format", "parquet")
    assert (again["predicted"], again["already_done"]) == (0, 2)


def test_a_rerun_predicts_again_a_recording_rewritten_since_and_only_it(classifier, tmp_path) -> None:
    checkpoint, _ = classifier
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    # Two workers read the recordings, as a user's run does: each stamp comes back from a worker.
    first = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--workers", "2")
    before = (tmp_path / "out" / "R_0_C_1_EMG.csv").read_text()
    # The session exported again, longer and with other samples: its old predictions no longer describe it.
    rewritten = np.random.default_rng(1).normal(size=(600, len(CHANNELS)))
    np.savetxt(recordings / "R_0_C_1_EMG.csv", rewritten, delimiter=",", fmt="%.5f")

    again = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--workers", "2")

    assert (again["predicted"], again["already_done"]) == (1, 1)
    status = {entry["recording_id"]: entry["status"] for entry in again["recordings"]}
    assert status == {"R_0_C_0_EMG": "already_done", "R_0_C_1_EMG": "predicted"}
    assert again["windows"] > first["windows"]
    assert (tmp_path / "out" / "R_0_C_1_EMG.csv").read_text() != before
    third = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--workers", "2")
    assert (third["predicted"], third["already_done"]) == (0, 2)


def _edf_model_and_brainvision_recordings(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A TinyMyo checkpoint whose chain reads EDF-family files, and BrainVision recordings a, b (of the
    returned signal) in tmp_path/rec."""
    chain = {**emg_chain(40), "corpus": "edf", "options": {}}
    checkpoint = save_small(
        tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=chain, n_times=40
    )
    signal = np.random.default_rng(0).normal(scale=50.0, size=(len(CHANNELS), 400))
    for name in ("a", "b"):
        write_brainvision(tmp_path / "rec" / f"{name}.vhdr", signal, 200.0, CHANNELS)
    return checkpoint, signal


def test_a_rerun_predicts_again_a_brainvision_recording_whose_data_file_is_rewritten(tmp_path) -> None:
    checkpoint, signal = _edf_model_and_brainvision_recordings(tmp_path)
    _predict(str(checkpoint), str(tmp_path / "rec"), "--out", str(tmp_path / "out"), "--workers", "2")
    before, stamp = (tmp_path / "out" / "a.csv").read_text(), (tmp_path / "rec" / "a.eeg").stat()
    # Two workers read the recordings, as a user's run does: the companion files are stamped in a worker.
    # Exported again with other samples, the header untouched: the same size, and an older time (rsync -t).
    (tmp_path / "rec" / "a.eeg").write_bytes(np.asarray(-signal[::-1].T, dtype="<f4").tobytes())
    os.utime(tmp_path / "rec" / "a.eeg", ns=(stamp.st_atime_ns, stamp.st_mtime_ns - 10**9))

    again = _predict(str(checkpoint), str(tmp_path / "rec"), "--out", str(tmp_path / "out"), "--workers", "2")

    assert {entry["recording_id"]: entry["status"] for entry in again["recordings"]} == {"a": "predicted", "b": "already_done"}
    assert (tmp_path / "out" / "a.csv").read_text() != before
    third = _predict(str(checkpoint), str(tmp_path / "rec"), "--out", str(tmp_path / "out"), "--workers", "2")
    assert (third["predicted"], third["already_done"]) == (0, 2)


def test_a_recording_skipped_now_leaves_no_table_or_png_of_an_earlier_run(classifier, tmp_path) -> None:
    checkpoint, _ = classifier
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    out = tmp_path / "out"
    _predict(str(checkpoint), str(recordings), "--out", str(out))
    # Cut to 10 samples, shorter than the model's 40-sample window: the old table no longer describes it.
    np.savetxt(recordings / "R_0_C_1_EMG.csv", np.zeros((10, len(CHANNELS))), delimiter=",", fmt="%.1f")

    again = _predict(str(checkpoint), str(recordings), "--out", str(out))

    assert (again["already_done"], again["skipped_by_reason"]) == (1, {"too_short": 1})
    assert sorted(path.name for path in out.glob("R_*")) == ["R_0_C_0_EMG.csv", "R_0_C_0_EMG.png"]


def test_predict_prints_its_counts_once_in_the_summary_table(classifier, tmp_path) -> None:
    """tables28: a "Recordings" table (found, predicted, already done, skipped, windows) and a "Skipped, by reason"
    one came before the summary table, which gives the same counts under the names of --json."""
    checkpoint, recordings = classifier
    folder = tmp_path / "rec"
    folder.mkdir()
    for path in recordings.glob("*.csv"):
        (folder / path.name).write_bytes(path.read_bytes())
    np.savetxt(folder / "R_0_C_2_EMG.csv", np.zeros((10, len(CHANNELS))), delimiter=",")  # under one window: skipped

    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(folder), "--out", str(tmp_path / "out"), "-j", "2"])

    assert result.exit_code == 0, result.output
    table_lines = [line for line in result.stdout.splitlines() if line.startswith(("│", "┃"))]
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in table_lines if line.startswith("│")}
    assert (rows["found"], rows["predicted"], rows["skipped"]) == ("3", "2", "1"), result.stdout
    assert rows["skipped_by_reason"] == "too_short=1", rows
    assert [line.split()[1] for line in table_lines if line.startswith("┃")] == ["field"], result.stdout
    assert "Skipped, by reason" not in result.stdout and "Recordings" not in result.stdout


def test_a_rerun_in_another_format_replaces_the_earlier_tables_so_the_folder_holds_what_its_summary_lists(
    classifier, tmp_path
) -> None:
    """A re-run into the same --out with --format jsonl left the CSV tables of the first run beside the new
    ones, listed by no summary: a researcher opening DIR/*.csv read the earlier run's predictions."""
    checkpoint, _ = classifier
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    out = tmp_path / "out"
    command = ["predict", str(checkpoint), str(recordings), "--out", str(out), "--workers", "2", "--no-progress"]
    assert CliRunner().invoke(app, command).exit_code == 0

    result = CliRunner().invoke(app, [*command, "--format", "jsonl"])

    assert result.exit_code == 0, result.output
    assert f"{out}: removed 2 tables (.csv) an earlier run wrote in another --format" in " ".join(result.output.split())
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["format"], summary["predicted"]) == ("jsonl", 2)
    tables = sorted(path.name for path in out.glob("R_*") if path.suffix != ".png")
    assert (
        tables
        == sorted(Path(entry["output"]).name for entry in summary["recordings"])
        == [
            "R_0_C_0_EMG.jsonl",
            "R_0_C_1_EMG.jsonl",
        ]
    )
    # A kill between a table moving in and the earlier one's removal leaves both: the re-run removes it.
    (out / "R_0_C_1_EMG.csv").write_text("recording,window_index\n")
    # A recording cut below the model's window is skipped: none of its tables is left, in any format.
    np.savetxt(recordings / "R_0_C_0_EMG.csv", np.zeros((10, len(CHANNELS))), delimiter=",", fmt="%.1f")
    again = _predict(str(checkpoint), str(recordings), "--out", str(out), "--format", "jsonl")
    assert (again["already_done"], again["skipped_by_reason"]) == (1, {"too_short": 1})
    assert sorted(path.name for path in out.glob("R_*")) == ["R_0_C_1_EMG.jsonl", "R_0_C_1_EMG.png"]


def test_a_run_on_some_recordings_keeps_the_others_tables_in_the_summary_while_they_are_there(classifier, tmp_path) -> None:
    """A run on one file (or a new recording) into an --out holding an earlier run's tables wrote a summary.json
    of its own recordings only: the others' tables stayed in the folder, listed nowhere, and a whole re-run
    predicted them again."""
    checkpoint, _ = classifier
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    out = tmp_path / "out"

    def listed() -> list[str]:
        summary = json.loads((out / "summary.json").read_text())
        return sorted(Path(entry["output"]).name for entry in summary["recordings"])

    def tables() -> list[str]:
        return sorted(path.name for path in out.glob("R_*") if path.suffix != ".png")

    assert _predict(str(checkpoint), str(recordings), "--out", str(out))["predicted"] == 2
    one = _predict(str(checkpoint), str(recordings / "R_0_C_0_EMG.csv"), "--out", str(out), "--force")
    assert (one["found"], one["predicted"]) == (1, 1)  # the counts are this run's
    assert listed() == tables() == ["R_0_C_0_EMG.csv", "R_0_C_1_EMG.csv"]
    added = recordings / "R_0_C_2_EMG.csv"
    np.savetxt(added, np.random.default_rng(1).normal(size=(400, 4)), delimiter=",", fmt="%.5f")
    assert _predict(str(checkpoint), str(added), "--out", str(out))["predicted"] == 1
    assert listed() == tables() == ["R_0_C_0_EMG.csv", "R_0_C_1_EMG.csv", "R_0_C_2_EMG.csv"]
    whole = _predict(str(checkpoint), str(recordings), "--out", str(out))
    assert (whole["predicted"], whole["already_done"]) == (0, 3)
    described = json.loads(CliRunner().invoke(app, ["info", str(out), "--json"]).stdout)
    assert (described["found"], described["tables"], described["tables_missing"]) == (3, 3, [])
    # A table removed by hand is dropped from the summary; one rewritten since (by another tool) too.
    (out / "R_0_C_1_EMG.csv").unlink()
    (out / "R_0_C_2_EMG.csv").write_text("recording,window_index\n")
    _predict(str(checkpoint), str(recordings / "R_0_C_0_EMG.csv"), "--out", str(out))
    assert listed() == ["R_0_C_0_EMG.csv"]
    # Another model's (or format's) tables cannot be listed under this run's model: one line counts them.
    assert _predict(str(checkpoint), str(recordings), "--out", str(out), "--force")["predicted"] == 3
    result = CliRunner().invoke(
        app, ["predict", str(checkpoint), str(added), "--out", str(out), "--format", "jsonl", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert f"{out}: summary.json lists this run's tables, not the 2 tables an earlier run with another model, --format" in (
        " ".join(result.output.split())
    )
    assert listed() == ["R_0_C_2_EMG.jsonl"]


def _records(folder: Path, fmt: str) -> list[dict]:
    """One recording's table as records, read back the way a user's tool reads each format."""
    path = folder / f"R_0_C_0_EMG.{fmt}"
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if fmt == "parquet":
        return pytest.importorskip("pyarrow.parquet").read_table(path).to_pylist()
    numbers = {"window_index": int}
    return [{name: numbers.get(name, _number_or_text)(value) for name, value in row.items()} for row in _rows(path)]


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


@pytest.mark.parametrize("task", ["mcc", "regression"])
def test_every_format_holds_the_same_record(tmp_path, task) -> None:
    """JSONL and Parquet wrote a regression head's predicted value as text ("0.123457"); CSV reads it as a number."""
    regression = task == "regression"
    checkpoint = emg_model(
        tmp_path / "model.safetensors",
        task=task,
        num_classes=1 if regression else 3,
        overrides={"reg_target_len": 1} if regression else None,
        label_names=None if regression else ["fist", "open", "rest"],
    )
    recordings = write_emg_recordings(tmp_path / "rec", 200)
    formats = ["csv", "jsonl"] + (["parquet"] if _has_pyarrow() else [])
    tables = {}
    for fmt in formats:
        _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / fmt), "--format", fmt)
        tables[fmt] = _records(tmp_path / fmt, fmt)
    csv_records = tables["csv"]
    if regression:
        assert list(csv_records[0])[4:] == ["predicted_label", "prediction"]
    else:
        assert list(csv_records[0])[4:] == ["predicted_label", "p_fist", "p_open", "p_rest"]
    for fmt, records in tables.items():
        assert [list(record) for record in records] == [list(record) for record in csv_records], fmt
        for record, expected in zip(records, csv_records, strict=True):
            assert type(record["predicted_label"]) is type(expected["predicted_label"]), fmt
            assert isinstance(record["predicted_label"], float if regression else str), fmt
            for name, value in expected.items():
                if isinstance(value, float):
                    assert record[name] == pytest.approx(value, rel=1e-6), (fmt, name)
                else:
                    assert record[name] == value, (fmt, name)
    if regression:
        assert all(record["predicted_label"] == record["prediction"] for record in tables["jsonl"])
    # A regression head's one output is no class: summary.json listed label_names ["0"].
    summary = json.loads((tmp_path / "csv" / "summary.json").read_text())
    assert summary["label_names"] == ([] if regression else ["fist", "open", "rest"])


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def test_parquet_without_pyarrow_is_refused_in_one_line(classifier, tmp_path) -> None:
    checkpoint, recordings = classifier
    # A Python whose import of pyarrow fails, as on an installation without the parquet extra.
    program = (
        "import sys, importlib.abc\n"
        "class NoArrow(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pyarrow' or name.startswith('pyarrow.'):\n"
        "            raise ImportError('No module named pyarrow')\n"
        "sys.meta_path.insert(0, NoArrow())\n"
        "from biofound_cli.cli.app import main\n"
        "sys.argv = ['biofound', *sys.argv[1:]]\n"
        "main()\n"
    )
    args = ["predict", str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--format", "parquet"]
    result = subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip()
    assert "pip install pyarrow" in message and "Traceback" not in message
    assert len(message.splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.parquet"))


def test_an_int8_graph_reports_its_agreement_with_the_float_graph(classifier, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from biofound_cli.export import export_checkpoint

    checkpoint, recordings = classifier
    export = tmp_path / "export"
    export_checkpoint(checkpoint, "onnx", export, quantize="int8")
    floats = _predict(str(export), str(recordings), "--out", str(tmp_path / "float"))
    int8 = _predict(str(export / "model.int8.onnx"), str(recordings), "--out", str(tmp_path / "int8"))

    assert floats.get("int8_agreement") is None and int8["runtime"] == "onnxruntime"
    agreement = int8["int8_agreement"]
    assert agreement["reference"] == "model.onnx" and agreement["windows"] == int8["windows"] > 0
    # The agreement is that of the int8 table with the float graph's table, window by window.
    labels = ["p_0", "p_1", "p_2"]
    ours, theirs = [], []
    for name in ("R_0_C_0_EMG", "R_0_C_1_EMG"):
        ours += [[float(row[k]) for k in labels] for row in _rows(tmp_path / "int8" / f"{name}.csv")]
        theirs += [[float(row[k]) for k in labels] for row in _rows(tmp_path / "float" / f"{name}.csv")]
    ours_array, theirs_array = np.array(ours), np.array(theirs)
    percent = 100 * np.mean(ours_array.argmax(axis=1) == theirs_array.argmax(axis=1))
    assert agreement["argmax_agreement_percent"] == pytest.approx(percent, abs=1e-3)
    assert agreement["max_probability_diff"] == pytest.approx(np.abs(ours_array - theirs_array).max(), abs=1e-6)
    assert agreement["max_probability_diff"] < 0.5
    per_recording = [entry["int8_agreement"]["windows"] for entry in int8["recordings"]]
    assert sum(per_recording) == agreement["windows"]


def test_an_int8_graphs_agreement_covers_the_recordings_an_earlier_run_predicted_as_its_windows_do(classifier, tmp_path):
    """A run that found some recordings done (a re-run, a run resumed after a stop) reported the agreement of the ones
    it predicted last, beside windows counting all; one that found all done said max_probability_diff 0.0 over 0."""
    pytest.importorskip("onnxruntime")
    from biofound_cli.export import export_checkpoint

    checkpoint, recordings = classifier
    graph = str(tmp_path / "export" / "model.int8.onnx")
    export_checkpoint(checkpoint, "onnx", tmp_path / "export", quantize="int8")
    whole = _predict(graph, str(recordings), "--out", str(tmp_path / "whole"))["int8_agreement"]
    _predict(graph, str(recordings / "R_0_C_0_EMG.csv"), "--out", str(tmp_path / "parts"))
    rest = _predict(graph, str(recordings), "--out", str(tmp_path / "parts"))
    again = _predict(graph, str(recordings), "--out", str(tmp_path / "parts"))

    assert (rest["already_done"], rest["predicted"], again["already_done"]) == (1, 1, 2)
    for summary in (rest, again):
        agreement = summary["int8_agreement"]
        assert agreement["windows"] == whole["windows"] == summary["windows"] > 0
        assert agreement["max_probability_diff"] == whole["max_probability_diff"]
        assert agreement["argmax_agreement_percent"] == pytest.approx(whole["argmax_agreement_percent"], abs=1e-3)


def test_an_int8_regression_graph_reports_its_largest_output_difference_not_a_probabilitys(tmp_path) -> None:
    """A regression head's int8 agreement called the largest difference of its predicted values ``max_probability_diff``."""
    pytest.importorskip("onnxruntime")
    from biofound_cli.export import export_checkpoint

    checkpoint = emg_model(tmp_path / "model.safetensors", task="regression", num_classes=2, label_names=["force", "angle"])
    recordings = write_emg_recordings(tmp_path / "rec", 200)
    export_checkpoint(checkpoint, "onnx", tmp_path / "export", quantize="int8")
    floats = _predict(str(tmp_path / "export"), str(recordings), "--out", str(tmp_path / "float"))
    int8 = _predict(str(tmp_path / "export" / "model.int8.onnx"), str(recordings), "--out", str(tmp_path / "int8"))

    def values(run: dict) -> np.ndarray:
        """Every step's predicted value of every output, the scores the agreement compares."""
        rows = [row for entry in run["recordings"] for row in _rows(Path(entry["output"]))]
        return np.array([[float(value) for key, value in row.items() if key.startswith("prediction_")] for row in rows])

    for agreement in (int8["int8_agreement"], *(entry["int8_agreement"] for entry in int8["recordings"])):
        assert agreement["argmax_agreement_percent"] is None and "max_probability_diff" not in agreement
    assert int8["int8_agreement"]["max_output_diff"] == pytest.approx(np.abs(values(int8) - values(floats)).max(), abs=1e-5)


@pytest.mark.parametrize(
    ("family", "advice"),
    [
        (
            "tinymyo",
            "TinyMyo needs every channel it was trained on: give recordings that have them, "
            "or fine-tune a model on the channels these recordings have",
        ),
        (
            "femba",
            "FEMBA needs every channel it was trained on: give recordings that have them, or, for recordings "
            "of another montage, fine-tune LUNA, which places each channel by its electrode position",
        ),
    ],
)
def test_recordings_that_do_not_fit_the_model_are_skipped_with_advice_that_fits_predict(tmp_path, family, advice) -> None:
    """Too short for the model's window, or lacking one of its channels: the chain's advice (another
    preprocess.window_seconds or preprocess.channels) is no fix when the window and channels are the model's.
    A recording lacking channels was told only that it "cannot be predicted with it": it names them and what to do."""
    checkpoint = save_small(
        tmp_path / "model.safetensors",
        family,
        ch_names=CHANNELS,
        sfreq=200.0,
        preprocessing=emg_chain(N_TIMES[family]),
        n_times=N_TIMES[family],
    )
    recordings = write_emg_recordings(tmp_path / "rec", 700)
    np.savetxt(recordings / "R_1_C_0_EMG.csv", np.ones((20, 4)), delimiter=",", fmt="%.1f")  # 0.1 s < one 0.2 s window
    np.savetxt(recordings / "R_1_C_1_EMG.csv", np.ones((700, 3)), delimiter=",", fmt="%.1f")  # EMG4 missing
    summary = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "out"))
    assert summary["predicted"] == 2 and summary["skipped_by_reason"] == {"missing_channels": 1, "too_short": 1}
    entries = {entry["reason"]: entry["message"] for entry in summary["recordings"] if entry["status"] == "skipped"}
    assert (
        f"gives no whole {N_TIMES[family] / 200:g} s window ({N_TIMES[family]} samples), the model's window; "
        "a recording this short cannot be predicted" in entries["too_short"]
    )
    assert entries["missing_channels"].endswith(f"missing required channel EMG4; the file has EMG1, EMG2, EMG3; {advice}")
    assert not any("preprocess." in message for message in entries.values())


def test_a_predicted_recordings_entry_gives_the_rate_of_its_windows(classifier, tmp_path) -> None:
    """summary.json said "sfreq": 0.0 of every predicted recording, the value preprocess reports for an unknown rate."""
    checkpoint, recordings = classifier
    summary = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "out"))
    assert [entry["sfreq"] for entry in summary["recordings"]] == [200.0, 200.0]


def test_one_recording_skipped_is_named_as_one(classifier, tmp_path) -> None:
    """Predicting a single file that does not fit said "every one of the 1 recordings was skipped"; a file of one
    row (an export cut short) was "0.005 s of signal (1 samples at 200 Hz)"."""
    checkpoint, _ = classifier
    (tmp_path / "rec").mkdir()
    np.savetxt(tmp_path / "rec" / "R_0_C_0_EMG.csv", np.ones((1, 4)), delimiter=",", fmt="%.1f")
    result = CliRunner().invoke(
        app, ["predict", str(checkpoint), str(tmp_path / "rec"), "--out", str(tmp_path / "out"), "--json"]
    )
    assert result.exit_code == 1, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    error = printed["error"]
    assert error.startswith("the one recording was skipped (too_short: 1); see ") and error.endswith("for the reason"), error
    assert "0.005 s of signal (1 sample at 200 Hz) gives no whole 0.2 s window (40 samples)" in printed["warnings"][0]


def test_trials_shorter_than_the_models_window_are_skipped_with_advice_that_fits_predict(tmp_path) -> None:
    """A .ts file of 0.1 s trials for a 0.2 s-window model: the chain's "lower preprocess.window_seconds" is no fix."""
    config = ChainConfig(window_seconds=0.2, stride_seconds=0.2, l_freq=None, h_freq=None, notch_hz=(), units="file")
    chain = {"corpus": "ts", "options": {"sfreq": 200.0, "channel_names": CHANNELS}, **config.to_json_dict()}
    checkpoint = save_small(tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=chain)
    folder = tmp_path / "rec"
    folder.mkdir()
    for name, n_samples in (("Long_TEST.ts", 40), ("Short_TEST.ts", 20)):
        trial = ":".join(",".join(["0.5"] * n_samples) for _ in CHANNELS)
        (folder / name).write_text(f"@seriesLength {n_samples}\n@classLabel true a b\n@data\n{trial}:a\n{trial}:b\n")
    summary = _predict(str(checkpoint), str(folder), "--out", str(tmp_path / "out"))
    assert summary["predicted"] == 1 and summary["skipped_by_reason"] == {"events_too_short": 1}
    [message] = [entry["message"] for entry in summary["recordings"] if entry["status"] == "skipped"]
    assert message.endswith(
        "shorter than the 0.2 s window, the model's window; events this short cannot be predicted with this model"
    )
    assert "preprocess." not in message


def test_some_trials_shorter_than_the_models_window_are_left_out_without_advice_predict_cannot_follow(tmp_path) -> None:
    """One .ts file, a 0.2 s trial and a 0.1 s one, for a 0.2 s-window model: the short one is left out, not a window to lower."""
    config = ChainConfig(window_seconds=0.2, stride_seconds=0.2, l_freq=None, h_freq=None, notch_hz=(), units="file")
    chain = {"corpus": "ts", "options": {"sfreq": 200.0, "channel_names": CHANNELS}, **config.to_json_dict()}
    checkpoint = save_small(tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=chain)
    folder = tmp_path / "rec"
    folder.mkdir()
    trials = [
        ":".join(",".join(["0.5"] * n_samples) for _ in CHANNELS) + f":{label}" for n_samples, label in ((40, "a"), (20, "b"))
    ]
    for name, kept in (("Mixed_TEST.ts", trials), ("Other_TEST.ts", [trials[0], trials[0]])):  # two: run in the workers
        (folder / name).write_text("@equalLength false\n@classLabel true a b\n@data\n" + "\n".join(kept) + "\n")
    command = ["predict", str(checkpoint), str(folder), "--out", str(tmp_path / "out"), "--workers", "2", "--json"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    summary = json.loads(Path(printed["summary"]).read_text())
    assert summary["predicted"] == 2 and [entry["windows"] for entry in summary["recordings"]] == [1, 2]
    # Which recording lost events, and how many in all: in summary.json, the --json summary and the table.
    assert [entry["notes"] for entry in summary["recordings"]] == [{"events_shorter_than_window": 1}, {}]
    assert summary["notes"] == {"events_shorter_than_window": 1}
    assert printed["events_shorter_than_window"] == 1 and printed["short_events_by_recording"] == {"Mixed_TEST": 1}
    table = CliRunner().invoke(app, [*command[:4], str(tmp_path / "again"), "--workers", "2"])
    assert table.exit_code == 0 and "shorter than the model's window" in table.stdout and "Mixed_TEST" in table.stdout
    warning = (
        "Mixed_TEST.ts: 1 of the 2 labelled events (label 1) lasts less than the 0.2 s window and give no window; "
        "they are left out of the predictions, as the window is the model's"
    )
    assert warning in " ".join(result.stderr.split()), result.stderr
    assert "preprocess.window_seconds" not in result.stderr


def test_a_recordings_png_breaks_its_lines_at_the_pauses_between_trials(tmp_path, monkeypatch) -> None:
    """A .ts file of three 0.4 s trials 1 s apart, 0.2 s windows: the PNG joined the last window of one trial to the first
    of the next across the pause, which no window scored; each trial is a line of its own now."""
    from biofound_cli.prediction import outputs

    lines = []
    save = outputs.save_png
    monkeypatch.setattr(outputs, "save_png", lambda figure, path: lines.extend(figure.axes[0].lines) or save(figure, path))
    config = ChainConfig(window_seconds=0.2, stride_seconds=0.1, l_freq=None, h_freq=None, notch_hz=(), units="file")
    chain = {"corpus": "ts", "options": {"sfreq": 200.0, "channel_names": CHANNELS}, **config.to_json_dict()}
    checkpoint = save_small(tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=chain)
    (tmp_path / "rec").mkdir()
    trial = ":".join(",".join(map(str, np.random.default_rng(0).normal(size=80).round(3))) for _ in CHANNELS)
    (tmp_path / "rec" / "Trials_TEST.ts").write_text(
        "@classLabel true a b\n@data\n" + "".join(f"{trial}:{label}\n" for label in "aba")
    )
    summary = _predict(str(checkpoint), str(tmp_path / "rec"), "--out", str(tmp_path / "out"))
    [entry] = summary["recordings"]
    starts = [float(row["start_seconds"]) for row in _rows(Path(entry["output"]))]
    # Three windows in each trial (0, 0.1, 0.2 s into it), the trials 1.4 s apart.
    assert entry["windows"] == 9 and np.allclose(np.diff(starts), [0.1, 0.1, 1.2] * 2 + [0.1, 0.1])
    assert lines
    for line in lines:
        x = np.asarray(line.get_xdata(), dtype=float)
        pieces = np.split(x, np.flatnonzero(np.isnan(x)))  # each after the first starts at its NaN
        assert [int(np.sum(~np.isnan(piece))) for piece in pieces] == [3, 3, 3], x
        assert np.allclose(x[~np.isnan(x)], np.asarray(starts) + 0.1)


def test_a_channel_nan_throughout_is_a_channel_the_model_lacks_not_one_to_leave_out(tmp_path) -> None:
    """The chain's advice (leave it out of preprocess.channels) cannot help: the channels are the model's."""
    checkpoint = emg_model(tmp_path / "model.safetensors")
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    samples = np.random.default_rng(1).normal(size=(400, 4))
    samples[:, 2] = np.nan  # EMG3 absent from the recording
    np.savetxt(recordings / "R_1_C_0_EMG.csv", samples, delimiter=",", fmt="%.5f")

    summary = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "out"))

    assert summary["predicted"] == 2 and summary["skipped_by_reason"] == {"missing_channels": 1}
    (message,) = [entry["message"] for entry in summary["recordings"] if entry["status"] == "skipped"]
    assert message.endswith(
        "R_1_C_0_EMG.csv: channel EMG3 holds no value at all (NaN throughout: absent from the recording); "
        "TinyMyo needs every channel it was trained on: give recordings that have them, "
        "or fine-tune a model on the channels these recordings have"
    ), message
    assert "preprocess." not in message
    # Even where max_nan_fraction allows it: the channel became zeros fed to the model without a word.
    allowed = _predict(
        str(checkpoint), str(recordings), "--out", str(tmp_path / "out-allowed"), "--set", "preprocess.max_nan_fraction=1"
    )
    assert allowed["predicted"] == 2 and allowed["skipped_by_reason"] == {"missing_channels": 1}


def test_flat_channels_a_recording_is_predicted_with_are_named_in_a_warning_its_entry_and_the_totals(tmp_path) -> None:
    """A recording whose flat channels stay under preprocess.max_flat_fraction was predicted without a word:
    the model saw a dead channel and the user never learnt it."""
    checkpoint = emg_model(tmp_path / "model.safetensors")
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    samples = np.random.default_rng(1).normal(size=(400, 4))
    samples[:, 1] = 0.0  # EMG2 dead: 1 of 4 channels, under the model's max_flat_fraction = 0.5
    np.savetxt(recordings / "R_1_C_0_EMG.csv", samples, delimiter=",", fmt="%.5f")
    command = ["predict", str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--workers", "2", "--no-progress"]

    result = CliRunner().invoke(app, [*command, "--json"])

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    summary = json.loads(Path(printed["summary"]).read_text())
    assert summary["predicted"] == 3 and summary["skipped_by_reason"] == {}
    entries = {entry["recording_id"]: entry for entry in summary["recordings"]}
    assert entries["R_1_C_0_EMG"]["flat_channels_kept"] == ["EMG2"]
    assert entries["R_1_C_0_EMG"]["notes"] == {"flat_channels_kept": 1}
    assert [entries[name]["flat_channels_kept"] for name in ("R_0_C_0_EMG", "R_0_C_1_EMG")] == [[], []]
    assert summary["notes"] == {"flat_channels_kept": 1}
    assert printed["flat_channels_kept"] == 1 and printed["flat_channels_by_recording"] == {"R_1_C_0_EMG": ["EMG2"]}
    # One line, from the worker that read the file, naming the recording and the channel.
    warning = (
        "R_1_C_0_EMG.csv: 1 of 4 channels is flat (std < 1e-06): EMG2; the recording is used all the same, "
        "as preprocess.max_flat_fraction = 0.5 allows (0 skips such recordings)"
    )
    assert " ".join(result.stderr.split()).count(warning) == 1, result.stderr
    assert result.stderr.count("channels is flat") == 1 and any(warning in line for line in printed["warnings"])

    # A re-run finds them done and still names the recording's flat channel, in the table too.
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0, again.output
    assert "Predicted with flat channels" in again.stdout and "R_1_C_0_EMG │ EMG2" in again.stdout, again.stdout

    # The flag the docs give skips such recordings instead.
    strict = _predict(*command[1:4], str(tmp_path / "strict"), "--set", "preprocess.max_flat_fraction=0")
    assert strict["predicted"] == 2 and strict["skipped_by_reason"] == {"flat_channels": 1} and strict["notes"] == {}
    (message,) = [entry["message"] for entry in strict["recordings"] if entry["status"] == "skipped"]
    assert "R_1_C_0_EMG.csv: 1 of 4 channels is flat (std < 1e-06): EMG2; raise preprocess.max_flat_fraction" in message


def test_a_recording_with_nans_is_skipped_with_the_predict_flag_that_keeps_it_and_the_flag_keeps_it(tmp_path) -> None:
    """The advice named preprocess.max_nan_fraction, which predict could take only from a --recipe restating the whole chain."""
    checkpoint = emg_model(tmp_path / "model.safetensors")
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    samples = np.random.default_rng(1).normal(size=(400, 4))
    samples[:40, 0] = np.nan  # 2.5 % of the samples
    np.savetxt(recordings / "R_1_C_0_EMG.csv", samples, delimiter=",", fmt="%.5f")

    summary = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "out"))

    assert summary["skipped_by_reason"] == {"too_many_nans": 1}
    (message,) = [entry["message"] for entry in summary["recordings"] if entry["status"] == "skipped"]
    assert message.endswith("(they become 0) (predict: --set preprocess.max_nan_fraction=VALUE)"), message
    kept = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--set", "preprocess.max_nan_fraction=0.05")
    assert (kept["predicted"], kept["already_done"], kept["skipped_by_reason"]) == (1, 2, {})
    assert len(_rows(tmp_path / "out" / "R_1_C_0_EMG.csv")) == kept["windows"] - 2 * len(
        _rows(tmp_path / "out" / "R_0_C_0_EMG.csv")
    )


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("preprocess.window_seconds=1", "predict sets only preprocess.max_nan_fraction, preprocess.flat_std"),
        # pydantic's own words ("Input should be less than or equal to 1", "Value error, expected a number,
        # not true or false") until predict worded them as every other --set is.
        (
            "preprocess.max_nan_fraction=2",
            "error: --set preprocess.max_nan_fraction=2: preprocess.max_nan_fraction = 2: must be at most 1",
        ),
        (
            "preprocess.max_nan_fraction=true",
            "error: --set preprocess.max_nan_fraction=true: preprocess.max_nan_fraction = true: expected a number, not true "
            "or false",
        ),
        (
            "preprocess.on_truncated=drop",
            "error: --set preprocess.on_truncated=drop: preprocess.on_truncated = \"drop\": expected 'skip' or 'keep'",
        ),
    ],
)
def test_predict_set_refuses_the_models_own_settings_and_bad_values_in_one_line(tmp_path, setting, says) -> None:
    checkpoint = emg_model(tmp_path / "model.safetensors")
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    result = CliRunner().invoke(
        app, ["predict", str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--set", setting]
    )
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not list(tmp_path.glob("out/*.csv"))


def test_predict_set_of_a_window_with_a_recipe_is_refused_as_such_not_passed_over(tmp_path) -> None:
    """`predict MODEL REC --recipe R.toml --set preprocess.window_seconds=0.2` (the model's window; the recipe has
    another) said the recipe's window was not the model's, "set preprocess.window_seconds = 0.2 there", as if the
    --set had not been given: predict's --set changes no window, and now says so first."""
    checkpoint = emg_model(tmp_path / "model.safetensors")
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    recipe = tmp_path / "r.toml"
    recipe.write_text('[preprocess]\ncorpus = "emg-csv"\nsfreq = 200.0\nwindow_seconds = 0.5\n')
    command = ["predict", str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--recipe", str(recipe)]
    result = CliRunner().invoke(app, [*command, "--workers", "2", "--set", "preprocess.window_seconds=0.2"])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and said.count("error: ") == 1, result.output
    assert "error: --set preprocess.window_seconds=0.2: predict sets only preprocess.max_nan_fraction" in said, said
    assert "(edit that file; --set does not)" in said and "there" not in said


@pytest.mark.slow
@pytest.mark.parametrize("target", ["main process", "process group", "process group SIGUSR1", "Ctrl-C"])
def test_sigterm_stops_a_run_with_workers_and_keeps_a_summary_of_the_tables_written(tmp_path, target) -> None:
    """`timeout`/a scheduler's SIGTERM: exit 143 with the summary of what was predicted; a re-run predicts the rest.
    ``kill`` reaches the main process only; ``scancel`` or a job's time limit reaches its pool workers too, and
    so does the SIGUSR1 of ``sbatch --signal=USR1@N`` (which killed the run with status -10 and no summary).
    Ctrl-C (the terminal's whole group) exits 130 with the same line; it said the generic "interrupted; finished
    outputs are kept ...", naming neither the count nor summary.json."""
    import os
    import signal

    checkpoint = emg_model(tmp_path / "model.safetensors", label_names=["a", "b", "c"])
    rng = np.random.default_rng(0)
    (tmp_path / "rec").mkdir()
    for index in range(12):
        np.savetxt(tmp_path / "rec" / f"R_0_C_{index}_EMG.csv", rng.normal(size=(8000, 4)), delimiter=",", fmt="%.4f")
    out = tmp_path / "out"
    command = biofound("predict", checkpoint, tmp_path / "rec", "--out", out)
    process = start_in_own_group([*command, "--workers", "2", "--json", "--no-progress"])
    # A table is what a re-run goes by (it moves in after the PNG): signalled once one is in, the run has predicted some.
    wait_until(process, lambda: any(out.glob("*.csv")), "a table was written")
    stop = signal.SIGUSR1 if target.endswith("SIGUSR1") else signal.SIGTERM
    if target.startswith("process group"):
        stdout, stderr = terminate_group(process, stop)
    else:
        os.kill(process.pid, signal.SIGTERM) if target == "main process" else os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=300)

    summary = json.loads((out / "summary.json").read_text())
    predicted = [entry for entry in summary["recordings"] if entry["status"] == "predicted"]
    assert summary["interrupted"] and 0 < summary["predicted"] == len(predicted) < 12
    if target == "Ctrl-C":
        assert process.returncode == ExitStatus.INTERRUPTED and json.loads(stdout)["exit_status"] == ExitStatus.INTERRUPTED
        assert [line for line in stderr.splitlines() if line.startswith("error:")] == [
            f"error: stopped by Ctrl-C after {counted(len(predicted), 'recording')} predicted; their tables are kept, "
            f"{out / 'summary.json'} lists them, and re-running the same command predicts the rest"
        ], stderr
    else:
        assert_terminated(process, stdout, stderr, "summary.json", "re-run", by=stop.name)
    assert all(Path(entry["output"]).is_file() for entry in predicted)
    assert sorted(path.name for path in out.glob("*.csv")) == sorted(Path(entry["output"]).name for entry in predicted)
    assert not [path.name for path in out.iterdir() if path.name.startswith(".")]  # no temporary left
    rerun = subprocess.run([*command, "--json", "--no-progress"], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["already_done"] == len(predicted)


STOP_WHILE_LISTING = """
import os, signal, sys
import biofound_cli.prediction.recordings as recordings
find = recordings.find_recordings
def find_then_stop(*args, **kwargs):
    found = find(*args, **kwargs)
    os.killpg(os.getpgrp(), signal.SIGTERM)  # a job's time limit while the model loads or a large folder is listed
    return found
recordings.find_recordings = find_then_stop
from biofound_cli.cli.app import main
sys.argv = ["biofound", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_sigterm_to_the_group_before_the_first_recording_is_one_line_and_a_json_object(classifier, tmp_path) -> None:
    """Before the loop (the model loading, the recordings listed) SIGTERM's default action killed the
    process without a word or a --json object."""
    checkpoint, recordings = classifier
    args = ["predict", str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--workers", "2", "--json"]
    process = start_in_own_group([sys.executable, "-c", STOP_WHILE_LISTING, *args, "--no-progress"])
    stdout, stderr = process.communicate(timeout=300)
    assert_group_gone(process.pid)
    assert_terminated(process, stdout, stderr, "before any recording was predicted", "re-run the same command")
    rerun = subprocess.run(biofound(*args), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["predicted"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("target", ["main process", "process group", "process group SIGUSR1"])
def test_sigterm_after_the_summary_leaves_the_finished_run_s_status_0(classifier, tmp_path, target) -> None:
    """A job's time limit reached as the work ends: the tables are written and reported, so status 0, not 143,
    whether the signal reaches the main process only (``kill``) or, as ``scancel`` (SIGTERM) and
    ``sbatch --signal=USR1@N`` (SIGUSR1) send it, the whole group."""
    import os
    import signal

    checkpoint, recordings = classifier
    command = [sys.executable, "-m", "biofound_cli", "predict", str(checkpoint), str(recordings), "--out", str(tmp_path / "out")]
    process = subprocess.Popen(
        [*command, "--workers", "2", "--json", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    summary = json.loads(process.stdout.readline())  # printed: the process only exits from now on
    stop = signal.SIGUSR1 if target.endswith("SIGUSR1") else signal.SIGTERM
    (os.kill if target == "main process" else os.killpg)(process.pid, stop)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0 and "error" not in stderr, stderr
    assert summary["predicted"] == summary["found"] == 2


FILLED_AS_A_JOURNAL_LINE_NEEDS_A_PAGE = """
import json, os, sys
from pathlib import Path
from biofound_cli.prediction.run import Journal
add, filler = Journal.add, Path(sys.argv[1])
def filled_first(self, entry):
    size = self.path.stat().st_size if self.path.exists() else 0
    line = len(json.dumps({**self.model, "entry": entry})) + 1
    if size and not filler.exists() and size // 4096 != (size + line - 1) // 4096:  # this line needs another page
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:  # another job fills the disk
                os.write(fd, bytes(4096))
        except OSError:
            os.close(fd)
    add(self, entry)
Journal.add = filled_first
from biofound_cli.__main__ import main
sys.argv = ["biofound", *sys.argv[2:]]
main()
"""


@pytest.mark.slow
def test_a_journal_line_that_does_not_fit_leaves_whole_lines_the_rerun_reads(tmp_path) -> None:
    """A disk that fills as a journal line is appended: the line went in part-way, a torn line the rerun's first line
    was appended to (both then unreadable); now the journal keeps its whole lines and the rerun skips what they list."""
    checkpoint = emg_model(tmp_path / "model.safetensors")
    rng = np.random.default_rng(0)
    (tmp_path / "rec").mkdir()
    for index in range(12):
        np.savetxt(tmp_path / "rec" / f"R_0_C_{index}_EMG.csv", rng.normal(size=(400, 4)), delimiter=",", fmt="%.4f")
    small = tmp_path / "small"
    out, journal = small / "out", small / "out" / "journal.jsonl"
    predict = ["predict", checkpoint, tmp_path / "rec", "--out", out, "--workers", "2", "--json", "--no-progress"]
    rerun = shlex.join(biofound(*predict))
    done = run_on_a_small_disk(
        small,
        [sys.executable, "-c", FILLED_AS_A_JOURNAL_LINE_NEEDS_A_PAGE, small / "filler", *predict],
        size="4m",
        then=f"cp {journal} {tmp_path / 'failed.jsonl'}; rm {small / 'filler'}; {rerun} > {tmp_path / 'rerun.json'}",
    )

    assert done.returncode == ExitStatus.FAILED and "Traceback" not in done.stderr, done.stderr
    assert "No space left on device" in json.loads(done.stdout)["error"], done.stdout
    failed = (tmp_path / "failed.jsonl").read_text()
    lines = [json.loads(line) for line in failed.splitlines()]  # every line whole, the last ended
    assert failed.endswith("\n") and len(lines) >= 2, failed
    printed = json.loads((tmp_path / "rerun.json").read_text().strip().splitlines()[-1])
    assert (printed["already_done"], printed["predicted"]) == (len(lines), 12 - len(lines)), printed


@pytest.mark.slow
def test_a_rerun_after_sigkill_skips_the_journalled_tables_and_trusts_no_cut_line_or_rewritten_table(tmp_path) -> None:
    """SIGKILL (or a lost node) leaves no summary.json: the re-run went by none and predicted every recording again.
    Now each table's journal line counts; a line the kill cut short, or a table rewritten since, does not."""
    import os
    import signal
    import time

    checkpoint = emg_model(tmp_path / "model.safetensors")
    rng = np.random.default_rng(0)
    (tmp_path / "rec").mkdir()
    for index in range(12):
        np.savetxt(tmp_path / "rec" / f"R_0_C_{index}_EMG.csv", rng.normal(size=(8000, 4)), delimiter=",", fmt="%.4f")
    out, journal = tmp_path / "out", tmp_path / "out" / "journal.jsonl"
    command = [sys.executable, "-m", "biofound_cli", "predict", str(checkpoint), str(tmp_path / "rec"), "--out", str(out)]
    process = subprocess.Popen([*command, "--workers", "2", "--no-progress"], start_new_session=True)
    while process.poll() is None and (journal.read_text().count("\n") if journal.is_file() else 0) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    assert not (out / "summary.json").exists()
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert len(lines) >= 2 and all(Path(line["entry"]["output"]).is_file() for line in lines)
    # One table rewritten since its line (another model, an editor) and a line the kill cut short.
    Path(lines[0]["entry"]["output"]).write_text("recording,window_index\n")
    with journal.open("a") as handle:
        handle.write(json.dumps(lines[1])[:-20])
    kept = Path(lines[1]["entry"]["output"]).stat().st_mtime_ns

    rerun = subprocess.run([*command, "--json", "--no-progress"], capture_output=True, text=True, timeout=600)

    assert rerun.returncode == 0, rerun.stderr
    printed = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert (printed["already_done"], printed["predicted"]) == (len(lines) - 1, 12 - len(lines) + 1)
    assert Path(lines[1]["entry"]["output"]).stat().st_mtime_ns == kept  # a journalled table is not rewritten
    assert len(_rows(Path(lines[0]["entry"]["output"]))) > 0  # the rewritten one is predicted again
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["recordings"]) == 12 and not journal.exists()


def test_a_torn_journal_line_anywhere_is_passed_over_with_one_warning_and_the_next_line_starts_afresh(
    tmp_path, monkeypatch
) -> None:
    """tidy28: a line a kill cut short (an earlier biofound appended the next run's line to it, mid-file) was passed
    over without a word, and the next run appended its first line to a torn last line, losing that line too."""
    from biofound_cli.prediction.run import Journal

    monkeypatch.setattr(Journal, "remove", lambda self: None)  # the journals stay, as after a SIGKILL
    checkpoint = emg_model(tmp_path / "model.safetensors")
    rng = np.random.default_rng(0)
    (tmp_path / "rec").mkdir()
    for index in range(3):
        np.savetxt(tmp_path / "rec" / f"R_0_C_{index}_EMG.csv", rng.normal(size=(400, 4)), delimiter=",", fmt="%.4f")
    out, journal = tmp_path / "out", tmp_path / "out" / "journal.jsonl"
    predict = ["predict", str(checkpoint), str(tmp_path / "rec"), "--out", str(out), "--workers", "2", "--json"]
    assert CliRunner().invoke(app, predict).exit_code == 0
    first, second, third = sorted(journal.read_text().splitlines(), key=lambda line: json.loads(line)["entry"]["source_path"])
    torn = second[:-20]
    journal.write_text(f"{first}\n{torn}{third}\n{torn}")  # the old append ran on from a torn line; a kill tore another
    (out / "summary.json").unlink()

    result = CliRunner().invoke(app, predict)

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert (printed["already_done"], printed["predicted"]) == (1, 2), printed
    warning = f"warning: {journal}: 2 unreadable lines passed over (cut short by a run killed as it wrote)"
    assert " ".join(result.stderr.split()).count(warning) == 1, result.stderr
    lines = journal.read_text().split("\n")
    assert lines[:3] == [first, f"{torn}{third}", torn] and lines[-1] == ""
    assert sorted(json.loads(line)["entry"]["source_path"] for line in lines[3:-1]) == sorted(
        json.loads(line)["entry"]["source_path"] for line in (second, third)
    )


def test_a_run_reads_its_journals_tail_once_and_its_first_line_mends_a_torn_one(tmp_path, monkeypatch) -> None:
    """mend29a: each table's journal line opened the journal to read its last byte first; only the journal as a run
    finds it can end in a torn line (the run's own lines go in whole or not at all), so its tail is read once."""
    from biofound_cli.prediction import run

    monkeypatch.setattr(run.Journal, "remove", lambda self: None)  # the journal stays, to be read
    tails: list[Path] = []
    ends_a_line = run._ends_a_line
    monkeypatch.setattr(run, "_ends_a_line", lambda path: tails.append(path) or ends_a_line(path))
    checkpoint = save_small(
        tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=emg_chain(40), n_times=40
    )
    rng = np.random.default_rng(0)
    (tmp_path / "rec").mkdir()
    for index in range(3):
        np.savetxt(tmp_path / "rec" / f"R_0_C_{index}_EMG.csv", rng.normal(size=(400, 4)), delimiter=",", fmt="%.4f")
    out, journal = tmp_path / "out", tmp_path / "out" / "journal.jsonl"
    out.mkdir()
    torn = '{"model_sha256": "0123'
    journal.write_text(torn)  # a line a kill cut short

    summary = _predict(str(checkpoint), str(tmp_path / "rec"), "--out", str(out))

    assert summary["predicted"] == 3, summary
    lines = journal.read_text().split("\n")
    assert lines[0] == torn and lines[-1] == "" and len(lines) == 5, lines
    assert sorted(Path(json.loads(line)["entry"]["source_path"]).name for line in lines[1:-1]) == sorted(
        path.name for path in (tmp_path / "rec").iterdir()
    )
    assert tails == [journal]


def test_a_run_removes_the_temporaries_runs_killed_on_this_machine_left_and_no_other_nodes(classifier, tmp_path) -> None:
    """SIGKILL (the OOM killer, a scheduler's hard limit) leaves the table being written under its hidden
    temporary name for good. A run clears those of this machine's dead processes; another node's (a slice
    writing into the same shared --out: its pid means nothing here) and the older names without a machine stay."""
    checkpoint, recordings = classifier
    out = tmp_path / "out"
    out.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    host, dead = host_label(), int(gone.stdout)
    killed_here = [out / f".R_0_C_0_EMG.csv.{host}.{dead}.0123abcd.tmp", out / f".R_0_C_1_EMG.png.{host}.{dead}.4567cdef.tmp"]
    left = [
        out / f".R_0_C_0_EMG.csv.{host}.{os.getpid()}.89abcdef.tmp",  # a process of this machine still running
        out / f".R_0_C_1_EMG.csv.{host}-other.{dead}.0123abcd.tmp",  # another node's, maybe being written now
        out / f".R_0_C_1_EMG.csv.{dead}.0123abcd.tmp",  # written by an older biofound: whose is unknown
    ]
    for path in killed_here + left:
        path.write_text("recording,window_index\n" + "R_0_C_0_EMG,0\n" * 1000)  # half a table

    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings), "--out", str(out), "--workers", "2"])

    assert result.exit_code == 0, result.output
    assert f"{out}: removed 2 temporary files of a predict run on this machine that was killed" in " ".join(result.output.split())
    hidden = sorted(path.name for path in out.iterdir() if path.name.startswith("."))
    assert hidden == sorted(path.name for path in left)
    assert len(_rows(out / "R_0_C_0_EMG.csv")) > 0 and len(_rows(out / "R_0_C_1_EMG.csv")) > 0
    again = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings), "--out", str(out), "--workers", "2"])
    assert again.exit_code == 0 and "temporary" not in again.output, again.output


def four_recordings(tmp_path: Path) -> Path:
    """A folder of four short Myo-like CSV recordings, enough for a stop to land mid-run."""
    recordings = tmp_path / "rec"
    recordings.mkdir()
    rng = np.random.default_rng(1)
    for index in range(4):
        np.savetxt(recordings / f"R_0_C_{index}_EMG.csv", rng.normal(size=(400, 4)), delimiter=",", fmt="%.4f")
    return recordings


@pytest.mark.parametrize("moment", ["plot_probabilities", "write_windows"])
def test_sigterm_between_a_recordings_files_leaves_no_table_the_summary_does_not_list(
    classifier, tmp_path, monkeypatch, moment
) -> None:
    """SIGTERM once the second recording's PNG, or its table, has moved in: every table in the folder is
    listed in summary.json as predicted, so a re-run counts each as already done and rewrites none."""
    import os
    import signal

    from biofound_cli.prediction import run

    checkpoint, _ = classifier
    recordings = four_recordings(tmp_path)
    written = getattr(run, moment)
    calls = []

    def then_sigterm(*args, **kwargs):
        path = written(*args, **kwargs)
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return path

    monkeypatch.setattr(run, moment, then_sigterm)
    out = tmp_path / "out"
    command = ["predict", str(checkpoint), str(recordings), "--out", str(out), "--workers", "2", "--json", "--no-progress"]
    stopped = CliRunner().invoke(app, command)
    monkeypatch.undo()

    assert stopped.exit_code == 143, stopped.output
    summary = json.loads((out / "summary.json").read_text())
    listed = {Path(entry["output"]).name for entry in summary["recordings"] if entry["status"] == "predicted"}
    assert summary["interrupted"] and sorted(path.name for path in out.glob("*.csv")) == sorted(listed)
    assert all((out / name).with_suffix(".png").is_file() for name in listed)
    tables = {path.name: path.stat().st_mtime_ns for path in out.glob("*.csv")}
    rerun = CliRunner().invoke(app, command)
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["already_done"] == len(listed) > 0
    assert {name: (out / name).stat().st_mtime_ns for name in tables} == tables


def test_the_stopped_line_counts_the_recording_whose_table_the_stop_waited_for(classifier, tmp_path, monkeypatch) -> None:
    """A stop while a table is written waits for its summary entry, then came out before the count moved:
    "predict: stopped at 1/4 files" over a summary of 2 predicted."""
    import os
    import signal

    from biofound_cli.prediction import run

    checkpoint, _ = classifier
    recordings = four_recordings(tmp_path)
    write = run.write_windows

    def write_then_sigterm(path, *args, **kwargs):
        write(path, *args, **kwargs)
        if len(list(path.parent.parent.glob("*.csv"))) == 1:  # the second table (written in a staging folder of out)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(run, "write_windows", write_then_sigterm)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings), "--out", str(out), "--workers", "2"])

    assert result.exit_code == 143, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["predicted"] == 2
    assert "predict: stopped at 2/4 files (" in result.stdout, result.stdout


def test_a_stop_as_a_png_moves_in_leaves_no_png_the_summary_does_not_list(classifier, tmp_path, monkeypatch) -> None:
    """The PNG moved in before the stop was held off for the table: a SIGTERM as it did left the recording's PNG
    beside no table and no summary entry."""
    import os
    import signal

    from biofound_cli.prediction import run

    checkpoint, _ = classifier
    recordings = four_recordings(tmp_path)
    plot = run.plot_probabilities

    def plot_then_sigterm(path, *args, **kwargs):
        figure = plot(path, *args, **kwargs)
        if len(list(path.parent.parent.glob("*.png"))) == 1:  # the second PNG (written in a staging folder of out)
            os.kill(os.getpid(), signal.SIGTERM)
        return figure

    monkeypatch.setattr(run, "plot_probabilities", plot_then_sigterm)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings), "--out", str(out), "--workers", "2"])

    assert result.exit_code == 143, result.output
    summary = json.loads((out / "summary.json").read_text())
    listed = sorted(Path(entry["figure"]).name for entry in summary["recordings"] if entry["status"] == "predicted")
    assert sorted(path.name for path in out.glob("*.png")) == listed
    assert sorted(path.stem for path in out.glob("*.csv")) == [Path(name).stem for name in listed]
    assert f"predict: stopped at {summary['predicted']}/4 files (" in result.stdout, result.stdout


def test_sigterm_while_the_last_table_is_written_ends_the_done_run_with_status_0(classifier, tmp_path, monkeypatch) -> None:
    """The stop waited for the last recording's table and entry, so every recording was predicted, yet the run
    exited 143 with a summary saying interrupted: a scheduler requeued it to predict nothing. Now status 0 and a
    warning naming the signal."""
    import os
    import signal

    from biofound_cli.prediction import run

    checkpoint, recordings = classifier
    write = run.write_windows

    def write_then_sigterm(path, *args, **kwargs):
        write(path, *args, **kwargs)
        if len(list(path.parent.parent.glob("*.csv"))) == 1:  # the second (staged in out), last: the stop waits for its entry
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(run, "write_windows", write_then_sigterm)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings), "--out", str(out), "--workers", "2", "--json"])

    assert result.exit_code == 0, result.output
    assert "warning: SIGTERM came as the work finished: it is complete" in " ".join(result.stderr.split())
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["interrupted"] and summary["predicted"] == summary["found"] == 2


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGUSR1"])
def test_a_stop_to_the_group_while_the_done_run_writes_its_summary_changes_nothing(classifier, tmp_path, signal_name) -> None:
    """Every table was written and the summary being written, yet the stop ended the run 143 with a summary saying
    interrupted: a scheduler requeued it to predict nothing. Now status 0, the summary whole, a warning naming it."""
    checkpoint, recordings = classifier
    out = tmp_path / "out"
    args = ["predict", checkpoint, recordings, "--out", out, "--workers", "2", "--json", "--no-progress"]
    where = "biofound_cli.prediction.run:write_json_atomic"  # the summary, once every table moved in
    process = start_in_own_group(biofound_signalled_as_it_calls(where, signal_name, *args))
    stdout, stderr = process.communicate(timeout=300)
    assert_group_gone(process.pid)
    assert process.returncode == 0, stderr
    assert f"warning: {signal_name} came as the work finished: it is complete" in " ".join(stderr.split())
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["interrupted"] and summary["predicted"] == summary["found"] == json.loads(stdout)["predicted"] == 2


def test_a_folder_without_one_file_the_models_reader_takes_is_named_as_predict_names_it(tmp_path) -> None:
    """An EDF-chain model given a folder of CSV files: exit 2 naming the folder, not preprocess's --root flag."""
    chain = {"corpus": "edf", "options": {}, **ChainConfig(window_seconds=80 / 256, sfreq=256.0).to_json_dict()}
    checkpoint = save_small(tmp_path / "model.safetensors", "luna", task="bc", num_classes=2, sfreq=256.0, preprocessing=chain)
    recordings = write_emg_recordings(tmp_path / "rec", 100)
    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error.startswith(f"{recordings}: no file there ends in .edf") and "--root" not in error


def test_files_of_a_folder_that_are_not_recordings_are_counted_by_suffix_in_a_warning_and_the_summaries(tmp_path) -> None:
    """A .txt or .edf beside the model's CSV recordings was passed over without a word."""
    checkpoint = emg_model(tmp_path / "model.safetensors")
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    # A hidden file and the data set's documentation (README, LICENSE.txt) are not counted.
    for name in ("notes.txt", "sub/protocol.TXT", "session.edf", ".DS_Store", "manifest", "README", "LICENSE.txt"):
        (recordings / name).parent.mkdir(exist_ok=True)
        (recordings / name).write_text("not a recording")
    (recordings / "moved.txt").symlink_to(tmp_path / "gone.txt")  # named once, as a broken link, and not counted
    command = ["predict", str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--workers", "2", "--no-progress"]

    result = CliRunner().invoke(app, [*command, "--json"])

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    warning = f"4 files in {recordings} are not emg-csv recordings and were not read: 2 .txt, 1 .edf, 1 without a suffix"
    assert " ".join(result.stderr.split()).count(warning) == 1, result.stderr
    assert any(warning in line for line in printed["warnings"])
    assert result.stderr.count("a broken symbolic link") == 1, result.stderr
    assert printed["not_read"] == 4 and printed["not_read_by_suffix"] == {"(none)": 1, ".edf": 1, ".txt": 2}
    summary = json.loads(Path(printed["summary"]).read_text())
    assert summary["predicted"] == 2 and summary["not_read_by_suffix"] == {"(none)": 1, ".edf": 1, ".txt": 2}
    # One record in one vocabulary: summary.json is what --json printed, with the recordings' entries.
    assert {key: value for key, value in printed.items() if key != "warnings"} == {
        key: value for key, value in summary.items() if key != "recordings"
    }
    # Files named one by one are what the user chose: nothing is counted.
    named = _predict(str(checkpoint), str(recordings / "R_0_C_0_EMG.csv"), "--out", str(tmp_path / "one"))
    assert named["not_read_by_suffix"] == {}


def test_a_recording_whose_name_is_not_utf8_is_skipped_and_the_others_predicted(tmp_path) -> None:
    """A Latin-1 file name (``café``) stopped the run with a traceback at its figure's title."""
    chain = emg_chain(40)
    # A pattern that takes a suffix after _EMG, so the Latin-1 file is a recording of the reader.
    chain["options"]["pattern"] = r"R_(?P<repetition>\d+)_C_(?P<class>\d+)_EMG[^/]*\.csv"
    checkpoint = save_small(
        tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=chain, n_times=40
    )
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    latin1 = recordings / os.fsdecode(b"R_0_C_2_EMG_caf\xe9.csv")
    np.savetxt(latin1, np.random.default_rng(1).normal(size=(400, 4)), delimiter=",", fmt="%.5f")
    command = ["predict", str(checkpoint), str(recordings), "--out", str(tmp_path / "out"), "--workers", "2", "--no-progress"]

    for _ in range(2):  # a re-run skips it again, and the others as already done
        result = CliRunner().invoke(app, [*command, "--json"])
        assert result.exit_code == 0, result.output
        assert f"skipped (name_not_utf8): {recordings}/R_0_C_2_EMG_caf\\xe9.csv: the file's name" in result.stderr

    summary = json.loads(Path(json.loads(result.stdout.strip().splitlines()[-1])["summary"]).read_text())
    assert (summary["found"], summary["already_done"], summary["skipped_by_reason"]) == (3, 2, {"name_not_utf8": 1})
    assert sorted(path.name for path in (tmp_path / "out").glob("*.csv")) == ["R_0_C_0_EMG.csv", "R_0_C_1_EMG.csv"]


def test_the_runs_own_out_inside_the_recordings_folder_is_not_counted_as_files_not_read(classifier, tmp_path) -> None:
    """``--out REC/predictions``: a re-run called its own tables, figures and summary files of REC it did not read."""
    checkpoint, _ = classifier
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    (recordings / "notes.txt").write_text("not a recording")
    command = ["predict", str(checkpoint), str(recordings), "--out", str(recordings / "predictions"), "--workers", "2"]

    for expected in ((2, 0), (0, 2)):  # the first run predicts both, the re-run finds them done
        result = CliRunner().invoke(app, [*command, "--no-progress", "--json"])
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout.strip().splitlines()[-1])
        assert (printed["predicted"], printed["already_done"]) == expected
        assert printed["not_read_by_suffix"] == {".txt": 1}, result.stderr
        assert f"1 file in {recordings} is no emg-csv recording and was not read: 1 .txt" in " ".join(result.stderr.split())


def test_a_rerun_reads_none_of_its_own_tables_through_a_reader_that_takes_any_csv(tmp_path) -> None:
    """A ``table`` chain takes every .csv under the folder: a re-run into ``REC/out`` read its own tables as
    recordings (skipped as unusable, exit 0 with two warnings); ``--out REC`` wrote a table over a recording."""
    chain = {**emg_chain(40), "corpus": "table", "options": {"sfreq": 200.0, "channel_names": CHANNELS}}
    checkpoint = save_small(tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=chain)
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    out = recordings / "out"
    for pattern, expected in ((str(recordings), (2, 0)), (str(recordings), (0, 2)), (f"{recordings}/**/*.csv", (0, 2))):
        result = CliRunner().invoke(app, ["predict", str(checkpoint), pattern, "--out", str(out), "--workers", "2", "--json"])
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout)
        assert (printed["found"], printed["predicted"], printed["already_done"]) == (2, *expected)
        assert printed["skipped"] == 0 and "warnings" not in printed, result.stderr
    before = {path.name: path.read_bytes() for path in recordings.glob("*.csv")}
    for given, into in ((recordings, recordings), (recordings / "R_0_C_0_EMG.csv", recordings), (recordings, tmp_path)):
        result = CliRunner().invoke(app, ["predict", str(checkpoint), str(given), "--out", str(into), "--workers", "2"])
        assert result.exit_code == 2, result.output
        assert f"--out {into} is, or holds, RECORDINGS {given}: predict would write its tables among" in " ".join(
            result.output.split()
        )
    assert {path.name: path.read_bytes() for path in recordings.glob("*.csv")} == before


def test_earlier_predict_outputs_among_the_recordings_are_neither_read_nor_counted_but_named_once(tmp_path) -> None:
    """``--out REC/pred1`` then ``--out REC/pred2``: the second run read pred1's tables as recordings (a reader
    taking any .csv: skipped as unusable) and counted its figures and summary among REC's files not read."""
    chain = {**emg_chain(40), "corpus": "table", "options": {"sfreq": 200.0, "channel_names": CHANNELS}}
    checkpoint = save_small(tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=chain)
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    (recordings / "notes.txt").write_text("not a recording")
    for given, out in ((str(recordings), "pred1"), (str(recordings), "pred2"), (f"{recordings}/**/*.csv", "pred3")):
        command = ["predict", str(checkpoint), given, "--out", str(recordings / out), "--workers", "2", "--no-progress"]
        result = CliRunner().invoke(app, [*command, "--json"])
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout)
        assert (printed["found"], printed["predicted"], printed["skipped"]) == (2, 2, 0), result.stderr
        assert printed["not_read_by_suffix"] == ({".txt": 1} if given == str(recordings) else {})
        assert "warnings" not in printed or all(".txt" in line for line in printed["warnings"]), printed["warnings"]
        shown = " ".join(result.stderr.split())
        for earlier in ("pred1", "pred2")[: ("pred1", "pred2", "pred3").index(out)]:
            assert shown.count(f"{recordings / earlier}: the output of an earlier biofound predict") == 1, shown
    # An earlier output given as RECORDINGS holds no recording: said so, naming it.
    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings / "pred1"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert f"no file there outside the earlier predict output {recordings / 'pred1'}; check the path" in " ".join(
        result.output.split()
    )
    # Another tool's summary.json cut short beside the recordings hides none of them.
    (recordings / "summary.json").write_text('{"cut')
    printed = _predict(str(checkpoint), str(recordings), "--out", str(tmp_path / "beside"))
    assert (printed["found"], printed["predicted"], printed["not_read_by_suffix"]) == (2, 2, {".json": 1, ".txt": 1})


def test_a_femba_checkpoint_recording_another_window_than_its_model_takes_is_refused_in_one_line(tmp_path) -> None:
    """A record edited after training (n_times 200 of a FEMBA built for 256) failed in torch with a traceback."""
    checkpoint = save_small(
        tmp_path / "model.safetensors", "femba", ch_names=CHANNELS, sfreq=200.0, preprocessing=emg_chain(200), n_times=200
    )
    command = ["predict", str(checkpoint), str(write_emg_recordings(tmp_path / "rec", 700)), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*command, "--workers", "2", "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"] == (
        f"{checkpoint}: its metadata records n_times 200 but the FEMBA model it holds is built for 256 (seq_length of "
        "constructor_kwargs); the record was changed after training, so use the checkpoint as training wrote it, "
        "or save it again with n_times=256"
    )
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_a_recordings_own_files_are_not_counted_as_files_not_read(tmp_path) -> None:
    """BrainVision data and marker files belong to their header: only the CSV files beside them are named."""
    checkpoint, signal = _edf_model_and_brainvision_recordings(tmp_path)
    write_emg_recordings(tmp_path / "rec", 100)  # two CSV files an edf model does not read

    result = CliRunner().invoke(
        app, ["predict", str(checkpoint), str(tmp_path / "rec"), "--out", str(tmp_path / "out"), "--workers", "2", "--json"]
    )

    assert result.exit_code == 0, result.output
    warning = f"2 files in {tmp_path / 'rec'} are not edf recordings and were not read: 2 .csv"
    assert " ".join(result.stderr.split()).count(warning) == 1, result.stderr
    summary = json.loads(Path(json.loads(result.stdout.strip().splitlines()[-1])["summary"]).read_text())
    assert summary["predicted"] == 2 and summary["not_read_by_suffix"] == {".csv": 2}


def test_info_counts_the_journal_lines_a_rerun_reads_not_a_torn_one(tmp_path) -> None:
    """tables28: `info` counted a journal's tables by its newlines, so a line a kill cut short that a later line
    followed (a run since starts its line on a line of its own; an earlier biofound ran on from it) counted as a table
    the re-run would skip, though the re-run passes it over and predicts that recording again."""
    out = tmp_path / "out"
    out.mkdir()
    run = {"model_sha256": "0" * 64, "runtime": "pytorch", "format": "csv", "channels": CHANNELS}
    lines = [
        json.dumps({**run, "entry": {"source_path": str(tmp_path / f"R_{index}.csv"), "status": "predicted"}})
        for index in range(3)
    ]
    torn = lines[1][:-20]
    (out / "journal.jsonl").write_text(f"{lines[0]}\n{torn}\n{lines[2]}\n{torn}")  # torn mid-file and at its end

    result = CliRunner().invoke(app, ["info", str(out), "--json"])

    assert result.exit_code == 0, result.output
    described = json.loads(result.stdout)
    assert described["journals"] == [str(out / "journal.jsonl")] and described["journal_tables"] == 2, described


def test_info_describes_a_predict_folder_by_its_summaries(tmp_path) -> None:
    """`biofound info` on a predict --out folder said it was not a run, checkpoint or export folder (exit 2)."""
    checkpoint = emg_model(tmp_path / "model.safetensors")
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    np.savetxt(recordings / "R_0_C_2_EMG.csv", np.zeros((10, 4)), delimiter=",")  # shorter than one window: skipped
    (recordings / "notes.txt").write_text("a file predict does not read")
    out = tmp_path / "out"
    for shard in ("1/2", "2/2"):  # an array job: one summary per slice, both described together
        result = CliRunner().invoke(
            app, ["predict", str(checkpoint), str(recordings), "--out", str(out), "--shard", shard, "-j", "2"]
        )
        assert result.exit_code == 0, result.output
    summaries = sorted(str(path) for path in out.glob("summary.slice-*.json"))
    assert len(summaries) == 2

    described = json.loads(CliRunner().invoke(app, ["info", str(out), "--json"]).stdout)

    assert described["kind"] == "predictions" and described["model"] == str(checkpoint)
    assert (described["found"], described["predicted"], described["skipped"], described["not_read"]) == (3, 2, 1, 1)
    assert described["skipped_by_reason"] == {"too_short": 1} and described["runtime"] == "pytorch"
    assert (described["tables"], described["tables_missing"], described["summaries"]) == (2, [], summaries)
    assert described["slices"] == ["1/2", "2/2"] and described["format"] == "csv"
    # One of its tables (a recording's name in its first column) is summed up by its folder, as a summary is; it was
    # "not a numeric ','-separated table (line 2, column 1 holds 'R_0_C_0_EMG' ...)", exit 1.
    table = CliRunner().invoke(app, ["info", str(out / "R_0_C_0_EMG.csv"), "--json"])
    assert table.exit_code == 0 and json.loads(table.stdout) == described, table.output
    # A summary an older biofound wrote held the files not read as a dict under not_read itself.
    for path in summaries:
        older = json.loads(Path(path).read_text())
        older["not_read"] = older.pop("not_read_by_suffix")
        Path(path).write_text(json.dumps(older))
    assert json.loads(CliRunner().invoke(app, ["info", str(out), "--json"]).stdout)["not_read"] == 1
    (out / "R_0_C_0_EMG.csv").unlink()
    again = CliRunner().invoke(app, ["info", summaries[0], "--json"])  # a summary file: its folder is described
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["tables_missing"] == [str(out / "R_0_C_0_EMG.csv")]
    shown = CliRunner().invoke(app, ["info", str(out)])
    assert shown.exit_code == 0 and f"Predictions {out}" in " ".join(shown.stdout.split()), shown.output


@pytest.mark.parametrize("rerun", [[], ["--force"]])
def test_info_counts_each_recording_once_after_the_slices_and_a_whole_run_into_the_same_folder(tmp_path, rerun) -> None:
    """After `--shard 1/2`, `--shard 2/2` and a whole run (a re-run that skips them, or `--force`), `info` added
    the three summaries up: 6 recordings found of 3, 4 tables of 2, the file not read counted twice."""
    checkpoint = emg_model(tmp_path / "model.safetensors")
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    np.savetxt(recordings / "R_0_C_2_EMG.csv", np.zeros((10, 4)), delimiter=",")  # shorter than one window: skipped
    (recordings / "notes.txt").write_text("a file predict does not read")
    out = tmp_path / "out"
    for extra in (["--shard", "1/2"], ["--shard", "2/2"], rerun):
        result = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings), "--out", str(out), "-j", "2", *extra])
        assert result.exit_code == 0, result.output

    described = json.loads(CliRunner().invoke(app, ["info", str(out), "--json"]).stdout)

    done = (0, 2) if not rerun else (2, 0)
    assert (described["found"], described["skipped"], described["not_read"], described["tables"]) == (3, 1, 1, 2)
    assert (described["predicted"], described["already_done"]) == done, described
    assert described["skipped_by_reason"] == {"too_short": 1} and len(described["summaries"]) == 3


def test_info_of_a_rerun_folder_counts_as_the_runs_summary_does(tmp_path) -> None:
    """`info` of a predict folder and the run's summary count its recordings with one function (entry_counts): a
    re-run that finds some done, predicts a new one and skips one too short gives the same counts both ways."""
    checkpoint = emg_model(tmp_path / "model.safetensors")
    recordings = write_emg_recordings(tmp_path / "rec", 400)
    out = tmp_path / "out"
    _predict(str(checkpoint), str(recordings), "--out", str(out))
    np.savetxt(recordings / "R_0_C_2_EMG.csv", np.zeros((10, 4)), delimiter=",")  # shorter than one window: skipped
    np.savetxt(recordings / "R_0_C_3_EMG.csv", np.random.default_rng(3).normal(size=(600, 4)), delimiter=",", fmt="%.5f")

    summary = _predict(str(checkpoint), str(recordings), "--out", str(out))
    described = CliRunner().invoke(app, ["info", str(out), "--json"])

    assert described.exit_code == 0, described.output
    keys = ("found", "predicted", "already_done", "skipped", "skipped_by_reason", "windows", "windows_predicted")
    assert {key: summary[key] for key in keys} == {key: json.loads(described.stdout)[key] for key in keys}
    assert (summary["found"], summary["predicted"], summary["already_done"], summary["skipped"]) == (4, 1, 2, 1)
    assert 0 < summary["windows_predicted"] < summary["windows"]


def test_info_on_a_predict_folder_whose_summary_is_cut_short_names_it_and_the_rerun_that_rewrites_it(
    classifier, tmp_path
) -> None:
    """A summary.json cut short (a copy interrupted, a full disk on another tool's copy) made `info` say the folder
    was "not a run, checkpoint, export or predict folder" (exit 2). The re-run it advises does rewrite it."""
    checkpoint, recordings = classifier
    out = tmp_path / "out"
    command = ["predict", str(checkpoint), str(recordings), "--out", str(out), "--workers", "2", "--no-progress"]
    assert CliRunner().invoke(app, command).exit_code == 0
    summary = out / "summary.json"
    summary.write_text(summary.read_text()[:100])

    for path in (out, summary):
        result = CliRunner().invoke(app, ["info", str(path)])
        said = " ".join(result.stderr.split())
        assert result.exit_code == 1 and said.count("error: ") == 1, result.output
        assert f"error: {summary}: unreadable (cut short, or not JSON)" in said and "re-run the predict command" in said
        assert "Traceback" not in result.output and "not a run" not in result.output

    again = CliRunner().invoke(app, [*command, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout.strip().splitlines()[-1])["predicted"] == 2  # which were done was unknown
    described = CliRunner().invoke(app, ["info", str(out), "--json"])
    assert described.exit_code == 0 and json.loads(described.stdout)["tables"] == 2, described.output


def test_a_rerun_predicts_again_a_recording_whose_second_file_is_rewritten(tmp_path) -> None:
    """A split FIF recording's raw-1.fif, an EEGLAB set's data file of another name: neither was stamped."""
    chain = {**emg_chain(40), "corpus": "edf", "options": {}}
    checkpoint = save_small(
        tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=chain, n_times=40
    )
    rec = tmp_path / "rec"
    rec.mkdir()
    signal = np.random.default_rng(0).normal(scale=50.0, size=(len(CHANNELS), 70_000))
    info = mne.create_info(CHANNELS, 200.0, "eeg")
    # MNE keeps 1 MB free at the end of each file: 2 MB splits hold ~1 MB of samples each.
    mne.io.RawArray(signal * 1e-6, info, verbose="error").save(rec / "long_raw.fif", split_size="2MB", verbose="error")
    write_eeglab(rec / "run1.set", signal[:, :400], 200.0, CHANNELS, data_file="session-7.fdt")
    command = [str(checkpoint), str(rec), "--out", str(tmp_path / "out"), "--workers", "2"]
    first = _predict(*command)
    assert {entry["recording_id"]: entry["status"] for entry in first["recordings"]} == {
        "long_raw": "predicted",
        "run1": "predicted",
    }
    assert first["not_read_by_suffix"] == {}  # long_raw-1.fif and session-7.fdt are files of their recordings
    before = (tmp_path / "out" / "run1.csv").read_text()

    (rec / "long_raw-1.fif").write_bytes((rec / "long_raw-1.fif").read_bytes())  # written again (a copy refreshed)
    again = _predict(*command)
    assert {entry["recording_id"]: entry["status"] for entry in again["recordings"]} == {
        "long_raw": "predicted",
        "run1": "already_done",
    }
    stamp = (rec / "session-7.fdt").stat()
    (rec / "session-7.fdt").write_bytes(np.asarray(-signal[:, :400].T, dtype="<f4").tobytes())  # exported again
    os.utime(rec / "session-7.fdt", ns=(stamp.st_atime_ns, stamp.st_mtime_ns - 10**9))  # with an older time (rsync -t)
    third = _predict(*command)
    assert {entry["recording_id"]: entry["status"] for entry in third["recordings"]} == {
        "long_raw": "already_done",
        "run1": "predicted",
    }
    assert (tmp_path / "out" / "run1.csv").read_text() != before
    last = _predict(*command)
    assert (last["predicted"], last["already_done"]) == (0, 2)


def test_new_recordings_are_predicted_whatever_the_training_labels_csv_lists(tmp_path) -> None:
    """A model trained through a labels CSV kept it in its chain: predict on new recordings looked them
    up in it, and refused ("listed file(s) not found under the root") or left them all out."""
    labels, trained, new = tmp_path / "labels.csv", tmp_path / "trained", tmp_path / "new"
    chain = {**emg_chain(40), "corpus": "edf", "options": {"labels_csv": str(labels)}}
    checkpoint = save_small(
        tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=chain, n_times=40
    )
    signal = np.random.default_rng(0).normal(scale=50.0, size=(len(CHANNELS), 400))
    write_brainvision(trained / "a.vhdr", signal, 200.0, CHANNELS)
    for name in ("c", "d"):
        write_brainvision(new / f"{name}.vhdr", signal, 200.0, CHANNELS)
    labels.write_text("file,label\na.vhdr,0\n")
    command = ["predict", str(checkpoint), str(new), "--out", str(tmp_path / "out"), "--workers", "2", "--json"]

    result = CliRunner().invoke(app, command)

    assert result.exit_code == 0, result.output
    summary = json.loads(Path(json.loads(result.stdout.strip().splitlines()[-1])["summary"]).read_text())
    assert summary["predicted"] == 2 and summary["not_read_by_suffix"] == {}
    assert "labels" not in " ".join(result.stderr.split())


def test_a_luna_checkpoint_predicts_recordings_of_another_montage_on_the_channels_a_recipe_names(tmp_path) -> None:
    """LUNA places each channel by its electrode position, so recordings of another montage (3 electrodes,
    new 10-20 names, where the model was trained on 5) are predicted on their own channels from a --recipe;
    without one they were skipped as needing "every channel it was trained on", with nothing to do."""
    chain = {"corpus": "edf", "options": {}, **ChainConfig(window_seconds=80 / 256, sfreq=256.0).to_json_dict()}
    checkpoint = save_small(tmp_path / "model.safetensors", "luna", task="bc", num_classes=2, sfreq=256.0, preprocessing=chain)
    signal = np.random.default_rng(0).normal(scale=20.0, size=(3, 512))
    for name in ("a", "b"):
        write_brainvision(tmp_path / "rec" / f"{name}.vhdr", signal, 256.0, ["Fp2", "T7", "Cz"])

    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(tmp_path / "rec"), "--out", str(tmp_path / "none")])
    assert result.exit_code == 1, result.output
    skipped = json.loads((tmp_path / "none" / "summary.json").read_text())["recordings"][0]["message"]
    assert skipped.endswith(
        "missing required channels FP1, C3, C4, O1; the file has FP2, T3, CZ; LUNA takes the channels a recording has, "
        "each placed by its electrode position: pass --recipe whose [preprocess] channels lists those these recordings have"
    )

    recipe = tmp_path / "other-montage.toml"
    recipe.write_text('[preprocess]\ncorpus = "edf"\nsfreq = 256\nwindow_seconds = 0.3125\nchannels = ["Fp2", "T7", "Cz"]\n')
    summary = _predict(str(checkpoint), str(tmp_path / "rec"), "--out", str(tmp_path / "out"), "--recipe", str(recipe))
    assert (summary["predicted"], summary["channels"]) == (2, ["FP2", "T3", "CZ"])
    assert len(_rows(tmp_path / "out" / "a.csv")) == 6
    # Other channels into the same folder are another run: predicted again, not taken as done.
    trained = tmp_path / "trained.toml"
    trained.write_text('[preprocess]\ncorpus = "edf"\nsfreq = 256\nwindow_seconds = 0.3125\nchannels = ["Fp2", "T7"]\n')
    again = _predict(str(checkpoint), str(tmp_path / "rec"), "--out", str(tmp_path / "out"), "--recipe", str(trained))
    assert (again["predicted"], again["already_done"], again["channels"]) == (2, 0, ["FP2", "T3"])


@pytest.mark.parametrize(("names", "expected"), [(["force", "angle"], ["force", "angle"]), (None, ["output0", "output1"])])
def test_a_regression_head_of_several_outputs_summarises_every_output(tmp_path, names, expected) -> None:
    """A head of two outputs (three steps each) reported its first output alone, the first step of it,
    in ``predicted_label`` and ``mean_prediction``, though evaluate scores every output."""
    checkpoint = emg_model(
        tmp_path / "model.safetensors",
        task="regression",
        num_classes=2,
        overrides={"reg_target_len": 3},
        **({"label_names": names} if names else {}),
    )
    summary = _predict(str(checkpoint), str(write_emg_recordings(tmp_path / "rec", 200)), "--out", str(tmp_path / "out"))
    assert summary["label_names"] == []
    for entry in summary["recordings"]:
        rows = _rows(Path(entry["output"]))
        step_columns = [f"prediction_{name}/{step}" for step in range(3) for name in expected]
        assert list(rows[0])[4:] == [f"predicted_{name}" for name in expected] + step_columns
        for row in rows:  # each window's predicted value of an output is its mean over the steps
            for name in expected:
                steps = [float(row[f"prediction_{name}/{step}"]) for step in range(3)]
                assert float(row[f"predicted_{name}"]) == pytest.approx(np.mean(steps), rel=1e-5, abs=1e-6)
        assert "mean_prediction" not in entry
        assert list(entry["mean_predictions"]) == expected
        for name in expected:
            window_means = [float(row[f"predicted_{name}"]) for row in rows]
            assert entry["mean_predictions"][name] == pytest.approx(np.mean(window_means), rel=1e-5, abs=1e-6)
    # The exported graph names and summarises the outputs alike (config.json records the names).
    from biofound_cli.export import export_checkpoint

    export_checkpoint(checkpoint, "onnx", tmp_path / "export")
    onnx = _predict(str(tmp_path / "export"), str(tmp_path / "rec"), "--out", str(tmp_path / "onnx"))
    for ours, theirs in zip(summary["recordings"], onnx["recordings"], strict=True):
        assert list(theirs["mean_predictions"]) == expected
        for name in expected:
            assert theirs["mean_predictions"][name] == pytest.approx(ours["mean_predictions"][name], abs=5e-5)


# Imported by every interpreter of the run (the CLI's and its workers', forked or spawned): a reading library that
# crashes in C on one recording.
CRASH_ON_ONE = """
import os, signal
from biofound_cli.corpora import emg_csv

_read = emg_csv.EmgCsvCorpus.read


def read(self, ref):
    if ref.path.name == "R_0_C_1_EMG.csv":
        os.kill(os.getpid(), signal.SIGSEGV)
    return _read(self, ref)


emg_csv.EmgCsvCorpus.read = read
"""


def _crashing_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "patch").mkdir()
    (tmp_path / "patch" / "sitecustomize.py").write_text(CRASH_ON_ONE)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "patch"), os.environ.get("PYTHONPATH", "")])}


def test_a_recording_that_crashes_its_worker_is_skipped_and_predict_goes_on(classifier, tmp_path) -> None:
    """A pool worker that died ended predict ("a worker process died", exit 1), and every re-run met the same file
    again. The recordings in flight are now retried each alone: the one that crashes its worker alone is skipped as
    ``worker_died``, naming the signal; the others are predicted; a re-run predicts nothing more."""
    checkpoint, recordings = classifier
    out = tmp_path / "out"
    args = ["predict", checkpoint, recordings, "--out", out, "--workers", "2", "--json", "--no-progress"]
    env = _crashing_env(tmp_path)
    for _ in range(2):
        done = subprocess.run(biofound(*args), capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        [skip] = [line for line in done.stderr.splitlines() if line.startswith("warning: skipped (")]
        assert skip.startswith(f"warning: skipped (worker_died): {recordings / 'R_0_C_1_EMG.csv'}: ") and "SIGSEGV" in skip
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["predicted"], summary["already_done"], summary["skipped_by_reason"]) == (0, 1, {"worker_died": 1})
    assert not summary["interrupted"] and sorted(path.name for path in out.glob("*.csv")) == ["R_0_C_0_EMG.csv"]


def test_a_stop_as_a_dead_workers_recordings_are_retried_stops_predict_as_any_stop(classifier, tmp_path) -> None:
    """SIGTERM to the group as the recordings of a pool whose worker died are about to be retried: the run stops as
    on any stop (143, the summary interrupted, no worker left), and no recording is skipped as ``worker_died``."""
    checkpoint, recordings = classifier
    out = tmp_path / "out"
    args = ["predict", checkpoint, recordings, "--out", out, "--workers", "2", "--json", "--no-progress"]
    where = "biofound_cli.store.worker_pool:_retried_alone"
    process = start_in_own_group(biofound_signalled_as_it_calls(where, "SIGTERM", *args), env=_crashing_env(tmp_path))
    stdout, stderr = process.communicate(timeout=300)
    assert_group_gone(process.pid)
    assert process.returncode == ExitStatus.TERMINATED and "Traceback" not in stderr, stderr
    assert "stopped by SIGTERM" in json.loads(stdout)["error"] and "worker_died" not in stderr, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and "worker_died" not in summary["skipped_by_reason"]


def test_ctrl_c_as_the_done_run_writes_its_summary_leaves_it_whole_then_stops_the_run_with_130(classifier, tmp_path) -> None:
    """Ctrl-C to the group as the summary was written interrupted the write: no summary.json, and the generic Ctrl-C
    line. Now the summary is written whole, then predict's own stop line, 130."""
    checkpoint, recordings = classifier
    out = tmp_path / "out"
    args = ["predict", checkpoint, recordings, "--out", out, "--workers", "2", "--json", "--no-progress"]
    where = "biofound_cli.prediction.run:write_json_atomic"  # the summary, once every table moved in
    process = start_in_own_group(biofound_signalled_as_it_calls(where, "SIGINT", *args))
    stdout, stderr = process.communicate(timeout=300)
    assert_group_gone(process.pid)
    assert process.returncode == ExitStatus.INTERRUPTED and "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stopped by Ctrl-C after 2 recordings predicted" in errors[0], stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["predicted"] == summary["found"] == 2 and len(summary["recordings"]) == 2


def test_a_rerun_counts_the_windows_it_predicted_apart_from_those_of_its_recordings_already_done(tmp_path) -> None:
    """A re-run into the same --out said `windows: 8` beside `predicted: 0`, as if it had predicted them. ``windows``
    stays the windows of the run's recordings with a table (as preprocess's ``windows``), and ``windows_predicted``
    counts this run's, in summary.json and the --json summary alike."""
    checkpoint, out = emg_model(tmp_path / "model.safetensors"), tmp_path / "out"
    recordings = write_emg_recordings(tmp_path / "rec", 700)
    first = _predict(str(checkpoint), str(recordings), "--out", str(out))
    assert first["predicted"] == 2 and first["windows_predicted"] == first["windows"] > 0
    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(recordings), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    again = json.loads(Path(printed["summary"]).read_text())
    for summary in (printed, again):
        assert (summary["predicted"], summary["already_done"], summary["windows_predicted"]) == (0, 2, 0), summary
        assert summary["windows"] == first["windows"]


def test_a_summary_of_an_older_biofound_is_read_in_the_new_words(tmp_path) -> None:
    """Summaries written before the twenty-sixth round named each entry's window count ``n_windows``; they lie in
    users' --out folders: a re-run keeps their entries (already done) and counts their windows, in today's words."""
    checkpoint = save_small(
        tmp_path / "model.safetensors", "tinymyo", ch_names=CHANNELS, sfreq=200.0, preprocessing=emg_chain(N_TIMES["tinymyo"])
    )
    recordings, out = write_emg_recordings(tmp_path / "rec", 700), tmp_path / "out"
    first = _predict(str(checkpoint), str(recordings), "--out", str(out))
    assert first["windows"] > 0 and all("n_windows" not in entry for entry in first["recordings"])
    older = [{("n_windows" if key == "windows" else key): value for key, value in entry.items()} for entry in first["recordings"]]
    (out / "summary.json").write_text(json.dumps({**first, "recordings": older}))
    described = CliRunner().invoke(app, ["info", str(out), "--json"])
    assert described.exit_code == 0, described.output
    assert json.loads(described.stdout)["windows"] == first["windows"]

    again = _predict(str(checkpoint), str(recordings), "--out", str(out))
    assert [entry["status"] for entry in again["recordings"]] == ["already_done"] * 2
    assert [entry["windows"] for entry in again["recordings"]] == [entry["windows"] for entry in first["recordings"]]
    assert again["windows"] == first["windows"] and all("n_windows" not in entry for entry in again["recordings"])


def test_ctrl_c_before_the_first_table_says_no_recording_was_predicted(classifier, tmp_path) -> None:
    """Ctrl-C to the group as the workers started said `after 0 recordings predicted; their tables are kept,
    OUT/summary.json lists them`: there were none. It now says what a stop while the model loads says."""
    checkpoint, recordings = classifier
    out = tmp_path / "out"
    args = ["predict", checkpoint, recordings, "--out", out, "--workers", "2", "--json", "--no-progress"]
    where = "biofound_cli.prediction.run:pool_results"  # the workers started, no recording read yet
    process = start_in_own_group(biofound_signalled_as_it_calls(where, "SIGINT", *args))
    stdout, stderr = process.communicate(timeout=300)
    assert_group_gone(process.pid)
    assert process.returncode == ExitStatus.INTERRUPTED and "Traceback" not in stderr, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["predicted"] == 0, summary
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: stopped by Ctrl-C; before any recording was predicted, so re-run the same command"], stderr
    rerun = subprocess.run(biofound(*args), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and json.loads(rerun.stdout.strip().splitlines()[-1])["predicted"] == 2, rerun.stderr


def test_a_recordings_png_keeps_its_legend_off_the_curves(tmp_path, monkeypatch) -> None:
    # Six UCI EMG gestures in a legend of five columns at the upper right sat on the curves it named.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from biofound_cli.corpora.uci_emg import GESTURE_NAMES
    from biofound_cli.prediction import outputs

    figures = []
    monkeypatch.setattr(outputs, "save_png", lambda figure, path: figures.append(figure) or path)
    names = list(GESTURE_NAMES[:6])
    table = outputs.score_table("mcc", np.random.default_rng(0).dirichlet(np.ones(6), 12), names, None)
    outputs.plot_probabilities(
        tmp_path / "r.png", np.arange(12) * 1.25, 5.0, table, "TinyMyo on r, 12 windows", np.zeros(11, bool)
    )
    [figure] = figures
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    [legend] = figure.legends or [figure.axes[0].get_legend()]
    assert [text.get_text() for text in legend.get_texts()] == names
    assert not legend.get_window_extent(renderer).overlaps(figure.axes[0].get_window_extent(renderer))


def test_a_recordings_png_title_stays_inside_the_figure(tmp_path, monkeypatch) -> None:
    # A LoRA-tuned LUNA's description ran off the right edge: "... adapters merged into the weights
    # (model.safetensors) on order, 8 window" was all the PNG showed of its title.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from biofound_cli.prediction import outputs

    figures = []
    monkeypatch.setattr(outputs, "save_png", lambda figure, path: figures.append(figure) or path)
    table = outputs.score_table("bc", np.random.default_rng(0).dirichlet(np.ones(2), 8), ["normal", "abnormal"], None)
    title = "LUNA luna-base, LoRA rank 8, alpha 16.0, adapters merged into the weights (model.safetensors) on order, 8 windows"
    outputs.plot_probabilities(tmp_path / "r.png", np.arange(8) * 4.4, 4.4, table, title, np.zeros(7, dtype=bool))
    [figure] = figures
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    heading = figure.axes[0].title
    assert heading.get_text() == title
    box, frame = heading.get_window_extent(renderer), figure.bbox
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and box.y1 <= frame.y1, (box, frame)


def test_a_sigterm_to_the_group_is_announced_before_the_stopped_count_and_says_what_a_second_does(classifier, tmp_path) -> None:
    """predict printed `predict: stopped at 1/2 files` before `stopping on SIGTERM: the recordings in progress
    finish...`, so its count came before the recordings in flight finished, and the announcement said what a second
    Ctrl-C does after a SIGTERM. Now it speaks in preprocess's order and says what a second SIGTERM does. It said
    "then the report is written" (preprocess's words) where predict writes summary.json: it now names that file."""
    checkpoint, recordings = classifier
    args = ["predict", checkpoint, recordings, "--out", tmp_path / "out", "--workers", "2", "--no-progress"]
    where = "biofound_cli.prediction.run:_finish:2"  # the first table moved in, the second recording read
    # Off a terminal, stdout and stderr into one file as a scheduler's log has them: the order is the one read.
    command = biofound_signalled_as_it_calls(where, "SIGTERM", *args)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    stderr, _ = process.communicate(timeout=300)
    assert_group_gone(process.pid)
    assert process.returncode == ExitStatus.TERMINATED, stderr
    lines = stderr.splitlines()
    said = "stopping on SIGTERM: the recordings in progress finish, then summary.json is written;"
    stopping = [i for i, line in enumerate(lines) if said in line]
    stopped = [i for i, line in enumerate(lines) if "predict: stopped at 1/2 files" in line]
    assert len(stopping) == len(stopped) == 1 and stopping[0] < stopped[0], stderr
    assert lines[stopping[0]].endswith("a second SIGTERM changes nothing, a Ctrl-C stops at once"), stderr
