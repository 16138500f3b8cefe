from __future__ import annotations

import json

import pytest
from fixtures.shards import read_shard
from fixtures.tuh import build_tueg, write_tuh_edf
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora.tueg import TUEGCorpus, TUEGOptions

runner = CliRunner()


@pytest.fixture(scope="module")
def tueg_root(tmp_path_factory):
    return build_tueg(tmp_path_factory.mktemp("tueg"))


def test_montage_follows_the_folder(tueg_root, tmp_path):
    result = runner.invoke(app, ["preprocess", "tueg", "--root", str(tueg_root), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 3
    full = read_shard(tmp_path / "tueg" / "aaaaaaaa_s001_t000.h5")
    no_ears = read_shard(tmp_path / "tueg" / "aaaaaaag_s002_t001.h5")
    assert full["x"].shape == (4, 22, 1280) and full["y"] is None and full["attrs"]["task"] == "reconstruction"
    assert no_ears["x"].shape == (4, 20, 1280)
    assert "A1-T3" not in no_ears["attrs"]["channel_names"]


def test_evaluation_subjects_are_excluded(tueg_root, tmp_path):
    eval_root = tmp_path / "tuab"
    write_tuh_edf(eval_root / "edf" / "eval" / "normal" / "01_tcp_ar" / "aaaaaaaa_s007_t000.edf", seconds=5.0)
    corpus = TUEGCorpus(TUEGOptions(exclude_roots=[eval_root], exclude_subjects=["aaaaaaag"]))
    refs = corpus.discover(tueg_root)
    assert [ref.subject for ref in refs] == ["aaaaaaaf"]
    assert corpus.excluded == {"excluded_subject": 2}
    out = tmp_path / "shards"
    result = runner.invoke(
        app,
        ["preprocess", "tueg", "--root", str(tueg_root), "--out", str(out), "--json",
         "--set", f"preprocess.options.exclude_roots=['{eval_root}']"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "preprocess_report.tueg.json").read_text())
    assert report["found"] == 2 and report["excluded_by_reason"] == {"excluded_subject": 1}
    assert report["not_read"] == 0  # the excluded subject's file is no "file that is not a recording"


def test_the_shipped_recipe_without_the_evaluation_corpora_says_how_to_exclude_none(tueg_root, tmp_path, monkeypatch):
    # femba_pretrain's own command, run where data/tuab/edf is not: the line said only "give the root of an
    # evaluation corpus", though the way on without TUAB, TUAR and TUSL is an empty list.
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["recipes", "cp", "femba_pretrain", "r.toml"]).exit_code == 0
    refused = runner.invoke(app, ["preprocess", "--recipe", "r.toml", "--root", str(tueg_root), "--quiet"])
    assert refused.exit_code == 2, refused.output
    (line,) = [text for text in refused.stderr.splitlines() if text.startswith("error: ")]
    assert "exclude_roots: data/tuab/edf is not a folder" in line and "exclude_roots=[]" in line
    empty = ["--set", "preprocess.options.exclude_roots=[]"]
    assert runner.invoke(app, ["preprocess", "--recipe", "r.toml", "--root", str(tueg_root), "--quiet", *empty]).exit_code == 0


def test_predict_reads_each_recording_through_the_montage_preprocess_gave_it(tueg_root, tmp_path):
    """Predict's worker reads a file as preprocess did, its montage chosen by the same reader: the same windows.

    Before, predict read the signal without the montage: the 20-channel file was skipped for lacking A1 and
    A2, and every file was read whole (a signal at another rate made it ``mixed_rates``).
    """
    from biofound_cli.prediction.run import Windows, prepare_recording
    from biofound_cli.signals.chain import ChainConfig

    result = runner.invoke(app, ["preprocess", "tueg", "--root", str(tueg_root), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    for ref in TUEGCorpus().discover(tueg_root):
        shard = read_shard(tmp_path / "tueg" / f"{ref.recording_id}.h5")
        # The chain as a model without channel names records it (an official checkpoint given this --recipe).
        config = ChainConfig.from_json_dict(json.loads(shard["attrs"]["preprocess_config"]))
        assert config.montage == "auto"
        windows = prepare_recording("tueg", {}, ref, config)
        assert isinstance(windows, Windows), windows
        assert (windows.x == shard["x"]).all(), ref.recording_id
