"""Two corpora preprocessed into one shards folder keep a report each.

Each corpus goes into its own sub-folder of ``--out`` and ``pack`` packs them together, but they
shared one ``preprocess_report.json``: the second run replaced the first's, so ``pack``'s summary,
``info`` of the folder and the refusal of the same corpus with other settings saw the last corpus only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures.emg_csv import CHANNELS, PACK, TABLE_OPTIONS, preprocess_section, write_recordings
from typer.testing import CliRunner

from biofound_cli.cli.app import app

RECIPE = preprocess_section(0.5, 0.5) + PACK
TABLE = ["--root", "tables", "--set", "preprocess.corpus=table", "--set", TABLE_OPTIONS]


def _invoke(*args: str):
    return CliRunner().invoke(app, [*args, "--no-progress"])


def _json(*args: str) -> dict:
    result = _invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _project(folder: Path) -> Path:
    """Two subjects of two 2-second EMG CSV recordings (``raw/s0/0.csv``), three tables (``tables/t0.csv``), a recipe."""
    rng = np.random.default_rng(0)
    write_recordings(folder / "raw", subjects=2, repetitions=2, samples=400, rng=rng)
    (folder / "tables").mkdir()
    for index in range(3):
        np.savetxt(folder / "tables" / f"t{index}.csv", rng.normal(size=(400, 4)), delimiter=",")
    (folder / "pre.toml").write_text(RECIPE)
    return folder / "pre.toml"


@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory) -> Path:
    """An EMG CSV corpus and a table corpus preprocessed, one after the other, into one ``shards``."""
    folder = tmp_path_factory.mktemp("two")
    recipe = _project(folder)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        assert _json("preprocess", "--recipe", str(recipe))["found"] == 4
        assert _json("preprocess", "--recipe", str(recipe), *TABLE)["found"] == 3
    return folder


def test_each_corpus_keeps_its_report_and_pack_sums_both(two_corpora, monkeypatch):
    monkeypatch.chdir(two_corpora)

    summary = _json("pack", "--recipe", "pre.toml", "--out", "packed-both")

    preprocess = summary["preprocess"]
    assert (preprocess["found"], preprocess["written"]) == (7, 7)
    reports = ["preprocess_report.emg-csv.json", "preprocess_report.table.json"]
    assert preprocess["report_files"] == reports
    assert sorted(path.name for path in (two_corpora / "shards").glob("*.json")) == reports
    assert sorted(preprocess["corpora"]) == ["emg-csv", "table"] and "corpus" not in preprocess
    assert preprocess["corpora"]["table"]["options"]["channel_names"] == CHANNELS
    assert sum(summary["recordings"].values()) == 7  # the shards of both corpora packed


def test_info_of_the_folder_sums_the_reports_of_both_corpora(two_corpora):
    info = _json("info", str(two_corpora / "shards"))
    assert (info["found"], info["written"]) == (7, 7) and info["shards_on_disk"] == {"emg-csv": 4, "table": 3}
    assert info["report_files"] == ["preprocess_report.emg-csv.json", "preprocess_report.table.json"]
    assert info == _json("info", str(two_corpora / "shards" / "preprocess_report.emg-csv.json"))


def test_the_first_corpus_with_other_settings_is_refused_after_another_corpus_ran(two_corpora, monkeypatch):
    monkeypatch.chdir(two_corpora)

    result = _invoke("preprocess", "--recipe", "pre.toml", "--set", "preprocess.window_seconds=1.0")

    assert result.exit_code == 2, result.output
    assert "shards/preprocess_report.emg-csv.json was written with other preprocess settings" in result.stderr
    assert "config.window_seconds 0.5 vs 1.0" in result.stderr
    report = json.loads((two_corpora / "shards" / "preprocess_report.emg-csv.json").read_text())
    assert report["config"]["window_seconds"] == 0.5  # nothing was started


def test_the_one_report_of_an_older_biofound_is_read_as_its_corpus_report_and_replaced(two_corpora, tmp_path, monkeypatch):
    # An older biofound wrote preprocess_report.json whichever the corpus: it lies in users' shard folders.
    shutil.copytree(two_corpora / "raw", tmp_path / "raw")
    shutil.copy(two_corpora / "pre.toml", tmp_path / "pre.toml")
    monkeypatch.chdir(tmp_path)
    _json("preprocess", "--recipe", "pre.toml")
    older = tmp_path / "shards" / "preprocess_report.json"
    (tmp_path / "shards" / "preprocess_report.emg-csv.json").rename(older)

    assert _json("info", "shards")["report_files"] == ["preprocess_report.json"]
    refused = _invoke("preprocess", "--recipe", "pre.toml", "--set", "preprocess.window_seconds=1.0")
    assert refused.exit_code == 2 and "shards/preprocess_report.json was written with other" in refused.stderr
    again = _json("preprocess", "--recipe", "pre.toml")

    assert again["already_done"] == 4 and again["report"] == str(Path("shards") / "preprocess_report.emg-csv.json")
    assert sorted(path.name for path in (tmp_path / "shards").glob("*.json")) == ["preprocess_report.emg-csv.json"]
