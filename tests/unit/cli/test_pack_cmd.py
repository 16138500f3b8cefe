from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from fixtures.process_group import (
    assert_group_gone,
    assert_terminated,
    biofound,
    biofound_signalled_as_it_calls,
    start_in_own_group,
    wait_until,
)
from fixtures.shards import write_corpus, write_shard
from fixtures.small_disk import run_on_a_small_disk
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()


def test_pack_json_summary_and_files(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=10, windows_per_subject=2)
    write_shard(tmp_path / "shards" / "odd.h5", subject="odd", sfreq=100.0)
    args = ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--seed", "4", "--json", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["windows"] == {"train": 16, "val": 2, "test": 2}
    assert summary["splits_json"] == "new" and summary["seed"] == 4
    assert summary["skipped"] == 1
    assert summary["skipped_by_shard"] == {
        f"{tmp_path / 'shards' / 'odd.h5'} (shard of /raw/odd.edf)": "sfreq 100 Hz differs from 256 Hz of the 10 shards "
        "packed; set preprocess.sfreq = 256 and re-run preprocess with --force to resample every file to one rate"
    }
    for name in ("train", "val", "test"):
        with h5py.File(tmp_path / "packed" / f"{name}.h5") as handle:
            assert handle.attrs["seed"] == 4
    again = runner.invoke(app, args)
    assert json.loads(again.stdout)["splits_json"] == "reused"
    assert "reusing splits.json" in again.stderr


def test_pack_recipe_fractions_dtype_and_set(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=4, windows_per_subject=3)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"[pack]\nshards = '{tmp_path / 'shards'}'\ntrain = 0.5\nval = 0.25\ntest = 0.25\n")
    result = runner.invoke(
        app, ["pack", "--recipe", str(recipe), "--out", str(tmp_path / "packed"), "--set", "pack.dtype=float16", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["windows"] == {"train": 6, "val": 3, "test": 3} and summary["dtype"] == "float16"


def test_pack_bad_fractions_exit_2(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=2)
    result = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "p"), "--set", "pack.train=0.9"])
    assert result.exit_code == 2
    assert "must add up to 1" in result.output and "Traceback" not in result.output


def test_pack_missing_inputs(tmp_path):
    result = runner.invoke(app, ["pack", str(tmp_path / "nope"), "--out", str(tmp_path / "p")])
    assert result.exit_code == 2 and "shard folder not found" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["pack", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "--out" in result.output


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("how", [["--seed", "-1"], ["--set", "pack.seed=-1"], ["--seed", str(2**64)]])
def test_pack_bad_seed_exit_2_before_any_work(tmp_path, how):
    write_corpus(tmp_path / "shards", n_subjects=3)
    result = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "p"), *how])
    assert result.exit_code == 2, result.output
    assert len(_error_lines(result)) == 1 and "a seed is a whole number from 0 to" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "p").exists()


@pytest.mark.parametrize("out", ["/proc/biofound-packed", "/proc", "/proc/1"])
def test_pack_out_the_kernel_refuses_exit_2_before_any_work(tmp_path, out):
    # /proc/1 exists and refuses new files even to root, like a folder without write permission.
    write_corpus(tmp_path / "shards", n_subjects=3)
    result = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", out, "--json"])
    assert result.exit_code == 2, result.output
    assert len(_error_lines(result)) == 1 and f"--out {out}:" in result.stderr
    assert json.loads(result.stdout)["exit_status"] == 2


def test_pack_out_on_a_read_only_file_system_exit_2(tmp_path, monkeypatch):
    write_corpus(tmp_path / "shards", n_subjects=3)
    (tmp_path / "ro").mkdir()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr("biofound_cli.store.output_folder.tempfile.mkstemp", read_only)
    result = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "ro")])
    assert result.exit_code == 2, result.output
    assert len(_error_lines(result)) == 1 and "Read-only file system" in result.stderr
    assert list((tmp_path / "ro").iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a folder without write permission")
def test_pack_out_without_write_permission_exit_2(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=3)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(locked)])
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 2, result.output
    assert len(_error_lines(result)) == 1 and "cannot write there" in result.stderr


STOP_WHILE_COPYING = """
import os, signal, sys
from biofound_cli.store import packer
copy = packer._copy_recording
def copy_then_stop(*args, **kwargs):
    os.kill(os.getpid(), signal.{signal})  # as `timeout`, a scheduler or Ctrl-C would, with train.h5's temporary open
    return copy(*args, **kwargs)
packer._copy_recording = copy_then_stop
from biofound_cli.cli.app import app
sys.argv = ["biofound", *sys.argv[1:]]
app()
"""


