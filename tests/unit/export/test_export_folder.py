"""The export folder: one checkpoint's files only, each hashed; another's refused or cleared; never half an export."""

from __future__ import annotations

import errno
import json
import os

import pytest
from fixtures.export_models import save_small, write_packed
from typer.testing import CliRunner

import biofound_cli.export.artefact as artefact
from biofound_cli.atomic import SWAP_JOURNAL, host_label
from biofound_cli.cli.app import app
from biofound_cli.errors import BiofoundError, UsageError
from biofound_cli.export import export_checkpoint
from biofound_cli.models.checkpoints import file_sha256

runner = CliRunner()


def listed(out):
    config = json.loads((out / "config.json").read_text())
    return {entry["file"]: entry["sha256"] for entry in config["artefacts"]}, config


def export(*args):
    return runner.invoke(app, ["export", *map(str, args)])


def test_every_listed_file_carries_its_sha256(tinymyo_ckpt, tmp_path):
    out = tmp_path / "out"
    export_checkpoint(tinymyo_ckpt, "safetensors", out)
    export_checkpoint(tinymyo_ckpt, "onnx", out)  # the same weights: adds to the folder
    files, config = listed(out)
    assert files == {name: file_sha256(out / name) for name in ("model.safetensors", "model.onnx")}
    assert config["source_checkpoint_sha256"] == file_sha256(tinymyo_ckpt)


def test_the_onnx_opset_stays_that_of_the_onnx_files_when_another_format_is_added(tinymyo_ckpt, tmp_path):
    out = tmp_path / "out"
    export_checkpoint(tinymyo_ckpt, "onnx", out, opset=18)
    export_checkpoint(tinymyo_ckpt, "torchscript", out)  # the default opset 17 is not what model.onnx holds
    _, config = listed(out)
    assert config["onnx_opset"] == 18
    assert {entry["file"]: entry.get("opset") for entry in config["artefacts"]} == {"model.onnx": 18, "model.pt": None}


