"""Named model variants and the one factory that builds them (timm-style).

Every fact about a published variant — constructor arguments, the input it expects, where its
weights live and under which licence — is written here once; ``biofound models``, ``download``,
``finetune`` and ``export`` read it from here.

The model classes are imported lazily, by name, so that listing variants (and
``import biofound_cli.models``) needs neither torch-heavy imports nor every model file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import importlib
import inspect
import math
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from biofound_cli.errors import UsageError, did_you_mean, shown, unknown_name
from biofound_cli.plural import plural
from biofound_cli.tasks import RECONSTRUCTION, TASKS, head_size_problem, normalise_task

if TYPE_CHECKING:
    from torch import nn

    from biofound_cli.models.family import ModelFamily

LICENSE = "CC BY-ND 4.0"


FAMILY_MODULES: dict[str, str] = {
    "femba": "biofound_cli.models.femba",
    "luna": "biofound_cli.models.luna",
    "tinymyo": "biofound_cli.models.tinymyo",
}
"""Family key → the model file that declares its :class:`~biofound_cli.models.family.ModelFamily`
as ``FAMILY``. A new family is one new file plus one line here (and its variants below)."""


class _Families(Mapping[str, "ModelFamily"]):
    """``FAMILIES[key]`` imports the family's model file only when it is first asked for."""

    def __getitem__(self, key: str) -> ModelFamily:
        if key not in FAMILY_MODULES:
            raise KeyError(key)
        try:
            module = importlib.import_module(FAMILY_MODULES[key])
        except ModuleNotFoundError as error:
            if error.name != FAMILY_MODULES[key]:
                raise
            raise UsageError(
                f"model family {key} is not available in this installation ({FAMILY_MODULES[key]} is missing)"
            ) from None
        return module.FAMILY

    def __contains__(self, key: object) -> bool:
        return key in FAMILY_MODULES

    def __iter__(self) -> Iterator[str]:
        return iter(FAMILY_MODULES)

    def __len__(self) -> int:
        return len(FAMILY_MODULES)


FAMILIES: Mapping[str, ModelFamily] = _Families()


@dataclasses.dataclass(frozen=True)
class ModelVariant:
    """One published model variant.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"luna-base"``.
    family : str
        Key into :data:`FAMILIES` (``femba``, ``luna``, ``tinymyo``).
    kwargs : dict
        Constructor arguments of the pre-training model (``num_classes = 0``).
    finetune_kwargs : dict
        Arguments that differ when the model is built for a supervised task (e.g. LUNA's drop path).
    n_channels : int | None
        Channels the model expects; ``None`` for LUNA, which takes any montage.
    n_times : int
        Samples per window.
    sfreq : float
        Sampling rate (Hz) of the pre-training data.
    hub_repo : str
        Hugging Face repository of the official weights.
    hub_mirrors : tuple of str
        Other repositories that host the same weights.
    hub_file : str | None
        File of the pre-trained weights inside ``hub_repo``; ``None`` where it is not published.
    hub_task_files : dict
        Fine-tuned checkpoints known by name (downstream data set → file in ``hub_repo``).
    license : str
        Licence of the official weights.
    transform : str
        Input normalisation for pre-training (a name for :func:`biofound_cli.models.transforms.get_transform`).
    finetune_transform : str
        Input normalisation for fine-tuning.
    description : str
        One line for ``biofound models``.
    """

    name: str
    family: str
    kwargs: dict[str, Any]
    n_channels: int | None
    n_times: int
    sfreq: float
    hub_repo: str
    transform: str
    finetune_transform: str
    description: str
    finetune_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    hub_mirrors: tuple[str, ...] = ()
    hub_file: str | None = None
    hub_task_files: dict[str, str] = dataclasses.field(default_factory=dict)
    license: str = LICENSE

    @property
    def model_name(self) -> str:
        """The upstream class name (``FEMBA``, ``LUNA``, ``TinyMyo``)."""
        return FAMILIES[self.family].name

    def default_transform(self, task: str | None = RECONSTRUCTION) -> str:
        """The input normalisation the official recipe uses for ``task`` (pre-training, or any fine-tuning).

        Parameters
        ----------
        task : str | None
            The task name; ``reconstruction`` (or its older spellings) gives ``transform``, any other
            task or None gives ``finetune_transform``.
        """
        return self.transform if task is not None and normalise_task(task) == RECONSTRUCTION else self.finetune_transform

    def constructor_kwargs(self, task: str = RECONSTRUCTION, num_classes: int | None = None) -> dict[str, Any]:
        """Constructor arguments for ``task`` (see :func:`create_model`).

        Parameters
        ----------
        task : str
            The task to build for (``reconstruction`` or a downstream task).
        num_classes : int | None
            Size of the head, required for a downstream task (at least 1, 2 for a multi-class head:
            :func:`~biofound_cli.tasks.head_size_problem`); None (or 0) for ``reconstruction``.
        """
        family = FAMILIES[self.family]
        task = normalise_task(task)
        if task not in TASKS:
            raise UsageError(unknown_name("task", task, TASKS))
        if task not in family.tasks:
            raise UsageError(f"{self.name} cannot be built for task {task!r}; it supports: {', '.join(family.tasks)}")
        if task == RECONSTRUCTION:
            if num_classes not in (None, 0):
                raise UsageError(f"task {RECONSTRUCTION!r} builds a reconstruction head; drop num_classes={num_classes}")
            return {**self.kwargs, **family.task_kwargs(task, None)}
        problem = head_size_problem(task, num_classes)
        if problem:
            raise UsageError(problem)
        return {**self.kwargs, **self.finetune_kwargs, "num_classes": num_classes, **family.task_kwargs(task, num_classes)}


