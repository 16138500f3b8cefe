"""Recording ids are unique within a run, and the report counts exactly the shards on disk."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import mne
import numpy as np
import pytest
from fixtures.brainvision import write_brainvision
from fixtures.cli_output import assert_one_error_line
from fixtures.edf_files import preprocess, write_eeg
from fixtures.eeglab import write_eeglab
from fixtures.shards import read_shard

from biofound_cli.corpora.base import RecordingRef
from biofound_cli.store.recording_ids import unique_recording_ids


def ref(path: str, recording_id: str) -> RecordingRef:
    return RecordingRef(path=Path(path), recording_id=recording_id, subject="s")


def test_ids_that_collide_take_their_extension_or_the_later_file_is_left_out():
    kept, duplicates = unique_recording_ids([
        ref("r/x.edf", "x"), ref("r/x.bdf", "x"), ref("r/y.fif.gz", "y"), ref("r/y.fif", "y"),
        ref("r/a/b.edf", "a-b"), ref("r/a-b.edf", "a-b"), ref("r/C.edf", "C"), ref("r/c.edf", "c"), ref("r/z.edf", "z"),
    ])  # fmt: skip
    assert [r.recording_id for r in kept] == ["C", "a-b", "x_bdf", "x_edf", "y_fif", "y_fif_gz", "z"]
    assert sorted((d.ref.path.as_posix(), d.kept.path.as_posix()) for d in duplicates) == [
        ("r/a/b.edf", "r/a-b.edf"), ("r/c.edf", "r/C.edf")
    ]  # fmt: skip
    assert any("r/a/b.edf: has the recording id 'a-b' of r/a-b.edf" in d.message for d in duplicates)


def test_an_extended_id_another_file_already_has_is_left_out():
    kept, duplicates = unique_recording_ids([ref("r/x.edf", "x"), ref("r/x.bdf", "x"), ref("r/x_edf.fif", "x_edf")])
    assert [r.path.name for r in kept] == ["x.bdf", "x_edf.fif"]
    assert [(d.ref.path.name, d.kept.path.name) for d in duplicates] == [("x.edf", "x_edf.fif")]


def shards_on_disk(out: Path) -> dict[str, int]:
    """Shard name → number of windows, read from the files."""
    counts = {}
    for path in sorted((out / "edf").glob("*.h5")):
        with h5py.File(path, "r") as handle:
            counts[path.name] = handle["x"].shape[0]
    return counts


def reports(out: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(out.glob("preprocess_report*.json"))]


@pytest.fixture(scope="module")
def two_formats(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two_formats")
    write_eeg(root / "test_generator.edf", seconds=30.0)
    write_eeg(root / "test_generator.bdf", seconds=40.0, fmt="bdf")
    write_eeg(root / "other.edf", seconds=20.0)
    return root


def test_one_stem_in_two_formats_gives_two_shards(two_formats, tmp_path):
    out = tmp_path / "out"
    result = preprocess(two_formats, out, "--workers", "2")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    on_disk = shards_on_disk(out)
    assert on_disk == {"other.h5": 4, "test_generator_bdf.h5": 8, "test_generator_edf.h5": 6}
    assert (summary["found"], summary["written"], summary["windows_written"]) == (3, 3, sum(on_disk.values()))
    sources = {Path(entry["source_path"]).name: entry["recording_id"] for entry in reports(out)[0]["files"]}
    assert sources == {
        "other.edf": "other",
        "test_generator.bdf": "test_generator_bdf",
        "test_generator.edf": "test_generator_edf",
    }
    again = json.loads(preprocess(two_formats, out).stdout)
    assert (again["written"], again["already_done"]) == (0, 3)


def test_slices_agree_on_the_ids(two_formats, tmp_path):
    out = tmp_path / "out"
    for index in (1, 2):
        result = preprocess(two_formats, out, "--shard", f"{index}/2")
        assert result.exit_code == 0, result.output
    on_disk = shards_on_disk(out)
    assert sorted(on_disk) == ["other.h5", "test_generator_bdf.h5", "test_generator_edf.h5"]
    sliced = reports(out)
    assert [report["slice"] for report in sliced] == ["1/2", "2/2"]
    assert sum(report["found"] for report in sliced) == sum(report["written"] for report in sliced) == 3
    assert sum(report["windows"] for report in sliced) == sum(on_disk.values())


def test_two_files_with_one_id_and_one_format_keep_the_first(tmp_path):
    root = tmp_path / "raw"
    write_eeg(root / "a" / "b.edf", seconds=20.0)
    write_eeg(root / "a-b.edf", seconds=30.0)
    result = preprocess(root, tmp_path / "out")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["found"], summary["written"], summary["skipped_by_reason"]) == (2, 1, {"duplicate_id": 1})
    assert shards_on_disk(tmp_path / "out") == {"a-b.h5": 6}
    assert "skipped (duplicate_id):" in result.stderr and "a/b.edf: has the recording id 'a-b' of" in result.stderr


def test_a_shard_written_from_another_file_is_not_already_done(tmp_path):
    first, second, out = tmp_path / "first", tmp_path / "second", tmp_path / "out"
    write_eeg(first / "rec.edf", seconds=20.0)
    write_eeg(second / "rec.bdf", seconds=30.0, fmt="bdf")
    write_eeg(second / "other.edf", seconds=20.0)
    assert preprocess(first, out).exit_code == 0
    result = preprocess(second, out)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["written"], summary["already_done"], summary["skipped_by_reason"]) == (1, 0, {"duplicate_id": 1})
    assert "rec.bdf: its shard" in result.stderr and "holds another file" in result.stderr and "--force" in result.stderr
    assert shards_on_disk(out) == {"other.h5": 4, "rec.h5": 4}  # the first file's shard, untouched
    forced = json.loads(preprocess(second, out, "--force").stdout)
    assert (forced["written"], forced["skipped"]) == (2, 0) and shards_on_disk(out)["rec.h5"] == 6


def test_the_same_corpus_read_from_another_place_is_already_done(tmp_path):
    write_eeg(tmp_path / "here" / "sub" / "rec.edf", seconds=20.0)
    assert preprocess(tmp_path / "here", tmp_path / "out").exit_code == 0
    shutil.copytree(tmp_path / "here", tmp_path / "moved")
    summary = json.loads(preprocess(tmp_path / "moved", tmp_path / "out").stdout)
    assert (summary["written"], summary["already_done"]) == (0, 1)


def test_a_recording_rewritten_since_its_shard_is_processed_again(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_eeg(raw / "a.edf", seconds=20.0)
    write_eeg(raw / "b.edf", seconds=20.0)
    assert preprocess(raw, out, "--workers", "2").exit_code == 0
    with h5py.File(out / "edf" / "a.h5") as shard:
        assert int(shard.attrs["source_bytes"]) == (raw / "a.edf").stat().st_size
    write_eeg(raw / "a.edf", seconds=30.0)  # exported again, longer
    summary = json.loads(preprocess(raw, out, "--workers", "2").stdout)
    assert (summary["written"], summary["already_done"]) == (1, 1)
    assert shards_on_disk(out) == {"a.h5": 6, "b.h5": 4}
    stamp = (raw / "b.edf").stat()
    os.utime(raw / "b.edf", ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))  # the same size, written again
    summary = json.loads(preprocess(raw, out, "--workers", "2").stdout)
    assert (summary["written"], summary["already_done"]) == (1, 1)
    again = json.loads(preprocess(raw, out, "--workers", "2").stdout)
    assert (again["written"], again["already_done"]) == (0, 2)


def test_a_brainvision_recording_whose_data_file_is_rewritten_is_processed_again(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    signal = np.random.default_rng(0).normal(scale=20.0, size=(2, 2000))
    for name in ("a", "b"):
        write_brainvision(raw / f"{name}.vhdr", signal, 100.0, ["C3", "C4"])
    assert preprocess(raw, out, "--workers", "2").exit_code == 0
    before, stamp = read_shard(out / "edf" / "a.h5")["x"], (raw / "a.eeg").stat()
    # Exported again with other samples, the header untouched: the same size, and an older time (rsync -t).
    (raw / "a.eeg").write_bytes(np.asarray(signal[::-1].T, dtype="<f4").tobytes())
    os.utime(raw / "a.eeg", ns=(stamp.st_atime_ns, stamp.st_mtime_ns - 10**9))
    summary = json.loads(preprocess(raw, out, "--workers", "2").stdout)
    assert (summary["written"], summary["already_done"]) == (1, 1)
    assert not np.allclose(read_shard(out / "edf" / "a.h5")["x"], before)
    again = json.loads(preprocess(raw, out, "--workers", "2").stdout)
    assert (again["written"], again["already_done"]) == (0, 2)


def test_a_re_run_with_another_window_does_not_count_the_old_shards_as_done(tmp_path):
    write_eeg(tmp_path / "raw" / "rec.edf", seconds=20.0)
    out = tmp_path / "out"
    assert preprocess(tmp_path / "raw", out).exit_code == 0
    report_before = (out / "preprocess_report.edf.json").read_text()
    line = assert_one_error_line(preprocess(tmp_path / "raw", out, "--set", "preprocess.window_seconds=2"), 2)
    assert (
        "preprocess_report.edf.json was written with other preprocess settings" in line
        and "config.window_seconds 5.0 vs 2.0" in line
    )
    assert "--force" in line and "another --out" in line
    assert (out / "preprocess_report.edf.json").read_text() == report_before  # nothing was started
    forced = json.loads(preprocess(tmp_path / "raw", out, "--set", "preprocess.window_seconds=2", "--force").stdout)
    assert (forced["written"], forced["windows_written"]) == (1, 10) and shards_on_disk(out) == {"rec.h5": 10}
    again = json.loads(preprocess(tmp_path / "raw", out, "--set", "preprocess.window_seconds=2").stdout)
    assert (again["written"], again["already_done"]) == (0, 1)


def test_shards_that_match_no_recording_are_pointed_out(tmp_path):
    write_eeg(tmp_path / "raw" / "x.edf", seconds=20.0)
    assert preprocess(tmp_path / "raw", tmp_path / "out").exit_code == 0
    write_eeg(tmp_path / "raw" / "x.bdf", seconds=20.0, fmt="bdf")  # now x.edf is x_edf
    result = preprocess(tmp_path / "raw", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "1 shard matches no recording found under the root this time (x.h5)" in result.stderr


def test_a_recording_whose_second_file_is_rewritten_is_processed_again(tmp_path):
    """A split FIF recording's raw-1.fif, an EEGLAB set's data file of another name: the stamp covered neither."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    signal = np.random.default_rng(0).normal(scale=20.0, size=(2, 150_000))
    info = mne.create_info(["C3", "C4"], 100.0, "eeg")
    # MNE keeps 1 MB free at the end of each file: 2 MB splits hold ~1 MB of samples each.
    mne.io.RawArray(signal * 1e-6, info, verbose="error").save(raw / "long_raw.fif", split_size="2MB", verbose="error")
    write_eeglab(raw / "run1.set", signal[:, :2000], 100.0, ["C3", "C4"], data_file="session-7.fdt")
    assert sorted(path.name for path in raw.iterdir()) == ["long_raw-1.fif", "long_raw.fif", "run1.set", "session-7.fdt"]
    first = json.loads(preprocess(raw, out, "--workers", "2").stdout)
    assert (first["found"], first["written"]) == (2, 2)  # long_raw-1.fif is no recording of its own
    before = read_shard(out / "edf" / "run1.h5")["x"]

    # The second part written again (a copy refreshed), and the data file exported again with other samples.
    (raw / "long_raw-1.fif").write_bytes((raw / "long_raw-1.fif").read_bytes())
    stamp = (raw / "session-7.fdt").stat()
    (raw / "session-7.fdt").write_bytes(np.asarray(-signal[:, :2000].T, dtype="<f4").tobytes())
    os.utime(raw / "session-7.fdt", ns=(stamp.st_atime_ns, stamp.st_mtime_ns - 10**9))  # an older time (rsync -t)
    again = json.loads(preprocess(raw, out, "--workers", "2").stdout)

    assert (again["written"], again["already_done"]) == (2, 0)
    assert np.allclose(read_shard(out / "edf" / "run1.h5")["x"], -before, atol=1e-3)
    third = json.loads(preprocess(raw, out, "--workers", "2").stdout)
    assert (third["written"], third["already_done"]) == (0, 2)
