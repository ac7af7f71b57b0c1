"""Reference layers in float64 numpy: the executable definition of every layer type.

Written to be read, not to be fast. Each function takes the layer's spec, its
parameters by local name (``kernel``, ``forward.bias``) in the canonical layout,
its input arrays (batch first, images channels-last), the mode and a
:class:`LayerContext`, and returns a :class:`LayerOutput`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from archspec.errors import DataError, UsageError
from archspec.random import dropout_keep_mask
from archspec.reference.activations import activation, sigmoid
from archspec.spec.common import as_pair

Params = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class LayerContext:
    """Counters of the neutral dropout stream: the spec's training seed, the
    layer's index in the spec (``node.index``) and the 0-based optimizer step;
    and the masks of the layer's inputs (``(batch, steps)`` booleans, True at valid
    steps; None for an input without one), which a ``consume`` layer honours."""

    seed: int = 0
    layer_index: int = 0
    step: int = 0
    masks: tuple[np.ndarray | None, ...] = ()

    @property
    def mask(self) -> np.ndarray | None:
        """The first input's mask (the one a recurrent layer reads), or None."""
        return self.masks[0] if self.masks else None


@dataclass(frozen=True)
class LayerOutput:
    """What a layer computes.

    ``pre_activation`` is set for layers with an ``activation`` applied after their
    own computation (``output = activation(pre_activation)``). ``state`` holds new
    values of non-trainable parameters by local name (batch-norm moving statistics
    in training mode). ``mask`` is the mask a ``create`` layer made (True at valid steps).
    """

    output: np.ndarray
    pre_activation: np.ndarray | None = None
    state: dict[str, np.ndarray] = field(default_factory=dict)
    mask: np.ndarray | None = None


def _activated(name: str, pre: np.ndarray) -> LayerOutput:
    return LayerOutput(activation(name, pre), pre)


def _per_sample_axis(axis: int) -> int:
    """A per-sample axis (no batch axis; negative counts from the end) as a batch-first axis."""
    return axis + 1 if axis >= 0 else axis


# --- core -------------------------------------------------------------------------


def dense(layer, params: Params, inputs, training, context) -> LayerOutput:
    """y = x @ kernel + bias on the last axis, for x of any rank."""
    (x,) = inputs
    pre = x @ params["kernel"]
    if layer.use_bias:
        pre = pre + params["bias"]
    return _activated(layer.activation, pre)


def activation_layer(layer, params, inputs, training, context) -> LayerOutput:
    (x,) = inputs
    return _activated(layer.activation, x)


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


# --- convolution and pooling --------------------------------------------------------


def padding_amounts(size: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """(before, after) padding of one spatial axis.

    ``same`` pads like TensorFlow: total = max((ceil(size/stride) - 1) * stride
    + (kernel - 1) * dilation + 1 - size, 0); before = total // 2; the odd one
    goes after (bottom/right). ``valid`` does not pad.
    """
    if padding == "valid":
        return 0, 0
    span = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _pad_image(x: np.ndarray, kernel, strides, dilation, padding, value: float) -> np.ndarray:
    pads = [padding_amounts(x.shape[1 + a], kernel[a], strides[a], dilation[a], padding) for a in (0, 1)]
    return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)], constant_values=value)


def _windows(padded: np.ndarray, kernel, strides, dilation):
    """Yields ((di, dj), patch) for every kernel offset, where
    patch[n, i, j, c] = padded[n, i * sh + di * dh, j * sw + dj * dw, c]
    for every output position (i, j): the input each output reads at that offset."""
    out_h = (padded.shape[1] - (kernel[0] - 1) * dilation[0] - 1) // strides[0] + 1
    out_w = (padded.shape[2] - (kernel[1] - 1) * dilation[1] - 1) // strides[1] + 1
    for di in range(kernel[0]):
        for dj in range(kernel[1]):
            top, left = di * dilation[0], dj * dilation[1]
            rows = slice(top, top + (out_h - 1) * strides[0] + 1, strides[0])
            cols = slice(left, left + (out_w - 1) * strides[1] + 1, strides[1])
            yield (di, dj), padded[:, rows, cols, :]


