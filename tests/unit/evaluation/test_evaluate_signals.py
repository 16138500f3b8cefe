"""A stop signal to the whole process group while ``biofound evaluate`` scores with loader workers."""

from __future__ import annotations

import signal
import sys

import pytest
from fixtures.eval_split import write_checkpoint, write_packed
from fixtures.process_group import DEADLINE, assert_group_gone, assert_terminated, start_in_own_group

pytestmark = pytest.mark.slow

# Runs `biofound evaluate` and signals its whole group as the loader workers hand over the second batch:
# the stop comes while they feed batches on any machine, however busy. (A fixed sleep in the scoring,
# which runs once every batch is in, let a slow test send its signal after the report was written.)
SIGNALLED_AT_THE_SECOND_BATCH = """
import os, signal, sys
import biofound_cli.training.preemption as preemption
from biofound_cli.__main__ import main
signal_name, iterate = sys.argv[1], preemption.iterate_leaving_signals_to_main
def signalled_at_the_second_batch(loader, signal_names):
    for index, batch in enumerate(iterate(loader, signal_names)):
        if index == 1:
            os.killpg(os.getpgrp(), signal.Signals[signal_name])
        yield batch
preemption.iterate_leaving_signals_to_main = signalled_at_the_second_batch
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
    out = tmp_path / "eval"
    command = [sys.executable, "-c", SIGNALLED_AT_THE_SECOND_BATCH, signum.name, "evaluate", str(recipe)]
    process = start_in_own_group(
        [*command, "-c", str(tmp_path / "model.safetensors"), "--out", str(out), "--json", "--no-progress"]
    )
    stdout, stderr = process.communicate(timeout=DEADLINE)
    assert_group_gone(process.pid)  # no loader worker outlives the command
    assert_terminated(process, stdout, stderr, "run the same command again", by=signum.name)
    assert not (out / "report.json").exists()
    assert not list(out.glob("*.tmp*")) if out.exists() else True
