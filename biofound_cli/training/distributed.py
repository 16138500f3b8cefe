"""Distributed data parallel: torchrun's environment, the process group, and rank-0 I/O.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; when they are absent the run is
a single process and every helper here is a no-op. The process group uses NCCL on CUDA and
Gloo on CPU. Only rank 0 writes files; the others wait at a barrier where it matters.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from biofound_cli import PACKAGE_LOGGER
from biofound_cli.errors import BiofoundError, ExitStatus, ReportedByAnotherRank, UsageError
from biofound_cli.launcher import RankOfJob, launch
from biofound_cli.python_warnings import WARNINGS_LOGGER

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext(RankOfJob):
    """Where this process sits in the job (``is_main``: rank 0, :class:`~biofound_cli.launcher.RankOfJob`)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto`` → this rank's CUDA device when there is one, else the CPU.

    Parameters
    ----------
    preference : str
        ``auto``, ``cpu`` or ``cuda`` (the recipe's ``train.device``); ``cuda`` without a visible
        CUDA device is an error.
    local_rank : int
        This process's rank on its machine; it picks the CUDA device (modulo their count).
    """
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise UsageError("train.device = 'cuda' but no CUDA device is visible; set train.device = 'cpu' or 'auto'")
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run (fp16 with loss scaling is CUDA only).

    Parameters
    ----------
    precision : str
        The recipe's ``train.precision`` (``fp32``, ``bf16`` or ``fp16``).
    device : torch.device
        The device training runs on.
    """
    if precision == "fp16" and device.type != "cuda":
        raise UsageError("train.precision = 'fp16' needs a CUDA device; use 'bf16' or 'fp32' on the CPU")


@contextlib.contextmanager
def logging_at_least(level: int, active: bool) -> Iterator[None]:
    """While ``active``, let only records of ``level`` and above through the ``biofound_cli`` logger and Python warnings.

    Python warnings (:data:`~biofound_cli.python_warnings.WARNINGS_LOGGER`) are filtered alike: a
    library's warning (torch's notice of more loader workers than CPUs) comes from every rank's
    loader at once.

    Parameters
    ----------
    level : int
        The least level passed: ``logging.ERROR`` on a rank other than 0, whose INFO lines and
        warnings repeat rank 0's (a non-main rank's whole run, and work every rank does alike,
        see :func:`warned_by_rank_zero`).
    active : bool
        Whether to filter at all; the loggers' own levels are put back either way.
    """
    saved = {logger: logger.level for logger in map(logging.getLogger, (PACKAGE_LOGGER, WARNINGS_LOGGER))}
    if active:
        for logger in saved:
            logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        for logger, its_level in saved.items():
            logger.setLevel(its_level)


def warned_by_rank_zero() -> contextlib.AbstractContextManager[None]:
    """Work every rank does alike warns once: on a rank other than 0 (torchrun's ``RANK``) its warnings are dropped.

    Reading the recipe and building the job from it and the data headers is the same on every rank,
    so each warning it logs (LoRA on random weights, a patience with nothing to count, a path beside
    the recipe) was printed once per process: eight copies on a node of eight GPUs. Its refusals
    are raised, not logged, and still reach :func:`reported_by_rank_zero` or :func:`agree`.
    """
    return logging_at_least(logging.ERROR, not launch().is_main)


def reported_by_rank_zero(work: Callable[[], T]) -> T:
    """``work()`` on every rank before the process group is up; a refusal it raises, and its warnings, are printed by rank 0 only.

    Reading the recipe or choosing the device fails alike on every rank (the same file, the same
    ``--set``, the same machine), and no collective can yet tell the ranks apart: rank 0 (by
    torchrun's ``RANK``) reports it, the others raise
    :class:`~biofound_cli.errors.ReportedByAnotherRank` with its status, so the job prints it once.

    Parameters
    ----------
    work : callable
        Called with no arguments on every rank.
    """
    try:
        with warned_by_rank_zero():
            return work()
    except BiofoundError as error:
        job = launch()
        if job.world_size > 1:
            _outlive_the_stop_of_a_failed_job()
        raise reported_by_rank(error, job) from None


def reported_by_rank(error: BiofoundError, place: RankOfJob) -> BiofoundError:
    """``error`` as the rank at ``place`` raises a failure every rank reaches alike: rank 0 reports it, the others exit silently.

    A refused recipe, or a training loss that is NaN once all-reduced, stops every rank at once;
    raised as it is on each, the job printed the same line once per rank (``rank 1: ...``).

    Parameters
    ----------
    error : BiofoundError
        The failure, the same on every rank.
    place : RankOfJob
        This process's place in the job (its ``DistributedContext``, or torchrun's ``Launch``).
    """
    if place.is_main or isinstance(error, ReportedByAnotherRank):
        return error
    return ReportedByAnotherRank(error.message, status=error.status, details=error.details)


def _outlive_the_stop_of_a_failed_job() -> None:
    """Ignore SIGTERM from here on: this rank is about to exit with its status anyway.

    Once one rank has exited, torchrun stops the others with SIGTERM; a rank still reporting the
    failure would die of it (exit -15), its line cut off. (Later in a run the
    :class:`~biofound_cli.training.preemption.PreemptionGuard` does the same.)
    """
    import signal

    with contextlib.suppress(ValueError):  # not the main thread: signals cannot be handled there
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def setup_distributed(device_preference: str = "auto") -> DistributedContext:
    """Join the torchrun job described by the environment, or describe a single process.

    Parameters
    ----------
    device_preference : str
        ``auto``, ``cpu`` or ``cuda`` (see :func:`pick_device`).
    """
    job = launch()
    world_size, rank = job.world_size, job.rank
    device = pick_device(device_preference, job.local_rank)
    if world_size > 1 and not dist.is_initialized():
        # Imported by DDP, torch.distributed.nn binds the default group into its functions'
        # defaults: imported after init_process_group, it keeps the group alive past
        # destroy_process_group, and gloo's threads were then torn down during interpreter
        # exit, where a rank could abort (exit -6) after a finished run. Imported first, it binds None.
        import torch.distributed.nn.functional  # noqa: F401

        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # A collective waits this long for the other ranks before failing.
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, timeout=datetime.timedelta(minutes=30))
    return DistributedContext(rank=rank, world_size=world_size, device=device)


