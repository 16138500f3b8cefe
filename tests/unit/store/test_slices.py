"""Array-job slices: parsing --shard, and a deterministic, size-balanced partition of the recordings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora.base import RecordingRef
from biofound_cli.errors import UsageError
from biofound_cli.store.slices import Slice, assign_slices, parse_slice, slice_refs


def _refs(sizes: dict[str, int]) -> list[RecordingRef]:
    return [RecordingRef(path=Path(f"/nowhere/{name}.edf"), recording_id=name, subject=name) for name in sizes]


def test_parse_explicit_slice():
    assert parse_slice("2/3") == Slice(2, 3)
    assert parse_slice(" 1 / 1 ") == Slice(1, 1)
    assert parse_slice("2/3").label == "2-of-3" and str(parse_slice("2/3")) == "2/3"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("0/3", "between 1 and N"),
        ("4/3", "between 1 and N"),
        ("1/0", "between 1 and N"),
        ("two", "expected I/N"),
        ("3", "expected I/N"),
    ],
)
def test_bad_slice_specs_are_usage_errors(spec, fragment):
    with pytest.raises(UsageError) as error:
        parse_slice(spec, environ={})
    assert f"--shard {spec}" in error.value.message or f"--shard '{spec}'" in error.value.message
    assert fragment in error.value.message


@pytest.mark.parametrize(
    ("task_id", "task_min", "expected"),
    [("0", "0", Slice(1, 4)), ("3", "0", Slice(4, 4)), ("5", "5", Slice(1, 4)), ("2", None, Slice(3, 4))],
)
def test_auto_reads_the_slurm_array_task(task_id, task_min, expected):
    environ = {"SLURM_ARRAY_TASK_ID": task_id, "SLURM_ARRAY_TASK_COUNT": "4"}
    if task_min is not None:
        environ["SLURM_ARRAY_TASK_MIN"] = task_min
    assert parse_slice("auto", environ=environ) == expected


def test_auto_outside_slurm_names_the_missing_variables():
    with pytest.raises(UsageError) as error:
        parse_slice("auto", environ={"SLURM_ARRAY_TASK_ID": "1"})
    assert "SLURM_ARRAY_TASK_COUNT not set" in error.value.message and "--shard I/N" in error.value.message


def test_auto_with_a_task_outside_the_array_is_an_error():
    with pytest.raises(UsageError, match="not one of 2 tasks"):
        parse_slice("auto", environ={"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "2"})


def test_largest_recordings_are_spread_first():
    sizes = {"a": 100, "b": 90, "c": 60, "d": 50, "e": 40, "f": 10}
    # a→1, b→2, c→2 (90 < 100), d→1 (100 < 150), e→1 (tie: lower index), f→2: 190 vs 160 bytes.
    assert assign_slices(list(sizes.items()), 2) == {"a": 1, "b": 2, "c": 2, "d": 1, "e": 1, "f": 2}


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.dictionaries(st.text("abcdefgh", min_size=1, max_size=6), st.integers(0, 10_000), min_size=1, max_size=30),
    count=st.integers(1, 6),
)
def test_slices_partition_the_recordings_whatever_the_listing_order(sizes, count):
    refs = _refs(sizes)
    slices = [slice_refs(refs, Slice(index, count), sizes) for index in range(1, count + 1)]
    ids = [ref.recording_id for part in slices for ref in part]
    assert sorted(ids) == sorted(sizes)  # every recording in exactly one slice
    assert all([ref.recording_id for ref in part] == sorted(ref.recording_id for ref in part) for part in slices)
    shuffled = list(reversed(refs))
    assert [slice_refs(shuffled, Slice(index, count), sizes) for index in range(1, count + 1)] == slices
    loads = [sum(sizes[ref.recording_id] for ref in part) for part in slices]
    # Largest-first onto the lightest slice: no slice exceeds another by more than one recording.
    assert max(loads) - min(loads) <= max(sizes.values())


def test_default_weights_are_file_sizes(tmp_path):
    for name, size in {"big": 5000, "mid": 3000, "small1": 1000, "small2": 1000}.items():
        (tmp_path / f"{name}.edf").write_bytes(b"x" * size)
    refs = [
        RecordingRef(path=tmp_path / f"{name}.edf", recording_id=name, subject=name)
        for name in ("big", "mid", "small1", "small2")
    ]
    assert [ref.recording_id for ref in slice_refs(refs, Slice(1, 2))] == ["big"]
    assert [ref.recording_id for ref in slice_refs(refs, Slice(2, 2))] == ["mid", "small1", "small2"]


@pytest.mark.parametrize(
    ("spec", "fragment"), [("0/3", "--shard 0/3: I must be between 1 and N"), ("auto", "--shard auto: SLURM_ARRAY_TASK_ID")]
)
def test_bad_shard_flag_exits_2_before_any_work(tmp_path, monkeypatch, spec, fragment):
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "raw").mkdir()
    result = CliRunner().invoke(
        app, ["preprocess", "tuab", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--shard", spec]
    )
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert not (tmp_path / "out").exists()
