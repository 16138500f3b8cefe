"""``biofound predict`` on a checkpoint of ``biofound pretrain``: the chain travels from the shards, as for finetune.

``preprocess → pack → pretrain → predict`` through the CLI on small EMG CSV files (a tiny TinyMyo,
two epochs, loader workers): the pre-training checkpoint records the chain its packed files keep,
so predict needs no ``--recipe``. Shards of two chains packed together (an ``emg-csv`` and a
``table`` run into one folder, as when pre-training on several corpora) give windows of no one
chain: predict then says how the chains differ and what ``--recipe`` to pass. A tiny LUNA pre-trained on
TUEG files (``montage = "auto"``) predicts raw ones read as ``preprocess`` read them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.emg_csv import CHANNELS, PACK, SFREQ, TABLE_OPTIONS, preprocess_section, write_recordings
from fixtures.packed import N_TIMES, TINYMYO, toml_table
from fixtures.tuh import TUH_ELECTRODES
from typer.testing import CliRunner

from biofound_cli.cli.app import app

pytestmark = pytest.mark.slow

STAGES = (
    PACK
    + """
[data]
train = "packed/train.h5"
val = "packed/val.h5"
batch_size = 4
num_workers = 2
[optim]
lr = 1e-3
warmup_steps = 1
[train]
epochs = 2
early_stopping_metric = "val_loss"
early_stopping_mode = "min"
[output]
runs_dir = "runs"
"""
)
# The EMG chain (windows of the tests' tiny TinyMyo), and TUEG with its automatic montage (the TUH files of
# test_a_tueg_model_...).
RECIPE = (
    'name = "pre"\n'
    + preprocess_section(N_TIMES / SFREQ, 0.1, zscore=True)
    + f"""
[model]
variant = "tinymyo"
overrides = {toml_table(TINYMYO)}
"""
    + STAGES
)
TUEG_RECIPE = (
    """
