"""Deployable artefacts from a checkpoint, each verified after it is written.

:func:`export_checkpoint` is what ``biofound export`` calls::

    from biofound_cli.export import export_checkpoint

    result = export_checkpoint("runs/uci/checkpoints/best", ["safetensors", "onnx"], "exported/uci",
                               quantize="int8", split="packed/test.h5")

One module per format (``safetensors_export``, ``onnx_export``, ``torchscript_export``), plus
``quantize`` (int8 copies and their cost), ``config`` (``config.json``), ``out_folder`` (whose
export a folder holds) and ``model_card`` (``README.md`` and the licence gate). Every file of
one export (all its formats) is written to a staging folder and moves in only once all are
verified. Nothing here imports torch until an export runs.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence, get_args

from biofound_cli.errors import BiofoundError, UsageError, file_system_problem, is_refused_path
from biofound_cli.plural import first_few
from biofound_cli.progress import NO_PROGRESS, ProgressReporter
from biofound_cli.recipes.export import ExportFormat, QuantizeScheme
from biofound_cli.store.output_folder import created_folders_removed_on_failure, prepare_output_folder
from biofound_cli.store.worker_lifetime import stop_reported, stops_settled

if TYPE_CHECKING:
    from biofound_cli.export.artefact import Artefact
    from biofound_cli.export.quantize import QuantizationReport

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = get_args(ExportFormat)
QUANTIZE_SCHEMES: tuple[str, ...] = get_args(QuantizeScheme)
QUANTIZABLE = {"int8": ("onnx", "torchscript"), "int8-static": ("onnx",)}
"""Formats each scheme applies to. TorchScript has no static int8 here: torch's static
quantisation needs quantise/dequantise stubs and fused modules written into the model (eager
mode) or a symbolically traceable model (FX), and the families' attention and Mamba code is
neither; ONNX quantises the traced graph instead."""


@dataclass
class ExportResult:
    """What an export wrote and how each file checked out."""

    out_dir: Path
    artefacts: list[Artefact]
    """Every verified file in ``out_dir`` for these weights (earlier exports included)."""
    written: list[Artefact]
    """The files this export wrote."""
    config_path: Path
    card_path: Path
    licence: dict[str, Any]
    quantization: dict[str, QuantizationReport] = field(default_factory=dict)
    """Each int8 file's report, under the file's name."""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "out": str(self.out_dir),
            "files": [artefact.path.name for artefact in self.written] + [self.config_path.name, self.card_path.name],
            "max_abs_diff": {artefact.path.name: artefact.max_abs_diff for artefact in self.written},
            "license": self.licence["name"],
            "derived_from_official": self.licence["derived_from_official"],
            "card": self.licence["card"],
        }
        if self.quantization:
            data["quantization"] = {name: report.summary() for name, report in self.quantization.items()}
        return data


def check_names(fmt: str | None, quantize: str | None) -> None:
    """Refuse an unknown format or int8 scheme, naming the flag and the choices.

    Parameters
    ----------
    fmt : str | None
        The ``--format`` asked for; None when not given.
    quantize : str | None
        The ``--quantize`` scheme asked for; None when not given.
    """
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: unknown format; choose one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE_SCHEMES:
        raise UsageError(f"--quantize {quantize}: unknown scheme; choose one of {', '.join(QUANTIZE_SCHEMES)}")


def _check_arguments(formats: tuple[str, ...], quantize: str | None, tolerance: float, split: Any) -> None:
    for fmt in formats:
        check_names(fmt, quantize)
    if not formats:
        raise UsageError("--format: no format given; choose one or more of " + ", ".join(FORMATS))
    if len(set(formats)) != len(formats):
        raise UsageError(f"formats {', '.join(formats)}: a format is named twice; list each once")
    if quantize is not None and not set(formats) & set(QUANTIZABLE[quantize]):
        why = (
            "safetensors holds the float weights that biofound_cli.models.load rebuilds"
            if formats == ("safetensors",)
            else "TorchScript has dynamic int8 only (the models cannot take torch's static quantisation stubs)"
        )
        raise UsageError(f"--quantize {quantize} needs --format {' or '.join(QUANTIZABLE[quantize])}; {why}")
    if quantize == "int8-static" and split is None:
        raise UsageError("--quantize int8-static needs --split: the activation scales are calibrated on its windows")
    if not tolerance > 0:
        raise UsageError(f"tolerance {tolerance}: must be a positive number")


def _check_split(source: Any, info: Any) -> Any:
    """Refuse a split the exported graph cannot be scored on; the head output of each of its classes (``class_order``).

    Every check runs whenever ``--split`` is given, ``--quantize`` or not: header and names only, no forward pass.
    """
    from biofound_cli.evaluation.predict import check_head, class_order, scored_task, warn_other_chain
    from biofound_cli.tasks import head_classes

    check_head(source.head, info, source.checkpoint, command="export")
    source.split_locations(info.path)  # refuses a split it cannot place the channels of, before any work
    if source.ch_names and info.ch_names:
        ours = [name.upper() for name in source.ch_names]
        theirs = [name.upper() for name in info.ch_names]
        if ours != theirs:
            # A graph is exported for the channels its checkpoint records; the split only supplies windows
            # to check (and calibrate) it on. LUNA takes other montages, but through predict, not this graph.
            fix = (
                "the graph takes the channels its checkpoint records and --split only scores and calibrates it: pass a "
                "split of those channels, or predict this montage with the checkpoint and --recipe (docs/predict.md)"
                if source.head.model_family.uses_channel_locations
                else "score on a split preprocessed for this model"
            )
            raise UsageError(
                f"{info.path}: the split's channels ({first_few(info.ch_names, 4)}) are not the checkpoint's "
                f"({first_few(source.ch_names, 4)}) in the same order; {fix}"
            )
    # The graph's own window: LUNA's head takes any channel count, so a split without channel names of fewer channels
    # than the graph's got past the checks above and ended in a traceback when scored.
    for what, takes, have in (("channels", source.n_channels, info.n_channels), ("samples", source.n_times, info.n_times)):
        if have != takes:
            raise UsageError(
                f"{info.path}: windows have {have} {what} but the exported graph takes {takes}; "
                "score on a split preprocessed for this model"
            )
    # Last: a split refused above gets its one line, not a warning about its chain or class order before it.
    warn_other_chain(source.head, info, source.checkpoint)
    head, task = source.head, scored_task(source.head, info)
    return class_order(task, head_classes(task, head.num_outputs), head, info, source.checkpoint)


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    formats: str | Sequence[str],
    out: str | os.PathLike[str],
    *,
    quantize: str | None = None,
    split: str | os.PathLike[str] | None = None,
    acknowledge_license: bool = False,
    overwrite: bool = False,
    reporter: ProgressReporter = NO_PROGRESS,
    tolerance: float = 1e-4,
    opset: int = 17,
    transform: str | None = None,
) -> ExportResult:
    """Export a biofound checkpoint to each of ``formats`` in the folder ``out``, verify every file, and write its card.

    All or nothing: every file of every format is written and verified in a staging folder, and
    moves into ``out`` only when all are; a failure leaves ``out`` as it was.

    Parameters
    ----------
    checkpoint : path
        A biofound ``.safetensors`` checkpoint, or a checkpoint folder holding ``model.safetensors``.
    formats : {"safetensors", "onnx", "torchscript"} or a sequence of them
        One format, or several written in order into the same folder.
    out : path
        Folder for the files, ``config.json`` and ``README.md`` (created if missing). It may
        already hold an export of the same weights (this one adds to it), but not another's.
    quantize : {"int8", "int8-static"} | None
        Also write an int8 copy of each format the scheme applies to: dynamic (ONNX and
        TorchScript) or statically calibrated on ``split`` (ONNX only).
    split : path | None
        A packed split (``PACKED/test.h5``): its task must match the head; with ``quantize`` the
        float and int8 files are scored on it (and ``int8-static`` calibrates on it). It also
        supplies LUNA's montage if the checkpoint does not name its channels.
    acknowledge_license : bool
        Write a model card meant for sharing even though the weights derive from the official
        CC BY-ND 4.0 checkpoints.
    overwrite : bool
        Replace another checkpoint's export found in ``out`` instead of refusing.
    reporter : ProgressReporter
        Shows the windows scored with ``quantize`` and ``split``; by default nothing is shown.
        The licence warning and each verified file are logged on this module's logger.
    tolerance : float
        Largest max-abs difference a float artefact may show against PyTorch.
    opset : int
        ONNX opset (17 or later).
    transform : str | None
        The input normalisation a recipe names (``data.transform``; ``config.json`` and the card say it); by
        default the checkpoint's (:func:`~biofound_cli.models.checkpoints.checkpoint_transform`).

    Returns
    -------
    ExportResult

    Raises
    ------
    UsageError
        Exit status 2, before anything is written: a missing checkpoint or split, an unknown
        format, a split whose task does not match the head, onnx packages missing, a folder
        holding another export without ``overwrite``, an ``out`` that cannot be a folder this
        process writes in (a file in the way, a read-only file system, ``/proc``, no permission).
    BiofoundError
        Exit status 1: an artefact failed its verification; nothing of this export is left. Exit
        status 130 on Ctrl-C, 143 on SIGTERM, the same way (a stop once every file is verified
        waits until they have all moved in, and changes nothing).
    """
    from biofound_cli.store.folder_lock import held_out_folder
    from biofound_cli.store.packer import held_for_reading

    out_dir = Path(out)
    chosen = (formats,) if isinstance(formats, str) else tuple(formats)
    _check_arguments(chosen, quantize, tolerance, split)
    if "onnx" in chosen:
        from biofound_cli.export.onnx_export import check_opset, require_onnx

        require_onnx()
        check_opset(opset)
    options = _Options(quantize, tolerance, opset, None, reporter, acknowledge_license, transform)
    # SIGTERM (a job's time limit, `timeout`) stops it as Ctrl-C does; its default action killed the
    # process without a word and left the staging folder and the folders made for --out behind.
    stopped = (
        f" before the export was complete; nothing of it was written to {out_dir} (an earlier export there is left "
        "as it was): re-run the same command"
    )
    # A failed export into a new folder leaves no folder behind, nor the parents it created.
    with stop_reported(stopped, ctrl_c=True), created_folders_removed_on_failure(out_dir):
        # A file in the way, a read-only file system, /proc, no permission: one line, before the checkpoint is read.
        prepare_output_folder(out_dir)
        # The split's packed folder too, read for int8 calibration and scoring: a pack into it meanwhile is refused.
        with (
            held_out_folder(out_dir, "export", "exported into"),
            held_for_reading([Path(split)] if split is not None else [], "export"),
        ):
            _clear_leftovers(out_dir)
            return _export_into(Path(checkpoint), chosen, out_dir, Path(split) if split is not None else None, overwrite, options)


def _clear_leftovers(out_dir: Path) -> None:
    """Clear the staging folders an export killed outright left in ``out_dir``, on any machine, finishing a cut swap.

    A kill in the instant the files move in leaves some of the earlier export's files aside and some of the new
    ones still staged: the new ones move in, so the folder holds one whole export. Why any machine's go, and only
    an export's: :func:`~biofound_cli.atomic.remove_staging_leftovers`.
    """
    from biofound_cli.atomic import remove_staging_leftovers

    for leftover in remove_staging_leftovers(out_dir, "export"):
        logger.info(f"{out_dir}: cleared {leftover.name}, left by an export that was killed")


def _export_into(
    checkpoint_path: Path, chosen: tuple[str, ...], out_dir: Path, split: Path | None, overwrite: bool, options: _Options
) -> ExportResult:
    """Read the checkpoint (and split), decide what the folder keeps, then write the export."""
    from biofound_cli.export import model_card
    from biofound_cli.export.out_folder import file_names, inspect_out_folder
    from biofound_cli.export.source import load_source

    if split is not None:
        from biofound_cli.store.dataset import read_packed_info

        options.info = read_packed_info(split)
        options.info.check_holds_windows("the export cannot be scored or calibrated on it", "pass another --split")
    run = model_card.find_run(checkpoint_path)
    source = load_source(checkpoint_path, split_info=options.info, transform=options.transform)
    if options.info is not None:
        options.order = _check_split(source, options.info)
    run = model_card.find_report(run, source.sha256)
    writes = [name for fmt in chosen for name in file_names(fmt, _scheme_for(fmt, options.quantize))]
    state = inspect_out_folder(out_dir, source.sha256, writes, overwrite=overwrite, checkpoint=source.checkpoint)
    status, licence = _licence(source, run, options.acknowledged)
    return _write_export(source, chosen, out_dir, state, run, status, licence, options)


def _scheme_for(fmt: str, quantize: str | None) -> str | None:
    """The int8 scheme ``fmt`` gets: ``quantize`` if it applies to that format, else none."""
    return quantize if quantize is not None and fmt in QUANTIZABLE[quantize] else None


def _licence(source: Any, run: Any, acknowledge_license: bool) -> tuple[Any, dict[str, Any]]:
    """Whether the weights derive from the official ones (warned about) and the ``licence`` block of ``config.json``."""
    from biofound_cli.export import model_card

    status = model_card.licence_status(source, run)
    if status.derived:
        logger.warning(model_card.licence_warning(source, status, acknowledge_license))
    return status, {
        # The licence training recorded when it started from official weights; older checkpoints record none. Weights
        # not derived from them state none (null): their owner chooses one, which predict must not report as a name.
        "name": (source.metadata.license or model_card.LICENSE) if status.derived else None,
        "derived_from_official": status.derived,
        "reason": status.reason,
        "acknowledged": acknowledge_license,
        "card": "for sharing" if acknowledge_license or not status.derived else "internal use only",
    }


@dataclass
class _Options:
    quantize: str | None
    tolerance: float
    opset: int
    info: Any
    reporter: ProgressReporter
    acknowledged: bool
    transform: str | None
    order: Any = None
    """The head output of each of the split's classes (:func:`~biofound_cli.evaluation.predict.class_order`)."""