def conv2d(layer, params: Params, inputs, training, context) -> LayerOutput:
    """Cross-correlation (no kernel flip) over channels-last images:

        y[n, i, j, o] = bias[o] + sum_{di, dj, c} xpad[n, i*sh + di*dh, j*sw + dj*dw, c] * kernel[di, dj, c, o]

    with xpad the input zero-padded by :func:`padding_amounts`.
    """
    (x,) = inputs
    kernel = params["kernel"]
    size, strides, dilation = as_pair(layer.kernel_size), as_pair(layer.strides), as_pair(layer.dilation_rate)
    padded = _pad_image(x, size, strides, dilation, layer.padding, 0.0)
    pre: np.ndarray = np.zeros(())  # a float64 zero that broadcasts like the patches
    for (di, dj), patch in _windows(padded, size, strides, dilation):
        pre = pre + patch @ kernel[di, dj]
    if layer.use_bias:
        pre = pre + params["bias"]
    return _activated(layer.activation, pre)


def maxpool2d(layer, params, inputs, training, context) -> LayerOutput:
    """Max over each window; ``same`` pads with -inf, so a padded position never wins."""
    (x,) = inputs
    size, strides = as_pair(layer.pool_size), layer.stride_pair
    padded = _pad_image(x, size, strides, (1, 1), layer.padding, -np.inf)
    output: np.ndarray = np.full((), -np.inf)
    for _, patch in _windows(padded, size, strides, (1, 1)):
        output = np.maximum(output, patch)
    return LayerOutput(output)


def avgpool2d(layer, params, inputs, training, context) -> LayerOutput:
    """Mean over the real (unpadded) positions of each window."""
    (x,) = inputs
    size, strides = as_pair(layer.pool_size), layer.stride_pair
    padded = _pad_image(x, size, strides, (1, 1), layer.padding, 0.0)
    real = _pad_image(np.ones_like(x[:1, ..., :1]), size, strides, (1, 1), layer.padding, 0.0)
    total: np.ndarray = np.zeros(())
    count: np.ndarray = np.zeros(())
    windows = zip(_windows(padded, size, strides, (1, 1)), _windows(real, size, strides, (1, 1)))
    for (_, patch), (_, real_patch) in windows:
        total = total + patch
        count = count + real_patch
    return LayerOutput(total / count)


def global_avgpool2d(layer, params, inputs, training, context) -> LayerOutput:
    (x,) = inputs
    return LayerOutput(x.mean(axis=(1, 2)))


# --- normalisation ------------------------------------------------------------------


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


# --- recurrent ----------------------------------------------------------------------


def _blocks(value: np.ndarray, count: int) -> list[np.ndarray]:
    """Splits the last axis into ``count`` equal gate blocks, in canonical order."""
    return np.split(value, count, axis=-1)


def _input_part(layer, params: Params, x_t: np.ndarray) -> np.ndarray:
    """x_t @ kernel + bias (the bias is absent without ``use_bias``)."""
    return x_t @ params["kernel"] + params["bias"] if layer.use_bias else x_t @ params["kernel"]


def _simple_rnn_step(layer, params, x_t, state):
    (h,) = state
    h = activation(layer.activation, _input_part(layer, params, x_t) + h @ params["recurrent_kernel"])
    return h, (h,)


def _lstm_step(layer, params, x_t, state):
    """Gates i, f, g, o:  c' = f * c + i * g,  h' = o * tanh(c')."""
    h, c = state
    i, f, g, o = _blocks(_input_part(layer, params, x_t) + h @ params["recurrent_kernel"], 4)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return h, (h, c)


def _gru_step(layer, params, x_t, state):
    """Blocks z, r, h with the reset gate after the recurrent product:
    z = sigmoid(x Wz + bz + h Uz + rz); r = sigmoid(x Wr + br + h Ur + rr);
    n = tanh(x Wh + bh + r * (h Uh + rh)); h' = z * h + (1 - z) * n."""
    (h,) = state
    x_z, x_r, x_h = _blocks(_input_part(layer, params, x_t), 3)
    recurrent = h @ params["recurrent_kernel"]
    if layer.use_bias:
        recurrent = recurrent + params["recurrent_bias"]
    h_z, h_r, h_h = _blocks(recurrent, 3)
    z = sigmoid(x_z + h_z)
    r = sigmoid(x_r + h_r)
    n = np.tanh(x_h + r * h_h)
    h = z * h + (1.0 - z) * n
    return h, (h,)


_STEPS = {"simple_rnn": (_simple_rnn_step, 1), "lstm": (_lstm_step, 2), "gru": (_gru_step, 1)}


