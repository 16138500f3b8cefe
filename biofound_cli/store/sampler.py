"""A batch sampler whose batches are made of contiguous runs of indices.

Random access to single windows of an HDF5 file costs one read per window. This sampler
shuffles *blocks* of contiguous indices instead of single indices and keeps each batch in
ascending order (a batch is a set to the loss), so :meth:`PackedDataset.__getitems__` reads a
batch in one or two slices straight into the batch tensor.
Block boundaries move by a random offset every epoch, so batch contents change from epoch
to epoch. Ranks of a distributed run get disjoint, equal shares of every epoch, and the
position inside an epoch can be saved and restored to resume exactly.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from torch.utils.data import Sampler


class ChunkedBatchSampler(Sampler[list[int]]):
    """Batches of indices from shuffled contiguous blocks.

    Parameters
    ----------
    n : int
        Number of items in the dataset.
    batch_size : int
        Items per batch.
    shuffle : bool
        Shuffle blocks and items within batches; ``False`` gives ``0, 1, 2, ...`` in order.
    seed : int
        Seed of the shuffle; every rank must use the same seed.
    drop_last : bool
        Drop the last, incomplete batch (and, with several ranks, the batches that cannot be
        shared equally).
    rank, world_size : int
        This process's rank and the number of ranks; each rank gets a disjoint, equal share.
        Without ``drop_last`` up to ``world_size - 1`` items per epoch are left out so the
        shares stay equal.
    block_size : int | None
        Length of the contiguous blocks; the batch size by default. A smaller block mixes more
        recordings per batch at the cost of more reads per batch.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        block_size: int | None = None,
    ) -> None:
        if n < 0 or batch_size < 1:
            raise ValueError(f"n must be >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.block_size = int(block_size or batch_size)
        self.epoch = 0
        self._yielded = 0
        self._resume_at = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle of ``epoch``; a resume position loaded for this epoch is kept.

        Parameters
        ----------
        epoch : int
            The epoch about to start, from 0; it seeds that epoch's shuffle.
        """
        if epoch != self.epoch:
            self._resume_at = 0
        self.epoch = int(epoch)

    def _share(self) -> int:
        whole_batches = (self.n // (self.world_size * self.batch_size)) * self.batch_size
        return whole_batches if self.drop_last else self.n // self.world_size

    def __len__(self) -> int:
        share = self._share()
        return share // self.batch_size if self.drop_last else -(-share // self.batch_size)

    def _order(self) -> np.ndarray:
        """Every index once, in this epoch's order (the same on every rank)."""
        if not self.shuffle:
            return np.arange(self.n)
        rng = np.random.default_rng([self.seed, self.epoch])
        offset = int(rng.integers(self.block_size)) if self.n > self.block_size else 0
        blocks = np.split(np.arange(self.n), range(offset or self.block_size, self.n, self.block_size))
        return np.concatenate([blocks[i] for i in rng.permutation(len(blocks))])

    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch, from its start."""
        share = self._share()
        mine = self._order()[self.rank * share : (self.rank + 1) * share]
        # With drop_last the share is whole batches (_share), so only a kept last batch is short.
        return [np.sort(mine[start : start + self.batch_size]).tolist() for start in range(0, share, self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        start, self._resume_at = self._resume_at, 0
        self._yielded = start
        for batch in self.batches()[start:]:
            self._yielded += 1
            yield batch

    def state_dict(self, batches_done: int | None = None) -> dict[str, Any]:
        """Where this epoch stands, to resume from with :meth:`load_state_dict`.

        Parameters
        ----------
        batches_done : int | None
            Batches of this epoch the training loop has consumed. A DataLoader with workers
            draws batches ahead of the loop, so pass the loop's own count; ``None`` uses the
            number of batches this sampler has handed out.
        """
        return {
            "epoch": self.epoch,
            "batches_done": self._yielded if batches_done is None else int(batches_done),
            "seed": self.seed,
            "n": self.n,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "block_size": self.block_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration of ``state["epoch"]`` starts after its done batches."""
        for key in ("seed", "n", "batch_size", "world_size", "block_size"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"cannot resume: the saved sampler had {key}={state[key]}, this one has {getattr(self, key)}")
        self.epoch = int(state["epoch"])
        self._resume_at = int(state["batches_done"])
        self._yielded = self._resume_at
