"""Every benchmark runs to the end at tiny sizes and prints its table; nothing about speed is checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.slow


def run(script: str, *arguments: str, cwd: Path | None = None) -> str:
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments], capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def table_rows(stdout: str) -> list[list[str]]:
    """The cells of every markdown table row below a ``|---`` separator."""
    lines = stdout.splitlines()
    rows = []
    for index, line in enumerate(lines):
        if line.startswith("|") and index > 0 and any(lines[earlier].startswith("|---") for earlier in range(index)):
            if not line.startswith("|---"):
                rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_scan_prints_forward_and_backward_rows() -> None:
    stdout = run("scan.py", "--batch", "1", "--d-inner", "32", "--seqlen", "16", "--repeats", "1")
    names = [row[0] for row in table_rows(stdout)]
    assert names[0] in ("forward (C kernel)", "forward (no C compiler: PyTorch scan)")
    assert names[1:] == ["forward (PyTorch scan)", "forward + backward"]


def test_loader_prints_a_rate_per_reader() -> None:
    stdout = run("loader.py", "--windows", "64")
    assert stdout.count("baseline per-item h5py reads") == 2
    assert stdout.count("packed + chunked sampler") == 4
    assert stdout.count("kept / per pass: wall") == 2


def test_models_prints_a_row_per_way_against_eager_fp32() -> None:
    stdout = run("models.py", "--quick", "--models", "femba-tiny")
    rows = table_rows(stdout)
    assert [(row[0], row[2]) for row in rows] == [
        ("femba-tiny", "eager fp32"),
        ("femba-tiny", "eager bf16"),
        ("femba-tiny", "reference scan fp32"),
    ]
    # A child that failed says so in the rate column; the float32 forward must work.
    assert float(rows[0][3]) > 0
    # Every way is compared with eager fp32 in the same run, and agrees with it.
    assert rows[0][5] == "**1.00×**"
    assert "(ok)" in rows[2][6] and "argmax agrees" in rows[1][6]


def test_train_prints_the_overhead_of_each_precision() -> None:
    stdout = run("train.py", "--quick", "--models", "tinymyo")
    rows = table_rows(stdout)
    assert [(row[0], row[1]) for row in rows] == [("tinymyo", "fp32"), ("tinymyo", "bf16")]
    for row in rows:
        assert row[4].endswith("%"), row


def test_train_fast_paths_compares_each_way_with_the_reference_step() -> None:
    stdout = run("train.py", "--quick", "--fast-paths", "--no-compile", "--models", "tinymyo")
    rows = table_rows(stdout)
    ways = [("tinymyo", "reference fp32"), ("tinymyo", "eager fp32"), ("tinymyo", "eager bf16")]
    assert [(row[0], row[1]) for row in rows] == ways
    assert rows[0][3] == "**1.00×**" and all(float(row[2]) > 0 for row in rows)
    # Eager fp32 differs from the reference only in the optimiser: the same first loss.
    assert float(rows[1][4]) == 0.0


def test_preprocess_prints_every_pipeline() -> None:
    stdout = run("preprocess.py", "--recordings", "2", "--minutes", "0.5", "--workers", "1", "--repeats", "1")
    assert "baseline:" in stdout and "biofound (mne, default):" in stdout and "biofound (grid):" in stdout
    assert stdout.count("speed-up ") == 2 and "biofound-grid-worker-memory:" in stdout


def test_predict_prints_a_row_per_runtime() -> None:
    stdout = run("predict.py", "--quick", "--models", "tinymyo")
    rows = table_rows(stdout)
    assert [(row[0], row[1]) for row in rows] == [
        ("tinymyo", "pytorch"),
        ("tinymyo", "pytorch bf16"),
        ("tinymyo", "onnxruntime"),
    ]
    for row in rows:
        assert float(row[2]) > 0 and float(row[3]) > 0, row
        assert row[4].endswith("%") and row[5].endswith("%") and row[7].endswith("x"), row


def test_predict_startup_compares_with_femba_imported_too() -> None:
    stdout = run("predict_startup.py", "--rounds", "1", "--recordings", "1", "--windows", "2")
    rows = table_rows(stdout)
    assert [row[0] for row in rows] == ["as shipped", "FEMBA imported too"]
    assert rows[0][3] == "**1.00×**"


def test_bootstrap_compares_numpy_with_sklearn_on_each_case() -> None:
    rows = table_rows(run("bootstrap.py", "--quick"))
    assert [(row[0], row[1]) for row in rows] == [
        ("bc", "windows"),
        ("bc", "recordings"),
        ("mcc", "windows"),
        ("mcc", "recordings"),
        ("mmc (4 channels)", "recordings"),
    ]
    # The two paths give the same intervals (the hand-written metrics are scikit-learn's).
    assert all(float(row[5]) <= 1e-12 for row in rows)


def test_run_all_writes_one_markdown_file(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--quick", "--only", "scan", "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    text = out.read_text()
    assert "| CPU |" in text and "| torch |" in text
    assert "| scan | `python benchmarks/scan.py" in text and "| ok |" in text
    assert "| forward + backward |" in text


def test_gpu_prints_models_and_scan_rows_on_the_cpu() -> None:
    # The GPU benchmark's own code, run on the CPU: what a lent GPU machine will run, short of CUDA.
    stdout = run("gpu.py", "machine", "models", "scan", "--device", "cpu", "--quick", "--models", "tinymyo")
    rows = table_rows(stdout)
    assert [(row[0], row[1]) for row in rows[:5]] == [
        ("tinymyo", "inference fp32"),
        ("tinymyo", "inference bf16"),
        ("tinymyo", "train reference fp32 (bare, default AdamW)"),
        ("tinymyo", "train fit fp32"),
        ("tinymyo", "train fit bf16"),
    ]
    assert "(ok)" in rows[0][5] and "argmax agrees" in rows[1][5]
    assert all(float(row[2].replace(",", "")) > 0 for row in rows[:5])
    scans = [row for row in rows if row[0] == "ours (pure PyTorch)"]
    assert [row[1] for row in scans] == ["float32", "bfloat16"]
    assert float(scans[0][4]) < 1e-5  # fp32 against the float64 reference scan
