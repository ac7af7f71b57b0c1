"""The sample order of every epoch and its batches: a pure function of (seed, epoch).

Because the order is recomputed rather than stored, a checkpoint only needs the step it was
written at, and a replay (``divergence.py``) finds any step's batch again.
"""

from __future__ import annotations

import numpy as np


def epoch_order(seed: int, epoch: int, n_samples: int, shuffle: bool = True) -> np.ndarray:
    """The order in which epoch ``epoch`` (0-based) visits the ``n_samples`` training samples.

    A permutation drawn by numpy's PCG64 from ``(seed, epoch)``; identity without shuffle.
    """
    if not shuffle:
        return np.arange(n_samples, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, 0x0DA7A])))
    return rng.permutation(n_samples).astype(np.int64)


def batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Consecutive slices of ``order``; the last batch keeps the remainder (never dropped)."""
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def batch_sizes(n_samples: int, batch_size: int) -> list[int]:
    """The size of every batch of an epoch of ``n_samples``."""
    return [min(batch_size, n_samples - start) for start in range(0, n_samples, batch_size)]


def step_indices(step: int, seed: int, n_samples: int, batch_size: int, shuffle: bool) -> np.ndarray:
    """The sample indices of global step ``step`` (0-based, counted over all epochs)."""
    steps_per_epoch = -(-n_samples // batch_size)
    epoch, position = divmod(step, steps_per_epoch)
    order = epoch_order(seed, epoch, n_samples, shuffle)
    return order[position * batch_size : (position + 1) * batch_size]
