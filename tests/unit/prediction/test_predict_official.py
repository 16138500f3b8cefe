"""Official checkpoints (no biofound metadata) run with the published chain of their task.

The files are built from the key manifests (``tests/data/keys``: upstream's state-dict keys and
shapes), filled with a seeded model's weights and saved without any metadata, in the hub's task
folder as ``biofound download`` lays them out. The recordings are raw files the tests write: TUH
EDFs for LUNA on TUAB, UCI EMG tables for TinyMyo on UCI_EMG. No recipe is passed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.tuh import write_tuh_edf
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.prediction.model import as_hub_reference
from biofound_cli.recipes import load_recipe
from biofound_cli.recipes.shipped import task_recipe

KEYS = Path(__file__).resolve().parents[2] / "data" / "keys"


def official_file(path: Path, manifest: str, variant: str, task: str, num_classes: int, **overrides) -> Path:
    """Upstream's keys, in upstream's order, with a seeded model's weights; no metadata at all."""
    import torch
    from safetensors.torch import save_file

    from biofound_cli.models import create_model

    torch.manual_seed(0)
    state = create_model(variant, task=task, num_classes=num_classes, **overrides).state_dict()
    keys = [key for key, _shape, _dtype in json.loads((KEYS / f"{manifest}.json").read_text())]
    assert list(state) == keys  # the model's keys are upstream's: this is what an official file holds
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: state[key].contiguous() for key in keys}, str(path))
    return path


