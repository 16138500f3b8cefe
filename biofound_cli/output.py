"""How a command talks to people and to scripts.

One :class:`Output` per command invocation decides, from the flags and from whether stdout
is a terminal, how messages, progress and the final summary are shown. The core never sees
it: it logs through :mod:`logging` (the ``biofound_cli`` logger), which
:func:`biofound_cli.cli.log_handler.forward_logs` routes here for the length of a command, and
it reports progress through the :class:`~biofound_cli.progress.ProgressReporter` protocol,
which :meth:`Output.task` implements:

* on a terminal: rich tables and live progress bars;
* not on a terminal, or with ``--no-progress``: no live bars, a plain log line at most every
  ``log_interval`` seconds with done/total, rate and ETA;
* ``--quiet``: only warnings, errors and the final summary;
* ``--json``: the final summary as one JSON object on stdout, plain lines on stderr (no table:
  the object holds what a table would show); the warnings printed on the way are repeated in
  it, under ``warnings``.

Colour (``warning:`` in yellow, ``error:`` in red, bold table headers) is rich's choice on a
terminal and in a pipe, where ``FORCE_COLOR`` or ``TTY_COMPATIBLE=1`` asks for it as CI runners
do; never in a file (``> run.log``, a scheduler's output file) nor in the lines of ``--json``,
which scripts read (:func:`_console`).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text


def _format_seconds(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:d}:{secs:02d}"


class OutputTask:
    """A handle on one progress bar; call :meth:`advance` as work completes.

    It is the :class:`~biofound_cli.progress.ProgressTask` that :meth:`Output.task` yields.
    """

    def __init__(self, output: "Output", total: int | None, description: str, unit: str, done: int = 0) -> None:
        self._output = output
        self.total = total
        self.description = description
        self.unit = unit
        self.done = done
        self._done_before = done  # a resumed run's: not work of this start, so not in its rate
        self._start = time.monotonic()
        self._last_log = self._start
        self._rich_progress: Any = None
        self._rich_task: Any = None

    def advance(self, amount: int = 1) -> None:
        """Record that ``amount`` more units are done and update the bar, or log a line when ``log_interval`` has passed.

        Parameters
        ----------
        amount : int
            Units done since the last call.
        """
        self.done += amount
        if self._rich_progress is not None:
            self._rich_progress.update(self._rich_task, advance=amount)
            return
        now = time.monotonic()
        if now - self._last_log >= self._output.log_interval:
            self._last_log = now
            self._log_line()

    def set_description(self, description: str) -> None:
        """Replace the text shown beside the count.

        Parameters
        ----------
        description : str
            The new text.
        """
        self.description = description
        if self._rich_progress is not None:
            self._rich_progress.update(self._rich_task, description=description)

    def _log_line(self, *, final: bool = False) -> None:
        """Log done/total, the rate and the ETA; a ``final`` line of work that ended short says it stopped instead.

        Work can end before its total (early stopping, a stop signal): an ETA there read as if
        it were still running.
        """
        if self._output.quiet:
            return
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = (self.done - self._done_before) / elapsed
        if final and self.total and self.done < self.total:
            line = f"{self.description}: stopped at {self.done}/{self.total} {self.unit} ({rate:.1f} {self.unit}/s)"
        elif self.total:
            remaining = (self.total - self.done) / rate if rate > 0 else float("inf")
            line = (
                f"{self.description}: {self.done}/{self.total} {self.unit} "
                f"({rate:.1f} {self.unit}/s, ETA {_format_seconds(remaining)})"
            )
        else:
            line = f"{self.description}: {self.done} {self.unit} ({rate:.1f} {self.unit}/s)"
        self._output.log(line)


class Output:
    """Messages, progress and the final summary of one command.

    Parameters
    ----------
    json_summary : bool
        Print the final summary as one JSON object on stdout and send everything else to stderr.
    quiet : bool
        Print only warnings, errors and the summary.
    progress : bool | None
        Live progress bars; ``None`` means "only when stdout is a terminal".
    log_interval : float
        Seconds between plain progress log lines when live bars are off.
    """

    def __init__(
        self,
        *,
        json_summary: bool = False,
        quiet: bool = False,
        progress: bool | None = None,
        log_interval: float = 30.0,
    ) -> None:
        self.json_summary = json_summary
        self.quiet = quiet
        self.no_progress = progress is False
        self.log_interval = log_interval
        self.started = time.monotonic()
        """When the command started; a timed :meth:`summary` counts its ``elapsed_seconds`` from here."""
        self.warnings: list[str] = []
        """Every warning printed so far, in order; ``--json`` repeats them in the summary (:meth:`json_object`)."""
        self.stderr = _console(stderr=True, json_summary=json_summary)
        self.stdout = self.stderr if json_summary else _console(stderr=False, json_summary=False)
        # rich treats FORCE_COLOR as "a terminal"; live bars need a real one, or CI logs fill with them.
        is_terminal = self.stdout.is_terminal and _isatty(sys.stderr if json_summary else sys.stdout)
        self.live = (is_terminal if progress is None else progress) and is_terminal and not quiet

    # -- messages -----------------------------------------------------------------------------
    def info(self, message: str) -> None:
        """A line of progress or result, hidden by ``--quiet``.

        Parameters
        ----------
        message : str
            The text, printed as is (no rich markup).
        """
        if not self.quiet:
            self.stdout.print(message, markup=False)

    def log(self, message: str) -> None:
        """A plain, timestamped log line (used for progress when bars are off).

        Parameters
        ----------
        message : str
            The text, printed as is after the local time.
        """
        if not self.quiet:
            self.stdout.print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}", markup=False)

    def warn(self, message: str) -> None:
        """A ``warning: ...`` line on stderr, shown even with ``--quiet``.

        Parameters
        ----------
        message : str
            The text, printed as is (no rich markup).
        """
        self.warnings.append(message)
        self.stderr.print(f"warning: {message}", markup=False, style="yellow")

    def error(self, message: str) -> None:
        """An ``error: ...`` line on stderr, shown even with ``--quiet``.

        Parameters
        ----------
        message : str
            The text, printed as is (no rich markup).
        """
        self.stderr.print(f"error: {message}", markup=False, style="bold red")

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A small table of results, hidden by ``--quiet`` (the summary is not) and by ``--json`` (see :meth:`result_table`).

        Parameters
        ----------
        title : str
            The heading above the table.
        columns : sequence of str
            The column headers.
        rows : sequence of sequence
            One sequence of cell values per row, in the order of ``columns``.
        """
        if not self.quiet:
            self.result_table(title, columns, rows)

    def result_table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A table that is the command's result (a listing), shown even with ``--quiet`` as the summary is.

        With ``--json`` no table is drawn: the JSON object is the result, and its data must be
        there. A table on stderr (box lines, padded cells) is neither a log line nor parseable,
        and a CI log keeps stderr.

        Parameters
        ----------
        title : str
            The heading above the table.
        columns : sequence of str
            The column headers.
        rows : sequence of sequence
            One sequence of cell values per row, in the order of ``columns``.
        """
        if self.json_summary:
            return
        # Text, not markup: a cell's "[model]" (a recipe snippet) or a path's "[...]" is printed as is.
        table = Table(title=Text(title), title_justify="left")
        for column in columns:
            # Fold rather than truncate: paths and metric names must survive a narrow log.
            table.add_column(Text(str(column)), overflow="fold")
        for row in rows:
            table.add_row(*(Text(UNSET if cell is None else str(cell)) for cell in row))
        _print_table(self.stdout, table)

    def summary(self, data: dict[str, Any], title: str = "Summary", *, timed: bool = False) -> None:
        """The final summary of the command: JSON on stdout with ``--json``, a table otherwise.

        Parameters
        ----------
        data : dict
            The fields of the summary; with ``--json`` written as one JSON object (values that are not
            JSON become their ``str``), otherwise one table row per key.
        title : str
            The heading of the table (unused with ``--json``).
        timed : bool
            End the summary with ``elapsed_seconds``, the seconds the command has run (since this
            :class:`Output` was made), to a tenth.
        """
        if timed:
            data = {**data, "elapsed_seconds": round(time.monotonic() - self.started, 1)}
        if self.json_summary:
            self.json_object(data)
            return
        # On a terminal the values are broken to fit beside the field names; rich would fold them anywhere.
        beside = self.stdout.width - max(map(len, data), default=0) - TABLE_EDGES
        width = max(beside, CELL_WIDTH // 2) if _isatty(self.stdout.file) else CELL_WIDTH
        rows = [(key, UNSET_SAID.get(key) if value is None else "\n".join(_cell(value, width))) for key, value in data.items()]
        self.result_table(title, ("field", "value"), rows)

    def json_object(self, data: dict[str, Any]) -> None:
        """Write ``data`` as one JSON line on stdout, with the warnings printed so far under ``warnings``.

        A script reading only stdout learns of them too (a class train lacks, skipped shards);
        the key is left out when no warning was printed. Warnings the data already lists under
        ``warnings`` are not repeated.

        Parameters
        ----------
        data : dict
            The object; values that are not JSON become their ``str``.
        """
        listed = list(data.get("warnings") or [])
        warnings = listed + [message for message in self.warnings if message not in listed]
        data = {**data, "warnings": warnings} if warnings else data
        sys.stdout.write(json.dumps(data, default=str, sort_keys=False) + "\n")
        sys.stdout.flush()

    # -- progress -----------------------------------------------------------------------------
    @contextmanager
    def task(self, total: int | None, description: str, unit: str = "items", *, done: int = 0) -> Iterator[OutputTask]:
        """Show progress of ``total`` units of work; yields an :class:`OutputTask`.

        This makes an :class:`Output` a :class:`~biofound_cli.progress.ProgressReporter`, the
        object the core's long loops take.

        Parameters
        ----------
        total : int | None
            Units of work expected, or ``None`` when not known.
        description : str
            Text beside the bar or at the start of each log line.
        unit : str
            Name of one unit, shown in the rate.
        done : int
            Units of ``total`` done before this start (a resumed run's steps): the bar starts
            there; the rate and time left count only the units done since.

        Yields
        ------
        OutputTask
            The handle to advance as work completes.
        """
        task = OutputTask(self, total, description, unit, done)
        if self.live:
            columns = (
                TextColumn("{task.description}", markup=False),  # file names such as [1]-rest.edf are text
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(unit),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=self.stdout, transient=False) as bar:
                task._rich_progress = bar
                # completed= is no progress sample: rich's speed and time left count only the advances since.
                task._rich_task = bar.add_task(description, total=total, completed=done)
                yield task
            return
        try:
            yield task
        finally:
            task._log_line(final=True)


class _RateColumn(ProgressColumn):
    """A task's rate in its own unit (``12.5 windows/s``), blank until rich has measured one."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Any) -> Text:
        return Text(f"{task.speed:.1f} {self.unit}/s" if task.speed else "")


LOG_WIDTH = 160
"""Width of text written to a log file or pipe (rich would otherwise assume 80 columns); a table
there is as wide as its rows (:func:`_print_table`)."""


def _console(*, stderr: bool, json_summary: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if _isatty(stream) or "COLUMNS" in os.environ else LOG_WIDTH
    # None leaves colour to rich: a terminal, or FORCE_COLOR / TTY_COMPATIBLE=1 asking for it in a
    # pipe (a CI runner's log viewer shows it). False: plain text, whatever the environment asks.
    terminal = False if not _isatty(stream) and (json_summary or _is_file(stream)) else None
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width, force_terminal=terminal)


def _is_file(stream: Any) -> bool:
    """Whether ``stream`` writes to a file on disk (``> run.log``, a scheduler's output file), not a pipe or terminal.

    A file is read as text later (``grep``, an editor, a script): colour codes there are noise,
    even where the environment asks rich for colour.
    """
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):  # no descriptor (a test's buffer), or closed
        return False


