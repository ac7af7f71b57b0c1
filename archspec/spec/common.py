"""Pieces shared by every part of the spec: strict base model, activations,
initializers, regularizers and small shape helpers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

Shape = tuple[int, ...]

ActivationName = Literal["linear", "relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "softmax"]

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
    gain: float = 1.0
    value: float = 0.0
    minval: float = -0.05
    maxval: float = 0.05
    mean: float = 0.0
    stddev: float = Field(0.05, gt=0)

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

    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)


def as_pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``[3, 5]`` -> ``(3, 5)``."""
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


PositivePair = PositiveInt | Annotated[list[PositiveInt], Field(min_length=2, max_length=2)]
