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
from typing import Any, Callable, Iterable

import torch

from biofound_cli.errors import BiofoundError, UsageError, typed_first_line
from biofound_cli.export.artefact import Artefact, atomic_path, check_difference, int8_advice, int8_tolerance
from biofound_cli.export.out_folder import ONNX_FILE, ONNX_INT8_FILES
from biofound_cli.export.source import TRACE_BATCH, ExportSource

# Static int8 quantises the matrix products and convolutions; norms, softmax and the scan stay float.
STATIC_OPS = ["MatMul", "Gemm", "Conv"]
MIN_OPSET = 17


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


def check_opset(opset: int) -> None:
    """Refuse an opset the TorchScript-based exporter cannot write, before anything is written.

    Parameters
    ----------
    opset : int
        The ``--opset`` (``export.opset``) asked for.

    Raises
    ------
    UsageError
        Exit status 2: below 17, or above the newest opset this PyTorch exports.
    """
    try:  # a private constant of torch's exporter: without it only the lower bound is checked
        from torch.onnx import _constants

        newest = getattr(_constants, "ONNX_MAX_OPSET", None)
    except ImportError:
        newest = None
    if opset < MIN_OPSET or (newest is not None and opset > newest):
        span = f"{MIN_OPSET} to {newest}" if newest is not None else f"{MIN_OPSET} or later"
        raise UsageError(f"--opset {opset}: this PyTorch ({torch.__version__}) exports ONNX opsets {span}; pass one of those")


def graph_opset(path: Path) -> int | None:
    """The ``ai.onnx`` opset an ONNX file's graph was written with; ``None`` if onnx cannot read it.

    Parameters
    ----------
    path : Path
        An ONNX file.
    """
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # onnx missing or the file unreadable: the opset is then unknown
        return None
    return next((int(item.version) for item in model.opset_import if item.domain in ("", "ai.onnx")), None)


