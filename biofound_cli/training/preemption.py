"""Preemption: finish the step, write a resumable checkpoint, exit with status 75.

Cluster schedulers announce a preemption with a signal (SLURM: SIGTERM, or SIGUSR1 with
``--signal``). The first signal only raises a flag; the loop checks it after each optimiser
step, all ranks agree, rank 0 writes a checkpoint and the run raises
:class:`~biofound_cli.errors.PreemptedError`. A second signal means "now": the process exits
at once with status 128 + the signal number. Checkpoints are written under a temporary name
and renamed, so exiting mid-write leaves the last good one intact.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any, Sequence


class PreemptionGuard:
    """Installs handlers for ``signal_names`` while the ``with`` block runs.

    Signal handlers can only be installed from the main thread; elsewhere the guard does
    nothing (``requested`` stays false).
    """

    def __init__(self, signal_names: Sequence[str]) -> None:
        self.signals = [getattr(signal, name) for name in signal_names]
        self.requested = False
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            os._exit(128 + signum)
        self.requested = True
        self.received = signal.Signals(signum).name

    def __enter__(self) -> "PreemptionGuard":
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
