"""Activation functions by spec name, as ``jax.numpy`` functions of one array."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special

from archspec.definitions.constants import ELU_ALPHA, LEAKY_RELU_SLOPE
from archspec.errors import lookup


def _gelu(x: jax.Array) -> jax.Array:
    """The exact GELU as the reference writes it, x/2 * (1 + erf(x / sqrt 2)) (jax.nn.gelu's
    exact form rounds differently: it keeps a tiny negative value where the reference has -0)."""
    return 0.5 * x * (1.0 + jax.scipy.special.erf(x / math.sqrt(2.0)))


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    # "> 0" (not jax.nn.leaky_relu's ">= 0") gives the gradient at 0 that torch and TensorFlow give: the slope.
    "leaky_relu": lambda x: jnp.where(x > 0.0, x, LEAKY_RELU_SLOPE * x),
    "elu": lambda x: jax.nn.elu(x, alpha=ELU_ALPHA),
    "gelu": _gelu,  # exact (erf), as Keras' default
    "silu": jax.nn.silu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "softmax": lambda x: jax.nn.softmax(x, axis=-1),
    "log_softmax": lambda x: jax.nn.log_softmax(x, axis=-1),
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The function for activation ``name``; the error lists the valid names."""
    return lookup(ACTIVATIONS, name, "activation")
