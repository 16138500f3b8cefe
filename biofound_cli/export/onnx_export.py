"""The ``onnx`` export: opset 17 or later, a dynamic batch axis, checked with onnxruntime.

The graph is traced with PyTorch's TorchScript-based exporter (``dynamo=False``), which needs
only the ``onnx`` package; the dynamo exporter would also need ``onnxscript``. FEMBA's Mamba
blocks export through the pure-PyTorch selective scan (an unrolled loop over the sequence,
since no ONNX operator is a selective scan). After writing, onnxruntime runs the file on a
random batch of another size than the one traced (which proves the batch axis is dynamic) and
the largest difference from PyTorch must stay within the tolerance.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from biofound_cli.errors import BiofoundError, UsageError
from biofound_cli.export.artefact import Artefact, atomic_path, check_difference
from biofound_cli.export.source import ExportSource

FILE_NAME = "model.onnx"
INT8_FILE_NAME = "model.int8.onnx"
MIN_OPSET = 17
TRACE_BATCH = 2
VERIFY_BATCH = 3


def require_onnx() -> tuple[Any, Any]:
    """Import ``onnx`` and ``onnxruntime``, or say how to install them.

    Raises
    ------
    UsageError
        When either package is missing (they are the optional ``export`` extra).
    """
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise UsageError(
            f"--format onnx needs the {error.name or 'onnx'} package; install the export extra with "
            "`pip install 'biofound[export]'` (onnx and onnxruntime)"
        ) from None
    return onnx, onnxruntime


def onnx_runner(path: Path, input_names: list[str]) -> Callable[..., torch.Tensor]:
    """A callable running an ONNX file with onnxruntime on the CPU; it returns the first output."""
    _, onnxruntime = require_onnx()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the optimiser's notes are not for users
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        feeds = {name: tensor.detach().cpu().numpy() for name, tensor in zip(input_names, inputs)}
        return torch.from_numpy(session.run(None, feeds)[0])

    return run


def _export(module: torch.nn.Module, source: ExportSource, path: Path, opset: int) -> None:
    names = source.input_names
    axes = {name: {0: "batch"} for name in [*names, source.output_name]}
    inputs = source.example_inputs(TRACE_BATCH)
    with warnings.catch_warnings():
        # Tracer notes about Python ints taken from shapes: only the batch axis is meant to vary.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module, inputs, str(path), input_names=names, output_names=[source.output_name],
                dynamic_axes=axes, opset_version=opset, dynamo=False, do_constant_folding=True,
            )
        except Exception as error:  # the exporter raises many types; name the operator it stopped at
            raise BiofoundError(
                f"{source.checkpoint}: {source.model_name} could not be exported to ONNX "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'no message'}); "
                "try --format torchscript or safetensors"
            ) from None


def write_onnx(source: ExportSource, out_dir: Path, *, tolerance: float, opset: int = MIN_OPSET) -> Artefact:
    """Write ``out_dir/model.onnx`` and verify it with onnxruntime.

    Parameters
    ----------
    source : ExportSource
    out_dir : Path
    tolerance : float
        Largest max-abs difference from PyTorch allowed (1e-4 by default in the CLI).
    opset : int
        ONNX opset; at least 17 (LayerNormalization is a single operator from 17 on).

    Returns
    -------
    Artefact

    Raises
    ------
    BiofoundError
        Exit status 1 when onnxruntime's outputs differ from PyTorch's by more than ``tolerance``.
    """
    if opset < MIN_OPSET:
        raise UsageError(f"--opset {opset}: ONNX export needs opset {MIN_OPSET} or later")
    onnx, _ = require_onnx()
    path = Path(out_dir) / FILE_NAME
    module = source.deploy_module()
    with atomic_path(path) as temporary:
        _export(module, source, temporary, opset)
        onnx.checker.check_model(str(temporary))
        inputs = source.example_inputs(VERIFY_BATCH, seed=1)
        with torch.no_grad():
            expected = module(*inputs)
        got = onnx_runner(temporary, source.input_names)(*inputs)
        max_abs_diff = float((got - expected).abs().max())
        check_difference(max_abs_diff, tolerance, path, "PyTorch")
    return Artefact(path, "onnx", path.stat().st_size, max_abs_diff, "PyTorch float32 (onnxruntime, CPU)")


def quantize_onnx(source: ExportSource, float_path: Path, out_dir: Path) -> Artefact:
    """Write ``out_dir/model.int8.onnx``: onnxruntime's dynamic int8 quantisation of the MatMul weights.

    This is the ONNX counterpart of :func:`torch.ao.quantization.quantize_dynamic` on Linear
    layers: weights are stored as int8, activations are quantised on the fly. The difference
    from the float model is reported, not bounded; the accuracy change on a split is the check.
    """
    require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(out_dir) / INT8_FILE_NAME
    with atomic_path(path) as temporary:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # onnxruntime logs a pre-processing suggestion on the root logger
        try:
            quantize_dynamic(str(float_path), str(temporary), weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        inputs = source.example_inputs(VERIFY_BATCH, seed=1)
        with torch.no_grad():
            expected = source.deploy_module()(*inputs)
        got = onnx_runner(temporary, source.input_names)(*inputs)
        max_abs_diff = float((got - expected).abs().max())
    return Artefact(path, "onnx", path.stat().st_size, max_abs_diff, "PyTorch float32 (onnxruntime int8, CPU)",
                    quantized=True)


def count_int8_matmuls(path: Path) -> int:
    """Matrix products of an int8 ONNX file that run on int8 weights."""
    onnx, _ = require_onnx()
    graph = onnx.load(str(path)).graph
    return sum(node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for node in graph.node)
