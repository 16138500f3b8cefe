"""preprocess says which files under --root it passes over, as predict does, and which recordings the recipe left out.

A ``.bdf`` or ``.txt`` beside the ``.edf`` recordings got no word: shards for some files, silence
about the others. An ``.edf`` that ``labels.csv`` does not list is no "file of another kind": it is
left out on purpose (or by a mistyped row), and said so under its own reason.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from fixtures.edf_files import write_eeg
from fixtures.emg_csv import emg_model, write_emg_recordings
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora import base

runner = CliRunner()
COUNTS = ("found", "written", "already_done", "skipped", "skipped_by_reason", "excluded", "excluded_by_reason", "not_read")
"""The counts preprocess's --json, its report file and info DIR all give, in the same words (predict's too)."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Two listed .edf recordings, one .edf labels.csv leaves out, a .bdf, a .txt and a README; the recipe reads .edf only."""
    folder = tmp_path_factory.mktemp("edf")
    root, labels, recipe = folder / "raw", folder / "labels.csv", folder / "edf.toml"
    for name in ("a.edf", "b.edf", "unlisted.edf", "other.bdf"):
        write_eeg(root / name, seconds=10.0, fmt=name.split(".")[1])
    (root / "notes.txt").write_text("session notes")
    # A data set's own documentation is not a file of another kind (the SCP1 sample's DESCRIPTION.txt was).
    (root / "README.md").write_text("# the data set")
    (root / "DESCRIPTION.txt").write_text("what the recordings are")
    labels.write_text("file,label\na.edf,rest\nb.edf,task\n")
    recipe.write_text(
        f'[preprocess]\ncorpus = "edf"\n[preprocess.options]\nlabels_csv = "{labels.as_posix()}"\nextensions = [".edf"]\n'
    )
    return root, labels, recipe


