"""The LUNA channel vocabulary and the frozen 10-05 electrode positions."""

from __future__ import annotations

import json
import warnings
from importlib import resources

import numpy as np
import pytest

from biofound_cli.errors import DataError
from biofound_cli.signals.electrodes import (
    CHANNEL_VOCABULARY,
    ELECTRODE_ALIASES,
    channel_index,
    channel_positions,
)

SEED = (
    "FP1 FPZ FP2 AF3 AF4 F7 F5 F3 F1 FZ F2 F4 F6 F8 FT7 FC5 FC3 FC1 FCZ FC2 FC4 FC6 FT8 T7 C5 C3 C1 CZ C2 C4 C6 T8 "
    "TP7 CP5 CP3 CP1 CPZ CP2 CP4 CP6 TP8 P7 P5 P3 P1 PZ P2 P4 P6 P8 PO7 PO5 PO3 POZ PO4 PO6 PO8 CB1 O1 OZ O2 CB2"
).split()
SIENA = ("FP1 FP2 F3 C3 P3 O1 F7 T3 T5 FC1 FC5 CP1 CP5 F9 FZ CZ PZ F4 C4 P4 O2 F8 T4 T6 FC2 FC6 CP2 CP6 F10").split()
# TUEG bipolar channels and their midpoints as upstream computes them with MNE 1.13.
TUEG_POSITIONS = {
    "FP1-F7": (-0.051390, 0.093844, 0.026829), "F7-T3": (-0.078929, 0.043988, 0.028482),
    "T3-T5": (-0.080220, -0.013626, 0.036224), "T5-O1": (-0.053016, -0.061346, 0.048032),
    "FP2-F8": (0.049922, 0.094926, 0.026411), "F8-T4": (0.077348, 0.044882, 0.028037),
    "T4-T6": (0.077147, -0.013501, 0.036086), "T6-O2": (0.049358, -0.061374, 0.047966),
    "T3-C3": (-0.076565, 0.019115, 0.067842), "C3-CZ": (-0.034261, 0.025488, 0.122355),
    "CZ-C4": (0.031977, 0.025595, 0.121946), "C4-T4": (0.074295, 0.019416, 0.067333),
    "FP1-F3": (-0.041356, 0.100637, 0.053290), "F3-C3": (-0.059479, 0.055023, 0.091612),
    "C3-P3": (-0.061093, -0.010426, 0.102210), "P3-O1": (-0.043306, -0.062389, 0.077349),
    "FP2-F4": (0.039342, 0.101392, 0.052496), "F4-C4": (0.057802, 0.055506, 0.090482),
    "C4-P4": (0.059482, -0.010381, 0.102104), "P4-O2": (0.040660, -0.062412, 0.077625),
    "A1-T3": (-0.086961, 0.008736, 0.002154), "T4-A2": (0.083595, 0.008613, 0.002032),
}  # fmt: skip


def test_vocabulary_is_the_sorted_union_of_seed_tueg_and_siena():
    assert CHANNEL_VOCABULARY == tuple(sorted(set(SEED) | set(TUEG_POSITIONS) | set(SIENA)))
    assert len(CHANNEL_VOCABULARY) == 90
    assert channel_index(["A1-T3", "FP1-F7", "T3", "TP8"]) == [0, 47, 76, 89]


def test_channel_index_ignores_case_and_names_an_unknown_channel():
    assert channel_index(["fp1-f7", " Cz "]) == channel_index(["FP1-F7", "CZ"])
    with pytest.raises(DataError, match="'EKG'"):
        channel_index(["C3", "EKG"])
    # Pre-training on an EDF export with EOG and ECG named the first alone, and said to "drop it" nowhere.
    with pytest.raises(DataError) as error:
        channel_index(["EOG", "Fp1", "ECG"])
    assert error.value.message.startswith("Channels 'EOG', 'ECG' are not in LUNA's 90-name channel vocabulary")
    assert "leave them out with preprocess.channels (the channels to keep)" in error.value.message


def test_tueg_bipolar_midpoints_match_upstream():
    names = list(TUEG_POSITIONS)
    np.testing.assert_allclose(channel_positions(names), np.array(list(TUEG_POSITIONS.values())), atol=2e-6)