def _write_export(
    source: Any,
    formats: tuple[str, ...],
    out_dir: Path,
    state: Any,
    run: Any,
    status: Any,
    licence: dict[str, Any],
    options: _Options,
) -> ExportResult:
    """Write, verify and hash every file of every format in a staging folder, then move them all in at once."""
    from biofound_cli.atomic import staged_files, write_json_atomic, write_text_atomic
    from biofound_cli.export import config as config_file
    from biofound_cli.export import model_card
    from biofound_cli.export.out_folder import CARD_FILE, CONFIG_FILE
    from biofound_cli.models.checkpoints import file_sha256

    settling = ExitStack()  # outermost: once entered, it holds until every file has moved in
    # The other export's files go only as this one moves in, all or nothing (a rename failing on a full disk).
    with settling, _naming_the_export_folder(out_dir) as staged, staged_files(out_dir, "export", state.foreign) as staging:
        staged.append(staging)
        written: list[Artefact] = []
        quantization: dict[str, QuantizationReport] = {}
        limits: list[str] = []
        for fmt in formats:
            files, report, format_limits = _write_artefacts(source, fmt, staging, options, licence)
            written += files
            limits += format_limits
            if report is not None:
                quantization[files[-1].path.name] = report
        for artefact in written:
            artefact.sha256 = file_sha256(artefact.path)
        artefacts = config_file.merge_artefacts(state.previous, written)
        config = config_file.build_config(
            source,
            artefacts,
            licence=licence,
            evaluation=model_card.evaluation_entry(run),
        )
        write_json_atomic(staging / CONFIG_FILE, config)
        card = model_card.render_model_card(source, artefacts, run, status, acknowledged=options.acknowledged, limits=limits)
        write_text_atomic(staging / CARD_FILE, card)
        # Verified: from here the other export goes and this one moves in whole, whatever signal comes.
        settling.enter_context(stops_settled())
    for artefact in written:
        artefact.path = out_dir / artefact.path.name
        logger.info(f"{artefact.path}: verified, max abs diff {artefact.max_abs_diff:.3g} vs {artefact.reference}")
    if options.info is not None and not quantization:
        # Without an int8 copy there is nothing to score: the user who passed --split should know it was only checked.
        logger.info(
            f"{options.info.path}: checked against {source.checkpoint} (task, classes, channels, window length); "
            "nothing is scored on it without --quantize"
        )
    if quantization and options.info is None:
        # The verification batch is random: a graph that clips real windows' amplitudes passes it (docs/export.md).
        copies = " and ".join(str(out_dir / name) for name in quantization)
        logger.info(
            f"{copies}: checked on a random batch only; --split PACKED/test.h5 (export.calibration_split) checks "
            "an int8 copy on real windows and measures its accuracy change"
        )
    return ExportResult(out_dir, artefacts, written, out_dir / CONFIG_FILE, out_dir / CARD_FILE, licence, quantization)


