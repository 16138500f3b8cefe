from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures.shards import DEFAULT_CHANNELS, write_corpus, write_shard

from biofound_cli.atomic import temporary_name
from biofound_cli.errors import DataError, UsageError
from biofound_cli.recipes.pack import PackSection
from biofound_cli.signals.chain import FLOAT16_MAX
from biofound_cli.store.dataset import read_packed_info
from biofound_cli.store.packer import pack_shards
from biofound_cli.store.splits import SPLITS, assign_subjects


def pack(shards: Path, out: Path, **fields):
    return pack_shards(shards, out, PackSection(**fields))


def subjects_by_split(out: Path) -> dict[str, set[str]]:
    found = {}
    for name in SPLITS:
        path = out / f"{name}.h5"
        if not path.exists():
            found[name] = set()
            continue
        with h5py.File(path) as handle:
            names = [s.decode() for s in handle["subjects"][()]]
            found[name] = {names[i] for i in handle["subject"][()]}
    return found


def test_subjects_are_disjoint_even_with_two_labels(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=12, windows_per_subject=3)
    # One patient recorded under both labels, in two shards.
    write_shard(tmp_path / "shards" / "fake" / "twice_a.h5", subject="patient_x", label=0, n_windows=3)
    write_shard(tmp_path / "shards" / "fake" / "twice_b.h5", subject="patient_x", label=1, n_windows=3)
    result = pack(tmp_path / "shards", tmp_path / "packed")
    found = subjects_by_split(tmp_path / "packed")
    assert not found["train"] & found["val"] and not found["train"] & found["test"] and not found["val"] & found["test"]
    assert sum(len(s) for s in found.values()) == 13
    assert sum(result.windows.values()) == 12 * 3 + 6
    manifest = json.loads((tmp_path / "packed" / "splits.json").read_text())
    assert {name: set(manifest["subjects"][name]) for name in SPLITS} == found


def test_same_seed_same_split_other_seed_other_split(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=20, windows_per_subject=2)
    pack(tmp_path / "shards", tmp_path / "a", seed=1)
    pack(tmp_path / "shards", tmp_path / "b", seed=1)
    pack(tmp_path / "shards", tmp_path / "c", seed=2)
    assert subjects_by_split(tmp_path / "a") == subjects_by_split(tmp_path / "b")
    assert subjects_by_split(tmp_path / "a") != subjects_by_split(tmp_path / "c")
    with h5py.File(tmp_path / "a" / "test.h5") as a, h5py.File(tmp_path / "b" / "test.h5") as b:
        np.testing.assert_array_equal(a["x"][()], b["x"][()])
    # The fingerprint a resume checks: the same for the same split packed again, another for the
    # other seed's split of the same number of windows.
    a, b, c = (read_packed_info(tmp_path / name / "train.h5") for name in "abc")
    assert a.n_windows == c.n_windows and a.fingerprint == b.fingerprint != c.fingerprint


def test_split_balanced_by_windows_not_subjects():
    counts = {"big": 80, **{f"s{i}": 2 for i in range(10)}}
    result = assign_subjects(counts, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)
    windows = {name: sum(n for s, n in counts.items() if result.splits[s] == name) for name in SPLITS}
    assert result.splits["big"] == "train"
    assert windows["val"] > 0 and windows["test"] > 0
    assert abs(windows["train"] - 80) <= 4


def test_one_subject_goes_to_train_with_a_warning(tmp_path):
    write_shard(tmp_path / "shards" / "only.h5", subject="alone", n_windows=5)
    result = pack(tmp_path / "shards", tmp_path / "packed")
    assert result.windows == {"train": 5, "val": 0, "test": 0}
    assert not (tmp_path / "packed" / "val.h5").exists()
    # One warning for both empty splits, not one per split plus a third saying the same.
    first = [
        "splits 'val' and 'test' are empty: 1 subject cannot fill train, val and test without sharing a subject; "
        "add recordings or set pack.val and pack.test to 0"
    ]
    assert result.warnings == first
    # Packed again (splits.json reused): the same reason, not "its subjects' shards are gone" for splits it never filled.
    again = pack(tmp_path / "shards", tmp_path / "packed")
    assert again.split_status == "reused" and again.warnings == first


