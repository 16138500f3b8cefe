"""A second `pack` of a shard folder that holds an earlier pack's output (`--out SHARDS/seed1`, then `SHARDS/seed7`).

The earlier split files carry a shard's attributes and a 3-d ``x``, so they were packed again as
shards: every window twice, and the first split's test windows in the second's train. An earlier
pack's folder (it holds ``splits.json``) is passed over, named in one info line; ``info`` of the
shard folder does not count its files as shards either.
"""

from __future__ import annotations

import json

from fixtures.edf_files import write_eeg
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


def test_a_pack_inside_the_shard_folder_is_not_packed_by_the_next_one(tmp_path):
    root, shards = tmp_path / "raw", tmp_path / "shards"
    for name in ("a.edf", "b.edf", "c.edf"):
        write_eeg(root / name, seconds=30.0)
    preprocess = ["preprocess", "edf", "--root", str(root), "--out", str(shards), "--workers", "2", "--no-progress"]
    assert runner.invoke(app, preprocess).exit_code == 0
    first = runner.invoke(app, ["pack", str(shards), "--out", str(shards / "seed1"), "--json", "--no-progress"])
    assert first.exit_code == 0, first.output
    windows = json.loads(first.stdout)["windows"]
    second = runner.invoke(app, ["pack", str(shards), "--out", str(shards / "seed7"), "--seed", "7", "--json"])
    assert second.exit_code == 0, second.output
    summary = json.loads(second.stdout)
    assert sum(summary["windows"].values()) == sum(windows.values()) and sum(summary["recordings"].values()) == 3
    assert summary["skipped"] == 0
    assert f"{shards / 'seed1'}: the output of an earlier biofound pack (its splits.json is there)" in second.stderr
    described = runner.invoke(app, ["info", str(shards), "--json"])
    assert described.exit_code == 0, described.output
    assert json.loads(described.stdout)["shards_on_disk"] == {"edf": 3}
