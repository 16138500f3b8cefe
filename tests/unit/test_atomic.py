from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from biofound_cli.atomic import (
    atomic_folder,
    atomic_path,
    default_file_mode,
    host_label,
    parse_temporary_name,
    remove_leftovers,
    remove_staging_leftovers,
    remove_stale_temporaries,
    remove_stale_temporaries_in,
    staged_files,
    temporary_name,
    write_bytes_atomic,
    write_text_atomic,
)


def _entries(folder):
    return sorted(path.name for path in folder.iterdir())


def test_success_renames_onto_target_and_creates_parent(tmp_path):
    target = tmp_path / "deep" / "er" / "report.json"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and target.parent.is_dir()
        assert not temporary.exists() and not target.exists()
        temporary.write_text("whole")
        assert not target.exists(), "the target appears only when the block ends"
    assert target.read_text() == "whole"
    assert _entries(target.parent) == ["report.json"]


def test_temporary_name_is_hidden_and_carries_target_host_and_pid(tmp_path):
    target = tmp_path / "train.h5"
    with atomic_path(target) as temporary:
        name = temporary.name
        temporary.write_bytes(b"x")
    assert name.startswith(f".train.h5.{host_label()}.{os.getpid()}.")
    assert ".tmp" in name  # the shard scanner skips such names
    assert not name.endswith(".h5"), "no suffix unless asked, so *.h5 never matches a temporary"


def test_suffix_hint_is_kept(tmp_path):
    target = tmp_path / "model.onnx"
    with atomic_path(target, suffix_hint=target.suffix) as temporary:
        assert temporary.suffix == ".onnx" and temporary.name.startswith(".model.onnx.")
        temporary.write_bytes(b"onnx")
    assert target.read_bytes() == b"onnx"


def test_export_atomic_path_keeps_the_targets_suffix(tmp_path):
    from biofound_cli.export.artefact import atomic_path as export_atomic_path

    with export_atomic_path(tmp_path / "model.int8.onnx") as temporary:
        assert temporary.suffix == ".onnx" and temporary.name.startswith(".")
        temporary.write_bytes(b"q")
    assert _entries(tmp_path) == ["model.int8.onnx"]