@contextmanager
def _naming_the_export_folder(out_dir: Path) -> Iterator[list[Path]]:
    """Re-raise an error naming a file in the staging folder (appended to the list yielded) with ``out_dir`` in its place.

    The staging folder is gone once the export fails; the user knows the file by its place in ``--out``.
    A full disk (or an I/O error), while the files are written or as they move in, says that nothing of
    the export was written: the command's usual "what was finished is kept" is not true of an export,
    which leaves ``--out`` as it was.
    """
    staged: list[Path] = []
    try:
        yield staged
    except BiofoundError as error:
        for staging in staged:
            error.args = (error.message.replace(str(staging), str(out_dir)), *error.args[1:])
        raise
    except OSError as error:  # staged_files has named the file by its place in out_dir
        if is_refused_path(error):
            raise
        then = (
            f"nothing of this export was written to {out_dir} (an earlier export there is left as it was), "
            "so run the same command again"
        )
        raise BiofoundError(file_system_problem(error, then)) from None


def _write_artefacts(
    source: Any,
    fmt: str,
    folder: Path,
    options: _Options,
    licence: dict[str, Any],
) -> tuple[list[Artefact], QuantizationReport | None, list[str]]:
    """Write and verify the files of one format (and its int8 copy); score both on the split if given."""
    limits: list[str] = []
    if fmt == "safetensors":
        from biofound_cli.export.safetensors_export import write_safetensors

        return [write_safetensors(source, folder, tolerance=options.tolerance, licence=licence)], None, limits
    if fmt == "onnx":
        from biofound_cli.export.onnx_export import write_onnx

        written = [write_onnx(source, folder, tolerance=options.tolerance, opset=options.opset)]
    else:
        from biofound_cli.export.torchscript_export import LIMITS, write_torchscript

        written = [write_torchscript(source, folder, tolerance=options.tolerance)]
        limits.append(LIMITS)
    if _scheme_for(fmt, options.quantize) is None:
        return written, None, limits
    int8_file, report, runner = _write_int8(source, fmt, folder, written[0], options)
    if options.info is not None:
        _score(source, report, runner, int8_file.path, options)
    int8_file.quantization = report.summary()
    return [*written, int8_file], report, limits


