"""Pool workers die with the process that started them: by the kernel's death signal, or by their watchdog."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fixtures.process_group import DEADLINE, children, wait_until_gone

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

POOL = textwrap.dedent(
    """
    import sys, time
    import biofound_cli.store.worker_pool as pool
    import biofound_cli.store.worker_lifetime as lifetime
    from biofound_cli.corpora.tuab import TUABCorpus

    method, death_signal = sys.argv[1], sys.argv[2] == "death-signal"
    if death_signal:
        lifetime.WATCH_SECONDS = 3600.0  # forked workers: only the kernel's signal can end them in time
    else:
        lifetime._set_parent_death_signal = lambda signum: False  # as on an OS without prctl
    pool.worker_start_method = lambda: method
    with pool.started_pool(TUABCorpus, 2, 5, written="the report") as started, started as executor:
        print("ready", flush=True)
        time.sleep(120)
    """
)


# The watchdog alone is tested with forked workers: a spawned one imports the module afresh, out of the patch's reach.
@pytest.mark.parametrize(("method", "how"), [("fork", "death-signal"), ("spawn", "death-signal"), ("fork", "watchdog")])
def test_workers_do_not_outlive_a_killed_parent(method, how):
    process = subprocess.Popen([sys.executable, "-c", POOL, method, how], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[3])  # fmt: skip
    try:
        assert process.stdout.readline().strip() == "ready"
        workers = children(process.pid)
        assert len(workers) >= 2, workers
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert wait_until_gone(workers) == []


MYO = Path(__file__).resolve().parents[3] / "biofound_cli" / "data" / "samples" / "emg" / "myo"
FULL_DISK = textwrap.dedent(
    """
    import errno, sys
    from biofound_cli.store.shards import ShardWriter
    write = ShardWriter.write_channel
    def write_until_full(self, index, windows):
        if "R_0_C_0" not in self.path.name:  # the disk fills up after the first recording's shard
            raise OSError(errno.ENOSPC, "No space left on device")  # as HDF5's failed write raises it
        return write(self, index, windows)
    ShardWriter.write_channel = write_until_full
    from biofound_cli.cli.app import app
    sys.argv = ["biofound", *sys.argv[1:]]
    app()
    """
)


def test_a_full_disk_stops_the_run_with_one_line_not_a_skip_per_recording(tmp_path):
    # Each later recording was "skipped (error)" with HDF5's write failure, and the run ended with status 0.
    root = tmp_path / "myo"
    root.mkdir()
    for name in ("R_0_C_0_EMG.csv", "R_0_C_1_EMG.csv", "R_0_C_2_EMG.csv", "R_0_C_3_EMG.csv"):
        (root / name).write_bytes((MYO / name).read_bytes())
    out = tmp_path / "shards"
    args = ["preprocess", "emg-csv", "--root", str(root), "--out", str(out), "--workers", "2", "--json", "--no-progress"]
    done = subprocess.run([sys.executable, "-c", FULL_DISK, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "skipped (error)" not in done.stderr, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error.startswith(str(out / "emg-csv" / "R_0_C_")) and "_EMG.h5: No space left on device; free space" in error
    report = json.loads((out / "preprocess_report.emg-csv.json").read_text())
    written = sorted(path.name for path in (out / "emg-csv").iterdir())
    assert report["interrupted"] and report["skipped"] == 0 and written in ([], ["R_0_C_0_EMG.h5"])  # no partial file
    assert report["written"] == len(written)


def test_a_disk_full_before_the_run_names_the_shard_and_the_report_it_could_not_write(tmp_path):
    # The report, written as the run stopped, failed too; its error, naming no file, replaced the shard's:
    # "error: No space left on device; free space on that disk ...", without saying where.
    root = tmp_path / "myo"
    root.mkdir()
    (root / "R_0_C_0_EMG.csv").write_bytes((MYO / "R_0_C_0_EMG.csv").read_bytes())
    small = tmp_path / "small"
    small.mkdir()
    out = small / "shards"
    preprocess = (
        f"{shlex.quote(sys.executable)} -m biofound_cli preprocess emg-csv --root {root} --out {out} --json --no-progress"
    )
    fill = f"head -c 2000000 /dev/zero > {small / 'filler'} 2>/dev/null"
    listing = f"ls -A {out} {out / 'emg-csv'} >&2"
    script = f"mount -t tmpfs -o size=512k tmpfs {small} || exit 99; {fill}; {preprocess}; status=$?; {listing}; exit $status"
    try:
        done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], capture_output=True,
                              text=True, timeout=300, cwd=Path(__file__).resolve().parents[3])  # fmt: skip
    except FileNotFoundError:
        pytest.skip("no unshare to mount a small file system")
    if done.returncode == 99 or "unshare:" in done.stderr:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout)["error"].startswith(
        f"{out / 'emg-csv' / 'R_0_C_0_EMG.h5'}: No space left on device; free space"
    )
    assert f"warning: {out / 'preprocess_report.emg-csv.json'}: not written (No space left on device)" in done.stderr
    assert ".tmp" not in done.stderr  # no temporary left behind


START_METHOD_SAID = textwrap.dedent(
    """
    import sys
    import biofound_cli.store.worker_pool as pool
    choose = pool.worker_start_method
    def said():
        method = choose()
        print(f"start method: {method}", file=sys.stderr, flush=True)
        return method
    pool.worker_start_method = said
    from biofound_cli.cli.app import app
    sys.argv = ["biofound", *sys.argv[1:]]
    app()
    """
)


def test_preprocess_forks_its_workers_under_a_live_progress_bar(tmp_path):
    # The bar's refresh thread ran as the pool started, so the workers were spawned: each imported torch and the readers
    # afresh (1.7 s to start two on a busy 2-core machine, against 0.1 s forked).
    root = tmp_path / "myo"
    root.mkdir()
    for name in ("R_0_C_0_EMG.csv", "R_0_C_1_EMG.csv", "R_0_C_2_EMG.csv"):
        (root / name).write_bytes((MYO / name).read_bytes())
    out = tmp_path / "shards"
    args = ["preprocess", "emg-csv", "--root", str(root), "--out", str(out), "--workers", "2"]
    terminal, command_side = os.openpty()  # a terminal, as a user's: live bars, not log lines
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "NO_COLOR")} | {"TERM": "xterm", "COLUMNS": "120"}
    process = subprocess.Popen([sys.executable, "-c", START_METHOD_SAID, *args], stdin=subprocess.DEVNULL,
                               stdout=command_side, stderr=command_side, env=env)  # fmt: skip
    os.close(command_side)
    shown = b""
    try:
        while chunk := os.read(terminal, 4096):
            shown += chunk
    except OSError:  # EIO: the command and its workers have closed the terminal
        pass
    finally:
        os.close(terminal)
    said = shown.decode(errors="replace")
    assert process.wait(timeout=DEADLINE) == 0, said
    assert "\x1b[?25l" in said, said  # the live display ran (it hides the cursor)
    assert "start method: fork" in said and "start method: spawn" not in said, said
    assert sorted(path.name for path in (out / "emg-csv").iterdir()) == ["R_0_C_0_EMG.h5", "R_0_C_1_EMG.h5", "R_0_C_2_EMG.h5"]
