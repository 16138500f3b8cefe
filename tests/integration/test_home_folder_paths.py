"""Recipe paths that start with ``~``, as researchers write them in a TOML file or a quoted flag.

The shell turns ``~/data`` into the home folder on a command line, but not inside a recipe or a
quoted ``--set``: ``root = "~/eeg"`` was read as a folder named ``~`` in the working folder, and
``preprocess`` said it was not a folder (``pack``: "shard folder not found") of a folder that is there.
"""

from __future__ import annotations

import json

import mne
import numpy as np
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


def test_a_recipe_and_flags_naming_paths_under_the_home_folder_preprocess_and_pack(tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    monkeypatch.setenv("HOME", str(home))
    work.mkdir()
    monkeypatch.chdir(work)
    raw = mne.io.RawArray(np.random.default_rng(0).normal(0, 2e-5, (2, 3000)), mne.create_info(["Cz", "Pz"], 100.0, "eeg"))
    (home / "eeg").mkdir(parents=True)
    mne.export.export_raw(home / "eeg" / "rec.edf", raw, fmt="edf", verbose="error")
    (work / "r.toml").write_text(
        '[preprocess]\ncorpus = "edf"\nroot = "~/eeg"\nout = "~/shards"\n'
        '[pack]\nshards = "~/shards"\nout = "~/packed"\ntrain = 1.0\nval = 0.0\ntest = 0.0\n'
    )
    preprocessed = runner.invoke(app, ["preprocess", "--recipe", "r.toml", "--json", "--no-progress"])
    assert preprocessed.exit_code == 0, preprocessed.output
    assert json.loads(preprocessed.stdout)["written"] == 1 and (home / "shards" / "edf" / "rec.h5").is_file()
    packed = runner.invoke(app, ["pack", "--recipe", "r.toml", "--json", "--no-progress"])
    assert packed.exit_code == 0, packed.output
    assert json.loads(packed.stdout)["windows"]["train"] == 6 and (home / "packed" / "train.h5").is_file()
    again = ["pack", "~/shards", "--out", "~/again", "--set", "pack.train=1", "--set", "pack.val=0", "--set", "pack.test=0"]
    assert runner.invoke(app, again).exit_code == 0 and (home / "again" / "train.h5").is_file()
    assert not (work / "~").exists()
