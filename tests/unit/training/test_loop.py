"""The training loop on a tiny model: exact resume, preemption, NaN loss, early stopping, errors."""

from __future__ import annotations

import logging
import math
import os
import signal
from contextlib import contextmanager

import pytest
import torch
from fixtures.tiny_job import DictDataset, NanWhileFlagged, make_job

from biofound_cli.errors import ExitStatus, PreemptedError, UsageError
from biofound_cli.training import state
from biofound_cli.training.distributed import DistributedContext
from biofound_cli.training.loop import TrainingError, fit
from biofound_cli.training.objectives import Objective
from biofound_cli.training.run_folder import RunFolder

SINGLE = DistributedContext()


def run(job, folder, **kwargs):
    return fit(job, RunFolder(folder), context=SINGLE, **kwargs)


def test_straight_run_writes_metrics_checkpoints_and_best(tmp_path):
    job = make_job(max_steps=8)
    result = run(job, tmp_path)
    assert result.step == 8
    names = sorted(path.name for path in (tmp_path / "checkpoints").iterdir())
    assert names == ["best", "step-00000004", "step-00000008"]
    records = RunFolder(tmp_path).read_metrics()
    assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 9))
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [4, 8] and "val_balanced_accuracy" in val[0]
    assert result.best_metric == min(r["val_loss"] for r in val)


def test_unset_eval_every_evaluates_once_per_epoch_when_accumulation_does_not_divide_it(tmp_path):
    # 48 windows in batches of 4: 12 micro-batches an epoch, 5 a step, so epochs end inside steps
    # 3, 5, 8 and 10; rounding the steps of an epoch down (2) evaluated at 2, 4, 6, 8 and 10.
    job = make_job(max_steps=None, epochs=4, eval_every=None, checkpoint_every=None, keep_checkpoints=10, batch_size=4)
    job.optim = job.optim.model_copy(update={"accumulation_steps": 5})
    result = run(job, tmp_path)
    assert result.step == 10
    val_steps = [r["step"] for r in RunFolder(tmp_path).read_metrics() if r["split"] == "val"]
    assert val_steps == [3, 5, 8, 10]
    checkpoints = sorted(path.name for path in (tmp_path / "checkpoints").iterdir() if path.name != "best")
    assert checkpoints == [f"step-{step:08d}" for step in (3, 5, 8, 10)]


def test_unset_eval_every_evaluates_once_per_epoch_with_loader_workers(tmp_path):
    # The same epochs as above, the batches drawn by two worker processes (one pool for the whole run).
    job = make_job(max_steps=None, epochs=4, eval_every=None, checkpoint_every=None, keep_checkpoints=10, batch_size=4)
    job.optim = job.optim.model_copy(update={"accumulation_steps": 5})
    job.num_workers = 2
    assert run(job, tmp_path).step == 10
    records = RunFolder(tmp_path).read_metrics()
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [3, 5, 8, 10]
    # Each evaluation is labelled with the epoch it closes (from 0), not the next one whose first
    # batches that step also drew; a training step with the epoch it began in.
    assert [r["epoch"] for r in val] == [0, 1, 2, 3]
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 11))
    assert [r["epoch"] for r in train] == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]


def test_warmup_epochs_end_in_the_step_in_which_that_epoch_ends_under_accumulation(tmp_path):
    # 12 micro-batches an epoch, 5 a step: epoch 2 ends inside step 5 (24 / 5 = 4.8). Rounding the
    # steps of an epoch down (2) ended the warm-up after 4 steps, at 80% of the epochs asked.
    job = make_job(max_steps=None, epochs=4, batch_size=4, log_every=1)
    job.optim = job.optim.model_copy(update={"accumulation_steps": 5, "warmup_steps": None, "warmup_epochs": 2.0})
    run(job, tmp_path)
    lrs = [r["lr"] for r in RunFolder(tmp_path).read_metrics() if r["split"] == "train"]
    start, peak = job.optim.warmup_lr_init, job.optim.lr
    assert lrs[:5] == pytest.approx([start + k * (peak - start) / 5 for k in range(5)])
    assert lrs[5] < peak  # step 6 is on the cosine, past its top


