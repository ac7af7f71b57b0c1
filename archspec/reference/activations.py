"""Reference activations in float64 numpy: the meaning of every ``activation`` name."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import erf, expit

from archspec.definitions.constants import ELU_ALPHA, LEAKY_RELU_SLOPE
from archspec.errors import UsageError


def linear(x: np.ndarray) -> np.ndarray:
    return x


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def leaky_relu(x: np.ndarray) -> np.ndarray:
    """x if x >= 0 else LEAKY_RELU_SLOPE * x"""
    return np.where(x >= 0.0, x, LEAKY_RELU_SLOPE * x)


def elu(x: np.ndarray) -> np.ndarray:
    """x if x > 0 else ELU_ALPHA * (exp(x) - 1)"""
    # expm1 of a large positive x overflows to inf (a warning) in the branch np.where discards.
    return np.where(x > 0.0, x, ELU_ALPHA * np.expm1(np.minimum(x, 0.0)))


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact GELU, x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)); not the tanh approximation."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), without overflow for large |x|."""
    return expit(x)


def silu(x: np.ndarray) -> np.ndarray:
    """x * sigmoid(x)"""
    return x * expit(x)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def softmax(x: np.ndarray) -> np.ndarray:
    """exp(x) / sum exp(x) over the last axis; the row maximum is subtracted first
    (it cancels in the ratio) so large logits do not overflow."""
    shifted = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return shifted / np.sum(shifted, axis=-1, keepdims=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """x - log sum exp(x) over the last axis (torch's ``log_softmax``), the row maximum
    subtracted first so large logits do not overflow."""
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": linear,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "gelu": gelu,
    "silu": silu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
    "log_softmax": log_softmax,
}


def activation(name: str, x: np.ndarray) -> np.ndarray:
    """Applies the activation called ``name`` to ``x``."""
    if name not in ACTIVATIONS:
        raise UsageError(f"expected an activation among {', '.join(ACTIVATIONS)}, received {name!r}")
    return ACTIVATIONS[name](x)
