"""``biofound info PATH``: describe a packed file, a shard, a checkpoint or a recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from biofound_cli.cli.common import JsonOption, QuietOption, make_output, run_command


def _size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def describe(path: Path) -> tuple[str, dict[str, Any]]:
    """The title and summary of ``path``, chosen by its suffix."""
    from biofound_cli.errors import UsageError

    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        from biofound_cli.store.describe import describe_h5

        info = describe_h5(path)
        title = f"{'Packed split' if info['kind'] == 'packed' else 'Shard'} {path}"
        return title, info
    if suffix == ".toml":
        from biofound_cli.recipes import load_recipe

        recipe = load_recipe(path)
        sections = {
            name: value.model_dump(mode="json") if hasattr(value, "model_dump") else value
            for name, value in recipe
            if value is not None
        }
        return f"Recipe {path}", {"path": str(path), "kind": "recipe", "valid": True, **sections}
    if suffix in (".safetensors", ".pt", ".pth", ".ckpt"):
        if not path.is_file():
            raise UsageError(f"{path}: file not found; check the path")
        try:
            from biofound_cli.models.checkpoints import describe_checkpoint
        except ImportError:
            raise UsageError(f"{path}: checkpoint description is not available in this installation") from None
        return f"Checkpoint {path}", {"kind": "checkpoint", **describe_checkpoint(path)}
    raise UsageError(
        f"{path}: unknown file type {suffix or '(none)'}; info describes .h5, .safetensors and .toml files"
    )


PathArgument = Annotated[
    Path,
    typer.Argument(
        help="A packed split file or shard (.h5), a checkpoint (.safetensors) or a recipe (.toml).", show_default=False
    ),
]


def info(
    path: PathArgument,
    json_summary: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Describe a file: windows, channels, sfreq, task, class balance, subjects and size; or a checkpoint or recipe."""
    output = make_output(json_summary, quiet)

    def work() -> None:
        title, summary = describe(path)
        if not json_summary and "size_bytes" in summary:
            summary = {**summary, "size": _size(summary["size_bytes"])}
        output.summary(summary, title=title)

    run_command(output, work)


def register(app: typer.Typer) -> None:
    app.command("info")(info)
