"""How a DataLoader's workers start: forked, or by the forkserver while torch.distributed runs.

Forking copies only the calling thread. CPython before 3.11.10 (and 3.10.15, 3.9.20; gh-112275)
then deletes the other threads' states in the child under a lock that a thread entering Python
from C++ may hold at that moment, and the child blocks for ever before it runs a line; its loader
waits for its first batch for ever and the other ranks wait for this one. The threads of a
torch.distributed process group (gloo's run loops) enter Python that way as they finish a
collective, so a rank that forked its loader workers just after one hung: about once in several
hundred loader starts with two CPU ranks evaluating every epoch, seen in CI and reproduced with
gdb showing the child in ``PyOS_AfterFork_Child``. While a process group runs, the workers are
therefore forked by the forkserver, a process of one thread started once per rank. It imports
torch and the modules the loader's objects come from before its first fork, so a worker starts
in about the time a fork takes instead of importing torch again (Python 3.14 makes the forkserver
the default on Linux; the same preloading applies there). A single process keeps forking: its
other threads are Python's own (the loader queues' feeders), which take that lock only while they
hold the GIL, as the forking thread does.
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch.utils.data import DataLoader


def choose_start_method(loader: DataLoader) -> str:
    """Set how ``loader`` starts its workers, when the process's default would risk a hang; the method used.

    Parameters
    ----------
    loader : DataLoader
        A loader with workers. A ``multiprocessing_context`` it already has is kept.

    Returns
    -------
    str
        ``"fork"``, ``"spawn"`` or ``"forkserver"``: how its workers will start.
    """
    if loader.multiprocessing_context is None and _process_group_runs() and sys.platform.startswith("linux"):
        loader.multiprocessing_context = "forkserver"
    context = loader.multiprocessing_context
    method = context.get_start_method() if context is not None else _default_start_method()
    if method == "forkserver":
        _preload_forkserver(loader)
    return method


def _process_group_runs() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def _default_start_method() -> str:
    # The default is the first method listed, until the program sets one.
    return multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]


def _preload_forkserver(loader: DataLoader) -> None:
    """Have the forkserver import torch and what unpickling ``loader``'s workers needs, if it has not started.

    Called at every loader start, it takes effect once a process: ``set_forkserver_preload`` only
    keeps the list, which multiprocessing reads as it starts the forkserver (the first loader's
    start; again only after the forkserver died), so no guard of ours is needed. ``__main__``
    comes first: multiprocessing runs the main script there, so a dataset class defined in it (a
    user's own) unpickles in the workers. A module named twice is imported once.
    """
    dataset = loader.dataset
    objects = [dataset, getattr(dataset, "dataset", dataset), loader.collate_fn]
    modules = ["__main__", "torch", *(getattr(obj, "__module__", None) or type(obj).__module__ for obj in objects)]
    multiprocessing.get_context("forkserver").set_forkserver_preload(modules)
