"""The global batch is split across ranks; epochs and positions are reproducible."""

from __future__ import annotations

from biofound_cli.training.sampler import GlobalBatchSampler


def test_two_ranks_read_the_global_batch_of_one_process_with_double_batch():
    single = GlobalBatchSampler(50, 8, seed=3)
    ranks = [GlobalBatchSampler(50, 4, seed=3, rank=rank, world_size=2) for rank in range(2)]
    assert single.batches_per_epoch() == ranks[0].batches_per_epoch() == 6
    for epoch in range(2):
        for whole, first, second in zip(single.batches(epoch), ranks[0].batches(epoch), ranks[1].batches(epoch), strict=True):
            assert whole == first + second


def test_epochs_differ_and_start_skips_batches():
    sampler = GlobalBatchSampler(40, 4, seed=0)
    epoch0, epoch1 = list(sampler.batches(0)), list(sampler.batches(1))
    assert epoch0 != epoch1
    assert list(sampler.batches(1, start=3)) == epoch1[3:]
    assert sorted(i for batch in epoch0 for i in batch) == list(range(40))


def test_without_shuffle_batches_are_in_order():
    assert list(GlobalBatchSampler(9, 4, shuffle=False).batches(0)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
