"""``biofound predict --precision bf16`` and ``--compile``: the same predictions, faster ways.

Run through the CLI with two preprocessing workers, as users run predict, on a tiny TinyMyo
checkpoint with an ``emg-csv`` chain and CSV recordings whose window counts are not multiples
of the batch size (so every recording ends with a short batch, one of them a batch of one).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures.export_models import save_small
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import UsageError
from biofound_cli.prediction.model import TorchWay, _in_way, load_prediction_model
from biofound_cli.prediction.run import _scores
from biofound_cli.signals.chain import ChainConfig

CHANNELS = [f"EMG{index}" for index in range(1, 5)]
CLASSES = ["rest", "fist", "pinch"]


def _checkpoint(tmp_path: Path, name: str = "model.safetensors", seed: int = 0) -> Path:
    config = ChainConfig(window_seconds=0.2, stride_seconds=0.1, l_freq=None, h_freq=None, notch_hz=(), units="native")
    chain = {"corpus": "emg-csv", "options": {"sfreq": 200.0}, **config.to_json_dict()}
    return save_small(
        tmp_path / name,
        "tinymyo",
        seed=seed,
        num_classes=3,
        ch_names=CHANNELS,
        sfreq=200.0,
        preprocessing=chain,
        label_names=CLASSES,
    )


def _recordings(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    # 20, 29 and 17 windows of 40 samples, stride 20: last batches of 4, 5 and 1 at --batch-size 8.
    for index, n_samples in enumerate((430, 610, 370)):
        np.savetxt(folder / f"R_0_C_{index}_EMG.csv", rng.normal(size=(n_samples, 4)), delimiter=",", fmt="%.5f")
    return folder


def _predict(tmp_path: Path, name: str, *args: str, expect: int = 0, model: str = "model.safetensors") -> dict:
    out = tmp_path / name
    result = CliRunner().invoke(
        app,
        ["predict", str(tmp_path / model), str(tmp_path / "rec"), "--out", str(out), "--workers", "2"]
        + ["--batch-size", "8", "--json", "--no-progress", *args],
    )
    assert result.exit_code == expect, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    return json.loads(Path(last["summary"]).read_text()) if expect == 0 else last


def _probabilities(folder: Path) -> np.ndarray:
    rows = []
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="") as handle:
            rows += [[float(row[f"p_{name}"]) for name in CLASSES] for row in csv.DictReader(handle)]
    return np.array(rows)


@pytest.fixture
def model_and_recordings(tmp_path: Path) -> Path:
    _checkpoint(tmp_path)
    _recordings(tmp_path / "rec")
    return tmp_path


def test_bf16_predicts_what_fp32_predicts(model_and_recordings: Path) -> None:
    tmp_path = model_and_recordings
    fp32 = _predict(tmp_path, "fp32")
    bf16 = _predict(tmp_path, "bf16", "--precision", "bf16")
    assert (fp32["runtime"], bf16["runtime"]) == ("pytorch", "pytorch bf16")
    reference, fast = _probabilities(tmp_path / "fp32"), _probabilities(tmp_path / "bf16")
    assert reference.shape == fast.shape == (66, 3)
    # bfloat16 keeps 8 bits of mantissa: probabilities within a few hundredths, decisions nearly all equal.
    assert np.abs(reference - fast).max() < 0.05
    assert (reference.argmax(axis=1) == fast.argmax(axis=1)).mean() >= 0.9


def test_another_way_is_not_taken_for_already_done(model_and_recordings: Path) -> None:
    """A re-run in bf16 into the folder of an fp32 run predicts again: its numbers differ."""
    tmp_path = model_and_recordings
    _predict(tmp_path, "out")
    again = _predict(tmp_path, "out", "--precision", "bf16")
    assert again["predicted"] == 3 and again["already_done"] == 0
    assert _predict(tmp_path, "out", "--precision", "bf16")["already_done"] == 3


def test_a_table_another_models_run_rewrote_since_is_predicted_again(model_and_recordings: Path) -> None:
    """Model B's run into A's folder, stopped after rewriting a table and before its summary, leaves A's
    summary listing that table: A's re-run must not take B's numbers for its own."""
    tmp_path = model_and_recordings
    _checkpoint(tmp_path, "other.safetensors", seed=1)
    first = _predict(tmp_path, "out")
    table = Path(first["recordings"][0]["output"])
    own = table.read_bytes()
    _predict(tmp_path, "other-out", model="other.safetensors")
    shutil.copyfile(tmp_path / "other-out" / table.name, table)  # what B's stopped run left in A's folder
    assert table.read_bytes() != own
    again = _predict(tmp_path, "out")
    assert (again["predicted"], again["already_done"]) == (1, 2)
    assert table.read_bytes() == own
    assert _predict(tmp_path, "out")["already_done"] == 3  # the re-predicted table's entry holds its new stamp


@pytest.mark.slow
def test_compiled_predicts_what_eager_predicts_with_one_graph(model_and_recordings: Path) -> None:
    import torch._dynamo

    tmp_path = model_and_recordings
    eager = _predict(tmp_path, "eager")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = _predict(tmp_path, "compiled", "--compile")
    assert compiled["runtime"] == "pytorch compiled"
    assert compiled["predicted"] == eager["predicted"] == 3
    np.testing.assert_allclose(_probabilities(tmp_path / "compiled"), _probabilities(tmp_path / "eager"), atol=1e-4)
    # Short last batches of 4, 5 and 1 windows reused the graph (the lone window sent twice): no recompilation.
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


def test_scores_run_every_window_in_batches() -> None:
    seen: list[int] = []

    def score(x: np.ndarray) -> np.ndarray:
        seen.append(len(x))
        return x[:, :1, 0] * 2.0

    windows = np.arange(9 * 2 * 3, dtype=np.float32).reshape(9, 2, 3)
    np.testing.assert_array_equal(_scores(score, windows, 4), windows[:, :1, 0] * 2.0)
    assert seen == [4, 4, 1]  # the last batch as it is (a compiled model handles a batch of one itself)
    assert _in_way(score, TorchWay(compiled=True)) is score  # fp32: the scorer itself


def test_an_onnx_export_refuses_bf16_compile_and_cuda(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.onnx").write_bytes(b"")
    for way in (TorchWay(precision="bf16"), TorchWay(compiled=True), TorchWay(device="cuda")):
        with pytest.raises(UsageError, match="ONNX graph"):
            load_prediction_model(str(folder), way=way)
    with pytest.raises(UsageError, match="--precision fp16"):
        load_prediction_model(str(folder), way=TorchWay(precision="fp16"))


@pytest.mark.parametrize("text", ["[]", '{"task": "bc"'])
def test_an_export_config_that_is_no_json_object_is_refused_naming_it(tmp_path: Path, text: str) -> None:
    """mend29a: predict read config.json by hand, not as `info` reads it (atomic.read_json_object); one holding a list
    was passed over, and the folder was said to hold neither model.safetensors nor config.json with model.onnx."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "config.json").write_text(text)
    (folder / "model.onnx").write_bytes(b"")
    (tmp_path / "rec").mkdir()

    result = CliRunner().invoke(app, ["predict", str(folder), str(tmp_path / "rec"), "--out", str(tmp_path / "p"), "--json"])

    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
    assert error == f"{folder / 'config.json'}: not a readable export config; export the checkpoint again"


