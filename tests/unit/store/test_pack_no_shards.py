"""pack on a shard folder where preprocess wrote nothing says why, rather than to run preprocess first.

Every recording too short for one window: preprocess exits 1 and writes its report, and pack said
"no .h5 shards found; run `biofound preprocess ... --out SHARDS` first" (status 2), which the user
had just done and which would skip the same files again.
"""

from __future__ import annotations

from fixtures.edf_files import write_eeg
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.errors import ExitStatus

runner = CliRunner()


def test_pack_after_a_preprocess_that_skipped_every_recording_names_the_reasons(tmp_path):
    root, out = tmp_path / "raw", tmp_path / "shards"
    for name in ("a.edf", "b.edf"):
        write_eeg(root / name, seconds=3.0)
    command = ["preprocess", "edf", "--root", str(root), "--out", str(out), "--workers", "2", "--no-progress"]
    assert runner.invoke(app, command).exit_code == ExitStatus.FAILED
    result = runner.invoke(app, ["pack", str(out), "--out", str(tmp_path / "packed"), "--no-progress"])
    assert result.exit_code == ExitStatus.FAILED, result.output
    error = " ".join(result.stderr.split())
    assert error.startswith(f"error: {out}: no shard to pack: preprocess wrote none of the 2 recordings it found"), error
    assert "(skipped: too_short: 2)" in error and "preprocess_report.edf.json gives each file's reason" in error
    assert "first" not in error and error.count("error:") == 1


def test_pack_of_a_folder_preprocess_never_wrote_to_says_to_run_it(tmp_path):
    (tmp_path / "shards").mkdir()
    result = runner.invoke(app, ["pack", str(tmp_path / "shards"), "--out", str(tmp_path / "packed"), "--no-progress"])
    assert result.exit_code == ExitStatus.USAGE and "run `biofound preprocess ... --out" in result.stderr


def test_pack_into_the_shard_folder_or_one_holding_it_is_refused_naming_out(tmp_path):
    """`pack shards --out shards` said "preprocess wrote none of the 2 recording(s) it found" beside the two shards.

    The packed folder's files are never shards, so every shard under ``--out`` was left out.
    """
    root, out = tmp_path / "raw", tmp_path / "work" / "shards"
    for name in ("a.edf", "b.edf"):
        write_eeg(root / name, seconds=30.0)
    command = ["preprocess", "edf", "--root", str(root), "--out", str(out), "--workers", "2", "--no-progress"]
    assert runner.invoke(app, command).exit_code == 0
    for packed in (out, out.parent):
        result = runner.invoke(app, ["pack", str(out), "--out", str(packed), "--no-progress"])
        assert result.exit_code == ExitStatus.USAGE, result.output
        assert result.stderr.strip() == (
            f"error: --out {packed} is the shard folder {out} or holds it, and pack reads no .h5 file under its --out "
            f"as a shard; give the packed files a folder of their own, such as {out.parent / 'packed'}"
        )
    assert sorted(path.name for path in out.parent.iterdir()) == ["shards"]
    assert runner.invoke(app, ["pack", str(out), "--out", str(out / "packed"), "--no-progress"]).exit_code == 0
