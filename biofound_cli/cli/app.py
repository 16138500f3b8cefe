"""The ``biofound`` Typer application."""

from __future__ import annotations

import importlib
import inspect
import sys
from contextlib import contextmanager
from typing import Annotated, Any, Callable, Iterator, Optional

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from biofound_cli import __version__
from biofound_cli.cli.entry import asks_for_json, say_error, stopped_as_it_started
from biofound_cli.errors import statuses_help


def _flags_show_no_type() -> None:
    """Show on/off flags (``--json``, ``--force``) without a ``<bool>`` type in ``--help``.

    Typer 0.29's rich help prints a type for every option, and ``--json <bool>`` reads as if it
    took a value (users typed ``--json true``). The one place this is patched; a test fails if
    a help page shows ``<bool>`` again.
    """
    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: object) -> str | None:
        return None if self.is_flag else shown(self, ctx)  # type: ignore[arg-type]

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_type()


def _arguments_named_in_capitals() -> None:
    """Name arguments as ``RECIPE``, ``[SHARDS]``, ``RECORDINGS...`` in usage lines, help panels and parse errors.

    Typer 0.29 writes them ``{recipe}`` and ``[shards]`` in usage lines and ``recipe`` in the
    Arguments panel: users copied the braces, and a name in lower case reads as a literal word
    to type. Capitals are click's and the docs' spelling. A parse error names the argument as
    the usage line above it does (``Missing argument 'RECIPE'``, ``Invalid value for 'DEST'``),
    and so does the Arguments panel of ``--help``. The one place this is patched; a test fails
    if a usage line shows braces, or a help page or error a lower-case name, again.
    """
    if not hasattr(TyperArgument, "_usage_display_name"):
        return

    def display_name(self: TyperArgument) -> str:
        return self.metavar or str(self.name).upper()

    def usage_name(self: TyperArgument) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]
    # The help panel, the plain help and the parse errors all read this one name.
    TyperArgument.display_name_raw = property(display_name)  # type: ignore[method-assign,assignment]


_arguments_named_in_capitals()


# The parser's error class: click's, or the copy of click that Typer 0.29 ships inside itself.
_ParseError: Any = next(kind for kind in typer.BadParameter.__mro__ if kind.__name__ == "ClickException")


class _BiofoundGroup(TyperGroup):
    """The ``biofound`` group: an argument the parser refuses is reported as a script can read it.

    Typer draws a rich box around a parse error even in a log file, and with ``--json`` printed
    nothing on stdout, so ``| jq .exit_status`` failed on a missing argument alone. Here a parse
    error with ``--json`` is one JSON object on stdout and one ``error:`` line on stderr; without
    it, the same ``error:`` line alone. The exit status stays 2.
    """

    def main(self, *args: Any, **extra: Any) -> Any:  # noqa: D102
        if not extra.get("standalone_mode", True):
            return super().main(*args, **extra)
        given = args[0] if args else extra.get("args")
        words = [str(word) for word in (sys.argv[1:] if given is None else given)]
        self.words = words  # for invoke, which click hands the parsed words only
        try:
            status = super().main(*args, **{**extra, "standalone_mode": False})
        except _ParseError as error:
            _report_parse_error(error, json_summary=asks_for_json(words))
            sys.exit(error.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)

    def make_context(self, *args: Any, **extra: Any) -> Any:  # noqa: D102
        with _reported_if_stopped_as_it_starts(self.words):  # while the group's arguments are parsed
            return super().make_context(*args, **extra)

    def invoke(self, ctx: Any) -> Any:  # noqa: D102
        with _reported_if_stopped_as_it_starts(self.words):  # the command's own arguments, then its set-up
            return super().invoke(ctx)


@contextmanager
def _reported_if_stopped_as_it_starts(words: list[str]) -> Iterator[None]:
    """A Ctrl-C in the block, before the command's own work began (which reports its stops), is its line and 130.

    Typer turns it into status 130 without a word, nor the ``--json`` object asked for.
    """
    try:
        yield
    except KeyboardInterrupt:
        stopped_as_it_started(json_summary=asks_for_json(words))


