"""The normalisation layers of the JAX backend: batch_norm with Keras' momentum (and global-batch
statistics over the workers' axis under a distributed engine) and layer_norm, both over the last axis."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from .context import BuildContext
from .distributed import global_moments


class BatchNorm(nnx.Module):
    """Batch normalisation over the last axis with Keras' meaning of ``momentum``.

    Training (``use_running_average`` False, set by nnx's ``train()``): the batch mean and
    biased variance, and ``moving = momentum * moving + (1 - momentum) * batch_statistic``
    (flax's own BatchNorm takes the variance in one pass, E[x^2] - E[x]^2; this module takes
    the reference's two). Inference (the default, ``eval()``): the moving statistics. With the context's
    ``axis_name`` (the workers' axis of a distributed engine) the statistics are those of the
    global batch: sums over the axis with ``lax.psum``, in the same two passes.
    """

    def __init__(
        self, context: BuildContext, channels: int, momentum: float, epsilon: float, scale: bool, center: bool
    ):
        self.momentum, self.epsilon = momentum, epsilon
        self.axis_name = context.axis_name
        self.gamma = context.parameter(channels) if scale else None
        self.beta = context.parameter(channels) if center else None
        self.moving_mean = context.statistic(channels)
        self.moving_variance = context.statistic(channels)
        self.use_running_average = True

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.use_running_average:
            mean, variance = self.moving_mean[...], self.moving_variance[...]
        else:
            mean, variance = self._moments(x)
            m = self.momentum
            # set_value replaces the array whole: ``[...] =`` would scatter into it, which fails
            # inside shard_map when the statistics came in replicated and the batch is sharded.
            self.moving_mean.set_value(jax.lax.stop_gradient(m * self.moving_mean[...] + (1 - m) * mean))
            self.moving_variance.set_value(jax.lax.stop_gradient(m * self.moving_variance[...] + (1 - m) * variance))
        y = (x - mean) / jnp.sqrt(variance + self.epsilon)
        if self.gamma is not None:
            y = y * self.gamma[...]
        if self.beta is not None:
            y = y + self.beta[...]
        return y

    def _moments(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Mean and biased variance over every axis but the last, in two passes (the mean, then
        the mean squared deviation); over every worker's batch when ``axis_name`` is set.

        ``psum`` differentiates (its transpose sums the workers' upstream gradients), so
        gradients flow across workers as with torch's all-reduce."""
        axes = tuple(range(x.ndim - 1))
        if self.axis_name is None:
            mean = jnp.mean(x, axis=axes)
            return mean, jnp.mean((x - mean) ** 2, axis=axes)
        # The same two passes over the workers' real rows (a worker's share is padded to the
        # program's one shape inside the engine's step: distributed.py).
        return global_moments(x, self.axis_name)


class LayerNorm(nnx.Module):
    """Layer normalisation over the last axis (biased variance, two passes)."""

    def __init__(self, context: BuildContext, channels: int, epsilon: float, scale: bool, center: bool):
        self.epsilon = epsilon
        self.gamma = context.parameter(channels) if scale else None
        self.beta = context.parameter(channels) if center else None

    def __call__(self, x: jax.Array) -> jax.Array:
        mean = jnp.mean(x, axis=-1, keepdims=True)
        variance = jnp.mean((x - mean) ** 2, axis=-1, keepdims=True)
        y = (x - mean) / jnp.sqrt(variance + self.epsilon)
        if self.gamma is not None:
            y = y * self.gamma[...]
        if self.beta is not None:
            y = y + self.beta[...]
        return y
