"""Options shared by every command, the wrapper that turns errors into exit statuses, and a stage's stop block.

Command modules import only typer and this module at import time, so ``biofound --help``
stays fast: torch, mne and h5py are imported inside the command functions. A command takes
``--json``, ``--quiet`` and ``--no-progress`` through :func:`with_output`.
"""

from __future__ import annotations

import errno
import functools
import inspect
import sys
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, List, Mapping, NoReturn, Optional, Sequence, TypeVar

import typer

from biofound_cli.cli.log_handler import forward_logs
from biofound_cli.errors import (
    COMMAND_STATUSES,
    BiofoundError,
    ExitStatus,
    RecipeError,
    ReportedByAnotherRank,
    UsageError,
    file_system_problem,
    handles_stops,
    is_refused_path,
)
from biofound_cli.launcher import Launch, launch
from biofound_cli.output import Output
from biofound_cli.stop_signals import stop_name

if TYPE_CHECKING:
    from biofound_cli.recipes.schema import Recipe

T = TypeVar("T")

JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        rich_help_panel="Output format",
        help="Print the final summary as one JSON object on stdout; human-readable text goes to stderr.",
    ),
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", rich_help_panel="Output format", help="Print only warnings, errors and the summary.")
]
NoProgressOption = Annotated[
    bool,
    typer.Option(
        "--no-progress", rich_help_panel="Output format", help="No live progress bars: a plain log line every 30 s instead."
    ),
]
Overrides = Optional[List[str]]
"""The type of ``--set`` and ``--unset``: each repeatable."""


def set_option(example: str) -> Any:
    """``--set`` in the Recipe panel, its example a field the command reads (``pack.seed=7`` for ``pack``).

    Parameters
    ----------
    example : str
        ``section.key=value`` of a section the command reads
        (:data:`~biofound_cli.recipes.schema.STAGE_SECTIONS`).
    """
    return typer.Option(
        "--set",
        rich_help_panel="Recipe",
        metavar="SECTION.KEY=VALUE",
        help=f"Override a recipe field; repeatable, e.g. --set {example}.",
    )


def unset_option(example: str) -> Any:
    """``--unset`` in the Recipe panel, its example a field the command reads.

    Parameters
    ----------
    example : str
        ``section.key`` of a section the command reads.
    """
    return typer.Option(
        "--unset",
        rich_help_panel="Recipe",
        metavar="SECTION.KEY",
        help=f"Remove a recipe field, so its default applies (before --set); repeatable, e.g. --unset {example}.",
    )


# Those of the training stages and validate, which read every section the examples name.
SetOption = Annotated[Overrides, set_option("optim.lr=1e-4")]
UnsetOption = Annotated[Overrides, unset_option("model.checkpoint")]

RecipeArgument = Annotated[
    Path,
    typer.Argument(help="Recipe file (.toml), or the recipe.json of a run folder (runs/NAME/recipe.json).", show_default=False),
]


# Options every stage spells the same way, with the command's own help text.
def recipe_option(help: str) -> Any:
    """``--recipe`` / ``-r`` in the Recipe panel.

    Parameters
    ----------
    help : str
        What the command takes from the recipe.
    """
    return typer.Option("--recipe", "-r", rich_help_panel="Recipe", help=help)


def out_option(help: str, **kwargs: Any) -> Any:
    """``--out`` / ``-o`` in the Input and output panel.

    Parameters
    ----------
    help : str
        What the command writes there.
    **kwargs
        More ``typer.Option`` settings (e.g. ``show_default``).
    """
    return typer.Option("--out", "-o", rich_help_panel="Input and output", help=help, **kwargs)


def run_option(*names: str, help: str, **kwargs: Any) -> Any:
    """An option in the Run control panel.

    Parameters
    ----------
    *names : str
        The option's spellings, e.g. ``"--force"``.
    help : str
        The option's help text.
    **kwargs
        More ``typer.Option`` settings (e.g. ``min``, ``metavar``).
    """
    return typer.Option(*names, rich_help_panel="Run control", help=help, **kwargs)


