"""Recordings cut short (an interrupted copy) and header-only files: found, skipped or kept, and said."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import mne
import numpy as np
import pytest
from fixtures.shards import read_shard
from fixtures.tuh import build_tuab, build_tusl, write_tuh_edf
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora.base import RecordingRef, UnusableRecording
from biofound_cli.corpora.edf import EdfCorpus
from biofound_cli.corpora.edf_header import read_edf_header, truncation_meta
from biofound_cli.corpora.siena import SienaCorpus
from biofound_cli.corpora.tuab import TUABCorpus
from biofound_cli.corpora.tusl import TUSLCorpus
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.signals.chain import ChainConfig, run_chain
from biofound_cli.store.preprocess_config import resolve_chain_config
from biofound_cli.store.preprocess_recording import process_recording

runner = CliRunner()


def _cut(path: Path, keep_bytes: int | None = None) -> Path:
    """Keep the first half of ``path`` (or ``keep_bytes``), as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep_bytes is None else keep_bytes])
    return path


def _export(path: Path, fmt: str, seconds: float = 20.0) -> Path:
    """A 2-channel, 100 Hz EDF or BDF file written by MNE (1 s data records)."""
    rng = np.random.default_rng(0)
    raw = mne.io.RawArray(
        rng.normal(0, 20e-6, (2, int(seconds * 100))), mne.create_info(["Cz", "Pz"], 100.0, "eeg"), verbose="error"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    mne.export.export_raw(path, raw, fmt=fmt, overwrite=True, verbose="error")
    return path


@pytest.mark.parametrize(("fmt", "bytes_per_sample"), [("edf", 2), ("bdf", 3)])
def test_the_header_gives_the_size_a_whole_file_has(tmp_path, fmt, bytes_per_sample):
    path = _export(tmp_path / f"a.{fmt}", fmt)
    size = read_edf_header(path)
    assert size.n_records == 20 and size.record_seconds == 1.0
    assert size.record_bytes % bytes_per_sample == 0 and size.record_bytes // bytes_per_sample >= 200
    assert size.file_bytes == size.header_bytes + 20 * size.record_bytes
    assert not size.truncated and truncation_meta(path) == {}
    _cut(path, size.header_bytes + 7 * size.record_bytes + 5)
    assert truncation_meta(path) == {
        "truncated": True, "seconds_expected": 20.0, "seconds_in_file": 7.0, "records_in_header": 20, "records_in_file": 7,
    }  # fmt: skip


def test_a_cut_tuab_file_is_skipped_as_truncated_by_default(tmp_path):
    root = build_tuab(tmp_path / "tuab")
    cut = _cut(root / "train" / "normal" / "01_tcp_ar" / "aaaaaaab_s001_t000.edf")
    out = tmp_path / "shards"
    args = ["preprocess", "tuab", "--root", str(root), "--out", str(out), "--workers", "2", "--json", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["written"] == 4 and summary["skipped_by_reason"] == {"truncated": 1}
    report = json.loads((out / "preprocess_report.tuab.json").read_text())
    (entry,) = [entry for entry in report["files"] if entry["status"] == "skipped"]
    assert entry["message"] == (
        f"{cut}: truncated: the file holds 9 s of the 20 s expected (9 of the 20 data records its header declares), "
        'as after an interrupted copy; copy the file again, or set preprocess.on_truncated = "keep" to use the part that is there'
    )
    assert not (out / "tuab" / "aaaaaaab_s001_t000.h5").exists()


def test_keep_from_the_recipe_writes_the_cut_file_and_counts_it(tmp_path):
    root = build_tuab(tmp_path / "tuab")
    _cut(root / "train" / "normal" / "01_tcp_ar" / "aaaaaaab_s001_t000.edf")
    out = tmp_path / "shards"
    args = [
        "preprocess",
        "tuab",
        "--root",
        str(root),
        "--out",
        str(out),
        "--workers",
        "2",
        "--json",
        "--no-progress",
        "--set",
        "preprocess.on_truncated=keep",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["written"] == 5 and summary["skipped_by_reason"] == {} and summary["notes"] == {"truncated_kept": 1}
    assert "truncated_kept" not in summary  # under notes alone, not again at the top
    report = json.loads((out / "preprocess_report.tuab.json").read_text())
    assert report["notes"] == {"truncated_kept": 1} and "truncated_kept" not in report
    assert report["config"]["on_truncated"] == "keep"
    assert (out / "tuab" / "aaaaaaab_s001_t000.h5").is_file()


def test_keep_uses_the_part_that_is_there_and_marks_the_shard(tmp_path, caplog):
    cut = _cut(write_tuh_edf(tmp_path / "edf" / "train" / "normal" / "01_tcp_ar" / "aaaaaaaa_s001_t000.edf"))
    (ref,) = TUABCorpus().discover(tmp_path / "edf")
    config = replace(resolve_chain_config(PreprocessSection(corpus="tuab"), TUABCorpus), on_truncated="keep")
    with caplog.at_level(logging.WARNING):
        result = process_recording("tuab", None, ref, config, str(tmp_path / "shards"))
    assert result.status == "written" and result.windows == 1  # 9 s kept: one whole 5 s window
    assert f"{cut}: truncated: the file holds 9 s of the 20 s expected" in caplog.text
    assert "kept the 9 s there (preprocess.on_truncated = keep)" in caplog.text
    shard = read_shard(Path(result.shard))
    assert shard["attrs"]["truncated"] is True
    assert (shard["attrs"]["records_in_file"], shard["attrs"]["records_in_header"]) == (9, 20)
    assert shard["window_start_seconds"].tolist() == [0.0]


def test_keep_counts_tusl_events_past_the_kept_part(tmp_path, caplog):
    root = build_tusl(tmp_path / "tusl")
    # 25 s file with bckg [0, 10) and slow [15, 25): cut to 12 s, slow lies beyond the end.
    path = root / "aaaaaaab" / "s001_2013" / "02_tcp_le" / "aaaaaaab_s001_t000.edf"
    _cut(path, read_edf_header(path).header_bytes + 12 * read_edf_header(path).record_bytes)
    ref = next(ref for ref in TUSLCorpus().discover(root) if ref.path == path)
    config = replace(resolve_chain_config(PreprocessSection(corpus="tusl"), TUSLCorpus), on_truncated="keep")
    with caplog.at_level(logging.WARNING):
        result = process_recording("tusl", None, ref, config, str(tmp_path / "shards"))
    assert result.status == "written" and result.windows == 2
    attrs = read_shard(Path(result.shard))["attrs"]
    assert (attrs["truncated"], attrs["events_outside"]) == (True, 1) and "events_clipped" not in attrs
    assert f"{path}: 1 labelled event lies outside the recording (0-12.0 s) and were dropped" in caplog.text


@pytest.mark.parametrize("fmt", ["edf", "bdf"])
def test_the_edf_corpus_flags_cut_edf_and_bdf_files(tmp_path, fmt):
    path = _cut(_export(tmp_path / f"rec.{fmt}", fmt))
    corpus = EdfCorpus()
    (ref,) = corpus.discover(tmp_path)
    recording = corpus.read(ref)
    assert recording.meta["truncated"] is True and recording.data.shape[1] == 100 * recording.meta["records_in_file"]
    config = ChainConfig(window_seconds=2.0, flat_std=0.0)
    with pytest.raises(UnusableRecording, match=rf"{path.name}: truncated: the file holds \d+ s of the 20 s expected") as error:
        run_chain(recording, config, source=str(path))
    assert error.value.reason == "truncated"
    kept = run_chain(recording, replace(config, on_truncated="keep"), source=str(path))
    assert kept.notes == {"truncated_kept": 1} and kept.meta["truncated"] is True


def test_a_header_alone_is_empty_in_one_sentence(tmp_path):
    tuh = write_tuh_edf(tmp_path / "edf" / "train" / "normal" / "01_tcp_ar" / "aaaaaaaa_s001_t000.edf")
    _cut(tuh, read_edf_header(tuh).header_bytes)
    (ref,) = TUABCorpus().discover(tmp_path / "edf")
    with pytest.raises(UnusableRecording) as error:
        TUABCorpus().read(ref)
    assert error.value.reason == "empty"
    assert error.value.message == (
        f"{tuh}: the file stops after its header, without any of the 20 data records (20 s) the header declares, "
        "as after an interrupted copy; copy the file again"
    )
    own = _export(tmp_path / "own" / "rec.edf", "edf")
    _cut(own, read_edf_header(own).header_bytes)
    for corpus, ref in [
        (EdfCorpus(), RecordingRef(own, "rec", "rec")),
        (SienaCorpus(), RecordingRef(own, "rec", "PN00")),
    ]:
        with pytest.raises(UnusableRecording, match="stops after its header") as error:
            corpus.read(ref)
        assert error.value.reason == "empty"


def test_a_file_cut_inside_its_header_is_empty_in_one_sentence_amid_good_ones(tmp_path):
    """An interrupted copy that stops inside the header was `unreadable` with MNE's words for it.

    ("invalid literal for int() with base 10: ''", a bare AssertionError); it is named as cut
    short now, with the bytes there and those the header takes, and counted with the header-only files.
    """
    root = tmp_path / "raw"
    good = _export(root / "good.edf", "edf")
    header_bytes = read_edf_header(good).header_bytes
    for name, keep in [("fixed.edf", 100), ("signals.edf", 300), ("nearly.edf", header_bytes - 1)]:
        (root / name).write_bytes(good.read_bytes()[:keep])
    (root / "text.edf").write_text("not an EDF file\n")
    out = tmp_path / "shards"
    args = ["preprocess", "edf", "--root", str(root), "--out", str(out), "--workers", "2", "--json", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["written"] == 1 and summary["skipped_by_reason"] == {"empty": 3, "unreadable": 1}
    advice = "before any data record, as after an interrupted copy; copy the file again"
    for name, said in [("fixed.edf", "100 of its header's 256 or more"), ("signals.edf", f"300 of its header's {header_bytes}"),
                       ("nearly.edf", f"{header_bytes - 1} of its header's {header_bytes}")]:  # fmt: skip
        assert f"warning: skipped (empty): {root / name}: the file stops inside its header, after {said} bytes, {advice}" in (
            result.stderr
        )
    assert f"{root / 'text.edf'}: not an EDF or BDF file (its first bytes, b'not an E', are neither" in result.stderr
    described = runner.invoke(app, ["info", str(root / "signals.edf")])  # as preprocess says it
    assert described.exit_code == 1 and described.stderr.strip() == (
        f"error: {root / 'signals.edf'}: the file stops inside its header, after 300 of its header's {header_bytes} "
        f"bytes, {advice}"
    )