def _run_recurrent(layer, params: Params, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Reads x (N, T, F) from t = 0 to T - 1, starting from zero state.
    Returns every step's output (N, T, units) with ``return_sequences``, else the last.

    Where ``mask[n, t]`` is False the step is skipped: the state stays and the output
    repeats the previous output (zeros before the first valid step)."""
    step, state_count = _STEPS[layer.type]
    state = tuple(np.zeros((x.shape[0], layer.units)) for _ in range(state_count))
    h = np.zeros((x.shape[0], layer.units))
    outputs = []
    for t in range(x.shape[1]):
        h_new, new_state = step(layer, params, x[:, t, :], state)
        if mask is None:
            h, state = h_new, new_state
        else:
            valid = mask[:, t, None]
            h = np.where(valid, h_new, h)
            state = tuple(np.where(valid, new, old) for new, old in zip(new_state, state))
        outputs.append(h)
    if layer.return_sequences:
        return np.stack(outputs, axis=1)
    return outputs[-1]


def recurrent(layer, params: Params, inputs, training, context) -> LayerOutput:
    """simple_rnn, lstm and gru. (simple_rnn's ``activation`` acts inside the recurrence:
    there is no pre-activation tensor.)"""
    (x,) = inputs
    return LayerOutput(_run_recurrent(layer, params, x, context.mask))


def _direction(params: Params, direction: str) -> dict[str, np.ndarray]:
    prefix = f"{direction}."
    return {name[len(prefix) :]: value for name, value in params.items() if name.startswith(prefix)}


MERGES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "concat": lambda forward, backward: np.concatenate([forward, backward], axis=-1),
    "sum": lambda forward, backward: forward + backward,
    "mul": lambda forward, backward: forward * backward,
    "ave": lambda forward, backward: (forward + backward) / 2.0,
}


def bidirectional(layer, params: Params, inputs, training, context) -> LayerOutput:
    """The backward copy reads the sequence reversed (t = T - 1 down to 0). With
    ``return_sequences`` its outputs are reversed back, so both directions line up
    in time; without, its output is its state after reading step 0. A mask is reversed
    with the sequence, so the backward copy skips trailing padding and starts at the
    last valid step."""
    (x,) = inputs
    mask = context.mask
    forward = _run_recurrent(layer.layer, _direction(params, "forward"), x, mask)
    backward_mask = None if mask is None else mask[:, ::-1]
    backward = _run_recurrent(layer.layer, _direction(params, "backward"), x[:, ::-1, :], backward_mask)
    if layer.layer.return_sequences:
        backward = backward[:, ::-1, :]
    return LayerOutput(MERGES[layer.merge_mode](forward, backward))


# --- merges -------------------------------------------------------------------------


def add(layer, params, inputs, training, context) -> LayerOutput:
    return LayerOutput(sum(inputs[1:], inputs[0]))


def multiply(layer, params, inputs, training, context) -> LayerOutput:
    output = inputs[0]
    for x in inputs[1:]:
        output = output * x
    return LayerOutput(output)


def concatenate(layer, params, inputs, training, context) -> LayerOutput:
    return LayerOutput(np.concatenate(inputs, axis=_per_sample_axis(layer.axis)))


# --- masks --------------------------------------------------------------------------


def output_mask(node, masks: list[np.ndarray | None], created: np.ndarray | None) -> np.ndarray | None:
    """The mask of ``node``'s output (``(batch, steps)``, True at valid steps) from its inputs'
    masks and the one its layer made, as ``node.mask_source`` says."""
    source = node.mask_source
    if source is None:
        return None
    if source == "create":
        return created
    if source == "input":
        return masks[0]
    if source == "steps":
        batch = next(m for m in masks if m is not None).shape[0]
        whole = [np.ones((batch, shape[0]), bool) if m is None else m for m, shape in zip(masks, node.input_shapes)]
        return np.concatenate(whole, axis=1)
    return np.logical_and.reduce([m for m in masks if m is not None])


LayerFunction = Callable[[object, Params, list, bool, LayerContext], LayerOutput]

REFERENCE_LAYERS: dict[str, LayerFunction] = {
    "dense": dense,
    "activation": activation_layer,
    "dropout": dropout,
    "flatten": flatten,
    "reshape": reshape,
    "conv2d": conv2d,
    "maxpool2d": maxpool2d,
    "avgpool2d": avgpool2d,
    "global_avgpool2d": global_avgpool2d,
    "batch_norm": batch_norm,
    "layer_norm": layer_norm,
    "embedding": embedding,
    "masking": masking,
    "simple_rnn": recurrent,
    "lstm": recurrent,
    "gru": recurrent,
    "bidirectional": bidirectional,
    "add": add,
    "concatenate": concatenate,
    "multiply": multiply,
}


def reference_layer(layer_type: str) -> LayerFunction:
    """The reference function of a layer type; the error lists the known types."""
    if layer_type not in REFERENCE_LAYERS:
        raise UsageError(f"expected a layer type among {', '.join(REFERENCE_LAYERS)}, received {layer_type!r}")
    return REFERENCE_LAYERS[layer_type]