def test_two_subjects_fill_train_and_val(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=2, windows_per_subject=3)
    result = pack(tmp_path / "shards", tmp_path / "packed")
    assert result.subjects == {"train": 1, "val": 1, "test": 0}
    assert any("'test' is empty" in w for w in result.warnings)
    # evaluate said "run `biofound pack SHARDS --out packed` first", which gives the same folder again.
    with pytest.raises(UsageError) as missing:
        read_packed_info(tmp_path / "packed" / "test.h5")
    packed = tmp_path / "packed"
    assert missing.value.message == (
        f"{packed / 'test.h5'}: pack left split 'test' empty, so it wrote no file ({packed / 'splits.json'}: "
        "windows 3 in train, 3 in val); add recordings of more subjects and pack again, or leave this split out"
    )


@pytest.mark.parametrize("layout", ["copy", "virtual"])
def test_every_split_file_has_the_classes_of_all_shards(tmp_path, layout):
    """Integer labels without names, class 2 held by one subject: that subject's split alone counted 3 classes,
    so train.h5 said 2 and a model fine-tuned on it got a head too small for val or test."""
    for index, label in enumerate([0, 0, 0, 0, 1, 1, 1, 1, 2]):
        write_shard(
            tmp_path / "shards" / f"r{index}.h5", subject=f"s{index}", label=label, task="mcc", label_names=(), seed=index
        )
    result = pack(tmp_path / "shards", tmp_path / "packed", seed=3, layout=layout)
    assert "2" not in result.class_counts["train"] and set(result.files) == set(SPLITS)
    assert {name: read_packed_info(path).num_classes for name, path in result.files.items()} == dict.fromkeys(SPLITS, 3)


def test_official_splits_are_honoured(tmp_path):
    shards = tmp_path / "shards"
    write_shard(shards / "a.h5", subject="a", split="test", n_windows=4)
    write_shard(shards / "b.h5", subject="b", window_split=["train", "train", "val", "test"], n_windows=4)
    write_shard(shards / "c.h5", subject="c", window_split=["val", "", "", "test"], n_windows=4)
    for i in range(6):
        write_shard(shards / f"free{i}.h5", subject=f"free{i}", n_windows=4, split="train")
    pack(shards, tmp_path / "packed")
    manifest = json.loads((tmp_path / "packed" / "splits.json").read_text())
    recordings = manifest["recordings"]
    assert recordings["a"]["split"] == "test"
    assert recordings["b"]["split"] == {"test": 1, "train": 2, "val": 1}
    # Windows without an official split follow their subject's official majority (val here).
    assert recordings["c"]["split"] == {"test": 1, "val": 3}
    assert all(recordings[f"free{i}"]["split"] == "train" for i in range(6))


def test_val_is_carved_from_official_train_subjects_when_there_is_no_official_val(tmp_path):
    shards = tmp_path / "shards"
    for i in range(2):
        write_shard(shards / f"eval{i}.h5", subject=f"eval{i}", n_windows=4, split="test")
    for i in range(8):
        write_shard(shards / f"train{i}.h5", subject=f"train{i}", n_windows=4, split="train")
    result = pack(shards, tmp_path / "packed")
    manifest = json.loads((tmp_path / "packed" / "splits.json").read_text())
    assert {manifest["recordings"][f"eval{i}"]["split"] for i in range(2)} == {"test"}
    assert {manifest["recordings"][f"train{i}"]["split"] for i in range(8)} == {"train", "val"}
    assert result.windows == {"train": 28, "val": 4, "test": 8}


def test_float16_clipping_is_counted(tmp_path):
    x = np.zeros((3, 4, 16), dtype=np.float32)
    x[0, 0, :3] = [1e6, -1e6, 70000.0]
    write_shard(tmp_path / "shards" / "loud.h5", subject="loud", x=x)
    result = pack(tmp_path / "shards", tmp_path / "packed", dtype="float16")
    assert result.clipped_values == 3
    with h5py.File(tmp_path / "packed" / "train.h5") as handle:
        assert handle["x"].dtype == np.float16
        assert handle.attrs["clipped_values"] == 3
        assert np.isfinite(handle["x"][()]).all()
        assert handle["x"][0, 0, 0] == np.float16(FLOAT16_MAX)


