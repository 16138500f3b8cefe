"""torchrun's environment: how many processes the job has and which one this is.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in every process it starts (and
``TORCHELASTIC_RUN_ID``, even for one process); a plain ``biofound`` command has none of them.
Read here, without importing torch, so a command that never trains can still tell.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path


class RankOfJob:
    """A place in a job, by its ``rank``: the one spelling of "this is the process that speaks for the job".

    Rank 0 prints (the summary, ``--json``, recipe warnings, a refusal every rank reaches alike) and
    writes the run folder; :class:`Launch` (torchrun's environment) and the training's
    ``DistributedContext`` (the process group) both ask it here.
    """

    rank: int

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that speaks for the job."""
        return self.rank == 0


@dataclass(frozen=True)
class Launch(RankOfJob):
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


def torchrun_words() -> list[str] | None:
    """The words that started this process's torchrun, up to this command's own arguments.

    ``torchrun --nproc-per-node=2 --standalone -m biofound_cli finetune R.toml`` gives
    ``["torchrun", "--nproc-per-node=2", "--standalone", "-m", "biofound_cli"]``, so a stopped run
    can print a command that continues it when pasted, its launch options (``--nnodes``, the
    rendezvous) included. torchrun is the parent of each rank; its command line is read from
    ``/proc`` (Linux). None where it cannot be read or does not end with this process's arguments.
    """
    try:
        words = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode().split("\0")[:-1]
    except (OSError, UnicodeDecodeError):
        return None
    own = sys.argv[1:]
    start = len(words) - len(own)
    if start < 1 or words[start:] != own:
        return None
    launcher = next((i for i, word in enumerate(words[:start]) if Path(word).name == "torchrun"), None)
    if launcher is None:  # python -m torch.distributed.run ...: the interpreter's words as given
        return words[:start]
    name = words[launcher]
    on_path = shutil.which("torchrun")
    short = on_path is not None and Path(on_path).resolve() == Path(name).resolve()
    return ["torchrun" if short else name, *words[launcher + 1 : start]]
