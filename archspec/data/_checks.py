"""Argument checks shared by the data loaders; each raises UsageError naming the argument."""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real

from archspec.errors import UsageError


def check_choice(value: object, choices: Iterable[str], name: str) -> str:
    """Return ``value`` when it is one of ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(choice) for choice in choices)
        raise UsageError(f"expected {name} to be one of {valid}, received {name}={value!r}")
    return value


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int when it is an integer >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise UsageError(f"expected {name} to be a positive integer, received {name}={value!r}")
    return int(value)


def check_seed(value: object, name: str = "seed") -> int:
    """Return ``value`` as an int when it is an integer >= 0 (what numpy accepts as a seed)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise UsageError(f"expected {name} to be a non-negative integer, received {name}={value!r}")
    return int(value)


def _finite(value: object) -> float | None:
    """``value`` as a float when it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def check_non_negative(value: object, name: str) -> float:
    """Return ``value`` as a float when it is a finite number >= 0."""
    number = _finite(value)
    if number is None or number < 0:
        raise UsageError(f"expected {name} to be a finite number >= 0, received {name}={value!r}")
    return number


def check_fraction(value: object, name: str) -> float:
    """Return ``value`` as a float when it lies in [0, 1)."""
    number = _finite(value)
    if number is None or not 0 <= number < 1:
        raise UsageError(f"expected {name} to be a fraction in [0, 1), received {name}={value!r}")
    return number
