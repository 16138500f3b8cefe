"""The ``[preprocess]`` section resolved into what a run needs: the corpus, its options, the signal chain.

Each setting of the chain comes from the recipe, else from the corpus's ``defaults``, else from
:data:`BUILTIN_DEFAULTS`. :func:`check_preprocess` is every check ``preprocess`` runs before any
work; ``biofound validate`` and ``biofound predict`` run it too.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from biofound_cli.corpora import get_corpus
from biofound_cli.corpora.base import Corpus
from biofound_cli.errors import RecipeError, UnusableRecording, UsageError
from biofound_cli.recipes.base import Section
from biofound_cli.recipes.loading import format_validation_error
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.signals.chain import ChainConfig, samples_of
from biofound_cli.signals.channels import repeated_channels
from biofound_cli.signals.montage import MONTAGES, channels_lack_message, electrodes_not_listed

logger = logging.getLogger(__name__)

_FROM_CORPUS_OR_RECIPE = ("l_freq", "h_freq", "notch_hz", "sfreq", "window_seconds", "stride_seconds", "channels", "units")
BUILTIN_DEFAULTS: dict[str, Any] = {
    **dict.fromkeys(_FROM_CORPUS_OR_RECIPE),  # units: by modality, uV for EEG, file for EMG
    **{field.name: field.default for field in fields(ChainConfig) if field.name not in _FROM_CORPUS_OR_RECIPE},
}
"""What a step does when neither the corpus nor the recipe says: nothing, or the chain's own default
(:class:`~biofound_cli.signals.chain.ChainConfig`, where each lives), the safe choice."""

# Recipe fields where 0 (or an empty list) means "switch this step off".
_ZERO_MEANS_OFF = ("l_freq", "h_freq", "notch_hz", "sfreq")


def check_preprocess(
    section: PreprocessSection, source: str = "recipe", *, require_paths: bool = True
) -> tuple[Corpus, ChainConfig]:
    """The checks ``preprocess`` runs before any work, which ``biofound validate`` runs too.

    Parameters
    ----------
    section : PreprocessSection
    source : str
        The recipe file, named in messages.
    require_paths : bool
        Whether ``root`` and ``out`` must be set, and ``root`` be a folder (``validate`` cannot know the
        command-line flags).

    Returns
    -------
    corpus, config
        The corpus reader with its validated options, and the resolved signal chain.

    Raises
    ------
    RecipeError
        One line per problem: a missing corpus (or root/out), an unknown corpus, a bad corpus
        option (or options the reader refuses together), a signal chain that cannot run.
    UsageError
        A ``root`` that is not a folder (``require_paths``).
    """
    flags = {"corpus": "the CORPUS argument", "root": "--root", "out": "--out"}
    required = flags if require_paths else {"corpus": flags["corpus"]}
    problems = [
        f"{source}: preprocess.{name}: required; pass {flag} or set it in the recipe"
        for name, flag in required.items()
        if getattr(section, name) is None
    ]
    if problems:
        raise RecipeError(problems)
    assert section.corpus is not None  # required above, with or without the paths
    try:
        corpus_cls = get_corpus(section.corpus)
    except UsageError as error:
        raise RecipeError([f"{source}: preprocess.corpus: {error.message}"]) from None
    options = resolve_options(section, corpus_cls, source)
    try:  # the reader refuses options that contradict each other (two sources of labels)
        corpus = corpus_cls(options)
    except UsageError as error:
        raise RecipeError([f"{source}: {error.message}"]) from None
    config = resolve_chain_config(section, corpus_cls, source)
    _check_band_below_declared_nyquist(config, corpus.declared_sfreq, source)
    problem = corpus.window_problem(config)
    if problem is not None:
        raise RecipeError([f"{source}: {problem}"])
    if require_paths and not Path(section.root or "").is_dir():
        # Named as the field, so that the option that gave it is named (--root, --set) and otherwise the recipe.
        raise UsageError(
            f"{source}: preprocess.root = {str(section.root)!r} is not a folder; "
            f"give the folder holding the raw {section.corpus} recordings"
        )
    return corpus, config


def _check_band_below_declared_nyquist(config: ChainConfig, declared_sfreq: float | None, source: str) -> None:
    """Band edges the files' rate, declared in the options, cannot carry: every file would be skipped later."""
    from biofound_cli.signals.filters import check_filterable

    if declared_sfreq is None:
        return
    try:
        check_filterable(
            declared_sfreq,
            config.l_freq,
            config.h_freq,
            source=f"{source}: preprocess.options.sfreq",
            otherwise="check preprocess.options.sfreq",
        )
    except UnusableRecording as error:
        raise RecipeError([error.message]) from None


