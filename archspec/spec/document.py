"""The whole spec document: inputs, layers, outputs, training and data."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from archspec.spec.common import PositiveInteger, StrictModel
from archspec.spec.data import Data
from archspec.spec.layers import Layer
from archspec.spec.training import Training

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Input(StrictModel):
    """One named model input: its per-sample shape (no batch axis) and kind.
    ``float`` inputs take the run's dtype; integer inputs feed embeddings."""

    shape: list[PositiveInteger] = Field(min_length=1)
    dtype: Literal["float", "int32", "int64"] = "float"


class Spec(StrictModel):
    """An architecture and how to train it.

    ``layers`` without ``inputs`` take the previous layer's output (the first
    one takes the only input), so a plain list is a sequential model; ``id`` and
    ``inputs`` make a graph. ``outputs`` defaults to the last layer.
    """

    name: str = Field(min_length=1)
    description: str | None = None
    inputs: dict[str, Input] = Field(min_length=1)
    layers: list[Layer] = Field(min_length=1)
    outputs: list[str] | None = Field(None, min_length=1)
    training: Training | None = None
    data: Data | None = None

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, value):
        for name in value:
            if not re.match(IDENTIFIER, name):
                raise ValueError(f"expected input names made of letters, digits and '_', received {name!r}")
        return value
