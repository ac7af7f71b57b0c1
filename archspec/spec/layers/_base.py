"""What every layer class shares: the base class, parameter descriptions, shape errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field

from archspec.spec.common import Initializer, Regularizer, Shape, StrictModel


class LayerShapeError(ValueError):
    """A layer cannot take the shapes it was given (turned into a located Problem)."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a layer, in the canonical layout.

    ``name`` is local to the layer (``kernel``); the canonical name of the
    parameter in a model is ``"{layer_id}.{name}"``.
    """

    name: str
    shape: Shape
    initializer: Initializer
    trainable: bool = True
    regularizer: Regularizer | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def init(name: str, **options) -> Initializer:
    """A default initializer for a field (``init("zeros")``)."""
    return Initializer(type=name, **options)


class LayerBase(StrictModel):
    """Fields every layer has. Not a layer type itself."""

    id: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    inputs: list[str] | None = Field(None, min_length=1)

    # How many inputs the layer takes: (minimum, maximum or None for any).
    arity: ClassVar[tuple[int, int | None]] = (1, 1)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def parameters(self, input_shapes: list[Shape]) -> list[ParamSpec]:
        return []


def need_rank(layer: str, shape: Shape, rank: int, what: str) -> None:
    """Refuse an input of the wrong rank, naming what ``layer`` expects."""
    if len(shape) != rank:
        raise LayerShapeError(f"{layer} expects {what} (rank {rank} per sample), received shape {list(shape)}")