def test_attrs_and_datasets_present(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=5, windows_per_subject=3)
    pack(tmp_path / "shards", tmp_path / "packed", seed=9)
    with h5py.File(tmp_path / "packed" / "train.h5") as handle:
        attrs = handle.attrs
        for key in (
            "split",
            "seed",
            "task",
            "num_classes",
            "label_names",
            "channel_names",
            "sfreq",
            "schema_version",
            "corpus",
            "window_seconds",
            "preprocess_config",
            "biofound_version",
        ):
            assert key in attrs, key
        assert attrs["split"] == "train" and attrs["seed"] == 9 and attrs["num_classes"] == 2
        assert "subject" not in attrs and "source_path" not in attrs
        n = handle["x"].shape[0]
        assert handle["x"].dtype == np.float32 and handle["x"].chunks is None  # contiguous
        assert handle["y"].shape == (n,) and handle["recording_index"].dtype == np.int32
        recordings = [r.decode() for r in handle["recordings"][()]]
        # Window content matches its source shard window.
        rec = recordings[handle["recording_index"][0]]
        with h5py.File(tmp_path / "shards" / f"{rec}.h5") as shard:
            np.testing.assert_array_equal(handle["x"][0], shard["x"][handle["window_index"][0]])
    assert not list((tmp_path / "packed").glob("*.tmp*"))


def test_shards_of_two_chains_pack_the_distinct_chains_in_place_of_one(tmp_path):
    """Shards of two corpora packed together have no one chain: the split lists both, most shards first."""
    paths = write_corpus(tmp_path / "shards", n_subjects=6, windows_per_subject=3)
    other = {"corpus": "table", "l_freq": 0.5}
    for path in paths[:2]:
        with h5py.File(path, "a") as handle:
            handle.attrs["preprocess_config"] = json.dumps(other)
    pack(tmp_path / "shards", tmp_path / "packed", seed=9)
    info = read_packed_info(tmp_path / "packed" / "train.h5")
    assert info.preprocessing is None
    assert info.preprocessing_chains == [{"l_freq": 0.1, "h_freq": 75.0}, other]
    # Those shards' chain changed, their windows and ids not: a resume on the re-pack went on as over the same split.
    for path in paths[:2]:
        with h5py.File(path, "a") as handle:
            handle.attrs["preprocess_config"] = json.dumps({**other, "l_freq": 1.0})
    pack(tmp_path / "shards", tmp_path / "rechained", seed=9)
    assert read_packed_info(tmp_path / "rechained" / "train.h5").fingerprint != info.fingerprint != ""
    write_corpus(tmp_path / "agreeing", n_subjects=6, windows_per_subject=3)
    pack(tmp_path / "agreeing", tmp_path / "one", seed=9)
    agreeing = read_packed_info(tmp_path / "one" / "train.h5")
    assert (agreeing.preprocessing, agreeing.preprocessing_chains) == ({"l_freq": 0.1, "h_freq": 75.0}, None)


def test_inconsistent_shards_are_skipped_or_reordered(tmp_path):
    shards = tmp_path / "shards"
    write_corpus(shards, n_subjects=4, windows_per_subject=2)
    write_shard(shards / "other_rate.h5", subject="r", sfreq=200.0)
    write_shard(shards / "other_chans.h5", subject="c", ch_names=("A", "B", "C", "D"))
    x = np.random.default_rng(0).standard_normal((2, 4, 16)).astype(np.float32)
    reordered = ("T5-O1", "T3-T5", "F7-T3", "FP1-F7")
    y = np.array([[0, 0, 0, 1], [1, 0, 0, 0]])
    write_shard(shards / "reordered.h5", subject="o", ch_names=reordered, x=x, y=y, per_channel=True)
    write_shard(shards / "perch_ok.h5", subject="p", per_channel=True, label=0)
    (shards / "broken.h5").write_bytes(b"not hdf5")
    # Unfinished writes, never packed: a temporary ending in .h5 (a writer's suffix hint), and the name older biofound gave.
    temporary_name(shards / "half.h5", suffix_hint=".h5").write_bytes(b"unfinished")
    (shards / "half.h5.partial-123").write_bytes(b"unfinished")
    result = pack(shards, tmp_path / "packed", train=1.0, val=0.0, test=0.0)
    reasons = {shard.recording_id: shard.reason for shard in result.skipped}
    assert "sfreq 200 Hz" in reasons["other_rate"]
    # Named by the shard's path and the raw file it was written from, which a user can find.
    named = {shard.recording_id: shard.named() for shard in result.skipped}
    assert named["other_rate"] == f"{shards / 'other_rate.h5'} (shard of /raw/other_rate.edf)"
    assert named["broken"] == str(shards / "broken.h5")
    assert reasons["other_chans"].startswith("channel names differ from the 4 shards packed (missing [")
    assert reasons["other_chans"].endswith(
        "set preprocess.channels (or preprocess.montage) to channels every file has and re-run preprocess with --force"
    )
    assert "not a readable HDF5" in reasons["broken"]
    # The per-channel shards disagree with the per-window majority on label shape.
    assert "label shape" in reasons["reordered"]
    assert set(reasons) == {"other_rate", "other_chans", "broken", "reordered", "perch_ok"}