def shard_option(verb: str, shared_out: str) -> Any:
    """``--shard I/N|auto``: one slice of an array job (preprocess and predict).

    Parameters
    ----------
    verb : str
        What the command does to its recordings, e.g. ``"Process"``.
    shared_out : str
        The sentence's end after "Slices share --out".
    """
    return run_option(
        "--shard",
        metavar="I/N|auto",
        help=f"{verb} only slice I of N (counting from 1) of the recordings, balanced by file size; "
        f"auto reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT. Slices share --out{shared_out}",
    )


def make_output(json_summary: bool = False, quiet: bool = False, no_progress: bool = False) -> Output:
    """The :class:`Output` for a command's flags.

    Parameters
    ----------
    json_summary : bool
        ``--json``: the summary as one JSON object on stdout, everything else on stderr.
    quiet : bool
        ``--quiet``: only warnings, errors and the summary.
    no_progress : bool
        ``--no-progress``: no live bars; otherwise bars are shown when stdout is a terminal.
    """
    return Output(json_summary=json_summary, quiet=quiet, progress=False if no_progress else None)


INTERRUPTED = "interrupted; finished outputs are kept and a re-run resumes where this one stopped"
"""The Ctrl-C line of a command that writes outputs."""


def _interrupted_message(command: str | None) -> str:
    """The Ctrl-C line of ``command`` (as typed after ``biofound``): only one that writes outputs has some to keep.

    A command that does not handle stops (:func:`~biofound_cli.errors.handles_stops`) writes
    nothing a stop could leave half done.
    """
    if command not in COMMAND_STATUSES or handles_stops(command):
        return INTERRUPTED
    return f"stopped by {stop_name('SIGINT')} before the command finished; run it again"


RUN_AGAIN = "run the same command again"
"""What a full disk's error line tells the user to do once space is freed: the work resumes where it stopped."""


def run_command(output: Output, work: Callable[[], T], *, again: str = RUN_AGAIN, command: str | None = None) -> T:
    """Run ``work``; print a user-facing error and exit with its status instead of a traceback.

    While ``work`` runs, the core's log records go to ``output`` (:func:`forward_logs`); pass
    ``output`` itself wherever a core function takes a ``reporter`` (it is a
    :class:`~biofound_cli.progress.ProgressReporter`).

    With ``--json`` a failure also prints one JSON object on stdout: ``ok`` (false),
    ``exit_status``, ``error`` and the error's details (e.g. the checkpoint to resume from).

    Parameters
    ----------
    output : Output
        The command's output, from :func:`make_output`.
    work : callable
        The command's body, called with no arguments; its result is returned.
    again : str
        What resumes the work after a full disk, named once space is freed (training:
        continue with ``--resume auto``); by default :data:`RUN_AGAIN`.
    command : str, optional
        The command as typed after ``biofound``, for its Ctrl-C line (:func:`_interrupted_message`).
    """
    with forward_logs(output):
        try:
            return work()
        except RecipeError as error:
            _fail(output, ExitStatus.USAGE, error.message, error.details, lines=error.problems)
        except BiofoundError as error:
            # Another rank has printed it; this one only exits with its status.
            silent = isinstance(error, ReportedByAnotherRank)
            _fail(output, error.status, error.message, error.details, lines=[] if silent else None)
        except KeyboardInterrupt:
            _fail(output, ExitStatus.INTERRUPTED, _interrupted_message(command), {})
        except BrokenPipeError:  # e.g. `biofound ... | head`
            sys.stderr.close()
            raise typer.Exit(int(ExitStatus.OK)) from None
        except OSError as error:
            if is_refused_path(error):
                # An output or input path given by the user that the file system refuses: bad input,
                # not a bug, so one line and the usage status rather than a traceback.
                _fail(output, ExitStatus.USAGE, _path_problem(error), {})
            # The disk filled up (or the quota ran out), or the file system failed (an I/O error, a network
            # file system's stale handle) mid-run: the work failed, the input was fine.
            _fail(output, ExitStatus.FAILED, file_system_problem(error, f"what was finished is kept, so {again}"), {})


