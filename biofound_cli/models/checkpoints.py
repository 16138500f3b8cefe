"""Model weights in and out: safetensors files, official key names, strict checks.

biofound writes ``.safetensors`` files with the official (upstream ``nn.Module``) key names, no
prefix, and metadata naming the model, the variant and the constructor arguments, so
:func:`load` can rebuild the model from the file alone. Official files may carry the Lightning
``model.`` prefix; every reader here accepts keys with or without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biofound_cli import __version__
from biofound_cli.atomic import atomic_path
from biofound_cli.errors import CheckpointError, UnreadableCheckpoint, UsageError
from biofound_cli.models.registry import FAMILIES, VARIANTS, build_model, family_of
from biofound_cli.plural import counted, first_few
from biofound_cli.tasks import RECONSTRUCTION, normalise_task

if TYPE_CHECKING:
    import torch
    from torch import nn

    from biofound_cli.models.family import ModelFamily
    from biofound_cli.models.registry import ModelVariant
    from biofound_cli.store.dataset import PackedInfo

logger = logging.getLogger(__name__)

PREFIX = "model."
FORMAT_VERSION = "1"
WEIGHTS_FILE = "model.safetensors"
"""The weights of a checkpoint folder (``runs/NAME/checkpoints/step-N`` or ``best``)."""
BEST_IN_RUN = Path("checkpoints") / "best"
"""Where a run folder keeps the weights of its best evaluation (:class:`~biofound_cli.training.run_folder.RunFolder`)."""
PARAMETRIZED = "parametrizations."
"""In the keys of a model with ``torch.nn.utils.parametrize`` weights: LoRA adapters in training."""
_MAX_LISTED = 6
_PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


# -- the metadata record ------------------------------------------------------------------------
@dataclasses.dataclass
class CheckpointMetadata:
    """What a biofound checkpoint says about itself, stored in its safetensors header.

    Every field is optional on reading (official files carry none); :func:`save_checkpoint`
    and the training loop write them. Values are stored as text: strings as they are, the
    rest as JSON, so ``safe_open(...).metadata()`` stays readable by other tools.

    Attributes
    ----------
    model : str | None
        Family class name (``FEMBA``, ``LUNA``, ``TinyMyo``).
    variant : str | None
        Registry name (``luna-base``), ``None`` for a custom configuration.
    constructor_kwargs : dict | None
        Everything :func:`load` needs to rebuild the model.
    task : str | None
        Head task (``bc`` ... ``regression``; ``reconstruction`` for pre-training).
    num_classes : int | None
    n_chans, n_times : int | None
        The windows the weights were trained on (channels, samples).
    sfreq : float | None
        Their sampling rate (Hz).
    ch_names, label_names : list of str | None
        Channel names in input order; class names in output order.
    channel_positions : dict | None
        A custom montage (channel → 3-D position) that travels with the weights.
    transform : str | None
        Input normalisation (see :mod:`biofound_cli.models.transforms`).
    preprocessing : dict | None
        The preprocessing chain of the training data (``{"corpus", "options", **ChainConfig}``,
        as the shards record it), which ``biofound predict`` runs new recordings through.
    preprocessing_chains : list of dict | None
        Instead of ``preprocessing``, for training data made by several chains (shards of several
        corpora packed together): the distinct ones, most windows first, as the packed split lists
        them; ``biofound predict`` names how they differ when it asks for ``--recipe``.
    biofound_version, format_version : str | None
        Who wrote the file.
    source_checkpoint : str | None
        The weights training started from (``model.checkpoint`` as the recipe gave it); ``None``
        for weights trained from scratch.
    derived_from_official : bool | None
        Whether the weights derive from the official checkpoints (CC BY-ND 4.0): false only for
        weights trained from scratch, or from weights that record false themselves; ``None``
        where the file does not say (official files, files written before it was recorded).
    license, license_note : str | None
        The licence of the weights and, for weights derived from the official ones, why
        (``derivative of CC BY-ND 4.0 weights (...)``): written by training when it starts from
        official weights and by ``biofound export`` (:func:`licence_fields`); ``None`` where not recorded.
    lora : dict | None
        For a LoRA fine-tuning: ``rank``, ``alpha``, ``targets`` (``model.lora_targets``) and
        ``merged`` (true: the adapters are folded into the weights, as in a run's ``best``; false: kept
        apart, as in its resumable ``step-N``); ``None`` for any other training.
    extra : dict
        Anything else (the training step, the watched metric, provenance).
    """

    model: str | None = None
    variant: str | None = None
    constructor_kwargs: dict[str, Any] | None = None
    task: str | None = None
    num_classes: int | None = None
    n_chans: int | None = None
    n_times: int | None = None
    sfreq: float | None = None
    ch_names: list[str] | None = None
    label_names: list[str] | None = None
    channel_positions: dict[str, Any] | None = None
    transform: str | None = None
    preprocessing: dict[str, Any] | None = None
    preprocessing_chains: list[dict[str, Any]] | None = None
    biofound_version: str | None = None
    format_version: str | None = None
    source_checkpoint: str | None = None
    derived_from_official: bool | None = None
    license: str | None = None
    license_note: str | None = None
    lora: dict[str, Any] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Files of earlier versions spell the pre-training task "pretraining" or "pretrain".
        if self.task is not None:
            self.task = normalise_task(self.task)

    @classmethod
    def from_header(cls, header: dict[str, str]) -> CheckpointMetadata:
        """Decode a safetensors ``__metadata__`` mapping (text values, JSON where not plain text).

        Parameters
        ----------
        header : dict of str to str
            The file's ``__metadata__``, as :func:`read_header` returns it; unknown keys go to ``extra``.
        """
        text = (
            "model",
            "variant",
            "task",
            "transform",
            "biofound_version",
            "format_version",
            "source_checkpoint",
            "license",
            "license_note",
        )
        decoded = {key: _decode(value) for key, value in header.items()}
        # Empty fields are unset; a text field that happens to parse as JSON (a variant "1") stays text.
        return cls.from_values(
            {
                key: str(value) if key in text else value
                for key, value in decoded.items()
                if key not in _FIELDS or value not in ("", None)
            }
        )

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> CheckpointMetadata:
        """A record from plain values: the record's fields by name, everything else in ``extra``.

        Parameters
        ----------
        values : dict
            Field names to values, already decoded (not the header's text).
        """
        return cls(
            **{key: value for key, value in values.items() if key in _FIELDS},
            extra={key: value for key, value in values.items() if key not in _FIELDS},
        )

    def to_header(self) -> dict[str, str]:
        """The text mapping written into the safetensors header (unset fields left out)."""
        return {key: value if isinstance(value, str) else json.dumps(value, default=str) for key, value in self.as_dict().items()}

    def as_dict(self) -> dict[str, Any]:
        """Every set field and every extra entry, as plain values."""
        values = {name: getattr(self, name) for name in _FIELDS}
        return {**{key: value for key, value in values.items() if value is not None}, **self.extra}

    @property
    def window_seconds(self) -> float | None:
        """Each window's length: ``n_times`` samples at ``sfreq`` (``None`` when either is not recorded)."""
        return self.n_times / self.sfreq if self.n_times and self.sfreq else None

    def output_names(self, n_outputs: int) -> list[str] | None:
        """A regression head's outputs as this record names them (:func:`recorded_output_names`).

        Parameters
        ----------
        n_outputs : int
            How many values the head gives per window (its last axis).
        """
        return recorded_output_names(self.label_names, n_outputs)

    @property
    def fine_tuning(self) -> str | None:
        """How the weights were fine-tuned, where it matters to whoever runs them (``LoRA rank 8, alpha 16, merged``)."""
        if not self.lora:
            return None
        merged = "adapters merged into the weights" if self.lora.get("merged") else "adapters kept apart from the weights"
        return f"LoRA rank {self.lora.get('rank')}, alpha {self.lora.get('alpha')}, {merged}"

    @property
    def stated_licence(self) -> str | None:
        """The licence the file states, with the derivative note when there is one (``None``: it states none)."""
        if not self.license:
            return None
        return f"{self.license}; {self.license_note}" if self.license_note else self.license

    @property
    def is_biofound(self) -> bool:
        """Whether the file can be rebuilt from its own metadata (official files cannot)."""
        return self.constructor_kwargs is not None


SET_TRANSFORM = "--set data.transform=NAME (or data.transform in the recipe)"
"""How ``evaluate`` and ``export`` are told a checkpoint's input normalisation (:func:`checkpoint_transform`)."""


def checkpoint_transform(head: Any, asked: str | None, source: str, *, doing: str, set_by: str = SET_TRANSFORM) -> str:
    """The input normalisation a checkpoint is scored, exported or run with (``evaluate``, ``export``, ``predict``).

    ``asked`` (a recipe's ``data.transform``) wins, with a warning where the checkpoint records another; then
    the checkpoint's record; then the variant's default for its task, the choice training makes when
    ``data.transform`` is unset (``training/setup.py``). A checkpoint that says none of these is refused: fed
    unnormalised, or exported with a ``config.json`` saying ``none``, its scores would be wrong without a word.

    Parameters
    ----------
    head : HeadInfo
        The loaded checkpoint: its ``metadata``, ``variant`` and ``task``.
    asked : str | None
        The normalisation a recipe names (``data.transform``), if any.
    source : str
        The recipe or checkpoint file, named in messages.
    doing : str
        What the caller does with the normalisation, as the warning says it (``scoring``, ``exporting the graph``,
        ``predicting``): the rule is one, the command using it is the caller's to name.
    set_by : str
        How the caller's command is told a normalisation (its flag), named in the refusal with the names it takes.

    Raises
    ------
    UsageError
        For a checkpoint that records no normalisation and whose variant is not a registered one.
    """
    stored = head.metadata.transform
    if asked is not None:
        if stored is not None and stored != asked:
            logger.warning(
                f"{source}: data.transform = {asked!r} but the checkpoint was trained with {stored!r}; "
                f"{doing} with {asked!r} as the recipe asks (unset it to use the checkpoint's)"
            )
        return asked
    if stored is not None:
        return stored
    if head.variant in VARIANTS:
        return VARIANTS[head.variant].default_transform(head.task)
    from biofound_cli.models.transforms import TRANSFORMS

    raise UsageError(
        f"{source}: the checkpoint does not say which input normalisation it was trained with; name it with {set_by}, "
        f"NAME one of {', '.join(TRANSFORMS)}"
    )


def checkpoint_metadata(
    variant: ModelVariant,
    family: ModelFamily,
    task: str,
    num_classes: int | None,
    kwargs: dict[str, Any],
    transform_name: str,
    info: PackedInfo,
) -> dict[str, Any]:
    """What every checkpoint of a training job records about the model and the windows it is trained on
    (the fields of :class:`CheckpointMetadata` a training job knows).

    Parameters
    ----------
    variant : ModelVariant
        The registered variant built.
    family : ModelFamily
        Its family.
    task : str
        The head's task (``reconstruction`` for pre-training).
    num_classes : int | None
        The head's outputs (0 recorded for none).
    kwargs : dict
        Every constructor argument the model was built with.
    transform_name : str
        The input normalisation.
    info : PackedInfo
        The training split: its channels, window length, rate, class names, preprocessing chain and positions.
    """
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model": family.name,
        "variant": variant.name,
        "task": task,
        "num_classes": num_classes or 0,
        "constructor_kwargs": kwargs,
        "transform": transform_name,
        "ch_names": list(info.ch_names),
        # The windows it is trained on: evaluation, export and prediction take them from here.
        "n_chans": info.n_channels,
        "n_times": info.n_times,
        "sfreq": info.sfreq,
    }
    if task != RECONSTRUCTION:
        # A reconstruction head tells no classes apart: a labelled split's names are not the model's.
        metadata["label_names"] = list(info.label_names)
    if info.preprocessing:
        # The chain that made the windows, so `biofound predict` can run raw recordings through it.
        metadata["preprocessing"] = info.preprocessing
    elif info.preprocessing_chains:
        # Windows of several chains (corpora packed together): none is the model's, and predict says which differ.
        metadata["preprocessing_chains"] = info.preprocessing_chains
    if info.channel_positions:
        # Custom montages travel with the weights so evaluate and export place the channels alike.
        metadata["channel_positions"] = info.channel_positions
    return metadata