def test_a_stop_signal_at_the_last_step_ends_a_complete_run_not_a_preempted_one(tmp_path, caplog):
    # A requeue of a "preempted" finished run would start a job only to find nothing to do.
    def stop(step):
        if step == 8:
            os.kill(os.getpid(), signal.SIGTERM)

    with caplog.at_level(logging.WARNING, logger="biofound_cli"):
        result = run(make_job(max_steps=8), tmp_path, on_step=stop)
    assert "SIGTERM came as the work finished: it is complete" in caplog.text
    assert result.step == 8 and result.last_checkpoint == tmp_path / "checkpoints" / "step-00000008"
    assert state.latest_checkpoint(tmp_path / "checkpoints").name == "step-00000008"


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    # Dropout on, so the RNG states must be restored too; 12 steps cross an epoch boundary (6 per epoch).
    straight = make_job(max_steps=12, dropout=0.2)
    run(straight, tmp_path / "straight")

    def interrupt(step):
        if step == 5:
            os.kill(os.getpid(), signal.SIGUSR1)

    first = make_job(max_steps=12, dropout=0.2)
    with pytest.raises(PreemptedError) as caught:
        run(first, tmp_path / "resumed", on_step=interrupt)
    assert caught.value.status == ExitStatus.PREEMPTED
    assert "step 5" in caught.value.message and "--resume auto" in caught.value.message
    checkpoint = state.latest_checkpoint(tmp_path / "resumed" / "checkpoints")
    assert checkpoint.name == "step-00000005"

    second = make_job(max_steps=12, dropout=0.2)
    run(second, tmp_path / "resumed", resume=checkpoint)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    steps = [r["step"] for r in RunFolder(tmp_path / "resumed").read_metrics() if r["split"] == "train"]
    assert steps == list(range(1, 13))


class SignalledAtMicroBatch(Objective):
    """The tiny job's objective, sending the process SIGTERM in its ``at``-th training forward."""

    def __init__(self, family: str, task: str, *, at: int) -> None:
        super().__init__(family, task)
        self.at, self.calls = at, 0

    def __call__(self, model, batch, training=False, **kwargs):
        self.calls += training
        if training and self.calls == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().__call__(model, batch, training=training, **kwargs)


@pytest.mark.slow
def test_a_stop_mid_accumulation_resumes_to_the_straight_runs_weights_and_records(tmp_path):
    # 50 windows in batches of 8: 6 batches an epoch (the last 2 windows left out), which 4 micro-batches
    # a step do not divide; 3 epochs are 5 steps, evaluated at the steps in which the epochs end.
    def job():
        made = make_job(max_steps=None, epochs=3, eval_every=None, checkpoint_every=None, dropout=0.2)
        made.train_set = DictDataset(50, seed=0)
        made.optim = made.optim.model_copy(update={"accumulation_steps": 4})
        made.num_workers = 2
        return made

    straight = job()
    run(straight, tmp_path / "straight")

    stopped = job()
    stopped.objective = SignalledAtMicroBatch("femba", "mcc", at=6)  # the 2nd of step 2's 4 micro-batches
    with pytest.raises(PreemptedError) as caught:
        run(stopped, tmp_path / "resumed")
    assert caught.value.details["step"] == 2  # the step under way is finished, then checkpointed
    resumed = job()
    result = run(resumed, tmp_path / "resumed", resume=state.latest_checkpoint(tmp_path / "resumed" / "checkpoints"))
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key

    def records(folder):
        return [{k: v for k, v in r.items() if k != "samples_per_second"} for r in RunFolder(folder).read_metrics()]

    assert records(tmp_path / "resumed") == records(tmp_path / "straight")
    assert [r["step"] for r in records(tmp_path / "straight") if r["split"] == "val"] == [2, 3, 5]
    assert result.step == 5


