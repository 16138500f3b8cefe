"""The model ``biofound predict`` runs: a biofound checkpoint through PyTorch, or an export folder's
ONNX graph through onnxruntime, behind one call that turns preprocessed windows into scores.

Both paths feed the model as ``evaluate`` does: the checkpoint's input normalisation, LUNA's
electrode positions of the model's own channels, no masks, and the same logits → probabilities
step (:func:`~biofound_cli.training.evaluate.scores_from_logits`), so a window scores the same
whichever way it reaches the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import numpy as np

from biofound_cli.atomic import read_json_object
from biofound_cli.errors import CheckpointError, DataError, UsageError, reader_failure
from biofound_cli.export.describe import is_export_folder, is_torchscript
from biofound_cli.export.out_folder import CONFIG_FILE, ONNX_FILE, TORCHSCRIPT_FILE
from biofound_cli.metrics import class_names
from biofound_cli.models.checkpoints import WEIGHTS_FILE, file_sha256, read_metadata, refuse_run_without_best, weights_path
from biofound_cli.models.registry import FAMILIES
from biofound_cli.prediction.chain import PredictionChain
from biofound_cli.tasks import RECONSTRUCTION, normalise_task

if TYPE_CHECKING:
    from biofound_cli.models.family import ModelFamily  # imports torch

logger = logging.getLogger(__name__)


@dataclass
class PredictionModel:
    """A loaded model and what prediction needs to know about it.

    Attributes
    ----------
    path : Path
        The weights file that runs (``.safetensors`` or ``model.onnx``); its content hash says
        which model wrote a prediction.
    runtime : str
        ``"pytorch"`` or ``"onnxruntime"``.
    task : str
        The head's task (``bc``, ``mcc``, ``ml``, ``mc``, ``mmc``, ``regression``), or ``reconstruction``
        for a pre-training model, whose score is the reconstruction error.
    label_names : list of str
        The classes, one per output column; empty for regression and reconstruction.
    ch_names : list of str | None
        The channels the model takes, in order.
    sfreq : float | None
        The sampling rate of its training windows.
    preprocessing : dict | None
        The recorded chain (``{"corpus", "options", **ChainConfig}``); ``None`` when not recorded.
    n_times : int | None
        Samples per window the model was trained on (checkpoint metadata) or the graph takes
        (``config.json``), else the length the model is fixed to (an official FEMBA file); ``None``
        when the model takes several (an official LUNA or TinyMyo file).
    window_multiple : int
        Any window length the model takes is a multiple of this (its patch length).
    score : callable
        ``(n, C, T) float32 array → (n, K) scores`` (probabilities, or predictions for regression).
    """

    path: Path
    runtime: str
    task: str
    label_names: list[str]
    ch_names: list[str] | None
    sfreq: float | None
    preprocessing: dict[str, Any] | None
    score: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    n_times: int | None = None
    window_multiple: int = 1
    description: str = ""
    """The model as the summary names it (``TinyMyo tinymyo, LoRA rank 8, ...``): family, variant and fine-tuning."""
    license: str | None = None
    """The licence the checkpoint (or export) states (``CheckpointMetadata.stated_licence``)."""
    recipe_chain: PredictionChain | None = None
    """The chain of ``--recipe``, or of an official checkpoint's published recipe (its source then reads e.g.
    ``published chain of tuab (luna_tuab.toml)``), which wins over the recorded one; ``None``: the model's."""
    reference: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    """For an int8 graph: the float graph beside it, run on the same windows to measure agreement."""
    reference_name: str = ""
    output_names: list[str] = field(default_factory=list)
    """A regression head's outputs as its metadata (``label_names``) names them; empty: ``output0``, ``output1``, ..."""
    family: ModelFamily | None = None
    """The model's family (a graph's as its ``config.json`` names it, ``None`` where it names none): with the
    runtime, what ``predict`` advises (:attr:`advice`)."""
    exported_from: str | None = None
    """A graph's ``source_checkpoint`` as its ``config.json`` names it; ``None`` for a checkpoint."""
    preprocessing_chains: list[dict[str, Any]] = field(default_factory=list)
    """Without ``preprocessing``: the chains of training data made by several (corpora packed together), as
    recorded (:attr:`~biofound_cli.models.checkpoints.CheckpointMetadata.preprocessing_chains`); else empty."""

    def sha256(self) -> str:
        """The content hash of the weights file."""
        return file_sha256(self.path)

    @property
    def advice(self) -> Advice:
        """What to do with recordings or a ``--recipe`` the model does not take as they are, by its family and runtime.

        A LUNA checkpoint takes the channels a recording has, each placed by its electrode position; FEMBA (EEG),
        TinyMyo (EMG) and every exported graph take only their own, and the checkpoint a LUNA graph was exported
        from takes others (the advice to set a LUNA graph's channels defeated a user after another montage).
        """
        family = self.family
        reads = (
            "; {} recordings of another format through --recipe: pass one whose [preprocess] names their reader "
            '(corpus, e.g. corpus = "edf") and {} (see docs/predict.md)'
        )
        own = reads.format("the model reads", "the model's channels and window")
        if self.runtime == "onnxruntime":
            source = f" ({self.exported_from})" if self.exported_from and Path(self.exported_from).is_file() else ""
            return Advice(
                "; an exported graph takes only the channels it was exported for: give recordings that have them, "
                "or predict with a LUNA checkpoint and --recipe naming these recordings' channels (LUNA places each "
                "channel by its electrode position)",
                own,
                f"a {family.name} graph takes only the channels it was exported for: predict with the checkpoint it was "
                f"exported from{source} and this --recipe ({family.name} places each channel by its electrode position), "
                "or set preprocess.channels (or montage) to the graph's there"
                if family is not None and family.uses_channel_locations
                else "",
            )
        assert family is not None  # a checkpoint's family is always known
        if family.uses_channel_locations:
            return Advice(
                "; LUNA takes the channels a recording has, each placed by its electrode position: pass --recipe whose "
                "[preprocess] channels lists those these recordings have",
                reads.format("LUNA takes", "the channels they have"),
                "",
            )
        other = (
            "or, for recordings of another montage, fine-tune LUNA, which places each channel by its electrode position"
            if family.modality == "eeg"
            else "or fine-tune a model on the channels these recordings have"
        )
        return Advice(f"; {family.name} needs every channel it was trained on: give recordings that have them, {other}", own, "")


