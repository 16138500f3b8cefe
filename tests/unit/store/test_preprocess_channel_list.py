"""The recipe's ``channels`` list is checked before any work, against itself and the montage."""

from __future__ import annotations

import pytest

from biofound_cli.corpora.tuab import TUABCorpus
from biofound_cli.errors import RecipeError
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.store.preprocess_config import resolve_chain_config


@pytest.mark.parametrize(
    ("channels", "spellings"), [(["C3", "c3", "CZ"], "'C3', 'c3'"), (["T3", "CZ", "EEG T7-REF"], "'T3', 'EEG T7-REF'")]
)
def test_a_channel_listed_twice_in_any_spelling_is_a_recipe_error(channels, spellings):
    # Accepted, it wrote the electrode twice, the copy under a name no file has (C3#2).
    with pytest.raises(RecipeError) as error:
        resolve_chain_config(PreprocessSection(channels=channels, montage="none"), TUABCorpus, "r.toml")
    (line,) = error.value.problems
    normal = channels[0].upper()
    assert line == f"r.toml: preprocess.channels lists {normal} 2 times ({spellings} name the same channel); keep one of them"


def test_distinct_channels_in_any_spelling_are_kept_in_order():
    config = resolve_chain_config(PreprocessSection(channels=["c3", "EEG T7-REF", "Cz"], montage="none"), TUABCorpus)
    assert config.channels == ("c3", "EEG T7-REF", "Cz")
