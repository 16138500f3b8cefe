"""The loop's loader workers, as a run with ``data.num_workers = 2`` and evaluation every epoch has them:
one pool for training and one for validation, each alive from its first batch to the run's end and no longer."""

from __future__ import annotations

import multiprocessing

import pytest
from fixtures.tiny_job import make_job
from fixtures.tiny_training import tiny_recipe
from typer.testing import CliRunner

from biofound_cli.cli.app import app
from biofound_cli.training.distributed import DistributedContext
from biofound_cli.training.loop import fit
from biofound_cli.training.run_folder import RunFolder


def _three_epochs_with_workers():
    # 48 windows in batches of 8: 6 steps an epoch, evaluated as each ends (steps 6, 12, 18).
    job = make_job(max_steps=None, epochs=3, eval_every=None, checkpoint_every=None)
    job.num_workers = 2
    return job


def _workers_now() -> set[int]:
    return {child.pid for child in multiprocessing.active_children()}


def test_the_same_two_pools_of_workers_read_every_epoch_and_evaluation(tmp_path):
    # A loader built per epoch and per evaluation started 2 new workers each time: 6 for the 3 epochs' training
    # and 6 for their evaluations.
    seen: list[set[int]] = []
    result = fit(
        _three_epochs_with_workers(),
        RunFolder(tmp_path),
        context=DistributedContext(),
        on_step=lambda _: seen.append(_workers_now()),
    )
    assert result.step == 18
    assert len(seen[0]) == 2  # training's workers; validation's start at the first evaluation
    assert all(len(workers) == 4 for workers in seen[6:])  # and stay for the next one
    assert len(set().union(*seen)) == 4
    assert _workers_now() == set()


def test_no_loader_worker_is_left_behind_when_a_run_fails_mid_epoch(tmp_path):
    def fail(step: int) -> None:
        if step == 9:  # mid-epoch 2, after the first evaluation started validation's workers
            assert len(_workers_now()) == 4
            raise RuntimeError("a failure mid-epoch")

    with pytest.raises(RuntimeError, match="mid-epoch"):
        fit(_three_epochs_with_workers(), RunFolder(tmp_path), context=DistributedContext(), on_step=fail)
    assert _workers_now() == set()


def _losses(folder, workers: int) -> list[tuple[str, int, float]]:
    folder.mkdir()
    recipe = tiny_recipe(folder, "epochs = 3\nseed = 42\nlog_every = 1", data=f"num_workers = {workers}")
    result = CliRunner().invoke(app, ["finetune", str(recipe), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = RunFolder(folder / "runs" / "tiny").read_metrics()
    return [(r["split"], r["step"], r.get("loss", r.get("val_loss"))) for r in records]


@pytest.mark.slow
def test_a_seeded_run_reads_the_same_batches_with_workers_kept_as_in_this_process(tmp_path):
    # The batch sampler follows the run's epoch: kept workers read each epoch's own shuffle, not the first's again.
    with_workers, in_process = _losses(tmp_path / "workers", 2), _losses(tmp_path / "main", 0)
    assert [split for split, *_ in with_workers].count("val") == 3
    assert with_workers == in_process