class Advice(NamedTuple):
    """What ``predict`` tells of recordings or a recipe a model does not take as they are (:attr:`PredictionModel.advice`)."""

    missing_channels: str
    """Added to the skip of a recording lacking some of the model's channels (``; ...``)."""
    other_recordings: str
    """Added, without ``--recipe``, to the refusal of a folder holding no recording of the chain's reader (``; ...``)."""
    other_channels_fix: str
    """What to do when ``--recipe`` names other channels than the model takes; empty: set the model's there."""


def resolve_model_path(value: str) -> Path:
    """``MODEL`` as a path: a ``hub:MODEL/FOLDER`` reference resolved from the local copy, offline.

    Parameters
    ----------
    value : str
        The ``MODEL`` argument.

    Raises
    ------
    UsageError
        When the path does not exist, names a recipe (``.toml``) or the hub weights were not downloaded yet.
    """
    from biofound_cli.hub_reference import local_checkpoint

    path = local_checkpoint(value, "MODEL")
    if not path.exists():
        raise UsageError(
            f"MODEL {value}: no such file or folder; give a checkpoint (.safetensors or its folder) or an export folder"
        )
    return path


def as_hub_reference(value: str) -> str:
    """``MODEL:FOLDER`` (``luna:TUAB``, ``tinymyo:UCI_EMG``) spelled as the ``hub:MODEL/FOLDER`` reference it is short for.

    Anything else (a path, a ``hub:`` reference) is returned unchanged.

    Parameters
    ----------
    value : str
        The ``MODEL`` argument.
    """
    model, colon, folder = value.partition(":")
    if not colon or not folder or "/" in folder or Path(value).exists() or model.lower().split("-", 1)[0] not in FAMILIES:
        return value
    return f"hub:{model}/{folder}"


@dataclass(frozen=True)
class TorchWay:
    """How a PyTorch checkpoint runs: where, in which precision, compiled or not.

    Attributes
    ----------
    device : str
        ``cpu``, ``cuda`` or ``cuda:N``.
    precision : str
        ``fp32``, or ``bf16`` (autocast: matrix products in bfloat16, on CPUs with AVX512-BF16 or
        AMX and on CUDA about 1.3-2× faster, with the same predicted class on nearly every window).
    compiled : bool
        ``torch.compile`` for inference (frozen weights; one graph serves every batch size, see
        :mod:`biofound_cli.models.compiled`; a model that cannot be compiled here runs eagerly,
        with one warning).
    """

    device: str = "cpu"
    precision: str = "fp32"
    compiled: bool = False

    @property
    def runtime(self) -> str:
        """``pytorch``, with ``compiled`` and ``bf16`` where they apply (recorded with every prediction)."""
        return " ".join(["pytorch", *(["compiled"] if self.compiled else []), *(["bf16"] if self.precision == "bf16" else [])])


