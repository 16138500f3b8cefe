from __future__ import annotations

import json

import pytest
from fixtures.shards import read_shard
from fixtures.tuh import build_tusl
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tusl_root(tmp_path_factory):
    return build_tusl(tmp_path_factory.mktemp("tusl"))


def test_csv_and_tse_labels(tusl_root, tmp_path):
    result = runner.invoke(app, ["preprocess", "tusl", "--root", str(tusl_root), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    first = read_shard(tmp_path / "tusl" / "aaaaaaaa_s001_t000.h5")
    assert first["y"].tolist() == [3, 0, 2, 0]
    assert first["attrs"]["label_names"] == ["none", "bckg", "seiz", "slow"] and first["attrs"]["task"] == "mcc"
    second = read_shard(tmp_path / "tusl" / "aaaaaaab_s001_t000.h5")
    assert second["x"].shape == (5, 22, 1280)
    assert second["y"].tolist() == [1, 1, 0, 3, 3]
    assert second["attrs"]["annotation_file"] == "aaaaaaab_s001_t000.tse"


def test_missing_annotations_skip_the_file_not_the_run(tusl_root, tmp_path):
    import shutil

    root = tmp_path / "raw"
    shutil.copytree(tusl_root, root)
    (root / "aaaaaaab" / "s001_2013" / "02_tcp_le" / "aaaaaaab_s001_t000.tse").unlink()
    out = tmp_path / "shards"
    result = runner.invoke(app, ["preprocess", "tusl", "--root", str(root), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped_by_reason"] == {"bad_annotations": 1}
    assert "aaaaaaab_s001_t000.edf: no annotation file" in result.stderr
    assert sorted(path.name for path in (out / "tusl").iterdir()) == ["aaaaaaaa_s001_t000.h5"]


def test_upper_case_file_names_keep_their_annotations(tusl_root, tmp_path):
    import shutil

    root = tmp_path / "raw"
    shutil.copytree(tusl_root, root)
    folder = root / "aaaaaaaa" / "s001_2012" / "01_tcp_ar"
    for path in folder.iterdir():  # as copied through a file system that upper-cases names
        path.rename(path.with_name(path.name.upper()))
    out = tmp_path / "shards"
    result = runner.invoke(app, ["preprocess", "tusl", "--root", str(root), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    upper = read_shard(out / "tusl" / "AAAAAAAA_S001_T000.h5")
    assert upper["y"].tolist() == [3, 0, 2, 0]
    assert upper["attrs"]["annotation_file"] == "AAAAAAAA_S001_T000.CSV"


def test_a_recording_is_stamped_with_its_annotation_file_unless_predict_reads_its_signal_alone(tusl_root):
    from biofound_cli.corpora.tusl import TUSLCorpus

    corpus = TUSLCorpus()
    refs = corpus.discover(tusl_root)
    assert [[path.name for path in corpus.source_files(ref)] for ref in refs] == [
        ["aaaaaaaa_s001_t000.edf", "aaaaaaaa_s001_t000.csv"],
        ["aaaaaaab_s001_t000.edf", "aaaaaaab_s001_t000.tse"],
    ]
    assert [corpus.source_files(ref, labels=False) for ref in refs] == [[ref.path] for ref in refs]
