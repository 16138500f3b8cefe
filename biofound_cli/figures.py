"""Figures written as PNG files: no display, no pyplot state, the same bytes for the same data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from biofound_cli.atomic import atomic_path

DPI = 120


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches, laid out tight when drawn.

    A bare Figure renders through Agg and never touches pyplot's global state, so plotting works
    without a display and does not switch the backend of a notebook that imports us.

    Parameters
    ----------
    width, height : float
        Size of the figure in inches.
    """
    # On a compute node with a read-only HOME, importing matplotlib warns twice on stderr that it
    # cannot create ~/.config/matplotlib, then caches in a temporary folder anyway: noise in a
    # job's log for something that works. Its first font-cache build would warn the same way.
    matplotlib_logger = logging.getLogger("matplotlib")
    level = matplotlib_logger.level
    matplotlib_logger.setLevel(logging.ERROR)
    try:
        from matplotlib.figure import Figure
    finally:
        matplotlib_logger.setLevel(level)
    return Figure(figsize=(width, height), layout="tight")


def legend_below(figure: Any, **options: Any) -> Any:
    """The figure's legend under everything its axes draw (their tick labels, however far they reach), off the data.

    A legend inside the axes sat on the curves it names; one placed below them at a fixed offset, on long
    class names turned under the axis. The figure is laid out ``constrained`` from then on, which keeps it clear.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure whose artists carry the labels to list.
    **options
        Passed on to ``Figure.legend`` (``ncols``, ``fontsize``).
    """
    figure.set_layout_engine("constrained")
    return figure.legend(loc="outside lower center", **options)


def save_png(figure: Any, out_png: Path) -> Path:
    """Write ``figure`` to ``out_png`` atomically; no software version in the file, so the same
    data give the same bytes.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure to write, at ``DPI`` dots per inch.
    out_png : Path
        The PNG file to write.
    """
    out_png = Path(out_png)
    with atomic_path(out_png) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI, metadata={"Software": None})
    return out_png
