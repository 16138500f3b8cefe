"""A stop signal to the whole process group while ``biofound evaluate`` scores with loader workers."""

from __future__ import annotations

import signal
import sys

import pytest
from fixtures.eval_split import write_checkpoint, write_packed
from fixtures.process_group import assert_terminated, start_in_own_group, terminate_group, wait_until

pytestmark = pytest.mark.slow

# Runs `biofound evaluate` with every batch's scoring slowed and the first one announced in a file,
# so the signal comes while the loader workers are feeding batches.
SLOW_SCORING = """
import sys, time
from pathlib import Path
import biofound_cli.training.evaluate as scoring
from biofound_cli.__main__ import main
original, marker = scoring.scores_from_logits, Path(sys.argv[1])
def slowed(*args, **kwargs):
    marker.touch()
    time.sleep(0.2)
    return original(*args, **kwargs)
scoring.scores_from_logits = slowed
sys.argv = ["biofound", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_stop_to_the_group_during_scoring_exits_143_with_one_line_and_no_report(tmp_path, signum):
    """A scheduler's SIGTERM, or the SIGUSR1 of ``sbatch --signal=USR1@N``, reaches the loader workers too."""
    packed = write_packed(tmp_path / "test.h5", n_recordings=40)
    write_checkpoint(tmp_path / "model.safetensors")
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(f'name = "tiny"\n[data]\ntest = "{packed}"\nbatch_size = 1\nnum_workers = 2\n[train]\ndevice = "cpu"\n')
    started, out = tmp_path / "scoring", tmp_path / "eval"
    command = [
        sys.executable,
        "-c",
        SLOW_SCORING,
        str(started),
        "evaluate",
        str(recipe),
        "-c",
        str(tmp_path / "model.safetensors"),
    ]
    process = start_in_own_group([*command, "--out", str(out), "--json", "--no-progress"])
    wait_until(process, started.exists, "the scoring started")
    stdout, stderr = terminate_group(process, signum)  # as a scheduler or `timeout` does: main process and loader workers
    assert_terminated(process, stdout, stderr, "run the same command again", by=signum.name)
    assert not (out / "report.json").exists()
    assert not list(out.glob("*.tmp*")) if out.exists() else True
