"""``biofound quickstart``: preprocess → pack → finetune → evaluate → export on the bundled samples."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from biofound_cli.cli.common import (
    Output,
    out_option,
    output_flags,
    run_option,
    with_output,
)

if TYPE_CHECKING:
    from biofound_cli.quickstart import ChainResult


@with_output
def quickstart(
    output: Output,
    out: Annotated[Path, out_option("Folder for every artefact (one sub-folder per chain).")] = Path("biofound-quickstart"),
    only: Annotated[
        Optional[str],
        typer.Option(
            "--only",
            rich_help_panel="Input and output",
            metavar="tinymyo|luna",
            help="Run one chain only: tinymyo (Myo EMG) or luna (SCP1 EEG).",
        ),
    ] = None,
    no_export: Annotated[
        bool, run_option("--no-export", help="Skip the ONNX export; predict still runs the checkpoint.")
    ] = False,
) -> None:
    """Run the whole pipeline on the bundled real samples: TinyMyo on Myo gestures and LUNA on SCP1 EEG.

    Each chain preprocesses the recordings, packs train/val/test splits, fine-tunes a small model from scratch on the CPU, scores
    it on the held-out test split, exports it to ONNX and predicts the raw test recordings with it; the recipes ship with the
    package (biofound_cli/data/recipes/). Ends with a table of held-out metrics; --json prints them as JSON. A re-run with the
    same --out reuses finished stages.
    """
    from biofound_cli.quickstart import run_quickstart
    from biofound_cli.store.worker_lifetime import sigterm_ignored_once_settled

    command = _continue_command(out, only, no_export, output)
    with sigterm_ignored_once_settled():  # a SIGTERM/SIGUSR1 while the tables print: not 143 after a finished run
        results = run_quickstart(out, reporter=output, only=only, export=not no_export, continue_command=command)
    _show(output, out, results)


def _show(output: Output, out: Path, results: list["ChainResult"]) -> None:
    """The artefact and metric tables, then the summary."""
    from biofound_cli.quickstart import METRICS

    for result in results:
        output.table(
            f"{result.name}: artefacts",
            ("artefact", "path"),
            sorted(result.artefacts.items()),
        )

    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    output.table(
        "Held-out test metrics (windows)",
        ("chain", "model", "chance", *METRICS),
        [(r.name, r.variant, show(r.chance), *(show(r.metrics[m]) for m in METRICS)) for r in results],
    )
    if output.json_summary:
        # One top-level key per chain, so `tinymyo.metrics.balanced_accuracy` names a held-out
        # number (examples/ci/quickstart_gate.sh reads such paths).
        chains = {result.name: result.summary() for result in results}
    else:
        # On a terminal the tables above hold the paths; the summary repeats the numbers only,
        # so that --quiet still shows them.
        chains = {r.name: {"chance": r.chance, **{m: r.metrics[m] for m in METRICS[:3]}} for r in results}
    output.summary({"out": str(out), **chains}, title=f"Quick start finished → {out} (held-out test metrics)", timed=True)


def _continue_command(out: Path, only: str | None, no_export: bool, output: Output) -> str:
    """The command that continues a stopped quick start: the same one, output flags included, since a re-run resumes."""
    words = ["biofound", "quickstart", "--out", str(out)]
    words += ["--only", only] if only else []
    words += ["--no-export"] if no_export else []
    words += output_flags(output.json_summary, output.quiet, output.no_progress)
    return shlex.join(words)
