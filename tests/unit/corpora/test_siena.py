"""The ``siena`` corpus on small EDF files with Siena-style headers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures.edf_files import SIENA_HEADER_NAMES, write_siena_edf

from biofound_cli.corpora.siena import SIENA_CHANNELS, SienaCorpus
from biofound_cli.errors import DataError
from biofound_cli.signals.channels import channel_rows


def test_discover_takes_the_patient_from_the_folder(tmp_path: Path) -> None:
    for name in ("PN00/PN00-1.edf", "PN00/PN00-2.edf", "PN13/PN13-1.edf", "loose/PN05-3.edf"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "PN00" / "Seizures-list-PN00.txt").write_text("")
    refs = SienaCorpus().discover(tmp_path)
    assert [(r.recording_id, r.subject, r.split) for r in refs] == [
        ("PN00-1", "PN00", None),
        ("PN00-2", "PN00", None),
        ("PN05-3", "PN05", None),
        ("PN13-1", "PN13", None),
    ]


def test_read_gives_volts_at_512_hz_and_the_29_channels_can_be_picked(tmp_path: Path) -> None:
    data = write_siena_edf(tmp_path / "PN01" / "PN01-1.edf")
    corpus = SienaCorpus()
    (ref,) = corpus.discover(tmp_path)
    recording = corpus.read(ref)
    assert recording.sfreq == 512.0
    assert recording.ch_names == SIENA_HEADER_NAMES
    assert recording.label is None and recording.segments is None and recording.window_labeler is None
    np.testing.assert_allclose(recording.data, data, atol=1e-7)
    picked = recording.data[channel_rows(recording.ch_names, SienaCorpus.defaults["channels"])]
    np.testing.assert_allclose(picked, data[: len(SIENA_CHANNELS)], atol=1e-7)


def test_unreadable_edf_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "PN02" / "PN02-1.edf"
    path.parent.mkdir()
    path.write_bytes(b"0" * 300)
    corpus = SienaCorpus()
    (ref,) = corpus.discover(tmp_path)
    with pytest.raises(DataError, match=r"PN02-1\.edf: not an EDF or BDF file \(its first bytes, b'00000000', are neither"):
        corpus.read(ref)
