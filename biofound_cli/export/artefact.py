"""One written file of an export, how it was checked, and writing files whole.

Every writer produces an :class:`Artefact`: the file, its format, its size and the largest
difference between its outputs and the PyTorch model's on the same random input. Files are
written under a temporary name in the destination folder and renamed when complete, so a
folder never holds half an artefact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager

from biofound_cli.atomic import atomic_path as _atomic_path
from biofound_cli.atomic import write_text_atomic
from biofound_cli.errors import BiofoundError, ExitStatus

DEFAULT_TOLERANCE = 1e-4
"""Largest max-abs difference a float32 artefact may show against PyTorch."""


@dataclass
class Artefact:
    """A written, verified export file.

    Attributes
    ----------
    path : Path
    format : str
        ``safetensors``, ``onnx`` or ``torchscript``.
    size_bytes : int
    max_abs_diff : float
        Largest absolute difference from the reference on the verification input.
    reference : str
        What it was compared with (``"PyTorch float32"``, ``"PyTorch int8"``).
    quantized : bool
    """

    path: Path
    format: str
    size_bytes: int
    max_abs_diff: float
    reference: str
    quantized: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "max_abs_diff": self.max_abs_diff,
            "reference": self.reference,
            "quantized": self.quantized,
        }


def check_difference(max_abs_diff: float, tolerance: float, path: Path, reference: str) -> None:
    """Fail the export when an artefact's outputs are further than ``tolerance`` from the reference.

    Raises
    ------
    BiofoundError
        Exit status 1: the file was written but cannot be trusted.
    """
    if not max_abs_diff <= tolerance:  # also catches NaN
        raise BiofoundError(
            f"{path}: verification failed, max abs diff {max_abs_diff:.3g} from {reference} is above "
            f"{tolerance:g}; do not deploy this file (report it with the checkpoint if it persists)",
            status=ExitStatus.FAILED,
        )


def atomic_path(path: Path) -> ContextManager[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    :func:`biofound_cli.atomic.atomic_path` with the temporary ending in ``path``'s suffix, since
    exporters and checkers (ONNX, onnxruntime's quantiser) may go by it.
    """
    return _atomic_path(path, suffix_hint=Path(path).suffix)


def write_json_atomic(path: Path, data: dict[str, Any]) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")
