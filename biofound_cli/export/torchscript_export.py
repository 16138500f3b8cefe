"""The ``torchscript`` export: ``torch.jit.trace`` of the inference call, reloaded and compared.

Tracing records the operations run on one example batch. It works for all three models as
biofound builds them (no data-dependent Python branches in the inference path), with two
limits a user should know, both written into the model card:

* the number of channels and samples per window are fixed at trace time (the models take
  Python integers from those shapes); only the batch size may vary;
* the traced graph is the inference path only: no masks, no LUNA location jitter, no dropout.

The file is verified by loading it back with ``torch.jit.load`` and running a batch of another
size than the traced one, so a batch size baked into the graph fails the export. An int8 trace
is compared with the float model, within the int8 tolerance
(:func:`~biofound_cli.export.artefact.int8_tolerance`): dynamic quantisation picks activation
scales per call, so even the trace and the eager int8 model can differ by more than the float
tolerance (1e-2 on LUNA with 880-sample windows).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from biofound_cli.errors import BiofoundError, ExitStatus, typed_first_line
from biofound_cli.export.artefact import Artefact, atomic_path, check_difference, int8_tolerance
from biofound_cli.export.out_folder import TORCHSCRIPT_FILE, TORCHSCRIPT_INT8_FILE
from biofound_cli.export.source import TRACE_BATCH, ExportSource

LIMITS = (
    "TorchScript (torch.jit.trace): channels and samples per window are fixed at trace time, only the "
    "batch size varies; the graph is the inference path only (no masks, no jitter, no dropout)."
)


def write_torchscript(
    source: ExportSource,
    out_dir: Path,
    *,
    tolerance: float,
    module: torch.nn.Module | None = None,
    quantized: bool = False,
) -> Artefact:
    """Trace the inference call to ``out_dir/model.pt`` (``model.int8.pt`` when ``quantized``) and verify it.

    Parameters
    ----------
    source : ExportSource
    out_dir : Path
    tolerance : float
        Largest max-abs difference allowed between the reloaded float trace and PyTorch.
    module : torch.nn.Module | None
        What to trace; the float model's :class:`~biofound_cli.export.source.DeployModule` by
        default, or its int8 copy from :func:`biofound_cli.export.quantize.quantize_linear`.
    quantized : bool
        Name the file and the artefact as int8, and compare it with the float model within the
        int8 tolerance instead of ``tolerance``.

    Raises
    ------
    BiofoundError
        Exit status 1 when the model cannot be traced or the trace disagrees with PyTorch.
    """
    module = (source.deploy_module() if module is None else module).eval()
    path = Path(out_dir) / (TORCHSCRIPT_INT8_FILE if quantized else TORCHSCRIPT_FILE)
    with atomic_path(path) as temporary:
        with warnings.catch_warnings(), torch.no_grad():
            # Tracer and deprecation notices: the verification below is the check that matters.
            warnings.simplefilter("ignore")
            try:
                # check_trace off: it re-runs the same batch; the verification runs another size.
                traced = torch.jit.trace(module, source.example_inputs(TRACE_BATCH), check_trace=False)
            except Exception as error:  # tracing raises many types; say which model and why
                raise BiofoundError(
                    f"{source.checkpoint}: {source.model_name} cannot be traced to TorchScript "
                    f"({typed_first_line(error)}); "
                    "use --format onnx or safetensors",
                    status=ExitStatus.FAILED,
                ) from None
            torch.jit.save(traced, str(temporary))
            max_abs_diff, largest = source.compare(torch.jit.load(str(temporary)), None if quantized else module)
        limit = int8_tolerance(largest) if quantized else tolerance
        check_difference(max_abs_diff, limit, path, "PyTorch float32")
    reference = "PyTorch float32 (int8 trace)" if quantized else "PyTorch float32"
    return Artefact(path, "torchscript", path.stat().st_size, max_abs_diff, reference, quantized=quantized)
