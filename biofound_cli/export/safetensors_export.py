"""The ``safetensors`` export: official key names, rebuild metadata, reloaded and compared.

The file is what :func:`biofound_cli.models.load` and the download command read: the model's
state dict under the upstream key names (no ``model.`` prefix) with the model, variant and
constructor arguments in its metadata. It is verified by rebuilding the model from the file
alone and comparing outputs with the model that was exported. The licence travels with the
weights: the metadata says ``license`` and, for weights derived from the official ones,
``license_note`` ("derivative of CC BY-ND 4.0 weights"), which ``biofound info`` shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biofound_cli.export.artefact import Artefact, atomic_path, check_difference
from biofound_cli.export.source import ExportSource
from biofound_cli.models.checkpoints import WEIGHTS_FILE, licence_fields, load, save_checkpoint

# Metadata entries not carried over from the checkpoint: save_checkpoint writes the first five itself, and
# an earlier export's licence note is written again below only when it applies.
_OWN_KEYS = ("format_version", "model", "variant", "constructor_kwargs", "biofound_version", "license_note")


def write_safetensors(
    source: ExportSource, out_dir: Path, *, tolerance: float, licence: dict[str, Any] | None = None
) -> Artefact:
    """Write ``out_dir/model.safetensors`` and verify it by reloading.

    Parameters
    ----------
    source : ExportSource
    out_dir : Path
    tolerance : float
        Largest max-abs difference allowed between the reloaded and the exported model.
    licence : dict | None
        The export's licence block, written into the metadata (:func:`~biofound_cli.models.checkpoints.licence_fields`).

    Returns
    -------
    Artefact
    """
    path = Path(out_dir) / WEIGHTS_FILE
    extra = {key: value for key, value in source.metadata.as_dict().items() if key not in _OWN_KEYS}
    extra.update(
        {
            "exported_from": str(source.checkpoint),
            "transform": source.transform,
            "n_chans": source.n_channels,
            "n_times": source.n_times,
            # The decision travels too, so weights trained from this file inherit it (training.setup._provenance).
            **(licence_fields(licence["name"], bool(licence["derived_from_official"]), licence["reason"]) if licence else {}),
        }
    )
    if source.ch_names is not None:
        extra["ch_names"] = list(source.ch_names)
    with atomic_path(path) as temporary:
        save_checkpoint(
            source.model,
            temporary,
            variant=source.head.variant,
            model_name=source.model_name,
            constructor_kwargs=source.head.constructor_kwargs,
            extra_metadata=extra,
        )
        max_abs_diff, _ = source.compare(source.deploy_module(load(temporary).eval()), batch_size=2, seed=0)
        check_difference(max_abs_diff, tolerance, path, "the exported PyTorch model")
    return Artefact(
        path, "safetensors", path.stat().st_size, max_abs_diff, "PyTorch float32 (reloaded with biofound_cli.models.load)"
    )
