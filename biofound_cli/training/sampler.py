"""Which windows each process reads at each step, reproducibly and resumably.

Every step draws one *global* batch of ``batch_size * world_size`` windows; rank ``r`` reads
the ``r``-th slice of it. So N processes with batch B see exactly the windows one process with
batch N·B sees, and a position ``(epoch, batch)`` is all a checkpoint needs to continue the
same stream. The global batches come from :class:`~biofound_cli.store.sampler.ChunkedBatchSampler`
(shuffled contiguous blocks, seeded by ``seed`` and the epoch), so a batch of a packed HDF5
file is read in a few slices rather than one read per window.
"""

from __future__ import annotations

from typing import Iterator


class GlobalBatchSampler:
    """Batches of dataset indices for one rank.

    Parameters
    ----------
    n_samples : int
        Length of the dataset.
    batch_size : int
        Windows per batch on this rank.
    shuffle : bool
        Draw a new permutation every epoch (seeded); sequential order otherwise.
    seed : int
        Seed of the permutations (the same on every rank).
    rank, world_size : int
        This process and the number of processes.
    """

    def __init__(
        self, n_samples: int, batch_size: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n_samples = n_samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def batches_per_epoch(self) -> int:
        """Full global batches in one epoch (the incomplete last one is dropped)."""
        return self.n_samples // self.global_batch_size

    def global_batches(self, epoch: int) -> list[list[int]]:
        """The global batches of ``epoch`` (identical on every rank).

        Parameters
        ----------
        epoch : int
            The epoch; it seeds the shuffle.
        """
        from biofound_cli.store.sampler import ChunkedBatchSampler

        chunked = ChunkedBatchSampler(
            self.n_samples, self.global_batch_size, shuffle=self.shuffle, seed=self.seed, drop_last=True
        )
        chunked.set_epoch(epoch)
        return chunked.batches()

    def batches(self, epoch: int, start: int = 0) -> Iterator[list[int]]:
        """This rank's batches of ``epoch``, from global batch ``start`` on.

        Parameters
        ----------
        epoch : int
            The epoch; it seeds the shuffle.
        start : int
            The first global batch to yield (a resumed epoch skips those already trained on).
        """
        first = self.rank * self.batch_size
        yield from (batch[first : first + self.batch_size] for batch in self.global_batches(epoch)[start:])