def test_a_torchscript_export_is_named_as_one(model_and_recordings: Path) -> None:
    # predict runs ONNX exports only; model.pt (or its folder) used to be called "not a safetensors
    # file (or its header is cut off)" or "neither model.safetensors nor config.json with model.onnx".
    from biofound_cli.export import export_checkpoint

    tmp_path = model_and_recordings
    folder = tmp_path / "export-ts"
    export_checkpoint(tmp_path / "model.safetensors", "torchscript", folder)
    for model in (folder, folder / "model.pt"):
        result = CliRunner().invoke(app, ["predict", str(model), str(tmp_path / "rec"), "--out", str(tmp_path / "p"), "--json"])
        assert result.exit_code == 2, result.output
        error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
        assert "a TorchScript export" in error and "--format onnx" in error
    assert not (tmp_path / "p").exists()


def test_a_torchscript_file_with_its_onnx_graph_beside_it_is_pointed_to_that_graph(model_and_recordings: Path) -> None:
    """`predict EXPORT/model.pt` where `export -f onnx -f torchscript` wrote model.onnx beside it advised exporting
    again with --format onnx; the graph it asked for was there. Now the line names it (model.int8.pt: model.int8.onnx)."""
    pytest.importorskip("onnxruntime")
    from biofound_cli.export import export_checkpoint

    tmp_path = model_and_recordings
    folder = tmp_path / "export-both"
    export_checkpoint(tmp_path / "model.safetensors", ["onnx", "torchscript"], folder, quantize="int8")
    for script, graph in (("model.pt", "model.onnx"), ("model.int8.pt", "model.int8.onnx")):
        command = ["predict", str(folder / script), str(tmp_path / "rec"), "--out", str(tmp_path / "p"), "--json"]
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        error = json.loads(result.stdout.strip().splitlines()[-1])["error"]
        assert error == (
            f"MODEL {folder / script}: a TorchScript export, which predict does not run; "
            f"give {folder / graph}, the ONNX graph exported beside it"
        )
        assert _predict(tmp_path, graph, model=f"{folder.name}/{graph}")["predicted"] == 3  # and that graph runs


