"""Optimizers by name: their options with defaults and checks, and the state slots they keep.

The backends, the checkpoint and memory checks, and the reference's update rules
(``archspec.reference.optimizers``) all read these. Optimizer state is saved per
parameter under the slot names of :func:`state_slots`:

=========  =====================================================================
sgd        ``momentum`` (only when momentum != 0): the momentum buffer
adam(w)    ``m``: first moment, ``v``: second moment (both without bias correction)
rmsprop    ``square_avg``: running mean of g**2; ``momentum`` (only when momentum != 0)
adadelta   ``square_avg``: running mean of g**2; ``acc_delta``: running mean of delta**2
=========  =====================================================================

Every slot starts at zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from archspec.errors import UsageError

# name -> {option: default}; a default of None marks a required option
OPTIMIZER_DEFAULTS: dict[str, dict[str, float | bool | None]] = {
    "sgd": {"lr": None, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adam": {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0},
    "adamw": {"lr": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "weight_decay": 0.01},
    "rmsprop": {"lr": 1e-2, "rho": 0.99, "epsilon": 1e-8, "momentum": 0.0},
    "adadelta": {"lr": 1.0, "rho": 0.9, "epsilon": 1e-6},
}

_SLOTS: dict[str, Callable[[Mapping], tuple[str, ...]]] = {
    "sgd": lambda o: ("momentum",) if o["momentum"] != 0 else (),
    "adam": lambda o: ("m", "v"),
    "adamw": lambda o: ("m", "v"),
    "rmsprop": lambda o: ("square_avg", "momentum") if o["momentum"] != 0 else ("square_avg",),
    "adadelta": lambda o: ("square_avg", "acc_delta"),
}

OPTIMIZER_NAMES = tuple(OPTIMIZER_DEFAULTS)


def completed_options(name: str, options: Mapping) -> dict:
    """``options`` completed with the defaults of optimizer ``name`` and checked; ``lr`` may be None."""
    if name not in OPTIMIZER_DEFAULTS:
        raise UsageError(f"expected an optimizer among {list(OPTIMIZER_NAMES)}, received {name!r}")
    defaults = OPTIMIZER_DEFAULTS[name]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise UsageError(f"optimizer {name!r} expected options among {sorted(defaults)}, received unknown: {unknown}")
    resolved = {**defaults, **options}
    for key, value in resolved.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise UsageError(f"optimizer {name!r} expected {key} >= 0, received {key}={value}")
    for key in ("beta_1", "beta_2"):
        if key in resolved and not resolved[key] < 1:
            raise UsageError(f"optimizer {name!r} expected {key} < 1, received {key}={resolved[key]}")
    if "rho" in resolved and not resolved["rho"] <= 1:
        raise UsageError(f"optimizer {name!r} expected rho <= 1, received rho={resolved['rho']}")
    if resolved.get("nesterov") and resolved["momentum"] == 0:
        raise UsageError(f"optimizer {name!r} expected momentum > 0 with nesterov=True, received momentum=0")
    return resolved


def resolve_options(name: str, options: Mapping) -> dict:
    """Return ``options`` completed with the defaults of optimizer ``name``, checked.

    The result always holds ``lr`` (the base learning rate); SGD has no default for it.
    """
    resolved = completed_options(name, options)
    if resolved["lr"] is None:
        raise UsageError(f"optimizer {name!r} expected the option 'lr' (it has no default), received {dict(options)}")
    return resolved


def state_slots(name: str, options: Mapping) -> tuple[str, ...]:
    """The canonical slot names that optimizer ``name`` keeps per parameter."""
    completed = completed_options(name, options)  # first: it refuses an unknown name
    return _SLOTS[name](completed)


def options_from_spec(optimizer) -> dict:
    """A spec's optimizer (``archspec.spec.training``) as options of this module (``lr`` = the base rate)."""
    return {"lr": optimizer.learning_rate, **optimizer.model_dump(exclude={"type", "learning_rate"})}