def test_a_stop_signal_during_a_checkpoint_write_stops_at_that_checkpoint(tmp_path, monkeypatch):
    # A real checkpoint takes long to write (a large model and its optimiser state), long enough
    # for SLURM's signal to land in it; the run must not train a step more and write again.
    write = state.write_checkpoint

    def write_while_signalled(folder, **kwargs):
        if folder.name == "step-00000004":
            os.kill(os.getpid(), signal.SIGTERM)
        return write(folder, **kwargs)

    monkeypatch.setattr(state, "write_checkpoint", write_while_signalled)
    with pytest.raises(PreemptedError) as caught:
        run(make_job(max_steps=12), tmp_path)
    assert caught.value.details["step"] == 4 and caught.value.details["checkpoint"].endswith("step-00000004")
    assert [path.name for path in state.list_checkpoints(tmp_path / "checkpoints")] == ["step-00000004"]


def test_nan_loss_stops_with_the_step_and_a_debug_checkpoint(tmp_path):
    job = make_job(max_steps=8)
    job.train_set.x[:] = float("nan")
    with pytest.raises(TrainingError) as caught:
        run(job, tmp_path)
    assert caught.value.status == ExitStatus.FAILED
    assert "at step 1" in caught.value.message
    assert (tmp_path / "debug" / "step-00000001-nonfinite" / "model.safetensors").is_file()


@pytest.mark.parametrize("task", ["mcc", "reconstruction"])
def test_a_nan_val_loss_is_neither_the_best_nor_a_strike_and_is_warned_once(tmp_path, task, caplog):
    # The first evaluation's val_loss is NaN. It became the best (NaN weights in checkpoints/best),
    # and, as nothing compares better than NaN, every later evaluation a strike: the run stopped
    # early at the second one without a word. A classifier's metrics raised scikit-learn's ValueError.
    flag = tmp_path / "nan"
    flag.touch()
    job = make_job(max_steps=12, task=task, early_stopping_patience=1)
    job.val_set, job.num_workers = NanWhileFlagged(flag), 2
    result = run(job, tmp_path / "run", on_step=lambda step: step == 4 and flag.unlink())
    assert not result.stopped_early and result.step == 12
    assert result.best_step in (8, 12) and math.isfinite(result.best_metric)
    val = [r for r in RunFolder(tmp_path / "run").read_metrics() if r["split"] == "val"]
    assert val[0]["step"] == 4 and val[0]["val_loss"] is None and all(math.isfinite(r["val_loss"]) for r in val[1:])
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "val_loss is NaN" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("step 4 (epoch 0): val_loss is NaN or inf"), warned


def test_early_stopping_stops_after_patience(tmp_path):
    # Learning rate zero after warm-up: the validation loss never improves after the first evaluation.
    job = make_job(max_steps=40, eval_every=2, early_stopping_patience=2)
    job.optim = job.optim.model_copy(update={"lr": 1e-12, "warmup_steps": 0, "min_lr": 0.0, "warmup_lr_init": 0.0})
    result = run(job, tmp_path)
    assert result.stopped_early
    assert result.step == 6


def _never_improving(**train_fields):
    job = make_job(eval_every=2, **train_fields)
    job.optim = job.optim.model_copy(update={"lr": 1e-12, "warmup_steps": 0, "min_lr": 0.0, "warmup_lr_init": 0.0})
    job.num_workers = 2
    return job


def test_a_run_stopped_early_goes_on_when_resumed_with_a_larger_patience(tmp_path):
    assert run(_never_improving(max_steps=10, early_stopping_patience=2), tmp_path).step == 6
    checkpoint = state.latest_checkpoint(tmp_path / "checkpoints")
    resumed = run(_never_improving(max_steps=10, early_stopping_patience=4), tmp_path, resume=checkpoint)
    assert resumed.step == 10 and resumed.stopped_early
    assert [r["step"] for r in RunFolder(tmp_path).read_metrics() if r["split"] == "val"] == [2, 4, 6, 8, 10]


