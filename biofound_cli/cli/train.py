"""``biofound pretrain RECIPE`` and ``biofound finetune RECIPE``.

Both run under ``torchrun --nproc-per-node N -m biofound_cli finetune RECIPE`` unchanged:
the loop reads torchrun's environment, and only rank 0 prints and writes.
"""

from __future__ import annotations

import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator

from biofound_cli.cli.common import (
    JsonOption,
    NoProgressOption,
    QuietOption,
    RecipeArgument,
    SetOption,
    UnsetOption,
    make_output,
    output_flags,
    run_command,
    run_option,
)
from biofound_cli.launcher import launch, torchrun_words

ResumeOption = Annotated[
    str,
    run_option(
        "--resume",
        metavar="auto|none|PATH",
        help="auto: continue from the newest complete checkpoint in the run folder, or start fresh; "
        "none: start fresh; PATH: a checkpoint folder.",
    ),
]
AllowChangesOption = Annotated[
    bool,
    run_option(
        "--allow-changes",
        help="Resume even though the recipe or the number of processes changed since the run started "
        "(the global batch and accumulation must stay).",
    ),
]


def _train(
    stage: str,
    recipe,
    settings: tuple[list[str], list[str]],
    resume: str,
    allow_changes: bool,
    json_summary: bool,
    quiet: bool,
    no_progress: bool,
) -> None:
    """Run ``stage``; ``settings`` are the ``--set`` and ``--unset`` options, in that order."""
    overrides, unset = settings
    # Only rank 0 prints the JSON summary, success or failure: one object per job on stdout.
    is_main = launch().is_main
    output = make_output(json_summary and is_main, quiet, no_progress)
    continue_command = _continue_command(stage, recipe, settings, output_flags(json_summary, quiet, no_progress))

    def work() -> None:
        from biofound_cli.stop_signals import PREEMPTION_SIGNALS, noted_at_start
        from biofound_cli.training.preemption import PreemptionGuard, stops_noted

        # A preemption while torch imports and the recipe is read waits for the guard, the recipe's;
        # so does one since the process started (noted by the entry point), taken first.
        with stops_noted(PREEMPTION_SIGNALS) as arrived:
            arrived[:0] = noted_at_start()
            from biofound_cli.recipes import load_checked
            from biofound_cli.recipes.origin import options_named
            from biofound_cli.recipes.training import TrainSection
            from biofound_cli.training.distributed import reported_by_rank_zero
            from biofound_cli.training.run import check_start, run_checked_training

            loaded, _ = reported_by_rank_zero(
                lambda: load_checked(
                    recipe,
                    overrides,
                    unset=unset,
                    stage=stage,
                    check=lambda loaded: check_start(loaded, stage, str(recipe), resume),
                )
            )
            train = loaded.train or TrainSection()
            # From here on a stop signal waits for a step boundary instead of killing the setup, and
            # after a stop, late copies of it (torchrun's forwarded one) cannot kill the report.
            guard = PreemptionGuard(train.preemption_signals, hold_after_stop=True, arrived=arrived)
            with guard, options_named(loaded), _stop_reported_once(is_main):
                result = run_checked_training(
                    loaded,
                    stage=stage,
                    source=str(recipe),
                    reporter=output,
                    resume=resume,
                    allow_changes=allow_changes,
                    guard=guard,
                    continue_command=continue_command,
                )
        if is_main:
            output.summary(result.summary(), title=f"{stage} finished")

    run_command(output, work, again=f"continue with: {continue_command}")


@contextmanager
def _stop_reported_once(is_main: bool) -> Iterator[None]:
    """A stop every rank agreed on (preemption, Ctrl-C) is one event: rank 0 prints its line, the others exit alike in silence.

    Each rank used to print it, the others with a ``rank N:`` prefix, beside torchrun's own report.
    """
    from biofound_cli.errors import InterruptedRunError, PreemptedError, ReportedByAnotherRank

    try:
        yield
    except (PreemptedError, InterruptedRunError) as stop:
        if is_main:
            raise
        raise ReportedByAnotherRank(stop.message, status=stop.status, details=stop.details) from None


def _continue_command(stage: str, recipe: Path, settings: tuple[list[str], list[str]], flags: list[str]) -> str:
    """The exact command line that continues this run after a stop: its ``--set`` and ``--unset`` ``settings``, ``flags``."""
    overrides, unset = settings
    options = [word for name in unset for word in ("--unset", name)]
    options += [word for override in overrides for word in ("--set", override)]
    words = [stage, str(recipe), *options, "--resume", "auto", *flags]
    quoted = shlex.join(words)
    job = launch()
    if job.by_torchrun or job.world_size > 1:
        launcher = torchrun_words()
        if launcher is None:  # not readable (no /proc): the options cannot be named
            return f"torchrun <the same torchrun options> -m biofound_cli {quoted}"
        return f"{shlex.join(launcher)} {quoted}"
    return f"biofound {quoted}"


def _stage_command(stage: str, doc: str) -> Callable[..., None]:
    """The ``pretrain`` or ``finetune`` command: the same options, one stage each."""

    def command(
        recipe: RecipeArgument,
        resume: ResumeOption = "none",
        allow_changes: AllowChangesOption = False,
        overrides: SetOption = None,
        unset: UnsetOption = None,
        json_summary: JsonOption = False,
        quiet: QuietOption = False,
        no_progress: NoProgressOption = False,
    ) -> None:
        _train(stage, recipe, (overrides or [], unset or []), resume, allow_changes, json_summary, quiet, no_progress)

    command.__doc__ = doc
    return command


pretrain = _stage_command("pretrain", "Masked-reconstruction pre-training of FEMBA, LUNA or TinyMyo on packed windows.")
finetune = _stage_command(
    "finetune", "Supervised fine-tuning (full, frozen body or LoRA) from a pre-trained or official checkpoint."
)
