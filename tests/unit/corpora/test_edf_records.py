"""The direct EDF record reader gives MNE's values bit for bit, and leaves every other file to MNE."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import mne
import numpy as np
import pytest
from fixtures.edf_files import TAL, write_edf
from fixtures.tuh import TUH_ELECTRODES, write_tuh_edf

from biofound_cli.corpora.base import UnusableRecording
from biofound_cli.corpora.edf_records import read_edf_records
from biofound_cli.corpora.tuh import read_edf


def _mne(path: Path, names: Sequence[str] | None = None) -> tuple[np.ndarray, float, list[str]]:
    """What MNE reads, as ``tuh.read_edf`` stored it before: float64 volts rounded to float32."""
    raw = mne.io.read_raw_edf(path, preload=False, verbose="error")
    picks = [raw.ch_names.index(name) for name in names] if names is not None else list(range(len(raw.ch_names)))
    return raw.get_data(picks=picks).astype(np.float32), float(raw.info["sfreq"]), [raw.ch_names[p] for p in picks]


def _assert_same_as_mne(path: Path, names: Sequence[str] | None = None) -> None:
    data, sfreq, ch_names = read_edf_records(path, names)
    expected, expected_sfreq, expected_names = _mne(path, names)
    assert ch_names == expected_names and sfreq == expected_sfreq
    assert data.dtype == np.float32 and data.shape == expected.shape
    np.testing.assert_array_equal(data, expected)


def _digital(rng: np.random.Generator, count: int, low: int = -32768, high: int = 32767) -> np.ndarray:
    return rng.integers(low, high + 1, count).astype(np.int16)


def test_an_mne_exported_file_with_annotations_reads_as_mne_reads_it(tmp_path):
    rng = np.random.default_rng(1)
    names = ["Fp1", "Cz", "O2"]
    raw = mne.io.RawArray(rng.normal(0, 30e-6, (3, 2500)), mne.create_info(names, 250.0, "eeg"), verbose="error")
    raw.set_annotations(mne.Annotations([1.0, 4.5], [0.5, 1.0], ["T1", "T2"]))
    path = tmp_path / "exported.edf"
    mne.export.export_raw(path, raw, fmt="edf", verbose="error")
    _assert_same_as_mne(path)
    _assert_same_as_mne(path, ["O2", "Fp1"])


def test_odd_records_units_ranges_and_an_annotation_channel_in_the_middle(tmp_path):
    """7 samples per 0.028 s record (250 Hz), µV/mV/other units, asymmetric ranges, comma decimals."""
    rng = np.random.default_rng(2)
    n_records = 301
    labels = ["EEG FP1-REF", TAL, "EEG CZ-REF", "EMG chin", "Slow"]
    n_samps = [7, 6, 7, 7, 3]  # the slow channel is not picked, so the others need no resampling
    digital = [_digital(rng, n_records * count, -2048, 2047) for count in n_samps]
    path = write_edf(
        tmp_path / "odd.edf",
        labels,
        digital,
        n_samps=n_samps,
        record_seconds="0.028",
        units=["uV", "", "mV", "V", "uV"],
        physical=[("-512,5", "511.75"), ("-1", "1"), ("-0.3", "0.9"), ("-1e-3", "2e-3"), ("-100", "100")],
        digital_range=[(-2048, 2047), (-32768, 32767), (-2048, 2047), (-1000, 3000), (-32768, 32767)],
    )
    _assert_same_as_mne(path, ["EEG CZ-REF", "EMG chin", "EEG FP1-REF"])


def test_a_file_longer_or_shorter_than_its_header_reads_the_records_it_holds(tmp_path):
    rng = np.random.default_rng(3)
    labels, n_samps = ["A", "B"], [250, 250]
    digital = [_digital(rng, 20 * 250) for _ in labels]
    path = write_edf(tmp_path / "cut.edf", labels, digital, n_samps=n_samps, header_records=30)
    path.write_bytes(path.read_bytes()[:-100])  # the last record is cut: 19 whole records remain
    data, _, _ = read_edf_records(path)
    assert data.shape == (2, 19 * 250)
    _assert_same_as_mne(path)
    many = write_edf(tmp_path / "unknown.edf", labels, digital, n_samps=n_samps, header_records=-1)
    _assert_same_as_mne(many)


def test_long_files_are_read_block_by_block_with_the_same_values(tmp_path, monkeypatch):
    import biofound_cli.corpora.edf_records as edf_records

    rng = np.random.default_rng(4)
    digital = [_digital(rng, 50 * 256) for _ in range(3)]
    path = write_edf(tmp_path / "long.edf", ["A", "B", "C"], digital, n_samps=[256] * 3)
    monkeypatch.setattr(edf_records, "BLOCK_BYTES", 7 * 3 * 256 * 2)  # 7 records a block, the last one short
    _assert_same_as_mne(path, ["C", "A"])


@pytest.mark.parametrize(
    ("labels", "n_samps", "extra"),
    [
        (["A", "A"], [10, 10], {}),  # MNE renames repeated names
        (["A", "Status"], [10, 10], {}),  # a stim channel
        (["A", "B"], [10, 10], {"digital_range": [(-32768, 32767), (5, 5)]}),  # undefined scale
        (["A", "B"], [10, 10], {"physical": [("-1", "1"), ("2", "2")]}),
    ],
    ids=["repeated-names", "stim", "no-digital-range", "no-physical-range"],
)
def test_files_mne_reads_differently_are_left_to_it(tmp_path, labels, n_samps, extra):
    rng = np.random.default_rng(5)
    digital = [_digital(rng, 4 * count) for count in n_samps]
    path = write_edf(tmp_path / "other.edf", labels, digital, n_samps=n_samps, **extra)
    assert read_edf_records(path) is None
    # tuh.read_edf then reads it through MNE, with MNE's values and names.
    data, sfreq, names = read_edf(path)
    expected, expected_sfreq, expected_names = _mne(path)
    assert names == expected_names and sfreq == expected_sfreq
    np.testing.assert_array_equal(data, expected)


@pytest.mark.parametrize("stim", [False, True], ids=["direct", "through-mne"])
def test_channels_are_read_at_their_own_rate_and_mixed_rates_refused(tmp_path, stim):
    """An EKG at 4x the EEG's rate: MNE would upsample the EEG to it; only the channels read count."""
    rng = np.random.default_rng(6)
    labels, n_samps = ["Fp1", "C3", "EKG"], [8, 8, 32]
    if stim:  # a stim channel leaves the file to MNE, which reads the kept signals without the others
        labels, n_samps = [*labels, "Status"], [*n_samps, 8]
    digital = [_digital(rng, 5 * count) for count in n_samps]
    path = write_edf(tmp_path / "mixed.edf", labels, digital, n_samps=n_samps)
    data, sfreq, names = read_edf(path, ["C3", "Fp1"])
    assert (sfreq, names, data.shape) == (8.0, ["C3", "Fp1"], (2, 40))
    # MNE's values of those channels when it reads them alone: nothing resampled.
    alone = mne.io.read_raw_edf(path, exclude=["EKG", "Status"], preload=False, verbose="error")
    np.testing.assert_array_equal(data, alone.get_data(picks=["C3", "Fp1"]).astype(np.float32))
    ekg, ekg_sfreq, _ = read_edf(path, ["EKG"])
    assert (ekg_sfreq, ekg.shape) == (32.0, (1, 160))
    with pytest.raises(
        UnusableRecording,
        match=r"mixed\.edf: the channels read have different sampling rates \(FP1 at 8 Hz; EKG at 32 Hz\); set preprocess",
    ) as caught:
        read_edf(path, ["Fp1", "EKG"])
    assert caught.value.reason == "mixed_rates"
    with pytest.raises(UnusableRecording, match=r"\(FP1, C3 at 8 Hz; EKG at 32 Hz\)"):
        read_edf(path)


