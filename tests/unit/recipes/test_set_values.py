"""``--set`` values as users type them: quoted regexes, and the ``preprocess.on_truncated`` policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import RecipeError
from biofound_cli.recipes import load_recipe, parse_override

runner = CliRunner()
REGEX = r"sample_data_(?P<subject>\d+)\.csv"


@pytest.mark.parametrize(
    "raw",
    [
        f'"{REGEX}"',  # TOML rejects \d in a basic string: the quotes are dropped, the text kept as typed
        f"'{REGEX}'",  # a TOML literal string
        REGEX,  # bare
    ],
)
def test_a_quoted_regex_loses_its_quotes(raw):
    assert parse_override(f"preprocess.options.pattern={raw}") == (["preprocess", "options", "pattern"], REGEX)


@pytest.mark.parametrize(("raw", "value"), [('"', '"'), ("'a\"", "'a\""), ('"a b"', "a b"), ('"C:\\data"', "C:\\data")])
def test_only_one_matching_pair_of_quotes_is_dropped(raw, value):
    assert parse_override(f"a.b={raw}")[1] == value


def test_the_quoted_pattern_finds_the_files_from_the_command_line(tmp_path):
    root = tmp_path / "csv"
    root.mkdir()
    for subject in (1, 2):
        np.savetxt(root / f"sample_data_{subject}.csv", np.random.default_rng(subject).normal(size=(600, 8)), delimiter=",")
    out = tmp_path / "shards"
    args = ["preprocess", "emg-csv", "--root", str(root), "--out", str(out), "--workers", "2", "--json", "--no-progress",
            "--set", f'preprocess.options.pattern="{REGEX}"']  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["found"] == summary["written"] == 2


def test_on_truncated_is_a_checked_preprocess_field(tmp_path: Path):
    assert load_recipe(None, ["preprocess.corpus=tuab"]).preprocess.on_truncated == "skip"
    assert load_recipe(None, ["preprocess.on_truncated=keep"]).preprocess.on_truncated == "keep"
    with pytest.raises(RecipeError) as caught:
        load_recipe(None, ["preprocess.on_truncated=drop"])
    assert caught.value.problems == [
        "--set preprocess.on_truncated=drop: preprocess.on_truncated = \"drop\": expected 'skip' or 'keep'"
    ]