def test_cli_refuses_an_unknown_precision_in_one_line(model_and_recordings: Path) -> None:
    tmp_path = model_and_recordings
    last = _predict(tmp_path, "out", "--precision", "fp16", expect=2)
    assert last["ok"] is False and "--precision fp16" in last["error"]


def test_bf16_on_a_cpu_without_bfloat16_arithmetic_warns(monkeypatch, caplog) -> None:
    import torch

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with caplog.at_level("WARNING", logger="biofound_cli.prediction.model"):
        _in_way(lambda x: x, TorchWay(precision="bf16"))
    assert "runs slower than fp32 here" in caplog.text


def test_a_run_folder_predicts_with_its_best_checkpoint(model_and_recordings: Path) -> None:
    """`predict runs/NAME` reads runs/NAME/checkpoints/best, as evaluate --checkpoint does."""
    tmp_path = model_and_recordings
    best = tmp_path / "runs" / "tiny" / "checkpoints" / "best"
    best.mkdir(parents=True)
    (tmp_path / "model.safetensors").rename(best / "model.safetensors")
    model = load_prediction_model(str(tmp_path / "runs" / "tiny"))
    assert model.path == best / "model.safetensors" and model.label_names == CLASSES


def test_a_folder_of_files_the_chains_pattern_does_not_take_names_the_pattern_and_the_way_out(
    model_and_recordings: Path,
) -> None:
    """Recordings named otherwise than the training recipe's emg-csv pattern: "no emg-csv recording found" named neither
    the pattern nor what to do; then the way out was a whole --recipe, as `--set preprocess.options.pattern` (which
    preprocess takes) was refused. The --set the message names takes them, with the rest of the model's chain."""
    tmp_path = model_and_recordings
    for path in (tmp_path / "rec").glob("R_0_C_*_EMG.csv"):
        path.rename(path.with_name(f"session_{path.name[6]}.csv"))
    refused = _predict(tmp_path, "out", expect=2)["error"]
    assert refused.startswith(f"RECORDINGS {tmp_path / 'rec'}: no file there") and "rename the files" in refused, refused
    assert 'preprocess.options.pattern = "R_(?P<repetition>\\d+)_C_(?P<class>\\d+)_EMG\\.csv"' in refused, refused
    assert "pass --set 'preprocess.options.pattern=...' with one that matches them" in refused, refused
    assert _predict(tmp_path, "out", "--set", r"preprocess.options.pattern=session_(?P<class>\d+)\.csv")["predicted"] == 3
    recipe = tmp_path / "sessions.toml"
    recipe.write_text(  # the chain the model was trained with, its pattern changed
        '[preprocess]\ncorpus = "emg-csv"\nwindow_seconds = 0.2\nstride_seconds = 0.1\n'
        "[preprocess.options]\npattern = 'session_\\d+\\.csv'\n"
    )
    assert _predict(tmp_path, "again", "--recipe", str(recipe))["predicted"] == 3


def test_an_empty_folder_is_named_as_empty_not_as_files_to_rename(model_and_recordings: Path) -> None:
    """An empty folder of recordings was told to "rename the files to match" the pattern, and "outside --out" an --out
    that lay elsewhere: there are no files. One line says so, exit status 2 (a bad path), and nothing is written."""
    tmp_path = model_and_recordings
    for path in (tmp_path / "rec").iterdir():
        path.unlink()
    refused = _predict(tmp_path, "out", expect=2)["error"]
    advice = "check the path (see docs/corpora/emg-csv.md for the files the reader takes)"
    assert refused == f"RECORDINGS {tmp_path / 'rec'}: no file there; {advice}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("preprocess.options.sfreq=100", "of the emg-csv reader's options predict sets only preprocess.options.pattern"),
        ("preprocess.options.extensions=['.csv']", "of the emg-csv reader's options predict sets only preprocess"),
        ("preprocess.options.pattern=(", "--set preprocess.options.pattern: preprocess.options.pattern = "),
    ],
)
def test_predict_sets_the_readers_file_option_alone_and_checks_it_as_preprocess_does(
    model_and_recordings: Path, setting: str, said: str
) -> None:
    refused = _predict(model_and_recordings, "out", "--set", setting, expect=2)["error"]
    assert said in refused, refused
    assert not (model_and_recordings / "out").exists()


