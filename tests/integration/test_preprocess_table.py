"""``biofound preprocess table`` in a real process with two workers, on every file kind it reads.

A folder holds what array-recording users have: OT BioLab MATLAB exports in v5 and v7.3, a CSV
export with a header and a few empty / NULL / NaN cells, a NumPy array saved channels × samples,
and two bad files (a MATLAB file without the ``Data`` variable, a CSV mostly missing).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures.matlab import otb_export, write_mat_v5, write_mat_v73

pytestmark = pytest.mark.slow

EMG = ["EMG1", "EMG2", "EMG3", "EMG4"]
RECIPE = """\
[preprocess]
corpus = "table"
window_seconds = 0.5
stride_seconds = 0.25
max_nan_fraction = 0.05

[preprocess.options]
pattern = '(?P<subject>s\\d)/.+\\.(csv|mat|npy)'
variable = "Data"
sfreq_variable = "SamplingFrequency"
names_variable = "Description"
sfreq = 512.0
columns = ["0:4"]
"""


def _signal(n_samples: int, seed: int) -> np.ndarray:
    """4 EMG columns and one auxiliary column (samples × columns)."""
    return np.random.default_rng(seed).normal(size=(n_samples, 5)).round(3)


def _csv(path: Path, data: np.ndarray, missing: list[tuple[int, int, str]]) -> None:
    cells = [[f"{value:.3f}" for value in row] for row in data]
    for row, column, text in missing:
        cells[row][column] = text
    path.write_text(",".join([*EMG, "AUX"]) + "\n" + "\n".join(",".join(row) for row in cells) + "\n")


def _build(root: Path) -> dict[str, np.ndarray]:
    for subject in ("s1", "s2", "s3"):
        (root / subject).mkdir(parents=True)
    data = {name: _signal(1024, seed) for seed, name in enumerate(("v5", "csv", "npy", "nans"))}
    data["v73"] = _signal(2048, 9)  # 2 s at the file's own 1024 Hz
    write_mat_v5(root / "s1" / "v5.mat", otb_export(data["v5"], [*EMG, "AUX"], 512))
    write_mat_v73(root / "s1" / "v73.mat", otb_export(data["v73"], [*EMG, "AUX"], 1024))
    # 3 missing cells of 4 × 1024 used samples: 0.07 %, under max_nan_fraction.
    _csv(root / "s2" / "csv.csv", data["csv"], [(10, 0, ""), (20, 1, "NULL"), (30, 3, "NaN"), (40, 4, "")])
    np.save(root / "s2" / "npy.npy", data["npy"].T)
    _csv(root / "s3" / "nans.csv", data["nans"], [(row, 0, "NaN") for row in range(1024)])
    write_mat_v5(root / "s3" / "nodata.mat", {"EMG": data["v5"], "SamplingFrequency": 512.0})
    return data


def test_every_file_kind_becomes_windows_and_bad_files_are_skipped(tmp_path: Path) -> None:
    root, out = tmp_path / "raw", tmp_path / "shards"
    data = _build(root)
    recipe = tmp_path / "table.toml"
    recipe.write_text(RECIPE)
    command = [
        sys.executable,
        "-m",
        "biofound_cli",
        "preprocess",
        "table",
        "--recipe",
        str(recipe),
        "--root",
        str(root),
        "--out",
        str(out),
        "--workers",
        "2",
        "--json",
        "--no-progress",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # 2 s per recording, 0.5 s windows every 0.25 s: 7 windows each.
    assert (summary["found"], summary["written"], summary["windows_written"]) == (6, 4, 4 * 7)
    assert summary["skipped_by_reason"] == {"too_many_nans": 1, "unusable": 1}
    assert (
        "nodata.mat: no variable 'Data' (preprocess.options.variable); the file holds EMG (1024×5 double), "
        "SamplingFrequency (1×1 double)" in result.stderr
    )
    # EMG1 is NaN in every row: a channel the file lacks, which no max_nan_fraction turns into a signal.
    assert (
        "nans.csv: channel EMG1 holds no value at all (NaN throughout: absent from the recording), so 25.00% of the "
        "samples are NaN, infinite or beyond ±1e+30, above max_nan_fraction=0.05; leave them out by listing the "
        "channels to keep in "
        'preprocess.channels ("EMG2", "EMG3", "EMG4")' in result.stderr
    )

    shards = {name: h5py.File(out / "table" / f"{name}.h5") for name in ("s1-v5", "s1-v73", "s2-csv", "s2-npy")}
    try:
        for name, shard in shards.items():
            sfreq = 1024.0 if name == "s1-v73" else 512.0
            assert shard.attrs["sfreq"] == sfreq and shard["x"].shape == (7, 4, int(sfreq / 2)), name
            assert list(shard.attrs["channel_names"]) == (["CH1", "CH2", "CH3", "CH4"] if name == "s2-npy" else EMG)
        # No filter by default: the windows are the samples, missing ones set to 0.
        csv_x = shards["s2-csv"]["x"]
        assert csv_x[0, 0, 10] == 0 and csv_x[0, 1, 20] == 0 and csv_x[0, 3, 30] == 0
        np.testing.assert_allclose(csv_x[0, 2, :], data["csv"][:256, 2], atol=1e-6)
        np.testing.assert_allclose(shards["s1-v73"]["x"][1, :, :], data["v73"][256:768, :4].T, atol=1e-6)
        np.testing.assert_allclose(shards["s2-npy"]["x"][0, :, :], data["npy"][:256, :4].T, atol=1e-6)
    finally:
        for shard in shards.values():
            shard.close()