@pytest.mark.parametrize(
    ("signal_name", "target"),
    [("SIGTERM", "main process"), ("SIGTERM", "process group"), ("SIGUSR1", "process group"), ("SIGINT", "main process")],
)
def test_a_stop_while_packing_is_one_line_and_leaves_no_temporary(tmp_path, signal_name, target):
    """``kill`` signals the main process; ``scancel``, a job's time limit or ``timeout`` its whole group, and
    ``sbatch --signal=USR1@N`` sends SIGUSR1 to it."""
    write_corpus(tmp_path / "shards", n_subjects=4, windows_per_subject=2)
    out = tmp_path / "packed"
    script = STOP_WHILE_COPYING.replace("{signal}", signal_name)
    if target == "process group":
        script = script.replace("os.kill(os.getpid(), ", "os.killpg(os.getpgrp(), ")
    args = ["pack", str(tmp_path / "shards"), "--out", str(out), "--json"]
    process = start_in_own_group([sys.executable, "-c", script, *args])
    stdout, stderr = process.communicate(timeout=300)
    assert_group_gone(process.pid)
    if signal_name != "SIGINT":
        assert_terminated(process, stdout, stderr, "re-run the same command", by=signal_name)
    else:
        assert process.returncode == 130, stderr
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "stopped by Ctrl-C" in errors[0] and "re-run the same command" in errors[0]
        assert "Traceback" not in stderr and json.loads(stdout)["exit_status"] == 130
    assert not out.exists()  # nothing of the pack, no temporary: not even the folder it made
    rerun = runner.invoke(app, args)
    assert rerun.exit_code == 0, rerun.output
    assert sorted(path.name for path in out.iterdir()) == ["splits.json", "test.h5", "train.h5", "val.h5"]


def _packed_files(out: Path) -> dict[str, bytes]:
    """Every entry of ``out`` (hidden ones included) by name, with a file's bytes."""
    return {path.name: path.read_bytes() if path.is_file() else b"" for path in sorted(out.iterdir())}


def test_a_pack_stopped_part_way_leaves_the_earlier_pack_whole(tmp_path):
    """Re-split with another seed, SIGTERM to the group (a job's time limit) as val is written: the old pack stays.

    The stopped run removed the earlier split files at its start and left its own train.h5 alone: a finetune
    already started on the old pack lost its val.h5, and the folder held half a pack.
    """
    write_corpus(tmp_path / "shards", n_subjects=10, windows_per_subject=2)
    out = tmp_path / "packed"
    first = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(out), "--seed", "1", "--quiet"])
    assert first.exit_code == 0 and (out / "test.h5").is_file(), first.output
    before = _packed_files(out)
    command = biofound_signalled_as_it_calls(
        "biofound_cli.store.packer:_write_split:2", "SIGTERM", "pack", tmp_path / "shards", "--out", out, "--seed", "2", "--json"
    )
    process = start_in_own_group(command)
    stdout, stderr = process.communicate(timeout=300)
    assert_group_gone(process.pid)
    assert_terminated(process, stdout, stderr, "an earlier pack there is left whole", "re-run the same command")
    assert _packed_files(out) == before  # splits.json and all three splits of seed 1, nothing beside them
    with h5py.File(out / "train.h5") as train:
        assert train.attrs["seed"] == 1


