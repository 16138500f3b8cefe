"""The model card (``README.md`` beside the exported files) and the licence gate.

The card says what the model is (family, variant, head, input), how it was trained (the run
folder's resolved recipe, when the checkpoint sits in ``runs/NAME/``), how well it did (a
``biofound evaluate`` report found there whose ``checkpoint_sha256`` is that of exactly these
weights; another checkpoint's report is never cited), what it is for, and under which licence.

The official FEMBA, LUNA and TinyMyo weights are published under CC BY-ND 4.0, and weights
fine-tuned from them are derivatives of those weights. Without ``--acknowledge-license`` the
card is marked for internal use only; with it, the card carries the licence and attribution a
public model page needs (CC BY-ND 4.0 does not allow sharing adapted material, so the person
publishing takes responsibility for having the right to do so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biofound_cli import __version__
from biofound_cli.atomic import read_json_object
from biofound_cli.export.artefact import Artefact
from biofound_cli.export.source import ExportSource
from biofound_cli.models.registry import LICENSE
from biofound_cli.models.transforms import transform_formula

LICENSE_ID = "cc-by-nd-4.0"
LICENSE_URL = "https://creativecommons.org/licenses/by-nd/4.0/"
UPSTREAM = "https://github.com/pulp-bio/BioFoundation"


@dataclass
class RunInfo:
    """What the run folder of a checkpoint says about it (all ``None`` outside a run folder)."""

    folder: Path | None = None
    recipe: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    report_path: Path | None = None


@dataclass
class LicenceStatus:
    """Whether the weights derive from the official CC BY-ND 4.0 checkpoints, and why we think so."""

    derived: bool
    reason: str


def find_run(checkpoint: Path) -> RunInfo:
    """The run folder holding ``checkpoint`` (:func:`~biofound_cli.training.run_folder.run_folder_of`) and its recipe.

    Parameters
    ----------
    checkpoint : Path
        The checkpoint being exported (or the run folder itself).
    """
    from biofound_cli.training.run_folder import run_folder_of

    run = run_folder_of(checkpoint)
    return RunInfo(folder=run.root, recipe=read_json_object(run.recipe_file)) if run is not None else RunInfo()


def find_report(run: RunInfo, sha256: str) -> RunInfo:
    """``run`` with the newest ``eval/*/report.json`` that evaluated exactly the weights ``sha256``.

    ``biofound evaluate --checkpoint other.safetensors`` writes to the same folders, so a report
    counts only when its ``source.checkpoint_sha256`` is this file's hash (reports written before
    the hash was recorded never do). The ``test`` split is preferred, then the newest.

    Parameters
    ----------
    run : RunInfo
        The run folder, from :func:`find_run`; returned as it is when there is none.
    sha256 : str
        The hash of the exported weights file.
    """
    if run.folder is None:
        return run
    matching = []
    for path in (run.folder / "eval").glob("*/report.json"):
        report = read_json_object(path)
        if report is not None and (report.get("source") or {}).get("checkpoint_sha256") == sha256:
            matching.append((path.parent.name == "test", path.stat().st_mtime, path, report))
    if not matching:
        return run
    *_, path, report = max(matching, key=lambda item: item[:2])
    return RunInfo(folder=run.folder, recipe=run.recipe, report=report, report_path=path)


def evaluation_entry(run: RunInfo) -> dict[str, Any] | str:
    """What ``config.json`` says about the evaluation: the matching report's headline, or ``"not evaluated"``.

    Parameters
    ----------
    run : RunInfo
        The run, with the report :func:`find_report` found (if any).
    """
    report = run.report or {}
    headline = (report.get("headline") or {}).get("windows")
    if not headline:
        return "not evaluated"
    source = report.get("source") or {}
    return {
        "report": str(run.report_path),
        "split": source.get("split"),
        "split_path": source.get("split_path"),
        "checkpoint_sha256": source.get("checkpoint_sha256"),
        "windows": headline,
        "recordings": (report.get("headline") or {}).get("recordings"),
    }


