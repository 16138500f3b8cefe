"""The Siena stages luna_pretrain.toml's header describes run as written.

The header said to run the stages with ``--set preprocess.corpus=siena`` and two more flags; the
recipe's TUEG option ``exclude_roots`` then stopped preprocess ("the siena corpus takes no
options; leave them out of the recipe and of --set"), which a user following the header cannot do.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from fixtures.edf_files import write_siena_edf
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()
RECIPE = Path(__file__).resolve().parents[3] / "biofound_cli" / "data" / "recipes" / "luna_pretrain.toml"


def _header_flags() -> list[str]:
    """The ``--set`` flags of the header's Siena paragraph, as a shell would split them."""
    lines = [line.lstrip("#").split("(")[0] for line in RECIPE.read_text().splitlines() if line.startswith("#   --set")]
    return [arg for line in lines for arg in shlex.split(line)]


def test_the_siena_stages_of_the_luna_pretrain_header_preprocess_and_pack(tmp_path):
    root, shards, packed = tmp_path / "siena", tmp_path / "siena_shards", tmp_path / "siena_packed"
    for name in ("PN00/PN00-1.edf", "PN01/PN01-1.edf", "PN03/PN03-1.edf"):
        write_siena_edf(root / name, seconds=12.0)
    flags = _header_flags()
    assert "preprocess.corpus=siena" in flags
    command = ["preprocess", "--recipe", str(RECIPE), *flags, "--root", str(root), "--out", str(shards)]
    result = runner.invoke(app, [*command, "--workers", "2", "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 3
    result = runner.invoke(app, ["pack", "--recipe", str(RECIPE), *flags, str(shards), "--out", str(packed), "--no-progress"])
    assert result.exit_code == 0, result.output
    info = runner.invoke(app, ["info", str(packed / "train.h5"), "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["n_channels"] == 29


def test_options_a_corpus_does_not_take_name_the_flag_that_clears_them(tmp_path):
    result = runner.invoke(app, ["validate", str(RECIPE), "--set", "preprocess.corpus=siena"])
    assert result.exit_code == 2
    assert "--set 'preprocess.options={}' clears a recipe's" in " ".join(result.stderr.split())
