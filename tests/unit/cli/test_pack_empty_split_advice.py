"""A split the corpus's official splits leave empty: pack's advice names the option of the packed corpus's reader."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from biofound_cli.cli.app import app

runner = CliRunner()
MYO_ROOT = Path(__file__).resolve().parents[3] / "biofound_cli" / "data" / "samples" / "emg" / "myo"


def test_an_empty_val_split_of_a_repetition_split_names_split_by_repetition(tmp_path: Path) -> None:
    # The shipped Myo recipe's chain, with no repetition for val: the advice named ts's val_fraction,
    # an option the emg-csv reader does not take.
    recipe = tmp_path / "myo.toml"
    recipe.write_text(
        f"[preprocess]\ncorpus = 'emg-csv'\nroot = '{MYO_ROOT}'\nzscore = false\n"
        "window_seconds = 1.0\nstride_seconds = 0.25\nworkers = 2\n"
        "[preprocess.options]\nsplit_by_repetition = { train = [0, 1, 2], test = [3] }\n"
    )
    shards, packed = tmp_path / "shards", tmp_path / "packed"
    result = runner.invoke(app, ["preprocess", "--recipe", str(recipe), "--out", str(shards), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["pack", str(shards), "--out", str(packed), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["windows"]["val"] == 0
    assert "'val' is empty: every subject's windows have an official split and none is 'val'; " in result.stderr
    assert "give recordings such a split (emg-csv: preprocess.options.split_by_repetition)" in result.stderr
    assert "val_fraction" not in result.stderr


def test_an_empty_split_of_uci_emg_names_the_subjects_that_give_it(tmp_path: Path) -> None:
    # Subjects 01 (officially train) and 25 (val) alone leave test empty: the advice was "give the corpus such a
    # split", and the uci-emg reader has no option for that; its published split is by subject.
    root, shards, packed = _uci_emg_shards(tmp_path, ("01", "25"))
    result = runner.invoke(app, ["pack", str(shards), "--out", str(packed), "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["windows"]["test"] == 0
    said = " ".join(result.stderr.split())
    assert (
        "split 'test' is empty: every subject's windows have an official split and none is 'test'; give recordings "
        "such a split (uci-emg: the recordings of subjects 31..36), or set pack.test = 0"
    ) in said, said


def test_an_empty_train_split_of_uci_emg_names_the_subjects_that_give_it(tmp_path: Path) -> None:
    # Subjects 25 (officially val) and 31 (test) alone leave train empty: the advice was "re-run preprocess --force so
    # the training recordings are marked train", which marks the same recordings again; train is subjects 01..24.
    root, shards, packed = _uci_emg_shards(tmp_path, ("25", "31"))
    result = runner.invoke(app, ["pack", str(shards), "--out", str(packed), "--json", "--no-progress"])
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)["error"]
    assert error.startswith(f"{shards}: no window goes to train, so no train.h5 can be written: "), error
    assert "give recordings split 'train' (uci-emg: the recordings of subjects 01..24) and run preprocess again" in error
    assert "--force" not in error


def _uci_emg_shards(tmp_path: Path, subjects: tuple[str, ...]) -> tuple[Path, Path, Path]:
    """UCI EMG recordings of ``subjects`` (one short gesture run each), preprocessed by the CLI: root, shards, packed."""
    import numpy as np

    root, shards, packed = tmp_path / "uci", tmp_path / "shards", tmp_path / "packed"
    header = "time\tchannel1\tchannel2\tchannel3\tchannel4\tchannel5\tchannel6\tchannel7\tchannel8\tclass\n"
    classes = [0] * 600 + [1] * 1200 + [0] * 600 + [2] * 1200 + [0] * 600
    rng = np.random.default_rng(0)
    for subject in subjects:
        (root / subject).mkdir(parents=True)
        signal = rng.normal(0, 1e-4, (len(classes), 8))
        rows = ["\t".join([str(index)] + [f"{v:.6f}" for v in signal[index]] + [str(c)]) for index, c in enumerate(classes)]
        (root / subject / "1_raw_data.txt").write_text(header + "\n".join(rows) + "\n")
    args = ["preprocess", "uci-emg", "--root", str(root), "--out", str(shards), "--json", "--no-progress", "--workers", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return root, shards, packed