PRECISIONS = ("fp32", "bf16")


def load_prediction_model(
    value: str,
    *,
    recipe: Any = None,
    chain: PredictionChain | None = None,
    source: str = "MODEL",
    way: TorchWay | None = None,
) -> PredictionModel:
    """Load ``MODEL``: an export folder with ``model.onnx`` runs on onnxruntime, anything else on PyTorch.

    Parameters
    ----------
    value : str
        A ``.safetensors`` file, a checkpoint folder, an export folder, a graph in one (``model.int8.onnx``:
        run beside the float ``model.onnx``, their agreement reported) or a ``hub:`` reference.
    recipe : Recipe | None
        ``--recipe``: its ``[model]`` builds an official checkpoint, its ``[data] transform`` overrides
        the normalisation.
    chain : PredictionChain | None
        The chain of ``recipe``'s ``[preprocess]``, as :func:`~biofound_cli.prediction.chain.recipe_chain` checked
        it as the recipe loaded (:func:`~biofound_cli.recipes.loading.load_checked`).
    source : str
        The recipe file, named in messages.
    way : TorchWay | None
        Device, precision and compiling for a PyTorch checkpoint; the default runs it eagerly in
        fp32 on the CPU. An ONNX graph takes only the default.

    Raises
    ------
    UsageError, CheckpointError
        For a path that is no model, an official file whose task cannot be told, or a precision
        or compiling asked of an ONNX graph.
    """
    way = way or TorchWay()
    if way.precision not in PRECISIONS:
        raise UsageError(f"--precision {way.precision}: choose one of {', '.join(PRECISIONS)}")
    value = as_hub_reference(value)
    path = resolve_model_path(value)
    # A graph given itself (model.int8.onnx), else an export folder's model.onnx.
    graph = path if path.is_file() and path.suffix == ".onnx" else path / ONNX_FILE
    config = _export_config(graph.parent)
    if graph == path and config is None:
        raise UsageError(f"MODEL {path}: no {CONFIG_FILE} beside the graph; give the export folder the graph was written to")
    # A pre-training graph computes no reconstruction error (it takes no mask); the weights beside it in the
    # same export folder do, so an added model.onnx does not stop the folder predicting.
    task = normalise_task(str((config or {}).get("task") or ""))
    reconstructs = graph != path and task == RECONSTRUCTION and (path / WEIGHTS_FILE).is_file()
    if config is not None and graph.is_file() and not reconstructs:
        _check_onnx_way(path, way)
        return replace(_onnx_model(graph.parent, config, graph), recipe_chain=chain)
    weights = weights_path(path)
    _refuse_torchscript(path, weights)
    refuse_run_without_best(path, weights)
    if not weights.is_file():
        raise UsageError(
            f"MODEL {path}: holds neither {WEIGHTS_FILE} nor {CONFIG_FILE} with {ONNX_FILE}; "
            "give a checkpoint (.safetensors or its folder) or an export folder"
        )
    return _torch_model(weights, value, config, recipe, chain, source, way)


def _refuse_torchscript(path: Path, weights: Path) -> None:
    """A TorchScript export (``model.pt``, or a folder holding only it) is named as one, not read as damaged weights."""
    script = path / TORCHSCRIPT_FILE if path.is_dir() else path
    if (not weights.is_file() or weights == script) and is_torchscript(script):
        graph = script.with_suffix(".onnx")  # model.int8.pt's graph is model.int8.onnx
        instead = (
            f"give {graph}, the ONNX graph exported beside it"
            if graph.is_file() and is_export_folder(graph.parent)
            else "give the checkpoint it was exported from, or export that with --format onnx and give the export folder"
        )
        raise UsageError(f"MODEL {path}: a TorchScript export, which predict does not run; {instead}")


def _check_onnx_way(path: Path, way: TorchWay) -> None:
    """Refuse device, precision or compiling for an ONNX graph, which runs on onnxruntime's CPU as exported."""
    if way.precision != "fp32" or way.compiled or way.device != "cpu":
        raise UsageError(
            f"MODEL {path}: an ONNX graph runs on onnxruntime's CPU as exported; --precision, --compile and "
            "--device apply to PyTorch checkpoints (give the .safetensors file)"
        )


