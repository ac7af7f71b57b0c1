"""Initial weights, computed once with numpy so every backend starts bit-identical.

Each parameter draws from its own generator, seeded by the spec's seed and the
parameter's canonical name, so a value never depends on build order. The
formulas follow Keras' definitions (``*_normal`` variants are truncated at two
standard deviations, fans are computed from the canonical shape).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from archspec.spec.common import Initializer, Shape


def generator_for(seed: int, name: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``name``."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    words = np.frombuffer(digest[:16], dtype=np.uint32).tolist()
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *words])))


def fans(shape: Shape) -> tuple[float, float]:
    """(fan_in, fan_out) as Keras computes them from a channels-last shape."""
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def _truncated_normal(rng: np.random.Generator, stddev: float, shape: Shape) -> np.ndarray:
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2.0
    return values * stddev


def _orthogonal(rng: np.random.Generator, shape: Shape, gain: float) -> np.ndarray:
    rows, cols = math.prod(shape[:-1]), shape[-1]
    flat = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q.reshape(shape)


# Truncating at 2 sigma shrinks the standard deviation by this factor; Keras divides it out.
_TRUNCATION_STD = 0.87962566103423978


def initial_value(init: Initializer, shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """One parameter's initial value in float64 (callers cast to the run dtype)."""
    fan_in, fan_out = fans(shape)
    kind = init.type
    if kind == "zeros":
        return np.zeros(shape)
    if kind == "ones":
        return np.ones(shape)
    if kind == "constant":
        return np.full(shape, init.value, dtype=np.float64)
    if kind == "uniform":
        return rng.uniform(init.minval, init.maxval, shape)
    if kind == "normal":
        return init.mean + init.stddev * rng.standard_normal(shape)
    if kind == "orthogonal":
        return _orthogonal(rng, shape, init.gain)
    scale, fan = {
        "glorot_uniform": (1.0, (fan_in + fan_out) / 2),
        "glorot_normal": (1.0, (fan_in + fan_out) / 2),
        "he_uniform": (2.0, fan_in),
        "he_normal": (2.0, fan_in),
        "lecun_uniform": (1.0, fan_in),
        "lecun_normal": (1.0, fan_in),
    }[kind]
    variance = scale / max(1.0, fan)
    if kind.endswith("uniform"):
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape)
    return _truncated_normal(rng, math.sqrt(variance) / _TRUNCATION_STD, shape)


def canonical_weights(graph, seed: int | None = None, dtype: str = "float64") -> dict[str, np.ndarray]:
    """Every parameter of ``graph``'s model, by canonical name, in the canonical layout.

    ``seed`` defaults to the spec's training seed (0 without training). Parts a layer
    type fixes (``LayerBase.initial_constants``: LSTM forget-gate biases start at 1 with
    ``unit_forget_bias``) overwrite the drawn values.
    """
    if seed is None:
        seed = graph.spec.training.seed if graph.spec.training else 0
    weights = {}
    for node in graph.nodes:
        for param in node.params:
            name = node.canonical_name(param)
            value = initial_value(param.initializer, param.shape, generator_for(seed, name))
            for part, constant in node.layer.initial_constants(param.name):
                value[part] = constant
            weights[name] = value.astype(dtype)
    return weights
