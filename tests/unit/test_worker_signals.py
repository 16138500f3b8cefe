"""Workers started under ``signals_held_back`` survive a stop signal from birth, whatever the start method.

A spawned worker (macOS, Windows, Linux with threads running) and one forked by the forkserver
(Python 3.14's default on Linux) spend seconds importing torch before a ``worker_init_fn`` can
ignore anything. Each scenario runs in a child Python so its signal handlers and start method
leave pytest alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# A worker that has not yet reached its own ``ignore_in_worker``: it waits for the parent's
# word, which comes only after the parent has signalled it.
WORKER_NOT_YET_READY = """
import multiprocessing, os, signal, sys
from biofound_cli.worker_signals import signals_held_back

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    with signals_held_back([signal.SIGINT, signal.SIGTERM], sys.argv[1]):
        go = context.Event()  # as a DataLoader makes its queues: in the block
        worker = context.Process(target=go.wait)
        worker.start()
    os.kill(worker.pid, signal.SIGTERM)
    os.kill(worker.pid, signal.SIGINT)
    go.set()
    worker.join()
    print("exitcode", worker.exitcode)
"""

# The main process keeps every stop signal: one sent inside the block after a worker started,
# and one already pending (sent while blocked) when the block began; and this while another
# thread runs, as torch's do, which takes a signal the main thread blocks. The block's check
# waits until that thread has taken the signal (the wakeup fd gets its number) and Python has
# run the handler then installed, so it cannot pass before the signal arrived.
MAIN_KEEPS_ITS_SIGNALS = """
import multiprocessing, os, select, signal, threading, time
from biofound_cli.worker_signals import signals_held_back

if __name__ == "__main__":
    seen = []
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append("TERM"))
    signal.signal(signal.SIGUSR1, lambda signum, frame: seen.append("USR1"))
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()  # born with SIGUSR1 blocked
    os.kill(os.getpid(), signal.SIGUSR1)
    taken, wakeup = os.pipe()
    os.set_blocking(wakeup, False)
    signal.set_wakeup_fd(wakeup)
    with signals_held_back([signal.SIGTERM, signal.SIGUSR1], "spawn"):
        worker = multiprocessing.get_context("spawn").Process(target=os.getpid)
        worker.start()
        os.kill(os.getpid(), signal.SIGTERM)
        assert select.select([taken], [], [], 120)[0], "the other thread never took SIGTERM"
        assert os.read(taken, 1) == bytes([signal.SIGTERM])
        for _ in range(3):  # a backward jump: Python runs the pending handler here
            pass
        assert seen == [], seen
    worker.join()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
    print(sorted(seen))
    print(signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN)
"""

# What training does: a DataLoader whose workers are signalled while they start.
LOADER_WORKERS_SIGNALLED_AT_START = """
import os, signal, sys
import torch
from torch.utils.data import DataLoader, TensorDataset
from biofound_cli.training.preemption import iterate_leaving_signals_to_main

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda signum, frame: print("main got SIGTERM", flush=True))
    loader = DataLoader(TensorDataset(torch.arange(12)), batch_size=3, num_workers=2, multiprocessing_context=sys.argv[1])
    batches = iterate_leaving_signals_to_main(loader, ["SIGTERM"])
    for worker in batches._workers:
        os.kill(worker.pid, signal.SIGTERM)
    print("windows", sum(len(batch[0]) for batch in batches))
"""

# A worker left stopped, as the kernel leaves one forked while the job is stopped and continued
# (Ctrl-Z then fg): the continue reached the main process only. The worker must go on.
WORKER_LEFT_STOPPED = """
import multiprocessing, os, signal
from biofound_cli.worker_signals import signals_held_back

def stop_self():
    os.kill(os.getpid(), signal.SIGSTOP)

if __name__ == "__main__":
    with signals_held_back([signal.SIGINT, signal.SIGTERM], "fork"):
        worker = multiprocessing.get_context("fork").Process(target=stop_self)
        worker.start()
        os.waitpid(worker.pid, os.WUNTRACED)
        os.kill(os.getpid(), signal.SIGCONT)
    worker.join(30)  # without a second continue it would wait for ever
    print("exitcode", worker.exitcode)
    if worker.exitcode is None:
        worker.kill()
"""


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args], capture_output=True, text=True, timeout=300, env=environment
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_worker_ignores_stop_signals_before_it_says_so(method):
    result = run_script(WORKER_NOT_YET_READY, method)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["exitcode", "0"], result.stdout + result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_main_process_still_gets_every_stop_signal_after_the_block():
    result = run_script(MAIN_KEEPS_ITS_SIGNALS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["['TERM', 'USR1']", "True"], result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_loader_workers_signalled_while_they_start_keep_loading(method):
    result = run_script(LOADER_WORKERS_SIGNALLED_AT_START, method)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "windows 12" in result.stdout, result.stdout + result.stderr[-3000:]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_worker_left_stopped_at_its_start_is_continued_with_the_main_process():
    result = run_script(WORKER_LEFT_STOPPED)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["exitcode", "0"], result.stdout + result.stderr