def _print_table(console: Console, table: Table) -> None:
    """Print ``table``; off a terminal as wide as its widest row, so that no cell is folded.

    A log file or pipe (CI, ``| tee``) has no width: folded at :data:`LOG_WIDTH`, or at the
    ``COLUMNS`` a shell exported, a long path or a wide metric table came out broken across
    lines, each piece padded to the column, which neither reads nor copies as a path.
    """
    if _isatty(console.file):
        console.print(table)
        return
    needed = console.measure(table, options=console.options.update_width(1 << 16)).maximum
    before = console.width
    console.width = max(before, needed)
    try:
        console.print(table)
    finally:
        console.width = before


def _isatty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


CELL_WIDTH = 80
"""The widest line of a summary value of several items (a dict, a list) off a terminal, where a table is as wide as
its widest line (:func:`_print_table`): pack's preprocessing settings, on one line, made each row of its summary
~1,500 columns wide. A longer value goes on over lines, broken between items, never inside one (a path stays whole)."""
UNSET = "none"
"""How every table words a value its JSON gives as null (a cell, or an item within one), where ``None`` would be
Python's word, not the user's: ``fine_tuning``, ``model`` or ``head`` that a file does not state, a chain's
``l_freq`` switched off."""
UNSET_SAID = {"license": "none stated"}
"""The summary fields whose null says more than :data:`UNSET`: weights that state no licence (``predict``, ``export``,
``info``) may be under one all the same."""