name = "pre"
[preprocess]
corpus = "tueg"
root = "raw"
out = "shards"
[model]
variant = "luna-base"
overrides = { depth = 1, embed_dim = 32, num_queries = 2 }
"""
    + STAGES
)


def _invoke(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, [*args, "--json", "--no-progress"])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def _project(folder: Path) -> Path:
    """Four subjects of two 4-second recordings each (``raw/s0/0.csv``...), and the recipe of the whole chain."""
    write_recordings(folder / "raw", subjects=4, repetitions=2, samples=800, rng=np.random.default_rng(0))
    (folder / "pre.toml").write_text(RECIPE)
    return folder / "pre.toml"


def _pretrain(recipe: Path) -> Path:
    for stage in (["preprocess", "--recipe"], ["pack", "--recipe"], ["pretrain"]):
        status, printed = _invoke(*stage, str(recipe))
        assert status == 0, printed
    return recipe.parent / "runs" / "pre" / "checkpoints" / "best"


def test_a_pretrain_checkpoint_predicts_raw_recordings_through_the_chain_of_its_packed_files(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    checkpoint = _pretrain(_project(tmp_path))

    status, printed = _invoke("predict", str(checkpoint), "raw", "--out", "predictions", "--workers", "2")

    assert status == 0, printed
    assert (printed["chain_from"], printed["found"], printed["predicted"]) == ("model", 8, 8)
    header = (tmp_path / "predictions" / "s0-0.csv").read_text().splitlines()[0]
    assert header.endswith(",reconstruction_error"), header


def test_a_model_pretrained_on_shards_of_two_chains_names_how_they_differ_and_the_recipe_to_pass(tmp_path, monkeypatch) -> None:
    """It asked for --recipe as for "an official checkpoint, or one trained before biofound recorded it": neither."""
    monkeypatch.chdir(tmp_path)
    recipe = _project(tmp_path)
    (tmp_path / "tables").mkdir()
    for index in range(4):
        data = np.random.default_rng(index).normal(size=(800, len(CHANNELS)))
        np.savetxt(tmp_path / "tables" / f"t{index}.csv", data, delimiter=",", fmt="%.5f")
    table = ["--root", "tables", "--set", "preprocess.corpus=table", "--set", "preprocess.filter_method=fir"]
    status, printed = _invoke("preprocess", "--recipe", str(recipe), *table, "--set", TABLE_OPTIONS)
    assert status == 0, printed
    checkpoint = _pretrain(recipe)  # the emg-csv run into the same shards folder, then pack and pretrain

    status, printed = _invoke("predict", str(checkpoint), "raw", "--out", "predictions")

    assert status == 2, printed
    assert printed["error"].startswith(
        f"{checkpoint / 'model.safetensors'} records no preprocessing chain: its training windows were made by 2 "
        "chains, shards of each packed together (corpus 'emg-csv' vs 'table', config.filter_method 'iir' vs 'fir'"
    )
    assert printed["error"].endswith(
        "so none is the model's; pass --recipe with the [preprocess] section of the preprocess run whose corpus the "
        "recordings you predict are like (corpus emg-csv, table)"
    )
    status, printed = _invoke("predict", str(checkpoint), "raw", "--out", "predictions", "--recipe", str(recipe))
    assert status == 0, printed
    assert (printed["chain_from"], printed["predicted"]) == (str(recipe), 8)


SECONDS = 10
SUBJECTS = ("aaaaaaaa", "aaaaaaab", "aaaaaaac", "aaaaaaad")


def _tueg_edf(path: Path, seed: int, drop: tuple[str, ...] = ()) -> None:
    """A TUEG file: the 21 electrodes (less ``drop``) at 250 Hz (µV) and an IBI channel at 1 Hz, as clinical exports hold."""
    import edfio

    rng = np.random.default_rng(seed)
    channels = [*((f"EEG {name}-REF", 250) for name in TUH_ELECTRODES if name not in drop), ("IBI", 1)]
    signals = [
        edfio.EdfSignal(
            rng.normal(0, 20, rate * SECONDS).round(1), sampling_frequency=rate, label=label, physical_dimension="uV",
            physical_range=(-500, 500),
        )
        for label, rate in channels
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    edfio.Edf(signals).write(path)


def test_a_tueg_model_predicts_raw_files_through_the_montage_preprocess_chose(tmp_path, monkeypatch) -> None:
    """TUEG files carry, as real ones do, a signal at another rate (IBI, 1 Hz) beside the 21 electrodes:
    ``preprocess`` (``montage = "auto"``) reads only the electrodes of each recording's montage, and predict
    must too, or it skips every file as ``mixed_rates``. A file without ear electrodes (``03_tcp_ar_a``)
    lacks channels of the model's 22: it is skipped naming them, never fed to the model.
    """
    monkeypatch.chdir(tmp_path)
    for seed, subject in enumerate(SUBJECTS):
        _tueg_edf(tmp_path / "raw" / subject / "s001_2010" / "01_tcp_ar" / f"{subject}_s001_t000.edf", seed)
    (tmp_path / "tueg.toml").write_text(TUEG_RECIPE)
    checkpoint = _pretrain(tmp_path / "tueg.toml")

    _tueg_edf(tmp_path / "more" / "aaaaaaae" / "s001_2010" / "03_tcp_ar_a" / "aaaaaaae_s001_t000.edf", 4, ("A1", "A2"))

    status, printed = _invoke("predict", str(checkpoint), "raw", "more", "--out", "predictions", "--workers", "2")

    # Before, predict read every signal of the files: the IBI's 1 Hz made each one "mixed_rates".
    assert status == 0, printed
    assert (printed["found"], printed["predicted"], printed["skipped"]) == (5, 4, 1)
    summary = json.loads((tmp_path / "predictions" / "summary.json").read_text())
    no_ears = next(entry for entry in summary["recordings"] if entry["recording_id"] == "aaaaaaae_s001_t000")
    assert (no_ears["status"], no_ears["reason"]) == ("skipped", "missing_channels")
    assert "A1, A2" in no_ears["message"], no_ears
    header = (tmp_path / "predictions" / "aaaaaaaa_s001_t000.csv").read_text().splitlines()[0]
    assert header.endswith(",reconstruction_error"), header
