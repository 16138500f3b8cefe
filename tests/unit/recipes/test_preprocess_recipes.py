"""The shipped TUH preprocess recipes validate, including their corpus options."""

from __future__ import annotations

from pathlib import Path

import pytest

from biofound_cli.corpora import get_corpus
from biofound_cli.recipes import load_recipe
from biofound_cli.store.preprocess_config import resolve_chain_config, resolve_options

RECIPES = Path(__file__).resolve().parents[3] / "recipes"


@pytest.mark.parametrize("name", ["tuab", "tuar", "tusl", "tueg"])
def test_recipe_validates(name):
    path = RECIPES / f"preprocess_{name}.toml"
    section = load_recipe(path).preprocess
    assert section is not None and section.corpus == name
    corpus_cls = get_corpus(name)
    resolve_options(section, corpus_cls, str(path))
    config = resolve_chain_config(section, corpus_cls, str(path))
    assert (config.l_freq, config.h_freq, config.sfreq, config.window_seconds) == (0.1, 75.0, 256.0, 5.0)
