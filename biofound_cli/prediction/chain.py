"""Which preprocessing chain new recordings go through: the one recorded with the model.

A model trained by biofound carries the chain its training shards were written with (corpus
reader, its options and every :class:`~biofound_cli.signals.chain.ChainConfig` number); a
recipe's ``[preprocess]`` section supplies or overrides it (official checkpoints record none).
The chain is then pinned to the model: it picks the model's channels by name (extra ones are
dropped, missing ones skip the recording with their names) and resamples to the model's rate.
For a recording that already matches, both are the identity, so the windows are the ones
``preprocess`` made.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

from biofound_cli.corpora import get_corpus
from biofound_cli.corpora.base import Corpus
from biofound_cli.errors import RecipeError, UsageError
from biofound_cli.plural import first_few
from biofound_cli.recipes.base import Section
from biofound_cli.signals.chain import ADMISSION_SETTINGS, ChainConfig, output_channel_names
from biofound_cli.signals.channels import same_channels
from biofound_cli.signals.montage import MONTAGES
from biofound_cli.store.preprocess_plan import settings_differences, stored_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionChain:
    """The corpus reader, its options and the chain a recording is preprocessed with."""

    corpus_cls: type[Corpus]
    options: Section | None
    config: ChainConfig
    origin: str
    """``"model"``, or the recipe file it came from (the published recipe of an official file's task), named in messages."""
    window_unset: bool = False
    """A recipe's chain that names no ``window_seconds`` (nor ``stride_seconds``): the model's window is cut, as its
    rate is taken, not the corpus's default (a LUNA checkpoint of 880-sample windows was refused 5-s ones the
    recipe never named)."""

    @property
    def options_dict(self) -> dict[str, Any]:
        """The options as plain values (what a worker process rebuilds the reader from)."""
        return self.options.model_dump(mode="json") if self.options is not None else {}

    def corpus(self) -> Corpus:
        """A reader with these options, less those describing the training data (``Corpus.training_data_options`` and
        the options of its official splits, ``Corpus.official_split_options``).

        New recordings are in no labels CSV or split of the training data: a reader keeping the
        training ``labels_csv`` looked every new file up in it and refused the folder ("listed
        file(s) not found under the root"), and one keeping ``split_by_repetition`` warned of
        every repetition the folder lacks, advice meant for ``preprocess``.
        """
        options = self.options
        if options is not None:
            names = {*self.corpus_cls.training_data_options, *self.corpus_cls.official_split_options.values()}
            emptied = {name: _empty(getattr(options, name)) for name in names}
            options = options.model_copy(update=emptied)
        return self.corpus_cls(options)


def _empty(value: Any) -> Any:
    """An option's value with nothing in it: an empty list or table, 0 (``ts``'s ``val_fraction``), else None (unset)."""
    return type(value)() if isinstance(value, (list, dict, int, float)) else None


def recipe_chain(recipe: Any, source: str) -> PredictionChain | None:
    """The chain of ``recipe``'s ``[preprocess]`` section, checked, or ``None`` when the recipe sets nothing there;
    not yet pinned to a model (:func:`resolve_prediction_chain`).

    ``predict``'s check of a recipe (``--recipe``, an official file's published one), run once by
    :func:`~biofound_cli.recipes.loading.load_checked`, which says its warnings (a stride longer than the
    window) once it passes and prints a refusal alone.

    Parameters
    ----------
    recipe : Recipe | None
        ``--recipe``, or the published recipe of an official file's task.
    source : str
        The recipe file, named in messages.

    Raises
    ------
    RecipeError
        When the chain cannot run, or the section sets fields but no corpus.
    """
    from biofound_cli.store.preprocess_config import check_preprocess

    section = recipe.preprocess if recipe is not None else None
    if section is None or not section.model_fields_set:
        return None
    if section.corpus is None:
        # Passed over, a [preprocess] of channels or a window alone left the model's chain to run in its place.
        named = ", ".join(sorted(section.model_fields_set))
        raise RecipeError(
            [
                f"{source}: preprocess.corpus: required, as predict runs the [preprocess] section ({named}) in place "
                "of the model's chain; set corpus (the reader of the recordings, as `biofound preprocess` takes it), "
                "or leave [preprocess] out to use the model's chain"
            ]
        )
    corpus, config = check_preprocess(section, source, require_paths=False)
    window_unset = not {"window_seconds", "stride_seconds"} & section.model_fields_set
    return PredictionChain(type(corpus), corpus.options, config, source, window_unset)


def resolve_prediction_chain(
    preprocessing: dict[str, Any] | None,
    *,
    from_recipe: PredictionChain | None = None,
    ch_names: list[str] | None = None,
    sfreq: float | None = None,
    n_times: int | None = None,
    window_multiple: int = 1,
    model_name: str = "MODEL",
    recorded_chains: list[dict[str, Any]] | None = None,
    other_channels_fix: str = "",
) -> PredictionChain:
    """The recipe's ``[preprocess]`` if given, else the model's recorded chain, pinned to the model.

    Parameters
    ----------
    preprocessing : dict | None
        The chain recorded with the model (checkpoint metadata or export ``config.json``).
    from_recipe : PredictionChain | None
        The chain of ``--recipe`` (or of an official file's published recipe): it wins.
    ch_names, sfreq : optional
        The model's channels and rate: the chain picks those channels and resamples to that rate.
    n_times : int | None
        The model's window in samples: a recipe naming no window cuts it (at the model's rate), and a chain
        whose windows differ is refused.
    window_multiple : int
        Any window the model takes is a multiple of this many samples (its patch): a chain whose
        windows are not is refused (the check for a model that takes several lengths).
    model_name : str
        The model, named in messages.
    recorded_chains : list of dict | None
        Without ``preprocessing``: the chains of training data made by several, as the model records
        them (:attr:`~biofound_cli.models.checkpoints.CheckpointMetadata.preprocessing_chains`), named
        in the error that asks for ``--recipe``.
    other_channels_fix : str
        What a recipe giving other channels than the model's is told to do
        (:attr:`~biofound_cli.prediction.model.PredictionModel.advice`); empty: set the model's there.

    Raises
    ------
    UsageError, RecipeError
        When neither the model nor the recipe gives a chain, the chain cannot run, or its windows are
        not the model's.
    """
    if from_recipe is not None:
        corpus_cls, options, config, origin = from_recipe.corpus_cls, from_recipe.options, from_recipe.config, from_recipe.origin
    elif preprocessing:
        corpus_cls = get_corpus(str(preprocessing.get("corpus")))
        raw_options = preprocessing.get("options") or {}
        options = corpus_cls.Options.model_validate(raw_options) if corpus_cls.Options is not None else None
        config, origin = ChainConfig.from_json_dict(preprocessing), "model"
    else:
        raise _no_chain(model_name, recorded_chains or [])
    pinned = _pinned(config, ch_names, sfreq)
    if from_recipe is not None and from_recipe.window_unset and n_times and pinned.sfreq:
        seconds = n_times / float(pinned.sfreq)
        pinned = dataclasses.replace(pinned, window_seconds=seconds, stride_seconds=seconds)
    _check_channels(pinned, ch_names, origin, model_name, other_channels_fix)
    _check_rate(pinned, sfreq, origin, model_name)
    _check_window(pinned, n_times, window_multiple, origin, model_name)
    if from_recipe is not None and preprocessing:
        _warn_of_other_steps(_pinned(ChainConfig.from_json_dict(preprocessing), ch_names, sfreq), pinned, origin, model_name)
    return PredictionChain(corpus_cls, options, pinned, origin)


def _pinned(config: ChainConfig, ch_names: list[str] | None, sfreq: float | None) -> ChainConfig:
    """``config`` picking the model's channels (by name, or the montage that gives them) at the model's rate."""
    changes: dict[str, Any] = {}
    if config.channels is None and config.montage == "none" and ch_names:
        changes["channels"] = tuple(ch_names)
    if config.montage == "auto" and ch_names:
        # The model takes the channels of one montage (a packed file holds one): a recording the reader gives
        # another (TUEG's files without ear electrodes) is skipped naming those it lacks, never fed other channels.
        changes["montage"] = next(
            (name for name in MONTAGES if same_channels(output_channel_names(None, name), ch_names)), "auto"
        )
    if config.sfreq is None and sfreq:
        changes["sfreq"] = float(sfreq)
    return dataclasses.replace(config, **changes)


_STEPS = tuple(
    item.name
    for item in dataclasses.fields(ChainConfig)
    if item.name not in {"window_seconds", "stride_seconds", "channels", *ADMISSION_SETTINGS}
)
"""The chain's settings that shape what a window holds (filters, rate, montage, units, normalisation, ...), those a
recipe's chain is compared on with the model's. The window is checked, the channels pinned, and the admission
settings pick recordings, not their windows' contents."""


def _warn_of_other_steps(recorded: ChainConfig, given: ChainConfig, origin: str, model_name: str) -> None:
    """Warn, in one line, of each step of the chain recorded with the model that the recipe's chain changes or drops.

    A recipe's ``[preprocess]`` replaces the recorded chain whole: one for recordings of another montage
    (``corpus = "edf"``) dropped TUAB's band-pass and notch without a word, so the model saw inputs unlike its
    training data.
    """
    changed = [
        f"{name} {_said(getattr(recorded, name))} vs {_said(getattr(given, name))}"
        for name in _STEPS
        if getattr(recorded, name) != getattr(given, name)
    ]
    if changed:
        logger.warning(
            f"{origin}: its [preprocess] changes the chain {model_name} was trained with (trained vs here: "
            f"{', '.join(changed)}), so the model sees inputs unlike its training data; to keep a step, set it in "
            f"that [preprocess] as the model's chain has it (biofound info {model_name} shows the chain)"
        )


def _said(value: Any) -> str:
    """A chain setting as a message says it: ``none`` for a step switched off, a list's items joined."""
    if value is None or value == ():
        return "none"
    if isinstance(value, tuple):
        return "[" + ", ".join(f"{item:g}" if isinstance(item, float) else str(item) for item in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _no_chain(model_name: str, chains: list[dict[str, Any]]) -> UsageError:
    """Why the model records no chain, and what ``--recipe`` to pass: how its training chains differ, when it records them."""
    if len(chains) < 2:
        return UsageError(
            f"{model_name} records no preprocessing chain (an official checkpoint, or one trained on packed files that "
            "record none: packed before biofound recorded it, or not by `biofound pack`); pass --recipe with the "
            "[preprocess] section its training data were preprocessed with (biofound recipes ls lists the shipped ones)"
        )
    first = stored_settings(json.dumps(chains[0]))
    differences = "; ".join(settings_differences(first, stored_settings(json.dumps(other))) for other in chains[1:])
    corpora = ", ".join(dict.fromkeys(str(chain.get("corpus")) for chain in chains))
    return UsageError(
        f"{model_name} records no preprocessing chain: its training windows were made by {len(chains)} chains, shards "
        f"of each packed together ({differences}), so none is the model's; pass --recipe with the [preprocess] section "
        f"of the preprocess run whose corpus the recordings you predict are like (corpus {corpora})"
    )


def _where(origin: str, model_name: str) -> str:
    """Whose chain a message is about: the recipe file, or the one recorded with the model."""
    return f"{origin}: " if origin != "model" else f"{model_name}: the chain recorded with it has "


def _check_channels(
    config: ChainConfig, ch_names: list[str] | None, origin: str, model_name: str, other_channels_fix: str = ""
) -> None:
    """Refuse, before any recording is read, windows of other channels than the model's, in its order.

    Another count is a shape error per batch; the same count of other channels, or of the same
    ones in another order, would feed each model input another electrode without a word.
    """
    given = output_channel_names(config.channels, config.montage)
    if not ch_names or given is None or same_channels(given, ch_names):
        return
    setting = f'preprocess.montage = "{config.montage}"' if not config.channels else "preprocess.channels"
    fix = (
        (other_channels_fix or "set preprocess.channels (or montage) to the model's there")
        if origin != "model"
        else "pass --recipe that sets them"
    )
    if len(given) != len(ch_names):
        raise UsageError(
            f"{_where(origin, model_name)}{setting}, {len(given)} channels ({first_few(given, 4)}), "
            f"but {model_name} takes {len(ch_names)} ({first_few(ch_names, 4)}); {fix}"
        )
    raise UsageError(
        f"{_where(origin, model_name)}{setting}, the channels {', '.join(given)}, but {model_name} takes "
        f"{', '.join(ch_names)} in that order; {fix}, in that order"
    )


def _check_rate(config: ChainConfig, sfreq: float | None, origin: str, model_name: str) -> None:
    """Refuse, before any recording is read, windows resampled to another rate than the model's.

    The window check counts samples: a recipe at another rate whose window holds as many (its
    own advice, computed at the recipe's rate, led there) fed the model a time scale it never saw.
    """
    if sfreq is None or config.sfreq is None or abs(float(config.sfreq) - float(sfreq)) <= 1e-6 * float(sfreq):
        return
    fix = f"set preprocess.sfreq = {sfreq:g} there" if origin != "model" else f"pass --recipe with preprocess.sfreq = {sfreq:g}"
    raise UsageError(
        f"{_where(origin, model_name)}preprocess.sfreq = {config.sfreq:g}, but {model_name} was trained on windows "
        f"at {sfreq:g} Hz; {fix}"
    )


def _check_window(config: ChainConfig, n_times: int | None, multiple: int, origin: str, model_name: str) -> None:
    """Refuse, before any recording is read, windows the model cannot take (a shape error per batch):
    another length than its own, or for a model that takes several, one that is no multiple of its patch."""
    misfit = config.window_misfit(n_times, multiple)
    if misfit is None:
        return
    samples, takes, seconds = misfit
    fix = (
        f"set preprocess.window_seconds there to {seconds}"
        if origin != "model"
        else f"pass --recipe with preprocess.window_seconds = {seconds}"
    )
    raise UsageError(
        f"{_where(origin, model_name)}preprocess.window_seconds = {config.window_seconds:g}, "
        f"{samples}-sample windows at {config.sfreq:g} Hz, but {model_name} takes {takes}; {fix}"
    )


def admission_changes(settings: list[str]) -> dict[str, Any]:
    """The fields ``predict --set preprocess.KEY=VALUE`` changes: keys of :data:`ADMISSION_SETTINGS`, checked, and
    ``options.NAME`` for the option that picks a reader's files, checked by :func:`with_admission_settings`.

    ``predict`` checks them before the model or a ``--recipe`` is read, so a key it does not set is refused as
    such, not passed over until a recipe whose window is not the model's is refused first. Which option picks
    the files is the reader's (:attr:`~biofound_cli.corpora.base.Corpus.file_option`), known once the chain is.

    Parameters
    ----------
    settings : list of str
        The ``--set`` arguments.

    Raises
    ------
    UsageError
        For another key, a value the recipe field refuses (worded as ``validate`` words it), or a malformed argument.
    """
    from biofound_cli.recipes.loading import parse_override, validate_data
    from biofound_cli.recipes.schema import Recipe

    changes: dict[str, Any] = {}
    for text in settings:
        keys, value = parse_override(text)
        if len(keys) == 3 and keys[:2] == ["preprocess", "options"]:
            changes[f"options.{keys[2]}"] = value
            continue
        if len(keys) != 2 or keys[0] != "preprocess" or keys[1] not in ADMISSION_SETTINGS:
            raise UsageError(f"--set {text}: {_SETS_ONLY}")
        checked = validate_data(Recipe, {"preprocess": {keys[1]: value}}, f"--set {text.strip()}").preprocess
        changes[keys[1]] = getattr(checked, keys[1])
    return changes


_THE_REST = (
    "the rest of the chain is the model's, so another one is a --recipe with a [preprocess] section (edit that file; "
    "--set does not)"
)
_SETS_ONLY = (
    f"predict sets only {', '.join(f'preprocess.{key}' for key in ADMISSION_SETTINGS)} (which recordings are used) "
    f"and the option of the model's reader that says which files are recordings (such as preprocess.options.pattern); "
    f"{_THE_REST}"
)


def with_admission_settings(chain: PredictionChain, changes: dict[str, Any]) -> PredictionChain:
    """``chain`` with the fields :func:`admission_changes` returned for ``predict --set`` applied.

    Parameters
    ----------
    chain : PredictionChain
        The model's (or the recipe's) chain.
    changes : dict
        Field name to value, from :func:`admission_changes`; ``options.NAME`` for a reader's option.

    Raises
    ------
    UsageError, RecipeError
        For an option other than the reader's :attr:`~biofound_cli.corpora.base.Corpus.file_option`, or a value
        its options refuse (worded as ``preprocess`` words it).
    """
    from biofound_cli.recipes.preprocess import PreprocessSection
    from biofound_cli.store.preprocess_config import resolve_options

    options = {key.removeprefix("options."): value for key, value in changes.items() if key.startswith("options.")}
    config = {key: value for key, value in changes.items() if not key.startswith("options.")}
    for name, value in options.items():
        file_option = chain.corpus_cls.file_option
        if name != file_option:
            sets = f"only preprocess.options.{file_option} (which files are recordings)" if file_option else "none"
            raise UsageError(
                f"--set preprocess.options.{name}={value}: of the {chain.corpus_cls.name} reader's options predict sets "
                f"{sets}; {_THE_REST}"
            )
        section = PreprocessSection(corpus=chain.corpus_cls.name, options={**chain.options_dict, name: value})
        chain = dataclasses.replace(chain, options=resolve_options(section, chain.corpus_cls, f"--set preprocess.options.{name}"))
    return dataclasses.replace(chain, config=dataclasses.replace(chain.config, **config)) if config else chain
