"""The flat-channel check names the flat channels, its verb agreeing with their number."""

import numpy as np
import pytest

from biofound_cli.errors import UnusableRecording
from biofound_cli.signals.quality import check_flat_std


@pytest.mark.parametrize(
    ("stds", "expected"),
    [
        ([0.0, 5.0, 5.0, 5.0], "a.edf: 1 of 4 channels is flat (std < 0.1): C3; raise"),
        ([0.0, 0.0, 5.0, 5.0], "a.edf: 2 of 4 channels are flat (std < 0.1): C3, C4; raise"),
    ],
)
def test_flat_channels_are_named_in_the_right_number(stds, expected):
    with pytest.raises(UnusableRecording, match="flat") as caught:
        check_flat_std(np.asarray(stds), ["C3", "C4", "O1", "O2"], 0.1, 0.2, source="a.edf")
    assert str(caught.value).startswith(expected)
    assert caught.value.reason == "flat_channels"


def test_a_share_of_flat_channels_within_the_limit_passes_named_in_one_warning(caplog):
    """It passed without a word: a model was fed a dead channel and nobody learnt it."""
    kept = check_flat_std(np.asarray([0.0, 5.0, 5.0, 5.0, 5.0]), ["C3", "C4", "O1", "O2", "Pz"], 0.1, 0.2, source="a.edf")
    assert kept == ["C3"]
    [record] = caplog.records
    assert record.levelname == "WARNING" and record.getMessage().startswith("a.edf: 1 of 5 channels is flat (std < 0.1): C3; ")
    assert check_flat_std(np.asarray([5.0, 5.0]), ["C3", "C4"], 0.1, 0.2, source="a.edf") == []
    assert len(caplog.records) == 1