def licence_fields(name: str | None, derived: bool, reason: str) -> dict[str, Any]:
    """The record's licence fields: ``license``, ``derived_from_official`` and, for derived weights, ``license_note``.

    The one wording of the licence a file carries, for training (weights started from official
    ones) and ``biofound export`` alike; ``biofound info`` and ``predict`` show it.

    Parameters
    ----------
    name : str | None
        The licence (``CC BY-ND 4.0``, the official weights'); ``None`` for weights that state none (not derived
        from the official ones: their owner chooses it), left out of the header.
    derived : bool
        Whether the weights derive from the official checkpoints.
    reason : str
        Why they are thought to (quoted in the note).
    """
    fields: dict[str, Any] = {"license": name, "derived_from_official": derived}
    if derived:
        fields["license_note"] = f"derivative of {name} weights ({reason})"
    return fields


def recorded_output_names(label_names: Sequence[Any] | None, n_outputs: int) -> list[str] | None:
    """The names of a regression head's outputs: the record's ``label_names`` when they give one per output.

    The one rule ``predict`` (its columns) and ``evaluate`` (its report) name them by: a model's
    record says what it outputs; ``None`` (names missing, or not one per output) leaves the caller
    its fallback (``output0``, ``output1``, ...; ``evaluate``: the split's names first).

    Parameters
    ----------
    label_names : sequence | None
        ``label_names`` as a checkpoint's metadata (or an export's ``config.json``, copied from it) records them.
    n_outputs : int
        How many values the head gives per window (its last axis).
    """
    names = [str(name) for name in label_names or []]
    return names if names and len(names) == n_outputs else None


