"""``biofound predict MODEL RECORDINGS... --out DIR``: a trained model on new raw recordings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from biofound_cli.cli.common import (
    Output,
    out_option,
    recipe_option,
    run_option,
    shard_option,
    with_output,
)


@with_output
def predict(
    output: Output,
    model: Annotated[
        str,
        typer.Argument(
            help="A checkpoint (.safetensors or its folder), an export folder (config.json + model.onnx), a graph in one "
            "(model.int8.onnx: agreement with model.onnx reported), or hub:MODEL/FOLDER (also MODEL:FOLDER, e.g. luna:TUAB).",
            show_default=False,
        ),
    ],
    recordings: Annotated[
        list[str], typer.Argument(help="Recording files, folders or glob patterns (quoted).", show_default=False)
    ],
    out: Annotated[Path, out_option("Folder for the window tables, PNGs and summary.json.")],
    batch_size: Annotated[int, run_option("--batch-size", min=1, help="Windows per model call.")] = 64,
    workers: Annotated[
        int, run_option("--workers", "-j", min=1, help="Recordings preprocessed in parallel while the model runs.")
    ] = 1,
    device: Annotated[
        str, run_option("--device", metavar="cpu|cuda|cuda:N", help="cpu, cuda or cuda:N (PyTorch checkpoints).")
    ] = "cpu",
    precision: Annotated[
        str,
        run_option(
            "--precision",
            metavar="fp32|bf16",
            help="fp32, or bf16 (autocast: faster on CPUs with AVX512-BF16/AMX and on GPUs; PyTorch checkpoints).",
        ),
    ] = "fp32",
    compile_model: Annotated[
        bool,
        run_option(
            "--compile", help="torch.compile the model (frozen weights; pays off after its first minute; PyTorch checkpoints)."
        ),
    ] = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            rich_help_panel="Input and output",
            metavar="csv|jsonl|parquet",
            help="Window table format: csv, jsonl or parquet (needs pyarrow); a re-run into the same --out "
            "in another format replaces the earlier run's tables.",
        ),
    ] = "csv",
    force: Annotated[bool, run_option("--force", help="Predict recordings already predicted by this model again.")] = False,
    shard: Annotated[Optional[str], shard_option("Predict", ", each with its own summary.")] = None,
    recipe: Annotated[
        Optional[Path],
        recipe_option(
            "Recipe whose \\[preprocess] section overrides the model's chain (official files use their task's published recipe)."
        ),
    ] = None,
    settings: Annotated[
        Optional[List[str]],
        typer.Option(
            "--set",
            rich_help_panel="Recipe",
            metavar="preprocess.KEY=VALUE",
            help="Change which recordings are used: preprocess.max_nan_fraction, flat_std, max_flat_fraction or "
            "on_truncated of the model's chain, or which files are recordings: the reader's preprocess.options.pattern "
            "(emg-csv, table) or extensions (edf); repeatable, e.g. --set preprocess.max_nan_fraction=0.05.",
        ),
    ] = None,
) -> None:
    """Run a trained model on new raw recordings, through the preprocessing chain recorded with it.

    Official checkpoints (no biofound metadata) run with the published chain of their task. One table per recording (a row per
    window: start, end, predicted label, a probability per class; per channel and class for mc/mmc heads; the reconstruction
    error for pre-training models), a PNG of the probabilities over time, and summary.json with each recording's mean
    probabilities and the counts. A recording lacking the model's channels, or unreadable, is skipped with its reason; --set
    preprocess.max_nan_fraction=F (or flat_std, max_flat_fraction, on_truncated) changes which recordings are used, --set
    preprocess.options.pattern=REGEX (edf: extensions) which files are recordings. A re-run
    skips recordings this model (same weights, run the same way) already predicted, unchanged since, unless --force.
    --precision bf16 and --compile are the faster ways for PyTorch checkpoints. --shard I/N runs one slice of an array job;
    slices write into the same --out, each its own summary.slice-I-of-N.json.
    """
    from biofound_cli.errors import UsageError
    from biofound_cli.prediction.chain import admission_changes, resolve_prediction_chain, with_admission_settings
    from biofound_cli.prediction.model import TorchWay, load_prediction_model
    from biofound_cli.prediction.outputs import check_format
    from biofound_cli.prediction.recordings import find_recordings
    from biofound_cli.prediction.run import STOPPED_BEFORE_ANY, predict_out_held, run_predict
    from biofound_cli.store.slices import parse_slice
    from biofound_cli.store.worker_lifetime import sigterm_ignored_once_settled, stop_reported

    chosen = parse_slice(shard) if shard is not None else None
    check_format(fmt)  # before the model loads: a missing pyarrow is one line, not a late failure
    # Before the model and --recipe are read: a key --set does not change is refused as such, not passed over.
    changes = admission_changes(settings or [])

    loaded, from_recipe = None, None
    source = str(recipe) if recipe is not None else "recipe"
    if recipe is not None:
        from biofound_cli.prediction.chain import recipe_chain
        from biofound_cli.recipes import load_checked

        loaded, from_recipe = load_checked(recipe, [], check=lambda checked: recipe_chain(checked, source))
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: no CUDA device is available; use --device cpu")
    # SIGTERM while the model loads or the recordings are listed (a large model, a large folder): the
    # default action killed the process without a word or a --json object. run_predict reports a stop
    # in its loop itself, with what it kept. --out is held before the model loads: a second run of the
    # slice is refused at once, not after minutes of loading (a big model, --compile).
    with (
        sigterm_ignored_once_settled(),
        stop_reported(STOPPED_BEFORE_ANY),
        predict_out_held(out, chosen) as held,
    ):  # a SIGTERM while the summary or error prints: not 143
        way = TorchWay(device=device, precision=precision, compiled=compile_model)
        predictor = load_prediction_model(model, recipe=loaded, chain=from_recipe, source=source, way=way)
        # An official checkpoint brings the published recipe of its task; --recipe still wins.
        chain = resolve_prediction_chain(
            predictor.preprocessing,
            from_recipe=predictor.recipe_chain,
            ch_names=predictor.ch_names,
            sfreq=predictor.sfreq,
            n_times=predictor.n_times,
            window_multiple=predictor.window_multiple,
            model_name=str(predictor.path),
            recorded_chains=predictor.preprocessing_chains,
            other_channels_fix=predictor.advice.other_channels_fix,
        )
        chain = with_admission_settings(chain, changes)
        # Without --recipe, the folder may hold recordings of another format, which one reads.
        other_reader = predictor.advice.other_recordings if recipe is None else ""
        found = find_recordings(recordings, chain.corpus(), output=out, other_reader=other_reader)
        report = run_predict(
            predictor,
            chain,
            found.refs,
            held,
            fmt=fmt,
            batch_size=batch_size,
            workers=workers,
            force=force,
            duplicates=found.duplicates,
            not_read=found.not_read,
            reporter=output,
        )
    short = report.short_events_by_recording()
    if short:
        output.table("Labelled events shorter than the model's window, left out", ("recording", "events"), sorted(short.items()))
    flat = report.flat_channels_by_recording()
    if flat:
        rows = [(recording, ", ".join(names)) for recording, names in sorted(flat.items())]
        output.table("Predicted with flat channels", ("recording", "flat channels"), rows)
    sliced = f" (slice {report.slice})" if report.slice else ""
    # The counts once: the summary holds them (found, predicted, already_done, skipped_by_reason, windows, ...).
    output.summary(report.summary(), title=f"Predicted{sliced} → {report.out}")