def _export_config(path: Path) -> dict[str, Any] | None:
    """The ``config.json`` of the export folder ``path``, as ``info`` reads it; ``None`` for no export folder."""
    if not is_export_folder(path):
        return None
    config = read_json_object(path / CONFIG_FILE)
    if config is None:  # one holding no JSON object was passed over, to be told the folder holds no config.json
        raise UsageError(f"{path / CONFIG_FILE}: not a readable export config; export the checkpoint again")
    return config


def _check_task(task: str | None) -> str:
    """The head's task; a pre-training model (no classifier) is ``reconstruction`` and scored by its reconstruction error."""
    return RECONSTRUCTION if task in (None, "") or normalise_task(task) == RECONSTRUCTION else str(task)


@dataclass
class _Loaded:
    """A checkpoint loaded for prediction, with the recipe that describes it (official files) and its chain."""

    model: Any
    head: Any
    recipe: Any
    chain: PredictionChain | None
    source: str


def _load_checkpoint(weights: Path, value: str, recipe: Any, chain: PredictionChain | None, source: str) -> _Loaded:
    """The model of ``weights``: biofound metadata, else ``--recipe``'s ``[model]``, else the task's published recipe."""
    from biofound_cli.evaluation.predict import load_for_evaluation

    if recipe is None and not read_metadata(weights).is_biofound:
        from biofound_cli.prediction.official import published_task

        published = published_task(weights, value)
        fields = published.model_fields()
        model, head = load_for_evaluation(weights, **fields)
        logger.info(f"{weights}: an official checkpoint; predicting with the {published.source}")
        return _Loaded(model, head, published.recipe, published.chain, published.source)
    from biofound_cli.prediction.official import recipe_head_task

    section = recipe.model if recipe is not None else None
    fields = {
        "variant": section.variant if section else None,
        "task": recipe_head_task(recipe, source) if section else None,
        "num_classes": section.num_classes if section else None,
    }
    try:
        model, head = load_for_evaluation(weights, **fields, overrides=dict(section.overrides or {}) if section else None)
    except CheckpointError as error:
        if "no biofound metadata" not in error.message:
            raise
        unset = [f"model.{name}" for name, value in fields.items() if value is None]
        raise CheckpointError(
            f"{weights} has no biofound metadata and {source} sets no {', '.join(unset)} to build its model by; set "
            f"{'it' if len(unset) == 1 else 'them'} there, or leave --recipe out to use the published chain of its task"
        ) from None
    return _Loaded(model, head, recipe, chain, source)


def _chain_facts(chain: PredictionChain | None) -> tuple[list[str] | None, list[str]]:
    """The channels and class names an official file's recipe gives (a biofound checkpoint records its own)."""
    from biofound_cli.signals.chain import output_channel_names

    if chain is None:
        return None, []
    return output_channel_names(chain.config.channels, chain.config.montage), list(chain.corpus_cls(chain.options).label_names)


def _channels_to_feed(head: Any, trained: list[str] | None, recipe_channels: list[str] | None) -> Any:
    """The channels the model is fed: those it was trained on, or for LUNA those a recipe's chain gives.

    LUNA places every channel by its electrode position, so a recipe naming other channels (the
    recordings of another montage) is taken at its word; the other families take their own channels only.
    """
    if not trained or not recipe_channels or not head.model_family.uses_channel_locations:
        return trained or recipe_channels
    return recipe_channels


def _say_channels_fed(trained: list[str] | None, fed: list[str] | None, source: str) -> None:
    """Say that LUNA is fed other channels than it was trained on, once each is placed (a channel without a
    position is refused first: the line said it was fed those before the refusal)."""
    from biofound_cli.signals.channels import same_channels

    if trained and fed and not same_channels(fed, trained):
        logger.info(
            f"{source} gives {len(fed)} channels ({', '.join(fed)}); the model, trained on "
            f"{len(trained)} ({', '.join(trained)}), is fed those, each placed by its electrode position"
        )


