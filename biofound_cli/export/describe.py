"""What ``biofound info`` says about an exported graph: an ONNX file or a TorchScript ``.pt``.

Both describe their inputs and outputs; biofound's own facts about the graph (model, channels,
sampling rate, normalisation) come from the ONNX file's ``metadata_props`` when it has any,
and from the ``config.json`` that ``biofound export`` writes beside the files it exports.
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from pathlib import Path
from typing import Any

from biofound_cli.atomic import read_json_object
from biofound_cli.errors import DataError, existing_file, first_line
from biofound_cli.export.out_folder import CONFIG_FILE
from biofound_cli.store.folder_lock import out_folder_running

logger = logging.getLogger(__name__)

# What the config.json beside an exported file says about it, copied into the description.
CONFIG_FACTS = (
    "model",
    "variant",
    # LoRA's rank, alpha and that the adapters are merged, as `info` on the checkpoint says it.
    "fine_tuning",
    "task",
    "num_classes",
    "ch_names",
    "sfreq",
    "n_channels",
    "n_times",
    "label_names",
    "normalisation",
    "onnx_opset",
    "inputs",
    "outputs",
    # What raw recordings go through before the graph (predict runs it) and the weights' licence, as `info` on the
    # checkpoint shows them: the folder's own description left both out.
    "preprocessing",
    "preprocessing_chains",
    "license",
)


def export_config(path: Path) -> dict[str, Any] | None:
    """The facts of the ``config.json`` beside ``path`` when it lists ``path`` as an artefact, else ``None``.

    Parameters
    ----------
    path : Path
        An exported file.
    """
    config_path = Path(path).parent / CONFIG_FILE
    config = read_json_object(config_path)
    if config is None:
        return None
    entries = [entry for entry in config.get("artefacts") or [] if isinstance(entry, dict)]
    entry = next((item for item in entries if item.get("file") == Path(path).name), None)
    if entry is None:
        return None
    return {
        "file": str(config_path),
        **{key: config[key] for key in CONFIG_FACTS if key in config},
        "max_abs_diff": entry.get("max_abs_diff"),
        "reference": entry.get("reference"),
    }


def is_export_folder(path: Path) -> bool:
    """Whether ``path`` is a folder ``biofound export`` wrote (it holds ``config.json``).

    Parameters
    ----------
    path : Path
        Any path.
    """
    return Path(path).is_dir() and (Path(path) / CONFIG_FILE).is_file()


def describe_export_folder(folder: Path) -> dict[str, Any]:
    """Summarise an export folder from its ``config.json``: the model it holds and each verified file.

    Parameters
    ----------
    folder : Path
        A folder written by ``biofound export``.

    Returns
    -------
    dict
        ``kind`` (``export_folder``), the config's model facts, fine-tuning, chain and licence (:data:`CONFIG_FACTS`),
        ``source_checkpoint``, ``artefacts`` (file → format, whether it is there, its max abs
        difference against its reference, and ``problem``: what is wrong with it, or None) and
        ``size_bytes`` (the files it lists). Each problem is also a warning naming the file.
    """
    folder = Path(folder)
    config = read_json_object(folder / CONFIG_FILE)
    if config is None:
        raise DataError(f"{folder / CONFIG_FILE}: not a readable export config; export the checkpoint again")
    entries = [entry for entry in config.get("artefacts") or [] if isinstance(entry, dict) and "file" in entry]
    artefacts = {
        entry["file"]: {
            "format": entry.get("format"),
            "present": (folder / entry["file"]).is_file(),
            "max_abs_diff": entry.get("max_abs_diff"),
            "problem": _artefact_problem(folder, entry),
        }
        for entry in entries
    }
    for name, artefact in artefacts.items():
        if artefact["problem"]:
            logger.warning(f"{folder / name}: {artefact['problem']}")
    return {
        "path": str(folder),
        "kind": "export_folder",
        **{key: config[key] for key in CONFIG_FACTS if key in config},
        "source_checkpoint": config.get("source_checkpoint"),
        "artefacts": artefacts,
        "size_bytes": sum(int(entry.get("size_bytes") or 0) for entry in entries),
        # Whether an export writes into it now: its lock held (a stale lock file, of an export killed, is not).
        "exporting": out_folder_running(folder, "export"),
    }


def _artefact_problem(folder: Path, entry: dict[str, Any]) -> str | None:
    """What is wrong with a file ``config.json`` lists: not there, or not the size it records (cut short by a copy,
    or replaced); None when it is there at that size. Its SHA-256 is not computed: a large graph would make ``info``
    slow, and a file of the right size but other bytes is what ``export`` itself checks."""
    path = folder / entry["file"]
    redo = f"export into {folder} again (or copy the file again)"
    if not path.is_file():
        return f"listed in {CONFIG_FILE} but not there; {redo}"
    recorded = entry.get("size_bytes")
    size = path.stat().st_size
    if isinstance(recorded, int) and size != recorded:
        return f"{size} bytes where {CONFIG_FILE} records {recorded}: cut short or replaced; {redo}"
    return None


def _onnx_tensor(value_info: Any, onnx: Any) -> dict[str, Any]:
    element = value_info.type.tensor_type.elem_type
    return {
        "name": value_info.name,
        "shape": [
            dim.dim_param or (int(dim.dim_value) if dim.HasField("dim_value") else "?")
            for dim in value_info.type.tensor_type.shape.dim
        ],
        "dtype": onnx.helper.tensor_dtype_to_np_dtype(element).name if element else "unknown",
    }


def describe_onnx(path: Path) -> dict[str, Any]:
    """Summarise an ONNX file from its graph, without running it.

    Parameters
    ----------
    path : Path
        A ``.onnx`` file.

    Returns
    -------
    dict
        ``kind`` (``onnx``), ``inputs`` and ``outputs`` (name, shape with named dynamic axes,
        dtype), ``opset`` (domain → version), ``producer``, ``n_nodes``, ``n_initializers``,
        ``int8_matmuls``, ``metadata`` (the file's ``metadata_props``), ``biofound`` (the facts of
        the ``config.json`` beside it, or ``None``) and ``size_bytes``.

    Raises
    ------
    UsageError
        For a missing file or a missing ``onnx`` package.
    DataError
        For a file that is not an ONNX model.
    """
    from biofound_cli.export.onnx_export import count_int8_matmuls, require_onnx

    path = existing_file(path)
    onnx, _ = require_onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and friends
        raise DataError(f"{path}: not an ONNX model ({type(error).__name__}); export it again") from None
    graph = model.graph
    weights = {initializer.name for initializer in graph.initializer}
    return {
        "path": str(path),
        "kind": "onnx",
        "inputs": [_onnx_tensor(item, onnx) for item in graph.input if item.name not in weights],
        "outputs": [_onnx_tensor(item, onnx) for item in graph.output],
        "opset": {item.domain or "ai.onnx": int(item.version) for item in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "n_nodes": len(graph.node),
        "n_initializers": len(graph.initializer),
        "int8_matmuls": count_int8_matmuls(graph),
        "metadata": {item.key: item.value for item in model.metadata_props},
        "biofound": export_config(path),
        "size_bytes": path.stat().st_size,
    }


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``) rather than a ``torch.save`` pickle.

    Parameters
    ----------
    path : Path
        A ``.pt`` file; one that is not a zip archive gives False.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def describe_torchscript(path: Path) -> dict[str, Any]:
    """Summarise a TorchScript file: that it is one, its ``forward`` arguments and its size.

    The archive is loaded with ``torch.jit.load`` on the CPU (TorchScript code, not pickled Python,
    so nothing but the graph's own operators can run) and not called.

    Parameters
    ----------
    path : Path
        A ``.pt`` file written by ``torch.jit.save``.

    Returns
    -------
    dict
        ``kind`` (``torchscript``), ``inputs`` (name and TorchScript type of each ``forward``
        argument, and its ``shape`` where the ``config.json`` beside the file states it: a
        trace fixes channels and samples), ``output``,
        ``n_parameters``, ``biofound`` (the facts of the ``config.json`` beside it, or ``None``)
        and ``size_bytes``.
    """
    import torch

    path = existing_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice is not the user's concern here
            # An int8 archive's quantized tensors raise a deprecation notice once per process, from C++ where no
            # Python handler catches it: it went to stderr raw. Raised here first, it is caught and ignored.
            torch.quantize_per_tensor(torch.zeros(1), 1.0, 0, torch.qint8)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # torch raises RuntimeError and others for a broken archive
        raise DataError(f"{path}: not a loadable TorchScript file ({first_line(error)}); export it again") from None
    schema = module.forward.schema
    config = export_config(path)
    # The traced graph fixes channels and samples; the config.json beside it states them.
    shapes = (config or {}).get("inputs") or {}
    inputs = [
        {
            "name": argument.name,
            "type": str(argument.type),
            **({"shape": shapes[argument.name].get("shape")} if isinstance(shapes.get(argument.name), dict) else {}),
        }
        for argument in schema.arguments[1:]
    ]
    return {
        "path": str(path),
        "kind": "torchscript",
        "inputs": inputs,
        "output": ", ".join(str(item.type) for item in schema.returns),
        "n_parameters": sum(parameter.numel() for parameter in module.parameters()),
        "biofound": config,
        "size_bytes": path.stat().st_size,
    }
