"""The spec's optimizers as ``torch.optim`` objects, and their state in canonical slot names.

``archspec/reference/optimizers.py`` defines the update rules as torch.optim's own
(default flags), so torch.optim is used as is; the multi-tensor (``foreach``)
implementations compute the same formulas, which the tests hold to the reference.
"""

from __future__ import annotations

import torch

from archspec.definitions.optimizers import options_from_spec, state_slots
from archspec.spec.training import Optimizer

TORCH_SLOTS = {
    "momentum": "momentum_buffer",
    "m": "exp_avg",
    "v": "exp_avg_sq",
    "square_avg": "square_avg",
    "acc_delta": "acc_delta",
}
"""Canonical slot name -> the key of torch.optim's per-parameter state."""


def slots(optimizer: Optimizer) -> tuple[str, ...]:
    """The canonical state slots the optimizer keeps per parameter."""
    return state_slots(optimizer.type, options_from_spec(optimizer))


def build_optimizer(
    optimizer: Optimizer, parameters: list[torch.Tensor], foreach: bool = True
) -> torch.optim.Optimizer:
    """A torch.optim optimizer for the spec's ``optimizer``; the engine sets ``lr`` before every step."""
    o = optimizer
    if o.type == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=o.learning_rate,
            momentum=o.momentum,
            nesterov=o.nesterov,
            weight_decay=o.weight_decay,
            foreach=foreach,
        )
    if o.type in ("adam", "adamw"):
        cls = torch.optim.Adam if o.type == "adam" else torch.optim.AdamW
        return cls(
            parameters,
            lr=o.learning_rate,
            betas=(o.beta_1, o.beta_2),
            eps=o.epsilon,
            weight_decay=o.weight_decay,
            foreach=foreach,
        )
    if o.type == "rmsprop":
        return torch.optim.RMSprop(
            parameters, lr=o.learning_rate, alpha=o.rho, eps=o.epsilon, momentum=o.momentum, foreach=foreach
        )
    if o.type == "adadelta":
        return torch.optim.Adadelta(parameters, lr=o.learning_rate, rho=o.rho, eps=o.epsilon, foreach=foreach)
    raise ValueError(
        f"the torch backend expected an optimizer among sgd, adam, adamw, rmsprop, adadelta, received {o.type!r}"
    )


def set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate


def read_slot(optimizer: torch.optim.Optimizer, parameter: torch.Tensor, slot: str) -> torch.Tensor:
    """One slot of one parameter's state (zeros before the first step, as the reference starts)."""
    value = optimizer.state.get(parameter, {}).get(TORCH_SLOTS[slot])
    return torch.zeros_like(parameter) if value is None else value


def write_state(
    optimizer: torch.optim.Optimizer, parameter: torch.Tensor, values: dict[str, torch.Tensor], steps_taken: int
) -> None:
    """Replace one parameter's state: canonical ``slot -> tensor`` (torch layout) after ``steps_taken`` updates."""
    state = {
        TORCH_SLOTS[slot]: value.to(dtype=parameter.dtype, device=parameter.device).clone()
        for slot, value in values.items()
    }
    if not isinstance(optimizer, torch.optim.SGD):
        # torch.optim keeps the update count as a float32 scalar tensor (it reads it with .item()).
        state["step"] = torch.tensor(float(steps_taken), dtype=torch.float32)
    optimizer.state[parameter] = state