@pytest.mark.parametrize("first", ["tcp", "other"])
def test_a_tie_between_two_channel_sets_goes_to_the_first_shard_in_name_order_and_says_so(tmp_path, first):
    # Two recordings of each set: which set was packed depended on nothing a user could see, and
    # each skipped shard was said to differ from "the other shards", as many as itself.
    shards = tmp_path / "shards"
    other = ("A", "B", "C", "D")
    names = {"tcp": ("b1", "d1"), "other": ("a1", "c1")} if first == "other" else {"tcp": ("a1", "c1"), "other": ("b1", "d1")}
    for channels, pair in ((DEFAULT_CHANNELS, names["tcp"]), (other, names["other"])):
        for name in pair:
            write_shard(shards / f"{name}.h5", subject=name, ch_names=channels)
    result = pack(shards, tmp_path / "packed", train=1.0, val=0.0, test=0.0)
    winner = DEFAULT_CHANNELS if first == "tcp" else other
    with h5py.File(tmp_path / "packed" / "train.h5") as handle:
        assert [str(name) for name in handle.attrs["channel_names"]] == list(winner)
    first_shard = shards / f"{min(names['tcp'] + names['other'])}.h5"
    lost = names["other"] if first == "tcp" else names["tcp"]
    assert sorted(shard.recording_id for shard in result.skipped) == sorted(lost)
    for shard in result.skipped:
        assert shard.reason.startswith(
            "channel names differ from the 2 shards packed (a tie of 2 groups of 2 shards, won by the group of "
            f"the first shard in name order, {first_shard}) (missing ["
        ), shard.reason
    # The same folder packs the same set again, and the same shards are skipped.
    again = pack(shards, tmp_path / "again", train=1.0, val=0.0, test=0.0)
    assert [shard.line() for shard in again.skipped] == [shard.line() for shard in result.skipped]


def test_channels_in_another_order_are_reordered(tmp_path):
    shards = tmp_path / "shards"
    write_shard(shards / "a.h5", subject="a", per_channel=True, label=0)
    x = np.random.default_rng(0).standard_normal((2, 4, 16)).astype(np.float32)
    y = np.array([[0, 0, 0, 1], [1, 0, 0, 0]])
    write_shard(shards / "b.h5", subject="b", ch_names=("T5-O1", "T3-T5", "F7-T3", "FP1-F7"), x=x, y=y, per_channel=True)
    result = pack(shards, tmp_path / "packed", train=1.0, val=0.0, test=0.0)
    assert result.skipped == []
    with h5py.File(tmp_path / "packed" / "train.h5") as handle:
        np.testing.assert_array_equal(handle["x"][6:], x[:, ::-1])
        np.testing.assert_array_equal(handle["y"][6:], y[:, ::-1])


def test_splits_json_reused_and_shard_changes_reported(tmp_path):
    shards = tmp_path / "shards"
    write_corpus(shards, n_subjects=10, windows_per_subject=2)
    first = pack(shards, tmp_path / "packed", seed=5)
    manifest = json.loads((tmp_path / "packed" / "splits.json").read_text())
    assert first.split_status == "new"
    assert pack(shards, tmp_path / "packed", seed=5).split_status == "reused"
    write_shard(shards / "fake" / "late.h5", subject="late")
    updated = pack(shards, tmp_path / "packed", seed=5)
    assert updated.split_status == "updated" and "+1/-0 recordings" in updated.split_message
    again = json.loads((tmp_path / "packed" / "splits.json").read_text())
    for subject, split in manifest["assignments"].items():
        assert again["assignments"][subject] == split
    assert pack(shards, tmp_path / "packed", seed=6).split_status == "replaced"


