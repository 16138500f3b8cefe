"""The exit statuses, JSON summaries and plain output every command shares (docs/exit-status.md).

Tested elsewhere and not repeated here:

* preprocess where every recording is bad → 1: ``tests/unit/store/test_preprocess.py``;
* NaN loss inside the loop → 1: ``tests/unit/training/test_loop.py`` (the CLI path is below);
* an unreadable HDF5 given to ``info`` → 1: ``tests/unit/cli/test_info_cmd.py``;
* Ctrl-C during preprocess → 130: ``tests/integration/test_preprocess_resume.py``;
* preemption → 75 and ``--resume auto``: ``tests/integration/test_train_cli_processes.py``;
* Ctrl-C during training → 130, and real pipes: ``tests/integration/test_exit_statuses.py``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures.cli_output import LIVE_DISPLAY_MARKERS, assert_one_error_line
from fixtures.packed import write_packed
from fixtures.shards import write_corpus
from fixtures.tiny_training import TINY, invoke, training_recipe
from fixtures.tuh import build_tuab
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus

runner = CliRunner()

PROGRESS_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] .+: \d+/\d+ \w+ \([\d.]+ \w+/s, ETA [\d:?]+\)$")


@pytest.fixture(autouse=True)
def _not_a_terminal(monkeypatch):
    # rich treats these as "this is a terminal"; a CI runner may set them.
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def json_summary(result) -> dict:
    """The one JSON object a ``--json`` run prints; nothing else may be on stdout."""
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


# -- 2: usage and recipe errors -----------------------------------------------------------------


def registered_commands() -> list[str]:
    return sorted(command.name for command in app.registered_commands)


@pytest.mark.parametrize("command", registered_commands())
def test_every_command_exits_2_on_an_unknown_flag(command):
    result = invoke(command, "--no-such-flag")
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", registered_commands())
def test_every_command_has_json(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "--json" in result.stdout


@pytest.fixture
def bad_inputs(tmp_path) -> Path:
    (tmp_path / "broken.toml").write_text("[train\nmax_steps = ")
    (tmp_path / "no_data.toml").write_text("[model]\nvariant = 'tinymyo'\n")
    # Passes the recipe checks (they open no file), so the refusal is the next check's.
    (tmp_path / "not_packed.toml").write_text(
        f"[data]\ntrain = '{tmp_path / 'nothing.h5'}'\n[model]\nvariant = 'tinymyo'\n[output]\nruns_dir = '{tmp_path / 'runs'}'\n"
    )
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "raw").mkdir()
    (tmp_path / "runs_under_a_file.toml").write_text(
        f"[data]\ntrain = '{write_packed(tmp_path / 'train.h5', 4, seed=0)}'\n"
        f"[model]\nvariant = 'tinymyo'\noverrides = {TINY}\n[output]\nruns_dir = '{tmp_path / 'a_file'}'\n"
    )
    write_corpus(tmp_path / "shards", n_subjects=3, windows_per_subject=1)
    return tmp_path


BAD_INPUT = [
    (["validate", "{d}/broken.toml"], "not valid TOML"),
    (["validate", "{d}/missing.toml"], "recipe file not found"),
    (["info", "{d}/missing.h5"], "file not found"),
    (["info", "{d}/a_file"], "unknown file type"),
    (["models", "nothing-like-this*"], "no model matches"),
    (["preprocess", "nosuch", "--root", "{d}/raw", "--out", "{d}/out"], "unknown corpus"),
    (["preprocess", "tuab", "--root", "{d}/missing", "--out", "{d}/out"], "not a folder"),
    (["preprocess", "tuab", "--root", "{d}/raw", "--out", "{d}/out", "--workers", "0"], "--workers = 0: must be at least 1"),
    (["pack", "{d}/missing", "--out", "{d}/packed"], "shard folder not found"),
    (["pack", "{d}/shards", "--out", "{d}/a_file"], "a file is in the way"),
    (["pack", "{d}/shards", "--out", "{d}/packed", "--set", "pack.train=0.9"], "must add up to 1"),
    (["finetune", "{d}/no_data.toml"], "[data] section is required"),
    (["finetune", "{d}/no_data.toml", "--set", "nonsense"], "expected section.key=value"),
    (["finetune", "{d}/no_data.toml", "--set", "train.max_steps=many"], "expected a whole number"),
    (["finetune", "{d}/runs_under_a_file.toml"], "a file is in the way"),
    (["pretrain", "{d}/missing.toml"], "recipe file not found"),
    (["pretrain", "{d}/not_packed.toml", "--resume", "{d}/a_file"], "--resume"),
    (["evaluate", "{d}/no_data.toml"], "data.test is not set"),
    (["evaluate", "{d}/no_data.toml", "--split", "holdout"], "unknown split"),
    (["download", "nosuch"], "unknown download target"),
    (["download", "siena", "--variant", "base"], "apply to model weights"),
    # A recipe where weights are asked for (evaluate and the training stages take the recipe first):
    # export said "--out: required without --recipe", predict "not a safetensors file" with status 1.
    (["export", "{d}/no_data.toml"], "is a recipe; pass it as --recipe"),
    (["predict", "{d}/no_data.toml", "{d}/raw", "--out", "{d}/predicted"], "is a recipe, not weights; give the weights"),
    (
        [
            "finetune",
            "{d}/runs_under_a_file.toml",
            "--set",
            "output.runs_dir={d}/runs",
            "--set",
            "model.checkpoint={d}/no_data.toml",
        ],
        "model.checkpoint {d}/no_data.toml is a recipe, not weights",
    ),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_INPUT, ids=lambda case: " ".join(case) if isinstance(case, list) else "")
def test_bad_input_gives_one_error_line_and_status_2(bad_inputs, args, fragment):
    result = invoke(*(arg.format(d=bad_inputs) for arg in args))
    assert fragment.format(d=bad_inputs) in assert_one_error_line(result, ExitStatus.USAGE)


# -- 1: the work failed -------------------------------------------------------------------------


def test_pack_where_every_shard_is_bad_exits_1(tmp_path):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "broken.h5").write_text("not HDF5")
    line = assert_one_error_line(invoke("pack", tmp_path / "shards", "--out", tmp_path / "packed"), ExitStatus.FAILED)
    assert "the one shard cannot be packed" in line


def test_nan_loss_in_finetune_exits_1(tmp_path):
    recipe = training_recipe(tmp_path)
    with h5py.File(tmp_path / "train.h5", "r+") as handle:
        handle["x"][...] = np.nan
    line = assert_one_error_line(invoke("finetune", recipe, "--quiet"), ExitStatus.FAILED)
    assert "NaN" in line or "nan" in line


def test_evaluate_on_an_unreadable_split_exits_1(tmp_path):
    recipe = training_recipe(tmp_path, max_steps=2)
    assert invoke("finetune", recipe, "--quiet").exit_code == 0
    (tmp_path / "test.h5").write_text("not HDF5")
    line = assert_one_error_line(invoke("evaluate", recipe, "--no-plots"), ExitStatus.FAILED)
    assert "not a readable HDF5 file" in line


@pytest.mark.parametrize(
    "args",
    [
        ["info", "{c}"],
        ["evaluate", "{r}", "--checkpoint", "{c}", "--no-plots"],
        ["export", "{c}", "--out", "{d}/export"],
        ["predict", "{c}", "{d}/recording.edf", "--out", "{d}/predictions"],
        ["finetune", "{r}", "--set", "model.checkpoint={c}", "--quiet"],
    ],
    ids=lambda args: args[0],
)
@pytest.mark.parametrize("damage", ["empty", "cut short", "not safetensors"])
def test_a_damaged_checkpoint_exits_1_whatever_the_command(tmp_path, args, damage):
    # docs/exit-status.md: a file that exists but cannot be read is a failure (1), as a damaged
    # .h5 or recording is; `info` on an empty .safetensors exited 2 (a usage error) while an empty
    # .h5 exited 1.
    recipe = training_recipe(tmp_path)
    (tmp_path / "recording.edf").write_bytes(b"0" * 256)
    checkpoint = tmp_path / "damaged.safetensors"
    whole = b'\x37\x00\x00\x00\x00\x00\x00\x00{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}' + b"\x00" * 16
    checkpoint.write_bytes({"empty": b"", "cut short": whole[:-8], "not safetensors": b"PK\x03\x04 a zip"}[damage])
    result = invoke(*(arg.format(c=checkpoint, r=recipe, d=tmp_path) for arg in args))
    assert "damaged.safetensors" in assert_one_error_line(result, ExitStatus.FAILED)


@pytest.mark.parametrize("content", [b"", b"junk"], ids=["empty", "junk"])
def test_predict_with_a_damaged_onnx_graph_exits_1_in_one_line(tmp_path, content):
    # onnxruntime's own error came out as a traceback.
    pytest.importorskip("onnxruntime")
    export = tmp_path / "export"
    export.mkdir()
    (export / "model.onnx").write_bytes(content)
    config = {"task": "bc", "label_names": ["a", "b"], "model": "luna", "sfreq": 256, "ch_names": ["A", "B"]}
    (export / "config.json").write_text(json.dumps(config))
    (tmp_path / "recording.edf").write_bytes(b"0" * 256)
    result = invoke("predict", export, tmp_path / "recording.edf", "--out", tmp_path / "predictions")
    line = assert_one_error_line(result, ExitStatus.FAILED)
    assert (
        line.startswith(f"error: {export / 'model.onnx'}: not a readable ONNX graph (") and "export the checkpoint again" in line
    )


@pytest.mark.parametrize(
    "failure",
    [
        # What torch.save raises when the disk fills under its zip writer: no errno, a full disk.
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
        # What safetensors raises past a user's quota (EDQUOT).
        "safetensors",
    ],
)
def test_a_disk_that_fills_during_a_checkpoint_is_one_line_and_status_1(tmp_path, monkeypatch, failure):
    # Both used to end finetune with a traceback and no JSON object, as any bug would.
    from safetensors import SafetensorError

    from biofound_cli import atomic
    from biofound_cli.training import state

    def failing_write(*args, **kwargs):
        if failure == "safetensors":
            raise SafetensorError("Error while serializing: I/O error: Disk quota exceeded (os error 122)")
        raise failure

    monkeypatch.setattr(state.torch, "save", failing_write)
    monkeypatch.setattr(state, "write_weights", failing_write)
    monkeypatch.setattr(atomic, "_free_bytes", lambda path: 4096)
    recipe = training_recipe(tmp_path)
    result = invoke("finetune", recipe, "--json", "--no-progress")
    line = assert_one_error_line(result, ExitStatus.FAILED)
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    reason = "Disk quota exceeded" if failure == "safetensors" else "No space left on device"
    assert re.fullmatch(
        rf"error: {re.escape(str(checkpoints))}/[\w-]+: {reason}; free space on that disk \(or raise your quota\): "
        rf"what was finished is kept, so continue with: biofound finetune {re.escape(str(recipe))} --resume auto "
        r"--json --no-progress",
        line,
    ), line
    assert json.loads(result.stdout) == {"ok": False, "exit_status": 1, "error": line.removeprefix("error: ")}
    assert not any(checkpoints.iterdir())  # no half-written checkpoint folder is left


def test_a_disk_that_fills_during_pack_says_to_run_pack_again_not_to_resume_training(raw_tuab, tmp_path, monkeypatch):
    # The line ended with "(pretrain/finetune: with --resume auto)" after preprocess and pack too.
    import errno

    from biofound_cli.store import packer

    shards, packed = tmp_path / "shards", tmp_path / "packed"
    assert invoke("preprocess", "tuab", "--root", raw_tuab, "--out", shards, "--no-progress").exit_code == 0

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(packed / "train.h5"))

    monkeypatch.setattr(packer, "_write_split", full_disk)
    line = assert_one_error_line(invoke("pack", shards, "--out", packed, "--no-progress"), ExitStatus.FAILED)
    assert line == (
        f"error: {packed / 'train.h5'}: No space left on device; free space on that disk (or raise your quota): "
        "what was finished is kept, so run the same command again"
    )


@pytest.mark.parametrize(("number", "reason"), [("EIO", "Input/output error"), ("ESTALE", "Stale file handle")])
def test_a_file_system_that_fails_during_pack_is_one_line_and_status_1(raw_tuab, tmp_path, monkeypatch, number, reason):
    # An I/O error or a network file system's stale handle printed a traceback, and no object with --json.
    import errno

    from biofound_cli.store import packer

    shards, packed = tmp_path / "shards", tmp_path / "packed"
    assert invoke("preprocess", "tuab", "--root", raw_tuab, "--out", shards, "--no-progress").exit_code == 0

    def failing_disk(*args, **kwargs):
        raise OSError(getattr(errno, number), reason, str(packed / "train.h5"))

    monkeypatch.setattr(packer, "_write_split", failing_disk)
    result = invoke("pack", shards, "--out", packed, "--json", "--no-progress")
    line = assert_one_error_line(result, ExitStatus.FAILED)
    assert line == (
        f"error: {packed / 'train.h5'}: {reason}; check that disk or file system: what was finished is kept, "
        "so run the same command again"
    )
    assert json.loads(result.stdout) == {"ok": False, "exit_status": 1, "error": line.removeprefix("error: ")}


def test_a_missing_starting_checkpoint_given_by_set_names_the_field_once(tmp_path):
    # It read "--set model.checkpoint=gone.safetensors: model.checkpoint: gone.safetensors: no such ...".
    gone = tmp_path / "gone.safetensors"
    result = invoke("finetune", training_recipe(tmp_path), "--set", f"model.checkpoint={gone}", "--json", "--no-progress")
    line = assert_one_error_line(result, ExitStatus.USAGE)
    assert line == (
        f"error: --set model.checkpoint={gone}: {gone}: no such checkpoint file; check the path "
        "(or fetch it with `biofound download`)"
    )
    assert json.loads(result.stdout)["error"] == line.removeprefix("error: ")


def test_a_checkpoint_write_that_fails_for_another_reason_is_not_called_a_full_disk(tmp_path, monkeypatch):
    from biofound_cli import atomic
    from biofound_cli.training import state

    def failing_save(*args, **kwargs):
        raise RuntimeError("a bug in a writer")

    monkeypatch.setattr(state.torch, "save", failing_save)
    monkeypatch.setattr(atomic, "_free_bytes", lambda path: 10 << 30)
    result = invoke("finetune", training_recipe(tmp_path), "--no-progress")
    assert isinstance(result.exception, RuntimeError) and "a bug in a writer" in str(result.exception)


@pytest.mark.parametrize(
    "args",
    [
        ["recipes", "cp", "luna_tuab", "{ro}/mine/luna_tuab.toml"],
        ["finetune", "{recipe}", "--set", 'output.runs_dir="{ro}"'],
        ["evaluate", "{recipe}", "--out", "{ro}/eval"],
    ],
)
def test_an_output_on_a_read_only_file_system_is_one_line_and_status_2(tmp_path, monkeypatch, args):
    # A read-only /home or container image on a compute node: EROFS used to end in a traceback.
    import errno

    read_only = tmp_path / "ro"
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **k):
        if self == read_only or read_only in self.parents:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    recipe = training_recipe(tmp_path, max_steps=2)
    if args[0] == "evaluate":
        assert invoke("finetune", recipe, "--quiet").exit_code == 0
    result = invoke(*(arg.format(ro=read_only, recipe=recipe) for arg in args), "--json")
    line = assert_one_error_line(result, ExitStatus.USAGE)
    # evaluate checks its --out before scoring, so it names the option (prepare_output_folder).
    expected = (
        rf"error: --out {re.escape(str(read_only))}/eval: the folder cannot be created \(Read-only file system\); "
        "choose a folder you can write to"
        if args[0] == "evaluate"
        else rf"error: {re.escape(str(read_only))}\S*: read-only file system; choose a location on a file system you can write to"
    )
    assert re.fullmatch(expected, line), line
    assert json.loads(result.stdout)["exit_status"] == ExitStatus.USAGE


def test_a_file_written_into_a_folder_there_on_a_read_only_file_system_is_named_not_its_temporary(tmp_path, monkeypatch):
    """A folder that is there on a read-only mount (a cluster's shared results, a container image): the kernel
    refuses creating the temporary, then removing it (EROFS even for a name that is not there), and that second
    refusal, naming the hidden temporary (``.luna_tuab.toml.node07.4242.9f3ac1d2.tmp``), was the line users saw."""
    import errno

    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_open, real_unlink = Path.open, os.unlink

    def refuse(path: object) -> None:
        if Path(path).parent == read_only:
            raise OSError(errno.EROFS, "Read-only file system", str(path))

    def open_(self, mode="r", *args, **kwargs):
        if set(mode) & set("wax+"):
            refuse(self)
        return real_open(self, mode, *args, **kwargs)

    def unlink(path, *args, **kwargs):
        refuse(path)
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_)
    monkeypatch.setattr(os, "unlink", unlink)
    target = read_only / "luna_tuab.toml"
    result = invoke("recipes", "cp", "luna_tuab", target, "--json")
    line = assert_one_error_line(result, ExitStatus.USAGE)
    assert line == f"error: {target}: read-only file system; choose a location on a file system you can write to"
    assert json.loads(result.stdout)["exit_status"] == ExitStatus.USAGE


# -- 0 and --json: one JSON object on stdout ------------------------------------------------------


@pytest.fixture(scope="module")
def raw_tuab(tmp_path_factory) -> Path:
    return build_tuab(tmp_path_factory.mktemp("tuab"))


def test_preprocess_then_pack_json_summaries(raw_tuab, tmp_path):
    shards, packed = tmp_path / "shards", tmp_path / "packed"
    preprocessed = json_summary(invoke("preprocess", "tuab", "--root", raw_tuab, "--out", shards, "--json"))
    assert preprocessed["written"] == 5 and preprocessed["windows_written"] == 20
    assert preprocessed["elapsed_seconds"] >= 0
    summary = json_summary(invoke("pack", shards, "--out", packed, "--json"))
    assert sum(summary["windows"].values()) == 20
    assert summary["elapsed_seconds"] >= 0
    assert all(Path(path).is_file() for path in summary["files"].values())


def test_finetune_then_evaluate_json_summaries(tmp_path):
    recipe = training_recipe(tmp_path)
    trained = json_summary(invoke("finetune", recipe, "--json"))
    assert trained["steps"] == 4 and trained["elapsed_seconds"] >= 0
    assert (Path(trained["best_checkpoint"]) / "model.safetensors").is_file()
    evaluated = json_summary(invoke("evaluate", recipe, "--json", "--no-plots"))
    assert evaluated["windows"] == 6 and "balanced_accuracy" in evaluated["metrics"]
    assert evaluated["elapsed_seconds"] >= 0 and Path(evaluated["report"]).is_file()
    exported = json_summary(invoke("export", "--recipe", recipe, "--json"))
    assert exported["elapsed_seconds"] >= 0, exported  # as every command that runs a stage (docs/exit-status.md)


@pytest.mark.parametrize("args", [["models", "tinymyo"], ["info", "{d}/r.toml"], ["validate", "{d}/r.toml"], ["env", "{d}"]])
def test_quick_commands_exit_0_with_json(tmp_path, args):
    (tmp_path / "r.toml").write_text("[preprocess]\ncorpus = 'tuab'\n")
    summary = json_summary(invoke(*(arg.format(d=tmp_path) for arg in args), "--json"))
    assert summary


# -- plain output when stdout is not a terminal ---------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--no-progress"]])
def test_no_live_display_when_stdout_is_not_a_terminal(raw_tuab, tmp_path, extra):
    result = invoke("preprocess", "tuab", "--root", raw_tuab, "--out", tmp_path / "shards", *extra)
    assert result.exit_code == 0, result.output
    for marker in LIVE_DISPLAY_MARKERS:
        assert marker not in result.stdout, repr(marker)
    progress = [line for line in result.stdout.splitlines() if PROGRESS_LINE.match(line)]
    assert progress and "preprocess tuab: 5/5 files" in progress[-1]

    packed = invoke("pack", tmp_path / "shards", "--out", tmp_path / "packed", *extra)
    assert packed.exit_code == 0, packed.output
    assert not any(marker in packed.stdout for marker in LIVE_DISPLAY_MARKERS)
    assert any(PROGRESS_LINE.match(line) and "20/20 windows" in line for line in packed.stdout.splitlines())


def test_quiet_prints_only_the_summary(raw_tuab, tmp_path):
    result = invoke("preprocess", "tuab", "--root", raw_tuab, "--out", tmp_path, "--quiet")
    assert result.exit_code == 0, result.output
    assert "recordings found" not in result.output
    assert not any(PROGRESS_LINE.match(line) for line in result.stdout.splitlines())
    assert "windows_written" in result.stdout


@pytest.mark.parametrize(("command", "listed"), [(["models"], "luna-base"), (["recipes", "ls"], "luna_scp1")])
def test_quiet_keeps_a_listing_that_is_the_commands_result(command, listed):
    """``models --quiet`` printed nothing and exited 0: the listing is the summary, which --quiet keeps."""
    result = invoke(*command, "--quiet")
    assert result.exit_code == 0, result.output
    assert listed in result.stdout


@pytest.mark.parametrize(
    "command",
    [["validate"], ["recipes", "show"], ["predict", "model.onnx"], ["validate", "--no-such-flag", "r.toml"], ["no-such-command"]],
    ids=" ".join,
)
def test_a_refused_command_line_is_one_json_object_and_one_error_line_in_a_pipe(command, tmp_path):
    """A missing argument or unknown flag printed nothing on stdout with --json, and a rich box into logs."""
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    with_json = subprocess.run(
        [sys.executable, "-m", "biofound_cli", *command, "--json"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert with_json.returncode == ExitStatus.USAGE, with_json.stderr
    (line,) = with_json.stdout.splitlines()
    summary = json.loads(line)
    assert summary["ok"] is False and summary["exit_status"] == with_json.returncode
    assert with_json.stderr.splitlines() == [f"error: {summary['error']}"] and "--help" in summary["error"]
    plain = subprocess.run(
        [sys.executable, "-m", "biofound_cli", *command], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert plain.returncode == ExitStatus.USAGE and plain.stdout == ""
    # One error: line, as every other bad input (click printed a usage block and "Error:", typer a box).
    assert plain.stderr == with_json.stderr, plain.stderr
