"""A folder of EDF recordings at two rates, preprocessed at their native rates with workers, then packed.

``pack`` keeps one rate; ``preprocess`` said nothing of it, so a user learnt only after processing
everything, and ``pack`` named the shards it skipped by recording id (``edf/s3-a``), no file to find.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ADVICE = "set preprocess.sfreq = 256 and re-run preprocess with --force to resample every file to one rate"


def _edf(path: Path, rate: int, seed: int) -> None:
    """Thirty seconds of three EEG channels at ``rate``, written with edfio."""
    import edfio

    rng = np.random.default_rng(seed)
    signals = [
        edfio.EdfSignal(rng.normal(0, 20, rate * 30).round(1), sampling_frequency=rate, label=label,
                        physical_dimension="uV", physical_range=(-500, 500))
        for label in ("Fp1", "Fp2", "C3")
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    edfio.Edf(signals).write(path)


def _biofound(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "biofound_cli", *args, "--json", "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)


@pytest.mark.parametrize("n_at_256", [3, 2], ids=["majority", "tie"])
def test_preprocess_names_the_recordings_pack_will_skip_for_their_rate_and_pack_names_their_shards(tmp_path, n_at_256):
    rates = [256] * n_at_256 + [512, 512]
    for number, rate in enumerate(rates):
        _edf(tmp_path / "raw" / f"s{number + 1}" / "a.edf", rate, seed=number)
    preprocess = ["preprocess", "edf", "--root", "raw", "--out", "shards", "--workers", "2"]
    result = _biofound(tmp_path, *preprocess)
    assert result.returncode == 0, result.stderr
    log = " ".join(result.stderr.split())
    # As soon as the second rate is written, once; then every recording pack will skip, and what to set.
    assert log.count("preprocess.sfreq = 0 keeps each file's own rate, and pack packs one rate only") == 1, log
    odd = [f"raw/s{number + 1}/a.edf" for number, rate in enumerate(rates) if rate == 512]
    tie = " (a tie between 2 rates, which goes to the first shard's)" if n_at_256 == 2 else ""
    assert (
        f"pack packs one rate only, 256 Hz{tie}, and will skip 2 of {len(rates)}: {odd[0]} (512 Hz), {odd[1]} (512 Hz); {ADVICE}"
    ) in log, log
    report = json.loads((tmp_path / "shards" / "preprocess_report.edf.json").read_text())
    assert sorted(entry["sfreq"] for entry in report["files"]) == sorted(float(rate) for rate in rates)

    packed = _biofound(tmp_path, "pack", "shards", "--out", "packed")
    assert packed.returncode == 0, packed.stderr
    summary = json.loads(packed.stdout)
    # Named by the shard a user can find, and the recording it came from, with the same rate to set.
    assert list(summary["skipped_by_shard"]) == [
        f"shards/edf/s{number + 1}-a.h5 (shard of raw/s{number + 1}/a.edf)" for number, rate in enumerate(rates) if rate == 512
    ]
    assert all(reason.startswith("sfreq") and reason.endswith(ADVICE) for reason in summary["skipped_by_shard"].values())
    manifest = json.loads((tmp_path / "packed" / "splits.json").read_text())
    assert [entry["shard"] for entry in manifest["skipped"]] == [
        f"shards/edf/s{n_at_256 + 1}-a.h5",
        f"shards/edf/s{n_at_256 + 2}-a.h5",
    ]

    # Following the advice packs every recording.
    again = _biofound(tmp_path, *preprocess, "--force", "--set", "preprocess.sfreq=256")
    assert again.returncode == 0 and "rate" not in again.stderr, again.stderr
    repacked = _biofound(tmp_path, "pack", "shards", "--out", "packed")
    assert repacked.returncode == 0 and json.loads(repacked.stdout)["skipped"] == 0, repacked.stderr
