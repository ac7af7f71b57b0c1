"""The convolution and pooling layers of the JAX backend, 1-D and 2-D, on channels-last inputs.

``jax.lax`` takes channels-last arrays and the canonical (``*spatial, in, out``) kernel as they
are, and explicit (before, after) padding per axis: TensorFlow's ``same`` (the odd one after)
and Keras' ``causal`` are written as those pairs, with the reference's arithmetic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from archspec.definitions.padding import axis_padding
from archspec.graph import Node
from archspec.spec import layers as spec

from .context import BuildContext

# (input, kernel, output) axis names of lax.conv_general_dilated, channels-last, per spatial rank.
_DIMENSIONS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


def _paddings(
    sizes: tuple[int, ...], padding: str, kernel: tuple[int, ...], strides: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[tuple[int, int], ...]:
    """(before, after) of every spatial axis, first axis first."""
    return tuple(
        axis_padding(size, k, s, d, padding) for size, k, s, d in zip(sizes, kernel, strides, dilation, strict=True)
    )


class Convolution(nnx.Module):
    """1-D or 2-D cross-correlation of channels-last inputs; ``kernel`` is (*kernel_size, in,
    filters), the canonical layout, ``bias`` (filters,). Float32 runs at ``HIGHEST`` precision:
    a GPU's default would round the operands to TF32 (10-bit mantissas), beyond parity."""

    def __init__(self, context: BuildContext, node: Node):
        layer = node.layer_as(spec.Conv1D if node.type == "conv1d" else spec.Conv2D)
        self.rank = layer.rank
        self.strides, self.dilation = layer.stride_sizes, layer.dilation_sizes
        self.padding = _paddings(
            tuple(node.input_shapes[0][:-1]), layer.padding, layer.kernel_sizes, self.strides, self.dilation
        )
        self.kernel = context.parameter(*layer.kernel_sizes, node.input_shapes[0][-1], layer.filters)
        self.bias = context.parameter(layer.filters) if layer.use_bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.lax.conv_general_dilated(
            x,
            self.kernel[...],
            window_strides=self.strides,
            padding=self.padding,
            rhs_dilation=self.dilation,
            dimension_numbers=_DIMENSIONS[self.rank],
            precision=jax.lax.Precision.HIGHEST,
        )
        return y + self.bias[...] if self.bias is not None else y


class Pool(nnx.Module):
    """Max or average pooling of channels-last sequences or images with TensorFlow's 'same'
    rule: max pads with -inf (a padded position never wins), average divides each window's
    sum by its count of real positions (Keras' rule)."""

    def __init__(self, node: Node, layer: spec.MaxPool1D | spec.AvgPool1D | spec.MaxPool2D | spec.AvgPool2D):
        self.mode = "max" if layer.type.startswith("max") else "avg"
        ones = (1,) * layer.rank
        spatial = _paddings(tuple(node.input_shapes[0][:-1]), layer.padding, layer.pool_sizes, layer.stride_sizes, ones)
        # Windows over the whole array: one sample, one channel at a time.
        self.window = (1, *layer.pool_sizes, 1)
        self.strides = (1, *layer.stride_sizes, 1)
        self.padding = ((0, 0), *spatial, (0, 0))

    # The initial values are numpy constants, not traced arrays: with them (0 and add, -inf and
    # max) lax.reduce_window becomes its differentiable reduce_window_sum / reduce_window_max.
    def _window_sum(self, x: jax.Array) -> jax.Array:
        return jax.lax.reduce_window(x, np.zeros((), x.dtype), jax.lax.add, self.window, self.strides, self.padding)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.mode == "max":
            lowest = np.array(-np.inf, dtype=x.dtype)
            return jax.lax.reduce_window(x, lowest, jax.lax.max, self.window, self.strides, self.padding)
        counts = self._window_sum(jnp.ones((1, *x.shape[1:-1], 1), dtype=x.dtype))
        return self._window_sum(x) / counts


class GlobalPool(nnx.Module):
    """Mean or max over every spatial axis (steps; or height and width); a 1-D pool with a
    mask (bool (batch, steps), True at valid steps) reads the valid steps only, 0 without any."""

    def __init__(self, mode: str, rank: int):
        self.mode = mode
        self.axes = tuple(range(1, rank + 1))

    def __call__(self, x: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
        if mask is not None:
            return self._masked(x, mask)
        if self.mode == "max":
            return jnp.max(x, axis=self.axes)
        return jnp.mean(x, axis=self.axes)

    def _masked(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        valid = mask[..., None]
        any_valid = jnp.any(valid, axis=1)
        zero = jnp.zeros((), dtype=x.dtype)
        if self.mode == "max":
            largest = jnp.max(jnp.where(valid, x, jnp.array(-jnp.inf, dtype=x.dtype)), axis=1)
            return jnp.where(any_valid, largest, zero)
        total = jnp.sum(jnp.where(valid, x, zero), axis=1)
        count = jnp.sum(valid, axis=1).astype(x.dtype)
        return jnp.where(any_valid, total / jnp.maximum(count, 1), zero)


class ZeroPadding(nnx.Module):
    """Zeros before and after each spatial axis of a channels-last sequence or image."""

    def __init__(self, layer: spec.ZeroPadding1D | spec.ZeroPadding2D):
        self.padding = ((0, 0), *layer.amounts, (0, 0))

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.pad(x, self.padding)
