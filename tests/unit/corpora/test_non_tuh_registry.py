"""Every non-TUH reader is registered, and its defaults are valid ``[preprocess]`` values."""

from __future__ import annotations

import pytest

from biofound_cli.corpora import get_corpus
from biofound_cli.recipes.preprocess import PreprocessSection

NAMES = ("emg-csv", "ts", "siena", "seedv", "db5", "uci-emg", "epn612", "edf")


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_valid_defaults(name: str) -> None:
    corpus_cls = get_corpus(name)
    assert corpus_cls.name == name
    # Every default must be a value the recipe itself would accept for that field.
    section = PreprocessSection(corpus=name, **corpus_cls.defaults)
    for key, value in corpus_cls.defaults.items():
        assert getattr(section, key) == value
    corpus = corpus_cls()
    assert corpus.modality in ("eeg", "emg")
    if corpus_cls.Options is not None:
        assert corpus_cls.Options.model_validate({}) is not None
