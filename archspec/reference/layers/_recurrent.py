"""Reference recurrent layers: simple_rnn, lstm and gru read step by step (masked steps
skipped), and the bidirectional wrapper with its merge modes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from archspec.reference.activations import activation, sigmoid
from archspec.reference.layers._base import LayerOutput, Params


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