def _preprocess(root: Path, out: Path, recipe: Path, *extra: str) -> tuple[dict, str]:
    """The --json summary and the log of ``preprocess edf`` with two workers, as a user runs it."""
    command = ["preprocess", "edf", "--recipe", str(recipe), "--root", str(root), "--out", str(out)]
    result = runner.invoke(app, [*command, "--workers", "2", "--json", "--no-progress", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), " ".join(result.stderr.split())


def _info(out: Path) -> dict:
    result = runner.invoke(app, ["info", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_files_not_read_and_recordings_left_out_are_said_reported_and_summed_by_info(corpus, tmp_path):
    root, labels, recipe = corpus
    out = tmp_path / "shards"
    not_read = f"2 files in {root} are not edf recordings and were not read: 1 .bdf, 1 .txt; docs/corpora/edf.md"
    left_out = f"1 recording under {root} is not listed in {labels} and was left out (unlisted.edf); add a row"
    for run, done in (("first", 0), ("again", 2)):  # a re-run with everything done says and counts the same
        summary, log = _preprocess(root, out, recipe)
        assert (summary["written"], summary["already_done"]) == (2 - done, done), run
        assert log.count(not_read) == 1 and log.count(left_out) == 1, log
        assert (summary["not_read"], summary["not_read_by_suffix"]) == (2, {".bdf": 1, ".txt": 1})
        assert (summary["excluded"], summary["excluded_by_reason"]) == (1, {"not_in_labels_csv": 1})
        # One record: the report file says what --json says, in the same words, and info sums it alike.
        report = json.loads((out / "preprocess_report.edf.json").read_text())
        said = {key: value for key, value in summary.items() if key != "warnings"}  # the command's, not the run's
        assert {key: report[key] for key in said} == said
        info = _info(out)
        assert {key: info[key] for key in (*COUNTS, "not_read_by_suffix", "windows")} == {
            key: summary[key] for key in (*COUNTS, "not_read_by_suffix", "windows")
        }
        assert (info["found"], info["written"] + info["already_done"]) == (2, 2)


def test_slices_count_the_files_not_read_once(corpus, tmp_path):
    root, _, recipe = corpus
    out = tmp_path / "shards"
    first, _ = _preprocess(root, out, recipe, "--shard", "1/2")
    second, _ = _preprocess(root, out, recipe, "--shard", "2/2")
    assert (first["not_read"], first["excluded"]) == (2, 1) and (second["not_read"], second["excluded"]) == (0, 0)
    info = _info(out)
    assert info["slices"] == ["1/2", "2/2"] and info["written"] == 2
    assert (info["not_read"], info["not_read_by_suffix"]) == (2, {".bdf": 1, ".txt": 1})
    assert (info["excluded"], info["excluded_by_reason"]) == (1, {"not_in_labels_csv": 1})


def test_a_labels_csv_inside_the_root_is_read_and_a_reason_with_no_recording_is_not_counted(tmp_path):
    # The common layout: labels.csv beside the recordings, every one of them listed.
    root, out, packed = tmp_path / "raw", tmp_path / "shards", tmp_path / "packed"
    for subject in ("s1", "s2", "s3"):
        write_eeg(root / subject / "a.edf", seconds=10.0)
    (root / "labels.csv").write_text("file,label\n" + "".join(f"{s}/a.edf,{s}\n" for s in ("s1", "s2", "s3")))
    recipe = tmp_path / "edf.toml"
    recipe.write_text(f'[preprocess]\ncorpus = "edf"\n[preprocess.options]\nlabels_csv = "{(root / "labels.csv").as_posix()}"\n')
    summary, log = _preprocess(root, out, recipe)
    assert "not read" not in log and summary["not_read"] == 0 and summary["not_read_by_suffix"] == {}, log
    assert summary["excluded"] == 0 and summary["excluded_by_reason"] == {}
    report = json.loads((out / "preprocess_report.edf.json").read_text())
    assert report["not_read_by_suffix"] == {} and report["excluded_by_reason"] == {}
    info = _info(out)
    assert info["not_read_by_suffix"] == {} and info["excluded_by_reason"] == {}
    packing = runner.invoke(app, ["pack", str(out), "--out", str(packed), "--json", "--no-progress"])
    assert packing.exit_code == 0, packing.output
    assert "excluded" not in packing.stderr and json.loads(packing.stdout)["preprocess_excluded"] == 0


def test_info_refuses_slices_written_with_different_settings_as_pack_does(corpus, tmp_path):
    # docs/exit-status.md: status 2 for info, as for pack, with the differing field named.
    root, _, recipe = corpus
    out = tmp_path / "shards"
    _preprocess(root, out, recipe, "--shard", "1/2")
    # preprocess itself refuses such a slice without --force (discovery27); with it, the reports still disagree.
    _preprocess(root, out, recipe, "--shard", "2/2", "--set", "preprocess.window_seconds=2", "--force")
    for command in (["info", str(out)], ["pack", str(out), "--out", str(tmp_path / "packed")]):
        result = runner.invoke(app, command)
        error = " ".join(result.stderr.split())
        assert result.exit_code == 2 and error.count("error:") == 1, result.output
        assert (
            "were written with different preprocess settings (config.stride_seconds 5.0 vs 2.0, config.window_seconds 5.0 vs 2.0)"
            in error
        ), error


def test_the_files_not_read_are_counted_from_discoverys_walk_of_the_root(corpus, tmp_path, monkeypatch):
    # Counting them walked --root a second time: each file's stat twice, minutes on a network file system.
    root, _, recipe = corpus
    walked: list[str] = []
    walk = os.walk

    def counted_walk(top, *args, **kwargs):
        walked.append(str(top))
        return walk(top, *args, **kwargs)

    monkeypatch.setattr(base.os, "walk", counted_walk)
    summary, _ = _preprocess(root, tmp_path / "shards", recipe)
    assert walked.count(str(root)) == 1
    assert summary["not_read_by_suffix"] == {".bdf": 1, ".txt": 1} and summary["written"] == 2


def test_shards_written_inside_the_root_are_not_called_files_not_read(corpus, tmp_path):
    # --out RAW/shards: the re-run said "9 files in RAW are not edf recordings ...: 2 .h5, 1 .json, ...".
    source, _, recipe = corpus
    root = tmp_path / "raw"
    shutil.copytree(source, root)
    not_read = f"2 files in {root} are not edf recordings and were not read: 1 .bdf, 1 .txt; docs/corpora/edf.md"
    for run, done in (("first", 0), ("again", 2)):
        summary, log = _preprocess(root, root / "shards", recipe)
        assert summary["already_done"] == done, run
        assert summary["not_read_by_suffix"] == {".bdf": 1, ".txt": 1} and log.count(not_read) == 1, log


def test_a_predict_output_folder_inside_the_root_is_passed_over_as_predict_passes_it_over(tmp_path):
    """``predict RAW --out RAW/predictions``, then ``preprocess --root RAW``: the predict tables (named as the
    recordings, ``R_0_C_0_EMG.csv``) were read as recordings and skipped as ``duplicate_id``, and the PNGs and
    summary counted among the files not read."""
    root = write_emg_recordings(tmp_path / "raw", 400)
    (root / "notes.txt").write_text("session notes")
    checkpoint = emg_model(tmp_path / "model.safetensors")
    predictions = root / "predictions"
    predicted = runner.invoke(app, ["predict", str(checkpoint), str(root), "--out", str(predictions), "--workers", "2"])
    assert predicted.exit_code == 0 and len(list(predictions.glob("*.csv"))) == 2, predicted.output
    command = ["preprocess", "emg-csv", "--root", str(root), "--out", str(tmp_path / "shards"), "--workers", "2", "--json"]

    result = runner.invoke(app, [*command, "--no-progress"])

    assert result.exit_code == 0, result.output
    summary, log = json.loads(result.stdout), " ".join(result.stderr.split())
    assert (summary["found"], summary["written"], summary["skipped"]) == (2, 2, 0), log
    assert summary["not_read_by_suffix"] == {".txt": 1}, log
    assert log.count(f"{predictions}: the output of an earlier biofound predict (its summary or journal is there)") == 1
