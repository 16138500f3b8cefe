"""What a pool worker logs about one recording reaches the user once, as the command's own lines, under every start method."""

from __future__ import annotations

import json
import logging
import sys
import warnings

import pytest
from fixtures.tuh import build_tuab
from typer.testing import CliRunner

import biofound_cli.store.worker_pool as worker_pool_module
from biofound_cli.cli.app import app
from biofound_cli.cli.log_handler import forward_logs
from biofound_cli.corpora.tuab import TUABCorpus
from biofound_cli.output import Output
from biofound_cli.store.worker_pool import started_pool

runner = CliRunner()
METHODS = ["fork", "spawn"] if sys.platform.startswith("linux") else ["spawn"]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_a_worker_s_warning_about_a_recording_is_shown_once_as_a_warning(method, tmp_path, monkeypatch):
    monkeypatch.setattr(worker_pool_module, "worker_start_method", lambda: method)
    root = build_tuab(tmp_path / "tuab")
    cut = root / "train" / "normal" / "01_tcp_ar" / "aaaaaaab_s001_t000.edf"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # an interrupted copy
    args = ["preprocess", "tuab", "--root", str(root), "--out", str(tmp_path / "shards"), "--workers", "2", "--json",
            "--no-progress", "--set", "preprocess.on_truncated=keep"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["notes"] == {"truncated_kept": 1}
    warnings = [line for line in result.stderr.splitlines() if "truncated: the file holds" in line]
    assert warnings == [
        f"warning: {cut}: truncated: the file holds 9 s of the 20 s expected (9 of the 20 data records its header "
        "declares), as after an interrupted copy; kept the 9 s there (preprocess.on_truncated = keep)"
    ]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("quiet", [False, True])
def test_worker_records_follow_the_command_s_level_and_streams(method, quiet, monkeypatch, capsys, caplog):
    monkeypatch.setattr(worker_pool_module, "worker_start_method", lambda: method)
    core = logging.getLogger("biofound_cli.signals.chain")
    with (
        forward_logs(Output(quiet=quiet, progress=False)),
        started_pool(TUABCorpus, 2, 2, written="the report") as pool,
        pool as executor,
    ):
        assert executor is not None
        executor.submit(core.info, "a.edf: resampled").result()
        executor.submit(core.warning, "a.edf: 2 labelled event(s) lie outside the recording").result()
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ([] if quiet else ["a.edf: resampled"])
    assert captured.err.splitlines() == ["warning: a.edf: 2 labelled event(s) lie outside the recording"]
    # The records are this process's too, once each (forward_logs stops them at the package logger).
    assert caplog.records == []
    with started_pool(TUABCorpus, 2, 2, written="the report") as pool, pool as executor, caplog.at_level(logging.WARNING):
        executor.submit(core.warning, "b.edf: kept").result()
    assert [(record.name, record.getMessage()) for record in caplog.records] == [("biofound_cli.signals.chain", "b.edf: kept")]


@pytest.mark.parametrize("method", METHODS)
def test_warnings_and_mne_s_records_in_a_worker_are_the_command_s_lines_and_stdout_stays_clean(method, monkeypatch, capfd):
    """Reading a recording makes MNE warn (annotations, channel names) and libraries raise Python
    warnings; in a worker they printed raw, from the worker, MNE's to stdout past ``--json``."""
    monkeypatch.setattr(worker_pool_module, "worker_start_method", lambda: method)
    mne_logger = logging.getLogger("mne")
    with (
        forward_logs(Output(json_summary=True, progress=False)),
        started_pool(TUABCorpus, 2, 2, written="the report") as pool,
        pool as executor,
    ):
        assert executor is not None
        executor.submit(warnings.warn, "a.edf: 3 annotations lie outside the data", RuntimeWarning).result()
        executor.submit(mne_logger.warning, "b.edf: channel names are not unique").result()
    captured = capfd.readouterr()
    assert captured.out == ""
    # One line each; the workers' records arrive in any order.
    lines = sorted(captured.err.splitlines())
    assert len(lines) == 2 and lines[1] == "warning: b.edf: channel names are not unique", captured.err
    assert lines[0].startswith("warning: a.edf: 3 annotations lie outside the data (RuntimeWarning in ")


def test_mne_s_records_while_one_process_reads_the_recordings_keep_stdout_clean(capfd):
    """With one worker (the default) the recordings are read in the main process, where MNE's own
    handler wrote its warnings to stdout, into the --json summary."""
    mne_logger = logging.getLogger("mne")
    with (
        forward_logs(Output(json_summary=True, progress=False)),
        started_pool(TUABCorpus, 1, 2, written="the report") as pool,
        pool as executor,
    ):
        assert executor is None
        mne_logger.warning("c.edf: channel names are not unique")
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err.splitlines() == ["warning: c.edf: channel names are not unique"]
    assert not [one for one in mne_logger.filters if isinstance(one, worker_pool_module._RoutedTo)]  # given back


MNE_IMPORTED_WHILE_READING = """
import logging
from biofound_cli.cli.log_handler import forward_logs
from biofound_cli.corpora.tuab import TUABCorpus
from biofound_cli.output import Output
from biofound_cli.store.worker_pool import started_pool

with forward_logs(Output(json_summary=True, progress=False)), started_pool(TUABCorpus, 1, 2, written="the report") as pool, pool:
    import mne  # as a reader imports it, lazily: MNE puts its own handler, to stdout, on its logger

    logging.getLogger("mne").warning("d.edf: channel names are not unique")
"""


def test_mne_imported_by_a_reader_while_one_process_reads_keeps_stdout_clean():
    """Readers import MNE when they first read; its import adds its own stdout handler again."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", MNE_IMPORTED_WHILE_READING], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr.splitlines() == ["warning: d.edf: channel names are not unique"]