def onnx_runner(path: Path, input_names: list[str]) -> Callable[..., torch.Tensor]:
    """A callable running an ONNX file with onnxruntime on the CPU; it returns the first output.

    Parameters
    ----------
    path : Path
        The ONNX file.
    input_names : list of str
        The graph's input names, in the order the callable takes the tensors.
    """
    _, onnxruntime = require_onnx()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the optimiser's notes are not for users
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        feeds = {name: tensor.detach().cpu().numpy() for name, tensor in zip(input_names, inputs, strict=True)}
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
                module,
                inputs,
                str(path),
                input_names=names,
                output_names=[source.output_name],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        except OSError:  # a full disk, an I/O error: the file system's failure, not an operator the exporter lacks
            raise
        except Exception as error:  # the exporter raises many types; name the operator it stopped at
            raise BiofoundError(
                f"{source.checkpoint}: {source.model_name} could not be exported to ONNX "
                f"({typed_first_line(error)}); "
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
        ONNX opset; at least 17 (LayerNormalization is a single operator from 17 on), which
        :func:`~biofound_cli.export.export_checkpoint` checks (:func:`check_opset`) before any file is written.

    Returns
    -------
    Artefact

    Raises
    ------
    BiofoundError
        Exit status 1 when onnxruntime's outputs differ from PyTorch's by more than ``tolerance``.
    """
    onnx, _ = require_onnx()
    path = Path(out_dir) / ONNX_FILE
    module = source.deploy_module()
    with atomic_path(path) as temporary:
        _export(module, source, temporary, opset)
        onnx.checker.check_model(str(temporary))
        max_abs_diff, _ = source.compare(onnx_runner(temporary, source.input_names), module)
        check_difference(max_abs_diff, tolerance, path, "PyTorch")
    return Artefact(
        path, "onnx", path.stat().st_size, max_abs_diff, "PyTorch float32 (onnxruntime, CPU)", opset=graph_opset(path)
    )


class _Calibration:
    """onnxruntime's ``CalibrationDataReader`` protocol over batches of graph inputs."""

    def __init__(self, batches: Iterable[tuple[torch.Tensor, ...]], input_names: list[str]) -> None:
        self._batches = iter(batches)
        self._names = input_names

    def get_next(self) -> dict[str, Any] | None:
        batch = next(self._batches, None)
        return None if batch is None else {name: t.numpy() for name, t in zip(self._names, batch, strict=True)}


def _quantize(float_path: Path, temporary: Path, scheme: str, calibration: Any) -> None:
    """Run onnxruntime's dynamic or static quantiser, its root-logger notes silenced."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime logs pre-processing suggestions on the root logger
    try:
        # 7-bit weights (reduce_range): on x86 CPUs without VNNI (AVX2, plain AVX-512) onnxruntime
        # multiplies uint8 activations by int8 weights with VPMADDUBSW, whose 16-bit pair sums
        # saturate with full-range weights (max abs diff 0.58 instead of 0.018 on a small TinyMyo
        # whose outputs reach 1.3); the exported file must be right on whatever CPU deploys it.
        if scheme == "int8":
            quantize_dynamic(str(float_path), str(temporary), weight_type=QuantType.QInt8, reduce_range=True)
        else:
            quantize_static(
                str(float_path),
                str(temporary),
                calibration,
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=STATIC_OPS,
                reduce_range=True,
            )
    finally:
        root.setLevel(level)


def quantize_onnx(
    source: ExportSource,
    float_path: Path,
    out_dir: Path,
    *,
    scheme: str = "int8",
    calibration: Iterable[tuple[torch.Tensor, ...]] | None = None,
) -> Artefact:
    """Write an int8 copy of ``float_path``: dynamic (``model.int8.onnx``) or static (``model.int8-static.onnx``).

    ``int8`` is the ONNX counterpart of :func:`torch.ao.quantization.quantize_dynamic`: MatMul
    weights stored as int8, activations quantised on the fly with scales taken from each call's
    whole batch, so a window's output depends on the windows batched with it. ``int8-static``
    fixes every activation scale from ``calibration`` (MinMax over real windows) and stores
    quantise/dequantise pairs around MatMul, Gemm and Conv: outputs do not depend on the batch.

    Parameters
    ----------
    source : ExportSource
    float_path : Path
        The verified float ONNX file.
    out_dir : Path
    scheme : {"int8", "int8-static"}
    calibration : iterable of input tuples | None
        Batches of graph inputs from the split (``int8-static`` only).

    Raises
    ------
    BiofoundError
        Exit status 1 when the int8 outputs are further from the float model than the int8
        tolerance (:func:`~biofound_cli.export.artefact.int8_tolerance`).
    """
    path = Path(out_dir) / ONNX_INT8_FILES[scheme]
    reader = _Calibration(calibration or [], source.input_names) if scheme == "int8-static" else None
    with atomic_path(path) as temporary:
        _quantize(float_path, temporary, scheme, reader)
        max_abs_diff, largest = source.compare(onnx_runner(temporary, source.input_names))
        check_difference(max_abs_diff, int8_tolerance(largest), path, "PyTorch float32", advice=int8_advice(scheme))
    return Artefact(
        path,
        "onnx",
        path.stat().st_size,
        max_abs_diff,
        f"PyTorch float32 (onnxruntime {scheme}, CPU)",
        quantized=True,
        opset=graph_opset(path),
    )


def count_int8_matmuls(graph: Any) -> int:
    """Matrix products (and, static, convolutions) of an int8 ONNX graph that run on int8 weights.

    Dynamic files hold ``MatMulInteger`` / ``DynamicQuantizeMatMul`` nodes; static (QDQ) files
    keep the float operator and feed it from ``DequantizeLinear`` nodes.

    Parameters
    ----------
    graph : onnx.GraphProto
        The graph of an ONNX model (``onnx.load(path).graph``).
    """
    dynamic = sum(node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for node in graph.node)
    dequantized = {output for node in graph.node if node.op_type == "DequantizeLinear" for output in node.output}
    static = sum(node.op_type in STATIC_OPS and any(name in dequantized for name in node.input) for node in graph.node)
    return dynamic + static
