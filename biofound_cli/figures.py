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