_FIELDS = tuple(field.name for field in dataclasses.fields(CheckpointMetadata) if field.name != "extra")
"""The record's own fields, in order; every other header entry goes to ``extra``."""


def _decode(text: str) -> Any:
    """One stored value: JSON where it parses, else the plain string it is."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text


# -- reading files -------------------------------------------------------------------------------
def read_header(path: str | os.PathLike[str]) -> dict[str, str]:
    """The raw ``__metadata__`` of a safetensors file, with a clear error for damaged files.

    The one header reader: :func:`read_metadata`, training checkpoints and ``biofound info``
    go through it.

    Parameters
    ----------
    path : str | os.PathLike
        The safetensors file.

    Raises
    ------
    CheckpointError
        For a missing, empty, truncated or foreign file; the message names the file.
    """
    with _opened(path) as handle:
        return dict(handle.metadata() or {})


@contextlib.contextmanager
def _opened(path: str | os.PathLike[str]) -> Iterator[Any]:
    """``safe_open`` (header only, no tensor read) with one-line errors for damaged files."""
    from safetensors import SafetensorError, safe_open

    path = existing_weights(path)
    try:
        handle = safe_open(str(path), framework="pt")
    except SafetensorError as error:
        size = path.stat().st_size
        text = str(error)
        if "header too small" in text:
            raise UnreadableCheckpoint(f"{path} is empty or truncated ({size} bytes); download or save it again") from None
        if "not fully covered" in text or "incomplete" in text:
            raise UnreadableCheckpoint(f"{path} is truncated ({size} bytes); download or save it again") from None
        raise UnreadableCheckpoint(
            f"{path} is not a safetensors file (or its header is cut off); "
            "use a .safetensors checkpoint or convert the file first"
        ) from None
    with handle:
        yield handle


def read_layout(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, tuple[int, ...]], dict[str, str]]:
    """(raw metadata, key → shape, key → dtype) of a safetensors file, from its header alone.

    Parameters
    ----------
    path : str | os.PathLike
        The safetensors file; no tensor is read.
    """
    with _opened(path) as handle:
        slices = {key: handle.get_slice(key) for key in handle.keys()}
        return (
            dict(handle.metadata() or {}),
            {key: tuple(piece.get_shape()) for key, piece in slices.items()},
            {key: piece.get_dtype() for key, piece in slices.items()},
        )


def weights_path(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, the ``model.safetensors`` of a checkpoint folder, or that of a run folder's best checkpoint.

    Parameters
    ----------
    path : str | os.PathLike
        A weights file, a checkpoint folder such as ``runs/NAME/checkpoints/best``, or a run
        folder ``runs/NAME`` or its ``runs/NAME/checkpoints`` (both read as ``checkpoints/best``).
    """
    path = Path(path)
    if path.is_dir() and (path / BEST_IN_RUN.parent).is_dir():
        return path / BEST_IN_RUN / WEIGHTS_FILE
    if path.is_dir() and path.name == BEST_IN_RUN.parent.name and not (path / WEIGHTS_FILE).exists():
        # A run's checkpoints folder (tab completion stops there) holds best/ and step-N/, not weights:
        # read as its best, as the run folder above it is.
        return path / BEST_IN_RUN.name / WEIGHTS_FILE
    return path / WEIGHTS_FILE if path.is_dir() else path


