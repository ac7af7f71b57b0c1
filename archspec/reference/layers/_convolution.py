"""Reference convolution and pooling, one definition for 1-D (sequences: batch, steps,
channels) and 2-D (images: batch, height, width, channels): the spatial axes are those
between the batch and the channels."""

from __future__ import annotations

import itertools
import math

import numpy as np

from archspec.reference.layers._base import LayerOutput, Params, activated


def padding_amounts(size: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """(before, after) padding of one spatial axis.

    ``same`` pads like TensorFlow: total = max((ceil(size/stride) - 1) * stride
    + (kernel - 1) * dilation + 1 - size, 0); before = total // 2; the odd one
    goes after (bottom/right). ``causal`` pads (kernel - 1) * dilation before and
    nothing after. ``valid`` does not pad.
    """
    if padding == "valid":
        return 0, 0
    span = (kernel - 1) * dilation + 1
    if padding == "causal":
        return span - 1, 0
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _pad_spatial(x: np.ndarray, kernel, strides, dilation, padding, value: float) -> np.ndarray:
    pads = [padding_amounts(x.shape[1 + a], kernel[a], strides[a], dilation[a], padding) for a in range(len(kernel))]
    return np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=value)


def _windows(padded: np.ndarray, kernel, strides, dilation):
    """Yields (offset, patch) for every kernel offset, where (in 2-D)
    patch[n, i, j, c] = padded[n, i * sh + di * dh, j * sw + dj * dw, c]
    for every output position (i, j): the input each output reads at offset (di, dj)."""
    counts = [(padded.shape[1 + a] - (kernel[a] - 1) * dilation[a] - 1) // strides[a] + 1 for a in range(len(kernel))]
    for offset in itertools.product(*(range(k) for k in kernel)):
        index = tuple(
            slice(o * d, o * d + (count - 1) * s + 1, s) for o, d, s, count in zip(offset, dilation, strides, counts)
        )
        yield offset, padded[(slice(None), *index)]


def convolution(layer, params: Params, inputs, training, context) -> LayerOutput:
    """Cross-correlation (no kernel flip) over channels-last inputs (conv1d, conv2d); in 2-D:

        y[n, i, j, o] = bias[o] + sum_{di, dj, c} xpad[n, i*sh + di*dh, j*sw + dj*dw, c] * kernel[di, dj, c, o]

    with xpad the input zero-padded by :func:`padding_amounts` (1-D: drop j, dj, sw, dw).
    """
    (x,) = inputs
    kernel = params["kernel"]
    size, strides, dilation = layer.kernel_sizes, layer.stride_sizes, layer.dilation_sizes
    padded = _pad_spatial(x, size, strides, dilation, layer.padding, 0.0)
    pre: np.ndarray = np.zeros(())  # a float64 zero that broadcasts like the patches
    for offset, patch in _windows(padded, size, strides, dilation):
        pre = pre + patch @ kernel[offset]
    if layer.use_bias:
        pre = pre + params["bias"]
    return activated(layer.activation, pre)


def maxpool(layer, params, inputs, training, context) -> LayerOutput:
    """Max over each window; ``same`` pads with -inf, so a padded position never wins."""
    (x,) = inputs
    size, strides, ones = layer.pool_sizes, layer.stride_sizes, (1,) * layer.rank
    padded = _pad_spatial(x, size, strides, ones, layer.padding, -np.inf)
    output: np.ndarray = np.full((), -np.inf)
    for _, patch in _windows(padded, size, strides, ones):
        output = np.maximum(output, patch)
    return LayerOutput(output)


def avgpool(layer, params, inputs, training, context) -> LayerOutput:
    """Mean over the real (unpadded) positions of each window."""
    (x,) = inputs
    size, strides, ones = layer.pool_sizes, layer.stride_sizes, (1,) * layer.rank
    padded = _pad_spatial(x, size, strides, ones, layer.padding, 0.0)
    real = _pad_spatial(np.ones_like(x[:1, ..., :1]), size, strides, ones, layer.padding, 0.0)
    total: np.ndarray = np.zeros(())
    count: np.ndarray = np.zeros(())
    windows = zip(_windows(padded, size, strides, ones), _windows(real, size, strides, ones))
    for (_, patch), (_, real_patch) in windows:
        total = total + patch
        count = count + real_patch
    return LayerOutput(total / count)


def global_avgpool(layer, params, inputs, training, context) -> LayerOutput:
    """Mean over every spatial axis (steps; or height and width). With a mask (steps), the
    mean of the valid steps: sum_t mask[t] * x[t] / sum_t mask[t], 0 without any valid step."""
    (x,) = inputs
    mask = context.mask
    if mask is None:
        return LayerOutput(x.mean(axis=tuple(range(1, x.ndim - 1))))
    total = np.where(mask[..., None], x, 0.0).sum(axis=1)
    count = mask.sum(axis=1)[:, None]
    return LayerOutput(np.where(count > 0, total / np.maximum(count, 1), 0.0))


def global_maxpool(layer, params, inputs, training, context) -> LayerOutput:
    """Max over every spatial axis (steps; or height and width). With a mask (steps), the max
    of the valid steps, 0 without any valid step."""
    (x,) = inputs
    mask = context.mask
    if mask is None:
        return LayerOutput(x.max(axis=tuple(range(1, x.ndim - 1))))
    largest = np.where(mask[..., None], x, -np.inf).max(axis=1)
    return LayerOutput(np.where(mask.any(axis=1)[:, None], largest, 0.0))


def zero_padding(layer, params, inputs, training, context) -> LayerOutput:
    """Zeros before and after each spatial axis: ``layer.amounts`` (before, after) per axis."""
    (x,) = inputs
    return LayerOutput(np.pad(x, [(0, 0), *layer.amounts, (0, 0)]))