@contextlib.contextmanager
def data_parallel(model: nn.Module, context: DistributedContext, *, find_unused_parameters: bool = True) -> Iterator[nn.Module]:
    """DDP around ``model`` while the block runs in a multi-process job; the model itself otherwise.

    On every way out of the block the wrapper lets go of its reducer and process group. The
    reducer holds the group, and a reducer freed after :func:`shutdown` (e.g. with the
    traceback of a stop or error that still references the training loop's frames) was the last
    holder: it destroyed the gloo group while holding the interpreter lock, waiting for a gloo
    thread that needed that lock to release a finished collective's tensors, and the rank hung
    (tests/integration/test_distributed_training.py lists the threads a rank keeps).

    Parameters
    ----------
    model : nn.Module
        The model, already on this rank's device.
    context : DistributedContext
        The job.
    find_unused_parameters : bool
        Whether a step may leave a trainable weight outside its graph (the family's
        ``leaves_parameters_unused``). True costs a graph search a step and, where nothing is
        unused, a warning on every rank; a wrong False stops the run at its second step.
    """
    if not context.enabled:
        yield model
        return
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.device.index] if context.device.type == "cuda" else None
    wrapper = DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
    try:
        yield wrapper
    finally:
        # The attributes DDP keeps the group in: its reducer (C++, freed here, while the group
        # is still registered), the reducer's logger, and the group itself.
        wrapper.reducer = wrapper.logger = None
        wrapper.process_group = None  # type: ignore[assignment]  # training is over: nothing uses it again


def all_reduce_mean(value: float, context: DistributedContext) -> float:
    """The mean of ``value`` over all ranks (NaN on any rank gives NaN).

    Parameters
    ----------
    value : float
        This rank's value.
    context : DistributedContext
        The job; with one process ``value`` is returned as is.
    """
    return float(_all_reduced(float(value), torch.float64, "SUM", context)) / context.world_size


def any_rank(flag: bool, context: DistributedContext) -> bool:
    """True on every rank when ``flag`` is true on at least one (all ranks agree).

    Parameters
    ----------
    flag : bool
        This rank's flag.
    context : DistributedContext
        The job; with one process ``flag`` is returned as is.
    """
    return bool(_all_reduced(1 if flag else 0, torch.int32, "MAX", context))


