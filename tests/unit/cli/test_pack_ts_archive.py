"""A one-subject UEA ``.ts`` archive (X_TRAIN.ts + X_TEST.ts) through `preprocess` and `pack`.

Issue #16 item 3: every window went to test, no train.h5 was written and pack exited 0. The
file-level split of the archive is official: the TRAIN file's trials are train (val carved out of
them by ``val_fraction``), the TEST file's are test.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures.shards import write_shard
from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()

N_TRAIN, N_TEST = 10, 6
SAMPLES = 32
SFREQ = 64.0


def _ts_file(path: Path, n_trials: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = ["@problemName Tiny", "@dimensions 2", "@classLabel true neg pos", "@data"]
    for index in range(n_trials):
        channels = [",".join(f"{v:.3f}" for v in rng.standard_normal(SAMPLES)) for _ in range(2)]
        # Sorted by class, as the UEA files often are.
        lines.append(":".join(channels) + (":neg" if index < n_trials // 2 else ":pos"))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    _ts_file(root / "Tiny_TRAIN.ts", N_TRAIN, seed=0)
    _ts_file(root / "Tiny_TEST.ts", N_TEST, seed=1)
    return root


def _preprocess(archive: Path, out: Path, val_fraction: float) -> None:
    recipe = out.parent / f"preprocess-{val_fraction}.toml"
    recipe.write_text(
        "[preprocess]\ncorpus = 'ts'\n"
        f"root = '{archive}'\nwindow_seconds = {SAMPLES / SFREQ}\nstride_seconds = {SAMPLES / SFREQ}\nworkers = 2\n"
        f"[preprocess.options]\nsfreq = {SFREQ}\nchannel_names = ['C3', 'C4']\nval_fraction = {val_fraction}\n"
    )
    result = runner.invoke(app, ["preprocess", "--recipe", str(recipe), "--out", str(out), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 2


def _pack(shards: Path, out: Path):
    return runner.invoke(app, ["pack", str(shards), "--out", str(out), "--json", "--no-progress"])


def test_train_file_goes_to_train_and_test_file_to_test(archive, tmp_path):
    _preprocess(archive, tmp_path / "shards", val_fraction=0.0)
    result = _pack(tmp_path / "shards", tmp_path / "packed")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["windows"] == {"train": N_TRAIN, "val": 0, "test": N_TEST}
    with h5py.File(tmp_path / "packed" / "train.h5") as handle:
        assert [r.decode() for r in handle["recordings"][()]] == ["ts/Tiny_TRAIN"]
    with h5py.File(tmp_path / "packed" / "test.h5") as handle:
        assert [r.decode() for r in handle["recordings"][()]] == ["ts/Tiny_TEST"]
    # The empty val split is explained in the archive's terms, not as "0 subject(s) cannot fill ...".
    assert "'val' is empty: every subject's windows have an official split" in result.stderr
    assert "(ts: preprocess.options.val_fraction)" in result.stderr and "0 subjects" not in result.stderr


def test_val_fraction_carves_val_out_of_the_train_file(archive, tmp_path):
    _preprocess(archive, tmp_path / "shards", val_fraction=0.2)
    result = _pack(tmp_path / "shards", tmp_path / "packed")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # The last 20 % of each class of the TRAIN file: 1 neg + 1 pos.
    assert summary["windows"] == {"train": N_TRAIN - 2, "val": 2, "test": N_TEST}
    assert summary["class_counts"]["val"] == {"neg": 1, "pos": 1}


def test_an_empty_test_split_names_the_option_that_gives_files_theirs(archive, tmp_path):
    # The TRAIN file alone, val carved out of it: every window has an official split, none test. The
    # warning named no option ("give the corpus such a split"): split_patterns was not declared as one.
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "Tiny_TRAIN.ts").write_bytes((archive / "Tiny_TRAIN.ts").read_bytes())
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f"[preprocess]\ncorpus = 'ts'\nroot = '{tmp_path / 'raw'}'\nwindow_seconds = {SAMPLES / SFREQ}\nworkers = 2\n"
        f"[preprocess.options]\nsfreq = {SFREQ}\nval_fraction = 0.2\n"
    )
    result = runner.invoke(app, ["preprocess", "--recipe", str(recipe), "--out", str(tmp_path / "shards"), "--no-progress"])
    assert result.exit_code == 0, result.output
    result = _pack(tmp_path / "shards", tmp_path / "packed")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["windows"] == {"train": N_TRAIN - 2, "val": 2, "test": 0}
    assert "split 'test' is empty: every subject's windows have an official split and none is 'test'; give recordings " in (
        result.stderr
    )
    assert "give recordings such a split (ts: preprocess.options.split_patterns), or set pack.test = 0" in result.stderr


def test_shards_that_leave_train_empty_fail_with_one_line(tmp_path):
    # Shards of an older preprocess: the TRAIN file unmarked, the TEST file marked test.
    write_shard(tmp_path / "shards" / "ts" / "Tiny_TRAIN.h5", subject="subject", n_windows=N_TRAIN)
    write_shard(tmp_path / "shards" / "ts" / "Tiny_TEST.h5", subject="subject", n_windows=N_TEST, split="test")
    result = _pack(tmp_path / "shards", tmp_path / "packed")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no window goes to train" in errors[0]
    assert "16 in test" in errors[0] and "official_splits = false" in errors[0]
    assert json.loads(result.stdout)["exit_status"] == 1
    assert not (tmp_path / "packed" / "test.h5").exists() and not (tmp_path / "packed" / "splits.json").exists()


@pytest.mark.parametrize("corpus_first", [False, True], ids=["options-first", "corpus-first"])
@pytest.mark.parametrize("command", ["validate", "preprocess"])
def test_set_corpus_options_and_corpus_in_either_order(archive, tmp_path, command, corpus_first):
    """``--set preprocess.options.X=... --set preprocess.corpus=...`` gives what the other order gives.

    Every ``--set`` is applied before anything is checked, so options set ahead of the corpus they
    belong to are judged against that corpus, not the recipe's (tuab takes no sfreq).
    """
    recipe = tmp_path / "tuab.toml"
    recipe.write_text(f"[preprocess]\ncorpus = 'tuab'\nroot = '{archive}'\nwindow_seconds = {SAMPLES / SFREQ}\nworkers = 2\n")
    options = ["--set", f"preprocess.options.sfreq={SFREQ}", "--set", "preprocess.options.channel_names=['C3', 'C4']"]
    corpus = ["--set", "preprocess.corpus=ts"]
    sets = [*corpus, *options] if corpus_first else [*options, *corpus]
    flags = ["--out", str(tmp_path / "shards"), "--no-progress"] if command == "preprocess" else []
    result = runner.invoke(
        app, [command, *(["--recipe"] if command == "preprocess" else []), str(recipe), *sets, *flags, "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["written"] == 2 if command == "preprocess" else summary["valid"]