@pytest.mark.parametrize("graph", [False, True])
def test_a_head_of_more_outputs_than_named_classes_keeps_the_names_it_has(tmp_path: Path, graph: bool) -> None:
    """`model.num_classes = 4` on 3 named classes: predict numbered every column (p_0 .. p_3); evaluate names them."""
    config = ChainConfig(window_seconds=0.2, stride_seconds=0.1, l_freq=None, h_freq=None, notch_hz=(), units="native")
    chain = {"corpus": "emg-csv", "options": {"sfreq": 200.0}, **config.to_json_dict()}
    checkpoint = save_small(
        tmp_path / "model.safetensors", "tinymyo", num_classes=4, ch_names=CHANNELS, sfreq=200.0, preprocessing=chain,
        label_names=CLASSES,
    )  # fmt: skip
    _recordings(tmp_path / "rec")
    if graph:
        pytest.importorskip("onnxruntime")
        exported = CliRunner().invoke(app, ["export", str(checkpoint), "-f", "onnx", "--out", str(tmp_path / "x"), "--quiet"])
        assert exported.exit_code == 0, exported.output
    summary = _predict(tmp_path, "out", model="x/model.onnx" if graph else "model.safetensors")
    assert summary["label_names"] == [*CLASSES, "3"]
    with open(tmp_path / "out" / "R_0_C_0_EMG.csv", newline="") as handle:
        columns = next(csv.reader(handle))
    assert columns[-4:] == ["p_rest", "p_fist", "p_pinch", "p_3"]


def test_diverged_weights_are_refused_naming_the_file_and_tensor_as_evaluate_refuses_them(model_and_recordings: Path) -> None:
    """A checkpoint whose tensors hold NaN (a run that diverged, its step-N kept): predict wrote NaN probabilities."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    weights = model_and_recordings / "model.safetensors"
    with safe_open(str(weights), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(weights)
    name = sorted(key for key, tensor in tensors.items() if tensor.is_floating_point())[-1]
    tensors[name][0] = float("inf")
    save_file(tensors, weights, metadata=metadata)
    refused = _predict(model_and_recordings, "out", expect=2)["error"]
    assert refused.startswith(f"{weights}: tensor {name} holds NaN or inf (weights that diverged in training)"), refused
    assert "use weights saved before the divergence" in refused
    assert not list((model_and_recordings / "out").glob("**/*.csv"))


def test_a_recipe_preprocess_without_a_corpus_is_refused_not_passed_over(model_and_recordings: Path) -> None:
    """``[preprocess] channels = [...]`` alone was ignored: the model's chain ran, its own channels fed, exit 0."""
    recipe = model_and_recordings / "channels.toml"
    recipe.write_text('[preprocess]\nchannels = ["EMG1", "EMG2", "EMG4", "EMG3"]\n')
    failed = _predict(model_and_recordings, "out", "--recipe", str(recipe), expect=2)
    assert failed["error"] == (
        f"{recipe}: preprocess.corpus: required, as predict runs the [preprocess] section (channels) in place of the "
        "model's chain; set corpus (the reader of the recordings, as `biofound preprocess` takes it), or leave "
        "[preprocess] out to use the model's chain"
    )
    assert not (model_and_recordings / "out").exists()


def test_a_recording_beyond_float32_is_skipped_naming_it_and_the_others_predicted(model_and_recordings: Path) -> None:
    """A value beyond float32 (finite as text) gave NaN scores that predict wrote into the table and summary, exit 0.

    The chain counts it a missing sample, as a NaN (``too_many_nans`` at the default ``max_nan_fraction``),
    before the model sees it.
    """
    tmp_path = model_and_recordings
    overflowing = tmp_path / "rec" / "R_0_C_1_EMG.csv"
    samples = np.loadtxt(overflowing, delimiter=",")
    samples[100, 2] = 1e39
    np.savetxt(overflowing, samples, delimiter=",", fmt="%.5g")
    # An earlier run's table of it goes, as any recording skipped now loses it: no table holds NaN.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "R_0_C_1_EMG.csv").write_text("recording,window_index\n")
    summary = _predict(tmp_path, "out")
    assert (summary["found"], summary["predicted"], summary["skipped_by_reason"]) == (3, 2, {"too_many_nans": 1}), summary
    skipped = next(entry for entry in summary["recordings"] if entry["status"] == "skipped")
    assert skipped["source_path"] == str(overflowing), skipped
    assert "of the samples are NaN, infinite or beyond ±1e+30" in skipped["message"], skipped
    assert sorted(path.name for path in (tmp_path / "out").glob("R_*")) == [
        "R_0_C_0_EMG.csv",
        "R_0_C_0_EMG.png",
        "R_0_C_2_EMG.csv",
        "R_0_C_2_EMG.png",
    ]
    assert np.isfinite(_probabilities(tmp_path / "out")).all()


