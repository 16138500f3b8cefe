"""The first imports of numpy and torch run to their end before a Ctrl-C acts.

A Ctrl-C (SIGINT) while ``import torch`` imported numpy's linear algebra was swallowed by torch's
start: the command went on to its end (a training job kept training) and exited 0. One elsewhere
in numpy's import could leave numpy half set up, and the command failed later with a
RecursionError traceback from numpy. From the command line's entry point
(:mod:`biofound_cli.cli.entry`), the first import of each package of :data:`WHOLE_PACKAGES` holds
SIGINT back until it has finished, then delivers it: the KeyboardInterrupt is raised at the
``import`` statement that asked for the package, and the command reports the stop as it reports
any other.

This is an import hook, not one import at the start, because our commands import torch lazily:
``recipes``, ``validate`` and ``info RECIPE`` never import it, and doing so first would cost each
of them a second or more. The hook removes itself once every package is imported.
"""

from __future__ import annotations

import builtins
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from biofound_cli.worker_signals import signals_deferred

WHOLE_PACKAGES = ("numpy", "torch")
"""The packages whose first import a Ctrl-C must not cut short (torch imports numpy)."""


def hold_ctrl_c_during_first_imports() -> None:
    """Make the first import of each of :data:`WHOLE_PACKAGES` in the main thread finish before SIGINT acts."""
    original = builtins.__import__

    def import_whole(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        package = name.partition(".")[0]
        if level or package not in WHOLE_PACKAGES or package in sys.modules:
            return original(name, globals, locals, fromlist, level)
        if threading.current_thread() is not threading.main_thread():  # only it can set handlers
            return original(name, globals, locals, fromlist, level)
        with _sigint_held_back():
            module = original(name, globals, locals, fromlist, level)
            if builtins.__import__ is import_whole and all(name in sys.modules for name in WHOLE_PACKAGES):
                builtins.__import__ = original
        return module

    builtins.__import__ = import_whole


@contextmanager
def _sigint_held_back() -> Iterator[None]:
    """Note SIGINT while the block runs; once it has ended, deliver it to the handler it had before."""
    if signal.getsignal(signal.SIGINT) is None:  # a handler set outside Python: it cannot be put back
        yield
        return
    with signals_deferred([signal.SIGINT]):
        yield