def licence_status(source: ExportSource, run: RunInfo) -> LicenceStatus:
    """Decide whether the weights are a derivative of the official checkpoints.

    A checkpoint that records it (``derived_from_official``, written by training, which follows
    the chain of starting weights) is taken at its word. For one that does not, a run folder
    whose recipe trained from scratch (no ``model.checkpoint``) gives weights that are not
    derivatives. Everything else is treated as derived: a run that started from other weights
    may have started from official ones, and without a run folder the provenance is unknown,
    so the cautious answer is given.

    Parameters
    ----------
    source : ExportSource
        The checkpoint being exported.
    run : RunInfo
        Its run folder and recipe, from :func:`find_run`.
    """
    recorded = source.metadata
    if recorded.derived_from_official is not None:
        started = f"started from {recorded.source_checkpoint}" if recorded.source_checkpoint else "trained from scratch"
        official = (
            "which are (or derive from) official weights" if recorded.derived_from_official else "not from official weights"
        )
        return LicenceStatus(recorded.derived_from_official, f"{source.checkpoint.name} records weights {started}, {official}")
    model = (run.recipe or {}).get("model") or {}
    if run.recipe is not None and not model.get("checkpoint"):
        return LicenceStatus(False, f"the run in {run.folder} trained the model from scratch (model.checkpoint unset)")
    if run.recipe is not None:
        return LicenceStatus(
            True, f"the run in {run.folder} started from {model['checkpoint']}, which may be (or derive from) official weights"
        )
    return LicenceStatus(
        True,
        f"no run folder records how {source.checkpoint.name} was trained, so it is treated as derived from the official weights",
    )


def licence_warning(source: ExportSource, status: LicenceStatus, acknowledged: bool) -> str:
    """The warning ``export`` prints for derived weights.

    Parameters
    ----------
    source : ExportSource
        The checkpoint being exported.
    status : LicenceStatus
        From :func:`licence_status`; its reason is quoted.
    acknowledged : bool
        Whether ``--acknowledge-license`` was passed.
    """
    base = (
        f"{source.checkpoint}: these {source.model_name} weights are treated as a derivative of the official "
        f"checkpoints, licensed {LICENSE} ({status.reason})"
    )
    if acknowledged:
        return base + "; the card states the licence and attribution, and sharing adapted material is yours to clear"
    return base + "; the model card is marked internal-use only, pass --acknowledge-license to write one for sharing"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "n/a"
    return str(value)


def _section_lines(title: str, data: dict[str, Any] | None) -> list[str]:
    if not data:
        return []
    return [f"- **{title}**: " + ", ".join(f"{key} = {_fmt(value)}" for key, value in data.items() if value is not None)]


def _front_matter(source: ExportSource, status: LicenceStatus, acknowledged: bool) -> list[str]:
    tags = ["biosignals", source.head.model_family.modality, source.family, "biofound"]
    licence = [f"license: {LICENSE_ID}"] if status.derived and acknowledged else []
    return ["---", *licence, "library_name: biofound", "tags:", *(f"  - {tag}" for tag in tags), "---"]


def _licence_section(source: ExportSource, status: LicenceStatus, acknowledged: bool) -> list[str]:
    lines = ["## Licence", ""]
    if not status.derived:
        return lines + [
            f"These weights do not derive from the official checkpoints ({status.reason}); their licence is chosen by whoever "
            "trained them. The biofound code that built them is Apache-2.0. The model architecture is from "
            f"[BioFoundation]({UPSTREAM}).",
        ]
    lines += [
        f"The official {source.model_name} weights are licensed [{LICENSE}]({LICENSE_URL}) by their authors "
        f"([BioFoundation]({UPSTREAM})). These weights are a derivative of them ({status.reason}).",
        "",
    ]
    if acknowledged:
        return lines + [
            f"Attribution: {source.model_name}, BioFoundation ({UPSTREAM}), {LICENSE}. Changes: fine-tuned with "
            f"biofound {__version__} as described above.",
            "",
            f"{LICENSE} does not permit sharing adapted material. Whoever publishes these files confirmed with "
            "`--acknowledge-license` that they have the right to (for example, permission from the licensors).",
        ]
    return lines + [
        "**Internal use only. Do not redistribute.** This card was written without `--acknowledge-license`; "
        "re-run `biofound export` with it, after checking the licence terms, to write a card for sharing.",
    ]


