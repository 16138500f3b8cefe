"""When the official splits leave train empty, pack's advice names where the recipe set them, and works.

Every row of ``labels.csv`` said val or test: pack said "re-run preprocess --force so the training
recordings are marked train", which marks the same rows again; the rows decide.
"""

from __future__ import annotations

from pathlib import Path

from fixtures.edf_files import write_eeg
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus

runner = CliRunner()


def _preprocess_and_pack(root: Path, labels: Path, out: Path, packed: Path):
    command = ["preprocess", "edf", "--root", str(root), "--out", str(out), "--workers", "2", "--no-progress"]
    result = runner.invoke(app, [*command, "--set", f"preprocess.options.labels_csv={labels.as_posix()}"])
    assert result.exit_code == 0, result.output
    return runner.invoke(app, ["pack", str(out), "--out", str(packed), "--no-progress"])


def test_the_advice_for_an_empty_train_split_points_at_the_labels_csv_and_works(tmp_path):
    root, labels, out, packed = tmp_path / "raw", tmp_path / "labels.csv", tmp_path / "shards", tmp_path / "packed"
    for subject in ("s1", "s2", "s3"):
        write_eeg(root / subject / "a.edf", seconds=20.0)
    labels.write_text("file,label,split\ns1/a.edf,rest,test\ns2/a.edf,task,test\ns3/a.edf,rest,val\n")
    result = _preprocess_and_pack(root, labels, out, packed)
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = " ".join(result.stderr.split())
    assert f"give the training recordings split 'train' in {labels.as_posix()} and run preprocess again" in error, error
    assert "--force" not in error
    labels.write_text("file,label,split\ns1/a.edf,rest,train\ns2/a.edf,task,test\ns3/a.edf,rest,val\n")  # as advised
    result = _preprocess_and_pack(root, labels, out, packed)
    assert result.exit_code == 0 and (packed / "train.h5").is_file(), result.output
