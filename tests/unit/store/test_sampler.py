from __future__ import annotations

import itertools

import numpy as np
import pytest

from biofound_cli.store.sampler import ChunkedBatchSampler


@pytest.mark.parametrize("n, batch_size, drop_last", [(100, 8, False), (97, 10, False), (97, 10, True), (5, 8, False)])
def test_every_index_once_per_epoch(n, batch_size, drop_last):
    sampler = ChunkedBatchSampler(n, batch_size, shuffle=True, seed=3, drop_last=drop_last)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        flat = list(itertools.chain.from_iterable(batches))
        assert len(flat) == len(set(flat))
        if drop_last:
            assert all(len(b) == batch_size for b in batches) and len(flat) == (n // batch_size) * batch_size
        else:
            assert sorted(flat) == list(range(n))


def test_batches_are_mostly_contiguous_and_epochs_differ():
    sampler = ChunkedBatchSampler(1000, 32, shuffle=True, seed=0)
    first = list(sampler)
    # A batch spans at most two blocks: at most two contiguous runs.
    for batch in first:
        runs = np.count_nonzero(np.diff(np.sort(batch)) != 1) + 1
        assert runs <= 2
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_no_shuffle_is_in_order():
    sampler = ChunkedBatchSampler(10, 4, shuffle=False)
    assert list(sampler) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_get_disjoint_equal_shares(drop_last):
    n, world = 103, 4
    per_rank = []
    for rank in range(world):
        sampler = ChunkedBatchSampler(n, 8, shuffle=True, seed=1, drop_last=drop_last, rank=rank, world_size=world)
        sampler.set_epoch(2)
        per_rank.append(list(itertools.chain.from_iterable(sampler)))
        assert len(list(sampler)) == len(sampler)
    sizes = {len(indices) for indices in per_rank}
    assert len(sizes) == 1
    union = set().union(*per_rank)
    assert len(union) == sum(len(indices) for indices in per_rank)
    assert len(union) >= n - (world * 8 if drop_last else world)


def test_resume_mid_epoch_gives_the_same_remaining_order():
    reference = ChunkedBatchSampler(200, 16, shuffle=True, seed=7)
    reference.set_epoch(3)
    full = list(reference)

    sampler = ChunkedBatchSampler(200, 16, shuffle=True, seed=7)
    sampler.set_epoch(3)
    iterator = iter(sampler)
    done = [next(iterator) for _ in range(5)]
    state = sampler.state_dict()
    assert state["batches_done"] == 5 and state["epoch"] == 3

    resumed = ChunkedBatchSampler(200, 16, shuffle=True, seed=7)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # the loop calls set_epoch again on resume; the position survives
    assert done + list(resumed) == full
    # The next pass over the same epoch starts from its beginning again.
    assert list(resumed) == full


def test_state_dict_with_the_loop_count_and_mismatch():
    sampler = ChunkedBatchSampler(50, 5, seed=0)
    iterator = iter(sampler)
    for _ in range(6):  # a DataLoader prefetches ahead of the loop
        next(iterator)
    assert sampler.state_dict(batches_done=4)["batches_done"] == 4
    other = ChunkedBatchSampler(50, 10, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        other.load_state_dict(sampler.state_dict())