def _femba(name: str, num_blocks: int, embed_dim: int, task_files: dict[str, str] | None = None) -> ModelVariant:
    return ModelVariant(
        name=name,
        family="femba",
        kwargs={
            "seq_length": 1280,
            "num_channels": 22,
            "exp": 4,
            "num_classes": 0,
            "num_blocks": num_blocks,
            "embed_dim": embed_dim,
        },
        n_channels=22,
        n_times=1280,
        sfreq=256.0,
        hub_repo="thorir/FEMBA",
        # Upstream's README later moved the links to the PulpBio organisation.
        hub_mirrors=("PulpBio/FEMBA",),
        # The FEMBA repository holds fine-tuned task folders (TUAB/TUAR/TUSL); the names of
        # pre-trained-only files are not published, so hub_file stays unknown.
        hub_task_files=task_files or {},
        transform="femba-affine",
        finetune_transform="femba-affine",
        description=f"bidirectional Mamba, {num_blocks} blocks, embed {embed_dim}, 22 TCP bipolar channels",
    )


def _luna(name: str, embed_dim: int, num_queries: int, depth: int, hub_file: str) -> ModelVariant:
    return ModelVariant(
        name=name,
        family="luna",
        kwargs={
            "patch_size": 40,
            "embed_dim": embed_dim,
            "num_heads": 2,
            "depth": depth,
            "num_queries": num_queries,
            "drop_path": 0.0,
            "num_classes": 0,
        },
        finetune_kwargs={"drop_path": 0.1},
        n_channels=None,
        n_times=1280,
        sfreq=256.0,
        hub_repo="thorir/LUNA",
        hub_mirrors=("PulpBio/LUNA",),
        hub_file=hub_file,
        transform="zscore",
        finetune_transform="zscore",
        description=f"channel-unifying queries ({num_queries}×{embed_dim}), {depth} rotary blocks, any montage",
    )


_VARIANTS: tuple[ModelVariant, ...] = (
    _femba("femba-tiny", 2, 35),
    _femba("femba-base", 12, 35, {"tuar": "TUAR/base.safetensors"}),
    _femba("femba-large", 4, 79),
    _femba("femba-huge", 20, 79),
    _luna("luna-base", 64, 4, 8, "Base/LUNA_base.safetensors"),
    _luna("luna-large", 96, 6, 10, "Large/LUNA_large.safetensors"),
    _luna("luna-huge", 128, 8, 24, "Huge/LUNA_huge.safetensors"),
    ModelVariant(
        name="tinymyo",
        family="tinymyo",
        kwargs={
            "img_size": 1000,
            "patch_size": 20,
            "in_chans": 16,
            "embed_dim": 192,
            "n_layer": 8,
            "n_head": 3,
            "mlp_ratio": 4,
            "qkv_bias": True,
            "attn_drop": 0.1,
            "proj_drop": 0.1,
            "drop_path": 0.1,
            "num_classes": 0,
        },
        n_channels=16,
        n_times=1000,
        sfreq=2000.0,
        hub_repo="MatteoFasulo/TinyMyo",
        hub_mirrors=("PulpBio/TinyMyo",),
        hub_task_files={"uci-emg": "UCI_EMG/base.safetensors"},
        transform="minmax",
        # Fine-tuning data are z-scored per recording during preprocessing, not in the model.
        finetune_transform="none",
        description="8-layer transformer over 20-sample EMG patches, 16 channels",
    ),
)