def _torch_model(
    weights: Path,
    value: str,
    config: dict[str, Any] | None,
    recipe: Any,
    chain: PredictionChain | None,
    source: str,
    way: TorchWay,
) -> PredictionModel:
    """A checkpoint on PyTorch, fed as ``evaluate`` feeds it (pre-training models: reconstruction error)."""
    from biofound_cli.models.checkpoints import checkpoint_transform
    from biofound_cli.models.transforms import get_transform

    loaded = _load_checkpoint(weights, value, recipe, chain, source)
    head, metadata = loaded.head, loaded.head.metadata
    task = _check_task(metadata.task or head.task)
    from_recipe = loaded.chain
    recipe_channels, recipe_labels = _chain_facts(from_recipe)
    trained = metadata.ch_names or (config or {}).get("ch_names")
    ch_names = _channels_to_feed(head, trained, recipe_channels)
    transform = get_transform(
        checkpoint_transform(
            head,
            loaded.recipe.data.transform if loaded.recipe and loaded.recipe.data else None,
            loaded.source if loaded.recipe is not None else str(weights),  # without a recipe, the weights are at fault
            doing="predicting",
            set_by='a recipe given with --recipe ([data] transform = "NAME")',
        )
    )
    model = loaded.model.to(way.device).eval()
    if way.compiled:
        from biofound_cli.models.compiled import compile_model

        model = compile_model(model, inference=True)
    # Positions the model was trained with, and those the recipe gives the channels it names (another montage).
    recipe_positions = from_recipe.corpus().channel_positions if from_recipe is not None else None
    positions = {**(metadata.channel_positions or {}), **(recipe_positions or {})}
    try:
        score = _in_way(_torch_scorer(model, head, task, transform, ch_names, positions, weights, way.device), way)
    except DataError as error:
        # A channel the recipe names that LUNA cannot place (an ECG): the recipe's fault, before any recording is
        # read, not a data failure (exit 1) that named no file.
        raise UsageError(f"{loaded.source}: {error.message}") from None
    _say_channels_fed(trained, ch_names, loaded.source)
    labels = _class_names(task, list(metadata.label_names or []) or recipe_labels[: head.num_outputs], head.num_outputs)
    return PredictionModel(
        path=weights,
        runtime=way.runtime,
        task=task,
        label_names=labels,
        output_names=_output_names(task, list(metadata.label_names or [])),
        ch_names=list(ch_names) if ch_names else None,
        sfreq=metadata.sfreq,
        preprocessing=metadata.preprocessing or (config or {}).get("preprocessing"),
        preprocessing_chains=metadata.preprocessing_chains or (config or {}).get("preprocessing_chains") or [],
        score=score,
        n_times=metadata.n_times or (config or {}).get("n_times") or head.n_times,
        window_multiple=head.window_multiple,
        family=head.model_family,
        description=", ".join(
            part
            for part in [f"{metadata.model or head.model_family.name} {head.variant or ''}".strip(), metadata.fine_tuning]
            if part
        ),
        license=metadata.stated_licence,
        recipe_chain=from_recipe,
    )


def _class_names(task: str, given: list[str], n_classes: int) -> list[str]:
    """The classes a model's scores are of: ``given``, then the outputs past them numbered, as evaluate names them
    (:func:`~biofound_cli.metrics.class_names`); none for regression and reconstruction.

    A regression head's ``num_classes`` counts its outputs, not classes: summary.json listed class "0".
    A head of more outputs than named classes (``model.num_classes = 4`` on 3) had every column numbered.
    """
    return [] if task in (RECONSTRUCTION, "regression") else class_names(given[:n_classes], n_classes)


def _output_names(task: str, given: list[str]) -> list[str]:
    """A regression head's output names as recorded (``label_names``); none for any other head."""
    return [str(name) for name in given] if task == "regression" else []


