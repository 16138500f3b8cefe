"""The chain ``predict`` runs: the one recorded with the model, pinned to its channels and rate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.corpora import get_corpus
from biofound_cli.errors import UsageError
from biofound_cli.prediction.chain import PredictionChain, resolve_prediction_chain
from biofound_cli.signals.chain import ChainConfig


def _recorded() -> dict:
    config = ChainConfig(window_seconds=1.0, stride_seconds=0.25, l_freq=20.0, h_freq=90.0, notch_hz=(50.0,), units="native")
    return {"corpus": "emg-csv", "options": {"sfreq": 200.0}, **config.to_json_dict()}


def test_a_stored_chain_reads_back_equal() -> None:
    config = ChainConfig(window_seconds=2.0, notch_hz=(50.0, 100.0), channels=("C3", "C4"), montage="none")
    assert ChainConfig.from_json_dict({**config.to_json_dict(), "corpus": "edf"}) == config


def test_the_recorded_chain_is_pinned_to_the_models_channels_and_rate() -> None:
    chain = resolve_prediction_chain(_recorded(), ch_names=["EMG1", "EMG2"], sfreq=200.0)
    assert chain.corpus_cls.name == "emg-csv" and chain.origin == "model"
    assert chain.config.channels == ("EMG1", "EMG2") and chain.config.sfreq == 200.0
    assert chain.config.notch_hz == (50.0,) and chain.config.stride_seconds == 0.25
    assert chain.options.sfreq == 200.0


def test_a_model_without_a_chain_is_refused_with_what_to_pass() -> None:
    with pytest.raises(UsageError, match="records no preprocessing chain.*--recipe"):
        resolve_prediction_chain(None, model_name="official.safetensors")


def test_cli_names_a_missing_model_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "nope"), str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no such file or folder" in result.output and "Traceback" not in result.output


def test_cli_refuses_a_folder_that_holds_no_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["predict", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "holds neither model.safetensors nor config.json" in result.output


def test_cli_says_a_run_folder_has_no_best_checkpoint_yet_as_evaluate_and_export_do(tmp_path: Path) -> None:
    """A run preempted before its first evaluation: predict called its folder one that holds no model at all."""
    run = tmp_path / "runs" / "young"
    (run / "checkpoints" / "step-00000001").mkdir(parents=True)
    result = CliRunner().invoke(app, ["predict", str(run), str(tmp_path), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert json.loads(result.stdout)["error"] == (
        f"{run}: the run has no best checkpoint yet (none of its evaluations ran or improved); "
        "let it evaluate, or pass one of its checkpoints/step-N folders"
    )


def test_cli_refuses_cuda_without_a_device_in_one_line(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = CliRunner().invoke(app, ["predict", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "o"), "--device", "cuda"])
    assert result.exit_code == 2
    assert "--device cuda: no CUDA device is available; use --device cpu" in result.output
    assert "Traceback" not in result.output


TWO_SECONDS = (
    "window_seconds = 2.0",
    "preprocess.window_seconds = 2, 512-sample windows at 256 Hz, but ",
    "takes 880-sample windows (3.4375 s); set preprocess.window_seconds there to 3.4375 if the recordings and their "
    "labelled events last that long",
)
# Only a graph refuses other channels (a LUNA checkpoint takes them): it said to set the graph's channels, which
# defeated a user after another montage; it now names the checkpoint that takes them (CHECKPOINT: its path).
GRAPH_FIX = (
    "a LUNA graph takes only the channels it was exported for: predict with the checkpoint it was exported from "
    "(CHECKPOINT) and this --recipe (LUNA places each channel by its electrode position), or set preprocess.channels "
    "(or montage) to the graph's there"
)
TWO_CHANNELS = (
    'window_seconds = 3.4375\nchannels = ["FP1", "C3"]',
    "preprocess.channels, 2 channels (FP1, C3), but ",
    "takes 3 (FP1, C3, O1); " + GRAPH_FIX,
)

# The same count in another order fed each model input another electrode without a word.
OTHER_ORDER = (
    'window_seconds = 3.4375\nchannels = ["C3", "FP1", "O1"]',
    "preprocess.channels, the channels C3, FP1, O1, but ",
    "takes FP1, C3, O1 in that order; " + GRAPH_FIX + ", in that order",
)

# As many samples per window at another rate (the window check's advice at the recipe's rate led there):
# each window fed the model another time scale without a word.
OTHER_RATE = (
    "window_seconds = 4.4\nsfreq = 200.0",
    "preprocess.sfreq = 200, but ",
    "was trained on windows at 256 Hz; set preprocess.sfreq = 256 there",
)


REFUSED = {"window": TWO_SECONDS, "channels": TWO_CHANNELS, "order": OTHER_ORDER, "rate": OTHER_RATE}


@pytest.mark.parametrize(
    ("form", "setting", "starts", "ends"),
    [
        pytest.param(form, *case, id=f"{name}-{form}")
        for form in ("checkpoint", "onnx")
        for name, case in REFUSED.items()
        # A LUNA checkpoint places each channel by its position, so it takes a recipe's other channels
        # (test_predict_outputs.py); its ONNX graph is traced for the channels it was exported with.
        if form == "onnx" or name not in ("channels", "order")
    ],
)
def test_a_recipe_whose_windows_are_not_the_models_is_refused_before_any_recording_is_read(
    tmp_path: Path, form, setting, starts, ends
) -> None:
    """LUNA trained on 880-sample windows of 3 channels, a --recipe cutting 2 s (512 samples at 256 Hz) or
    picking 2 channels for its graph: one line, exit 2, instead of a shape error from PyTorch or onnxruntime
    on the first batch."""
    import json

    from fixtures.export_models import save_small

    chain = ChainConfig(window_seconds=880 / 256, sfreq=256.0, channels=("FP1", "C3", "O1"))
    model = checkpoint = save_small(
        tmp_path / "luna.safetensors",
        "luna",
        task="bc",
        num_classes=2,
        ch_names=["FP1", "C3", "O1"],
        sfreq=256.0,
        n_times=880,
        preprocessing={"corpus": "edf", "options": {}, **chain.to_json_dict()},
    )
    if form == "onnx":
        pytest.importorskip("onnxruntime")
        from biofound_cli.export import export_checkpoint

        model = export_checkpoint(model, "onnx", tmp_path / "export").out_dir
    recipe = tmp_path / "other.toml"
    rate = "" if "sfreq" in setting else "sfreq = 256.0\n"
    recipe.write_text(f'[preprocess]\ncorpus = "edf"\n{rate}{setting}\n')
    import mne
    import numpy as np

    (tmp_path / "rec").mkdir()
    signal = np.random.default_rng(0).normal(0, 20e-6, (3, 256 * 10))
    raw = mne.io.RawArray(signal, mne.create_info(["FP1", "C3", "O1"], 256.0, ch_types="eeg"), verbose="error")
    mne.export.export_raw(tmp_path / "rec" / "a.edf", raw, fmt="edf", verbose="error")
    out = tmp_path / "out"
    args = ["predict", str(model), str(tmp_path / "rec"), "--recipe", str(recipe), "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    ends = ends.replace("CHECKPOINT", str(checkpoint.resolve()))
    assert error.startswith(f"{recipe}: {starts}") and error.endswith(ends), error
    assert not out.exists()


@pytest.mark.parametrize("corpus", ["db5", "edf", "table", "emg-csv", "ts"])
def test_the_options_of_the_training_datas_splits_are_left_out_for_new_recordings(corpus: str) -> None:
    # One declaration (Corpus.official_split_options) says both what pack names for an empty split
    # and what predict empties; ts's val_fraction, declared only there, was kept.
    cls = get_corpus(corpus)
    values = {
        "labels_csv": "labels.csv",
        "split_by_repetition": {"test": [1]},
        "val_fraction": 0.25,
        "split_patterns": {"val": "*"},
    }
    options = cls.Options(**{name: values[name] for name in set(cls.official_split_options.values())})
    chain = PredictionChain(cls, options, ChainConfig(window_seconds=1.0), "model")
    left = chain.corpus().options
    assert all(not getattr(left, name) for name in cls.official_split_options.values()), left


def _luna_and_recording(tmp_path: Path, steps: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """A small LUNA checkpoint of 880-sample windows of FP1, C3, O1 at 256 Hz, and a folder of one 10-s EDF of Cz
    and FP2, spelled as EDF files spell them."""
    import mne
    import numpy as np
    from fixtures.export_models import save_small

    chain = ChainConfig(window_seconds=880 / 256, sfreq=256.0, channels=("FP1", "C3", "O1"), **(steps or {}))
    model = save_small(
        tmp_path / "luna.safetensors",
        "luna",
        task="bc",
        num_classes=2,
        ch_names=["FP1", "C3", "O1"],
        sfreq=256.0,
        n_times=880,
        preprocessing={"corpus": "edf", "options": {}, **chain.to_json_dict()},
    )
    (tmp_path / "rec").mkdir()
    signal = np.random.default_rng(0).normal(0, 20e-6, (2, 256 * 10))
    raw = mne.io.RawArray(signal, mne.create_info(["Cz", "EEG FP2-REF"], 256.0, ch_types="eeg"), verbose="error")
    mne.export.export_raw(tmp_path / "rec" / "a.edf", raw, fmt="edf", verbose="error")
    return model, tmp_path / "rec"


def test_a_recipe_naming_no_window_cuts_the_models_as_it_takes_its_rate(tmp_path: Path) -> None:
    """LUNA trained on 880-sample windows, a --recipe naming only its recordings' reader and channels: the
    corpus's default 5 s (1280 samples) was refused ("preprocess.window_seconds = 5, ... set it there to
    3.4375"), a length the recipe never named; the model's window is cut, as the model's rate is taken."""
    model, recordings = _luna_and_recording(tmp_path)
    recipe = tmp_path / "other.toml"
    recipe.write_text('[preprocess]\ncorpus = "edf"\nchannels = ["FP2", "Cz"]\n')
    out = tmp_path / "out"
    args = ["predict", str(model), str(recordings), "--recipe", str(recipe), "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["channels"], summary["windows"]) == (["FP2", "CZ"], 2)  # 2560 samples: two of 880, one after another


def test_a_recipe_channel_luna_cannot_place_is_the_recipes_fault_in_one_line(tmp_path: Path) -> None:
    """A --recipe naming an ECG beside the EEG for a LUNA checkpoint: exit 1, "Channel 'ECG' has no known position
    ...", naming no file; it is a recipe error (exit 2) naming the recipe, before any recording is read."""
    model, recordings = _luna_and_recording(tmp_path)
    recipe = tmp_path / "other.toml"
    recipe.write_text('[preprocess]\ncorpus = "edf"\nwindow_seconds = 3.4375\nchannels = ["FP2", "Cz", "ECG"]\n')
    out = tmp_path / "out"
    args = ["predict", str(model), str(recordings), "--recipe", str(recipe), "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error.startswith(f"{recipe}: Channel 'ECG' has no known position in the 10-05 system; "), error
    assert "Traceback" not in result.output and not out.exists()


def test_the_channels_fed_are_said_only_once_each_is_placed(tmp_path: Path) -> None:
    """predict logged "... is fed those, each placed by its electrode position" and then refused the recipe's ECG,
    which it cannot place: the line is said once the channels are placed, and only then."""
    model, recordings = _luna_and_recording(tmp_path)
    recipe = tmp_path / "other.toml"
    said = "the model, trained on 3 (FP1, C3, O1), is fed those, each placed by its electrode position"
    for channels, status in [('["FP2", "Cz", "ECG"]', 2), ('["FP2", "Cz"]', 0)]:
        recipe.write_text(f'[preprocess]\ncorpus = "edf"\nchannels = {channels}\n')
        args = ["predict", str(model), str(recordings), "--recipe", str(recipe), "--out", str(tmp_path / "out")]
        result = CliRunner().invoke(app, [*args, "--no-progress"])
        assert result.exit_code == status, result.output
        assert (said in result.output) is (status == 0), result.output


def test_a_recipe_chain_dropping_the_models_filters_is_warned_of_naming_each(tmp_path: Path) -> None:
    """A --recipe for recordings of another montage (`corpus = "edf"`, their channels) replaced the recorded chain
    whole, dropping the 0.5-75 Hz band-pass and 60 Hz notch the model was trained with (edf's own 0.1 Hz high-pass
    in its place), without a word. One line names each step it changes; a recipe that keeps them is silent."""
    model, recordings = _luna_and_recording(tmp_path, {"l_freq": 0.5, "h_freq": 75.0, "notch_hz": (60.0,)})
    recipe = tmp_path / "other.toml"
    warnings = []
    for steps in ["", "l_freq = 0.5\nh_freq = 75\nnotch_hz = 60\n"]:
        recipe.write_text(f'[preprocess]\ncorpus = "edf"\nchannels = ["FP2", "Cz"]\n{steps}')
        args = ["predict", str(model), str(recordings), "--recipe", str(recipe), "--out", str(tmp_path / "out"), "--force"]
        result = CliRunner().invoke(app, [*args, "--no-progress"])
        assert result.exit_code == 0, result.output
        warnings.append([line for line in result.output.splitlines() if "its [preprocess] changes the chain" in line])
    dropped, kept = warnings
    assert len(dropped) == 1 and not kept, warnings
    assert "(trained vs here: l_freq 0.5 vs 0.1, h_freq 75 vs none, notch_hz [60] vs none)" in dropped[0], dropped
