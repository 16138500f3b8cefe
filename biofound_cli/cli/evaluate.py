"""``biofound evaluate RECIPE``: metrics, bootstrap intervals and plots of a checkpoint on a split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from biofound_cli.cli.common import (
    Output,
    Overrides,
    RecipeArgument,
    out_option,
    recipe_stage,
    run_option,
    set_option,
    unset_option,
    with_output,
)


@with_output
def evaluate(
    output: Output,
    recipe: RecipeArgument,
    checkpoint: Annotated[
        Optional[Path],
        typer.Option(
            "--checkpoint",
            "-c",
            rich_help_panel="Input and output",
            help="Weights to evaluate (.safetensors, official files too); default: the run's best checkpoint.",
        ),
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            "--split",
            rich_help_panel="Input and output",
            metavar="train|val|test",
            help="Which packed split of the recipe's \\[data] section: train, val or test.",
        ),
    ] = "test",
    bootstrap: Annotated[
        int, run_option("--bootstrap", min=0, help="Bootstrap resamples for confidence intervals (0: none; 1000 is usual).")
    ] = 0,
    seed: Annotated[int, run_option("--seed", help="Seed of the bootstrap.")] = 0,
    out: Annotated[Optional[Path], out_option("Folder for report.json and the plots; default: runs/NAME/eval/SPLIT.")] = None,
    no_plots: Annotated[
        bool, run_option("--no-plots", help="Write report.json only; the plots of an earlier run in the folder are removed.")
    ] = False,
    overrides: Annotated[Overrides, set_option("train.device=cpu")] = None,
    unset: Annotated[Overrides, unset_option("model.checkpoint")] = None,
) -> None:
    """Score a checkpoint on a packed split: report.json (window and recording metrics), PNG plots and a table."""
    from biofound_cli.evaluation.evaluate import check_evaluation_files, evaluate_checked_recipe, headline_rows, summary_of

    # A SIGTERM stops the scoring as Ctrl-C does, and either names what it left: the generic Ctrl-C
    # line promises a resume, and evaluation starts over.
    stopped = (
        "; every file is written whole or not at all, but report.json and the plots may be missing or from an "
        "earlier run, so run the same command again"
    )
    with recipe_stage(
        recipe,
        overrides,
        unset=unset,
        stage="evaluate",
        check=lambda loaded: check_evaluation_files(loaded, str(recipe), split=split, checkpoint=checkpoint),
        stopped=stopped,
        ctrl_c=True,
    ) as (loaded, files):
        result = evaluate_checked_recipe(
            loaded,
            files,
            source=str(recipe),
            reporter=output,
            split=split,
            n_bootstrap=bootstrap,
            seed=seed,
            out_dir=out,
            plots=not no_plots,
        )
    report = result.report
    window_bootstrap = (report.get("bootstrap") or {}).get("windows") or {}
    # Name the unit resampled: recordings, or single windows when the split has too few recordings.
    interval_title = (
        f"{window_bootstrap['confidence']:.0%} interval ({window_bootstrap['unit']}s resampled)"
        if window_bootstrap
        else "interval"
    )
    n_recordings = report["recordings"]["n_recordings"] if report["recordings"] else None
    output.table(
        f"{report['task']} on {result.split_path.name} ({report['n_windows']} windows)",
        (
            "metric",
            f"windows (N={report['n_windows']})",
            f"recordings (N={n_recordings})" if n_recordings else "recordings",
            interval_title,
        ),
        headline_rows(report),
    )
    for note in report["notes"]:
        output.info(f"note: {note}")
    if result.train_curve is not None:
        output.info(f"training curve: {result.train_curve}")
    summary = summary_of(result)
    if output.json_summary:
        # Why a metric is null (a split of one class, a constant target): a script reading only stdout sees
        # the null, so it gets the reason too; the table has them as the note lines above.
        summary["notes"] = report["notes"]
    output.summary(summary, title=f"Evaluated {result.checkpoint}", timed=True)