def test_every_seed_and_siena_channel_and_old_names_have_positions():
    xyz = channel_positions(SEED + SIENA + ["A1", "A2", "T3", "T4", "T5", "T6", "F9", "F10"])
    assert xyz.shape == (len(SEED) + len(SIENA) + 8, 3) and xyz.dtype == np.float32
    assert np.all(np.isfinite(xyz)) and np.all(np.abs(xyz) < 0.2)  # on a head, in metres
    np.testing.assert_array_equal(channel_positions(["CB1", "cb2"]), channel_positions(["POO7", "POO8"]))


def test_custom_positions_for_electrodes_outside_the_10_05_system():
    # SCP1 montage: "A1-A2 2 cm frontal of C3" and similar; given as electrode positions.
    c3 = channel_positions(["C3"])[0].astype(np.float64)
    custom = {"C3f": c3 + [0.0, 0.02, 0.0], "C3p": c3 - [0.0, 0.02, 0.0]}
    xyz = channel_positions(["C3f", "c3p", "C3F-C3P", "Cz"], positions=custom)
    np.testing.assert_allclose(xyz[0], custom["C3f"], atol=1e-7)
    np.testing.assert_allclose(xyz[2], c3, atol=1e-7)
    np.testing.assert_allclose(xyz[3], channel_positions(["CZ"])[0], atol=1e-7)
    # A whole channel name may be given too, and overrides the table.
    np.testing.assert_allclose(channel_positions(["C3-CZ"], positions={"c3-cz": (0, 0, 0.1)}), [[0, 0, 0.1]])


@pytest.mark.parametrize(
    "ch_name, match",
    [("SCP-1", "electrode 'SCP'"), ("Fp1-Xy", "electrode 'XY'"), ("A-B-C", "'A-B-C'"), ("Foo", "'Foo'")],
)
def test_unknown_positions_name_the_channel_and_ask_for_a_position(ch_name, match):
    with pytest.raises(DataError, match=match) as error:
        channel_positions(["C3", ch_name])
    assert "give each its head-frame position in metres (x right, y front, z up) in preprocess.options" in error.value.message


def test_every_channel_without_a_position_is_named_with_the_settings_that_leave_it_out_or_place_it():
    # An EDF export with EOG and ECG beside the EEG: fine-tuning LUNA named EOG alone, and asked for "a custom
    # channel position" that no setting of the edf corpus took.
    with pytest.raises(DataError) as error:
        channel_positions(["Fp1", "EOG", "T7", "ECG"])
    assert error.value.message == (
        "Channels 'EOG', 'ECG' have no known position in the 10-05 system; LUNA places every channel by its electrode "
        "position: leave such channels out with preprocess.channels (the channels to keep; ECG, EOG and EMG have no "
        "place on the scalp), or give each its head-frame position in metres (x right, y front, z up) in "
        "preprocess.options.channel_positions."
    )


def test_a_bad_custom_position_is_a_clear_error():
    with pytest.raises(DataError, match="'X1'.*three finite numbers"):
        channel_positions(["X1"], positions={"X1": (0.0, 1.0)})


def _standard_1005_head_positions() -> dict[str, list[float]]:
    """The table as generated into data/electrodes.json: MNE's standard_1005 in the head frame."""
    mne = pytest.importorskip("mne")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in MNE 1.13
        try:
            montage = mne.channels.make_standard_montage("standard_1005")
        except ValueError:
            pytest.skip("this MNE no longer has the standard_1005 montage")
    info = mne.create_info(montage.ch_names, 256.0, "eeg")
    info.set_montage(montage)
    return {ch["ch_name"]: [float(value) for value in ch["loc"][:3]] for ch in info["chs"]}


def test_frozen_table_matches_mne_standard_1005():
    frozen = json.loads(resources.files("biofound_cli").joinpath("data", "electrodes.json").read_text("utf-8"))
    regenerated = _standard_1005_head_positions()
    assert list(frozen["positions"]) == list(regenerated)
    np.testing.assert_allclose(np.array(list(frozen["positions"].values())), np.array(list(regenerated.values())), atol=1e-9)
    assert list(ELECTRODE_ALIASES) == ["CB1", "CB2"]
