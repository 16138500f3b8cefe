"""Array-job slicing of ``preprocess``: which recordings slice ``I`` of ``N`` processes.

``biofound preprocess ... --shard I/N`` (``1 <= I <= N``) or ``--shard auto`` (from SLURM's
``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_MIN`` and ``SLURM_ARRAY_TASK_COUNT``) runs one
slice of the corpus. The slices are a partition of the discovered recordings, balanced by file
size and deterministic: the same files give the same slices on every node, whatever order the
file system lists them in. Each recording is assigned, largest first (ties by recording id), to
the slice with the fewest bytes so far (ties to the lower index): the longest-processing-time
rule, within 4/3 of the best possible balance.
"""

from __future__ import annotations

import heapq
import os
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from biofound_cli.corpora.base import RecordingRef
from biofound_cli.errors import UsageError

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Slice:
    """Slice ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @property
    def label(self) -> str:
        """``"I-of-N"``, as used in file names."""
        return f"{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def per_slice_name(stem: str, slice_text: str | None) -> str:
    """``STEM.json``, or ``STEM.slice-I-of-N.json`` for slice ``"I/N"``: one file per slice in a shared folder.

    Parameters
    ----------
    stem : str
        The file name without ``.json`` (``preprocess_report``, ``summary``).
    slice_text : str | None
        ``"I/N"`` as a report stores it, or ``None`` for a whole run.
    """
    return f"{stem}.json" if slice_text is None else f"{stem}.slice-{parse_slice(slice_text).label}.json"


def parse_slice(spec: str, environ: Mapping[str, str] | None = None) -> Slice:
    """Read ``--shard``: ``"I/N"`` with ``1 <= I <= N``, or ``"auto"`` for the SLURM array task.

    With ``auto``, ``I = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN + 1`` (``MIN`` taken as 0
    when unset), so ``--array=0-9`` and ``--array=1-10`` both give slices 1..10 of 10.

    Parameters
    ----------
    spec : str
        The value of ``--shard``.
    environ : mapping of str to str | None
        Where the ``SLURM_ARRAY_TASK_*`` variables are read; None reads ``os.environ``.

    Raises
    ------
    UsageError
        A malformed spec, an index outside ``1..N``, or ``auto`` outside a SLURM array job.
    """
    environ = os.environ if environ is None else environ
    if spec.strip().lower() == "auto":
        missing = [name for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT") if not environ.get(name)]
        if missing:
            raise UsageError(
                f"--shard auto: {' and '.join(missing)} not set, so this is not a SLURM array task; "
                "submit with sbatch --array, or give the slice as --shard I/N"
            )
        try:
            task_id = int(environ["SLURM_ARRAY_TASK_ID"])
            task_min = int(environ.get("SLURM_ARRAY_TASK_MIN") or 0)
            count = int(environ["SLURM_ARRAY_TASK_COUNT"])
        except ValueError:
            raise UsageError(
                "--shard auto: SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT must be "
                "whole numbers; give the slice as --shard I/N instead"
            ) from None
        index = task_id - task_min + 1
        if not 1 <= index <= count:
            raise UsageError(
                f"--shard auto: task {task_id} (array minimum {task_min}) is not one of {count} tasks; "
                f"use a contiguous --array range such as 0-{count - 1}, or --shard I/N"
            )
        return Slice(index, count)
    match = _SPEC.match(spec)
    if not match:
        raise UsageError(f"--shard {spec!r}: expected I/N (e.g. 2/8, counting from 1) or auto")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard {spec}: I must be between 1 and N (slices count from 1), got {index} of {count}")
    return Slice(index, count)


def slice_refs(refs: Sequence[RecordingRef], chosen: Slice, sizes: Mapping[str, int] | None = None) -> list[RecordingRef]:
    """The recordings of slice ``chosen``, in ``recording_id`` order.

    Parameters
    ----------
    refs : sequence of RecordingRef
        Every recording found (any order).
    chosen : Slice
    sizes : mapping of recording_id to bytes | None
        The weight of each recording; by default the size of its file (0 if it cannot be read).
    """
    if sizes is None:
        sizes = {ref.recording_id: _file_size(ref) for ref in refs}
    assignment = assign_slices([(ref.recording_id, sizes[ref.recording_id]) for ref in refs], chosen.count)
    return sorted((ref for ref in refs if assignment[ref.recording_id] == chosen.index), key=lambda ref: ref.recording_id)


def assign_slices(weights: Sequence[tuple[str, int]], count: int) -> dict[str, int]:
    """Map each ``(recording_id, weight)`` to a slice ``1..count``: largest first onto the lightest slice.

    Parameters
    ----------
    weights : sequence of (str, int)
        Each recording's id and its weight (e.g. its file size); ties are broken by id.
    count : int
        The number of slices, at least 1.
    """
    heap = [(0, index) for index in range(1, count + 1)]
    assignment: dict[str, int] = {}
    for recording_id, weight in sorted(weights, key=lambda item: (-item[1], item[0])):
        load, index = heapq.heappop(heap)
        assignment[recording_id] = index
        heapq.heappush(heap, (load + weight, index))
    return assignment


def _file_size(ref: RecordingRef) -> int:
    try:
        return ref.path.stat().st_size
    except OSError:
        return 0
