"""``biofound preprocess CORPUS --root RAW --out SHARDS``: raw recordings → one shard per recording."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from biofound_cli.cli.common import (
    Output,
    Overrides,
    out_option,
    recipe_option,
    recipe_stage,
    run_option,
    set_option,
    shard_option,
    unset_option,
    with_output,
)
from biofound_cli.recipes.preprocess import PreprocessSection


@with_output
def preprocess(
    output: Output,
    corpus: Annotated[
        Optional[str],
        typer.Argument(
            help="Corpus reader: tuab, tuar, tusl, tueg, emg-csv, ts, ... (or preprocess.corpus).", show_default=False
        ),
    ] = None,
    root: Annotated[
        Optional[Path], typer.Option("--root", rich_help_panel="Input and output", help="Folder holding the raw recordings.")
    ] = None,
    out: Annotated[Optional[Path], out_option("Folder the shards are written to (SHARDS/<corpus>/*.h5).")] = None,
    workers: Annotated[
        Optional[int],
        run_option(
            "--workers",
            "-j",
            help=f"Recordings processed in parallel (default {PreprocessSection.model_fields['workers'].default}).",
        ),
    ] = None,
    recipe: Annotated[Optional[Path], recipe_option("Recipe whose preprocess section sets the signal chain.")] = None,
    force: Annotated[bool, run_option("--force", help="Rewrite shards that already exist.")] = False,
    shard: Annotated[Optional[str], shard_option("Process", ".")] = None,
    overrides: Annotated[Overrides, set_option("preprocess.resample_method=grid")] = None,
    unset: Annotated[Overrides, unset_option("preprocess.channels")] = None,
) -> None:
    """Filter, resample, re-montage, window and label raw recordings into one HDF5 shard each.

    Defaults reproduce the published preprocessing of each corpus; the recipe's preprocess section or --set preprocess.KEY=VALUE
    changes any number. Finished shards are skipped, so an interrupted run resumes. --shard I/N runs one slice of an array job.
    """
    from biofound_cli.corpora.base import Corpus
    from biofound_cli.recipes.origin import Flag, recipe_source
    from biofound_cli.recipes.preprocess import PreprocessSection
    from biofound_cli.signals.chain import ChainConfig
    from biofound_cli.store.preprocess import run_checked_preprocess
    from biofound_cli.store.preprocess_config import check_preprocess
    from biofound_cli.store.slices import parse_slice

    chosen = parse_slice(shard) if shard is not None else None

    flags = {
        "preprocess.corpus": Flag("CORPUS", corpus),
        "preprocess.root": Flag("--root", str(root) if root is not None else None),
        "preprocess.out": Flag("--out", str(out) if out is not None else None),
        "preprocess.workers": Flag("--workers", workers),
        "preprocess.force": Flag("--force", True if force else None),
    }
    source = recipe_source(recipe)

    def check(loaded) -> tuple[Corpus, ChainConfig]:
        corpus, config = check_preprocess(loaded.preprocess or PreprocessSection(), source)
        if loaded.model is not None and loaded.model.variant is not None:
            # The windows are for this recipe's model: cut ones it cannot take were refused only at finetune, after pack.
            from biofound_cli.training.setup import check_preprocess_windows

            check_preprocess_windows(loaded, source, corpus, config)
        return corpus, config

    with recipe_stage(
        recipe, overrides, flags=flags, unset=unset, stage="preprocess", check=check, stopped="; nothing was done"
    ) as (loaded, checked):
        report = run_checked_preprocess(loaded.preprocess or PreprocessSection(), checked, source, shard=chosen, reporter=output)
    sliced = f" (slice {report.slice})" if report.slice else ""
    # One table: the summary holds the counts (found, written, already_done, skipped_by_reason, windows, ...).
    output.summary(report.summary(), title=f"Preprocessed {report.corpus}{sliced} → {report.out}")