@contextmanager
def recipe_stage(
    recipe: Path | None,
    overrides: Sequence[str] | None,
    *,
    stage: str,
    check: Callable[[Recipe], T],
    stopped: str,
    ctrl_c: bool = False,
    flags: Mapping[str, Any] | None = None,
    unset: Sequence[str] | None = None,
) -> Iterator[tuple[Recipe, T]]:
    """A command's recipe, loaded and checked, and its stage run in the block, all in the command's stop block.

    The stop block is around the load: a SIGTERM or SIGUSR1 while the recipe, a checkpoint or onnx is read, or
    noted as the command started (SLURM's, while Python imported), is the command's stop line and status,
    not a refusal by the checks, nor the default action's silent death. Once the block ends, done or failed,
    these signals are ignored: not 143 while the summary or the error prints. Errors raised in the block name
    the options that gave a field (:func:`~biofound_cli.recipes.origin.options_named`).

    Parameters
    ----------
    recipe : Path | None
        The recipe file (``None``: the flags alone).
    overrides : sequence of str | None
        ``--set`` values (``None``: none).
    stage : str
        The stage whose sections the recipe is read for.
    check : callable
        The stage's checks, run on the loaded recipe before any work.
    flags : mapping | None
        The command's quick flags.
    unset : sequence of str | None
        ``--unset`` fields (``None``: none); all as :func:`~biofound_cli.recipes.loading.load_checked` takes them.
    stopped : str
        What a stop left and what to do, after "stopped by SIGTERM"
        (:func:`~biofound_cli.store.worker_lifetime.stop_reported`).
    ctrl_c : bool
        Ctrl-C gets the same line (status 130), not the generic one.

    Yields
    ------
    recipe, checked
        The loaded recipe and what ``check`` returned.
    """
    from biofound_cli.recipes import load_checked
    from biofound_cli.recipes.origin import options_named
    from biofound_cli.store.worker_lifetime import sigterm_ignored_once_settled, stop_reported

    with sigterm_ignored_once_settled(), stop_reported(stopped, ctrl_c=ctrl_c):
        loaded, checked = load_checked(recipe, overrides or (), check=check, flags=flags, unset=unset or (), stage=stage)
        with options_named(loaded):
            yield loaded, checked


# The output flags :func:`with_output` adds to every command, in the order --help lists them.
OUTPUT_FLAGS = {"json_summary": JsonOption, "quiet": QuietOption, "no_progress": NoProgressOption}


def output_flags(json_summary: bool, quiet: bool, no_progress: bool) -> list[str]:
    """The output flags given, spelled as on a command line, for a command that repeats this one.

    A printed ``continue with:`` command keeps them, so a script that runs it gets the output
    format it asked for the first time.

    Parameters
    ----------
    json_summary, quiet, no_progress : bool
        Whether ``--json``, ``--quiet`` and ``--no-progress`` were given.
    """
    given = {"json_summary": json_summary, "quiet": quiet, "no_progress": no_progress}
    return [_long_name(OUTPUT_FLAGS[name]) for name, on in given.items() if on]


def _long_name(flag: Any) -> str:
    """The ``--long`` spelling of an option annotated with ``typer.Option``."""
    info = typing.get_args(flag)[1]
    return next(name for name in (info.default, *info.param_decls) if isinstance(name, str) and name.startswith("--"))


