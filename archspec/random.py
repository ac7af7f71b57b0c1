"""A backend-neutral random stream for dropout: a counter-based 32-bit hash.

Both backends compute dropout masks with the exact op sequence of :func:`hash32`
on int64 tensors, so torch, TensorFlow and numpy drop the same units.
"""

from __future__ import annotations

import math

import numpy as np

from archspec.errors import UsageError

MASK32 = 0xFFFFFFFF
"""Keeps the low 32 bits; every value between ops is in [0, 2**32)."""
MULTIPLIER = 0x045D9F3B
"""Odd and below 2**31, so (value < 2**32) * MULTIPLIER < 2**59 never overflows int64."""
SHIFT = 16


def mix32(x):
    """Bijective mix of 32-bit values held in int64 (any array type with these operators):

    x = x ^ (x >> 16)
    x = (x * 0x045D9F3B) & 0xFFFFFFFF
    x = x ^ (x >> 16)
    x = (x * 0x045D9F3B) & 0xFFFFFFFF
    x = x ^ (x >> 16)
    """
    x = x ^ (x >> SHIFT)
    x = (x * MULTIPLIER) & MASK32
    x = x ^ (x >> SHIFT)
    x = (x * MULTIPLIER) & MASK32
    return x ^ (x >> SHIFT)


def hash32(seed, layer, step, position, element):
    """A 32-bit value in [0, 2**32) (as int64) for every combination of counters.

    The counters are int64 arrays or ints and broadcast against each other. Op sequence,
    with ``mix32`` above and ``& 0xFFFFFFFF`` taking the low 32 bits (negatives too):

        h = mix32(seed & 0xFFFFFFFF)
        h = mix32(h ^ mix32(layer & 0xFFFFFFFF))
        h = mix32(h ^ mix32(step & 0xFFFFFFFF))
        h = mix32(h ^ mix32(position & 0xFFFFFFFF))
        h = mix32(h ^ mix32(element & 0xFFFFFFFF))

    The counters are folded in one at a time, so a backend can compute the per-sample
    prefix on a (batch, 1) tensor and only the last line on the whole (batch, features).
    """
    h = mix32(np.bitwise_and(seed, MASK32, dtype=np.int64))
    for counter in (layer, step, position, element):
        h = mix32(h ^ mix32(np.bitwise_and(counter, MASK32, dtype=np.int64)))
    return h


def keep_threshold(rate: float) -> int:
    """floor(rate * 2**32): a unit is kept iff its hash >= this (exact integer comparison)."""
    if not 0.0 <= rate <= 1.0:
        raise UsageError(f"expected a dropout rate in [0, 1], received rate={rate}")
    return math.floor(rate * 2**32)


def dropout_keep_mask(seed: int, layer: int, step: int, shape: tuple[int, ...], rate: float) -> np.ndarray:
    """Boolean keep mask of ``shape`` = (batch, *features) for one dropout layer at one step.

    position = index along axis 0; element = row-major flat index within one sample.
    Kept iff ``hash32(seed, layer, step, position, element) >= keep_threshold(rate)``.
    """
    if len(shape) < 1 or any(size < 0 for size in shape):
        raise UsageError(f"expected a shape (batch, *features), received {shape}")
    batch, features = shape[0], shape[1:]
    position = np.arange(batch, dtype=np.int64).reshape((batch,) + (1,) * len(features))
    element = np.arange(math.prod(features), dtype=np.int64).reshape((1,) + features)
    return hash32(seed, layer, step, position, element) >= keep_threshold(rate)
