"""pack packs the shards of the run its preprocess report describes, not those an earlier run left.

``preprocess --force`` with another window rewrites the recordings of its run only. With fewer
recordings listed this time, the shards of the others kept the old window and outnumbered the
new ones, so pack's majority rule packed the old windows, skipped the run's own as "windows of
1000 samples differ from 500 of the other shards", and summed a report saying 10 s windows.
"""

from __future__ import annotations

import json
from pathlib import Path

from fixtures.edf_files import write_eeg
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


def _preprocess(root: Path, out: Path, labels: Path, window: str, *extra: str) -> None:
    command = ["preprocess", "edf", "--root", str(root), "--out", str(out), "--workers", "2", "--no-progress"]
    settings = [f"preprocess.options.labels_csv={labels.as_posix()}", f"preprocess.window_seconds={window}"]
    result = runner.invoke(app, [*command, *(arg for setting in settings for arg in ("--set", setting)), *extra])
    assert result.exit_code == 0, result.output


def test_pack_sets_aside_the_shards_an_earlier_run_wrote_with_other_settings(tmp_path):
    root, out, packed = tmp_path / "raw", tmp_path / "shards", tmp_path / "packed"
    subjects = [f"s{index}" for index in range(5)]
    for subject in subjects:
        write_eeg(root / subject / "a.edf", seconds=30.0)
    every, two = tmp_path / "every.csv", tmp_path / "two.csv"
    every.write_text("file,label\n" + "".join(f"{s}/a.edf,{'rest' if i % 2 else 'task'}\n" for i, s in enumerate(subjects)))
    two.write_text("file,label\ns0/a.edf,task\ns1/a.edf,rest\n")
    _preprocess(root, out, every, "5")
    _preprocess(root, out, two, "10", "--force")  # two recordings now, 10 s windows: three 5 s shards stay
    result = runner.invoke(app, ["pack", str(out), "--out", str(packed), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["preprocess"]["config"]["window_seconds"] == 10
    assert sum(summary["windows"].values()) == 2 * 3  # the two recordings' 10 s windows, not the others' 5 s ones
    log = " ".join(result.stderr.split())
    stale = f"{out / 'edf' / 's2-a.h5'} (shard of {root / 's2' / 'a.edf'}): written with other preprocess settings"
    assert f"skipped {stale} than preprocess_report.edf.json" in log, log
    assert "config.window_seconds 5.0 vs 10.0" in log and "delete it" in log
    assert summary["skipped"] == 3
    info = runner.invoke(app, ["info", str(packed / "train.h5"), "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["n_times"] == 1000


def test_a_recording_skipped_on_a_rerun_loses_its_earlier_shard(tmp_path):
    # 10 s windows after 5 s ones: the 8 s recording gives none now, and its 5 s shard must not stay to be packed.
    root, out = tmp_path / "raw", tmp_path / "shards"
    write_eeg(root / "s0" / "long.edf", seconds=30.0)
    write_eeg(root / "s1" / "short.edf", seconds=8.0)
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\ns0/long.edf,rest\ns1/short.edf,task\n")
    _preprocess(root, out, labels, "5")
    assert (out / "edf" / "s1-short.h5").is_file()
    command = ["preprocess", "edf", "--root", str(root), "--out", str(out), "--workers", "2", "--no-progress", "--force"]
    settings = ["--set", f"preprocess.options.labels_csv={labels.as_posix()}", "--set", "preprocess.window_seconds=10"]
    result = runner.invoke(app, [*command, *settings])
    assert result.exit_code == 0, result.output
    log = " ".join(result.stderr.split())
    assert "skipped (too_short)" in log and "s1-short.h5: removed, an earlier run's shard of" in log, log
    assert sorted(path.name for path in (out / "edf").iterdir()) == ["s0-long.h5"]
    info = runner.invoke(app, ["info", str(out), "--json"])
    assert json.loads(info.stdout)["shards_on_disk"] == {"edf": 1}
