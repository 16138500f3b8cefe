"""A rank's loader workers start, however busy torch.distributed's threads are with Python.

gloo's threads create Python thread states from C++ as they finish collectives; a fork at that
moment left the child blocked for ever on CPython before 3.11.10 (gh-112275), and the ranks
waited for its first batch. The scenario runs in a child Python, with a thread that does what
those threads do, in a loop, while the rank starts loaders as every epoch and evaluation does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from torch.utils.data import DataLoader, Dataset

from biofound_cli.training.loader_start import choose_start_method
from biofound_cli.training.preemption import iterate_leaving_signals_to_main

REPO_ROOT = Path(__file__).resolve().parents[3]

LOADERS_BESIDE_THREAD_STATES = """
import ctypes, os, sys, tempfile, threading
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from biofound_cli.training.preemption import iterate_leaving_signals_to_main


class ParentOfEachWindow(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        return torch.tensor([index, os.getppid()])


def make_thread_states(stop):
    # What a C++ thread does as it enters Python: create a thread state, under the runtime's
    # lock and without the GIL (ctypes.CDLL releases it), and later delete it.
    api, with_gil = ctypes.CDLL(None), ctypes.pythonapi
    api.PyThreadState_New.restype = ctypes.c_void_p
    api.PyThreadState_New.argtypes = api.PyThreadState_Delete.argtypes = [ctypes.c_void_p]
    with_gil.PyThreadState_Clear.argtypes = [ctypes.c_void_p]
    api.PyInterpreterState_Main.restype = ctypes.c_void_p
    interpreter = api.PyInterpreterState_Main()
    while not stop.is_set():
        state = api.PyThreadState_New(interpreter)
        with_gil.PyThreadState_Clear(state)
        api.PyThreadState_Delete(state)


if __name__ == "__main__":
    dist.init_process_group("gloo", store=dist.FileStore(sys.argv[1], 1), rank=0, world_size=1)
    stop = threading.Event()
    threading.Thread(target=make_thread_states, args=(stop,), daemon=True).start()
    parents = set()
    for _ in range(int(sys.argv[2])):
        loader = DataLoader(ParentOfEachWindow(), batch_size=4, num_workers=2)
        windows = torch.cat(list(iterate_leaving_signals_to_main(loader, ["SIGTERM"])))
        assert windows[:, 0].tolist() == list(range(8))
        parents.update(windows[:, 1].tolist())
    stop.set()
    where = "forked by this rank" if os.getpid() in parents else "forked elsewhere"
    print(where, loader.multiprocessing_context.get_start_method())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is the default only on Linux")
def test_loader_workers_of_a_rank_start_while_other_threads_create_thread_states(tmp_path):
    script, environment = _rank_script(tmp_path, LOADERS_BESIDE_THREAD_STATES)
    # Forked by the rank, the 20 workers' first batch never came on CPython 3.11.7 (the timeout).
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "store"), "10"], capture_output=True, text=True, timeout=240, env=environment
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["forked", "elsewhere", "forkserver"], result.stdout + result.stderr[-3000:]


RANK_WITH_WORKERS_RUNNING = """
import os, sys, tempfile, time
import torch.distributed as dist
from torch.utils.data import DataLoader
from biofound_cli.training.preemption import iterate_leaving_signals_to_main

if __name__ == "__main__":
    dist.init_process_group("gloo", store=dist.FileStore(sys.argv[1], 1), rank=0, world_size=1)
    batches = iterate_leaving_signals_to_main(DataLoader(list(range(64)), batch_size=1, num_workers=2), ["SIGTERM"])
    next(batches)
    print(*[worker.pid for worker in batches._workers], flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forkserver is used on Linux")
def test_a_rank_killed_with_sigkill_leaves_no_loader_worker_running(tmp_path):
    script, environment = _rank_script(tmp_path, RANK_WITH_WORKERS_RUNNING)
    rank = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "store")], stdout=subprocess.PIPE, text=True, env=environment
    )
    workers = [int(pid) for pid in rank.stdout.readline().split()]
    assert len(workers) == 2
    rank.kill()  # e.g. the out-of-memory killer; the workers' parent, the forkserver, lives on
    rank.wait()
    deadline = time.monotonic() + 120  # a guard against waiting for ever, not a timing
    while time.monotonic() < deadline and any(_runs(pid) for pid in workers):
        time.sleep(0.05)
    assert not any(_runs(pid) for pid in workers), "a loader worker outlived its rank"


def _rank_script(folder: Path, source: str) -> tuple[Path, dict[str, str]]:
    """``source`` as a script in ``folder``, and the environment that runs it with this checkout's package."""
    script = folder / "rank.py"
    script.write_text(textwrap.dedent(source))
    return script, {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}


def _runs(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class _Numbers(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        return index


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or sys.version_info >= (3, 14), reason="fork is the default on Linux before 3.14"
)
def test_one_process_keeps_forking_its_workers():
    loader = DataLoader(_Numbers(), num_workers=2)
    assert choose_start_method(loader) == "fork"
    assert loader.multiprocessing_context is None


class _ThreadsOfTheWorker(Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> list[str]:
        return [thread.name for thread in threading.enumerate()]


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or sys.version_info >= (3, 14), reason="fork is the default on Linux before 3.14"
)
def test_a_worker_its_process_forked_is_left_to_the_loader_s_watchdog():
    # Its parent is the process it serves, which torch's watchdog watches: a thread of our own
    # watching it too (armed in every worker before) is for the forkserver's workers only.
    loader = DataLoader(_ThreadsOfTheWorker(), batch_size=None, num_workers=2)
    threads = list(iterate_leaving_signals_to_main(loader, ["SIGTERM"]))
    assert len(threads) == 2 and not any(name.startswith("biofound") for names in threads for name in names), threads


def test_a_start_method_the_caller_chose_is_kept():
    loader = DataLoader(_Numbers(), num_workers=2, multiprocessing_context="spawn")
    assert choose_start_method(loader) == "spawn"
    assert loader.multiprocessing_context.get_start_method() == "spawn"
