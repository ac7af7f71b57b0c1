"""Reference core layers: dense, activation, dropout, flatten, reshape, and the layers that
make masks (embedding, masking)."""

from __future__ import annotations

import numpy as np

from archspec.errors import DataError
from archspec.random import dropout_keep_mask
from archspec.reference.layers._base import LayerOutput, Params, activated


def dense(layer, params: Params, inputs, training, context) -> LayerOutput:
    """y = x @ kernel + bias on the last axis, for x of any rank."""
    (x,) = inputs
    pre = x @ params["kernel"]
    if layer.use_bias:
        pre = pre + params["bias"]
    return activated(layer.activation, pre)


def activation_layer(layer, params, inputs, training, context) -> LayerOutput:
    (x,) = inputs
    return activated(layer.activation, x)


def dropout(layer, params, inputs, training, context) -> LayerOutput:
    """Training: y = x / (1 - rate) where the neutral stream keeps the element, else 0.
    Inference: y = x."""
    (x,) = inputs
    if not training or layer.rate == 0.0:
        return LayerOutput(x)
    keep = dropout_keep_mask(context.seed, context.layer_index, context.step, x.shape, layer.rate)
    return LayerOutput(np.where(keep, x / (1.0 - layer.rate), 0.0))


def flatten(layer, params, inputs, training, context) -> LayerOutput:
    """Row-major over the per-sample axes: for (h, w, c), index = (i * w + j) * c + k."""
    (x,) = inputs
    return LayerOutput(x.reshape(x.shape[0], -1))


def reshape(layer, params, inputs, training, context) -> LayerOutput:
    (x,) = inputs
    return LayerOutput(x.reshape(x.shape[0], *layer.target_shape))


def embedding(layer, params: Params, inputs, training, context) -> LayerOutput:
    """y[n, t] = embeddings[ids[n, t]]; with ``mask_zero`` the mask is ids != 0 (the output
    at a padded step is still row 0)."""
    (ids,) = inputs
    if ids.size and (ids.min() < 0 or ids.max() >= layer.input_dim):
        raise DataError(f"expected embedding ids in [0, {layer.input_dim}), received [{ids.min()}, {ids.max()}]")
    return LayerOutput(params["embeddings"][ids], mask=ids != 0 if layer.mask_zero else None)


def masking(layer, params, inputs, training, context) -> LayerOutput:
    """mask[n, t] = any_f x[n, t, f] != mask_value; y = x at valid steps, 0 at masked ones."""
    (x,) = inputs
    mask = np.any(x != layer.mask_value, axis=-1)
    return LayerOutput(np.where(mask[..., None], x, 0.0), mask=mask)