def _torch_scorer(
    model: Any, head: Any, task: str, transform: Any, ch_names: Any, positions: dict[str, Any], weights: Path, device: str
) -> Callable[[np.ndarray], np.ndarray]:
    """Windows → probabilities (or predictions, or reconstruction errors), through the training objective."""
    import torch

    from biofound_cli.training.evaluate import scores_from_logits
    from biofound_cli.training.objectives import Objective, channel_inputs

    if head.model_family.uses_channel_locations and not ch_names:
        raise UsageError(
            f"{weights}: the checkpoint does not name its channels, which LUNA needs; pass --recipe with [preprocess] channels"
        )
    locations, indices = channel_inputs(head.model_family, task, ch_names or [], positions)
    if task == RECONSTRUCTION:
        from biofound_cli.prediction.reconstruction import reconstruction_scorer

        return reconstruction_scorer(model, head.family, transform, locations=locations, channel_indices=indices, device=device)
    objective = Objective(head.family, task, transform=transform, channel_locations=locations)

    def score(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            result = objective(model, {"x": torch.from_numpy(x).to(device)}, training=False)
        assert result.logits is not None  # a classifier's forward always gives logits
        return scores_from_logits(task, result.logits.float().cpu())

    return score


def _in_way(score: Callable[[np.ndarray], np.ndarray], way: TorchWay) -> Callable[[np.ndarray], np.ndarray]:
    """``score`` under bf16 autocast where asked; ``score`` itself in fp32."""
    if way.precision == "fp32":
        return score
    import torch

    device_type = torch.device(way.device).type
    if device_type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        logger.warning(
            f"--precision bf16: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bfloat16 arithmetic "
            "(AVX512-BF16 or AMX), so bf16 runs slower than fp32 here; leave --precision out"
        )

    def scored(x: np.ndarray) -> np.ndarray:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return score(x)

    return scored


def _onnx_model(folder: Path, config: dict[str, Any], graph: Path) -> PredictionModel:
    """An export folder's graph on onnxruntime; an int8 graph also runs the float ``model.onnx`` for agreement."""
    task = _check_task(config.get("task"))
    if task == RECONSTRUCTION:
        # config.json names the checkpoint; where it is still there, the command that runs it.
        source = config.get("source_checkpoint")
        named = f" (`biofound predict {source} RECORDINGS --out DIR`)" if source and Path(source).is_file() else ""
        raise UsageError(
            f"{graph} is a pre-training graph; predict its reconstruction error with the checkpoint it was exported from{named}"
        )
    has_reference = graph.name != ONNX_FILE and (folder / ONNX_FILE).is_file()
    reference = _onnx_scorer(folder, folder / ONNX_FILE, config, task) if has_reference else None
    # "num_outputs": the name earlier exports gave the number of classes.
    n_classes = int(config.get("num_classes", config.get("num_outputs")) or 0)
    labels = _class_names(task, list(config.get("label_names") or []), n_classes)
    return PredictionModel(
        path=graph,
        runtime="onnxruntime",
        task=task,
        label_names=labels,
        output_names=_output_names(task, list(config.get("label_names") or [])),
        ch_names=config.get("ch_names"),
        sfreq=config.get("sfreq"),
        preprocessing=config.get("preprocessing"),
        preprocessing_chains=config.get("preprocessing_chains") or [],
        score=_onnx_scorer(folder, graph, config, task),
        n_times=config.get("n_times"),
        description=", ".join(
            part
            for part in [
                f"{config.get('model', '')} {config.get('variant') or ''}".strip(),
                config.get("fine_tuning"),
            ]
            if part
        ),
        license=(config.get("license") or {}).get("name"),
        reference=reference,
        reference_name=ONNX_FILE if reference is not None else "",
        family=FAMILIES.get(str(config.get("family"))),
        exported_from=config.get("source_checkpoint"),
    )


def _onnx_scorer(folder: Path, graph: Path, config: dict[str, Any], task: str) -> Callable[[np.ndarray], np.ndarray]:
    """Windows → scores through ``graph`` on onnxruntime; the normalisation runs before the graph, as exported."""
    import torch

    from biofound_cli.models.transforms import get_transform
    from biofound_cli.training.evaluate import scores_from_logits

    try:
        import onnxruntime
    except ImportError:
        raise UsageError(
            f"MODEL {folder}: running {graph.name} needs onnxruntime; `pip install 'biofound[export]'`, "
            "or predict with the checkpoint the folder was exported from"
        ) from None
    try:
        session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types (InvalidArgument, InvalidProtobuf, Fail)
        raise DataError(
            f"{graph}: not a readable ONNX graph ({reader_failure(graph, error)}); export the checkpoint again"
        ) from None
    input_names = [item.name for item in session.get_inputs()]
    transform = get_transform(str((config.get("normalisation") or {}).get("name") or "none"))
    locations = np.asarray(config.get("channel_locations") or [], dtype=np.float32)
    if "channel_locations" in input_names and locations.size == 0:
        raise UsageError(
            f"{folder / CONFIG_FILE}: the graph takes channel_locations but the config lists none; export the checkpoint again"
        )

    def score(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            normalised = transform(torch.from_numpy(x).float()).numpy()
        feeds = {"x": normalised}
        if "channel_locations" in input_names:
            feeds["channel_locations"] = np.ascontiguousarray(np.broadcast_to(locations, (len(x), *locations.shape)))
        (logits,) = session.run(None, feeds)
        return scores_from_logits(task, torch.from_numpy(np.asarray(logits)))

    return score