def test_temporary_names_are_unique_across_calls_and_threads(tmp_path):
    names = [temporary_name(tmp_path / "a.json") for _ in range(50)]
    threads = [threading.Thread(target=lambda: names.append(temporary_name(tmp_path / "a.json"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, SystemExit])
def test_exception_mid_block_leaves_no_target_and_no_temporary(tmp_path, error):
    target = tmp_path / "out.json"
    with pytest.raises(error):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise error()
    assert not target.exists()
    assert _entries(tmp_path) == []


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_existing_target_is_replaced_only_on_success(tmp_path, error):
    target = tmp_path / "manifest.json"
    target.write_text("old")
    with pytest.raises(error):
        with atomic_path(target) as temporary:
            temporary.write_text("new but broken")
            raise error()
    assert target.read_text() == "old"
    assert _entries(tmp_path) == ["manifest.json"]
    with atomic_path(target) as temporary:
        temporary.write_text("new")
    assert target.read_text() == "new"
    assert _entries(tmp_path) == ["manifest.json"]


def test_failed_rename_removes_the_temporary(tmp_path):
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)  # a non-empty folder cannot be replaced by a file
    with pytest.raises(OSError):
        with atomic_path(target) as temporary:
            temporary.write_text("x")
    assert _entries(tmp_path) == ["taken"] and target.is_dir()


def test_block_that_writes_nothing_fails_and_keeps_target(tmp_path):
    target = tmp_path / "kept.txt"
    target.write_text("old")
    with pytest.raises(FileNotFoundError):
        with atomic_path(target):
            pass
    assert target.read_text() == "old"


def test_write_text_and_bytes(tmp_path):
    text_path = write_text_atomic(tmp_path / "sub" / "a.txt", "héllo\n")
    assert text_path == tmp_path / "sub" / "a.txt"
    assert text_path.read_bytes() == "héllo\n".encode("utf-8")
    bytes_path = write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert bytes_path.read_bytes() == b"\x00\x01"
    write_text_atomic(text_path, "again")
    assert text_path.read_text() == "again"
    assert _entries(tmp_path) == ["b.bin", "sub"] and _entries(tmp_path / "sub") == ["a.txt"]


def test_atomic_folder_success_and_replacement(tmp_path):
    target = tmp_path / "checkpoints" / "step-1"
    with atomic_folder(target) as folder:
        assert folder.is_dir() and folder.parent == target.parent and folder.name.startswith(".step-1.")
        (folder / "a").write_text("1")
        (folder / "b").write_text("2")
        assert not target.exists()
    assert _entries(target) == ["a", "b"]
    with atomic_folder(target) as folder:
        (folder / "c").write_text("3")
    assert _entries(target) == ["c"]
    assert _entries(target.parent) == ["step-1"], "no temporary and no old copy left behind"


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_folder_failure_keeps_the_old_folder(tmp_path, error):
    target = tmp_path / "best"
    with pytest.raises(error):
        with atomic_folder(target) as folder:
            (folder / "half").write_text("x")
            raise error()
    assert _entries(tmp_path) == []
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(error):
        with atomic_folder(target) as folder:
            (folder / "new").write_text("x")
            raise error()
    assert _entries(tmp_path) == ["best"] and _entries(target) == ["old"]


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_a_file_its_writer_made_private_gets_the_usual_mode(tmp_path, umask_027):
    # safetensors creates its file 0600, which left checkpoints unreadable to a shared group.
    import numpy as np
    from safetensors.numpy import save_file

    target = tmp_path / "model.safetensors"
    with atomic_path(target) as temporary:
        save_file({"w": np.zeros(2, dtype=np.float32)}, str(temporary))
        os.chmod(temporary, 0o600)  # as safetensors leaves it, whatever its version
    assert default_file_mode() == 0o640
    assert target.stat().st_mode & 0o777 == 0o640


def test_staged_files_move_in_together_after_the_block(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.safetensors").write_text("earlier")
    with staged_files(folder, "pack") as staging:
        (staging / "model.onnx").write_text("new")
        write_text_atomic(staging / "config.json", "{}")
        assert _entries(folder)[-1] == "model.safetensors" and not (folder / "model.onnx").exists()
    assert _entries(folder) == ["config.json", "model.onnx", "model.safetensors"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_staged_files_failure_leaves_the_folder_as_it_was(tmp_path, error):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "config.json").write_text("earlier")
    with pytest.raises(error):
        with staged_files(folder, "pack") as staging:
            (staging / "model.pt").write_text("half")
            (staging / "config.json").write_text("new")
            raise error()
    assert _entries(folder) == ["config.json"] and (folder / "config.json").read_text() == "earlier"


def _gone_pid() -> int:
    """The process id of a process that has ended (and been reaped)."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(gone.stdout)


def test_only_this_machines_temporaries_of_gone_processes_are_removed(tmp_path):
    target = tmp_path / "train.h5"
    host, gone = host_label(), _gone_pid()
    dead = tmp_path / f".train.h5.{host}.{gone}.00aa11bb.tmp"
    dead_folder = tmp_path / f".train.h5.{host}.{gone}.22cc33dd.tmp"
    alive = tmp_path / f".train.h5.{host}.{os.getpid()}.00aa11bb.tmp"
    other_node = tmp_path / f".train.h5.{host}-other.{gone}.00aa11bb.tmp"  # its pid means nothing on this machine
    older_form = tmp_path / f".train.h5.{gone}.00aa11bb.tmp"  # no machine in the name: whose is unknown
    other_file = tmp_path / f".val.h5.{host}.{gone}.00aa11bb.tmp"
    for path in (dead, alive, other_node, older_form, other_file, target):
        path.write_bytes(b"x")
    dead_folder.mkdir()
    (dead_folder / "model.onnx").write_bytes(b"half")

    assert remove_stale_temporaries(target) == 2
    assert _entries(tmp_path) == sorted(path.name for path in (alive, other_node, older_form, other_file, target))
    assert remove_stale_temporaries_in(tmp_path) == [other_file]
    assert _entries(tmp_path) == sorted(path.name for path in (alive, other_node, older_form, target))
    assert remove_stale_temporaries_in(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("name", "target", "read"),
    [
        (".rec.csv.node07.4242.9f3ac1d2.tmp", None, ("rec.csv", "node07", 4242, "tmp")),
        (".rec.csv.node07.4242.9f3ac1d2.tmp", "rec.csv", ("rec.csv", "node07", 4242, "tmp")),
        (".model.int8.onnx.gpu-3.7.9f3ac1d2.tmp.onnx", None, ("model.int8.onnx", "gpu-3", 7, "tmp")),  # a suffix hint
        (".best.1234.42.00aa11bb.old", None, ("best", "1234", 42, "old")),  # a host named by digits alone
        (".step-00000012.42.00aa11bb.old", None, ("step-00000012", None, 42, "old")),  # older: no machine
        (".rec.csv.42.00aa11bb.tmp", "rec.csv", ("rec.csv", None, 42, "tmp")),  # older, its target known
        (".a.b.c.h.1.00aa11bb.tmp", "a.b.c", ("a.b.c", "h", 1, "tmp")),
        (".rec.csv.node07.4242.9f3ac1d2.tmp", "rec", None),  # the temporary of rec.csv, not of rec
        (".rec.csv.node.07.4242.9f3ac1d2.tmp", "rec.csv", None),  # a dot in a host label is never written
        (".rec.csv.node07.42x.9f3ac1d2.tmp", None, None),
        (".rec.csv.node07.42.9F3AC1D2.tmp", None, None),
        (".rec.csv.node07.42.9f3ac1d2.part", None, None),
        ("rec.csv.node07.42.9f3ac1d2.tmp", None, None),  # not hidden
        (".biofound-write-probe-x1y2", None, None),
    ],
)
def test_a_temporary_name_is_read_back_from_its_right_end(name, target, read):
    parsed = parse_temporary_name(name, target)
    assert (None if parsed is None else (parsed.target, parsed.host, parsed.pid, parsed.tag)) == read


def test_every_name_temporary_name_gives_reads_back(tmp_path):
    for path, hint, tag in (
        (tmp_path / "a.json", "", "tmp"),
        (tmp_path / "model.onnx", ".onnx", "tmp"),
        (tmp_path / "best", "", "old"),
    ):
        name = temporary_name(path, suffix_hint=hint, tag=tag).name
        for target in (None, path.name):
            parsed = parse_temporary_name(name, target)
            assert parsed is not None and (parsed.target, parsed.host, parsed.pid, parsed.tag) == (
                path.name,
                host_label(),
                os.getpid(),
                tag,
            )


@pytest.mark.parametrize(
    ("hostname", "label"),
    [("node07.cluster.example.org", "node07"), ("gpu_node 3", "gpu-node-3"), ("nœud-2", "n-ud-2"), ("", "unnamed")],
)
def test_the_host_label_is_the_first_label_in_letters_digits_and_hyphens(monkeypatch, hostname, label):
    monkeypatch.setattr("socket.gethostname", lambda: hostname)
    assert host_label() == label
    assert ".tmp" in temporary_name(Path("x.csv")).name and temporary_name(Path("x.csv")).name.startswith(f".x.csv.{label}.")


def test_leftovers_of_a_killed_writer_are_cleared_and_a_folder_moved_aside_is_put_back(tmp_path):
    half_written = temporary_name(tmp_path / "step-00000012")
    half_written.mkdir()
    (half_written / "model.safetensors").write_bytes(b"cut sh")
    moved_aside = temporary_name(tmp_path / "best", tag="old")  # killed between atomic_folder's two renames
    moved_aside.mkdir()
    (moved_aside / "model.safetensors").write_bytes(b"whole")
    replaced = temporary_name(tmp_path / "step-00000006", tag="old")  # killed before deleting the old copy
    replaced.mkdir()
    (tmp_path / "step-00000006").mkdir()
    curve = temporary_name(tmp_path / "train_curve.png", suffix_hint=".png")
    curve.write_bytes(b"x")
    (tmp_path / ".lock").write_text("kept")

    assert sorted(remove_leftovers(tmp_path)) == sorted([half_written, moved_aside, replaced, curve])
    assert _entries(tmp_path) == [".lock", "best", "step-00000006"]
    assert (tmp_path / "best" / "model.safetensors").read_bytes() == b"whole"
    assert remove_leftovers(tmp_path / "missing") == []


def test_leftovers_of_given_targets_only_are_cleared_whoever_wrote_them(tmp_path):
    mine = [temporary_name(tmp_path / "a.h5"), tmp_path / ".a.h5.node99.4242.0123abcd.tmp"]
    theirs = tmp_path / ".b.h5.node99.4242.0123abcd.tmp"  # a target another writer owns
    for path in (*mine, theirs):
        path.write_bytes(b"half")
    assert sorted(remove_leftovers(tmp_path, {"a.h5"})) == sorted(mine)
    assert _entries(tmp_path) == [theirs.name]


def test_a_failed_write_names_the_target_not_the_hidden_temporary(tmp_path):
    # A write or flush into a full disk raises an OSError without a file name: the CLI's one line
    # for a full disk said "No space left on device" without saying which file did not fit.
    target = tmp_path / "report.json"
    with pytest.raises(OSError) as raised:
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(target))
    assert _entries(tmp_path) == []
    with pytest.raises(FileNotFoundError) as raised:
        with atomic_path(target):
            open(tmp_path / "elsewhere" / "input.txt")  # an error naming another file keeps its name
    assert raised.value.filename == str(tmp_path / "elsewhere" / "input.txt")


def test_json_files_are_strict_with_nan_and_inf_as_null(tmp_path):
    """predict's summary.json (write_json_atomic) wrote NaN and Infinity, which strict readers refuse, while
    evaluate's report.json had its own strict rule; both files now go through one (strict_json)."""
    import numpy as np

    from biofound_cli.atomic import write_json_atomic

    path = write_json_atomic(
        tmp_path / "summary.json",
        {"max_output_diff": float("nan"), "means": [np.float32("inf"), np.float32(0.5)], "n": np.int64(3)},
    )
    loaded = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert loaded == {"max_output_diff": None, "means": [None, 0.5], "n": 3}


# A swap killed outright (SIGKILL) at its CUT-th rename: the files are written, then {swap} moves them in.
SWAP_KILLED_AT = """
import os, signal, sys
from pathlib import Path
from biofound_cli import atomic
folder, cut, calls = Path(sys.argv[1]), int(sys.argv[2]), []
replace = os.replace
def killed_at_the_cut(source, destination):
    calls.append(source)
    if len(calls) == cut:
        os.kill(os.getpid(), signal.SIGKILL)
    return replace(source, destination)
{swap}
"""

STAGED_PACK = """
with atomic.staged_files(folder, "pack", [folder / "test.h5"]) as staging:
    for name in ("splits.json", "train.h5", "val.h5"):
        (staging / name).write_text("new " + name)
    os.replace = killed_at_the_cut  # from here on: the swap's renames only
"""

OLD_PACK = {name: "old " + name for name in ("splits.json", "test.h5", "train.h5", "val.h5")}
NEW_PACK = {name: "new " + name for name in ("splits.json", "train.h5", "val.h5")}  # test.h5 replaced by none


def _killed_at_each_rename(tmp_path, swap, old, clear):
    """Kill ``swap`` at each of its renames in turn, ``clear`` the folder as the next run does; the folders it leaves.

    Each is returned as ``{name: text}`` of every entry, hidden ones included, with the cut it was killed at
    (``None``: the run that no rename was left to cut, which ended normally).
    """
    repo = Path(__file__).resolve().parents[2]
    for cut in range(1, 20):
        folder = tmp_path / f"cut{cut}"
        folder.mkdir()
        for name, text in old.items():
            (folder / name).write_text(text)
        child = subprocess.run(
            [sys.executable, "-c", SWAP_KILLED_AT.format(swap=swap), str(folder), str(cut)],
            env={**os.environ, "PYTHONPATH": str(repo)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.returncode in (0, -9), child.stderr
        if child.returncode == -9:
            clear(folder)
        yield (cut if child.returncode == -9 else None), {path.name: path.read_text() for path in folder.iterdir()}
        if child.returncode == 0:
            return


@pytest.mark.parametrize("cleared_by", ["the next pack", "a clearing of this machine's dead processes' temporaries"])
def test_a_swap_killed_at_any_rename_leaves_one_whole_pack_once_the_next_run_clears_it(tmp_path, cleared_by):
    # The next run put back an old file moved aside only where its new one was missing: a kill among the
    # renames left old splits beside new ones, or the old test.h5 beside a pack that has none.
    def clear(folder):
        if cleared_by == "the next pack":  # what pack clears, holding --out, whatever machine the kill was on
            remove_staging_leftovers(folder, "pack", OLD_PACK)
        else:  # what predict clears as it starts
            remove_stale_temporaries_in(folder)

    cuts = 0
    for cut, files in _killed_at_each_rename(tmp_path, STAGED_PACK, OLD_PACK, clear):
        assert files in (OLD_PACK, NEW_PACK), f"cut at rename {cut}: {sorted(files)}"
        cuts += cut is not None
    assert cuts >= 7  # every old file moved aside and every new one moved in


PREDICTED = """
with atomic.atomic_paths([folder / "rec.png", folder / "rec.csv"]) as (png, table):
    png.write_text("new rec.png")
    table.write_text("new rec.csv")
    os.replace = killed_at_the_cut  # from here on: the swap's renames only
"""


def test_predicts_png_and_table_killed_at_any_rename_are_one_recordings_pair_once_the_next_predict_clears_it(tmp_path):
    # atomic_paths swapped in the folder itself: its journal (.swap.json) stayed in predict's --out after every
    # recording, and a kill among the renames left the earlier PNG or table aside (.old) for good, which
    # predict's clearing of its dead processes' temporaries never removed.
    old = {"rec.png": "old rec.png", "rec.csv": "old rec.csv"}
    new = {name: "new " + name for name in old}
    cuts = 0
    for cut, files in _killed_at_each_rename(tmp_path, PREDICTED, old, remove_stale_temporaries_in):
        assert files in (old, new), f"cut at rename {cut}: {sorted(files)}"
        cuts += cut is not None
    assert cuts >= 4  # both earlier files moved aside and both new ones moved in
