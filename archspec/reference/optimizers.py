"""Reference optimizers: the update rules every backend reproduces, in numpy.

The canonical definition is ``torch.optim`` with its default flags (amsgrad=False,
maximize=False, dampening=0, centered=False). Optimizer state is a dict
``{parameter name: {slot name: array}}`` under the slot names, and options are completed
with the defaults, of ``archspec.definitions.optimizers`` (shared with the backends);
the update rules below are the reference's own.

``step`` is the 1-based count of updates including the one being taken; ``lr`` is this
step's learning rate (already scheduled).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from archspec.definitions.optimizers import completed_options, state_slots
from archspec.errors import UsageError

Slots = dict[str, np.ndarray]


def sgd(param, grad, slots, *, lr, step, momentum, nesterov, weight_decay):
    """SGD with optional momentum, Nesterov and coupled L2 (``torch.optim.SGD``).

    g   = grad + weight_decay * param
    buf = momentum * buf + g                 (buf starts at 0, so buf = g on step 1)
    d   = g + momentum * buf  if nesterov  else  buf      (d = g when momentum == 0)
    param = param - lr * d
    """
    g = grad + weight_decay * param
    if momentum == 0:
        return param - lr * g, {}
    buf = momentum * slots["momentum"] + g
    direction = g + momentum * buf if nesterov else buf
    return param - lr * direction, {"momentum": buf}


def adam(param, grad, slots, *, lr, step, beta_1, beta_2, epsilon, weight_decay):
    """Adam with coupled L2 (``torch.optim.Adam``).

    g = grad + weight_decay * param
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    param = param - lr / (1 - beta_1**step) * m / (sqrt(v) / sqrt(1 - beta_2**step) + epsilon)
    """
    g = grad + weight_decay * param
    return _adam_step(param, g, slots, lr, step, beta_1, beta_2, epsilon)


def adamw(param, grad, slots, *, lr, step, beta_1, beta_2, epsilon, weight_decay):
    """Adam with decoupled weight decay (``torch.optim.AdamW``).

    param = param * (1 - lr * weight_decay)
    then the Adam update above with g = grad (no L2 term in the gradient)
    """
    decayed = param * (1 - lr * weight_decay)
    return _adam_step(decayed, grad, slots, lr, step, beta_1, beta_2, epsilon)


def _adam_step(param, g, slots, lr, step, beta_1, beta_2, epsilon):
    m = beta_1 * slots["m"] + (1 - beta_1) * g
    v = beta_2 * slots["v"] + (1 - beta_2) * g * g
    denominator = np.sqrt(v) / np.sqrt(1 - beta_2**step) + epsilon
    new_param = param - lr / (1 - beta_1**step) * m / denominator
    return new_param, {"m": m, "v": v}


def rmsprop(param, grad, slots, *, lr, step, rho, epsilon, momentum):
    """RMSprop, not centered (``torch.optim.RMSprop`` with alpha=rho).

    square_avg = rho * square_avg + (1 - rho) * g**2
    u = g / (sqrt(square_avg) + epsilon)
    buf = momentum * buf + u     and  param = param - lr * buf   if momentum != 0
    param = param - lr * u                                       otherwise
    """
    square_avg = rho * slots["square_avg"] + (1 - rho) * grad * grad
    update = grad / (np.sqrt(square_avg) + epsilon)
    if momentum == 0:
        return param - lr * update, {"square_avg": square_avg}
    buf = momentum * slots["momentum"] + update
    return param - lr * buf, {"square_avg": square_avg, "momentum": buf}


def adadelta(param, grad, slots, *, lr, step, rho, epsilon):
    """Adadelta (``torch.optim.Adadelta``).

    square_avg = rho * square_avg + (1 - rho) * g**2
    delta = sqrt(acc_delta + epsilon) / sqrt(square_avg + epsilon) * g
    acc_delta = rho * acc_delta + (1 - rho) * delta**2
    param = param - lr * delta
    """
    square_avg = rho * slots["square_avg"] + (1 - rho) * grad * grad
    delta = np.sqrt(slots["acc_delta"] + epsilon) / np.sqrt(square_avg + epsilon) * grad
    acc_delta = rho * slots["acc_delta"] + (1 - rho) * delta * delta
    return param - lr * delta, {"square_avg": square_avg, "acc_delta": acc_delta}


# One rule for every name of ``archspec.definitions.optimizers.OPTIMIZER_NAMES`` (a test checks it).
UPDATE_RULES: dict[str, Callable[..., tuple[np.ndarray, Slots]]] = {
    "sgd": sgd,
    "adam": adam,
    "adamw": adamw,
    "rmsprop": rmsprop,
    "adadelta": adadelta,
}


def init_state(name: str, options: Mapping, params: Mapping[str, np.ndarray]) -> dict[str, Slots]:
    """Zero state for every parameter: ``{param name: {slot name: zeros like param}}``."""
    slots = state_slots(name, options)
    return {key: {slot: np.zeros_like(value, dtype=np.float64) for slot in slots} for key, value in params.items()}


def apply(
    name: str,
    options: Mapping,
    params: Mapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    state: Mapping[str, Slots],
    step: int,
    lr: float,
) -> tuple[dict[str, np.ndarray], dict[str, Slots]]:
    """One update of every parameter; returns new ``(params, state)``, inputs untouched.

    ``step`` counts updates from 1 including this one; ``lr`` replaces ``options['lr']``.
    """
    settings = completed_options(name, options)
    del settings["lr"]
    update = UPDATE_RULES[name]
    if step < 1:
        raise UsageError(f"expected step >= 1 (the count of updates including this one), received step={step}")
    if set(grads) != set(params) or set(state) != set(params):
        raise UsageError(
            f"expected gradients and state for exactly the parameters {sorted(params)}, "
            f"received gradients for {sorted(grads)} and state for {sorted(state)}"
        )
    slots = state_slots(name, options)
    new_params, new_state = {}, {}
    for key, param in params.items():
        if set(state[key]) != set(slots):
            raise UsageError(
                f"optimizer {name!r} expected state slots {list(slots)} for {key!r}, received {sorted(state[key])}"
            )
        new_params[key], new_state[key] = update(
            np.asarray(param, dtype=np.float64),
            np.asarray(grads[key], dtype=np.float64),
            state[key],
            lr=lr,
            step=step,
            **settings,
        )
    return new_params, new_state


def global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """sqrt(sum over every parameter's gradient of sum g**2): the gradient's global L2 norm."""
    return float(np.sqrt(sum(float(np.sum(np.asarray(g, dtype=np.float64) ** 2)) for g in grads.values())))


def clip_gradients(
    grads: Mapping[str, np.ndarray], *, clip_norm: float | None = None, clip_value: float | None = None
) -> tuple[dict[str, np.ndarray], float]:
    """The step's gradient clipped as the spec says, and its global norm before clipping.

    clip_value v:  g = min(max(g, -v), v)   element-wise                (first)
    clip_norm c:   g = g * c / max(||g||, c)   ||g||: global_norm, after clip_value
                   (``tf.clip_by_global_norm`` and Keras' ``global_clipnorm``;
                   ``torch.nn.utils.clip_grad_norm_`` divides by ||g|| + 1e-6 instead)
    """
    before = global_norm(grads)
    clipped = {name: np.asarray(g, dtype=np.float64) for name, g in grads.items()}
    if clip_value is not None:
        clipped = {name: np.clip(g, -clip_value, clip_value) for name, g in clipped.items()}
    if clip_norm is not None:
        factor = clip_norm / max(global_norm(clipped), clip_norm)
        clipped = {name: g * factor for name, g in clipped.items()}
    return clipped, before
