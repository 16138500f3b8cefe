from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures.tuh import write_csv_annotations, write_tse_annotations, write_tuh_edf

from biofound_cli.corpora.base import UnusableRecording
from biofound_cli.corpora.tuh import (
    Event,
    parse_tuh_name,
    read_csv_annotations,
    read_edf,
    read_tse_annotations,
    recording_ids,
)


def test_parse_tuh_name():
    name = parse_tuh_name("aaaaamye_s001_t000")
    assert (name.subject, name.session, name.token) == ("aaaaamye", "s001", "t000")
    assert parse_tuh_name("00010194_s012_t3").session == "s012"
    assert parse_tuh_name("renamed_file").subject == "renamed"


def test_csv_annotations_skip_comments_and_read_rows(tmp_path):
    path = write_csv_annotations(tmp_path / "a.csv", [("FP1-F7", 0.0, 4.5, "eyem"), ("t3-c3", 6.0, 7.0, "CHEW")])
    assert read_csv_annotations(path) == [Event("FP1-F7", 0.0, 4.5, "eyem"), Event("T3-C3", 6.0, 7.0, "chew")]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("# only comments\n", "holds no header"),
        ("channel,start,stop\nFP1-F7,0,1\n", "line 1: expected the header"),
        ("channel,start_time,stop_time,label,confidence\nFP1-F7,zero,1,eyem,1\n", "line 2: expected channel"),
        ("channel,start_time,stop_time,label,confidence\nFP1-F7,3,1,eyem,1\n", "line 2: stop_time is before start_time"),
    ],
)
def test_malformed_csv_is_a_named_error(tmp_path, text, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UnusableRecording) as error:
        read_csv_annotations(path)
    assert error.value.reason == "bad_annotations"
    assert error.value.message.startswith(f"{path}: ") and fragment in error.value.message


def test_tse_annotations(tmp_path):
    path = write_tse_annotations(tmp_path / "a.tse", [(0.0, 10.0, "bckg"), (10.0, 20.0, "SLOW")])
    assert read_tse_annotations(path) == [Event("", 0.0, 10.0, "bckg"), Event("", 10.0, 20.0, "slow")]
    bad = tmp_path / "b.tse"
    bad.write_text("version = tse_v1.0.0\n0.0 ten bckg 1.0\n")
    with pytest.raises(UnusableRecording, match="line 2"):
        read_tse_annotations(bad)


def test_recording_ids_disambiguate_clashing_stems():
    root = Path("/data")
    paths = [root / "01_tcp_ar" / "x_s001_t000.edf", root / "02_tcp_le" / "x_s001_t000.edf", root / "y.edf"]
    assert recording_ids(paths, root) == ["01_tcp_ar__x_s001_t000", "02_tcp_le__x_s001_t000", "y"]


def test_read_edf_reads_only_the_requested_channels_as_float32(tmp_path):
    path = write_tuh_edf(tmp_path / "a_s001_t000.edf", seconds=5.0)
    everything, sfreq, names = read_edf(path)
    data, _, picked = read_edf(path, ["cz", "T7", "FP1"])
    assert data.dtype == np.float32 and sfreq == 250.0
    assert picked == ["EEG CZ-REF", "EEG T3-REF", "EEG FP1-REF"]
    np.testing.assert_array_equal(data, everything[[names.index(name) for name in picked]])
    with pytest.raises(UnusableRecording) as error:
        read_edf(path, ["CZ", "X9"])
    assert error.value.reason == "missing_channels" and "missing required channel X9; the file has FP1" in error.value.message


def test_annotation_files_saved_on_windows_are_read(tmp_path):
    # A byte-order mark and CRLF line ends, as a Windows editor saves them.
    csv_text = "# version = csv_v1.0.0\r\n\r\nchannel,start_time,stop_time,label,confidence\r\nfp1-f7 ,0.0,4.0,eyem,1.0\r\n"
    (tmp_path / "a.csv").write_bytes(csv_text.encode("utf-8-sig"))
    assert read_csv_annotations(tmp_path / "a.csv") == [Event("FP1-F7", 0.0, 4.0, "eyem")]
    (tmp_path / "a.tse").write_bytes("version = tse_v1.0.0\r\n0.0 10.0 bckg 1.0\r\n".encode("utf-8-sig"))
    assert read_tse_annotations(tmp_path / "a.tse") == [Event("", 0.0, 10.0, "bckg")]
