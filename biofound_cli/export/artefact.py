"""One written file of an export, how it was checked, and writing files whole.

Every writer produces an :class:`Artefact`: the file, its format, its size and the largest
difference between its outputs and the PyTorch model's on the same random input, and its
sha256. Each file is written under a temporary name and renamed when complete, inside a staging
folder whose files move into the export folder only once every file of the export has been
verified (:func:`biofound_cli.atomic.staged_files`), so a folder never holds half an export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager

from biofound_cli.atomic import atomic_path as _atomic_path
from biofound_cli.errors import BiofoundError, ExitStatus

INT8_TOLERANCE = 0.25
"""An int8 artefact may differ from the float model by this fraction of the largest output
magnitude (at least 1): it catches a broken quantisation, not an accuracy loss, which the
accuracy and agreement on a split measure."""


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
        What it was compared with (``"PyTorch float32"``, ``"PyTorch float32 (onnxruntime int8, CPU)"``).
    quantized : bool
    sha256 : str
        Hash of the file's bytes, listed in ``config.json``.
    quantization : dict
        For an int8 file, :meth:`~biofound_cli.export.quantize.QuantizationReport.summary`.
    opset : int | None
        For an ONNX file, the opset its graph was written with (read from the file).
    """

    path: Path
    format: str
    size_bytes: int
    max_abs_diff: float
    reference: str
    quantized: bool = False
    sha256: str = ""
    quantization: dict[str, Any] = field(default_factory=dict)
    opset: int | None = None

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file": self.path.name,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "max_abs_diff": self.max_abs_diff,
            "reference": self.reference,
            "quantized": self.quantized,
        }
        if self.opset is not None:
            data["opset"] = self.opset
        if self.quantization:
            data["quantization"] = self.quantization
        return data


def int8_tolerance(largest_output: float) -> float:
    """Largest max-abs difference an int8 artefact may show against the float model.

    Parameters
    ----------
    largest_output : float
        The largest absolute output of the float model on the verification input.
    """
    return INT8_TOLERANCE * max(1.0, float(largest_output))


REPORT_ADVICE = "report it with the checkpoint if it persists"
"""What to do about a file that fails its verification, unless the writer knows better."""


def int8_advice(scheme: str) -> str:
    """What to do about an int8 copy of ``scheme`` that fails its check (after "do not deploy this file").

    Parameters
    ----------
    scheme : {"int8", "int8-static"}
    """
    # Static scales fitted to a few windows clip the others: more calibration windows is the usual fix.
    return "calibrate on a larger --split, or use --quantize int8" if scheme == "int8-static" else REPORT_ADVICE


def check_difference(
    max_abs_diff: float,
    tolerance: float,
    path: Path,
    reference: str,
    *,
    advice: str = REPORT_ADVICE,
) -> None:
    """Fail the export when an artefact's outputs are further than ``tolerance`` from the reference.

    Parameters
    ----------
    max_abs_diff : float
        The largest absolute difference between the artefact's outputs and the reference's.
    tolerance : float
        The largest difference accepted.
    path : Path
        The artefact, named in the error.
    reference : str
        What it was compared with (e.g. ``PyTorch float32``), named in the error.
    advice : str
        What the user can do about it, after "do not deploy this file".

    Raises
    ------
    BiofoundError
        Exit status 1: the file was written but cannot be trusted.
    """
    if not max_abs_diff <= tolerance:  # also catches NaN
        raise BiofoundError(
            f"{path}: verification failed, max abs diff {max_abs_diff:.3g} from {reference} is above "
            f"{tolerance:g}; do not deploy this file ({advice})",
            status=ExitStatus.FAILED,
        )


def atomic_path(path: Path) -> ContextManager[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    :func:`biofound_cli.atomic.atomic_path` with the temporary ending in ``path``'s suffix, since
    exporters and checkers (ONNX, onnxruntime's quantiser) may go by it.

    Parameters
    ----------
    path : Path
        The file the block writes.
    """
    return _atomic_path(path, suffix_hint=Path(path).suffix)
