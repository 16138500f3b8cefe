"""docs/python-api.md runs as written: its ```python blocks, in order, in one session, in an empty folder.

The page's first block loads the quick start's TinyMyo recipe and the next ones preprocess,
pack, train (five steps), load, evaluate and export it, so the blocks need nothing but the
installed package. They run in a child process so the page's imports and working folder leave
this one alone; a failure names the block and its line in the page.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "docs" / "python-api.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

pytestmark = pytest.mark.slow


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """``(line, code)`` of each ```python block of ``page``, in order (line: the block's first code line)."""
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in PYTHON_BLOCK.finditer(text)]


# Runs each block with its page line as the file name, so a traceback points into the page.
RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for line, code in json.load(open(sys.argv[1])):
    exec(compile("\\n" * (line - 1) + code, "docs/python-api.md", "exec"), namespace)
"""


def test_the_page_covers_the_whole_chain():
    code = "\n".join(block for _, block in python_blocks(PAGE))
    for name in ("load_recipe", "create_model", "load(", "PackedDataset", "run_training", "evaluate_recipe", "export_checkpoint"):
        assert name in code, f"docs/python-api.md shows no {name}"


def test_every_python_block_runs_in_order(tmp_path):
    blocks = python_blocks(PAGE)
    script = tmp_path / "blocks.json"
    script.write_text(json.dumps(blocks))
    work = tmp_path / "work"
    work.mkdir()
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": "2",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(script)], cwd=work, env=environment, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert (work / "out" / "tinymyo_myo" / "export" / "model.pt").is_file()
