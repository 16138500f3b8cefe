from __future__ import annotations

import json
import os
import shutil

import pytest
from fixtures.shards import read_shard
from fixtures.tuh import build_tuar, write_csv_annotations
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tuar_root(tmp_path_factory):
    return build_tuar(tmp_path_factory.mktemp("tuar"))


def _run(root, out, *extra):
    result = runner.invoke(app, ["preprocess", "tuar", "--root", str(root), "--out", str(out), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _y(out, stem):
    return read_shard(out / "tuar" / f"{stem}.h5")["y"]


def test_binary_mode_applies_the_30_percent_rule(tuar_root, tmp_path):
    summary = _run(tuar_root, tmp_path)
    assert summary["found"] == 2  # 03_tcp_ar_a is not read by default
    # Left out by the recipe's folders, not "a file that is no recording": its annotations neither.
    assert summary["excluded_by_reason"] == {"outside_folders": 1} and summary["not_read"] == 0
    assert _y(tmp_path, "aaaaaaaa_s001_t000").tolist() == [1, 0, 1, 0]
    assert _y(tmp_path, "aaaaaaab_s001_t000").tolist() == [0, 0, 0, 1]
    attrs = read_shard(tmp_path / "tuar" / "aaaaaaab_s001_t000.h5")["attrs"]
    assert attrs["task"] == "bc" and attrs["montage_folder"] == "02_tcp_le"


def test_multibinary_mode_is_per_channel_by_name(tuar_root, tmp_path):
    _run(tuar_root, tmp_path, "--set", "preprocess.options.mode=mc")
    y = _y(tmp_path, "aaaaaaaa_s001_t000")
    assert y.shape == (4, 22)
    assert [list(row.nonzero()[0]) for row in y] == [[0], [], [1, 2], []]  # FP1-F7; F7-T3 and T3-T5
    assert [list(row.nonzero()[0]) for row in _y(tmp_path, "aaaaaaab_s001_t000")] == [[], [], [], [10]]  # C3-CZ


def test_multilabel_mode_reproduces_upstream(tuar_root, tmp_path):
    _run(tuar_root, tmp_path, "--set", "preprocess.options.mode=mmc")
    y = _y(tmp_path, "aaaaaaaa_s001_t000")
    assert y[0, 0] == 3  # eyem covers 80 % of window 0
    assert y[2, 1] == 0  # musc covers 40 %, background 60 %: the larger count wins
    assert int(y.sum()) == 3
    assert int(_y(tmp_path, "aaaaaaab_s001_t000").sum()) == 0  # elpp writes 0 in upstream's multi-label mode


def test_single_label_mode_keeps_only_artifact_windows(tuar_root, tmp_path):
    _run(tuar_root, tmp_path, "--set", "preprocess.options.mode=mcc")
    first = read_shard(tmp_path / "tuar" / "aaaaaaaa_s001_t000.h5")
    assert first["y"].tolist() == [2, 3]  # eyem, musc; the chew window (20 %) and the clean one are dropped
    assert first["x"].shape == (2, 22, 1280)
    assert first["attrs"]["label_names"] == ["chew", "elec", "eyem", "musc", "shiv"]
    assert _y(tmp_path, "aaaaaaab_s001_t000").tolist() == [1]  # elpp counts as an electrode artifact


def test_bad_option_is_named(tuar_root, tmp_path):
    result = runner.invoke(
        app, ["preprocess", "tuar", "--root", str(tuar_root), "--out", str(tmp_path), "--set", "preprocess.options.mode=multi"]
    )
    assert result.exit_code == 2
    assert "preprocess.options.mode" in result.stderr
    assert not (tmp_path / "tuar").exists()


def test_upper_case_file_names_keep_their_annotations(tuar_root, tmp_path):
    import shutil

    root = tmp_path / "edf"
    shutil.copytree(tuar_root / "01_tcp_ar", root / "01_tcp_ar")
    for path in (root / "01_tcp_ar").iterdir():
        path.rename(path.with_name(path.name.upper()))
    _run(root, tmp_path / "out")
    assert read_shard(tmp_path / "out" / "tuar" / "AAAAAAAA_S001_T000.h5")["y"].tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize("shift_ns", [10**9, -(10**9)], ids=["later", "earlier"])
def test_a_corrected_annotation_file_is_read_by_a_rerun(tuar_root, tmp_path, shift_ns):
    root, out = tmp_path / "edf", tmp_path / "out"
    shutil.copytree(tuar_root, root)
    assert _run(root, out, "--workers", "2")["written"] == 2
    annotation = root / "01_tcp_ar" / "aaaaaaaa_s001_t000.csv"
    before = annotation.stat()
    # A new TUH release moves the eyem and musc events to windows 1 and 3. Rewritten to the same size, and with
    # rsync -t its time may be older than the replaced file's: only the stamp of the time tells.
    rows = [
        ("FP1-F7", 5.0, 9.0, "eyem"),
        ("T3-C3", 6.0, 7.0, "chew"),
        ("F7-T3", 15.0, 17.0, "musc"),
        ("T3-T5", 15.0, 17.0, "musc"),
    ]
    write_csv_annotations(annotation, rows)
    os.utime(annotation, ns=(before.st_atime_ns, before.st_mtime_ns + shift_ns))
    assert annotation.stat().st_size == before.st_size

    summary = _run(root, out, "--workers", "2")

    assert (summary["written"], summary["already_done"]) == (1, 1)
    assert _y(out, "aaaaaaaa_s001_t000").tolist() == [0, 1, 0, 1]
    assert _y(out, "aaaaaaab_s001_t000").tolist() == [0, 0, 0, 1]
    assert _run(root, out, "--workers", "2")["already_done"] == 2