def test_a_run_resumed_watching_another_metric_chooses_its_best_by_that_metric(tmp_path):
    run(make_job(max_steps=4, eval_every=2), tmp_path)  # the best by val_loss: a number near 1
    checkpoint = state.latest_checkpoint(tmp_path / "checkpoints")
    job = make_job(max_steps=8, eval_every=2, early_stopping_metric="val_balanced_accuracy", early_stopping_mode="max")
    job.num_workers = 2
    resumed = run(job, tmp_path, resume=checkpoint)
    accuracies = {
        r["step"]: r["val_balanced_accuracy"] for r in RunFolder(tmp_path).read_metrics() if r["step"] > 4 and r["split"] == "val"
    }
    assert resumed.best_metric == max(accuracies.values())
    assert resumed.best_step == max(accuracies, key=lambda step: (accuracies[step], -step))
    # A re-run of the finished run trains nothing, so it keeps the best it has.
    again = make_job(max_steps=8, eval_every=2, early_stopping_metric="val_accuracy", early_stopping_mode="max")
    assert run(again, tmp_path, resume=state.latest_checkpoint(tmp_path / "checkpoints")).best_step == resumed.best_step


def test_fp16_on_cpu_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="fp16"):
        run(make_job(precision="fp16"), tmp_path)


def test_bf16_autocast_trains_on_cpu(tmp_path):
    result = run(make_job(max_steps=4, precision="bf16"), tmp_path)
    assert result.step == 4 and result.last_metrics["val_loss"] > 0


def test_early_stopping_metric_the_task_does_not_compute_is_refused_before_the_first_step(tmp_path):
    with pytest.raises(UsageError, match="use one of val_loss$"):
        run(make_job(max_steps=4, task="reconstruction", early_stopping_metric="val_auroc"), tmp_path)
    assert not list(tmp_path.rglob("step-*"))


def test_unknown_early_stopping_metric_is_a_recipe_error_naming_the_choices():
    from pydantic import ValidationError

    from biofound_cli.recipes.training import TrainSection

    with pytest.raises(ValidationError, match="val_balanced_accuracy"):
        TrainSection(early_stopping_metric="val_acc")


def test_pretraining_objective_runs_in_the_loop(tmp_path):
    result = run(make_job(max_steps=4, task="reconstruction"), tmp_path)
    assert set(result.last_metrics) == {"val_loss"}


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    job = make_job(max_steps=4)
    run(job, tmp_path)
    other = make_job(max_steps=8)
    other.metadata["variant"] = "other"
    with pytest.raises(Exception, match="variant"):
        run(other, tmp_path, resume=state.latest_checkpoint(tmp_path / "checkpoints"))


def test_out_of_memory_suggests_a_smaller_batch_and_accumulation(tmp_path):
    job = make_job(max_steps=4)

    def exhausted(model, batch, *, training, mask_seeds=None):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 68719476736 bytes.")

    exhausted.task = "mcc"
    job.objective = exhausted
    with pytest.raises(TrainingError) as caught:
        run(job, tmp_path)
    assert caught.value.status == ExitStatus.FAILED
    assert "out of memory with data.batch_size = 8" in caught.value.message
    assert "optim.accumulation_steps" in caught.value.message


@pytest.mark.slow
def test_torch_compile_trains_and_matches_eager(tmp_path):
    """train.compile = true (inductor; needs a C++ compiler) gives the eager run's validation loss."""
    eager = run(make_job(max_steps=3), tmp_path / "eager")
    compiled = run(make_job(max_steps=3, compile=True), tmp_path / "compiled")
    assert compiled.step == 3
    assert compiled.last_metrics["val_loss"] == pytest.approx(eager.last_metrics["val_loss"], rel=1e-4, abs=1e-5)


def test_logged_learning_rate_is_the_one_each_step_used(tmp_path):
    job = make_job(max_steps=3)  # warm-up over 2 steps from warmup_lr_init, layer decay 0.8
    run(job, tmp_path)
    records = [r for r in RunFolder(tmp_path).read_metrics() if r["split"] == "train"]
    assert records[0]["step"] == 1
    start, peak, floor = job.optim.warmup_lr_init, job.optim.lr, job.optim.min_lr
    assert records[0]["lr"] == pytest.approx(start)  # step 1 runs at the warm-up start
    assert records[1]["lr"] == pytest.approx(start + (peak - start) / 2)
    assert records[2]["lr"] == pytest.approx(floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * 2 / 3)))
    groups = records[2]["lr_groups"]
    assert max(groups) == records[2]["lr"] and min(groups) < max(groups)
    # Every record has each group's rate, the first too, where every group starts at warmup_lr_init.
    assert all(len(record["lr_groups"]) == len(groups) and max(record["lr_groups"]) == record["lr"] for record in records)