VARIANTS: dict[str, ModelVariant] = {variant.name: variant for variant in _VARIANTS}


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered variants matching a shell-style ``pattern`` (e.g. ``"luna*"``).

    Parameters
    ----------
    pattern : str
        An ``fnmatch`` pattern, matched in lower case; ``*`` lists every variant.
    """
    return [name for name in VARIANTS if fnmatch.fnmatchcase(name, pattern.lower())]


def variants_of(family: str) -> list[str]:
    """Names of the registered variants of ``family`` (a family key), smallest first as registered.

    Parameters
    ----------
    family : str
        A family key (``femba``, ``luna``, ``tinymyo``).
    """
    return [name for name, variant in VARIANTS.items() if variant.family == family]


def get_variant(name: str) -> ModelVariant:
    """The :class:`ModelVariant` called ``name``.

    Parameters
    ----------
    name : str
        A registered variant name, in any case.

    Raises
    ------
    UsageError
        If there is no such variant; the message lists the registered names.
    """
    try:
        return VARIANTS[name.lower()]
    except KeyError:
        raise UsageError(unknown_name("model", name, VARIANTS, listed_by="`biofound models`")) from None


def family_of(model_or_name: nn.Module | str) -> ModelFamily:
    """The :class:`~biofound_cli.models.family.ModelFamily` of a model instance or of a family / class name.

    Parameters
    ----------
    model_or_name : nn.Module | str
        A model instance (matched by its class name), or a family key or upstream class name.
    """
    if isinstance(model_or_name, str):
        key = model_or_name.lower()
        if key in FAMILY_MODULES:
            return FAMILIES[key]
        for candidate in FAMILY_MODULES:
            if FAMILIES[candidate].name.lower() == key:
                return FAMILIES[candidate]
        raise UsageError(unknown_name("model family", model_or_name, FAMILY_MODULES))
    class_name = type(model_or_name).__name__
    # An instance's own model file is imported already: look there first, so that naming a TinyMyo
    # does not import FEMBA's (whose scan imports torch's compiler, ~1.5 s of CPU).
    for key in sorted(FAMILY_MODULES, key=lambda key: FAMILY_MODULES[key] not in sys.modules):
        if FAMILIES[key].model_class.__name__ == class_name:
            return FAMILIES[key]
    raise UsageError(f"{class_name} is not a biofound model; expected one of: {', '.join(FAMILY_MODULES)}")


def build_model(family: str, constructor_kwargs: dict[str, Any], device: str = "cpu") -> nn.Module:
    """Build a model of ``family`` from explicit constructor arguments (as stored in checkpoints).

    ``device="meta"`` builds without allocating memory (for counting parameters and comparing keys). The
    model's size is not checked here: the recipe checks do that (:func:`check_model_size`) before they build
    the model a recipe asks for; counting builds it twice more on the meta device, work a ``predict`` of a
    checkpoint needs none of.

    Parameters
    ----------
    family : str
        A family key or the upstream class name.
    constructor_kwargs : dict
        Arguments of the model class; unknown names and values of the wrong type are refused.
    device : str
        Where the parameters go: a torch device (``cpu``, ``cuda``) or ``meta``.
    """
    check_constructor_kwargs(family, constructor_kwargs)
    if device == "meta":
        with _on_meta():
            return _construct(family, constructor_kwargs)
    return _construct(family, constructor_kwargs).to(device)


@contextlib.contextmanager
def _on_meta() -> Iterator[None]:
    """torch's meta device, where a model is built for its shapes alone, its initialisers skipped.

    An initialiser (``nn.init.normal_`` of an embedding) on a meta tensor runs torch's Python
    reference kernel, which imports torch's compiler (about 1 s of CPU) into a ``biofound validate``
    of ``model.overrides``; a meta tensor has no values to set.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    class _NoInitialisers(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            first = next(iter((*args, *(kwargs or {}).values())), None)
            if getattr(func, "__module__", None) == "torch.nn.init" and isinstance(first, torch.Tensor) and first.is_meta:
                return first
            return func(*args, **(kwargs or {}))

    with torch.device("meta"), _NoInitialisers():
        yield


MAX_PARAMETERS = 2**32
"""The most parameters and buffer elements a model may have: 16 GiB of float32 weights, 64 GiB to train with AdamW
(weights, gradients, two moments), over 10 000 times the largest published variant."""


def check_model_size(family: str, constructor_kwargs: dict[str, Any], field: str | None = None) -> None:
    """Refuse constructor arguments that build a model of more than :data:`MAX_PARAMETERS` values.

    A finite but absurd size (``mlp_ratio = 1e30``, ``embed_dim = 10**9``) passed the argument checks and
    ended in a traceback of torch's allocator, or of an integer overflow, once the model was built. The count
    is taken on the meta device (no memory), from one and two of the family's blocks
    (:attr:`~biofound_cli.models.family.ModelFamily.depth_argument`).

    Parameters
    ----------
    family : str
        A family key or the upstream class name.
    constructor_kwargs : dict
        Every argument the model is built with.
    field : str | None
        The recipe field that set the arguments (``model.overrides``), which the message tells the user to
        change; ``None`` for a checkpoint's record (its ``constructor_kwargs``).

    Raises
    ------
    UsageError
        One sentence naming the argument of a wrong name or type (:func:`check_constructor_kwargs`), or the
        arguments that make the model too large.
    """
    check_constructor_kwargs(family, constructor_kwargs, field)
    count = _parameter_count(family, constructor_kwargs)
    if count <= MAX_PARAMETERS:
        return
    defaults = family_of(family).constructor_parameters
    resets = {
        name: _parameter_count(family, {**constructor_kwargs, name: defaults[name].default})
        for name, value in constructor_kwargs.items()
        if name in defaults
        and type(defaults[name].default) in (int, float)
        and type(value) in (int, float)
        and value > defaults[name].default
    }
    # The arguments whose published value alone makes the model fit; else every one that makes it smaller.
    named = [name for name, smaller in resets.items() if smaller <= MAX_PARAMETERS] or [
        name for name, smaller in resets.items() if smaller < count
    ]
    arguments = ", ".join(f"{name} = {constructor_kwargs[name]!r}" for name in named) or "these arguments"
    fix = ", ".join(_where(field, name) for name in named) or _where(field)
    size = "more than 2**63" if math.isinf(count) else f"{count:.3g}"
    raise UsageError(
        f"{family_of(family).name} with {arguments} would have {size} parameters, above the {MAX_PARAMETERS:.3g} "
        f"(16 GiB of float32 weights) a model may have; lower {fix}"
    )


def _where(field: str | None, name: str | None = None) -> str:
    """Where the user changes argument ``name`` (all of them without one): a recipe ``field``, or a checkpoint's record."""
    if field is None:
        return "the checkpoint's constructor_kwargs" + (f" ({name})" if name else "")
    return f"{field}.{name}" if name else field


def _parameter_count(family: str, constructor_kwargs: dict[str, Any]) -> float:
    """Parameters and buffer elements of the model ``constructor_kwargs`` build; ``inf`` past torch's sizes."""
    model_family = family_of(family)
    depth_argument = model_family.depth_argument
    if depth_argument is None:
        depth, builds = 1, [constructor_kwargs]
    else:
        depth = constructor_kwargs.get(depth_argument, model_family.constructor_parameters[depth_argument].default)
        builds = [{**constructor_kwargs, depth_argument: blocks} for blocks in (1, 2)]
    counts = []
    for kwargs in builds:
        try:
            with _on_meta():
                model = _construct(family, kwargs)
        except (RuntimeError, TypeError, OverflowError) as error:
            if "overflow" in str(error).lower():  # a size past int64, as torch says on the meta device
                return math.inf
            raise
        counts.append(sum(t.numel() for t in (*model.parameters(), *model.buffers())))
    return counts[0] + (depth - 1) * (counts[-1] - counts[0])


def _construct(family: str, constructor_kwargs: dict[str, Any]) -> nn.Module:
    """The model class of ``family`` built with ``constructor_kwargs`` on torch's current default device."""
    cls = family_of(family).model_class
    try:
        return cls(**constructor_kwargs)
    except ValueError as error:  # the constructors check their arguments with ValueError
        raise UsageError(f"{cls.__name__} cannot be built with these arguments: {error}") from None


def check_constructor_kwargs(family: str, constructor_kwargs: dict[str, Any], field: str | None = None) -> None:
    """Refuse argument names the model class of ``family`` does not take and values of the wrong type.

    :func:`build_model` runs this before building; ``finetune``'s recipe checks (and so
    ``biofound validate``) run it on ``model.overrides`` before any file is opened.

    Parameters
    ----------
    family : str
        A family key or the upstream class name.
    constructor_kwargs : dict
        Arguments of the model class (some or all of them).
    field : str | None
        The recipe field that set them (``model.overrides``), named in the message; ``None`` for a
        checkpoint's record (its ``constructor_kwargs``).

    Raises
    ------
    UsageError
        One sentence naming the first unknown or wrongly typed argument and what is allowed.
    """
    cls, accepted = family_of(family).model_class, family_of(family).constructor_parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = sorted(set(constructor_kwargs) - set(accepted))
    if unknown and not takes_any:
        allowed = [name for name in accepted if name != "self"]
        # Named as the user set them (model.overrides.n_layr), so the error blames the option or file that did.
        names = ", ".join(f"{field}.{name}" if field else name for name in unknown)
        fix = (len(unknown) == 1 and did_you_mean(unknown[0], allowed)) or f"allowed: {', '.join(allowed)}"
        raise UsageError(f"{cls.__name__} has no {plural(len(unknown), 'argument')} {names}; {fix}")
    for name, value in constructor_kwargs.items():
        problem = _argument_problem(name, value, accepted[name].default) if name in accepted else None
        if problem:
            fix = f"fix {_where(field, name)}"
            raise UsageError(f"{cls.__name__} argument {name} = {shown(value)} {problem}; {fix}")


_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", list: "a list", tuple: "a list"}


def _argument_problem(name: str, value: Any, default: Any) -> str | None:
    """Why constructor argument ``name`` cannot be ``value`` (a clause), or ``None``.

    Every integer argument of the model classes counts something (blocks, heads, channels, samples,
    widths, patch sides), every float is a dropout rate (``*drop*``) or a width ratio: out of range,
    a value built a model without blocks or layers of width 0, or failed later with a traceback.
    ``num_classes`` alone may be 0: the reconstruction head.
    """
    if not _fits_default_type(value, default):
        # In the recipe's words, as the recipe loader says them, not Python's ("is a str but must be a int").
        return f"is not {_KINDS.get(type(default), 'a ' + type(default).__name__)} (e.g. {shown(default)})"
    numbers = [n for n in (value if isinstance(value, (list, tuple)) else [value]) if not isinstance(n, bool)]
    if isinstance(default, float) and "drop" in name:
        return None if all(0 <= n < 1 for n in numbers) else "must be a rate from 0 to below 1"
    if isinstance(default, float):  # inf overflowed int(width * ratio) with a traceback
        return None if all(0 < n < math.inf for n in numbers) else "must be a finite number above 0"
    least = 0 if name == "num_classes" else 1
    if (
        isinstance(default, (int, list, tuple))
        and not isinstance(default, bool)
        and any(isinstance(n, int) and n < least for n in numbers)
    ):
        return f"must be at least {least}" + (" (0 builds the reconstruction head)" if least == 0 else "")
    return None


def _fits_default_type(value: Any, default: Any) -> bool:
    """Whether ``value`` has the type of a constructor argument's default (no default: anything)."""
    if default is inspect.Parameter.empty or default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def create_model(
    name: str,
    *,
    task: str = RECONSTRUCTION,
    num_classes: int | None = None,
    device: str = "cpu",
    **overrides: Any,
) -> nn.Module:
    """Build the registered variant ``name`` for ``task`` with freshly initialised weights.

    Parameters
    ----------
    name : str
        A registered variant (see :func:`list_models`).
    task : str
        One of :data:`TASKS` (:mod:`biofound_cli.tasks`); ``"reconstruction"`` (also spelled
        ``"pretrain"``) gives the pre-training head.
    num_classes : int | None
        Classes (or regression outputs) of the supervised head; required unless ``task="reconstruction"``.
    device : str
        Where to build it; ``"meta"`` allocates nothing.
    **overrides
        Constructor arguments that replace the published ones (e.g. ``in_chans=8``).

    Returns
    -------
    torch.nn.Module
    """
    variant = get_variant(name)
    kwargs = variant.constructor_kwargs(task, num_classes)
    kwargs.update(overrides)
    return build_model(variant.family, kwargs, device=device)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (only those with ``requires_grad`` if ``trainable_only``).

    Parameters
    ----------
    model : nn.Module
        The model.
    trainable_only : bool
        Count only the parameters that require gradients.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
