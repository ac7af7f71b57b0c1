"""Learning-rate schedules: the learning rate of each optimizer step.

A shared definition rather than reference code: the neutral trainer evaluates it once per
step and hands the number to the backend, so no backend implements a schedule and a numpy
copy in the reference would only witness itself. ``tests/definitions/test_schedules.py``
holds it to hand-computed values and to Keras' own schedules instead.

A schedule is a dict tagged by ``type`` (as the spec dumps it), e.g.
``{"type": "cosine", "decay_steps": 1000}``; ``None`` means constant. ``step`` is
the 0-based index of the optimizer step about to be taken.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from archspec.errors import UsageError


def constant(base_lr: float, step: int) -> float:
    """lr = base_lr"""
    return base_lr


def step_decay(base_lr: float, step: int, *, step_size: int, gamma: float) -> float:
    """lr = base_lr * gamma ** floor(step / step_size)   (``torch.optim.lr_scheduler.StepLR``)"""
    return base_lr * gamma ** (step // step_size)


def exponential(base_lr: float, step: int, *, decay_rate: float, decay_steps: int, staircase: bool) -> float:
    """lr = base_lr * decay_rate ** p,  p = step / decay_steps, floored when staircase

    (``keras.optimizers.schedules.ExponentialDecay``).
    """
    progress = step / decay_steps
    if staircase:
        progress = math.floor(progress)
    return base_lr * decay_rate**progress


def cosine(base_lr: float, step: int, *, decay_steps: int, alpha: float, warmup_steps: int) -> float:
    """Cosine decay after an optional linear warmup from 0 (``keras.optimizers.schedules.CosineDecay``
    with initial_learning_rate=0 and warmup_target=base_lr when warmup_steps > 0).

        step < warmup_steps:  lr = base_lr * step / warmup_steps
        otherwise:            t = min(step - warmup_steps, decay_steps)
                              lr = base_lr * ((1 - alpha) * 0.5 * (1 + cos(pi * t / decay_steps)) + alpha)
    """
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = min(step - warmup_steps, decay_steps) / decay_steps
    return base_lr * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * progress)) + alpha)


def piecewise(base_lr: float, step: int, *, boundaries: list[int], values: list[float]) -> float:
    """lr = values[i], i = the number of boundaries b with step > b   (base_lr unused)

    (``keras.optimizers.schedules.PiecewiseConstantDecay``: values[0] while step <= boundaries[0]).
    """
    return float(values[sum(1 for boundary in boundaries if step > boundary)])


_SCHEDULES: dict[str, tuple[Callable[..., float], dict[str, object]]] = {
    # name -> (formula, {option: default}); a default of None marks a required option
    "constant": (constant, {}),
    "step": (step_decay, {"step_size": None, "gamma": None}),
    "exponential": (exponential, {"decay_rate": None, "decay_steps": None, "staircase": False}),
    "cosine": (cosine, {"decay_steps": None, "alpha": 0.0, "warmup_steps": 0}),
    "piecewise": (piecewise, {"boundaries": None, "values": None}),
}

SCHEDULE_NAMES = tuple(_SCHEDULES)


def learning_rate(schedule: Mapping | None, base_lr: float, step: int) -> float:
    """The learning rate for 0-based optimizer step ``step`` under ``schedule``."""
    if schedule is None:
        return base_lr
    name = schedule.get("type")
    if name not in _SCHEDULES:
        raise UsageError(f"expected a schedule type among {list(SCHEDULE_NAMES)}, received type={name!r}")
    formula, defaults = _SCHEDULES[name]
    options = {key: value for key, value in schedule.items() if key != "type"}
    unknown = sorted(set(options) - set(defaults))
    missing = sorted(key for key, value in defaults.items() if value is None and key not in options)
    if unknown or missing:
        raise UsageError(
            f"schedule {name!r} takes options {sorted(defaults)}, requiring "
            f"{[key for key, value in defaults.items() if value is None]}, "
            f"received unknown: {unknown}, missing: {missing}"
        )
    for key in ("step_size", "decay_steps"):
        if key in options and not options[key] > 0:
            raise UsageError(f"schedule {name!r} expected {key} > 0, received {key}={options[key]}")
    if options.get("warmup_steps", 0) < 0:
        raise UsageError(f"schedule {name!r} expected warmup_steps >= 0, received {options['warmup_steps']}")
    if name == "piecewise" and len(options["values"]) != len(options["boundaries"]) + 1:
        raise UsageError(
            f"schedule 'piecewise' expected one value more than boundaries, received "
            f"{len(options['values'])} values for {len(options['boundaries'])} boundaries"
        )
    if step < 0:
        raise UsageError(f"expected a 0-based step >= 0, received step={step}")
    return float(formula(base_lr, step, **{**defaults, **options}))


def warmup_factor(step: int, warmup_steps: int) -> float:
    """min(1, step / warmup_steps): a linear warm-up from 0 at step 0 to 1 at ``warmup_steps``
    (1 throughout when warmup_steps is 0); as Keras' CosineDecay and Hugging Face's warm-ups."""
    if step >= warmup_steps:
        return 1.0
    return step / warmup_steps


def step_rate(
    schedule: Mapping | None,
    base_lr: float,
    step: int,
    *,
    warmup_steps: int = 0,
    plateau_scale: float = 1.0,
    min_lr: float = 0.0,
) -> float:
    """The learning rate of step ``step`` with every control on top of the schedule:

    rate = learning_rate(schedule, base_lr, step) * warmup_factor(step, warmup_steps)
    rate = max(rate * plateau_scale, min_lr)    once reduce_on_plateau has reduced (scale < 1)
    """
    rate = learning_rate(schedule, base_lr, step)
    if warmup_steps:
        rate *= warmup_factor(step, warmup_steps)
    if plateau_scale != 1.0:
        rate = max(rate * plateau_scale, min_lr)
    return rate