def _quantisation_lines(artefact: Artefact) -> list[str]:
    """The card's section on one int8 file: what was quantised, its batch behaviour, its cost on a split."""
    report = artefact.quantization
    if not report:
        return []
    kind = "Static (calibrated)" if report["scheme"] == "int8-static" else "Dynamic"
    lines = [
        f"## Quantisation: `{artefact.path.name}`",
        "",
        f"{kind} int8 quantisation of {report['n_quantized_linear']} layers: "
        f"{report['float_bytes']:,} B → {report['int8_bytes']:,} B (×{report['size_ratio']:.2f}).",
    ]
    if report.get("calibration"):
        lines.append(f"Calibrated on {report['calibration']}.")
    lines.append(f"Batch behaviour: {report['batch_behaviour']}.")
    if report.get("metric"):
        agreement = report.get("agreement")
        lines.append(
            f"On `{report['split']}` ({report['windows']} windows), {report['metric']}: float32 {_fmt(report['float'])}, "
            f"int8 {_fmt(report['int8'])} (change {_fmt(report['change'])})"
            + (f"; the int8 and float predicted classes agree on {agreement:.2%} of them." if agreement is not None else ".")
        )
    else:
        lines.append("Not scored on a split: pass `--split` to measure the accuracy change and agreement.")
    return lines + [""]


def _evaluation_lines(source: ExportSource, run: RunInfo) -> list[str]:
    """The card's evaluation section: only a report of exactly these weights, else "not evaluated"."""
    lines = ["## Evaluation", ""]
    headline = ((run.report or {}).get("headline") or {}).get("windows") if run.report else None
    if headline:
        lines += [
            f"From `{run.report_path}` (`biofound evaluate` of exactly these weights, sha256 "
            f"`{source.sha256[:12]}…`), window level:",
            "",
            "| metric | value |",
            "|---|---|",
            *(f"| {key} | {_fmt(value)} |" for key, value in headline.items()),
        ]
    else:
        lines.append(
            "Not evaluated: no `biofound evaluate` report of exactly these weights (sha256 "
            f"`{source.sha256[:12]}…`) was found; run `biofound evaluate` on this checkpoint before sharing it."
        )
    return lines + [""]


def render_model_card(
    source: ExportSource,
    artefacts: list[Artefact],
    run: RunInfo,
    status: LicenceStatus,
    *,
    acknowledged: bool,
    limits: list[str] | None = None,
) -> str:
    """The text of ``README.md`` for an export.

    Parameters
    ----------
    source : ExportSource
    artefacts : list of Artefact
        Every file of the export folder (from this and earlier exports of the same checkpoint).
        An int8 file's quantisation report (``Artefact.quantization``) gets its own section.
    run : RunInfo
        The run folder's recipe and the evaluation of exactly these weights (:func:`find_report`), if any.
    status : LicenceStatus
    acknowledged : bool
        ``--acknowledge-license`` was given.
    limits : list of str | None
        Format limits to state (e.g. TorchScript's fixed window shape).
    """
    head = source.head
    name = head.variant or f"custom {source.model_name}"
    task = head.task or "unknown task"
    lines = _front_matter(source, status, acknowledged)
    lines += ["", f"# {name} ({task})", "", f"Exported by `biofound export` {__version__} from `{source.checkpoint}`.", ""]

    lines += (
        _model_lines(source, task)
        + _input_lines(source)
        + _files_lines(artefacts, limits)
        + _training_lines(source, run)
        + _evaluation_lines(source, run)
    )
    lines += [
        "## Intended use",
        "",
        "Research on EEG/EMG decoding: benchmarking, feature extraction, prototyping on CPU or edge devices. "
        "It is not a medical device and must not be used for diagnosis or treatment decisions. Performance "
        "holds only for data preprocessed like the training data (same channels, sampling rate, filters and "
        "normalisation); check it on your own recordings before relying on it.",
        "",
    ]
    lines += _licence_section(source, status, acknowledged)
    return "\n".join(lines) + "\n"


