"""``biofound download femba|luna|tinymyo|DATASET``: official weights and open data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from biofound_cli.cli.common import (
    Output,
    Overrides,
    recipe_option,
    run_option,
    set_option,
    size_text,
    unset_option,
    with_output,
)
from biofound_cli.errors import CredentialsNeeded, UsageError, unknown_name
from biofound_cli.models.registry import FAMILY_MODULES

MODELS = tuple(FAMILY_MODULES)


@with_output
def download(
    output: Output,
    target: Annotated[
        Optional[str],
        typer.Argument(
            help="femba, luna or tinymyo (weights), or a data set: siena, uci-emg, epn612, db5, tuab, tuar, tusl, tueg.",
            show_default=False,
        ),
    ] = None,
    variant: Annotated[
        Optional[str],
        typer.Option("--variant", rich_help_panel="Input and output", help="Model size, e.g. base, large, huge (or luna-base)."),
    ] = None,
    task: Annotated[
        Optional[str],
        typer.Option(
            "--task",
            rich_help_panel="Input and output",
            help="Fine-tuned checkpoint of a downstream task: TUAB, TUAR, TUSL, DB5, UCI_EMG, EPN612.",
        ),
    ] = None,
    dest: Annotated[
        Optional[Path],
        typer.Option(
            "--dest",
            rich_help_panel="Input and output",
            help="Folder for the files (weights: instead of the hub cache; data sets: default ./data).",
        ),
    ] = None,
    revision: Annotated[
        Optional[str],
        typer.Option("--revision", rich_help_panel="Input and output", help="Hub branch, tag or commit of the weights."),
    ] = None,
    list_files: Annotated[
        bool,
        typer.Option(
            "--list", rich_help_panel="Input and output", help="Show what the hub holds per model: variants, tasks, sizes."
        ),
    ] = False,
    force: Annotated[
        bool,
        run_option("--force", help="Weights: download again and replace the copy in the cache (or --dest), e.g. a damaged one."),
    ] = False,
    recipe: Annotated[
        Optional[Path],
        recipe_option("Fetch what the recipe's \\[download] section names, or the hub: weights its model.checkpoint reads."),
    ] = None,
    overrides: Annotated[Overrides, set_option("download.revision=main")] = None,
    unset: Annotated[Overrides, unset_option("model.checkpoint")] = None,
) -> None:
    """Download official model weights from the Hugging Face hub, or an open data set over HTTP.

    Weights land in the standard hub cache (resumable; HF_ENDPOINT, HF_HUB_OFFLINE and HF_TOKEN are
    honoured), are checked against the sha256 the hub publishes and the key manifest, and the recipe
    line to use them is printed. Data sets are resumed after an interruption, checked, unpacked, and
    their terms shown.
    """
    from biofound_cli.hub_files import kept_after_stop
    from biofound_cli.store.worker_lifetime import sigterm_ignored_once_settled, stop_reported

    name = (target or "").lower()
    given = [f"--set {text}" for text in overrides or []] + [f"--unset {text}" for text in unset or []]
    if given and recipe is None:  # TARGET and the flags alone read no recipe: the option was ignored without a word
        raise UsageError(
            f"{given[0]}: download reads --set and --unset only with --recipe; pass --recipe R, "
            "or the flags --variant, --task, --revision and --dest"
        )
    # SIGTERM (a job's time limit, `timeout`, `kill`) stops the transfer as Ctrl-C does; the
    # default action killed the process without a word or a --json object. Both name the part
    # file kept and its bytes: the generic Ctrl-C line left the user to guess a re-run continues it.
    with sigterm_ignored_once_settled(), stop_reported(kept_after_stop, ctrl_c=True):  # not 143 while the summary prints
        if list_files:
            summary, title = _list(output, name, revision)
        elif recipe is not None:
            flags = _recipe_flags(name, variant, task, dest, revision)
            summary, title = _from_recipe(output, recipe, (overrides or [], unset or []), flags, force)
        else:
            summary, title = _target(output, name, variant, task, dest, revision, force)
    output.summary(summary, title=title, timed=True)


def _target(
    output: Any, name: str, variant: str | None, task: str | None, dest: Path | None, revision: str | None, force: bool
) -> tuple[dict[str, Any], str]:
    """The weights of a model or a data set, as TARGET names it."""
    if not name:
        raise UsageError("name what to download: femba, luna, tinymyo or a data set (see `biofound download --help`)")
    if name.split("-", 1)[0] in MODELS:
        from biofound_cli.hub import weights_request

        return _weights(output, weights_request(name, variant, task), dest, revision, force)
    if variant or task or revision or force:
        raise UsageError(f"--variant, --task, --revision and --force apply to model weights, not to the data set {name!r}")
    return _dataset(output, name, dest or Path("data"))


def _recipe_flags(name: str, variant: str | None, task: str | None, dest: Path | None, revision: str | None) -> dict[str, Any]:
    """Quick flags as recipe fields: a TARGET is the weights' model or the data set."""
    from biofound_cli.recipes.origin import Flag

    is_model = bool(name) and name.split("-", 1)[0] in MODELS
    folder = str(dest) if dest is not None else None
    return {
        "download.model": Flag("TARGET", name if is_model else None),
        "download.dataset": Flag("TARGET", name if name and not is_model else None),
        "download.variant": Flag("--variant", variant),
        "download.task": Flag("--task", task),
        "download.revision": Flag("--revision", revision),
        "download.dest": Flag("--dest", folder),
        "download.dataset_dir": Flag("--dest", folder),
    }