def existing_weights(path: str | os.PathLike[str]) -> Path:
    """The weights file ``path`` names (:func:`weights_path`), refused in one line when it is not there.

    Parameters
    ----------
    path : str | os.PathLike
        A weights file, a checkpoint folder or a run folder.

    Raises
    ------
    CheckpointError
        For a missing file, a folder without ``model.safetensors``, or a run without a best checkpoint.
    """
    given, path = Path(path), weights_path(path)
    refuse_run_without_best(given, path)
    if given.is_dir() and not path.is_file():
        raise CheckpointError(
            f"{given}: a folder without {WEIGHTS_FILE}; pass a run folder, a checkpoint folder from runs/NAME/checkpoints "
            "or a weights file"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file; check the path (or fetch it with `biofound download`)")
    return path


def refuse_run_without_best(given: Path, weights: Path) -> None:
    """Refuse in one line a run folder ``given`` whose best checkpoint (``weights``, :func:`weights_path`'s) is not there yet.

    A run stopped before its first evaluation (a preemption, an early time limit) has step
    checkpoints but no best one; every command that takes a run folder names that.

    Parameters
    ----------
    given : Path
        The path the user gave.
    weights : Path
        The weights file :func:`weights_path` read it as.

    Raises
    ------
    CheckpointError
        When ``given`` is a run folder and its ``checkpoints/best`` holds no weights.
    """
    if given.is_dir() and not weights.is_file() and weights.parts[-3:-1] == BEST_IN_RUN.parts:
        steps = sorted(weights.parent.parent.glob(f"step-*/{WEIGHTS_FILE}"))
        # A LoRA run's step-N folders are refused as weights (_source_and_tensors): sending the user there sent them
        # back to the best checkpoint this run does not have.
        advice = (
            "its checkpoints/step-N folders hold LoRA adapters apart from the weights: continue the run with --resume, "
            "which merges them into checkpoints/best"
            if steps and _holds_adapters(steps[-1])
            else "let it evaluate, or pass one of its checkpoints/step-N folders"
        )
        raise CheckpointError(f"{given}: the run has no best checkpoint yet (none of its evaluations ran or improved); {advice}")


def _holds_adapters(path: Path) -> bool:
    """Whether the weights file ``path`` holds LoRA adapters apart from the weights (a LoRA run's ``step-N``)."""
    try:
        with _opened(path) as handle:
            return any(PARAMETRIZED in key for key in handle.keys())
    except CheckpointError:  # damaged: the step folder's own reading says so
        return False


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes (hex): what ties an evaluation report or an export to exactly these weights.

    Parameters
    ----------
    path : path
        Any file (a checkpoint, an exported artefact).
    """
    import pooch

    return pooch.file_hash(str(path), alg="sha256")


def read_metadata(path: str | os.PathLike[str]) -> CheckpointMetadata:
    """The typed metadata record of a safetensors file (all fields unset for official files).

    Parameters
    ----------
    path : str | os.PathLike
        The safetensors file.
    """
    return CheckpointMetadata.from_header(read_header(path))


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read every tensor of a checkpoint file onto the CPU.

    ``.safetensors`` files are read directly. PyTorch/Lightning files (``.ckpt``, ``.pt``,
    ``.pth``, ``.bin``) are read with ``weights_only=True`` (no code is run); a Lightning file's
    ``state_dict`` entry is used.

    Parameters
    ----------
    path : str | os.PathLike
        The checkpoint file, ``.safetensors`` or one of the PyTorch suffixes.

    Raises
    ------
    CheckpointError
        For a missing, truncated or unreadable file; the message names the file. For weights that diverged (a
        tensor holding NaN or inf), naming the first: every output of the model would be NaN.
    """
    path = existing_weights(path)
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return _finite(path, _load_pickle_state_dict(path))
    read_header(path)
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as error:  # safetensors raises its own error types for damaged files
        raise UnreadableCheckpoint(f"{path} could not be read as safetensors ({error}); download or save it again") from None
    return _finite(path, tensors)


def _finite(path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors``, once every floating-point one is finite: ``predict`` wrote NaN probabilities from such weights."""
    import torch

    diverged = next(
        (key for key in sorted(tensors) if tensors[key].is_floating_point() and not torch.isfinite(tensors[key]).all()), None
    )
    if diverged is not None:
        raise CheckpointError(
            f"{path}: tensor {diverged} holds NaN or inf (weights that diverged in training); use weights saved before "
            "the divergence (an earlier checkpoints/step-N folder of the run, or the best.safetensors it keeps), or "
            "train again with a lower optim.lr"
        )
    return tensors


def _load_pickle_state_dict(path: Path) -> dict[str, torch.Tensor]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated zip, a pickle with custom classes, ...
        raise UnreadableCheckpoint(
            f"{path} could not be read as a PyTorch checkpoint ({type(error).__name__}); "
            "use a .safetensors file or a checkpoint holding only tensors"
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors; use a .safetensors checkpoint")
    return obj


def strip_prefix(state_dict: dict[str, Any], model_keys: set[str] | None = None) -> dict[str, Any]:
    """Drop a leading ``model.`` (the Lightning task attribute) from every key that has it.

    If ``model_keys`` is given and already uses the prefixed names, nothing is changed.

    Parameters
    ----------
    state_dict : dict
        Checkpoint keys to tensors (or to anything, e.g. shapes).
    model_keys : set of str | None
        The keys of the model the state dict is for; None always strips.
    """
    if model_keys is not None and any(key.startswith(PREFIX) for key in model_keys):
        return dict(state_dict)
    return {(key[len(PREFIX) :] if key.startswith(PREFIX) else key): value for key, value in state_dict.items()}


# -- strict loading ------------------------------------------------------------------------------
def key_problems(missing: list[str], unexpected: list[str], misshaped: list[str], most: int = _MAX_LISTED) -> list[str]:
    """``2 missing keys (a, b)``: one entry per kind of mismatch found, naming the first ``most`` keys.

    How a checkpoint that does not fit a model (here) or a downloaded file that does not match its
    manifest (:func:`biofound_cli.hub.verify_weights`) lists what is wrong.

    Parameters
    ----------
    missing, unexpected, misshaped : list of str
        The keys the file lacks, the keys it has that the model does not, and the keys of
        another shape (each with its shapes); an empty list leaves its entry out.
    most : int
        How many keys of each kind are named; the rest are counted (``and 3 more``).
    """
    kinds = (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
    return [f"{counted(len(keys), f'{kind} key')} ({first_few(keys, most)})" for kind, keys in kinds if keys]


def _mismatch_message(path: Any, missing: list[str], unexpected: list[str], misshaped: list[str]) -> str:
    parts = key_problems(missing, unexpected, misshaped)
    return f"{path} does not fit the model: {'; '.join(parts)}; check that the checkpoint is for this model variant and task"


def _source_and_tensors(
    model: nn.Module, path: str | os.PathLike[str] | dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(name for messages, checkpoint tensors without the ``model.`` prefix, the model's state dict)."""
    state_dict = path if isinstance(path, dict) else load_state_dict_file(path)
    target = model.state_dict()
    source = "the state dict" if isinstance(path, dict) else str(path)
    if any(PARAMETRIZED in key for key in state_dict) and not any(PARAMETRIZED in key for key in target):
        raise CheckpointError(
            f"{source} is a resumable checkpoint of a LoRA run, whose adapters are stored apart from the weights; "
            "use the run's checkpoints/best (adapters merged in) or continue the run with --resume"
        )
    return source, strip_prefix(state_dict, set(target)), target


def _misshaped(state_dict: dict[str, Any], target: dict[str, Any], keys: list[str]) -> list[str]:
    """``key: checkpoint [..] vs model [..]`` for each of ``keys`` present in both with other shapes."""
    return [
        f"{key}: checkpoint {list(state_dict[key].shape)} vs model {list(target[key].shape)}"
        for key in keys
        if key in state_dict and tuple(state_dict[key].shape) != tuple(target[key].shape)
    ]


@dataclasses.dataclass
class LoadReport:
    """Which keys :func:`load_weights` loaded, and which it could not match (non-strict only)."""

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]


def load_weights(model: nn.Module, path: str | os.PathLike[str] | dict[str, Any], strict: bool = True) -> LoadReport:
    """Load a checkpoint into ``model``, accepting keys with or without the ``model.`` prefix.

    Parameters
    ----------
    model : torch.nn.Module
        The model to fill.
    path : str | os.PathLike | dict
        A checkpoint file, or a state dict already in memory.
    strict : bool
        Refuse any missing or unexpected key. Mis-shaped keys are always refused.

    Raises
    ------
    CheckpointError
        Listing the missing, unexpected and mis-shaped keys (the first few of each).
    """
    source, state_dict, target = _source_and_tensors(model, path)
    missing = [key for key in target if key not in state_dict]
    unexpected = [key for key in state_dict if key not in target]
    misshaped = _misshaped(state_dict, target, list(target))
    if misshaped or (strict and (missing or unexpected)):
        raise CheckpointError(_mismatch_message(source, missing, unexpected, misshaped))
    loadable = {key: value for key, value in state_dict.items() if key in target}
    model.load_state_dict(loadable, strict=False)
    return LoadReport(loaded=list(loadable), missing=missing, unexpected=unexpected)


# -- writing and rebuilding ----------------------------------------------------------------------
def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    variant: str | None,
    model_name: str,
    constructor_kwargs: dict[str, Any],
    extra_metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights to a ``.safetensors`` file, atomically, with rebuild metadata.

    Parameters
    ----------
    model : torch.nn.Module
    path : str | os.PathLike
        Destination; written to a temporary name in the same folder, then renamed.
    variant : str | None
        Registry name (``"luna-base"``), or ``None`` for a custom configuration.
    model_name : str
        Model family or class name (``"LUNA"``).
    constructor_kwargs : dict
        Everything needed to rebuild the model with :func:`load`.
    extra_metadata : dict | None
        More entries (task, step, provenance); non-string values are stored as JSON.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    family = family_of(model_name)
    if family_of(model).name != family.name:
        raise CheckpointError(f"cannot save a {type(model).__name__} model as model_name={model_name!r}")
    metadata = CheckpointMetadata.from_values(
        {**(extra_metadata or {}), "model": family.name, "variant": variant, "constructor_kwargs": constructor_kwargs}
    )
    return save_state_dict(path, model.state_dict(), metadata)


def save_state_dict(path: str | os.PathLike[str], state_dict: dict[str, torch.Tensor], metadata: CheckpointMetadata) -> Path:
    """The one writer of biofound weight files: tensors plus the metadata record, atomically.

    ``format_version`` and ``biofound_version`` are filled in; the file is written to a
    temporary name in the same folder and renamed, so a file with the final name is whole.

    Parameters
    ----------
    path : str | os.PathLike
        The ``.safetensors`` file to write; its folder is created when missing.
    state_dict : dict of str to Tensor
        The tensors; they are copied to the CPU, contiguous, before writing.
    metadata : CheckpointMetadata
        The record stored in the file's header.
    """
    from safetensors.torch import save_file

    path = Path(path)
    metadata = dataclasses.replace(metadata, format_version=FORMAT_VERSION, biofound_version=__version__)
    tensors = {key: value.detach().to("cpu").contiguous().clone() for key, value in state_dict.items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata.to_header())
        _sort_header_metadata(temporary)
    return path


def _sort_header_metadata(path: Path) -> None:
    """Rewrite the header of the safetensors file ``path`` with its ``__metadata__`` in key order, in place.

    safetensors writes the metadata in the order of a Rust hash map, which differs from process to
    process: the same weights and metadata gave other bytes, so another sha256, on every write (a
    resumed run's best checkpoint never had the straight run's bytes, and evaluation reports and
    predict journals tie themselves to a file by its sha256). Only the order changes, so the header
    keeps its length and no tensor moves.
    """
    with open(path, "r+b") as handle:
        length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(length))
        header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
        text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
        if len(text) <= length:  # always, as only the order changed; never make the file unreadable
            handle.seek(8)
            handle.write(text.ljust(length))


