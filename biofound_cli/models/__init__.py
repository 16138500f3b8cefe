"""The models (FEMBA, LUNA, TinyMyo), their registry of named variants, and checkpoint I/O.

Names are resolved lazily, so ``import biofound_cli.models`` imports neither torch nor any
model file until one is used::

    from biofound_cli.models import create_model, list_models, load

    model = create_model("tinymyo", task="ml", num_classes=6)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_model": "registry",
    "list_models": "registry",
    "get_variant": "registry",
    "count_parameters": "registry",
    "ModelVariant": "registry",
    "load": "checkpoints",
    "load_weights": "checkpoints",
    "load_state_dict_file": "checkpoints",
    "save_checkpoint": "checkpoints",
    "transfer_pretrained": "checkpoints",
    "describe_checkpoint": "checkpoints",
    "TransferReport": "checkpoints",
    "get_transform": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
