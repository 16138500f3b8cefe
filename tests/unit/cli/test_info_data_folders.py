"""`biofound info` on the folders the data stages write: `preprocess --out` and `pack --out`.

Both were refused as "a folder of N .h5 files, not a run, checkpoint, export or predict folder",
though they are what a user looks at first after preprocessing and packing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import biofound_cli
from biofound_cli.cli.app import app

runner = CliRunner()
PACKAGE_DATA = Path(biofound_cli.__file__).parent / "data"
RECIPE = PACKAGE_DATA / "recipes" / "tinymyo_myo.toml"
SAMPLES = PACKAGE_DATA / "samples" / "emg" / "myo"


def info_json(path: Path) -> dict:
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def data_folders(tmp_path_factory) -> tuple[Path, Path]:
    """The bundled Myo samples preprocessed as two array-job slices (2 loader workers each) and packed."""
    root = tmp_path_factory.mktemp("myo")
    shards, packed = root / "shards", root / "packed"
    for shard in ("1/2", "2/2"):
        args = ["preprocess", "--recipe", str(RECIPE), "--root", str(SAMPLES), "--out", str(shards), "--workers", "2"]
        result = runner.invoke(app, [*args, "--shard", shard, "--quiet"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["pack", str(shards), "--recipe", str(RECIPE), "--out", str(packed), "--quiet"])
    assert result.exit_code == 0, result.output
    return shards, packed


def test_a_shard_folder_sums_its_slices_reports_and_counts_the_shards_there(data_folders):
    shards, _ = data_folders
    info = info_json(shards)
    assert info["kind"] == "shards" and info["corpus"] == "emg-csv" and info["slices"] == ["1/2", "2/2"]
    assert info["report_files"] == ["preprocess_report.emg-csv.slice-1-of-2.json", "preprocess_report.emg-csv.slice-2-of-2.json"]
    assert info["found"] == 20 and info["written"] == 20 and info["windows"] == 176 and info["skipped"] == 0
    assert info["shards_on_disk"] == {"emg-csv": 20} and info["config"]["sfreq"] == 200
    # One corpus's shards, or a report, stand for the preprocess --out folder above them.
    assert info_json(shards / "emg-csv") == info == info_json(shards / "preprocess_report.emg-csv.slice-1-of-2.json")


def test_the_reports_of_an_older_biofound_are_read_in_the_new_words(data_folders, tmp_path):
    # Reports written before the twenty-sixth round named the counts n_windows, n_windows_written and n_clipped, and
    # wrote each breakdown under the bare name (skipped: {reason: n}); they lie in users' shard folders.
    shards, _ = data_folders
    older = tmp_path / "shards"
    older.mkdir()
    for path in sorted(shards.glob("preprocess_report*.json")):
        report = json.loads(path.read_text())
        for name, was in (("windows", "n_windows"), ("windows_written", "n_windows_written"), ("clipped_values", "n_clipped")):
            report[was] = report.pop(name)
        for name, by in (("skipped", "reason"), ("excluded", "reason"), ("not_read", "suffix")):
            report[name] = report.pop(f"{name}_by_{by}")
        for entry in report["files"]:
            entry["n_windows"], entry["n_clipped"] = entry.pop("windows"), entry.pop("clipped_values")
        (older / path.name).write_text(json.dumps(report))
    counts = ("found", "written", "windows", "windows_written", "clipped_values", "skipped", "skipped_by_reason")
    described, now = info_json(older), info_json(shards)
    assert {key: described[key] for key in counts} == {key: now[key] for key in counts}
    assert described["windows"] == 176


def test_reports_that_said_their_notes_twice_are_still_read_by_info_and_pack(data_folders, tmp_path):
    # Until the twenty-ninth round a report held each note under notes and again at its top; such reports stay in
    # users' shard folders beside their shards.
    shards, _ = data_folders
    older = tmp_path / "shards"
    shutil.copytree(shards, older)
    for path in sorted(older.glob("preprocess_report*.json")):
        report = json.loads(path.read_text())
        report["notes"] = {"flat_channels_kept": 1}
        path.write_text(json.dumps({**report, **report["notes"]}))
    assert info_json(older)["windows"] == info_json(shards)["windows"] == 176
    args = ["pack", str(older), "--recipe", str(RECIPE), "--out", str(tmp_path / "packed"), "--json", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["preprocess"]["windows"] == 176


def test_a_packed_folder_shows_the_split_plan_and_each_split(data_folders):
    _, packed = data_folders
    info = info_json(packed)
    assert info["kind"] == "packed_folder" and info["seed"] == 42 and info["missing_splits"] == []
    assert info["windows"] == {"train": 87, "val": 45, "test": 44}
    assert info["train"]["windows"] == 87 and sum(info["test"]["class_counts"].values()) == 44
    # Counted in pack --json's words, at the top (the plan) and in each split (its file): how many per split.
    assert info["recordings"] == {"train": 10, "val": 5, "test": 5} and info["subjects"] == {"train": 1, "val": 1, "test": 1}
    for split in ("train", "val", "test"):
        assert info[split]["recordings"] == info["recordings"][split] and info[split]["subjects"] == 1
        assert not any(key.startswith("n_") for key in info[split])
    assert info_json(packed / "splits.json") == info
    # One word for one count, at every level of every record (the twenty-sixth round).
    plan = json.loads((packed / "splits.json").read_text())
    assert sum(entry["windows"] for entry in plan["recordings"].values()) == sum(plan["windows"].values()) == 176
    assert info_json(packed / "train.h5")["windows"] == 87
    table = runner.invoke(app, ["info", str(packed)])
    assert table.exit_code == 0 and table.stdout.startswith(f"Packed splits {packed}")


def test_a_reports_entries_count_in_the_words_of_its_top(data_folders):
    shards, _ = data_folders
    reports = [json.loads(path.read_text()) for path in sorted(shards.glob("preprocess_report*.json"))]
    entries = [entry for report in reports for entry in report["files"]]
    assert sum(entry["windows"] for entry in entries) == sum(report["windows"] for report in reports) == 176
    assert sum(entry["clipped_values"] for entry in entries) == sum(report["clipped_values"] for report in reports)
    assert not any(key.startswith("n_") for entry in entries for key in entry)


def test_damaged_reports_are_named_with_what_to_do(data_folders, tmp_path):
    shards, packed = data_folders
    broken = tmp_path / "shards"
    broken.mkdir()
    (broken / "preprocess_report.emg-csv.json").write_text('{"corpus": "emg-')
    result = runner.invoke(app, ["info", str(broken)])
    assert result.exit_code == 1 and "preprocess report cannot be read" in result.output and "Traceback" not in result.output
    (tmp_path / "packed").mkdir()
    (tmp_path / "packed" / "splits.json").write_text("[1, 2")
    result = runner.invoke(app, ["info", str(tmp_path / "packed")])
    assert result.exit_code == 1 and "splits.json: cannot be read" in result.output and "re-run pack" in result.output
