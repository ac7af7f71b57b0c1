"""Activation functions by spec name, as ``jax.numpy`` functions of one array."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from archspec.definitions.constants import ELU_ALPHA, LEAKY_RELU_SLOPE
from archspec.errors import lookup

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, negative_slope=LEAKY_RELU_SLOPE),
    "elu": lambda x: jax.nn.elu(x, alpha=ELU_ALPHA),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # exact (erf), as Keras' default
    "silu": jax.nn.silu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "softmax": lambda x: jax.nn.softmax(x, axis=-1),
    "log_softmax": lambda x: jax.nn.log_softmax(x, axis=-1),
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The function for activation ``name``; the error lists the valid names."""
    return lookup(ACTIVATIONS, name, "activation")