def _all_reduced(value: float, dtype: torch.dtype, op: str, context: DistributedContext) -> float:
    """``value`` reduced over all ranks with ``dist.ReduceOp.<op>``; as is with one process."""
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=dtype, device=_collective_device(context))
    dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op))
    return tensor.item()


def broadcast_object(value: Any, context: DistributedContext) -> Any:
    """Rank 0's ``value`` on every rank.

    Parameters
    ----------
    value : Any
        A picklable object; only rank 0's is used.
    context : DistributedContext
        The job; with one process ``value`` is returned as is.
    """
    if not context.enabled:
        return value
    holder = [value if context.is_main else None]
    dist.broadcast_object_list(holder, src=0, device=_collective_device(context))
    return holder[0]


def gather_objects(value: Any, context: DistributedContext) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank.

    Parameters
    ----------
    value : Any
        This rank's picklable object.
    context : DistributedContext
        The job; with one process the list holds ``value`` only.
    """
    if not context.enabled:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def is_peer_failure(error: BaseException) -> bool:
    """Whether ``error`` is what a collective raises on the ranks left behind by a dead rank.

    Gloo raises a plain ``RuntimeError`` naming its transport ("Connection reset by peer"),
    NCCL and newer backends a ``torch.distributed.DistError``.

    Parameters
    ----------
    error : BaseException
        The error a collective raised.
    """
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("gloo" in text or "NCCL" in text or "by peer" in text)


def run_on_main(work: Callable[[], T], context: DistributedContext) -> T:
    """``work()`` on rank 0 only; its result, or the user-facing error it raised, on every rank.

    Rank 0 reports the error; the other ranks raise it as
    :class:`~biofound_cli.errors.ReportedByAnotherRank`, so the job prints it once.

    Parameters
    ----------
    work : callable
        Called with no arguments on rank 0; its result must be picklable.
    context : DistributedContext
        The job; with one process ``work()`` simply runs.
    """
    # Rank 0 alone works; agree() has the ranks report its refusal once, and its result is broadcast.
    return broadcast_object(agree(lambda: work() if context.is_main else None, context), context)


def agree(work: Callable[[], T], context: DistributedContext) -> T:
    """``work()`` on every rank; if it raises a user-facing error on any rank, every rank stops.

    The lowest rank that raised an error reports it; a rank that raised the same error (a refused
    recipe or data file, alike on every rank) or none at all raises
    :class:`~biofound_cli.errors.ReportedByAnotherRank` with that status instead, so the job
    reports each refusal once and no rank goes on to wait for the others in a collective.

    Parameters
    ----------
    work : callable
        Called with no arguments on every rank; its result stays on this rank.
    context : DistributedContext
        The job; with one process ``work()`` simply runs.
    """
    if not context.enabled:
        return work()
    result: Any = None
    error: BiofoundError | None = None
    try:
        result = work()
    except BiofoundError as raised:
        error = raised
    outcomes = gather_objects(None if error is None else (error.message, int(error.status)), context)
    failed = [(rank, outcome) for rank, outcome in enumerate(outcomes) if outcome is not None]
    if not failed:
        return result
    reported_below = {message for rank, (message, _) in failed if rank < context.rank}
    if error is not None and error.message not in reported_below:
        raise error
    message, status = next(outcome for rank, outcome in failed if error is None or outcome[0] == error.message)
    raise ReportedByAnotherRank(message, status=ExitStatus(status))


def barrier(context: DistributedContext) -> None:
    """Wait until every rank reaches this point (nothing to wait for with one process).

    Parameters
    ----------
    context : DistributedContext
        The job; on CUDA the barrier runs on this rank's device.
    """
    if context.enabled:
        dist.barrier(device_ids=[context.device.index] if context.device.type == "cuda" else None)


def shutdown(context: DistributedContext, *, failed: bool = False) -> None:
    """Leave the process group.

    After a failure the other ranks may be blocked in a collective; destroying the group
    (instead of waiting at a barrier) lets torchrun see this rank exit and stop the rest.

    Parameters
    ----------
    context : DistributedContext
        The job; nothing happens with one process.
    failed : bool
        This rank failed: skip the final barrier and destroy the group at once.
    """
    if context.enabled and dist.is_initialized():
        if not failed:
            with contextlib.suppress(RuntimeError):
                barrier(context)
        dist.destroy_process_group()


def _collective_device(context: DistributedContext) -> torch.device:
    return context.device if context.device.type == "cuda" else torch.device("cpu")
