"""`biofound info` on a raw recording kept as a table: CSV (the `emg-csv` and `table` readers), MATLAB, NumPy.

They were refused as "unknown file type .csv", though they are what a user holds before writing a recipe for
the `table`, `emg-csv` or `db5` reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fixtures.matlab import otb_export, write_mat_v5, write_mat_v73
from typer.testing import CliRunner

import biofound_cli
from biofound_cli.cli.app import app

runner = CliRunner()
MYO_CSV = Path(biofound_cli.__file__).parent / "data" / "samples" / "emg" / "myo" / "R_0_C_0_EMG.csv"


def info_json(path: Path) -> dict:
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_csv_recording_gives_its_shape_and_header():
    info = info_json(MYO_CSV)
    assert info["kind"] == "table" and info["format"] == "csv" and info["delimiter"] == ","
    assert (info["rows"], info["columns"], info["column_names"]) == (602, 8, None)
    table = runner.invoke(app, ["info", str(MYO_CSV)])
    assert table.exit_code == 0 and table.stdout.startswith(f"Table {MYO_CSV}")


def test_a_header_and_another_separator_are_read(tmp_path):
    path = tmp_path / "grid.csv"
    path.write_text("EMG1;EMG2;AUX\n1;2;0\n3;4;0\n5;;0\n")
    info = info_json(path)
    assert info["delimiter"] == ";" and info["rows"] == 3 and info["column_names"] == ["EMG1", "EMG2", "AUX"]


def test_matlab_files_of_either_version_list_their_variables_in_matlabs_view(tmp_path):
    variables = otb_export(np.zeros((300, 5)), ["EMG1", "EMG2", "EMG3", "AUX1", "AUX2"], 2048.0)
    v5 = info_json(write_mat_v5(tmp_path / "v5.mat", variables))
    v73 = info_json(write_mat_v73(tmp_path / "v73.mat", variables))
    assert v5["kind"] == "table" and v5["variables"]["Data"] == "300×5 double"
    assert v5["variables"]["Description"] == "5×1 cell" and v5["variables"]["SamplingFrequency"] == "1×1 double"
    assert v73["variables"] == v5["variables"]


def test_a_numpy_array_gives_its_shape(tmp_path):
    np.save(tmp_path / "rec.npy", np.zeros((4, 100), dtype=np.float32))
    info = info_json(tmp_path / "rec.npy")
    assert (info["shape"], info["dtype"]) == ([4, 100], "float32")


def test_a_damaged_or_foreign_table_is_one_line_naming_it(tmp_path):
    (tmp_path / "cut.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 20)
    (tmp_path / "notes.csv").write_text("subject,age\nS01,thirty\n")
    for name, says in (("cut.mat", "not a readable MATLAB file"), ("notes.csv", "not a numeric ','-separated table")):
        result = runner.invoke(app, ["info", str(tmp_path / name)])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert result.output.startswith(f"error: {tmp_path / name}: {says}"), result.output
    # A file of no kind info knows names what it takes, tables among them.
    (tmp_path / "trials.ts.gz").write_bytes(b"\x1f\x8b")
    result = runner.invoke(app, ["info", str(tmp_path / "trials.ts.gz")])
    assert result.exit_code == 2 and "unknown file type .gz" in result.output and ".csv/.tsv/.mat/.npy" in result.output


def test_a_corpus_folder_counts_its_recordings_by_ending(tmp_path):
    """A `preprocess --root` folder was refused as "not a run, checkpoint, export, ... folder"."""
    info = info_json(MYO_CSV.parent)
    assert info["kind"] == "recordings" and info["recordings"] == 20 and info["recordings_by_suffix"] == {".csv": 20}
    assert info["first"] == str(MYO_CSV) and info["other_files"] == {}
    corpus = tmp_path / "corpus"
    (corpus / "s01").mkdir(parents=True)
    np.save(corpus / "s01" / "rec.npy", np.zeros((2, 10)))
    (corpus / "s01" / "REC.CSV").write_text("1,2\n3,4\n")
    (corpus / "README.txt").write_text("about the data set")
    info = info_json(corpus)
    assert info["recordings_by_suffix"] == {".csv": 1, ".npy": 1} and info["other_files"] == {".txt": 1}
    # A folder with no recording below it is still refused, naming what info takes.
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    result = runner.invoke(app, ["info", str(tmp_path / "notes")])
    assert result.exit_code == 2 and "nor a folder of recordings" in result.output
