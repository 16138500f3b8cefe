"""``biofound pretrain RECIPE`` and ``biofound finetune RECIPE``.

Both run under ``torchrun --nproc-per-node N -m biofound_cli finetune RECIPE`` unchanged:
the loop reads torchrun's environment, and only rank 0 prints and writes.
"""

from __future__ import annotations

import time
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


def _train(stage: str, recipe, overrides, resume: str, json_summary: bool, quiet: bool, no_progress: bool) -> None:
    output = make_output(json_summary, quiet, no_progress)

    def work() -> None:
        from biofound_cli.output import Output
        from biofound_cli.recipes import load_recipe
        from biofound_cli.recipes.training import TrainSection
        from biofound_cli.training import distributed
        from biofound_cli.training.loop import fit
        from biofound_cli.training.setup import build_job, resolve_resume, run_folder_for

        started = time.monotonic()
        loaded = load_recipe(recipe, overrides or [])
        train = loaded.train or TrainSection()
        context = distributed.setup_distributed(train.device)
        # Other ranks stay silent: one progress display and one summary per job.
        rank_output = output if context.is_main else Output(quiet=True, progress=False)
        failed = True
        try:
            run_folder = run_folder_for(loaded, stage)
            resume_from = distributed.broadcast_object(
                resolve_resume(resume, run_folder) if context.is_main else None, context
            )
            job = build_job(loaded, stage=stage, source=str(recipe), output=rank_output)
            if context.is_main:
                run_folder.create()
                run_folder.write_recipe(loaded.model_dump(mode="json"))
                run_folder.write_environment(device=str(context.device), world_size=context.world_size)
                if resume_from is None:
                    run_folder.truncate_metrics(0)
            distributed.barrier(context)
            result = fit(job, run_folder, context=context, output=rank_output, resume=resume_from)
            curve = run_folder.plot_curve(job.train.early_stopping_metric) if context.is_main else None
            failed = False
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

    run_command(output, work)


def pretrain(
    recipe: RecipeArgument,
    resume: ResumeOption = "none",
    overrides: SetOption = None,
    json_summary: JsonOption = False,
    quiet: QuietOption = False,
    no_progress: NoProgressOption = False,
) -> None:
    """Masked-reconstruction pre-training of FEMBA, LUNA or TinyMyo on packed windows."""
    _train("pretrain", recipe, overrides, resume, json_summary, quiet, no_progress)


def finetune(
    recipe: RecipeArgument,
    resume: ResumeOption = "none",
    overrides: SetOption = None,
    json_summary: JsonOption = False,
    quiet: QuietOption = False,
    no_progress: NoProgressOption = False,
) -> None:
    """Supervised fine-tuning (full, frozen body or LoRA) from a pre-trained or official checkpoint."""
    _train("finetune", recipe, overrides, resume, json_summary, quiet, no_progress)


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
    app.command("finetune")(finetune)
