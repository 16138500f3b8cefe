"""``biofound pretrain RECIPE`` and ``biofound finetune RECIPE``.

Both run under ``torchrun --nproc-per-node N -m biofound_cli finetune RECIPE`` unchanged:
the loop reads torchrun's environment, and only rank 0 prints and writes.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Annotated

import typer

from biofound_cli.cli.common import (
    JsonOption,
    NoProgressOption,
    QuietOption,
    RecipeArgument,
    SetOption,
    make_output,
    run_command,
)

ResumeOption = Annotated[
    str,
    typer.Option(
        "--resume",
        metavar="auto|none|PATH",
        help="auto: continue from the newest complete checkpoint in the run folder, or start fresh; "
        "none: start fresh; PATH: a checkpoint folder.",
    ),
]


AllowChangesOption = Annotated[
    bool,
    typer.Option("--allow-changes", help="Resume even though the recipe or the number of processes changed since the run started."),
]


def _train(stage: str, recipe, overrides, resume: str, allow_changes: bool, json_summary: bool, quiet: bool,
           no_progress: bool) -> None:
    # Only rank 0 prints the JSON summary, success or failure: one object per job on stdout.
    is_main = int(os.environ.get("RANK", "0")) == 0
    output = make_output(json_summary and is_main, quiet, no_progress)
    continue_command = _continue_command(stage, recipe, overrides)

    def work() -> None:
        from biofound_cli.recipes import load_recipe
        from biofound_cli.recipes.training import TrainSection
        from biofound_cli.training.preemption import PreemptionGuard

        loaded = load_recipe(recipe, overrides or [])
        train = loaded.train or TrainSection()
        # From here on a stop signal waits for a step boundary instead of killing the setup.
        with PreemptionGuard(train.preemption_signals) as guard:
            _run(stage, recipe, loaded, resume, allow_changes, guard, continue_command, output)

    run_command(output, work)


def _run(stage, recipe, loaded, resume, allow_changes, guard, continue_command, output) -> None:
    from biofound_cli.errors import BiofoundError, UsageError
    from biofound_cli.output import Output
    from biofound_cli.recipes.training import TrainSection
    from biofound_cli.training import distributed
    from biofound_cli.training.loop import TrainingError, fit
    from biofound_cli.training.setup import build_job, resolve_resume, run_folder_for

    started = time.monotonic()
    train = loaded.train or TrainSection()
    context = distributed.setup_distributed(train.device)
    # Other ranks stay silent: one progress display and one summary per job.
    rank_output = output if context.is_main else Output(quiet=True, progress=False)
    recipe_record = loaded.model_dump(mode="json")
    failed = True
    try:
        run_folder = run_folder_for(loaded, stage)

        def prepare_folder():
            resume_from = resolve_resume(resume, run_folder, output)
            changes = run_folder.recipe_changes(recipe_record, context.world_size) if resume_from else []
            if changes and not allow_changes:
                raise UsageError(
                    f"{run_folder.root} was started with another recipe or number of processes ({'; '.join(changes)}); "
                    "resume with the original settings, pass --allow-changes to continue anyway, or set "
                    "output.run_name to start a new run"
                )
            return resume_from, changes

        resume_from, changes = distributed.run_on_main(prepare_folder, context)
        job = build_job(loaded, stage=stage, source=str(recipe), output=rank_output)
        if context.is_main:
            run_folder.create()
            if changes:
                output.warn(f"resuming {run_folder.root} with changes: {'; '.join(changes)}")
            run_folder.append_recipe_history(recipe_record, world_size=context.world_size, resumed_from=resume_from,
                                             changes=changes)
            run_folder.write_recipe(recipe_record)
            run_folder.write_environment(device=str(context.device), world_size=context.world_size)
            if resume_from is None:
                run_folder.truncate_metrics(0)
        distributed.barrier(context)
        try:
            result = fit(job, run_folder, context=context, output=rank_output, resume=resume_from, guard=guard,
                         continue_command=continue_command)
        except RuntimeError as error:
            if not (context.enabled and distributed.is_peer_failure(error)):
                raise
            raise TrainingError(
                f"rank {context.rank}: another process of this job failed or was killed, so this one stopped "
                "too (torchrun's failure report names it); once its cause is fixed, continue from the newest "
                f"checkpoint with: {continue_command}"
            ) from None
        curve = run_folder.plot_curve(job.train.early_stopping_metric) if context.is_main else None
        failed = False
    except BiofoundError as error:
        if context.enabled and not context.is_main:
            error.args = (f"rank {context.rank}: {error.message}",)
        raise
    finally:
        distributed.shutdown(context, failed=failed)
    if context.is_main:
        summary = {
            "run": str(run_folder.root),
            "stage": stage,
            "steps": result.step,
            "epochs": result.epoch,
            "stopped_early": result.stopped_early,
            "best_metric": {job.train.early_stopping_metric: result.best_metric},
            "best_step": result.best_step,
            "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
            "last_checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
            "metrics": {k: v for k, v in result.last_metrics.items() if isinstance(v, (int, float))},
            "train_curve": str(curve) if curve else None,
            "world_size": context.world_size,
            "elapsed_seconds": round(time.monotonic() - started, 1),
        }
        output.summary(summary, title=f"{stage} finished")


def _continue_command(stage: str, recipe: Path, overrides: list[str] | None) -> str:
    """The exact command line that continues this run after a stop."""
    words = [stage, str(recipe)]
    for override in overrides or []:
        words += ["--set", override]
    words += ["--resume", "auto"]
    quoted = " ".join(shlex.quote(word) for word in words)
    if "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"torchrun <the same torchrun options> -m biofound_cli {quoted}"
    return f"biofound {quoted}"


def pretrain(
    recipe: RecipeArgument,
    resume: ResumeOption = "none",
    allow_changes: AllowChangesOption = False,
    overrides: SetOption = None,
    json_summary: JsonOption = False,
    quiet: QuietOption = False,
    no_progress: NoProgressOption = False,
) -> None:
    """Masked-reconstruction pre-training of FEMBA, LUNA or TinyMyo on packed windows."""
    _train("pretrain", recipe, overrides, resume, allow_changes, json_summary, quiet, no_progress)


def finetune(
    recipe: RecipeArgument,
    resume: ResumeOption = "none",
    allow_changes: AllowChangesOption = False,
    overrides: SetOption = None,
    json_summary: JsonOption = False,
    quiet: QuietOption = False,
    no_progress: NoProgressOption = False,
) -> None:
    """Supervised fine-tuning (full, frozen body or LoRA) from a pre-trained or official checkpoint."""
    _train("finetune", recipe, overrides, resume, allow_changes, json_summary, quiet, no_progress)


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
    app.command("finetune")(finetune)