def test_preprocess_reports_are_merged(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=3)
    (tmp_path / "shards" / "preprocess_report_0.json").write_text(json.dumps({"written": 2, "skipped": {"bad edf": 1}}))
    (tmp_path / "shards" / "preprocess_report_1.json").write_text(json.dumps({"written": 1, "skipped": {"bad edf": 2}}))
    result = pack(tmp_path / "shards", tmp_path / "packed")
    merged = result.summary()["preprocess"]
    # Reports of an older biofound (a breakdown under the bare name) are read, and said in the new words.
    assert merged["reports"] == 2 and merged["written"] == 3
    assert merged["skipped"] == 3 and merged["skipped_by_reason"] == {"bad edf": 3}


def test_a_missing_slice_report_and_an_unreadable_one_are_warned(tmp_path, caplog):
    write_corpus(tmp_path / "shards", n_subjects=3)
    config = {"l_freq": 0.1, "notch_hz": [60.0]}
    for index in (1, 3):
        # Written by an older biofound: n_clipped at the top and in each entry of files.
        entry = {"recording_id": f"fake/r{index}", "status": "written", "n_windows": 2, "n_clipped": index}
        report = {"corpus": "fake", "config": config, "options": {}, "slice": f"{index}/3", "found": 1, "n_clipped": index}
        report["files"] = [entry]
        (tmp_path / "shards" / f"preprocess_report.slice-{index}-of-3.json").write_text(json.dumps(report))
    (tmp_path / "shards" / "preprocess_report.slice-2-of-3.json").write_text("{truncated")
    with caplog.at_level("WARNING"):
        result = pack(tmp_path / "shards", tmp_path / "packed")
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "not a readable preprocess report" in messages and "no preprocess report of slice 2/3" in messages
    assert result.preprocess.settings["config"] == config and result.preprocess.n_clipped == 4
    assert result.preprocess.clipped_by_recording == {"fake/r1": 1, "fake/r3": 3}


def test_no_usable_shard_is_an_error(tmp_path):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "junk.h5").write_bytes(b"junk")
    with pytest.raises(DataError, match="the one shard cannot be packed"):
        pack(tmp_path / "shards", tmp_path / "packed")


def test_a_split_whose_subjects_were_removed_says_why_it_stays_empty(tmp_path):
    # An updated split keeps every known subject where it was; once val's only subject's shard was removed,
    # the warning said "9 subject(s) cannot fill train, val and test without sharing a subject".
    write_corpus(tmp_path / "shards", n_subjects=10, windows_per_subject=2)
    pack(tmp_path / "shards", tmp_path / "packed")
    [gone] = subjects_by_split(tmp_path / "packed")["val"]
    (tmp_path / "shards" / "fake" / f"rec{gone[-3:]}.h5").unlink()
    result = pack(tmp_path / "shards", tmp_path / "packed")
    assert result.split_status == "updated" and result.windows["val"] == 0
    assert result.warnings[0] == (
        "split 'val' is empty: splits.json placed no remaining subject there (its subjects' shards are gone) and the 9 "
        "subjects it placed elsewhere keep their split; delete splits.json in the packed folder to split every subject "
        "anew (models trained on the old split must not be evaluated on the new one), or add recordings"
    )
    # Test's one subject holds one class, a warning of its own (tests/unit/cli/test_pack_cmd.py).
    assert [warning.split(":")[0] for warning in result.warnings[1:]] == ["split 'test' holds windows of class 'normal' alone"]


def test_an_empty_val_with_official_splits_says_which_subjects_pack_placed():
    # UCI EMG's subjects 01 (officially train) and 31 (test): val stayed empty "as 1 subject without an
    # official split cannot fill" it, while subject 01 has one; pack chooses its split, between train and val.
    result = assign_subjects(
        {"01": 12}, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=42, fixed_counts={"test": 12}, allowed={"01": ("train", "val")}
    )
    assert result.splits == {"01": "train"}
    assert result.warnings == [
        "split 'val' is empty: 1 subject whose split pack chooses (officially train, or of no split) cannot fill train, "
        "val and test without sharing a subject; add recordings or set pack.val to 0"
    ]