def test_a_slow_step_shows_its_rate_not_zero(tmp_path):
    # A FEMBA step on a laptop CPU takes seconds: "0 samples/s" read as a stalled run.
    from types import SimpleNamespace

    from biofound_cli.recipes.training import TrainSection
    from biofound_cli.training.loop import Progress, _log_step

    class Bar:
        description = ""

        def advance(self, steps: int) -> None:
            pass

        def set_description(self, text: str) -> None:
            self.description = text

    bar = Bar()
    config = TrainSection(epochs=1, log_every=100)
    parts = SimpleNamespace(total_steps=10, eval_every=None, due=lambda step, every: False)
    _log_step(bar, RunFolder(tmp_path), Progress(step=1), 0.5, [1e-4], 0.48, parts, DistributedContext(), config)
    assert bar.description.endswith(" 0.48 samples/s")


def test_logged_throughput_leaves_out_the_evaluation_and_checkpoint_between_steps(tmp_path, monkeypatch):
    # A clock that ticks once per reading, and an evaluation that takes 1000 ticks: a training step
    # reads it twice (start, end), so each step took one tick and ran its 8 samples at 8 per tick.
    # The step after each evaluation showed 8 / 1001 samples/s when it was timed from the last one.
    from types import SimpleNamespace

    from biofound_cli.training import loop

    clock = SimpleNamespace(now=0.0)

    def monotonic() -> float:
        clock.now += 1.0
        return clock.now

    def slow_evaluate(*args, **kwargs):
        clock.now += 1000.0
        return real_evaluate(*args, **kwargs)

    real_evaluate = loop.evaluate
    monkeypatch.setattr(loop, "time", SimpleNamespace(monotonic=monotonic))
    monkeypatch.setattr(loop, "evaluate", slow_evaluate)
    run(make_job(max_steps=8), tmp_path)
    records = RunFolder(tmp_path).read_metrics()
    assert [r["step"] for r in records if r["split"] == "val"] == [4, 8]
    assert {r["samples_per_second"] for r in records if r["split"] == "train"} == {8.0}


def start_warnings(folder, caplog, *, about, epochs, batch_size, optim, num_workers=0):
    """The warnings naming ``about`` of a run of ``epochs`` epochs with the ``optim`` fields changed."""
    job = make_job(max_steps=None, epochs=epochs, eval_every=None, checkpoint_every=None, batch_size=batch_size)
    job.optim = job.optim.model_copy(update=optim)
    job.num_workers = num_workers
    caplog.clear()
    with caplog.at_level("WARNING", logger="biofound_cli"):
        run(job, folder)
    return [record.getMessage() for record in caplog.records if about in record.getMessage()]


def test_a_warmup_that_lasts_the_whole_run_is_said_once_at_the_start(tmp_path, caplog):
    # A shrunk trial of a published recipe (2 warm-up epochs, --set train.epochs=2) only warmed up.
    trial = {"about": "warms up", "batch_size": 4, "optim": {"warmup_steps": None, "warmup_epochs": 2.0}}
    assert start_warnings(tmp_path, caplog, epochs=2, num_workers=2, **trial) == [
        "optim.warmup_epochs = 2 warms up over 24 steps, the whole run of 24: the learning rate only rises "
        "and never decays; shorten the warm-up or train longer"
    ]
    lrs = [record["lr"] for record in RunFolder(tmp_path).read_metrics() if record["split"] == "train"]
    assert lrs == sorted(lrs)  # what the warning says: it only rose
    assert not start_warnings(tmp_path / "longer", caplog, epochs=3, **trial)
    trial["optim"] |= {"schedule": "constant", "lr": 1e-3}  # no decay to miss: the rate it was given comes at the end
    assert start_warnings(tmp_path / "constant", caplog, epochs=2, **trial) == [
        "optim.warmup_epochs = 2 warms up over 24 steps, the whole run of 24: the learning rate only rises "
        "and reaches optim.lr = 0.001 only at the end; shorten the warm-up or train longer"
    ]


