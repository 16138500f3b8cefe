"""The recipe's ``channels`` list is checked before any work, against itself and the montage."""

from __future__ import annotations

import numpy as np
import pytest

from biofound_cli.corpora.base import Recording, UnusableRecording
from biofound_cli.corpora.tuab import TUABCorpus
from biofound_cli.errors import RecipeError
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.signals.chain import ChainConfig, run_chain
from biofound_cli.signals.montage import TCP_PAIRS, montage_electrodes
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


def test_a_channel_list_without_an_electrode_of_the_montage_is_a_recipe_error():
    # Accepted, every recording was skipped with "missing required channel(s) O2; the file has <the list>",
    # though the files have O2. Recordings without O2 (LUNA predicting another montage with --recipe) could
    # follow neither of the two fixes it gave: montage "none" keeps the listed channels as they are.
    electrodes = [name for name in montage_electrodes(TCP_PAIRS) if name != "O2"]
    with pytest.raises(RecipeError) as error:
        resolve_chain_config(PreprocessSection(channels=electrodes, montage="tcp"), TUABCorpus, "r.toml")
    assert error.value.problems == [
        "r.toml: preprocess.channels lacks O2, which montage tcp needs; "
        "add them to preprocess.channels, leave it unset to keep the montage's electrodes, or, for recordings "
        'without them, set preprocess.montage = "none" to keep the listed channels referential'
    ]


def test_a_montage_chosen_per_recording_names_the_channel_list_not_the_file():
    # montage = "auto" is known per recording only: the chain says the list, not the file, lacks the ear electrodes.
    electrodes = montage_electrodes(TCP_PAIRS)
    data = np.random.default_rng(0).normal(0, 20e-6, (len(electrodes), 1000))
    recording = Recording(data=data, sfreq=100.0, ch_names=list(electrodes), meta={"montage": "tcp"})
    listed = tuple(name for name in electrodes if name not in ("A1", "A2"))
    assert run_chain(recording, ChainConfig(window_seconds=5.0, montage="auto", channels=listed + ("A1", "A2"))).n_windows == 2
    with pytest.raises(UnusableRecording) as error:
        run_chain(recording, ChainConfig(window_seconds=5.0, montage="auto", channels=listed), source="a.edf")
    assert error.value.reason == "missing_channels"
    assert error.value.message.startswith("a.edf: preprocess.channels lacks A1, A2, which montage tcp needs;")