def _write_int8(
    source: Any, fmt: str, folder: Path, float_file: Artefact, options: _Options
) -> tuple[Artefact, QuantizationReport, Any]:
    """The int8 copy of the float file, verified against the float model, and what it did."""
    from biofound_cli.export.quantize import QuantizationReport, calibration_batches, quantize_linear

    scheme = options.quantize
    assert scheme is not None  # called only when quantize is set
    kept: list[str]
    calibration = None
    if fmt == "onnx":
        from biofound_cli.export.onnx_export import count_int8_matmuls, onnx_runner, quantize_onnx, require_onnx

        batches = None
        if scheme == "int8-static":
            batches, n_calibration = calibration_batches(source, options.info.path)
            calibration = f"{n_calibration} windows of {options.info.path} (MinMax)"
        int8_file = quantize_onnx(source, float_file.path, folder, scheme=scheme, calibration=batches)
        n_quantized = count_int8_matmuls(require_onnx()[0].load(str(int8_file.path)).graph)
        runner, kept = onnx_runner(int8_file.path, source.input_names), []
    else:
        from biofound_cli.export.torchscript_export import write_torchscript

        runner, chosen, kept = quantize_linear(source.deploy_module())
        int8_file = write_torchscript(source, folder, tolerance=options.tolerance, module=runner, quantized=True)
        n_quantized = len(chosen)
    report = QuantizationReport(
        scheme=scheme,
        float_bytes=float_file.size_bytes,
        int8_bytes=int8_file.size_bytes,
        n_quantized=n_quantized,
        kept_float=kept,
        max_abs_diff_vs_float=int8_file.max_abs_diff,
        calibration=calibration,
    )
    logger.info(
        f"{options.quantize}: {report.float_bytes:,} B → {report.int8_bytes:,} B (×{report.size_ratio:.2f}), "
        f"{report.n_quantized} layers quantised"
    )
    return int8_file, report, runner


