"""The unattended-use contract of docs/exit-status.md, checked command by command as a CI job reads it.

With ``--json``, success or failure: exactly one JSON object on stdout, its ``exit_status`` the
process's, and on stderr only plain lines (log lines, ``warning:``/``error:``), no table, bar or
colour. Without it, off a terminal: no escape codes or redraws; with ``--quiet``: only warnings,
errors and the summary.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures.cli_output import DRAWN, ESCAPES, assert_json_contract
from fixtures.export_models import save_small
from fixtures.shards import write_corpus
from fixtures.tiny_training import training_recipe
from fixtures.tuh import build_tuab
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import COMMAND_STATUSES, ExitStatus

runner = CliRunner()

TIMESTAMPED = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] ")


@pytest.fixture(autouse=True)
def _not_a_terminal(monkeypatch):
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """Inputs every case reads: raw TUAB, its shards, a finished tiny run, an EMG model and tables."""
    folder = tmp_path_factory.mktemp("unattended")
    raw = build_tuab(folder / "raw")
    assert runner.invoke(app, ["preprocess", "tuab", "--root", str(raw), "--out", str(folder / "shards"), "-q"]).exit_code == 0
    recipe = training_recipe(folder, max_steps=2)
    assert runner.invoke(app, ["finetune", str(recipe), "-q"]).exit_code == 0
    shutil.copy(folder / "train.h5", folder / "nan.h5")
    with h5py.File(folder / "nan.h5", "r+") as handle:
        handle["x"][...] = np.nan
    emg = [f"EMG{index}" for index in range(1, 5)]
    chain = {"corpus": "emg-csv", "options": {"sfreq": 200.0}, "window_seconds": 0.2, "stride_seconds": 0.2}
    save_small(folder / "emg.safetensors", "tinymyo", ch_names=emg, sfreq=200.0, n_times=40, preprocessing=chain)
    (folder / "emg").mkdir()
    rng = np.random.default_rng(0)
    np.savetxt(folder / "emg" / "R_0_C_0_EMG.csv", rng.normal(size=(200, 4)), delimiter=",", fmt="%.5f")
    (folder / "r.toml").write_text("[preprocess]\ncorpus = 'tuab'\n")
    (folder / "bad_field.toml").write_text("[preprocess]\ncorpus = 'tuab'\nworkers = 'many'\n")
    (folder / "broken.h5").write_text("not HDF5")
    (folder / "bad_shards").mkdir()
    (folder / "bad_shards" / "broken.h5").write_text("not HDF5")
    write_corpus(folder / "few_shards", n_subjects=3, windows_per_subject=1)
    return folder


PRETRAIN = ["--set", "train.early_stopping_metric=val_loss", "--set", "train.early_stopping_mode=min"]
# (command line, its exit status); {d} is the `made` folder, {t} a fresh one for what the command writes.
CASES = [
    (["models", "tinymyo"], ExitStatus.OK),
    (["models", "nothing-like-this*"], ExitStatus.USAGE),
    (["recipes", "ls"], ExitStatus.OK),
    (["recipes", "show", "luna_tuab"], ExitStatus.OK),
    (["recipes", "cp", "luna_tuab", "{t}/mine.toml"], ExitStatus.OK),
    (["recipes", "show", "luna_tuabb"], ExitStatus.USAGE),
    (["recipes", "cp", "luna_tuab", "{d}/r.toml"], ExitStatus.USAGE),  # DEST exists, no --overwrite
    (["info", "{d}/r.toml"], ExitStatus.OK),
    (["info", "{d}/shards"], ExitStatus.OK),
    (["info", "{d}/missing.h5"], ExitStatus.USAGE),
    (["info", "{d}/broken.h5"], ExitStatus.FAILED),
    (["validate", "{d}/r.toml"], ExitStatus.OK),
    (["validate", "{d}/bad_field.toml"], ExitStatus.USAGE),
    (["env", "{t}"], ExitStatus.OK),
    (["preprocess", "tuab", "--root", "{d}/raw", "--out", "{t}/shards"], ExitStatus.OK),
    (["preprocess", "tuab", "--root", "{d}/raw", "--out", "{d}/shards"], ExitStatus.OK),  # all already there
    (["preprocess", "tuab", "--root", "{d}/missing", "--out", "{t}/shards"], ExitStatus.USAGE),
    (["preprocess", "--recipe", "{d}/bad_field.toml", "--root", "{d}/raw", "--out", "{t}/shards"], ExitStatus.USAGE),
    (["pack", "{d}/shards", "--out", "{t}/packed"], ExitStatus.OK),
    (["pack", "{d}/bad_shards", "--out", "{t}/packed"], ExitStatus.FAILED),
    (["pack", "{d}/few_shards", "--out", "{t}/packed", "--set", "pack.train=0.9"], ExitStatus.USAGE),
    (["finetune", "{d}/tiny.toml", "--set", "output.runs_dir={t}/runs"], ExitStatus.OK),
    (["finetune", "{d}/tiny.toml", "--set", "train.max_steps=many"], ExitStatus.USAGE),
    (["finetune", "{d}/tiny.toml", "--set", "data.train={d}/nan.h5", "--set", "output.runs_dir={t}/runs"], ExitStatus.FAILED),
    (["pretrain", "{d}/tiny.toml", "--set", "output.runs_dir={t}/runs", *PRETRAIN], ExitStatus.OK),
    (["finetune", "{d}/tiny.toml"], ExitStatus.USAGE),  # the run exists, no --resume
    (["evaluate", "{d}/tiny.toml", "--no-plots", "--out", "{t}/eval"], ExitStatus.OK),
    (["evaluate", "{d}/tiny.toml", "--split", "holdout"], ExitStatus.USAGE),
    (["evaluate", "{d}/tiny.toml", "--checkpoint", "{d}/broken.h5", "--no-plots"], ExitStatus.FAILED),
    (["export", "{d}/runs/tiny", "--out", "{t}/export"], ExitStatus.OK),
    (["export", "{d}/runs/tiny", "--format", "tflite", "--out", "{t}/export"], ExitStatus.USAGE),
    (["predict", "{d}/emg.safetensors", "{d}/emg", "--out", "{t}/predicted"], ExitStatus.OK),
    (["predict", "{d}/missing.safetensors", "{d}/emg", "--out", "{t}/predicted"], ExitStatus.USAGE),
]


def _id(case) -> str:
    args, status = case
    return f"{' '.join(args)} -> {int(status)}"


def _invoke(made: Path, fresh: Path, args: list[str], *flags: str):
    return runner.invoke(app, [arg.format(d=made, t=fresh) for arg in args] + list(flags))


@pytest.mark.parametrize(("args", "status"), CASES, ids=[_id(case) for case in CASES])
def test_json_is_one_object_on_stdout_and_plain_lines_on_stderr(made, tmp_path, args, status):
    assert_json_contract(_invoke(made, tmp_path, args, "--json"), status)


@pytest.mark.parametrize(("args", "status"), CASES, ids=[_id(case) for case in CASES])
def test_off_a_terminal_the_log_is_plain_and_quiet_keeps_only_the_summary(made, tmp_path, args, status):
    plain = _invoke(made, tmp_path / "plain", args)
    assert plain.exit_code == status, plain.output
    for text in (plain.stdout, plain.stderr):
        assert not any(escape in text for escape in ESCAPES), repr(text)
    progress = [line for line in plain.stdout.splitlines() if TIMESTAMPED.match(line)]
    assert all(re.search(r": (stopped at )?\d+(/\d+)? \w+ \(", line) for line in progress), progress

    quiet = _invoke(made, tmp_path / "quiet", args, "--quiet")
    assert quiet.exit_code == status, quiet.output
    assert all(line.startswith(("warning: ", "error: ")) for line in quiet.stderr.splitlines()), quiet.stderr
    if args[:2] == ["recipes", "show"] and status == ExitStatus.OK:
        return  # its result is the TOML text itself
    lines = [line for line in quiet.stdout.splitlines() if line.strip()]
    # Only the summary (or listing) table: its rows, and the title line above its top edge.
    for index, line in enumerate(lines):
        titled = index + 1 < len(lines) and lines[index + 1].startswith("┏")
        assert DRAWN.match(line) or titled, quiet.stdout


def test_the_exit_status_page_lists_every_status_and_every_command():
    """docs/exit-status.md drifted: `recipes` had no row of its own, and a new status could go unlisted."""
    text = (Path(__file__).parents[3] / "docs" / "exit-status.md").read_text()
    listed = {(int(value), name) for value, name in re.findall(r"^\| (\d+) \| ([A-Z_]+) \|", text, re.M)}
    assert listed == {(int(status), status.name) for status in ExitStatus}
    rows = re.findall(r"^\| ((?:`[a-z]+`(?:, )?)+) \|", text, re.M)
    documented = {name for row in rows for name in re.findall(r"`([a-z]+)`", row)}
    commands = {command.name for command in app.registered_commands} | {group.name for group in app.registered_groups}
    assert documented == commands


def _per_command_table(text: str) -> dict[str, set[int]]:
    """The statuses each command's row of docs/exit-status.md fills in (a cell other than "—"), 143 included."""
    header = re.search(r"^\| command \|(.+)\|$", text, re.M)
    assert header, "the per-command table's header is gone"
    columns = [int(cell) for cell in header.group(1).split("|")]
    # 143 was a row of the first table naming its commands, a second place the statuses lived in.
    assert columns == [int(status) for status in ExitStatus], "a status has no column of its own"
    listed: dict[str, set[int]] = {}
    for names, cells in re.findall(r"^\| ((?:`[a-z]+`(?:, )?)+) \|(.+)\|$", text, re.M):
        filled = {status for status, cell in zip(columns, cells.split("|"), strict=True) if cell.strip() != "—"}
        listed.update({name: filled for name in re.findall(r"`([a-z]+)`", names)})
    return listed


def test_the_per_command_table_lists_the_statuses_the_code_declares():
    """Ctrl-C ends every command with 130, but the page gave 130 to none of the read-only ones."""
    text = (Path(__file__).parents[3] / "docs" / "exit-status.md").read_text()
    declared = {name: {int(status) for status in statuses} for name, statuses in COMMAND_STATUSES.items()}
    assert _per_command_table(text) == declared


def test_every_status_the_commands_were_seen_to_end_with_is_declared():
    commands = {command.name for command in app.registered_commands} | {group.name for group in app.registered_groups}
    assert set(COMMAND_STATUSES) == commands
    for args, status in CASES:
        assert status in COMMAND_STATUSES[args[0]], (args, status)