TABLE_EDGES = 7
"""The columns a two-column table takes besides its cells: three borders and a space either side of each cell."""


def _cell(value: Any, width: int, first: int | None = None) -> list[str]:
    """The lines of one summary value, none wider than ``width`` (``first``: the room on the first line) unless one
    item is: a table of tables one entry a line (one line when it fits), a dict or list broken between items."""
    first = width if first is None else first
    if isinstance(value, dict) and any(isinstance(item, dict) for item in value.values()):
        lines: list[str] = []
        for key, item in value.items():
            head, room = f"{key}: ", (width if lines else first) - len(key) - 2
            inner = _cell(item, width - 2, room) or [""]
            if len(inner[0]) > room:  # not even its first item fits beside the key: all of it below
                inner = ["", *_cell(item, width - 2)]
            lines += [(head + inner[0]).rstrip(), *(f"  {line}" for line in inner[1:])]
        joined = "; ".join(lines)
        return [joined] if len(lines) == len(value) and len(joined) <= first else lines
    if isinstance(value, dict):
        return _packed([f"{key}={_short(item)}" for key, item in value.items()], width, first)
    if isinstance(value, (list, tuple)):
        return _packed([_short(item) for item in value], width, first)
    return [_short(value)]


def _packed(items: list[str], width: int, first: int) -> list[str]:
    """``items`` joined by commas into lines of up to ``width`` characters (``first`` on the first line)."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + 2 + len(item) <= (first if len(lines) == 1 else width):
            lines[-1] += ", " + item
        else:
            lines[-1:] = [f"{lines[-1]},"] if lines else []
            lines.append(item)
    return lines


def _short(value: Any) -> str:
    if value is None:
        return UNSET
    if isinstance(value, float):
        # A setting is shown as given (a 3.4375 s window, a 250.0123 Hz rate; 4 digits read 3.438 s, 880.1 samples
        # at 256 Hz); a computed value (a metric, a loss) of many digits to 4 of them.
        exact = f"{value:.10g}"
        return exact if float(exact) == value else f"{value:.4g}"
    if isinstance(value, dict) and any(isinstance(item, dict) for item in value.values()):
        # A table of tables (pack's class counts by split) read "train=normal=18, abnormal=24, val=normal=6".
        return "; ".join(f"{k}: {_short(v)}" for k, v in value.items())
    if isinstance(value, dict):
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_short(v) for v in value)
    return str(value)