def _score(source: Any, report: QuantizationReport, int8_runner: Any, int8_path: Path, options: _Options) -> None:
    """Score the float model and the int8 copy on every window of the split; fill ``report``; refuse a copy that
    strays from the float model there by more than the int8 tolerance, as on the verification batch."""
    from biofound_cli.evaluation.predict import scored_task
    from biofound_cli.export.artefact import check_difference, int8_advice, int8_tolerance
    from biofound_cli.export.quantize import score_split

    info = options.info
    with options.reporter.task(info.n_windows, f"Scoring {info.path.name}", unit="windows") as bar:
        runners = {"float": source.deploy_module(), "int8": int8_runner}
        task = scored_task(source.head, info)
        scored = score_split(runners, source, info.path, task, order=options.order, on_batch=bar.advance)
    report.metric, report.float_value, report.int8_value = scored.metric, scored.values["float"], scored.values["int8"]
    report.n_windows, report.split, report.agreement = scored.n_windows, str(info.path), scored.agreement
    report.max_abs_diff_on_split, report.tolerance_on_split = scored.max_abs_diff, int8_tolerance(scored.largest)
    agreed = f", predictions agree on {scored.agreement:.2%}" if scored.agreement is not None else ""
    logger.info(
        f"{scored.metric} on {info.path.name}: float32 {report.float_value:.4f}, int8 {report.int8_value:.4f} "
        f"(change {report.change:+.4f}){agreed}"
    )
    # Random verification windows may not reach the range of real ones, where a clipped or saturated int8 graph fails.
    where = f"PyTorch float32 on the windows of {info.path}"
    check_difference(scored.max_abs_diff, report.tolerance_on_split, int8_path, where, advice=int8_advice(report.scheme))
