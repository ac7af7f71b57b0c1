"""Dropout keep masks from archspec's neutral hash (``archspec.random.hash32``) in ``jax.numpy``.

The op sequence is ``hash32``'s, line for line, on uint32 arrays: uint32 multiplication wraps
modulo 2**32 (what ``& 0xFFFFFFFF`` does in int64) and ``>>`` on uint32 is the logical shift, so
JAX drops exactly the elements numpy, torch and TensorFlow drop, without 64-bit integers.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from archspec.random import MASK32, MULTIPLIER, SHIFT, keep_threshold


def mix32(x: jax.Array) -> jax.Array:
    """``archspec.random.mix32`` on a uint32 array."""
    x = x ^ (x >> SHIFT)
    x = x * jnp.uint32(MULTIPLIER)
    x = x ^ (x >> SHIFT)
    x = x * jnp.uint32(MULTIPLIER)
    return x ^ (x >> SHIFT)


def _fold(h: jax.Array, counter: jax.Array) -> jax.Array:
    return mix32(h ^ mix32(counter))


def keep_mask(
    seed: int, layer: int, step: jax.Array | int, offset: jax.Array | int, shape: tuple[int, ...], rate: float
) -> jax.Array:
    """Boolean keep mask of ``shape`` = (batch, *features), as ``archspec.random.dropout_keep_mask``.

    ``step``: the 0-based optimizer step (an int or a 0-d integer array, so a jitted step is not
    retraced per step); ``offset``: the position of the first row in the global batch.
    """
    threshold = keep_threshold(rate)
    batch, features = shape[0], math.prod(shape[1:])
    if threshold > MASK32:  # rate 1: no 32-bit hash reaches 2**32
        return jnp.zeros(shape, dtype=bool)
    h = mix32(jnp.uint32(seed & MASK32))
    h = _fold(h, jnp.uint32(layer & MASK32))
    # An int step keeps its low 32 bits here; an integer array's conversion to uint32 wraps the same way.
    h = _fold(h, jnp.uint32(step & MASK32) if isinstance(step, int) else jnp.asarray(step).astype(jnp.uint32))
    # The per-sample prefix on (batch, 1); only the last fold is full size.
    position = jnp.arange(batch, dtype=jnp.uint32)[:, None] + jnp.asarray(offset).astype(jnp.uint32)
    h = _fold(h, position)
    h = _fold(h, jnp.arange(features, dtype=jnp.uint32)[None, :])
    return (h >= jnp.uint32(threshold)).reshape(shape)
