"""Reference optimizers: the update rules both backends reproduce, in numpy.

The canonical definition is ``torch.optim`` with its default flags (amsgrad=False,
maximize=False, dampening=0, centered=False). Optimizer state is a dict
``{parameter name: {slot name: array}}``; backends save and restore it under the
slot names returned by :func:`state_slots`:

=========  =====================================================================
sgd        ``momentum`` (only when momentum != 0): the momentum buffer
adam(w)    ``m``: first moment, ``v``: second moment (both without bias correction)
rmsprop    ``square_avg``: running mean of g**2; ``momentum`` (only when momentum != 0)
adadelta   ``square_avg``: running mean of g**2; ``acc_delta``: running mean of delta**2
=========  =====================================================================

Every slot starts at zeros. ``step`` is the 1-based count of updates including the
one being taken; ``lr`` is this step's learning rate (already scheduled).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True)
class _Optimizer:
    update: Callable[..., tuple[np.ndarray, Slots]]
    defaults: dict[str, float | bool | None]  # None marks a required option
    slots: Callable[[Mapping], tuple[str, ...]]


_OPTIMIZERS = {
    "sgd": _Optimizer(
        sgd,
        {"lr": None, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
        lambda o: ("momentum",) if o["momentum"] != 0 else (),
    ),
    "adam": _Optimizer(
        adam,
        {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0},
        lambda o: ("m", "v"),
    ),
    "adamw": _Optimizer(
        adamw,
        {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "weight_decay": 0.01},
        lambda o: ("m", "v"),
    ),
    "rmsprop": _Optimizer(
        rmsprop,
        {"lr": 1e-2, "rho": 0.99, "epsilon": 1e-8, "momentum": 0.0},
        lambda o: ("square_avg", "momentum") if o["momentum"] != 0 else ("square_avg",),
    ),
    "adadelta": _Optimizer(
        adadelta,
        {"lr": 1.0, "rho": 0.9, "epsilon": 1e-6},
        lambda o: ("square_avg", "acc_delta"),
    ),
}

OPTIMIZER_NAMES = tuple(_OPTIMIZERS)


def resolve_options(name: str, options: Mapping) -> dict:
    """Return ``options`` completed with the defaults of optimizer ``name``, checked.

    The result always holds ``lr`` (the base learning rate); SGD has no default for it.
    """
    resolved = _completed(name, options)
    if resolved["lr"] is None:
        raise UsageError(f"optimizer {name!r} needs the option 'lr'. Received: {dict(options)}")
    return resolved


def state_slots(name: str, options: Mapping) -> tuple[str, ...]:
    """The canonical slot names that optimizer ``name`` keeps per parameter."""
    return _lookup(name).slots(_completed(name, options))


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
    optimizer = _lookup(name)
    settings = _completed(name, options)
    del settings["lr"]
    if step < 1:
        raise UsageError(f"expected step >= 1 (the count of updates including this one). Received: step={step}")
    if set(grads) != set(params) or set(state) != set(params):
        raise UsageError(
            f"expected gradients and state for exactly the parameters {sorted(params)}. "
            f"Received gradients for {sorted(grads)} and state for {sorted(state)}"
        )
    slots = optimizer.slots(settings)
    new_params, new_state = {}, {}
    for key, param in params.items():
        if set(state[key]) != set(slots):
            raise UsageError(
                f"optimizer {name!r} expected state slots {list(slots)} for {key!r}. Received: {sorted(state[key])}"
            )
        new_params[key], new_state[key] = optimizer.update(
            np.asarray(param, dtype=np.float64),
            np.asarray(grads[key], dtype=np.float64),
            state[key],
            lr=lr,
            step=step,
            **settings,
        )
    return new_params, new_state


def _lookup(name: str) -> _Optimizer:
    if name not in _OPTIMIZERS:
        raise UsageError(f"expected an optimizer among {list(OPTIMIZER_NAMES)}. Received: {name!r}")
    return _OPTIMIZERS[name]


def _completed(name: str, options: Mapping) -> dict:
    defaults = _lookup(name).defaults
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise UsageError(f"optimizer {name!r} expected options among {sorted(defaults)}. Received unknown: {unknown}")
    resolved = {**defaults, **options}
    for key, value in resolved.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise UsageError(f"optimizer {name!r} expected {key} >= 0. Received: {key}={value}")
    for key in ("beta_1", "beta_2"):
        if key in resolved and not resolved[key] < 1:
            raise UsageError(f"optimizer {name!r} expected {key} < 1. Received: {key}={resolved[key]}")
    if "rho" in resolved and not resolved["rho"] <= 1:
        raise UsageError(f"optimizer {name!r} expected rho <= 1. Received: rho={resolved['rho']}")
    if resolved.get("nesterov") and resolved["momentum"] == 0:
        raise UsageError(f"optimizer {name!r}: nesterov=True needs momentum > 0. Received: momentum=0")
    return resolved


def options_from_spec(optimizer) -> dict:
    """A spec's optimizer (``archspec.spec.training``) as options of this module (``lr`` = the base rate)."""
    return {"lr": optimizer.learning_rate, **optimizer.model_dump(exclude={"type", "learning_rate"})}
