"""`biofound preprocess` and `pack`, run as users run them, import only what they use.

Start-up and imports are a large share of a short run (see docs/performance.md): MNE alone costs
about a quarter of a second of CPU, torch more. The TUH readers read plain EDF files without
MNE, and pack needs neither MNE, SciPy nor torch.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fixtures.tuh import build_tuab

HEAVY = ("torch", "mne", "scipy", "matplotlib", "pandas")


def _imported(arguments: list[str]) -> set[str]:
    """Top-level packages a ``python -m biofound_cli`` run imported, from ``-X importtime``."""
    command = [sys.executable, "-X", "importtime", "-m", "biofound_cli", *arguments, "--json"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", result.stderr, flags=re.MULTILINE)
    return {name.split(".")[0] for name in names}


def test_preprocess_and_pack_of_a_tuh_corpus_import_neither_mne_nor_torch(tmp_path):
    edf = build_tuab(tmp_path / "raw")
    shards, packed = tmp_path / "shards", tmp_path / "packed"
    # One worker: the recordings are read and processed in the CLI process itself.
    preprocess = _imported(["preprocess", "tuab", "--root", str(edf), "--out", str(shards), "--workers", "1"])
    assert sorted(set(HEAVY) & preprocess) == ["scipy"]  # scipy.fft, for the resampling
    assert len(list((shards / "tuab").glob("*.h5"))) == 5
    pack = _imported(["pack", str(shards), "--out", str(packed)])
    assert sorted(set(HEAVY) & pack) == []
    assert Path(packed / "train.h5").is_file()