def _constructor_kwargs(path: Path, metadata: CheckpointMetadata) -> dict[str, Any]:
    kwargs = metadata.constructor_kwargs
    if kwargs is None:
        raise CheckpointError(
            f"{path} has no biofound metadata (model, constructor_kwargs); build the model with "
            "biofound_cli.models.create_model and use load_weights instead"
        )
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{path}: metadata field constructor_kwargs is not a JSON object; save the checkpoint again")
    return kwargs


def load(
    path: str | os.PathLike[str],
    *,
    device: str = "cpu",
) -> nn.Module:
    """Rebuild a model from a biofound checkpoint's metadata and load its weights strictly.

    Parameters
    ----------
    path : str | os.PathLike
        A ``.safetensors`` file written by :func:`save_checkpoint` or the training loop, or a
        checkpoint folder (``runs/NAME/checkpoints/best``, ``step-N``): its ``model.safetensors``.
    device : str
        Where to put the model.

    Returns
    -------
    torch.nn.Module
        The model in eval mode (no dropout; call ``.train()`` to fine-tune it further).

    Raises
    ------
    CheckpointError
        For a file without biofound metadata, or whose weights do not fit the rebuilt model.
    """
    path = existing_weights(path)
    metadata = read_metadata(path)
    kwargs = _constructor_kwargs(path, metadata)
    model = build_model(metadata.model or "", kwargs)
    load_weights(model, path, strict=True)
    return model.to(device).eval()


