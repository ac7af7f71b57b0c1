"""archspec's optimizers in ``jax.numpy``, to the formulas of ``archspec/reference/optimizers.py``.

optax's built-ins define some of these differently (its Adam adds epsilon to sqrt(v_hat),
the bias-corrected second moment; its RMSprop adds it inside the square root; its
Adadelta and its SGD's Nesterov differ in where the learning rate enters), so every rule
is written here, line for line after the reference. The rules are pure functions of arrays,
for the engine's jitted step. The per-step scalars (the learning rate, Adam's bias
corrections, AdamW's decay factor) are computed on the host in float64, as torch.optim
computes them in Python floats, and enter the step as one traced array of the model's
dtype: a new step or learning rate never retraces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from archspec.definitions.optimizers import options_from_spec, resolve_options, state_slots
from archspec.errors import lookup
from archspec.spec.training import Optimizer as OptimizerSpec

Slots = dict[str, jax.Array]

# The host scalars of one step: (settings, lr, count) -> the values the rule reads, by name.
Scalars = Callable[..., dict[str, float]]


def _rate(settings: dict, lr: float, count: int) -> dict[str, float]:
    return {"lr": lr}


def _adam_scalars(settings: dict, lr: float, count: int) -> dict[str, float]:
    # torch.optim.Adam: step_size = lr / (1 - beta_1**t), sqrt(1 - beta_2**t), in Python floats.
    return {
        "step_size": lr / (1.0 - settings["beta_1"] ** count),
        "correction_2": math.sqrt(1.0 - settings["beta_2"] ** count),
    }


def _adamw_scalars(settings: dict, lr: float, count: int) -> dict[str, float]:
    return {**_adam_scalars(settings, lr, count), "decay": 1.0 - lr * settings["weight_decay"]}


def sgd(param, grad, slots, scalars, *, momentum, nesterov, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    if momentum == 0:
        return param - scalars["lr"] * g, {}
    buf = momentum * slots["momentum"] + g
    direction = g + momentum * buf if nesterov else buf
    return param - scalars["lr"] * direction, {"momentum": buf}


def adam(param, grad, slots, scalars, *, beta_1, beta_2, epsilon, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    return _adam_step(param, g, slots, scalars, beta_1, beta_2, epsilon)


def adamw(param, grad, slots, scalars, *, beta_1, beta_2, epsilon, weight_decay):
    return _adam_step(param * scalars["decay"], grad, slots, scalars, beta_1, beta_2, epsilon)


def _adam_step(param, g, slots, scalars, beta_1, beta_2, epsilon):
    m = beta_1 * slots["m"] + (1 - beta_1) * g
    v = beta_2 * slots["v"] + (1 - beta_2) * g * g
    denominator = jnp.sqrt(v) / scalars["correction_2"] + epsilon
    return param - scalars["step_size"] * m / denominator, {"m": m, "v": v}


def rmsprop(param, grad, slots, scalars, *, rho, epsilon, momentum):
    square_avg = rho * slots["square_avg"] + (1 - rho) * grad * grad
    update = grad / (jnp.sqrt(square_avg) + epsilon)
    if momentum == 0:
        return param - scalars["lr"] * update, {"square_avg": square_avg}
    buf = momentum * slots["momentum"] + update
    return param - scalars["lr"] * buf, {"square_avg": square_avg, "momentum": buf}


def adadelta(param, grad, slots, scalars, *, rho, epsilon):
    square_avg = rho * slots["square_avg"] + (1 - rho) * grad * grad
    delta = jnp.sqrt(slots["acc_delta"] + epsilon) / jnp.sqrt(square_avg + epsilon) * grad
    acc_delta = rho * slots["acc_delta"] + (1 - rho) * delta * delta
    return param - scalars["lr"] * delta, {"square_avg": square_avg, "acc_delta": acc_delta}


# An update rule: (param, grad, slots, scalars, **settings) -> (new param, new slots).
Update = Callable[..., tuple[jax.Array, Slots]]

UPDATES: dict[str, tuple[Update, Scalars]] = {
    "sgd": (sgd, _rate),
    "adam": (adam, _adam_scalars),
    "adamw": (adamw, _adamw_scalars),
    "rmsprop": (rmsprop, _rate),
    "adadelta": (adadelta, _rate),
}


class Optimizer:
    """The spec's optimizer as pure functions: ``scalars`` on the host, ``apply`` inside the step.

    The state is a list (one entry per trainable array, in the engine's order) of dicts
    ``slot name -> array`` shaped like the array, zeros at the start as in the reference.
    """

    def __init__(self, spec: OptimizerSpec, dtype: str):
        options = options_from_spec(spec)
        self.update, self._scalars = lookup(UPDATES, spec.type, "optimizer", owner="the jax backend")
        self.settings = {k: v for k, v in resolve_options(spec.type, options).items() if k != "lr"}
        self.slot_names = state_slots(spec.type, options)
        self.names = tuple(self._scalars(self.settings, 1.0, 1))
        self.dtype = np.dtype(dtype)
        self.key = (spec.type, tuple(sorted(self.settings.items())), self.dtype.name)

    # Equal by value (type, settings, dtype): engines of equal optimizers share their jitted steps.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Optimizer) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def zeros(self, params: Sequence[jax.Array]) -> list[Slots]:
        """The state before the first step: zeros like every array."""
        return [{name: jnp.zeros_like(param) for name in self.slot_names} for param in params]

    def scalars(self, learning_rate: float, count: int) -> np.ndarray:
        """This step's scalars (``count``: 1-based, including this update) as one array of the model's dtype."""
        values = self._scalars(self.settings, float(learning_rate), int(count))
        return np.array([values[name] for name in self.names], dtype=self.dtype)

    def apply(
        self, params: Sequence[jax.Array], grads: Sequence[jax.Array], state: Sequence[Slots], scalars: jax.Array
    ) -> tuple[list[jax.Array], list[Slots]]:
        """One update of every array (traced: call it inside a jitted function)."""
        named = {name: scalars[index] for index, name in enumerate(self.names)}
        new_params, new_state = [], []
        for param, grad, slots in zip(params, grads, state):
            value, new_slots = self.update(param, grad, slots, named, **self.settings)
            new_params.append(value)
            new_state.append(new_slots)
        return new_params, new_state
