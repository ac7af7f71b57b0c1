"""The core JAX layers: dense, archspec's dropout (its mask from the neutral stream), flatten,
reshape, the mask-making embedding and masking, and the merges of several inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from . import random
from .context import BuildContext


class Dense(nnx.Module):
    """``x @ kernel + bias`` on the last axis, ``kernel`` (in, units) as the canonical layout."""

    def __init__(self, context: BuildContext, in_features: int, units: int, use_bias: bool):
        self.kernel = context.parameter(in_features, units)
        self.bias = context.parameter(units) if use_bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x @ self.kernel[...]
        return y + self.bias[...] if self.bias is not None else y


class Dropout(nnx.Module):
    """Zeroes the units whose neutral hash falls below ``rate * 2**32``; the identity when
    ``deterministic`` (nnx's ``eval()``, the default) or at rate 0.

    Called with the optimizer step and the position of the first sample in the global batch
    (non-zero on workers after the first): the mask depends on both, not on an RNG state.
    """

    def __init__(self, context: BuildContext, rate: float, layer_index: int):
        self.rate = rate
        self.seed = context.seed
        self.layer_index = layer_index
        self.deterministic = True

    def __call__(self, x: jax.Array, *, step: jax.Array | int = 0, offset: jax.Array | int = 0) -> jax.Array:
        if self.deterministic or self.rate == 0.0:
            return x
        keep = random.keep_mask(self.seed, self.layer_index, step, offset, x.shape, self.rate)
        # XLA turns the division by a scalar into a multiplication by its reciprocal: kept values
        # are within one ulp of the reference's x / (1 - rate) (bit-equal would cost an array).
        return (x / (1.0 - self.rate)) * keep.astype(x.dtype)


class Flatten(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)


class Reshape(nnx.Module):
    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], *self.shape)


class Identity(nnx.Module):
    """The ``activation`` layer: the node's activation does the work."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return x


class Embedding(nnx.Module):
    """Rows of ``embeddings`` (input_dim, output_dim) for integer ids."""

    def __init__(self, context: BuildContext, input_dim: int, output_dim: int):
        self.embeddings = context.parameter(input_dim, output_dim)

    def __call__(self, ids: jax.Array) -> jax.Array:
        return jnp.take(self.embeddings[...], ids.astype(jnp.int32), axis=0)

    def make_mask(self, ids: jax.Array) -> jax.Array:
        """``mask_zero``: the id 0 is padding (the row it looks up stays in the output)."""
        return ids != 0


class Masking(nnx.Module):
    """Masks the steps whose features all equal ``mask_value`` and zeroes them (Keras' ``Masking``)."""

    def __init__(self, mask_value: float):
        self.mask_value = mask_value

    def make_mask(self, x: jax.Array) -> jax.Array:
        return jnp.any(x != self.mask_value, axis=-1)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.where(self.make_mask(x)[..., None], x, jnp.zeros((), dtype=x.dtype))


class Merge(nnx.Module):
    """add / multiply / concatenate of several inputs (concatenate's axis is per sample)."""

    def __init__(self, mode: str, axis: int = -1):
        self.mode = mode
        self.axis = axis if axis < 0 else axis + 1  # skip the batch axis

    def __call__(self, *inputs: jax.Array) -> jax.Array:
        if self.mode == "concatenate":
            return jnp.concatenate(inputs, axis=self.axis)
        result = inputs[0]
        for other in inputs[1:]:
            result = result + other if self.mode == "add" else result * other
        return result