def test_an_accumulation_longer_than_an_epoch_is_said_once_at_the_start(tmp_path, caplog):
    # Accumulation raised to keep the global batch on a small trial split: 3 batches an epoch under 5
    # accumulated, train.epochs = 2 trained 2 steps over 3.33 epochs, each an "epoch's" evaluation, unsaid.
    trial = {"about": "accumulation_steps", "epochs": 2, "batch_size": 16}
    said = start_warnings(tmp_path, caplog, optim={"accumulation_steps": 5}, num_workers=2, **trial)
    assert said == [
        "optim.accumulation_steps = 5 is more than the 3 batches of an epoch: each step reads 1.67 epochs, so the run "
        "trains 2 steps over 3.33 epochs (train.epochs = 2); lower optim.accumulation_steps or data.batch_size"
    ]
    assert [r["step"] for r in RunFolder(tmp_path).read_metrics() if r["split"] == "val"] == [1, 2]
    assert not start_warnings(tmp_path / "one-epoch-a-step", caplog, optim={"accumulation_steps": 3}, **trial)


class _Reporter:
    """A progress reporter as docs/python-api.md describes it, recording each task's total, start and advances."""

    def __init__(self) -> None:
        self.tasks: list[dict] = []

    def task(self, total, description, unit="items", *, done=0):
        return self._open(total, done)

    @contextmanager
    def _open(self, total, done):
        record = {"total": total, "done": done, "advanced": 0}
        self.tasks.append(record)

        class Task:
            def advance(self, amount=1):
                record["advanced"] += amount

            def set_description(self, description):
                pass

        yield Task()


class _ReporterWithoutDone(_Reporter):
    """One written to the protocol before ``task`` took ``done=``: training raised a TypeError as it started."""

    def task(self, total, description, unit="items"):
        return self._open(total, 0)


@pytest.mark.parametrize("reporter_class", [_Reporter, _ReporterWithoutDone])
def test_a_reporter_with_or_without_done_counts_a_resumed_runs_steps(tmp_path, reporter_class):
    reporter = reporter_class()
    run(make_job(max_steps=4), tmp_path, reporter=reporter)
    run(make_job(max_steps=8), tmp_path, reporter=reporter, resume=state.latest_checkpoint(tmp_path / "checkpoints"))
    first, resumed = reporter.tasks
    assert first == {"total": 4, "done": 0, "advanced": 4}
    assert resumed["total"] == 8 and resumed["done"] + resumed["advanced"] == 8
    # One that takes done= is told the steps before this start, and advanced by this start's alone.
    assert resumed["done"] == (4 if reporter_class is _Reporter else 0)


@pytest.mark.parametrize("reporter_class", [_Reporter, _ReporterWithoutDone])
def test_a_reporters_task_signature_is_read_once_not_at_every_task_it_opens(monkeypatch, reporter_class):
    """A resumed download opens a task with done= per file: the reporter's ``task`` was inspected at each one."""
    import inspect

    from biofound_cli.progress import open_task

    read = []
    signature = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda function, **kwargs: read.append(function) or signature(function, **kwargs))
    reporters = [reporter_class(), reporter_class()]
    for file in range(4):
        with open_task(reporters[file % 2], 10, f"file {file}", "bytes", done=4) as task:
            task.advance(6)
    assert len(read) <= 1, read  # none where an earlier test read this reporter's already
    assert [each["done"] + each["advanced"] for reporter in reporters for each in reporter.tasks] == [10] * 4


def test_the_run_folder_page_shows_a_step_folder_as_it_is_named(tmp_path):
    """docs/training.md wrote ``step-N`` alone; a user looking for ``step-140`` finds ``step-00000140`` (docs31)."""
    from pathlib import Path

    page = (Path(__file__).parents[3] / "docs" / "training.md").read_text()
    assert state.step_folder(tmp_path, 140).name in page