def _from_recipe(
    output: Any, recipe: Path, settings: tuple[list[str], list[str]], flags: dict[str, Any], force: bool
) -> tuple[dict[str, Any], str]:
    from biofound_cli.download_plan import check_download
    from biofound_cli.recipes import load_checked

    _, plan = load_checked(
        recipe,
        settings[0],
        flags=flags,
        unset=settings[1],
        stage="download",
        check=lambda loaded: check_download(loaded, str(recipe)),
    )
    if plan.empty:
        output.info(
            f"{recipe} names nothing to fetch: no [download] model or dataset, and model.checkpoint is "
            "not a hub: reference (its data and weights are local)"
        )
        return {"recipe": str(recipe), "fetched": []}, "Nothing to download"
    summary: dict[str, Any] = {"recipe": str(recipe)}
    if plan.weights is not None:
        summary["weights"], _ = _weights(output, plan.weights, plan.dest, plan.revision, force)
    if plan.dataset is not None:
        summary["dataset"], _ = _dataset(output, plan.dataset, plan.dataset_dir, fetched=summary.get("weights"))
    return summary, "Downloaded what the recipe needs"


def _weights(
    output: Any, request: Any, dest: Path | None, revision: str | None, force: bool = False
) -> tuple[dict[str, Any], str]:
    from biofound_cli.hub import download_weights
    from biofound_cli.hub_reference import reference_of

    output.info(f"fetching {request.variant.name} ({request.task or 'pre-trained'}) from {', then '.join(request.repos)}")
    # Live bars: not with --json, --quiet or --no-progress (output.live is off for the last two).
    progress = output.live and not output.json_summary
    result = download_weights(request, revision=revision, dest=dest, progress=progress, force=force)
    for note in result.tried:
        output.info(f"  skipped {note}")
    if result.copy_note:  # a warning, so that --json lists it: the copy may be older than the hub's
        output.warn(result.copy_note)
    checked = "sha256 matches the hub's, " if all(result.sha256) else ""
    output.info(f"served by {result.repo} (revision {result.revision}); {checked}keys and shapes match the manifest")
    reference = reference_of(request)
    for path, line in zip(result.files, result.recipe_lines(), strict=True):
        output.info(
            f"{path}\nuse it in a recipe:\n{line}\nor, read from the hub cache wherever the recipe runs:\n"
            f'checkpoint = "{reference}"'
        )
    output.info(f"licence: {request.variant.license} — use and share the unmodified weights with attribution")
    return {**result.summary(), "reference": reference}, "Downloaded weights"


def _dataset(output: Any, name: str, dest: Path, fetched: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """Fetch data set ``name`` into ``dest``; ``fetched``: the summary of weights this run fetched before it."""
    from biofound_cli.dataset_download import OPEN_DATASETS, TUH_CORPORA, download_dataset, download_tuh

    if name in TUH_CORPORA:
        result = download_tuh(name, dest)
        if not result["ran"]:
            for line in result["steps"]:
                output.info(line)
            output.info("rsync command: " + " ".join(result["command"]))
            # Not 0: nothing is there, and `download tuab && biofound preprocess ...` must stop here.
            # A recipe's weights came first: say they are there, or the line reads as if they were not.
            done = f"only the weights were downloaded ({fetched['reference']})" if fetched else "nothing was downloaded"
            raise CredentialsNeeded(
                f"{done}: the {TUH_CORPORA[name][0]} needs NEDC credentials; follow the steps "
                "above, then re-run with BIOFOUND_TUH_SSH_KEY set (or run the rsync command yourself)",
                details={
                    "dataset": name,
                    "folder": result["folder"],
                    "command": result["command"],
                    "steps": result["steps"],
                    **({"weights": fetched} if fetched else {}),
                },
            )
        return {key: value for key, value in result.items() if key != "steps"}, "TUH corpus"
    if name not in OPEN_DATASETS:
        raise UsageError(unknown_name("download target", name, (*MODELS, *OPEN_DATASETS, *TUH_CORPORA)))
    dataset = OPEN_DATASETS[name]
    output.info(f"{dataset.title}\nterms: {dataset.terms}\ncite: {dataset.citation}\nsee: {dataset.page}")
    result = download_dataset(name, dest, reporter=output)
    for file, check in zip(result["files"], result["checks"], strict=True):
        output.info(f"verified {file}: {check}")
    return result, "Downloaded data set"


def _list(output: Any, name: str, revision: str | None) -> tuple[dict[str, Any], str]:
    from biofound_cli.hub import list_available

    if name and name.split("-", 1)[0] not in MODELS:
        from biofound_cli.dataset_download import OPEN_DATASETS, TUH_CORPORA

        if name in OPEN_DATASETS or name in TUH_CORPORA:
            raise UsageError(
                f"--list shows model weights, not data sets: run `biofound download {name}` without --list to fetch {name}"
            )
        raise UsageError(f"--list shows model weights; {name!r} is not one of: {', '.join(MODELS)}; drop it to list them all")
    rows, unlisted = list_available((name.split("-", 1)[0],) if name else MODELS, revision=revision)
    output.table(
        "Weights on the hub",
        ("model", "repo", "file", "variant", "task", "size"),
        [
            (r["model"], r["repo"], r["file"], r["variant"] or "?", r["task"], "?" if r["size"] is None else size_text(r["size"]))
            for r in rows
        ],
    )
    summary: dict[str, Any] = {"files": rows} if output.json_summary else {"files": len(rows)}
    if unlisted:
        summary["unlisted"] = unlisted if output.json_summary else ", ".join(unlisted)
    return summary, "Summary"