def resolve_options(section: PreprocessSection, corpus_cls: type[Corpus], source: str = "recipe") -> Section | None:
    """Validate ``[preprocess.options]`` against the corpus's options model.

    Parameters
    ----------
    section : PreprocessSection
        The recipe's ``[preprocess]`` section, whose ``options`` table is checked.
    corpus_cls : type of Corpus
        The corpus reader; its ``Options`` model (None: it takes no options) says what is allowed.
    source : str
        The recipe file, at the start of each problem line.

    Raises
    ------
    RecipeError
        One line per bad option, named ``preprocess.options.<field>``.
    """
    if corpus_cls.Options is None:
        if section.options:
            raise RecipeError(
                [
                    f"{source}: preprocess.options: the {corpus_cls.name} corpus takes no options; "
                    "leave them out of the recipe and of --set (--set 'preprocess.options={}' clears a recipe's)"
                ]
            )
        return None
    try:
        return corpus_cls.Options.model_validate(dict(section.options))
    except ValidationError as error:
        lines = format_validation_error(source, error, section.options, corpus_cls.Options)
        raise RecipeError([line.replace(f"{source}: ", f"{source}: preprocess.options.", 1) for line in lines]) from None


def resolve_chain_config(section: PreprocessSection, corpus_cls: type[Corpus], source: str = "recipe") -> ChainConfig:
    """Built-in defaults ← the corpus's ``defaults`` ← the recipe's non-empty fields.

    The step between windows follows the window: a recipe (or ``--set``) that sets
    ``window_seconds`` but not ``stride_seconds`` gets windows one after the other, as MNE's
    ``make_fixed_length_epochs`` and braindecode do; the corpus's own stride (e.g. 75 % overlap for
    the EMG corpora) goes with the corpus's own window only.

    Parameters
    ----------
    section : PreprocessSection
        The ``[preprocess]`` section.
    corpus_cls : type[Corpus]
        The corpus reader, whose ``defaults`` fill the fields the recipe leaves out.
    source : str
        The recipe file, named in messages.

    Raises
    ------
    RecipeError
        One line per setting the chain cannot run with (no window length, a window or stride
        shorter than one sample at the output rate, band edges in the wrong order).
    """
    settings = dict(BUILTIN_DEFAULTS)
    settings.update({key: value for key, value in corpus_cls.defaults.items() if key in BUILTIN_DEFAULTS})
    for key in BUILTIN_DEFAULTS:
        value = getattr(section, key)
        if value is None:
            continue
        if key in _ZERO_MEANS_OFF and (value == 0 or value == []):
            value = None
        settings[key] = value
    if settings["units"] in (None, "native"):
        settings["units"] = "uV" if corpus_cls.modality == "eeg" else "file"
    if settings["montage"] is None:
        settings["montage"] = "none"
    notch_hz = settings["notch_hz"]
    notch_list = [] if notch_hz is None else [notch_hz] if isinstance(notch_hz, (int, float)) else list(notch_hz)
    settings["notch_hz"] = tuple(float(freq) for freq in notch_list if freq)
    if settings["channels"] is not None:
        settings["channels"] = tuple(settings["channels"])
    settings["stride_seconds"] = _resolve_stride(
        section, corpus_cls, settings["window_seconds"], settings["stride_seconds"], source
    )
    problems = _chain_problems(settings, corpus_cls, source)
    if problems:
        raise RecipeError(problems)
    config = ChainConfig(**settings)
    unused = config.unused_fraction()
    if unused:  # 3 samples of 1280 are not "0%"
        logger.warning(
            f"{source}: preprocess.stride_seconds = {config.step_seconds:g} s is longer than window_seconds = "
            f"{config.window_seconds:g} s, so {f'{unused:.0%}' if round(unused, 2) else 'under 1%'} of every "
            "recording lies between windows and is not used"
        )
    return config


