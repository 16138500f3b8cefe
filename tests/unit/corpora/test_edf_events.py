"""The ``edf`` corpus labelled by events: what a skip says, events outside the recording, start times."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import edfio
import numpy as np
import pytest
from fixtures.shards import read_shard
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora.edf import EdfCorpus, EdfOptions
from biofound_cli.errors import UsageError
from biofound_cli.recipes.preprocess import PreprocessSection
from biofound_cli.store.preprocess_config import resolve_chain_config
from biofound_cli.store.preprocess_recording import process_recording

runner = CliRunner()


def _write_edf(path: Path, events: list[tuple[float, float, str]], seconds: float = 20.0) -> Path:
    """A 2-channel, 100 Hz EDF+ file whose annotations are ``(onset, duration, text)``, written as given
    (edfio, unlike MNE's export, keeps annotations that run past the end)."""
    rng = np.random.default_rng(len(path.name))
    signals = [
        edfio.EdfSignal(rng.normal(0, 20, int(seconds * 100)), sampling_frequency=100, label=name, physical_dimension="uV",
                        physical_range=(-500, 500))
        for name in ("Cz", "Pz")
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    edfio.Edf(signals, annotations=[edfio.EdfAnnotation(onset, duration, text) for onset, duration, text in events]).write(path)
    return path


def _preprocess(tmp_path: Path, root: Path, recipe_text: str) -> tuple[dict, dict]:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(recipe_text)
    out = tmp_path / "shards"
    args = [
        "preprocess",
        "edf",
        "--root",
        str(root),
        "--out",
        str(out),
        "--recipe",
        str(recipe),
        "--workers",
        "2",
        "--json",
        "--no-progress",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 1), result.output
    report = json.loads((out / "preprocess_report.edf.json").read_text())
    return json.loads(result.stdout.strip().splitlines()[-1]), {entry["recording_id"]: entry for entry in report["files"]}


RECIPE = "[preprocess]\nwindow_seconds = 5.0\n[preprocess.options]\nevent_labels = { T1 = 0, T2 = 1 }\n"


def test_each_skip_says_what_the_events_did(tmp_path):
    root = tmp_path / "raw"
    _write_edf(root / "good.edf", [(1.0, 6.0, "T1"), (10.0, 6.0, "T2")])
    _write_edf(root / "rest_only.edf", [(0.0, 4.0, "T0"), (5.0, 4.0, "T0"), (12.0, 1.0, "BAD_blink")])
    _write_edf(root / "short_events.edf", [(1.0, 2.0, "T1"), (8.0, 3.5, "T2")])
    _write_edf(root / "late_events.edf", [(2.0, 1.0, "T0"), (25.0, 6.0, "T1")])
    _write_edf(root / "broken.edf", [])
    (root / "broken.edf").write_bytes(b"0       not an EDF header at all".ljust(300, b"x"))  # whole, not cut short: not EDF
    summary, files = _preprocess(tmp_path, root, RECIPE)
    assert summary["written"] == 1
    assert summary["skipped_by_reason"] == {"events_too_short": 1, "no_events": 2, "unreadable": 1}
    assert files["rest_only"]["message"] == (
        f"{root / 'rest_only.edf'}: no annotation named T1, T2 (the file has BAD_blink, T0); "
        "check preprocess.options.event_labels"
    )
    assert files["late_events"]["message"] == (
        f"{root / 'late_events.edf'}: no annotation named T1, T2 (the file has T0, and 1 annotation lying outside "
        "the recording was dropped); check preprocess.options.event_labels"
    )
    assert files["short_events"]["message"] == (
        f"{root / 'short_events.edf'}: the longest of the 2 labelled events lasts 3.500 s, shorter than the 5 s window; "
        "lower preprocess.window_seconds to 3.5 or less"
    )
    assert files["broken"]["message"].startswith(f"{root / 'broken.edf'}: not a readable recording (")


def test_events_outside_the_recording_are_counted_and_windows_keep_their_start(tmp_path, caplog):
    # 20 s: T1 [1, 7) inside, T2 [16, 23) runs past the end, T1 at 25 s lies outside it.
    path = _write_edf(tmp_path / "raw" / "sub1" / "run.edf", [(1.0, 6.0, "T1"), (16.0, 7.0, "T2"), (25.0, 2.0, "T1")])
    options = EdfOptions(event_labels={"T1": 0, "T2": 1})
    (ref,) = EdfCorpus(options).discover(tmp_path / "raw")
    section = PreprocessSection(corpus="edf", window_seconds=2.0)
    config = resolve_chain_config(section, EdfCorpus)
    with caplog.at_level(logging.WARNING):
        result = process_recording("edf", options.model_dump(mode="json"), ref, config, str(tmp_path / "shards"))
    assert result.status == "written", result.message
    shard = read_shard(Path(result.shard))
    assert (shard["attrs"]["events_outside"], shard["attrs"]["events_clipped"]) == (1, 1)
    assert f"{path}: 1 labelled event lies outside the recording (0-20.0 s) and were dropped, 1 ran past its edges" in caplog.text
    # Windows of 2 s inside [1, 7) and inside [16, 20): where each one starts in the recording.
    assert shard["window_start_seconds"].tolist() == [1.0, 3.0, 5.0, 16.0, 18.0]
    assert shard["y"].tolist() == [0, 0, 0, 1, 1]


def test_an_event_window_past_the_end_is_clipped_and_counted(tmp_path):
    _write_edf(tmp_path / "raw" / "a.edf", [(3.0, 0.0, "T1"), (19.0, 0.0, "T2")])
    options = EdfOptions(event_labels={"T1": 0, "T2": 1}, event_window=(0.0, 4.0))
    (ref,) = EdfCorpus(options).discover(tmp_path / "raw")
    config = resolve_chain_config(PreprocessSection(corpus="edf", window_seconds=1.0), EdfCorpus)
    result = process_recording("edf", options.model_dump(mode="json"), ref, config, str(tmp_path / "shards"))
    shard = read_shard(Path(result.shard))
    assert shard["attrs"]["events_clipped"] == 1 and "events_outside" not in shard["attrs"]
    assert shard["window_start_seconds"].tolist() == [3.0, 4.0, 5.0, 6.0, 19.0]


def test_discovery_names_what_matched_nothing(tmp_path):
    _write_edf(tmp_path / "raw" / "run1.edf", [])
    with pytest.raises(UsageError, match=r"no file there ends in \.bdf; check the folder or preprocess\.options\.extensions"):
        EdfCorpus(EdfOptions(extensions=[".bdf"])).discover(tmp_path / "raw")
    with pytest.raises(UsageError, match=r"subject_pattern '\(\?P<subject>S\\\\d\+\)' does not match run1\.edf"):
        EdfCorpus(EdfOptions(subject_pattern=r"(?P<subject>S\d+)")).discover(tmp_path / "raw")
