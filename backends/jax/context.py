"""What every JAX layer builder needs besides the node, and the empty variables they create.

Variables are created as zeros in the canonical layout (JAX keeps every parameter in it);
their values always come from canonical weights (``layout.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
from flax import nnx


@dataclass(frozen=True)
class BuildContext:
    """What every builder needs besides the node: the parameter dtype and the dropout seed.

    ``axis_name``: the name of the workers' axis when the model runs inside a distributed
    engine's ``shard_map`` (batch-norm statistics are then summed over it); ``None`` otherwise.
    """

    dtype: jnp.dtype
    seed: int
    axis_name: str | None = None

    def parameter(self, *shape: int) -> nnx.Param:
        """A trainable parameter (zeros until the canonical weights are assigned)."""
        return nnx.Param(jnp.zeros(shape, dtype=self.dtype))

    def statistic(self, *shape: int) -> nnx.BatchStat:
        """A non-trainable batch statistic (batch norm's moving mean and variance)."""
        return nnx.BatchStat(jnp.zeros(shape, dtype=self.dtype))