def test_scores_a_model_overflows_to_are_skipped_naming_the_checkpoint(model_and_recordings: Path) -> None:
    """Finite weights the head overflows on (logits of ±inf, NaN probabilities): no table holds NaN.

    With finite samples of at most ±1e30 (the chain's bound) and a normalised body, only the model's
    own arithmetic can overflow: every recording is skipped, naming the checkpoint, and the run fails.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tmp_path = model_and_recordings
    weights = tmp_path / "model.safetensors"
    with safe_open(str(weights), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(weights)
    tensors["model_head.classifier.weight"][0] = 3e38
    tensors["model_head.classifier.weight"][1] = -3e38
    save_file(tensors, weights, metadata=metadata)
    failed = _predict(tmp_path, "out", expect=1)
    assert failed["error"].startswith("every one of the 3 recordings was skipped (nonfinite_scores: 3)"), failed
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {entry["status"] for entry in summary["recordings"]} == {"skipped"}, summary
    message = summary["recordings"][0]["message"]
    assert message.startswith(f"{weights}: its scores are NaN or inf for "), message
    assert "though its weights are finite" in message and "check the checkpoint" in message, message
    assert not list((tmp_path / "out").glob("R_*.csv"))


def test_a_recipes_normalisation_against_the_checkpoints_warns_of_predicting_not_scoring(model_and_recordings: Path) -> None:
    """The warning of a ``data.transform`` other than the checkpoint's said "scoring with ..." in predict too."""
    recipe = model_and_recordings / "zscore.toml"
    recipe.write_text('[data]\ntransform = "zscore"\n')
    result = CliRunner().invoke(
        app,
        ["predict", str(model_and_recordings / "model.safetensors"), str(model_and_recordings / "rec")]
        + ["--out", str(model_and_recordings / "out"), "--recipe", str(recipe), "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert f"{recipe}: data.transform = 'zscore' but the checkpoint was trained with 'none'; predicting with 'zscore'" in said
    assert "scoring" not in said


def test_a_checkpoint_of_no_stated_normalisation_is_refused_naming_how_predict_is_told_one(model_and_recordings: Path) -> None:
    """The refusal said "set data.transform", naming neither where predict takes it (a --recipe) nor the names."""
    from dataclasses import replace

    from safetensors.torch import load_file

    from biofound_cli.models.checkpoints import read_metadata, save_state_dict

    ckpt = model_and_recordings / "model.safetensors"
    save_state_dict(ckpt, load_file(ckpt), replace(read_metadata(ckpt), variant=None, transform=None))
    failed = _predict(model_and_recordings, "out", expect=2)
    assert failed["error"] == (
        f"{ckpt}: the checkpoint does not say which input normalisation it was trained with; name it with a recipe "
        'given with --recipe ([data] transform = "NAME"), NAME one of femba-affine, zscore, minmax, none'
    )
    recipe = model_and_recordings / "minmax.toml"
    recipe.write_text('[data]\ntransform = "minmax"\n')
    assert _predict(model_and_recordings, "out", "--recipe", str(recipe))["predicted"] == 3


def test_weights_that_state_no_licence_are_said_so_alike_from_a_checkpoint_and_its_onnx_export(
    model_and_recordings: Path,
) -> None:
    """A checkpoint stating no licence printed `license: None`; its ONNX export's config.json named the licence
    "set by the weights' owner", which predict of the graph then reported as the licence."""
    from dataclasses import replace

    from safetensors.torch import load_file

    from biofound_cli.models.checkpoints import read_metadata, save_state_dict

    ckpt = model_and_recordings / "model.safetensors"
    save_state_dict(ckpt, load_file(ckpt), replace(read_metadata(ckpt), derived_from_official=False))
    exported = CliRunner().invoke(app, ["export", str(ckpt), "-f", "onnx", "--out", str(model_and_recordings / "graph")])
    assert exported.exit_code == 0, exported.output
    for name, model in (("ckpt", "model.safetensors"), ("onnx", "graph/model.onnx")):
        assert _predict(model_and_recordings, name, model=model)["license"] is None
        plain = CliRunner().invoke(
            app,
            ["predict", str(model_and_recordings / model), str(model_and_recordings / "rec"), "--force"]
            + ["--out", str(model_and_recordings / name), "--no-progress"],
        )
        assert plain.exit_code == 0, plain.output
        [row] = [line for line in plain.stdout.splitlines() if " license " in line]
        assert row.split("│")[2].strip() == "none stated", row