# -- transfer for fine-tuning --------------------------------------------------------------------
@dataclasses.dataclass
class TransferReport:
    """What :func:`transfer_pretrained` did with each key.

    Attributes
    ----------
    loaded : list of str
        Model keys filled from the checkpoint.
    dropped : list of str
        Checkpoint keys not used (pre-training decoder, a head of another shape, deeper blocks).
    initialised : list of str
        Model keys left at their fresh initialisation (the new head).
    """

    path: str
    loaded: list[str]
    dropped: list[str]
    initialised: list[str]

    def summary(self) -> dict[str, Any]:
        return {
            "checkpoint": self.path,
            "loaded": len(self.loaded),
            "dropped": len(self.dropped),
            "initialised": len(self.initialised),
        }


def transfer_pretrained(model: nn.Module, path: str | os.PathLike[str] | dict[str, Any]) -> TransferReport:
    """Load pre-trained body weights into a fine-tuning model; its new head stays freshly initialised.

    Parameters
    ----------
    model : torch.nn.Module
        The fine-tuning model (FEMBA, LUNA or TinyMyo).
    path : str | os.PathLike | dict
        The pre-trained (or fine-tuned) checkpoint, with or without the ``model.`` prefix.

    Raises
    ------
    CheckpointError
        If the checkpoint holds another model family, a body key of the model is missing from it,
        or a body key has another shape.
    """
    family = family_of(model)
    if not isinstance(path, dict):
        held = read_metadata(path).model if Path(path).suffix.lower() not in _PICKLE_SUFFIXES else None
        if held and held.lower() != family.name.lower():
            raise CheckpointError(f"{path} holds a {held} model, not {family.name}; pick a {family.name} checkpoint")
    source, state_dict, target = _source_and_tensors(model, path)
    held_by_keys = family_of_keys(state_dict)
    if held_by_keys not in (None, family.name):
        raise CheckpointError(
            f"{source} holds a {held_by_keys} model (by its keys), not {family.name}; pick a {family.name} checkpoint"
        )

    def is_head(key: str) -> bool:
        return key.startswith(family.head_prefixes)

    body_missing = [key for key in target if key not in state_dict and not is_head(key)]
    body_misshaped = _misshaped(state_dict, target, [key for key in target if not is_head(key)])
    if body_missing or body_misshaped:
        raise CheckpointError(_mismatch_message(source, body_missing, [], body_misshaped))

    # Every body key is there with its shape (checked above); the head is never taken.
    loadable = {key: value for key, value in state_dict.items() if key in target and not is_head(key)}
    model.load_state_dict(loadable, strict=False)
    return TransferReport(
        path=source,
        loaded=[key for key in target if key in loadable],
        dropped=[key for key in state_dict if key not in loadable],
        initialised=[key for key in target if key not in loadable],
    )