def test_bdf_and_broken_headers_are_left_to_mne(tmp_path):
    raw = mne.io.RawArray(np.zeros((1, 200)), mne.create_info(["Cz"], 100.0, "eeg"), verbose="error")
    bdf = tmp_path / "a.bdf"
    mne.export.export_raw(bdf, raw, fmt="bdf", verbose="error")
    assert read_edf_records(bdf) is None
    broken = tmp_path / "broken.edf"
    broken.write_bytes(b"0" * 100)
    assert read_edf_records(broken) is None
    with pytest.raises(UnusableRecording, match="not an EDF or BDF file"):  # its version field is "00000000"
        read_edf(broken)


def test_a_missing_channel_names_every_channel_the_file_has(tmp_path):
    path = write_tuh_edf(tmp_path / "a.edf", drop=("A1",))
    with pytest.raises(UnusableRecording, match="missing required channel.*A1.*the file has") as caught:
        read_edf_records(path, TUH_ELECTRODES)
    assert caught.value.reason == "missing_channels"


def test_tuh_files_are_read_without_importing_mne(tmp_path):
    path = write_tuh_edf(tmp_path / "aaaaaaaa_s001_t000.edf")
    _assert_same_as_mne(path, [f"EEG {name}-REF" for name in TUH_ELECTRODES])
    code = (
        "import sys; from pathlib import Path; from biofound_cli.corpora.tuh import read_edf; "
        f"data, sfreq, names = read_edf(Path({str(path)!r}), ['FP1', 'O2']); "
        "print(data.shape, sfreq, names, 'mne' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "(2, 5000) 250.0 ['EEG FP1-REF', 'EEG O2-REF'] False"


@pytest.mark.parametrize("record_seconds", ["1", "0.3", "2.5"])
def test_the_header_rate_is_the_rate_the_edf_corpus_reads_the_channels_at(tmp_path, record_seconds):
    """preprocess warns of a second rate from the headers before any work: they must give the rate the shard gets."""
    from biofound_cli.corpora.edf import EdfCorpus

    rng = np.random.default_rng(7)
    labels, n_samps = ["Fp1", "C3", "EKG", TAL], [25, 25, 100, 30]
    write_edf(
        tmp_path / "a.edf",
        labels,
        [_digital(rng, 40 * count) for count in n_samps],
        n_samps=n_samps,
        record_seconds=record_seconds,
    )
    corpus = EdfCorpus()
    (ref,) = corpus.discover(tmp_path)
    for channels, count in [(("C3", "Fp1"), 25), (("EKG",), 100)]:
        corpus.read_channels = channels
        assert corpus.header_rate(ref) == corpus.read(ref).sfreq == count / float(record_seconds)
    # Channels the reading refuses (at two rates, absent): no shard, so no rate.
    for channels in [None, ("Fp1", "EKG"), ("Cz",)]:
        corpus.read_channels = channels
        assert corpus.header_rate(ref) is None
    # Other formats are left to the shards as they are written (an EEGLAB .set may hold its data).
    assert corpus.header_rate(dataclasses.replace(ref, path=tmp_path / "a.set")) is None
