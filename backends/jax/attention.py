"""The attention and position layers of the JAX backend: Keras' multi-head attention (its
dropout archspec's own) and the learned or sinusoidal position embedding."""

from __future__ import annotations

import math
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from archspec.definitions.positions import sinusoidal_table
from archspec.graph import Node
from archspec.spec import layers as spec

from . import random
from .context import BuildContext
from .core import Dense


class MultiHeadAttention(nnx.Module):
    """Keras' multi-head attention (``archspec.spec.layers.MultiHeadAttention``) on batch-first
    sequences. The four projections are ``Dense`` sub-modules ``query``, ``key``, ``value`` and
    ``output`` (canonical (in, out) kernels, so the slot of ``query_kernel`` is ``query.kernel``).

    ``__call__(query, value=None, key=None, *, mask=None, step=0, offset=0)``: ``mask`` is the
    key's (bool (batch, key steps), True at valid steps); masked keys are never attended to and
    a query allowed no key at all gets zero weights. Dropout on the (heads, query steps, key
    steps) weights of each sample is archspec's neutral mask of ``step`` for the samples at
    global batch positions ``offset``, ``offset + 1``, ...; it is off while ``deterministic``
    (nnx's ``eval()``, the default).
    """

    def __init__(self, context: BuildContext, node: Node):
        layer = node.layer_as(spec.MultiHeadAttention)
        shapes = node.input_shapes
        query_shape = shapes[0]
        value_shape = shapes[1] if len(shapes) > 1 else query_shape
        key_shape = shapes[2] if len(shapes) > 2 else value_shape
        self.heads, self.key_dim, self.value_dim = layer.num_heads, layer.key_dim, layer.value_size
        bias = layer.use_bias
        self.query = Dense(context, query_shape[-1], self.heads * self.key_dim, bias)
        self.key = Dense(context, key_shape[-1], self.heads * self.key_dim, bias)
        self.value = Dense(context, value_shape[-1], self.heads * self.value_dim, bias)
        self.output = Dense(context, self.heads * self.value_dim, node.output_shape[-1], bias)
        self.causal = layer.causal
        self.rate = float(layer.dropout)
        self.seed = context.seed
        self.layer_index = node.index
        self.deterministic = True

    def _heads(self, x: jax.Array, size: int) -> jax.Array:
        """(N, T, heads * size) -> (N, heads, T, size)."""
        return x.reshape(x.shape[0], x.shape[1], self.heads, size).transpose(0, 2, 1, 3)

    def __call__(
        self,
        query: jax.Array,
        value: jax.Array | None = None,
        key: jax.Array | None = None,
        *,
        mask: jax.Array | None = None,
        step: jax.Array | int = 0,
        offset: jax.Array | int = 0,
    ) -> jax.Array:
        value = query if value is None else value
        key = value if key is None else key
        q = self._heads(self.query(query), self.key_dim)
        k = self._heads(self.key(key), self.key_dim)
        v = self._heads(self.value(value), self.value_dim)
        scores = (q @ jnp.swapaxes(k, -1, -2)) / math.sqrt(self.key_dim)
        minus_infinity = jnp.asarray(-jnp.inf, dtype=scores.dtype)
        allowed = None
        if self.causal:  # key j <= query i
            allowed = jnp.tril(jnp.ones((query.shape[1], key.shape[1]), dtype=bool))
        if mask is None:
            if allowed is not None:
                scores = jnp.where(allowed, scores, minus_infinity)
            weights = jax.nn.softmax(scores, axis=-1)
        else:
            # Masked keys are never attended to; a query allowed no key gets zero weights (its
            # row is made finite first, so no NaN flows back).
            valid = mask.astype(bool)[:, None, None, :]  # (N, 1, 1, Tk)
            allowed = valid if allowed is None else valid & allowed
            sees = jnp.any(allowed, axis=-1, keepdims=True)
            zero = jnp.zeros((), dtype=scores.dtype)
            scores = jnp.where(sees, jnp.where(allowed, scores, minus_infinity), zero)
            weights = jnp.where(sees, jax.nn.softmax(scores, axis=-1), zero)
        if not self.deterministic and self.rate > 0.0:
            keep = random.keep_mask(self.seed, self.layer_index, step, offset, weights.shape, self.rate)
            # Within one ulp of the reference's weights / (1 - rate) (XLA multiplies by the reciprocal).
            weights = (weights / (1.0 - self.rate)) * keep.astype(weights.dtype)
        attended = jnp.swapaxes(weights @ v, 1, 2)
        return self.output(attended.reshape(attended.shape[0], attended.shape[1], self.heads * self.value_dim))


@lru_cache(maxsize=32)
def _sinusoidal(steps: int, features: int) -> np.ndarray:
    """The float64 table, computed once per shape (a constant under ``jax.jit``)."""
    table = sinusoidal_table(steps, features)
    table.setflags(write=False)
    return table


class PositionEmbedding(nnx.Module):
    """``x + table[:steps]``: the learned ``embeddings`` (max_length, features), an ``nnx.Param``,
    or the fixed sinusoidal table of ``archspec.definitions.positions`` (a constant of the
    computation, not a variable: nothing to train, save or load)."""

    def __init__(self, context: BuildContext, node: Node):
        layer = node.layer_as(spec.PositionEmbedding)
        features = node.input_shapes[0][-1]
        self.kind = layer.kind  # static: "learned" or "sinusoidal"
        self.embeddings = context.parameter(layer.max_length, features) if layer.kind == "learned" else None

    def __call__(self, x: jax.Array) -> jax.Array:
        steps, features = x.shape[1], x.shape[2]
        if self.embeddings is not None:
            return x + self.embeddings[:steps]
        return x + jnp.asarray(_sinusoidal(steps, features), dtype=x.dtype)
