"""``pack`` says, once, when the subjects it has cannot give the split fractions asked for.

With 3 subjects and fractions 0.8/0.1/0.1, pack gave 1/1/1 subjects (a third of the windows each)
and said nothing: the model then trained on a third of the data, believing it was 80 %.
"""

from __future__ import annotations

import json

from fixtures.shards import write_corpus
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()
FAR = (
    "the splits are far from pack's fractions: train got 33% of the windows (pack.train = 0.8); val got 33% of the "
    "windows (pack.val = 0.1); test got 33% of the windows (pack.test = 0.1), as 3 subjects, each kept whole in one "
    "split, cannot come nearer; add recordings of more subjects, or set the fractions to what these can give"
)


def test_three_subjects_split_far_from_the_fractions_are_warned_of_once_in_output_and_summary(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=3, windows_per_subject=4)
    args = ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--no-progress"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["warnings"].count(FAR) == 1, summary["warnings"]
    assert " ".join(result.stderr.split()).count(f"warning: {FAR}") == 1, result.stderr


def test_ten_subjects_that_meet_the_fractions_get_no_such_warning(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=10, windows_per_subject=4)
    result = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    # Val and test of one subject each hold one class, which is a warning of its own (test_pack_cmd.py).
    assert not [w for w in json.loads(result.stdout).get("warnings", []) if "far from" in w] and "far from" not in result.stderr