def _report_parse_error(error: Any, *, json_summary: bool) -> None:
    """Print a parse error as one ``error:`` line naming the usage and the help to read; with ``--json``, also its object.

    Typer drew a usage box (click four plain lines in a log) for a parse error, where every other
    bad input is one ``error:`` line: ``biofound models ls luna`` looked like a crash.
    """
    context = getattr(error, "ctx", None)
    if context is not None:
        usage = " ".join(context.command.collect_usage_pieces(context))
        where = f"; see `{context.command_path} --help` (usage: {context.command_path} {usage})"
    else:
        where = "; see `biofound --help`"
    say_error(f"{error.format_message().rstrip('.')}{where}", error.exit_code, json_summary)


# Each command, in the order `biofound --help` lists it: the module whose function of the command's
# name runs it, and the example its help ends with. The `recipes` group is added from its module.
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("quickstart", "biofound quickstart --out quickstart --only tinymyo"),
    "download": ("download", "biofound download --recipe recipes/luna_tuab.toml"),
    "preprocess": ("preprocess", "biofound preprocess --recipe recipes/luna_scp1.toml --workers 2"),
    "pack": ("pack", "biofound pack --recipe recipes/luna_scp1.toml"),
    "pretrain": ("train", "torchrun --nproc-per-node 4 -m biofound_cli pretrain recipes/luna_pretrain.toml --resume auto"),
    "finetune": ("train", "biofound finetune recipes/luna_scp1.toml --set optim.lr=1e-4"),
    "evaluate": ("evaluate", "biofound evaluate recipes/tinymyo_myo.toml --bootstrap 1000"),
    "export": ("export", "biofound export --recipe recipes/luna_scp1.toml"),
    "predict": (
        "predict",
        'biofound predict out/tinymyo_myo/runs/tinymyo-myo/checkpoints/best "biofound_cli/data/samples/emg/myo/R_3_*.csv" '
        "--out predictions",
    ),
    "models": ("models", "biofound models 'luna*'"),
    "info": ("info", "biofound info out/luna_scp1/packed/test.h5"),
    "validate": ("validate", "biofound validate recipes/luna_tuab.toml"),
    "env": ("env", "biofound env --json"),
}

app = typer.Typer(
    name="biofound",
    cls=_BiofoundGroup,
    help="From raw EEG/EMG recordings to trained, evaluated and exported foundation models (FEMBA, LUNA, TinyMyo).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"biofound {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """biofound: raw EEG/EMG → shards → packed splits → pretrain/finetune → evaluate → export."""


def help_text(command: Callable[..., Any]) -> str:
    """``command``'s docstring as its ``--help`` text, each paragraph on one line.

    Typer's rich help keeps a docstring's line breaks; the source wraps long paragraphs at its line
    length, and the terminal should wrap them at its own width.

    Parameters
    ----------
    command : callable
        The command function.
    """
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


def _help_from_docstrings(typer_app: typer.Typer, statuses: str = "") -> None:
    """Give every command (and every group's) without its own ``help=`` its docstring's :func:`help_text`.

    A group's commands (``recipes ls``) end it with the group's :func:`statuses_help`, as the top-level ones do.
    """
    for command in typer_app.registered_commands:
        if command.help is None and command.callback is not None:
            command.help = f"{help_text(command.callback)}\n\n{statuses}" if statuses else help_text(command.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None and group.name is not None:
            _help_from_docstrings(group.typer_instance, statuses_help(group.name))


for _command, (_module, _example) in COMMANDS.items():
    _callback = getattr(importlib.import_module(f"biofound_cli.cli.{_module}"), _command)
    app.command(_command, help=f"{help_text(_callback)}\n\n{statuses_help(_command)}", epilog=f"Example: {_example}")(_callback)
app.add_typer(importlib.import_module("biofound_cli.cli.recipes").recipes_app, name="recipes")
_help_from_docstrings(app)


def main() -> None:
    """Console-script entry point."""
    app()
