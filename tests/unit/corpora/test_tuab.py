from __future__ import annotations

import json

import pytest
from fixtures.shards import read_shard
from fixtures.tuh import build_tuab
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora.tuab import TUABCorpus
from biofound_cli.signals.montage import TCP_PAIRS, bipolar_names

runner = CliRunner()


@pytest.fixture(scope="module")
def tuab_root(tmp_path_factory):
    return build_tuab(tmp_path_factory.mktemp("tuab"))


def test_discover_labels_and_official_split(tuab_root):
    refs = TUABCorpus().discover(tuab_root)
    assert [ref.recording_id for ref in refs] == [
        "aaaaaaaa_s001_t000", "aaaaaaab_s001_t000", "aaaaaaac_s002_t001", "aaaaaaad_s001_t000", "aaaaaaae_s001_t000"
    ]  # fmt: skip
    assert [ref.extra["label"] for ref in refs] == [0, 0, 1, 0, 1]
    assert [ref.split for ref in refs] == [None, None, None, "test", "test"]
    assert refs[2].subject == "aaaaaaac" and refs[2].session == "s002"


def test_preprocess_tuab_defaults(tuab_root, tmp_path):
    out = tmp_path / "shards"
    result = runner.invoke(app, ["preprocess", "tuab", "--root", str(tuab_root), "--out", str(out), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["found"] == summary["written"] == 5 and summary["windows_written"] == 20
    shard = read_shard(out / "tuab" / "aaaaaaae_s001_t000.h5")
    # 20 s at 250 Hz → 256 Hz → four whole 5 s windows of 1280 samples on the 22 TCP channels.
    assert shard["x"].shape == (4, 22, 1280) and shard["x"].dtype == "float32"
    assert shard["y"].tolist() == [1, 1, 1, 1]
    attrs = shard["attrs"]
    assert attrs["channel_names"] == bipolar_names(TCP_PAIRS)
    assert attrs["sfreq"] == 256.0 and attrs["window_seconds"] == 5.0 and attrs["stride_seconds"] == 5.0
    assert attrs["subject"] == "aaaaaaae" and attrs["split"] == "test" and attrs["task"] == "bc"
    assert attrs["label_names"] == ["normal", "abnormal"]
    config = json.loads(attrs["preprocess_config"])
    assert (config["l_freq"], config["h_freq"], config["notch_hz"], config["montage"]) == (0.1, 75.0, [60.0], "tcp")
    # Values are microvolts: EEG amplitudes of tens of µV, not 1e-5 V.
    assert 1.0 < float(abs(shard["x"]).mean()) < 500.0
    assert read_shard(out / "tuab" / "aaaaaaaa_s001_t000.h5")["y"].tolist() == [0, 0, 0, 0]


def test_recipe_overrides_window_and_stride(tuab_root, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[preprocess]\nwindow_seconds = 4.0\nstride_seconds = 2.0\nsfreq = 0\nnotch_hz = 0\n")
    out = tmp_path / "shards"
    args = ["preprocess", "tuab", "--root", str(tuab_root), "--out", str(out), "--recipe", str(recipe), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    shard = read_shard(out / "tuab" / "aaaaaaaa_s001_t000.h5")
    # Native 250 Hz kept: 4 s = 1000 samples, every 2 s over 20 s → 9 windows.
    assert shard["x"].shape == (9, 22, 1000)
    config = json.loads(shard["attrs"]["preprocess_config"])
    assert config["sfreq"] is None and config["notch_hz"] == []