def with_output(command: Callable[..., T]) -> Callable[..., T]:
    """A Typer command from ``command(output, ...)``: the output flags, errors as exit statuses.

    The command Typer sees takes ``command``'s parameters less ``output``, then ``--json``,
    ``--quiet`` and ``--no-progress`` (:data:`OUTPUT_FLAGS`). It builds the :class:`Output` of
    those flags (:func:`make_output`) and calls ``command`` with it inside :func:`run_command`,
    so a :class:`~biofound_cli.errors.BiofoundError` becomes one ``error:`` line and its exit
    status. Docstring and name are ``command``'s, so ``--help`` shows its text.

    Parameters
    ----------
    command : callable
        The command's body; its first parameter is ``output: Output``, the others are its
        own arguments and options (annotated for Typer, as without this decorator).
    """
    signature = inspect.signature(command, eval_str=True)
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].name != "output":
        raise TypeError(f"{command.__qualname__}: its first parameter must be `output: Output`")
    flags = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=flag)
        for name, flag in OUTPUT_FLAGS.items()
    ]

    @functools.wraps(command)
    def with_flags(*args: Any, json_summary: bool = False, quiet: bool = False, no_progress: bool = False, **kwargs: Any) -> T:
        job = launch()
        output = make_output(json_summary and job.is_main, quiet, no_progress)

        def one_process() -> T:
            _refuse_several_processes(_command_words(command), job)
            return command(output, *args, **kwargs)

        return run_command(output, one_process, command=_command_words(command).split()[0])

    # Typer reads the parameters from both (inspect.signature, typing.get_type_hints): give it evaluated ones.
    shown = signature.replace(parameters=[*parameters[1:], *flags])
    with_flags.__signature__ = shown  # type: ignore[attr-defined]
    annotations = {
        parameter.name: parameter.annotation
        for parameter in shown.parameters.values()
        if parameter.annotation is not parameter.empty
    }
    with_flags.__annotations__ = {**annotations, "return": shown.return_annotation}
    return with_flags


def _command_words(command: Callable[..., Any]) -> str:
    """How a user types ``command``: its name, after its group's (the module's) for a subcommand."""
    group = command.__module__.rsplit(".", 1)[-1]
    return command.__name__ if command.__name__ == group else f"{group} {command.__name__}"


def _refuse_several_processes(name: str, job: Launch) -> None:
    """Refuse to run a one-process command as several (every process would do all the work
    and write the same files); rank 0 says so, the others exit alike in silence.

    Only torchrun's own processes are refused: a job script that exports ``WORLD_SIZE`` for its
    training step also runs its other steps with it, as single processes.
    """
    if not job.by_torchrun or job.world_size <= 1:
        return
    message = (
        f"`biofound {name}` runs as one process, but torchrun started {job.world_size} (WORLD_SIZE); run it "
        "without torchrun: only pretrain and finetune use several processes"
    )
    raise (UsageError(message) if job.is_main else ReportedByAnotherRank(message, status=ExitStatus.USAGE))


def _fail(output: Output, status: ExitStatus, message: str, details: dict, lines: Sequence[str] | None = None) -> NoReturn:
    """Print the error's ``lines`` (``message`` when ``None``) and the ``--json`` summary, and exit with ``status``."""
    for line in [message] if lines is None else lines:
        output.error(line)
    if output.json_summary:
        output.json_object({"ok": False, "exit_status": int(status), "error": message, **details})
    raise typer.Exit(int(status)) from None


def _path_problem(error: OSError) -> str:
    """One sentence naming the path the file system refused and what to do about it."""
    path = error.filename or "a path"
    if isinstance(error, PermissionError):
        return f"{path}: permission denied; choose a location you can read and write, or fix its permissions"
    if error.errno == errno.EROFS:
        return f"{path}: read-only file system; choose a location on a file system you can write to"
    if isinstance(error, IsADirectoryError):
        return f"{path}: is a folder where a file is needed; pass a file path"
    return f"{path}: a file is in the way of a folder this command must create; remove it or choose another folder"


def size_text(n_bytes: int) -> str:
    """A file's size as a table shows it: ``812 B``, ``3.4 MiB``, ``1.2 GiB``.

    Parameters
    ----------
    n_bytes : int
        The size in bytes, as listed or measured.
    """
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