def _predict(*args: str) -> tuple[dict, dict]:
    result = CliRunner().invoke(app, ["predict", *args, "--workers", "2", "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    return printed, json.loads(Path(printed["summary"]).read_text())


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_an_official_luna_tuab_file_predicts_edfs_with_the_published_tuab_chain(tmp_path: Path) -> None:
    weights = official_file(tmp_path / "hub" / "TUAB" / "LUNA_base.safetensors", "LUNA_base_finetune_2cls", "luna-base", "bc", 2)
    recordings = tmp_path / "new"
    write_tuh_edf(recordings / "aaaaaaaa_s001_t000.edf", seconds=20.0, sfreq=250.0)
    write_tuh_edf(recordings / "aaaaaaab_s001_t000.edf", seconds=12.0, sfreq=256.0, offset_seconds=25.0)

    printed, summary = _predict(str(weights), str(recordings), "--out", str(tmp_path / "out"))

    published = load_recipe(task_recipe("luna", "tuab"), [])
    assert printed["chain_from"] == summary["chain_from"] == "published chain of tuab (luna_tuab.toml)"
    assert (summary["predicted"], summary["skipped_by_reason"]) == (2, {})
    window = published.preprocess.window_seconds  # 5 s, no overlap: 20 s → 4 windows, 12 s → 2
    rows = _rows(tmp_path / "out" / "aaaaaaaa_s001_t000.csv")
    assert [float(row["start_seconds"]) for row in rows] == [0.0, 5.0, 10.0, 15.0]
    assert all(float(row["end_seconds"]) - float(row["start_seconds"]) == window for row in rows)
    assert len(_rows(tmp_path / "out" / "aaaaaaab_s001_t000.csv")) == 2 and summary["windows"] == 6
    # The published task's classes, probabilities that sum to one.
    assert set(rows[0]) >= {"predicted_label", "p_normal", "p_abnormal"}
    for row in rows:
        p = np.array([float(row["p_normal"]), float(row["p_abnormal"])])
        assert np.all((p >= 0) & (p <= 1)) and abs(p.sum() - 1) < 1e-5
        assert row["predicted_label"] == ("normal", "abnormal")[int(p.argmax())]


def _uci_table(path: Path, runs: list[tuple[int, int]], seed: int) -> Path:
    """A UCI EMG file: header, then time, channel1..channel8, class (tab-separated)."""
    rng = np.random.default_rng(seed)
    classes = np.concatenate([np.full(length, label) for label, length in runs])
    signal = rng.normal(scale=1e-4, size=(len(classes), 8))
    table = np.column_stack([np.arange(len(classes)), signal, classes])
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "time\t" + "\t".join(f"channel{k}" for k in range(1, 9)) + "\tclass"
    np.savetxt(path, table, delimiter="\t", header=header, comments="", fmt=["%d"] + ["%.7f"] * 8 + ["%d"])
    return path


def test_an_official_tinymyo_uci_file_predicts_uci_tables_with_the_published_chain(tmp_path: Path) -> None:
    published = load_recipe(task_recipe("tinymyo", "uci-emg"), [])
    overrides = dict(published.model.overrides)
    weights = official_file(
        tmp_path / "hub" / "UCI_EMG" / "base.safetensors", "TinyMyo_finetune_6cls_concat", "tinymyo", "mcc", 6, **overrides
    )
    recordings = tmp_path / "new"
    # Rows of class 0 are dropped and windows stay inside runs of one class (the published chain).
    _uci_table(recordings / "1_raw_data.txt", [(0, 300), (1, 1500), (0, 200), (2, 1200)], seed=0)
    _uci_table(recordings / "2_raw_data.txt", [(3, 1000)], seed=1)

    printed, summary = _predict(str(weights), str(recordings / "*.txt"), "--out", str(tmp_path / "out"))

    assert printed["chain_from"] == "published chain of uci-emg (tinymyo_uci_emg.toml)"
    window, stride = published.preprocess.window_seconds, published.preprocess.stride_seconds
    sfreq = published.preprocess.sfreq
    expected = {
        "1_raw_data": sum(int((n / sfreq - window) // stride) + 1 for n in (1500, 1200)),
        "2_raw_data": int((1000 / sfreq - window) // stride) + 1,
    }
    for name, count in expected.items():
        rows = _rows(tmp_path / "out" / f"{name}.csv")
        assert len(rows) == count
        probabilities = np.array([[float(row[f"p_{label}"]) for label in summary["label_names"]] for row in rows])
        assert probabilities.shape[1] == 6 and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert summary["label_names"][0] == "hand at rest" and summary["windows"] == sum(expected.values())


def test_an_official_file_outside_a_task_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    weights = official_file(tmp_path / "LUNA_base.safetensors", "LUNA_base_finetune_2cls", "luna-base", "bc", 2)
    write_tuh_edf(tmp_path / "new" / "aaaaaaaa_s001_t000.edf", seconds=10.0)
    result = CliRunner().invoke(app, ["predict", str(weights), str(tmp_path / "new"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "its task is unknown" in result.output and "hub:luna/TASK" in result.output
    assert "Traceback" not in result.output


def test_export_of_an_official_file_outside_a_task_folder_names_the_predict_command_that_runs_it(tmp_path: Path) -> None:
    # The advice used to be a bare `biofound predict FILE RECORDINGS`, which refuses a file whose task it cannot tell.
    published = task_recipe("tinymyo", "uci-emg")
    overrides = dict(load_recipe(published, []).model.overrides)
    weights = official_file(tmp_path / "base.safetensors", "TinyMyo_finetune_6cls_concat", "tinymyo", "mcc", 6, **overrides)
    _uci_table(tmp_path / "new" / "1_raw_data.txt", [(1, 1500)], seed=0)

    refused = CliRunner().invoke(app, ["export", str(weights), "--out", str(tmp_path / "export")])
    advice = f"`biofound predict {weights} RECORDINGS --recipe RECIPE --out DIR` runs them with a RECIPE whose [model] sets"
    assert refused.exit_code == 2 and advice in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "export").exists()
    # The command it names runs (the task's published recipe sets variant and task; num_classes is read from the head).
    recordings = str(tmp_path / "new" / "*.txt")
    printed, _ = _predict(str(weights), recordings, "--recipe", str(published), "--out", str(tmp_path / "out"))
    assert printed["predicted"] == 1 and printed["windows"] > 0


def test_export_of_an_official_file_in_a_task_folder_names_predict_with_the_published_chain(tmp_path: Path) -> None:
    weights = official_file(tmp_path / "hub" / "TUAB" / "LUNA_base.safetensors", "LUNA_base_finetune_2cls", "luna-base", "bc", 2)
    refused = CliRunner().invoke(app, ["export", str(weights), "--out", str(tmp_path / "export")])
    assert refused.exit_code == 2
    assert f"`biofound predict {weights} RECORDINGS --out DIR` runs them with the published chain of tuab" in refused.stderr


def test_predict_with_a_recipe_that_leaves_num_classes_unset_reads_it_from_the_official_files_head(tmp_path: Path) -> None:
    """``evaluate`` built such a file; predict stopped with "sets no model.num_classes", though the head's shape says it."""
    weights = official_file(tmp_path / "base.safetensors", "LUNA_base_finetune_2cls", "luna-base", "bc", 2)
    write_tuh_edf(tmp_path / "new" / "aaaaaaaa_s001_t000.edf", seconds=10.0)
    recipe = tmp_path / "mine.toml"
    recipe.write_text('[model]\nvariant = "luna-base"\n[preprocess]\ncorpus = "tuab"\n', encoding="utf-8")
    command = ["predict", str(weights), str(tmp_path / "new"), "--recipe", str(recipe), "--no-progress"]

    printed, _ = _predict(*command[1:], "--out", str(tmp_path / "out"))
    assert printed["predicted"] == 1
    assert [name for name in _rows(tmp_path / "out" / "aaaaaaaa_s001_t000.csv")[0] if name.startswith("p_")] == [
        "p_normal",
        "p_abnormal",
    ]
    # What the file cannot say (the variant) is still named.
    recipe.write_text('[model]\nnum_classes = 2\n[preprocess]\ncorpus = "tuab"\n', encoding="utf-8")
    result = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "other")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{recipe} sets no model.variant to build its model by; set it there" in result.stderr


def test_model_colon_task_is_short_for_the_hub_reference(tmp_path: Path) -> None:
    assert as_hub_reference("luna:TUAB") == "hub:luna/TUAB"
    assert as_hub_reference("tinymyo:UCI_EMG") == "hub:tinymyo/UCI_EMG"
    assert as_hub_reference("hub:luna/TUAB") == "hub:luna/TUAB"
    assert as_hub_reference(str(tmp_path / "model.safetensors")) == str(tmp_path / "model.safetensors")
    assert as_hub_reference("C:/models/best") == "C:/models/best"


@pytest.mark.parametrize("family", ["femba", "luna", "tinymyo"])
def test_every_family_publishes_a_recipe_for_each_hub_task_folder(family: str) -> None:
    from biofound_cli.models.registry import FAMILIES

    for task in [*FAMILIES[family].hub_task_folders, "pretrain"]:
        path = task_recipe(family, task)
        assert path is not None and path.is_file(), f"no shipped recipe for {family} {task}"


def _recipe_with(tmp_path: Path, family: str, task: str, edits: dict[str, str]) -> Path:
    """The shipped recipe of ``family`` on ``task`` with whole lines replaced (``old line → new line``)."""
    text = task_recipe(family, task).read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / f"{family}_{task}.toml"
    path.write_text(text)
    return path


def _refused(*args: str) -> str:
    result = CliRunner().invoke(app, ["predict", *args, "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def test_a_recipe_chain_of_another_window_than_an_official_femba_file_takes_is_refused_in_one_line(tmp_path: Path) -> None:
    # FEMBA's positional embedding fixes its window (1280 samples): 4 s at 256 Hz was a shape error per batch.
    import torch
    from safetensors.torch import save_file

    from biofound_cli.models import create_model

    torch.manual_seed(0)
    weights = tmp_path / "femba_tiny.safetensors"
    save_file(
        {key: value.contiguous() for key, value in create_model("femba-tiny", task="bc", num_classes=2).state_dict().items()},
        str(weights),
    )
    recipe = _recipe_with(
        tmp_path,
        "femba",
        "tuab",
        {
            'variant = "femba-large"': 'variant = "femba-tiny"',
            "overrides = { num_blocks = 2 }": "",
            "window_seconds = 5.0": "window_seconds = 4.0",
        },
    )
    write_tuh_edf(tmp_path / "new" / "aaaaaaaa_s001_t000.edf", seconds=12.0, sfreq=256.0)

    message = _refused(str(weights), str(tmp_path / "new"), "--out", str(tmp_path / "out"), "--recipe", str(recipe))

    assert "preprocess.window_seconds = 4, 1024-sample windows at 256 Hz" in message
    assert "takes 1280-sample windows (5 s); set preprocess.window_seconds there to 5 if the recordings" in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.csv"))


def test_a_recipe_chain_whose_window_is_no_multiple_of_an_official_luna_files_patch_is_refused(tmp_path: Path) -> None:
    weights = official_file(tmp_path / "hub" / "TUAB" / "LUNA_base.safetensors", "LUNA_base_finetune_2cls", "luna-base", "bc", 2)
    recipe = _recipe_with(tmp_path, "luna", "tuab", {"window_seconds = 5.0": "window_seconds = 4.0"})
    write_tuh_edf(tmp_path / "new" / "aaaaaaaa_s001_t000.edf", seconds=12.0, sfreq=256.0)

    message = _refused(str(weights), str(tmp_path / "new"), "--out", str(tmp_path / "out"), "--recipe", str(recipe))

    # 1024 samples are no multiple of LUNA's 40-sample patch; 1000 is, and 1040, where the recordings last that long.
    assert "1024-sample windows at 256 Hz" in message and "a multiple of 40 samples (its patch)" in message
    assert (
        "set preprocess.window_seconds there to 3.90625, or 4.0625 if the recordings and their labelled events last that long"
    ) in message


def test_an_official_tinymyo_file_predicts_other_windows_with_a_recipe_that_leaves_the_task_to_its_corpus(tmp_path: Path) -> None:
    # The shipped recipe sets no [model] task (the corpus gives it): it was refused as saying "not which model it is".
    published = load_recipe(task_recipe("tinymyo", "uci-emg"), [])
    weights = official_file(
        tmp_path / "base.safetensors", "TinyMyo_finetune_6cls_concat", "tinymyo", "mcc", 6, **dict(published.model.overrides)
    )
    assert published.model.task is None
    recipe = _recipe_with(tmp_path, "tinymyo", "uci_emg", {"window_seconds = 5.0": "window_seconds = 4.0"})
    _uci_table(tmp_path / "new" / "2_raw_data.txt", [(3, 1000)], seed=1)

    printed, summary = _predict(
        str(weights), str(tmp_path / "new" / "*.txt"), "--out", str(tmp_path / "out"), "--recipe", str(recipe)
    )

    rows = _rows(tmp_path / "out" / "2_raw_data.csv")
    # 4 s windows (800 samples at 200 Hz, a multiple of TinyMyo's 20-sample patch) every 1.25 s over 5 s: one window.
    assert len(rows) == summary["windows"] == int((5.0 - 4.0) // 1.25) + 1
    assert float(rows[0]["end_seconds"]) - float(rows[0]["start_seconds"]) == 4.0
    assert printed["chain_from"] == str(recipe) and len(summary["label_names"]) == 6


def test_a_recipe_stride_longer_than_its_window_is_warned_about_once(tmp_path: Path) -> None:
    """The --recipe chain of an official file is resolved once, so its warnings are said once."""
    published = load_recipe(task_recipe("tinymyo", "uci-emg"), [])
    weights = official_file(
        tmp_path / "base.safetensors", "TinyMyo_finetune_6cls_concat", "tinymyo", "mcc", 6, **dict(published.model.overrides)
    )
    recipe = _recipe_with(tmp_path, "tinymyo", "uci_emg", {"stride_seconds = 1.25": "stride_seconds = 6.0"})
    _uci_table(tmp_path / "new" / "2_raw_data.txt", [(3, 2600)], seed=1)

    result = CliRunner().invoke(
        app,
        ["predict", str(weights), str(tmp_path / "new" / "*.txt"), "--out", str(tmp_path / "out"), "--recipe", str(recipe)]
        + ["--no-progress"],
    )

    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert output.count("preprocess.stride_seconds = 6 s is longer than window_seconds = 5 s") == 1, result.output


def test_predict_of_a_refused_recipe_chain_prints_its_problem_and_no_warning_about_its_stride(tmp_path: Path) -> None:
    """held28 moved the hold of warnings into the stages' loading; predict checked its --recipe's chain as it loaded the
    model, and said the stride warning before the refusal again, as if 50% of every recording would go unused."""
    weights = official_file(tmp_path / "hub" / "TUAB" / "LUNA_base.safetensors", "LUNA_base_finetune_2cls", "luna-base", "bc", 2)
    recipe = _recipe_with(
        tmp_path, "luna", "tuab", {"stride_seconds = 5.0": "stride_seconds = 10.0", "l_freq = 0.1": "l_freq = 200.0"}
    )
    write_tuh_edf(tmp_path / "new" / "aaaaaaaa_s001_t000.edf", seconds=12.0, sfreq=256.0)

    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(weights),
            str(tmp_path / "new"),
            "--out",
            str(tmp_path / "out"),
            "--recipe",
            str(recipe),
            "--no-progress",
        ],
    )

    assert result.exit_code == 2, result.output
    assert [line.split(": ", 1)[0] for line in result.stderr.splitlines()] == ["error"], result.stderr
    assert "must be below h_freq" in result.stderr


def test_predict_refuses_a_recipe_chain_as_the_recipe_loads_before_the_model(tmp_path: Path, monkeypatch) -> None:
    """mend29a: predict loads --recipe with its chain's check as every stage loads its recipe (load_checked); the chain
    was checked inside the model's loading, so a refused recipe waited for the model (a large file, torch.compile)."""
    import biofound_cli.prediction.model as prediction_model

    loads: list[str] = []
    monkeypatch.setattr(prediction_model, "load_prediction_model", lambda value, **_: loads.append(value))
    recipe = _recipe_with(tmp_path, "luna", "tuab", {"l_freq = 0.1": "l_freq = 200.0"})
    (tmp_path / "new").mkdir()

    output = _refused(
        str(tmp_path / "model.safetensors"), str(tmp_path / "new"), "--out", str(tmp_path / "out"), "--recipe", str(recipe)
    )

    assert "must be below h_freq" in output and loads == []
