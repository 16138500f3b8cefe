from __future__ import annotations

import numpy as np
import pytest

from biofound_cli.corpora.base import UnusableRecording
from biofound_cli.signals.montage import TCP20_PAIRS, TCP_PAIRS, bipolar_names, bipolar_rows, montage_electrodes

NEDC_ORDER = [
    "FP1-F7", "F7-T3", "T3-T5", "T5-O1", "FP2-F8", "F8-T4", "T4-T6", "T6-O2", "A1-T3", "T3-C3", "C3-CZ",
    "CZ-C4", "C4-T4", "T4-A2", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4", "P4-O2",
]  # fmt: skip


def test_tcp_order_is_the_nedc_order():
    assert bipolar_names(TCP_PAIRS) == NEDC_ORDER
    assert bipolar_names(TCP_PAIRS).index("A1-T3") == 8
    assert bipolar_names(TCP_PAIRS).index("T4-A2") == 13


def test_tcp20_drops_only_the_ear_channels():
    assert bipolar_names(TCP20_PAIRS) == [name for name in NEDC_ORDER if "A1" not in name and "A2" not in name]
    assert len(TCP20_PAIRS) == 20


def test_bipolar_is_anode_minus_cathode_looked_up_by_name():
    electrodes = montage_electrodes(TCP_PAIRS)
    assert len(electrodes) == 19  # FZ and PZ are not part of the TCP montage
    # Give each electrode a distinct constant, stored in reverse order with TUH-style names.
    values = {name: float(index * 10) for index, name in enumerate(electrodes)}
    names = [f"EEG {name}-REF" for name in reversed(electrodes)]
    data = np.array([[values[name]] * 3 for name in reversed(electrodes)])
    rows = bipolar_rows(names, "tcp")
    bipolar = data[[anode for anode, _ in rows]] - data[[cathode for _, cathode in rows]]
    expected = [values[a] - values[c] for a, c in TCP_PAIRS]
    np.testing.assert_array_equal(bipolar[:, 0], expected)


def test_tcp_without_ear_electrodes_is_refused():
    electrodes = [name for name in montage_electrodes(TCP_PAIRS) if name not in ("A1", "A2")]
    with pytest.raises(UnusableRecording, match="A1, A2"):
        bipolar_rows(electrodes, "tcp")
    assert len(bipolar_rows(electrodes, "tcp20")) == 20
