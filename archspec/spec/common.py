"""Pieces shared by every part of the spec: strict base model, strict numbers,
activations, initializers, regularizers and small shape helpers."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AllowInfNan, BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator

Shape = tuple[int, ...]


def written(value: Any) -> str:
    """A value as the user wrote it in YAML (``true``, ``.inf``, ``[3, 2]``), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(written(item) for item in value) + "]"
    return repr(value)


def _finite_number(value: Any) -> Any:
    # pydantic's lax float reads true as 1.0, and its own finiteness check comes after
    # bounds (``gt=0`` would report .nan as "not positive"): refuse both here, plainly.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, received {written(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, received {written(value)}")
    return value


Integer = Annotated[int, Strict()]
"""A whole number as written: ``true``, ``10.0`` and ``"10"`` are refused, never converted."""

PositiveInteger = Annotated[int, Strict(), Field(gt=0)]
"""An ``Integer`` greater than 0."""

Number = Annotated[float, BeforeValidator(_finite_number), AllowInfNan(False)]
"""A finite real number: integers are welcome (``1`` is ``1.0``); booleans, ``.inf``,
``-.inf`` and ``.nan`` are refused. Strings such as ``1e-3`` (which YAML 1.1 reads as
text) are still read as numbers."""

ActivationName = Literal[
    "linear", "relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softmax", "log_softmax"
]

InitializerName = Literal[
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "zeros",
    "ones",
    "constant",
    "uniform",
    "normal",
]


class StrictModel(BaseModel):
    """Base of every spec model: unknown fields are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Initializer(StrictModel):
    """How a parameter's first value is drawn (computed once, with numpy).

    A bare name (``glorot_uniform``) is accepted wherever an initializer is.
    ``gain`` scales ``orthogonal``; ``value`` is for ``constant``; ``minval``/
    ``maxval`` for ``uniform``; ``mean``/``stddev`` for ``normal``.
    """

    type: InitializerName
    gain: Number = 1.0
    value: Number = 0.0
    minval: Number = -0.05
    maxval: Number = 0.05
    mean: Number = 0.0
    stddev: Number = Field(0.05, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_name(cls, value):
        if isinstance(value, str):
            return {"type": value}
        return value

    @model_validator(mode="after")
    def _check_range(self):
        if self.type == "uniform" and not self.minval < self.maxval:
            raise ValueError(
                f"expected minval < maxval for a uniform initializer, received "
                f"minval={self.minval}, maxval={self.maxval}"
            )
        return self


class Regularizer(StrictModel):
    """A penalty added to the training loss: ``l1 * sum|w| + l2 * sum w**2``."""

    l1: Number = Field(0.0, ge=0)
    l2: Number = Field(0.0, ge=0)


def as_pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``[3, 5]`` -> ``(3, 5)``."""
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def _is_positive_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _positive_pair(value: Any) -> Any:
    # Checked whole, before the union: otherwise pydantic reports one error per member
    # ("expected a valid integer" and "expected a valid list") for a single mistake.
    if isinstance(value, list):
        if len(value) == 2 and all(_is_positive_integer(item) for item in value):
            return value
    elif _is_positive_integer(value):
        return value
    raise ValueError(f"expected a positive integer or a list of two, received {written(value)}")


PositivePair = Annotated[
    PositiveInteger | Annotated[list[PositiveInteger], Field(min_length=2, max_length=2)],
    BeforeValidator(_positive_pair),
]
"""A size for both image axes: ``3`` (height and width) or ``[3, 5]``."""
