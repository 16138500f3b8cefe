"""Which of several values the shards of a folder agree on: the most common, a tie to the first shard.

``pack`` keeps the shards whose channels, rate, window length, task and labels most shards have
(:func:`~biofound_cli.store.shard_scan.check_compatible`), and ``preprocess`` of recordings at
their native rates says beforehand which rate that will be
(:mod:`~biofound_cli.store.sampling_rates`): both by this rule, so the two say the same.
"""

from __future__ import annotations

from collections import Counter
from typing import Hashable, Sequence, TypeVar

Value = TypeVar("Value", bound=Hashable)


def first_of_most(values: Sequence[Value]) -> tuple[Value, int]:
    """The value most entries have, and how many values have as many (1 unless it is a tie).

    A tie goes to the value of the first entry, so with ``values`` in shard name order (the
    order :func:`~biofound_cli.store.shard_scan.find_shards` gives) the choice does not depend on
    the order a file system lists files in.

    Parameters
    ----------
    values : sequence of hashable
        One value per shard, in shard name order; not empty.
    """
    votes = Counter(values)
    best = max(votes.values())
    tied = sum(1 for count in votes.values() if count == best)
    return next(value for value in values if votes[value] == best), tied
