"""torchrun's environment: how many processes the job has and which one this is.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in every process it starts (and
``TORCHELASTIC_RUN_ID``, even for one process); a plain ``biofound`` command has none of them.
Read here, without importing torch, so a command that never trains can still tell.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    """This process's place in the job torchrun started (one process of rank 0 without torchrun).

    Attributes
    ----------
    world_size : int
        Processes in the job.
    rank : int
        This process's rank, 0 to ``world_size - 1``.
    local_rank : int
        Its rank on this machine (which GPU it takes).
    by_torchrun : bool
        Whether torchrun started it, even as a job of one process.
    """

    world_size: int
    rank: int
    local_rank: int
    by_torchrun: bool


def launch() -> Launch:
    """The job this process belongs to, from torchrun's environment variables."""
    return Launch(
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        rank=int(os.environ.get("RANK", "0")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        by_torchrun="TORCHELASTIC_RUN_ID" in os.environ,
    )