def _resolve_stride(
    section: PreprocessSection,
    corpus_cls: type[Corpus],
    window: float | None,
    stride: float | None,
    source: str,
) -> float | None:
    """The step between windows: the recipe's, else the window when the recipe set a window other than the corpus's."""
    if window is None:
        return stride
    default_window, default_stride = corpus_cls.defaults.get("window_seconds"), corpus_cls.defaults.get("stride_seconds")
    # The corpus's own window, set again (`--set preprocess.window_seconds=1` on emg-csv), keeps its published step.
    other_window = section.window_seconds is not None and section.window_seconds != default_window
    if section.stride_seconds is None and (other_window or stride is None):
        if default_stride is not None and default_window is not None and default_stride != default_window:
            logger.info(
                f"{source}: preprocess.stride_seconds follows window_seconds = {window:g} s (the {corpus_cls.name} corpus's "
                f"{default_stride:g} s step goes with its own {default_window:g} s window); set stride_seconds for overlap"
            )
        return window
    return stride


def _chain_problems(settings: dict[str, Any], corpus_cls: type[Corpus], source: str) -> list[str]:
    """What makes the resolved settings unusable, one line each."""
    problems = []
    if settings["window_seconds"] is None:
        problems.append(
            f"{source}: preprocess.window_seconds: the {corpus_cls.name} corpus has no default window length; set it in "
            "the recipe's [preprocess] section or with --set preprocess.window_seconds=SECONDS"
        )
    sfreq = settings["sfreq"]
    for key in ("window_seconds", "stride_seconds"):
        seconds = settings.get(key)
        if key == "stride_seconds" and seconds == settings["window_seconds"]:
            continue  # a stride that follows the window has the window's problem, said once
        if sfreq and seconds is not None and samples_of(seconds, sfreq) < 1:
            problems.append(
                f"{source}: preprocess.{key} = {seconds:g} s is shorter than one sample at {sfreq:g} Hz; "
                f"use at least {1 / sfreq:g} s"
            )
    l_freq, h_freq = settings["l_freq"], settings["h_freq"]
    if l_freq is not None and h_freq is not None and l_freq >= h_freq:
        problems.append(f"{source}: preprocess.l_freq = {l_freq:g}: must be below h_freq = {h_freq:g}")
    return problems + _channel_problems(settings["channels"] or (), settings["montage"], source)


def _channel_problems(channels: tuple[str, ...], montage: str, source: str) -> list[str]:
    """What is wrong with the ``channels`` list, one line each: a channel listed twice, in any spelling,
    would be written twice (the second copy under a made-up name such as ``T3#2``); one that leaves
    out an electrode of a named bipolar montage would have every recording skipped."""
    problems = [
        f"{source}: preprocess.channels lists {normal} {len(spelled)} times "
        f"({', '.join(repr(name) for name in spelled)} name the same channel); keep one of them"
        for normal, spelled in repeated_channels(channels).items()
    ]
    missing = electrodes_not_listed(channels, montage) if channels and montage in MONTAGES else []
    if missing:
        problems.append(f"{source}: {channels_lack_message(missing, montage)}")
    return problems