def _model_lines(source: ExportSource, task: str) -> list[str]:
    """The ``## Model`` section: family, variant, head, constructor arguments, labels."""
    head = source.head
    output = source.output_spec()
    # The graph's own output shape: an mc head gives one logit per channel, not one per class.
    shape = "(" + ", ".join(str(size) for size in output["shape"]) + ")"
    lines = [
        "## Model",
        "",
        f"- **Family**: {source.model_name}; **variant**: {head.variant or 'custom (not a registered variant)'}",
        f"- **Head**: {task}; output `{source.output_name}` of shape {shape}: {output['scores']}"
        if not source.pretraining
        else "- **Head**: masked-reconstruction (pre-training)",
        "- **Constructor arguments**: `" + json.dumps(head.constructor_kwargs, sort_keys=True) + "`",
    ]
    if source.metadata.fine_tuning:
        # Every exported file holds the merged weights: they run as the plain model, with no adapter code.
        lines.append(f"- **Fine-tuning**: {source.metadata.fine_tuning}; the exported files hold the merged weights")
    if source.label_names:
        # A regression head's names are of its outputs (the last axis), not of classes.
        kind = "**Outputs** (last axis)" if head.task == "regression" else "**Labels** (class order)"
        lines.append(f"- {kind}: " + ", ".join(source.label_names))
    return lines + [""]


def _input_lines(source: ExportSource) -> list[str]:
    """The ``## Input`` section: window shape, channels, normalisation, graph inputs."""
    return [
        "## Input",
        "",
        f"- Windows of {source.n_channels} channels × {source.n_times} samples"
        + (f" at {source.sfreq:g} Hz ({source.metadata.window_seconds:g} s)" if source.metadata.window_seconds else ""),
        "- Channels, in order: " + (", ".join(source.ch_names) if source.ch_names else "not recorded in the checkpoint"),
        f"- Normalisation before the model (`{source.transform}`): {transform_formula(source.transform) or source.transform}",
        "- Graph inputs: " + ", ".join(f"`{name}`" for name in source.input_names) + f"; output `{source.output_name}`",
        "",
    ]


def _files_lines(artefacts: list[Artefact], limits: list[str] | None) -> list[str]:
    """The ``## Files`` table, the format limits, then each int8 file's quantisation section."""
    return [
        "## Files",
        "",
        "| file | format | size | sha256 | max abs diff | compared with |",
        "|---|---|---|---|---|---|",
        *(
            f"| `{artefact.path.name}` | {artefact.format}{' int8' if artefact.quantized else ''} | "
            f"{artefact.size_bytes:,} B | `{artefact.sha256[:12]}…` | {artefact.max_abs_diff:.3g} | {artefact.reference} |"
            for artefact in artefacts
        ),
        "",
        "`config.json` holds the same facts for programs.",
        *(f"{limit}" for limit in (limits or [])),
        "",
        *(line for artefact in artefacts for line in _quantisation_lines(artefact)),
    ]


def _training_lines(source: ExportSource, run: RunInfo) -> list[str]:
    """The ``## Training data and recipe`` section, from the run folder's ``recipe.json`` when there is one."""
    lines = ["## Training data and recipe", ""]
    if run.recipe is not None:
        recipe = run.recipe
        lines += [f"From the run folder `{run.folder}` (its `recipe.json`):", ""]
        for section in ("data", "model", "optim", "train"):
            lines += _section_lines(section, recipe.get(section) if isinstance(recipe.get(section), dict) else None)
    else:
        lines.append("The checkpoint is not inside a run folder, so the recipe is not known.")
    if source.metadata.extra.get("step"):
        lines.append(f"- Training step of the checkpoint: {source.metadata.extra['step']}")
    return lines + [""]
