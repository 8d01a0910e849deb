"""Each rank's share of the data: of every batch, and of every epoch.

Data parallelism splits each *global* batch of B samples over the N ranks. For the N ranks
together to take exactly the step one process would take with the whole batch, every rank must
agree on the order of the epoch, cut it into the same global batches, and take a disjoint part
of each — its *shard*:

    epoch order (seeded, the same on every rank):  7 2 9 0 5 3 8 1 6 4
    global batches of B = 4:                        [7 2 9 0] [5 3 8 1] [6 4]
    rank 0 of 2 takes the first half of each:       [7 2]     [5 3]     [6]
    rank 1 of 2 takes the second half:              [9 0]     [8 1]     [4]

Every rank gets the same number of batches, so every rank joins every all-reduce; a rank's
part of a short last batch may be empty (then it contributes a zero gradient of weight 0).
"""
from __future__ import annotations

from typing import Any, Iterator, Optional, Tuple

import numpy as np

from minidl.backend import host_array

__all__ = ["shard_bounds", "shard_batches", "DistributedSampler"]


def shard_bounds(n: int, rank: int, world_size: int) -> Tuple[int, int]:
    """Rows ``[start, stop)`` of rank ``rank``'s share of ``n`` rows: contiguous parts whose
    sizes differ by at most one (the first ``n mod world_size`` ranks have one more).

    >>> [shard_bounds(5, r, 2) for r in range(2)]
    [(0, 3), (3, 5)]
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard_bounds: rank {rank} is not in a job of {world_size} ranks")
    base, extra = divmod(int(n), world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard_batches(order: Any, batch_size: int, rank: int, world_size: int,
                  drop_last: bool = False) -> Iterator[Any]:
    """This rank's part of each global batch of ``batch_size`` consecutive entries of
    ``order`` (a 1-D array of sample indices). Yields ``ceil(len(order) / batch_size)``
    arrays on every rank (``floor`` with ``drop_last``); some may be empty."""
    n = len(order)
    for start in range(0, n, batch_size):
        batch = order[start:start + batch_size]
        if drop_last and len(batch) < batch_size:
            return
        first, stop = shard_bounds(len(batch), rank, world_size)
        yield batch[first:stop]


class DistributedSampler:
    """Which samples rank ``rank`` of ``world_size`` uses in each epoch.

    The epoch's order is a permutation seeded by ``(seed, epoch)`` — the same on every rank,
    different in every epoch (``set_epoch``) — or ``0 … n−1`` without ``shuffle``. It is cut
    into global batches of ``batch_size`` samples (one batch of all samples when None) and the
    rank takes its part of each (``shard_bounds``). Over the ranks, the parts of an epoch are a
    partition of the samples: each sample appears exactly once.

        sampler = DistributedSampler(len(dataset), batch_size=64, seed=0)
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for indices in sampler.batches():      # this rank's part of each global batch
                ...

    ``rank``/``world_size`` default to this process's (``minidl.distributed``). ``drop_last``
    leaves out a last global batch smaller than ``batch_size``.
    """

    def __init__(self, num_samples: int, batch_size: Optional[int] = None, *,
                 shuffle: bool = True, seed: int = 0, rank: Optional[int] = None,
                 world_size: Optional[int] = None, drop_last: bool = False):
        from minidl.distributed.process import get_rank, get_world_size
        if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 0:
            raise ValueError(f"DistributedSampler: num_samples must be a count, got "
                             f"{num_samples!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"DistributedSampler: batch_size must be a positive integer or "
                             f"None, got {batch_size!r}")
        self.num_samples = int(num_samples)
        self.batch_size = batch_size
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.world_size = get_world_size() if world_size is None else int(world_size)
        self.rank = get_rank() if rank is None else int(rank)
        shard_bounds(0, self.rank, self.world_size)   # checks rank and world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` from now on (call it at the start of every epoch)."""
        self.epoch = int(epoch)

    def order(self) -> np.ndarray:
        """The current epoch's order of all samples (the same on every rank). Shape: (n,)."""
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
        return host_array(range(self.num_samples), dtype="int64")

    def _global_batch(self) -> int:
        return self.batch_size or max(self.num_samples, 1)

    def batches(self) -> Iterator[np.ndarray]:
        """This rank's indices of each global batch of the epoch; the same number of batches
        on every rank (``num_batches``), some possibly empty."""
        return shard_batches(self.order(), self._global_batch(), self.rank, self.world_size,
                             self.drop_last)

    def num_batches(self) -> int:
        """Global batches per epoch."""
        size = self._global_batch()
        return self.num_samples // size if self.drop_last else -(-self.num_samples // size)

    def __iter__(self) -> Iterator[int]:
        """This rank's sample indices of the epoch, batch after batch."""
        for indices in self.batches():
            yield from (int(i) for i in indices)

    def __len__(self) -> int:
        size, n = self._global_batch(), self.num_samples
        if self.drop_last:
            n -= n % size
        full, rest = divmod(n, size)
        start, stop = shard_bounds(size, self.rank, self.world_size)
        first, last = shard_bounds(rest, self.rank, self.world_size)
        return full * (stop - start) + (last - first)

    def __repr__(self) -> str:
        return (f"DistributedSampler({self.num_samples} samples, batch_size={self.batch_size}, "
                f"rank {self.rank} of {self.world_size}, epoch {self.epoch})")