@pytest.mark.parametrize("target", ["main process", "process group"])
def test_sigterm_after_the_summary_leaves_the_finished_pack_s_status_0(tmp_path, target):
    """A job's time limit reached as the work ends: the splits are written and reported, so status 0, not 143,
    whether the signal reaches the main process only or, as ``scancel`` sends it, the whole group."""
    write_corpus(tmp_path / "shards", n_subjects=4, windows_per_subject=2)
    command = [
        sys.executable,
        "-m",
        "biofound_cli",
        "pack",
        str(tmp_path / "shards"),
        "--out",
        str(tmp_path / "packed"),
        "--json",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout is not None
    summary = json.loads(process.stdout.readline())  # printed: the process only exits from now on
    (os.kill if target == "main process" else os.killpg)(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0 and "error" not in stderr, stderr
    assert summary["windows"] == {"train": 4, "val": 2, "test": 2} and (tmp_path / "packed" / "train.h5").is_file()


def test_the_temporary_of_a_killed_pack_is_removed_by_the_next_one(tmp_path):
    """SIGKILL (the OOM killer, a scheduler's hard limit) leaves train.h5's temporary; the next pack removes it."""
    write_corpus(tmp_path / "shards", n_subjects=4, windows_per_subject=2)
    out = tmp_path / "packed"
    script = STOP_WHILE_COPYING.replace("{signal}", "SIGKILL")
    command = [sys.executable, "-c", script, "pack", str(tmp_path / "shards"), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    leftovers = [path.name for path in out.iterdir() if path.name.startswith(".staging-pack.")]
    assert len(leftovers) == 1 and not (out / "train.h5").exists()
    result = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == ["splits.json", "test.h5", "train.h5", "val.h5"]


@pytest.mark.parametrize("layout", ["copy", "virtual"])
def test_a_class_only_val_and_test_hold_is_warned_about(tmp_path, layout):
    # Three recordings, TUAB-like: the abnormal subject of the train folder was carved into val and
    # the official eval set is test, so train held only normal windows; pack said nothing.
    shards = tmp_path / "shards"
    write_shard(shards / "a.h5", subject="a", label=0, split="train", seed=1)
    write_shard(shards / "b.h5", subject="b", label=0, split="train", seed=2, n_windows=12)
    write_shard(shards / "c.h5", subject="c", label=1, split="train", seed=3)
    write_shard(shards / "d.h5", subject="d", label=1, split="test", seed=4)
    args = ["pack", str(shards), "--out", str(tmp_path / "packed"), "--json", "--no-progress", "--set", f"pack.layout={layout}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["class_counts"] == {"train": {"normal": 18}, "val": {"abnormal": 6}, "test": {"abnormal": 6}}
    warning = (
        "train holds no window of class(es) abnormal (in val and test): a model trained on it never sees them; "
        "add recordings of those classes, or another pack.seed or split fractions where subjects are split by seed"
    )
    assert f"warning: {warning}" in result.stderr
    assert warning in summary["warnings"]  # a script reading stdout alone is told too
    balanced = runner.invoke(
        app, [*args[:2], "--out", str(tmp_path / "other"), "--json", "--set", "pack.val=0", "--set", "pack.train=0.9"]
    )
    assert balanced.exit_code == 0, balanced.output
    assert "train holds no window" not in balanced.stderr
    # Only the official test set's one class is left to say (test_a_validation_split_of_one_class_is_warned_about...).
    assert [warning.split(":")[0] for warning in json.loads(balanced.stdout)["warnings"]] == [
        "split 'test' holds windows of class 'abnormal' alone"
    ]


def test_a_validation_split_of_one_class_is_warned_about_naming_what_gives_it_others(tmp_path):
    # An edf corpus whose labels_csv put the recordings of one label alone in val: validation balanced accuracy
    # and AUROC were undefined all run and early stopping watched nothing useful, and pack said nothing.
    shards = tmp_path / "shards"
    for subject, label, split in (("a", 0, "train"), ("b", 1, "train"), ("c", 0, "val"), ("d", 0, "test"), ("e", 1, "test")):
        write_shard(shards / f"{subject}.h5", subject=subject, label=label, split=split, corpus="edf", task="mcc")
    result = runner.invoke(app, ["pack", str(shards), "--out", str(tmp_path / "packed"), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["class_counts"]["val"] == {"normal": 6}
    warning = (
        "split 'val' holds windows of class 'normal' alone: its balanced accuracy, AUROC and kappa are undefined or "
        "say nothing, and early stopping on it watches nothing useful; give recordings of the other classes that "
        "split (edf: preprocess.options.labels_csv), or pack with another pack.seed or other split fractions, or add "
        "recordings of the other classes"
    )
    assert f"warning: {warning}" in result.stderr.replace("\n", " ")
    assert summary["warnings"] == [warning]


def _chunked_shard_with_damaged_index(path, damage: slice) -> None:
    """Store the shard's x chunked, as preprocess does, then overwrite bytes of its chunk index (a v1 B-tree node)."""
    with h5py.File(path, "r+") as handle:
        x = handle["x"][()]
        del handle["x"]
        handle.create_dataset("x", data=x, chunks=(2, 1, x.shape[2]))
    data = bytearray(path.read_bytes())
    node = data.find(b"TREE\x01")  # the node of a raw-data chunk index
    data[node + damage.start : node + damage.stop] = b"\xff" * (damage.stop - damage.start)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("layout", ["copy", "virtual"])
@pytest.mark.parametrize("damage", [slice(24, 88), slice(24, 32)], ids=["index", "chunk-past-the-end"])
def test_a_shard_with_a_damaged_chunk_index_is_skipped_and_named(tmp_path, layout, damage):
    # Its header read fine, so pack failed half-way through the copy with an HDF5 traceback
    # (virtual: in training's loader), instead of skipping it as an unreadable shard.
    write_corpus(tmp_path / "shards", n_subjects=6, windows_per_subject=4)
    _chunked_shard_with_damaged_index(tmp_path / "shards" / "fake" / "rec002.h5", damage)
    args = ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--json", "--set", f"pack.layout={layout}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    [(shard, reason)] = summary["skipped_by_shard"].items()
    assert (
        shard == str(tmp_path / "shards" / "fake" / "rec002.h5")
        and reason.startswith("is damaged (")
        and reason.endswith("delete it and run the same preprocess again, which writes it anew")
    )
    assert sum(summary["recordings"].values()) == 5


def test_a_shard_that_fails_to_read_while_packing_is_one_line(tmp_path):
    write_corpus(tmp_path / "shards", n_subjects=4, windows_per_subject=2)
    script = """
import errno, sys
from biofound_cli.store import packer
def unreadable(x, block):
    raise OSError(errno.EIO, "Input/output error")
packer.read_shard_windows = unreadable
from biofound_cli.cli.app import app
sys.argv = ["biofound", *sys.argv[1:]]
app()
"""
    command = [sys.executable, "-c", script, "pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error.startswith(str(tmp_path / "shards" / "fake" / "rec")) and "windows 0-1 cannot be read" in error
    assert error.endswith("delete it and run the same preprocess again, which writes it anew, then pack again")


def test_a_full_disk_while_packing_is_one_line_not_a_crash(tmp_path):
    """On a file system that fills up, HDF5's close failed after the write: a traceback, then a segmentation fault."""
    write_corpus(tmp_path / "shards", n_subjects=10, windows_per_subject=640)  # train.h5 ~1.3 MB
    packed = tmp_path / "small" / "packed"
    done = run_on_a_small_disk(tmp_path / "small", biofound("pack", tmp_path / "shards", "--out", packed, "--json"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout)["error"].startswith(f"{packed / 'train.h5'}: No space left on device; free space")
    assert ".train.h5." not in done.stderr  # the temporary is removed


def _contents(folder: Path) -> dict[str, bytes | None]:
    """Everything under ``folder`` (hidden too) by its path inside it: a file's bytes, a folder's None."""
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None for path in folder.rglob("*")}


def test_a_full_disk_while_packing_leaves_the_earlier_pack_whole(tmp_path):
    """A second pack of more windows fills the disk part-way: the first pack's files are there, byte for byte.

    It removed them at its start, so the full disk left no pack at all (or a new train.h5 with no val.h5 or test.h5).
    """
    write_corpus(tmp_path / "small_shards", n_subjects=4, windows_per_subject=2)
    write_corpus(tmp_path / "shards", n_subjects=10, windows_per_subject=640)  # train.h5 ~1.3 MB: no room
    packed = tmp_path / "small" / "packed"
    pack = shlex.join(biofound("pack", "--out", packed, "--json"))
    # The first pack fits; the one the test is about fails; the folder is copied out before and after it.
    first = f"{pack} {tmp_path / 'small_shards'} --quiet >/dev/null 2>&1 || exit 98; cp -a {packed} {tmp_path / 'before'}"
    second = f"exec {pack} {tmp_path / 'shards'} --seed 3"
    done = run_on_a_small_disk(
        tmp_path / "small", ["sh", "-c", f"{first}; {second}"], then=f"cp -a {packed} {tmp_path / 'after'}"
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout)["error"].startswith(f"{packed / 'train.h5'}: No space left on device; free space")
    before, after = (_contents(tmp_path / name) for name in ("before", "after"))
    assert sorted(before) == ["splits.json", "test.h5", "train.h5", "val.h5"], done.stderr
    assert after == before, done.stderr  # the same files, the same bytes, nothing else


HELD_WHILE_COPYING = """
import sys, time
from pathlib import Path
from biofound_cli.store import packer
copy, ready, go = packer._copy_recording, Path(sys.argv[1]), Path(sys.argv[2])
def held(*args, **kwargs):
    ready.touch()  # the test's cue: this pack holds the folder and is writing its splits
    while not go.exists():
        time.sleep(0.02)
    return copy(*args, **kwargs)
packer._copy_recording = held
from biofound_cli.__main__ import main
sys.argv = ["biofound", *sys.argv[3:]]
main()
"""


def test_a_second_pack_into_a_folder_being_packed_is_refused_naming_the_first(tmp_path):
    """A requeued job (or a second shell) packing while the first still runs removed the first's files or mixed its own in."""
    write_corpus(tmp_path / "shards", n_subjects=4, windows_per_subject=2)
    out = tmp_path / "packed"
    ready, go = tmp_path / "ready", tmp_path / "go"
    args = ["pack", tmp_path / "shards", "--out", out]
    first = start_in_own_group([sys.executable, "-c", HELD_WHILE_COPYING, ready, go, *map(str, args), "--seed", "1"])
    try:
        wait_until(first, ready.exists, "the first pack was writing")
        second = subprocess.run(biofound(*args, "--seed", "2"), capture_output=True, text=True, timeout=300)
    finally:
        go.touch()
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert second.returncode == 2, second.stderr
    assert "Traceback" not in second.stderr
    [error] = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert f"{out} is being packed into by pid {first.pid} on " in error and "choose another --out" in error
    assert sorted(path.name for path in out.iterdir()) == ["splits.json", "test.h5", "train.h5", "val.h5"]
    for name in ("train", "val", "test"):
        with h5py.File(out / f"{name}.h5") as handle:
            assert handle.attrs["seed"] == 1  # the first pack's, whole


def test_a_disk_full_before_pack_names_the_file_that_did_not_fit(tmp_path):
    # The splits file's write failed with an OSError naming no file: "error: No space left on device; ...".
    write_corpus(tmp_path / "shards", n_subjects=4, windows_per_subject=2)
    packed = tmp_path / "small" / "packed"
    pack = biofound("pack", tmp_path / "shards", "--out", packed, "--json")
    done = run_on_a_small_disk(tmp_path / "small", pack, fill=2_000_000)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout)["error"].startswith(f"{packed / 'splits.json'}: No space left on device; free space")
    assert ".tmp" not in done.stderr  # no temporary left behind


def test_a_truncated_empty_or_dangling_shard_is_skipped_named_and_told_what_to_do(tmp_path):
    # Each was skipped with HDF5's words alone ("Unable to synchronously open file (truncated file:
    # eof = ...", "... file signature not found", "... errno = 2 ..."), not what to do about it.
    write_corpus(tmp_path / "shards", n_subjects=6, windows_per_subject=4)
    folder = tmp_path / "shards" / "fake"
    whole = (folder / "rec002.h5").read_bytes()
    (folder / "rec002.h5").write_bytes(whole[: len(whole) // 2])
    (folder / "rec003.h5").write_bytes(b"")
    (folder / "rec004.h5").unlink()
    target = tmp_path / "scratch" / "rec004.h5"
    (folder / "rec004.h5").symlink_to(target)
    args = ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--json", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    advice = "delete it and run the same preprocess again, which writes it anew"
    assert summary["skipped_by_shard"] == {
        str(folder / "rec002.h5"): f"is truncated ({len(whole) // 2} of its {len(whole)} bytes are there, "
        f"as after a copy cut short); {advice}",
        str(folder / "rec003.h5"): f"is empty (0 bytes); {advice}",
        str(folder / "rec004.h5"): f"is a broken symbolic link (to {target}); remove it, or put back what it points to",
    }
    assert sum(summary["recordings"].values()) == 3


def test_a_split_no_subject_could_fill_names_the_option_that_gives_it_at_finetune(tmp_path, monkeypatch):
    # Two Myo recordings of repetitions 0 (train) and 3 (test): pack warns that val is empty and names
    # split_by_repetition, but finetune then said "add recordings of more subjects", which the corpus's
    # one subject, split by repetition, cannot use.
    import shutil

    from biofound_cli.recipes.shipped import shipped_recipe

    myo = Path(__file__).resolve().parents[3] / "biofound_cli" / "data" / "samples" / "emg" / "myo"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "few").mkdir()
    for name in ("R_0_C_0_EMG.csv", "R_3_C_0_EMG.csv"):
        shutil.copy(myo / name, tmp_path / "few" / name)
    shutil.copy(shipped_recipe("tinymyo_myo"), tmp_path / "r.toml")
    settings = ["--set", "preprocess.root=few", "--set", "data.num_workers=2"]
    for stage in (["preprocess", "--recipe", "r.toml", "--workers", "2"], ["pack", "--recipe", "r.toml"]):
        result = runner.invoke(app, [*stage, *settings, "--no-progress"])
        assert result.exit_code == 0, result.output
    assert "give recordings such a split (emg-csv: preprocess.options.split_by_repetition)" in result.stderr
    refused = runner.invoke(app, ["finetune", "r.toml", "--set", "data.num_workers=2"])  # it reads no preprocess.root
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == (
        "error: r.toml: data.val = 'out/tinymyo_myo/packed/val.h5' does not exist: pack left split 'val' empty, so it "
        "wrote no file (out/tinymyo_myo/packed/splits.json: windows 9 in train, 9 in test); every subject's windows "
        "have an official split and none is 'val': give recordings that split (emg-csv: "
        "preprocess.options.split_by_repetition) and preprocess and pack again, or leave this split out (--unset "
        "data.val trains without validation)\n"
    )


def _shards_with_no_usable_shard(shards: Path) -> None:
    shards.mkdir()
    (shards / "rec.h5").write_bytes(b"")  # an empty file: skipped, and nothing is left to pack


def _shards_with_no_train_window(shards: Path) -> None:
    write_shard(shards / "rec.h5", subject="only", split="test")  # the official split sends every window to test


@pytest.mark.parametrize(
    "make_shards", [lambda shards: shards.mkdir(), _shards_with_no_usable_shard, _shards_with_no_train_window]
)
def test_a_failed_pack_leaves_no_out_folder_it_created_and_keeps_one_that_was_there(tmp_path, make_shards):
    # A failed pack left the empty --out (and its missing parents) behind, which looked like a packed folder.
    make_shards(tmp_path / "shards")
    failed = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "new" / "packed")])
    assert failed.exit_code in (1, 2) and "Traceback" not in failed.output, failed.output
    assert not (tmp_path / "new").exists()
    (tmp_path / "there").mkdir()
    again = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "there")])
    assert again.exit_code == failed.exit_code
    assert (tmp_path / "there").is_dir() and not any((tmp_path / "there").iterdir())


@pytest.mark.parametrize(("labelled", "labels"), [(False, "none"), (True, "regression")])
def test_the_summary_of_a_pack_without_classes_says_how_it_is_labelled_not_empty_counts(tmp_path, labelled, labels):
    # Pre-training shards (no y) or regression targets printed "class_counts  train:; val:; test:".
    for index in range(6):
        y = [0.5] * 6 if labelled else None
        write_shard(tmp_path / "shards" / f"r{index}.h5", subject=f"s{index}", labelled=labelled, y=y, label_names=())
    args = ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--no-progress"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in table.stdout.splitlines() if "│" in line}
    assert rows["labels"] == labels and "class_counts" not in rows
    summary = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert summary["labels"] == labels and "class_counts" not in summary
    info = json.loads(runner.invoke(app, ["info", str(tmp_path / "packed" / "train.h5"), "--json"]).stdout)
    assert info["labels"] == labels and "class_counts" not in info


def test_a_split_the_official_splits_made_is_not_called_subject_disjoint(tmp_path):
    # One subject's repetitions in train and test (emg-csv split_by_repetition): pack said "new subject-disjoint
    # split with seed 42" over a split whose one subject is in both, and which the seed did not place.
    write_shard(tmp_path / "shards" / "a1.h5", subject="a", split="train", seed=1)
    write_shard(tmp_path / "shards" / "a2.h5", subject="a", split="test", seed=2)
    args = ["pack", str(tmp_path / "shards"), "--no-progress", "--json"]
    official = runner.invoke(app, [*args, "--out", str(tmp_path / "official")])
    assert official.exit_code == 0, official.output
    summary = json.loads(official.stdout)
    assert summary["subjects"] == {"train": 1, "val": 0, "test": 1}
    assert summary["splits_note"] == ("new split by the shards' official splits alone (1 subject); the seed places none")
    for index in range(4):
        write_shard(tmp_path / "shards" / f"free{index}.h5", subject=f"free{index}", seed=10 + index)
    mixed = runner.invoke(app, [*args, "--out", str(tmp_path / "mixed")])
    assert json.loads(mixed.stdout)["splits_note"] == (
        "new split: 1 subject placed by the shards' official splits, 4 subject-disjoint with seed 42"
    )
    shutil.rmtree(tmp_path / "shards")
    write_corpus(tmp_path / "shards", n_subjects=3)
    seeded = runner.invoke(app, [*args, "--out", str(tmp_path / "seeded")])
    assert json.loads(seeded.stdout)["splits_note"] == "new subject-disjoint split with seed 42"