def test_another_checkpoints_export_is_refused_and_left_alone(tinymyo_ckpt, tmp_path):
    out = tmp_path / "out"
    assert export(tinymyo_ckpt, "--format", "onnx", "--out", out).exit_code == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    other = save_small(tmp_path / "other.safetensors", "tinymyo", seed=1, ch_names=["CH0", "CH1", "CH2", "CH3"])
    result = export(other, "--format", "safetensors", "--out", out)
    assert result.exit_code == 2, result.output
    assert "holds the export of another checkpoint file" in result.stderr and "--overwrite" in result.stderr
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_overwrite_clears_the_other_export_but_not_the_users_files(tinymyo_ckpt, tmp_path):
    out = tmp_path / "out"
    assert export(tinymyo_ckpt, "--format", "onnx", "--quantize", "int8", "--out", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    other = save_small(tmp_path / "other.safetensors", "tinymyo", seed=1)
    result = export(other, "--format", "safetensors", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "config.json", "model.safetensors", "notes.txt"]
    files, config = listed(out)
    assert files == {"model.safetensors": file_sha256(out / "model.safetensors")}
    assert config["source_checkpoint_sha256"] == file_sha256(other)


def test_older_files_of_unknown_weights_are_refused(tinymyo_ckpt, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.pt").write_bytes(b"an older export, no config.json")
    with pytest.raises(UsageError, match="not a verified export of these weights .*model.pt"):
        export_checkpoint(tinymyo_ckpt, "onnx", out)
    export_checkpoint(tinymyo_ckpt, "onnx", out, overwrite=True)
    assert not (out / "model.pt").exists() and list(listed(out)[0]) == ["model.onnx"]


def test_a_listed_file_changed_since_is_not_listed_again(tinymyo_ckpt, tmp_path):
    out = tmp_path / "out"
    export_checkpoint(tinymyo_ckpt, "safetensors", out)
    (out / "model.safetensors").write_bytes(b"changed by hand")
    with pytest.raises(UsageError, match="model.safetensors"):
        export_checkpoint(tinymyo_ckpt, "onnx", out)


def test_a_failed_export_leaves_the_earlier_one_whole(tinymyo_ckpt, tmp_path, monkeypatch):
    out = tmp_path / "out"
    export_checkpoint(tinymyo_ckpt, "safetensors", out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    monkeypatch.setattr(artefact, "INT8_TOLERANCE", 1e-12)  # the int8 copy now fails its check
    with pytest.raises(BiofoundError, match="model.int8.pt: verification failed") as failed:
        export_checkpoint(tinymyo_ckpt, "torchscript", out, quantize="int8")
    # The message names the file where the user looks for it, not in the staging folder removed since.
    assert failed.value.message.startswith(f"{out / 'model.int8.pt'}: verification failed"), failed.value.message
    # model.pt had been written and verified, but nothing of this export moved in.
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as torch.onnx.export raises it: no file named


@pytest.mark.parametrize("fmt", ["onnx", "safetensors"])
def test_a_full_disk_during_an_export_names_the_file_in_out_and_says_nothing_was_written(
    tinymyo_ckpt, tmp_path, monkeypatch, fmt
):
    # ONNX: the exporter's OSError read "could not be exported to ONNX; try --format torchscript", advice no format
    # follows on a full disk. safetensors: the line named the hidden staging folder, gone since, and said "what was
    # finished is kept", though an export keeps nothing of itself.
    import safetensors.torch
    import torch.onnx

    out = tmp_path / "out"
    export_checkpoint(tinymyo_ckpt, "torchscript", out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    monkeypatch.setattr(*((torch.onnx, "export") if fmt == "onnx" else (safetensors.torch, "save_file")), _disk_full)
    result = export(tinymyo_ckpt, "--format", fmt, "--out", out)
    assert result.exit_code == 1, result.output
    line = " ".join(result.stderr.split("error: ", 1)[1].split())
    assert line == (
        f"{out / f'model.{fmt}'}: No space left on device; free space on that disk (or raise your quota): nothing of this "
        f"export was written to {out} (an earlier export there is left as it was), so run the same command again"
    )
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_a_full_disk_as_the_export_moves_in_leaves_the_earlier_export_whole(tinymyo_ckpt, tmp_path, monkeypatch):
    """The final renames moved model.onnx in, then failed on config.json (a directory that cannot grow on a full disk):
    --out held the new graph beside the old export's config.json, the other export's files already deleted, and the
    OSError ended in a traceback."""
    out = tmp_path / "out"
    export_checkpoint(save_small(tmp_path / "other.safetensors", "tinymyo", seed=1), ["onnx", "safetensors"], out)
    (out / "notes.txt").write_text("mine")
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    rename = os.replace

    def full_at_config(source, target):
        if os.fspath(target) == os.fspath(out / "config.json") and ".staging-export." in os.fspath(source):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(source), os.fspath(target))
        rename(source, target)

    monkeypatch.setattr(os, "replace", full_at_config)
    result = export(tinymyo_ckpt, "--format", "onnx", "--overwrite", "--out", out)

    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    line = " ".join(result.stderr.split("error: ", 1)[1].split())
    assert line == (
        f"{out / 'config.json'}: No space left on device; free space on that disk (or raise your quota): nothing of this "
        f"export was written to {out} (an earlier export there is left as it was), so run the same command again"
    )
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # no mix, no hidden file left


def test_a_failed_export_into_a_new_folder_leaves_no_folder(tinymyo_ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(artefact, "INT8_TOLERANCE", 1e-12)
    with pytest.raises(BiofoundError):
        export_checkpoint(tinymyo_ckpt, "onnx", tmp_path / "out", quantize="int8")
    assert not (tmp_path / "out").exists()


def test_a_failed_export_into_a_new_nested_out_leaves_none_of_the_folders_it_created(tinymyo_ckpt, tmp_path, monkeypatch):
    # `--out exports/tuab/v1` under an existing folder that holds a file: exports/ and its children were left behind.
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    monkeypatch.setattr(artefact, "INT8_TOLERANCE", 1e-12)  # the int8 copy fails its check, after the folders exist
    for out in (tmp_path / "exports" / "tuab" / "v1", tmp_path / "kept" / "tuab" / "v1"):
        result = CliRunner().invoke(
            app, ["export", str(tinymyo_ckpt), "--format", "torchscript", "--quantize", "int8", "--out", str(out)]
        )
        assert result.exit_code == 1 and "verification failed" in result.output, result.output
    assert not (tmp_path / "exports").exists() and not (tmp_path / "kept" / "tuab").exists()
    assert [path.name for path in (tmp_path / "kept").iterdir()] == ["notes.txt"]


STOP_DURING_EXPORT = """
import os, signal, sys
import biofound_cli.export as export
write = export._write_artefacts
def write_then_stop(source, fmt, *args, **kwargs):
    written = write(source, fmt, *args, **kwargs)
    if fmt == "torchscript":  # model.onnx and model.pt staged, nothing moved in: the whole group is signalled
        os.killpg(os.getpgrp(), signal.{signal})
    return written
export._write_artefacts = write_then_stop
from biofound_cli.cli.app import app
sys.argv = ["biofound", *sys.argv[1:]]
app()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signal_name", "status", "named"), [("SIGTERM", 143, "SIGTERM"), ("SIGUSR1", 143, "SIGUSR1"), ("SIGINT", 130, "Ctrl-C")]
)
def test_a_stop_during_an_export_into_an_earlier_one_is_one_line_and_leaves_the_folder_as_it_was(
    tinymyo_ckpt, tmp_path, signal_name, status, named
):
    """SIGTERM's default action killed the export without a word, leaving its hidden staging folder in --out;
    SIGUSR1 (``sbatch --signal=USR1@N``, to the whole group) is a stop as SIGTERM is."""
    import subprocess
    import sys

    out = tmp_path / "out"
    export_checkpoint(tinymyo_ckpt, "safetensors", out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    script = STOP_DURING_EXPORT.replace("{signal}", signal_name)
    command = [sys.executable, "-c", script, "export", str(tinymyo_ckpt), "-f", "onnx", "-f", "torchscript", "--out", str(out)]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=300, start_new_session=True)

    assert done.returncode == status, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"stopped by {named}" in errors[0] and "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout)["exit_status"] == status
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # no staging folder, no new file


HELD_DURING_EXPORT = """
import sys, time
from pathlib import Path
import biofound_cli.export as export
inside, go = Path(sys.argv[1]), Path(sys.argv[2])
write = export._write_artefacts
def write_and_wait(*args, **kwargs):
    inside.touch()  # inside the export, its files being written
    for _ in range(6000):  # until the test lets it go (a safety bound, not a timing)
        if go.exists():
            break
        time.sleep(0.05)
    return write(*args, **kwargs)
export._write_artefacts = write_and_wait
from biofound_cli.cli.app import app
sys.argv = ["biofound", *sys.argv[3:]]
app()
"""


@pytest.mark.slow
def test_a_second_export_into_a_folder_being_exported_into_is_refused_naming_the_first(tinymyo_ckpt, tmp_path):
    """Two exports into one --out at once (a CI matrix, two shells) each wrote a config.json listing only its own
    files: the last one moved in dropped the other's from the listing."""
    import subprocess
    import sys

    out, inside, go = tmp_path / "out", tmp_path / "inside", tmp_path / "go"
    command = [sys.executable, "-c", HELD_DURING_EXPORT, str(inside), str(go), "export", str(tinymyo_ckpt), "--out", str(out)]
    first = subprocess.Popen([*command, "--format", "onnx"], stderr=subprocess.PIPE, text=True)
    try:
        while not inside.exists() and first.poll() is None:
            subprocess.run([sys.executable, "-c", "import time; time.sleep(0.1)"])
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        second = subprocess.run(
            [sys.executable, "-m", "biofound_cli", "export", str(tinymyo_ckpt), "--format", "torchscript", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        go.touch()
        _, first_err = first.communicate(timeout=300)

    assert second.returncode == 2, second.stderr
    line = " ".join(second.stderr.split("error: ", 1)[1].split())
    assert line.startswith(f"{out} is being exported into by pid {first.pid} on "), line
    assert line.endswith("wait for that export to end (or stop it), or choose another --out"), line
    assert first.returncode == 0, first_err
    assert set(listed(out)[0]) == {"model.onnx"}
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "config.json", "model.onnx"]  # no lock left


STOP_INSIDE = """
import os, signal, sys
import torch.onnx
import biofound_cli.export.onnx_export as onnx_export
def stop():
    os.killpg(os.getpgrp(), signal.{signal})
if "{where}" == "trace":
    trace = torch.onnx.export
    def trace_then_stop(*args, **kwargs):
        trace(*args, **kwargs)  # the graph is half in: its temporary written in the staging folder
        stop()
    torch.onnx.export = trace_then_stop
else:
    get_next = onnx_export._Calibration.get_next
    def calibrate_then_stop(self):
        stop()  # inside onnxruntime's quantize_static, its calibration files in TMPDIR
        return get_next(self)
    onnx_export._Calibration.get_next = calibrate_then_stop
from biofound_cli.cli.app import app
sys.argv = ["biofound", *sys.argv[1:]]
app()
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["trace", "calibration"])
@pytest.mark.parametrize(("signal_name", "status", "named"), [("SIGTERM", 143, "SIGTERM"), ("SIGINT", 130, "Ctrl-C")])
def test_a_stop_inside_the_onnx_trace_or_the_int8_pass_leaves_out_and_the_temporary_folder_as_they_were(
    tinymyo_ckpt, tmp_path, where, signal_name, status, named
):
    import subprocess
    import sys

    out, scratch = tmp_path / "out", tmp_path / "scratch"
    scratch.mkdir()
    export_checkpoint(tinymyo_ckpt, "safetensors", out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    split = write_packed(tmp_path / "test.h5", ch_names=["CH0", "CH1", "CH2", "CH3"])
    script = STOP_INSIDE.replace("{signal}", signal_name).replace("{where}", where)
    args = ["export", str(tinymyo_ckpt), "-f", "onnx", "--quantize", "int8-static", "--split", str(split), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", script, *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )

    assert done.returncode == status, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"stopped by {named}" in errors[0] and "Traceback" not in done.stderr, done.stderr
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # no staging folder, lock or temporary
    # onnxruntime's calibration folder is gone too (.ses: a session id a native library writes on every run, kept)
    assert [path.name for path in scratch.iterdir() if path.name != ".ses"] == []


def test_a_sigterm_once_every_file_is_verified_lets_the_export_move_in_whole(tinymyo_ckpt, tmp_path, monkeypatch):
    """Stopped between removing the other export and moving this one in, the folder held neither."""
    import os
    import signal

    out = tmp_path / "out"
    export_checkpoint(save_small(tmp_path / "other.safetensors", "tinymyo", seed=1), "onnx", out)
    rename = os.replace

    def rename_then_sigterm(source, target):
        rename(source, target)
        if os.fspath(target).endswith(".old"):  # the other export's first file moved aside
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(os, "replace", rename_then_sigterm)
    result = export(tinymyo_ckpt, "--format", "onnx", "--overwrite", "--out", out)

    assert result.exit_code == 0, result.output
    assert listed(out)[1]["source_checkpoint_sha256"] == file_sha256(tinymyo_ckpt)
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "config.json", "model.onnx"]


def test_a_sigterm_once_the_export_moved_in_is_no_stop(tinymyo_ckpt, tmp_path, monkeypatch):
    """Stopped once every file was in, as the result was made, it ended with 143 and "nothing of it was
    written to OUT" beside the whole export: a scheduler requeued finished work."""
    import os
    import signal

    import biofound_cli.export as export_module

    made = export_module.ExportResult

    def sigterm_then_result(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # its handler runs at the next bytecode
        return made(*args, **kwargs)

    monkeypatch.setattr(export_module, "ExportResult", sigterm_then_result)
    out = tmp_path / "out"
    result = export(tinymyo_ckpt, "--format", "onnx", "--out", out)
    assert result.exit_code == 0, result.output
    assert "SIGTERM came as the work finished: it is complete" in result.output
    assert listed(out)[1]["source_checkpoint_sha256"] == file_sha256(tinymyo_ckpt)
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "config.json", "model.onnx"]


def test_the_staging_folder_of_an_export_killed_outright_is_removed_by_the_next(tinymyo_ckpt, tmp_path):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "out"
    left = out / f".staging-export.{host_label()}.{int(gone.stdout)}.0123abcd.tmp"
    left.mkdir(parents=True)
    (left / "model.onnx").write_bytes(b"half a graph")  # SIGKILL (the OOM killer) while the export was written

    export_checkpoint(tinymyo_ckpt, "safetensors", out)

    assert sorted(path.name for path in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_a_sigterm_while_onnx_imports_is_one_line_and_143(tinymyo_ckpt, tmp_path, monkeypatch):
    """Before the export's own stop handling (onnx importing, the opset checked) SIGTERM killed it without a word."""
    import os
    import signal

    import biofound_cli.export.onnx_export as onnx_export

    require = onnx_export.require_onnx

    def require_then_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        return require()

    monkeypatch.setattr(onnx_export, "require_onnx", require_then_sigterm)
    result = export(tinymyo_ckpt, "--format", "onnx", "--out", tmp_path / "out", "--json")

    assert result.exit_code == 143, result.output
    assert "stopped by SIGTERM; nothing was exported, so re-run the same command" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_an_out_holding_the_checkpoint_being_exported_is_refused_and_the_checkpoint_kept(tmp_path, fmt):
    # safetensors: the export's model.safetensors replaced the checkpoint it was made from, whose sha256 config.json
    # then gave for a file no longer there. onnx: refused, with advice to pass --overwrite, which deleted it.
    folder = tmp_path / "runs" / "uci" / "checkpoints" / "best"
    checkpoint = save_small(folder / "model.safetensors", "tinymyo")
    before = checkpoint.read_bytes()
    for extra in ([], ["--overwrite"]):
        result = export(folder, "--format", fmt, "--out", folder, *extra)
        assert result.exit_code == 2, result.output
        line = " ".join(result.stderr.split())
        assert line == (
            f"error: {folder}: holds the checkpoint being exported (model.safetensors), which this export would "
            "replace; choose another --out"
        )
        assert checkpoint.read_bytes() == before and sorted(path.name for path in folder.iterdir()) == ["model.safetensors"]


def test_an_export_killed_on_another_node_as_its_files_moved_in_is_finished_by_the_next(tinymyo_ckpt, tmp_path):
    # A kill among the swap's renames left the earlier export's files aside (.old) and the new ones half moved in;
    # an export on another node never cleared them (their pid means nothing there), so they stayed for good.
    out = tmp_path / "out"
    assert export(tinymyo_ckpt, "--format", "safetensors", "--out", out).exit_code == 0
    staging = out / ".staging-export.node99.4242.0123abcd.tmp"
    staging.mkdir()
    aside = out / ".config.json.node99.4242.89abcdef.old"
    os.replace(out / "config.json", aside)  # moved aside; README.md and model.safetensors still to go
    (staging / "config.json").write_text(aside.read_text())
    (staging / SWAP_JOURNAL).write_text(json.dumps({"moves": ["config.json"], "gone": [], "aside": [aside.name]}))

    result = export(tinymyo_ckpt, "--format", "safetensors", "--out", out)

    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    files, _ = listed(out)
    assert files["model.safetensors"] == file_sha256(out / "model.safetensors")
