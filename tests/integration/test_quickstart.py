"""``biofound quickstart``: the whole chain on the bundled samples, its artefacts and its summary.

The run itself is the session fixture ``quickstart_run`` (tests/integration/conftest.py), shared
with test_finetune_samples.py, which checks the held-out accuracies of the two chains.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from biofound_cli.cli.app import app

pytestmark = pytest.mark.slow

CHAINS = ("tinymyo", "luna")


def test_summary_names_every_artefact_and_it_exists(quickstart_run) -> None:
    summary = quickstart_run.summary
    assert summary["out"] == str(quickstart_run.out)
    for chain in CHAINS:
        artefacts = summary[chain]["artefacts"]
        for key in (
            "shards",
            "packed",
            "run",
            "best_checkpoint",
            "report",
            "onnx",
            "export",
            "export_config",
            "model_card",
            "predictions",
        ):
            assert Path(artefacts[key]).exists(), f"{chain}: {key} = {artefacts[key]} missing"
            assert Path(artefacts[key]).is_relative_to(quickstart_run.out)
        assert set(summary[chain]["seconds"]) == {"preprocess", "pack", "finetune", "evaluate", "export", "predict"}
        assert Path(artefacts["onnx"]).parent == Path(artefacts["export"]) == Path(artefacts["export_config"]).parent
        predictions = json.loads(Path(summary[chain]["artefacts"]["predictions"]).read_text())
        assert predictions["predicted"] == predictions["found"] > 0 and predictions["skipped_by_reason"] == {}


def test_onnx_export_is_verified_and_runs(quickstart_run) -> None:
    import onnxruntime

    for chain in CHAINS:
        onnx_path = Path(quickstart_run.summary[chain]["artefacts"]["onnx"])
        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        config = json.loads((onnx_path.parent / "config.json").read_text())
        inputs = {}
        for spec in session.get_inputs():
            shape = [dim if isinstance(dim, int) else 1 for dim in spec.shape]
            inputs[spec.name] = np.zeros(shape, dtype=np.float32)
        (logits,) = session.run(None, inputs)[:1]
        assert logits.shape[-1] == (5 if chain == "tinymyo" else 2), config


def test_json_run_logs_its_stages_and_puts_the_metrics_in_the_object(quickstart_run) -> None:
    # With --json the held-out metrics table was drawn on stderr too: box lines in a CI log. The
    # object holds the numbers; stderr, plain lines naming each stage.
    from biofound_cli.quickstart import METRICS

    text = quickstart_run.text
    assert "Held-out test metrics" not in text and not re.search("[\u2500-\u259f]", text), text
    for chain in CHAINS:
        assert f"[{chain}] export onnx" in text
        assert set(METRICS) <= set(quickstart_run.summary[chain]["metrics"])


def test_rerun_reuses_the_finished_chain(quickstart_run) -> None:
    """A second run on the same folder resumes the finished training and scores the same weights."""
    result = CliRunner().invoke(
        app, ["quickstart", "--out", str(quickstart_run.out), "--only", "tinymyo", "--no-export", "--json", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout.strip().splitlines()[-1])
    # The five test recordings make evaluate warn that recording-level metrics are rough; --json repeats it.
    assert list(again) == ["out", "tinymyo", "elapsed_seconds", "warnings"]
    assert [message for message in again["warnings"] if "fewer than 10" not in message] == []
    assert again["tinymyo"]["metrics"] == quickstart_run.summary["tinymyo"]["metrics"]


def test_unknown_chain_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["quickstart", "--out", str(tmp_path), "--only", "femba"])
    assert result.exit_code == 2
    assert "--only femba: unknown chain; choose one of tinymyo, luna" in result.output
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("chain", CHAINS)
def test_every_export_takes_the_windows_the_model_was_trained_on(quickstart_run, tmp_path, chain) -> None:
    """SCP1 trials are 880 samples, the Myo windows 200: no artefact may fall back to a default length."""
    import onnxruntime
    from safetensors import safe_open

    from biofound_cli.signals.electrodes import channel_positions
    from biofound_cli.store.dataset import PackedDataset

    artefacts = quickstart_run.summary[chain]["artefacts"]
    test_split = Path(artefacts["packed"]) / "test.h5"
    packed = PackedDataset(test_split)
    windows = np.stack([packed[index]["x"].numpy() for index in range(4)])
    ch_names, positions = list(packed.info.ch_names), packed.info.channel_positions
    n_chans, n_times = windows.shape[1:]
    out = tmp_path / "export"
    for fmt in ("safetensors", "torchscript", "onnx"):
        result = CliRunner().invoke(
            app, ["export", artefacts["best_checkpoint"], "--format", fmt, "--out", str(out / fmt), "--json", "--no-progress"]
        )
        assert result.exit_code == 0, result.output
        config = json.loads((out / fmt / "config.json").read_text())
        assert (config["n_channels"], config["n_times"]) == (n_chans, n_times), fmt
        assert f"{n_times}" in (out / fmt / "README.md").read_text(), fmt
    with safe_open(str(out / "safetensors" / "model.safetensors"), "pt") as handle:
        assert json.loads(handle.metadata()["n_times"]) == n_times

    session = onnxruntime.InferenceSession(str(out / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"x": windows.astype(np.float32)}
    if "channel_locations" in [graph_input.name for graph_input in session.get_inputs()]:
        locations = channel_positions(ch_names, positions).astype(np.float32)
        feeds["channel_locations"] = np.broadcast_to(locations, (len(windows), *locations.shape)).copy()
    (logits,) = session.run(None, feeds)
    assert logits.shape[0] == len(windows) and np.isfinite(logits).all()


def test_sigterm_names_a_quickstart_command_that_continues_it(tmp_path: Path) -> None:
    """A stopped quick start says how to continue it with a command quickstart takes, and that command finishes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from biofound_cli.errors import ExitStatus

    out = tmp_path / "qs"
    args = [sys.executable, "-m", "biofound_cli", "quickstart", "--out", str(out), "--only", "tinymyo", "--no-export", "--json"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(args, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "tinymyo" / "runs" / "tinymyo-myo" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.is_file() and metrics.read_text().strip():
            process.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitStatus.PREEMPTED, stderr
    message = json.loads(stdout.strip().splitlines()[-1])["error"]
    # The output flags are kept, so a script that runs the command gets the JSON it asked for.
    command = f"biofound quickstart --out {out} --only tinymyo --no-export --json"
    assert f"continue with: {command}" in message
    assert "--resume" not in message

    continued = subprocess.run(
        [sys.executable, "-m", "biofound_cli", *command.split()[1:]],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert continued.returncode == 0, continued.stderr
    assert json.loads(continued.stdout)["tinymyo"]["metrics"], continued.stdout


def test_ctrl_c_after_training_names_the_command_that_continues(quickstart_run, tmp_path) -> None:
    """Ctrl-C while a re-run evaluates: the generic "interrupted" line named no command; a training stop did."""
    import os
    import shlex
    import shutil
    import signal
    import subprocess
    import sys

    out = tmp_path / "quick start"  # the finished chain, under an --out with a space in it
    shutil.copytree(quickstart_run.out / "tinymyo", out / "tinymyo")
    command = ["quickstart", "--out", str(out), "--only", "tinymyo", "--no-export", "--no-progress"]
    process = subprocess.Popen(
        [sys.executable, "-m", "biofound_cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        for line in process.stdout or []:
            lines.append(line)
            if "[tinymyo] evaluate" in line:
                os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's process group
                break
        output = "".join(lines) + process.communicate(timeout=300)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, output
    [error] = [line for line in output.splitlines() if line.startswith("error:")]
    continued = shlex.join(["biofound", *command])
    assert error == f"error: stopped by Ctrl-C during evaluate; the finished stages are kept, continue with: {continued}"
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("stage", "where", "signal_name"),
    [
        ("evaluate", "biofound_cli.evaluation.evaluate:evaluate_recipe", "SIGTERM"),
        ("export", "biofound_cli.export.plan:run_export", "SIGTERM"),
        # As the model loads: predict's recordings, all predicted by the finished run, are not yet found done.
        ("predict", "biofound_cli.prediction.model:load_prediction_model", "SIGTERM"),
        ("predict", "biofound_cli.prediction.model:load_prediction_model", "SIGUSR1"),
    ],
)
def test_sigterm_after_training_is_one_line_143_and_the_command_named_finishes(
    quickstart_run, tmp_path, stage, where, signal_name
) -> None:
    """SIGTERM to the job's process group (a scheduler's time limit) while a re-run evaluates, exports or predicts;
    or SIGUSR1, which ``sbatch --signal=USR1@N`` sends to the whole group.

    Evaluate had no SIGTERM handler in the quick start's process: the default action killed it
    without a word. Export and predict said "re-run the same command", meaning their own
    command, which the quick start user never typed. docs/exit-status.md: 143, one line, the
    stage, and the quickstart command that continues; that command then finishes. The stop
    comes as the stage calls ``where``: timed by the stage's first line, it could come after
    predict found every recording done, which finishes the quick start (status 0).
    """
    import shlex
    import shutil
    import subprocess

    from fixtures.process_group import (
        assert_group_gone,
        assert_terminated,
        biofound,
        biofound_signalled_as_it_calls,
        start_in_own_group,
    )

    out = tmp_path / "quick start"
    shutil.copytree(quickstart_run.out / "tinymyo", out / "tinymyo")
    command = ["quickstart", "--out", str(out), "--only", "tinymyo", "--json", "--no-progress"]
    process = start_in_own_group(biofound_signalled_as_it_calls(where, signal_name, *command))
    stdout, stderr = process.communicate(timeout=600)
    assert_group_gone(process.pid)
    continued = shlex.join(["biofound", *command])
    failure = assert_terminated(
        process, stdout, stderr, f"during {stage}; the finished stages are kept, continue with: {continued}", by=signal_name
    )
    assert failure["resume_command"] == continued
    rerun = subprocess.run(biofound(*command), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["tinymyo"]["artefacts"]["predictions"]


@pytest.mark.parametrize(
    ("where", "only", "chain", "before"),
    [
        ("biofound_cli.store.preprocess:write_report", ["--only", "tinymyo"], "tinymyo", "pack"),  # its shards all written
        ("biofound_cli.prediction.run:write_json_atomic", [], "luna", "preprocess"),  # tinymyo's last stage
    ],
    ids=["preprocess then pack", "tinymyo then luna"],
)
def test_a_stop_a_stage_took_as_its_last_recordings_finished_stops_the_quick_start_before_the_next(
    quickstart_run, tmp_path, where, only, chain, before
) -> None:
    """The stage finishes (its report not interrupted) and the quick start stops as the next stage starts, naming
    it: not "during preprocess", a stage that finished, nor the next stage run on after the user's stop."""
    import shutil

    from fixtures.process_group import assert_group_gone, assert_terminated, biofound_signalled_as_it_calls, start_in_own_group

    out = tmp_path / "quick start"
    for finished in CHAINS:  # preprocess finds its shards done, predict its recordings
        shutil.copytree(quickstart_run.out / finished, out / finished)
    command = ["quickstart", "--out", out, *only, "--no-export", "--json", "--no-progress"]
    process = start_in_own_group(biofound_signalled_as_it_calls(where, "SIGTERM", *command))
    stdout, stderr = process.communicate(timeout=600)
    assert_group_gone(process.pid)
    assert "warning: SIGTERM came as the work finished: it is complete" in " ".join(stderr.split())
    assert_terminated(process, stdout, stderr, f"stopped by SIGTERM before {before}; the finished stages are kept")
    assert not json.loads((out / "tinymyo" / "shards" / "preprocess_report.emg-csv.json").read_text())["interrupted"]
    assert not json.loads((out / "tinymyo" / "predictions" / "summary.json").read_text())["interrupted"]
    assert f"[{chain}] {before}" not in stderr


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGUSR1"])
def test_a_stop_the_last_stage_took_as_its_last_recordings_finished_ends_the_done_quick_start_with_0(
    quickstart_run, tmp_path, signal_name
) -> None:
    """The last stage (predict) dropped the stop, its recordings all done, yet the quick start exited 143 and named a
    command to continue a run with nothing left: a requeued job redid it. Now status 0, the summary, the warning."""
    import shutil

    from fixtures.process_group import assert_group_gone, biofound_signalled_as_it_calls, start_in_own_group

    out = tmp_path / "quick start"
    shutil.copytree(quickstart_run.out / "tinymyo", out / "tinymyo")
    args = ["quickstart", "--out", out, "--only", "tinymyo", "--no-export", "--json", "--no-progress"]
    where = "biofound_cli.prediction.run:write_json_atomic"  # the last stage's summary, every recording done
    process = start_in_own_group(biofound_signalled_as_it_calls(where, signal_name, *args))
    stdout, stderr = process.communicate(timeout=600)
    assert_group_gone(process.pid)
    assert process.returncode == 0, stderr
    assert f"warning: {signal_name} came as the work finished: it is complete" in " ".join(stderr.split())
    assert json.loads(stdout.strip().splitlines()[-1])["tinymyo"]["artefacts"]["predictions"]
