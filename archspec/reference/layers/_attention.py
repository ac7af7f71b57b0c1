"""Reference attention and positions: multi_head_attention (causal, key masks, dropout on
the attention weights) and position_embedding (learned or sinusoidal)."""

from __future__ import annotations

import math

import numpy as np

from archspec.definitions.constants import SINUSOIDAL_WAVELENGTH
from archspec.random import dropout_keep_mask
from archspec.reference.activations import activation
from archspec.reference.layers._base import LayerOutput, Params


def attention_allowed(layer, query_steps: int, key_steps: int) -> np.ndarray:
    """Which keys each query may attend to, boolean (query_steps, key_steps): all, or with
    ``causal`` key j <= query i. (A key mask combines with it by "and": multi_head_attention.)"""
    allowed = np.ones((query_steps, key_steps), dtype=bool)
    if layer.causal:
        allowed &= np.arange(key_steps)[None, :] <= np.arange(query_steps)[:, None]
    return allowed


def multi_head_attention(layer, params: Params, inputs, training, context) -> LayerOutput:
    """inputs [query], [query, value] or [query, value, key], each (N, T, features)::

        q, k, v = query @ Wq + bq, key @ Wk + bk, value @ Wv + bv, split into heads on the last axis
        weights = softmax(q_h @ k_h.T / sqrt(key_dim)) over allowed keys  (N, heads, Tq, Tk)
        y = concat_h(dropout(weights) @ v_h) @ Wo + bo

    Dropout (training only) keeps weight (h, i, j) of sample n where the neutral stream keeps
    element (h * Tq + i) * Tk + j of position n, and scales it by 1 / (1 - dropout).
    With a mask on the key (the last input), masked keys are not allowed either; a query
    allowed no key at all gets zero weights (not the NaN of a softmax over nothing).
    """
    query = inputs[0]
    value = inputs[1] if len(inputs) > 1 else query
    key = inputs[2] if len(inputs) > 2 else value
    heads = layer.num_heads

    def project(x: np.ndarray, name: str, size: int) -> np.ndarray:
        y = x @ params[f"{name}_kernel"]
        if layer.use_bias:
            y = y + params[f"{name}_bias"]
        return y.reshape(x.shape[0], x.shape[1], heads, size).transpose(0, 2, 1, 3)  # (N, heads, T, size)

    q = project(query, "query", layer.key_dim)
    k = project(key, "key", layer.key_dim)
    v = project(value, "value", layer.value_size)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(layer.key_dim)
    allowed = attention_allowed(layer, query.shape[1], key.shape[1])
    key_mask = context.masks[len(inputs) - 1] if context.masks else None
    if key_mask is None:
        weights = activation("softmax", np.where(allowed, scores, -np.inf))
    else:
        allowed = allowed & key_mask[:, None, None, :]  # (N, 1, Tq, Tk): masked keys are never attended to
        sees = allowed.any(axis=-1, keepdims=True)  # a query that may attend to no key gets zero weights
        weights = activation("softmax", np.where(sees, np.where(allowed, scores, -np.inf), 0.0))
        weights = np.where(sees, weights, 0.0)
    if training and layer.dropout > 0.0:
        keep = dropout_keep_mask(context.seed, context.layer_index, context.step, weights.shape, layer.dropout)
        weights = np.where(keep, weights / (1.0 - layer.dropout), 0.0)
    attended = (weights @ v).transpose(0, 2, 1, 3).reshape(query.shape[0], query.shape[1], -1)
    output = attended @ params["output_kernel"]
    if layer.use_bias:
        output = output + params["output_bias"]
    return LayerOutput(output)


def sinusoidal_positions(length: int, features: int) -> np.ndarray:
    """table[t, c] = sin(t / 10000 ** (2 * (c // 2) / features)) for even c, cos(...) for odd c."""
    table = np.zeros((length, features))
    for c in range(features):
        frequency = SINUSOIDAL_WAVELENGTH ** (-(2 * (c // 2)) / features)
        wave = np.sin if c % 2 == 0 else np.cos
        table[:, c] = wave(np.arange(length) * frequency)
    return table


def position_embedding(layer, params: Params, inputs, training, context) -> LayerOutput:
    """y[n, t] = x[n, t] + table[t] (the learned ``embeddings`` or the sinusoidal table)."""
    (x,) = inputs
    steps, features = x.shape[1], x.shape[2]
    if layer.kind == "learned":
        table = params["embeddings"][:steps]
    else:
        table = sinusoidal_positions(steps, features)
    return LayerOutput(x + table)
