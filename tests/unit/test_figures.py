"""Figures drawn where a cluster job runs: no display, a read-only home folder."""

from __future__ import annotations

import os
import subprocess
import sys

DRAW = """
import logging, sys
from biofound_cli.figures import new_figure, save_png
logging.basicConfig(stream=sys.stderr, level=logging.INFO)  # what the CLI's log handler shows
figure = new_figure(2, 1)
figure.add_subplot().plot([0, 1], [1, 0])
save_png(figure, sys.argv[1])
"""


def test_a_read_only_home_draws_the_figure_without_warnings(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # no folder can be created below a file: the home folder is unwritable
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env.update(HOME=str(blocked / "home"), TMPDIR=str(tmp_path))
    out = tmp_path / "curve.png"
    result = subprocess.run([sys.executable, "-c", DRAW, str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "matplotlib" not in result.stderr.lower(), result.stderr