# -- describing a file ---------------------------------------------------------------------------
def family_of_keys(keys: Iterable[str]) -> str | None:
    """The model family (``"FEMBA"``) one of whose marker keys is among ``keys``; ``None`` for none.

    How a file without biofound metadata (an official release) shows what it holds.

    Parameters
    ----------
    keys : iterable of str
        State-dict keys without the ``model.`` prefix.
    """
    keys = list(keys)
    return next((family.name for family in _installed_families() if any(key.startswith(family.key_marker) for key in keys)), None)


def _installed_families() -> Iterator[ModelFamily]:
    """The registered families whose model file is installed, in the registry's order."""
    for name in FAMILIES:
        try:
            yield FAMILIES[name]
        except UsageError:  # the family's model file is not installed
            continue


def _no_family_note() -> str:
    """What ``info`` says of keys that match no family: each family's marker key, from the registry, and what to do."""
    markers = ", ".join(f"{family.name} {family.key_marker}*" for family in _installed_families())
    return (
        f"its keys match no model family's, so its model and head are unknown (the families' marker keys: {markers}, "
        "with or without the model. prefix); a checkpoint of one of them saved under other key names needs those "
        "renamed to the upstream model's"
    )


@lru_cache(maxsize=None)
def _variant_body(name: str) -> frozenset[tuple[str, tuple[int, ...]]]:
    """The set of (key, shape) of a registered variant's body, built on the meta device."""
    variant = VARIANTS[name]
    head_prefixes = family_of(variant.family).head_prefixes
    model = build_model(variant.family, variant.kwargs, device="meta")
    return frozenset((key, tuple(value.shape)) for key, value in model.state_dict().items() if not key.startswith(head_prefixes))


