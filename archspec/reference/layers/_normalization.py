"""Reference normalisation layers: batch_norm (with its moving statistics) and layer_norm."""

from __future__ import annotations

import numpy as np

from archspec.reference.layers._base import LayerOutput, Params


def _scale_and_shift(layer, params: Params, normalised: np.ndarray) -> np.ndarray:
    if layer.scale:
        normalised = normalised * params["gamma"]
    if layer.center:
        normalised = normalised + params["beta"]
    return normalised


def batch_norm(layer, params: Params, inputs, training, context) -> LayerOutput:
    """y = gamma * (x - mean) / sqrt(var + epsilon) + beta, per channel (last axis).

    Training: mean and biased variance (divided by the count) of the batch over all
    axes but the last, and new moving statistics
    ``moving = momentum * moving + (1 - momentum) * batch_statistic``.
    Inference: the moving statistics, unchanged.
    """
    (x,) = inputs
    if not training:
        mean, variance = params["moving_mean"], params["moving_variance"]
        return LayerOutput(_scale_and_shift(layer, params, (x - mean) / np.sqrt(variance + layer.epsilon)))
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    variance = ((x - mean) ** 2).mean(axis=axes)
    m = layer.momentum
    state = {
        "moving_mean": m * params["moving_mean"] + (1.0 - m) * mean,
        "moving_variance": m * params["moving_variance"] + (1.0 - m) * variance,
    }
    output = _scale_and_shift(layer, params, (x - mean) / np.sqrt(variance + layer.epsilon))
    return LayerOutput(output, state=state)


def layer_norm(layer, params: Params, inputs, training, context) -> LayerOutput:
    """y = gamma * (x - mean) / sqrt(var + epsilon) + beta with the mean and biased
    variance of each sample's last axis."""
    (x,) = inputs
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return LayerOutput(_scale_and_shift(layer, params, (x - mean) / np.sqrt(variance + layer.epsilon)))
