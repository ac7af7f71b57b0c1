"""Reference layers in float64 numpy: the executable definition of every layer type.

Written to be read, not to be fast. Each function takes the layer's spec, its
parameters by local name (``kernel``, ``forward.bias``) in the canonical layout,
its input arrays (batch first, images channels-last), the mode and a
:class:`LayerContext`, and returns a :class:`LayerOutput`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from archspec.definitions.constants import SINUSOIDAL_WAVELENGTH
from archspec.errors import DataError, UsageError
from archspec.random import dropout_keep_mask
from archspec.reference.activations import activation, sigmoid

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
# One definition for 1-D (sequences: batch, steps, channels) and 2-D (images: batch,
# height, width, channels): the spatial axes are those between the batch and the channels.


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
    return _activated(layer.activation, pre)


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


# --- attention and positions -------------------------------------------------------


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
    "conv1d": convolution,
    "conv2d": convolution,
    "maxpool1d": maxpool,
    "avgpool1d": avgpool,
    "maxpool2d": maxpool,
    "avgpool2d": avgpool,
    "global_avgpool1d": global_avgpool,
    "global_maxpool1d": global_maxpool,
    "global_avgpool2d": global_avgpool,
    "global_maxpool2d": global_maxpool,
    "batch_norm": batch_norm,
    "layer_norm": layer_norm,
    "embedding": embedding,
    "masking": masking,
    "simple_rnn": recurrent,
    "lstm": recurrent,
    "gru": recurrent,
    "bidirectional": bidirectional,
    "multi_head_attention": multi_head_attention,
    "position_embedding": position_embedding,
    "add": add,
    "concatenate": concatenate,
    "multiply": multiply,
}


def reference_layer(layer_type: str) -> LayerFunction:
    """The reference function of a layer type; the error lists the known types."""
    if layer_type not in REFERENCE_LAYERS:
        raise UsageError(f"expected a layer type among {', '.join(REFERENCE_LAYERS)}, received {layer_type!r}")
    return REFERENCE_LAYERS[layer_type]