def _guess(shapes: dict[str, tuple[int, ...]]) -> tuple[str | None, str | None]:
    """(model family, variant) whose body keys and shapes match ``shapes`` exactly, where any does."""
    family_name = family_of_keys(shapes)
    if family_name is None:
        return None, None
    head_prefixes = family_of(family_name).head_prefixes
    body = frozenset((key, shape) for key, shape in shapes.items() if not key.startswith(head_prefixes))
    for name, variant in VARIANTS.items():
        if family_of(variant.family).name != family_name:
            continue
        try:
            if _variant_body(name) == body:
                return family_name, name
        except UsageError:  # the family's model file is not installed: no variant guess for it
            continue
    return family_name, None


def _head_kind(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """The head the keys' own family says they hold (:meth:`ModelFamily.head_kind`); ``None`` for keys of no family."""
    name = family_of_keys(shapes)
    return family_of(name).head_kind(shapes) if name else None


def _layout(path: Path) -> tuple[dict[str, str], dict[str, tuple[int, ...]], dict[str, str]]:
    """(metadata, key → shape, key → dtype) of a safetensors file (its header) or a PyTorch/Lightning file (no metadata)."""
    if path.suffix.lower() not in _PICKLE_SUFFIXES:
        return read_layout(path)
    state_dict = _load_pickle_state_dict(path)
    shapes = {key: tuple(value.shape) for key, value in state_dict.items()}
    return {}, shapes, {key: str(value.dtype).removeprefix("torch.") for key, value in state_dict.items()}


def weight_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in a checkpoint file, by key without the ``model.`` prefix; no tensor is loaded into a model.

    Parameters
    ----------
    path : str | os.PathLike
        A ``.safetensors`` file (its header alone is read) or a PyTorch/Lightning file.
    """
    return strip_prefix(_layout(existing_weights(path))[1])


def describe_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Summarise a checkpoint file without loading its tensors into a model.

    Parameters
    ----------
    path : str | os.PathLike
        A ``.safetensors`` file or a PyTorch/Lightning file (``.ckpt``, ``.pt``, ``.pth``, ``.bin``).

    Returns
    -------
    dict
        ``path``, ``format``, ``n_tensors``, ``n_parameters``, ``dtypes``, ``prefixed`` (keys carry
        ``model.``), ``metadata``, ``model`` and ``variant`` (from the metadata, else guessed by
        matching the registered variants' keys and shapes), ``head``, and ``license`` (the
        metadata's ``license``, with its ``license_note`` for weights derived from the official
        CC BY-ND 4.0 ones, as training started from them and ``biofound export`` write them; for a file that says
        nothing but whose variant is guessed, the official weights' licence, said as theirs; else ``None``), and
        ``fine_tuning`` (:attr:`CheckpointMetadata.fine_tuning`: LoRA's rank, alpha and whether merged; else ``None``);
        for keys that match no family (``model`` and ``head`` ``None``), ``unrecognised``: why, and each family's marker key.
    """
    path = existing_weights(path)
    metadata, shapes, dtype_of = _layout(path)
    dtypes = sorted(set(dtype_of.values()))
    file_format = "pytorch" if path.suffix.lower() in _PICKLE_SUFFIXES else "safetensors"
    prefixed = bool(shapes) and all(key.startswith(PREFIX) for key in shapes)
    shapes = strip_prefix(shapes)
    n_parameters = sum(math.prod(shape) for shape in shapes.values())
    model_name, variant = metadata.get("model"), metadata.get("variant") or None
    record = CheckpointMetadata.from_header(metadata)
    guessed = False
    if not model_name:
        model_name, variant = _guess(shapes)
        guessed = model_name is not None
    return {
        "path": str(path),
        "format": file_format,
        "n_tensors": len(shapes),
        "n_parameters": n_parameters,
        "dtypes": dtypes,
        "prefixed": prefixed,
        "metadata": metadata,
        "model": model_name,
        "variant": variant,
        "guessed": guessed,
        "head": _head_kind(shapes),
        "license": record.stated_licence or (_official_licence(variant) if guessed else None),
        "fine_tuning": record.fine_tuning,
        **({} if model_name else {"unrecognised": _no_family_note()}),
    }


def _official_licence(variant: str | None) -> str | None:
    """What a file without metadata that has an official variant's keys and shapes may be under: that variant's licence.

    A file of the same architecture trained elsewhere has the same keys, so it is said as the official weights'
    licence, not as the file's.
    """
    if variant is None:
        return None
    return f"none stated; the official {variant} weights, whose keys and shapes these match, are {VARIANTS[variant].license}"
