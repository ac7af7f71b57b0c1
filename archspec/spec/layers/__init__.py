"""The layer catalogue: one final class per layer type.

Each class holds its options, validates them, infers its output shape from its
input shapes (per sample, no batch axis, images channels-last) and lists its
parameters in the canonical layout (see ``docs/layout.md``). Backends build
what these classes describe; they never decide shapes or parameters themselves.
"""

from __future__ import annotations

from typing import Annotated, get_args

from pydantic import Field

from archspec.spec.layers._attention import MultiHeadAttention, PositionEmbedding
from archspec.spec.layers._base import LayerBase, LayerShapeError, MaskRule, ParamSpec
from archspec.spec.layers._convolution import (
    AvgPool1D,
    AvgPool2D,
    Conv1D,
    Conv2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    MaxPool1D,
    MaxPool2D,
    ZeroPadding1D,
    ZeroPadding2D,
)
from archspec.spec.layers._core import Activation, Dense, Dropout, Embedding, Flatten, Masking, Reshape
from archspec.spec.layers._merge import Add, Concatenate, Multiply
from archspec.spec.layers._normalization import BatchNorm, LayerNorm
from archspec.spec.layers._recurrent import GRU, LSTM, Bidirectional, RecurrentLayer, SimpleRNN

Layer = Annotated[
    Dense
    | Activation
    | Dropout
    | Flatten
    | Reshape
    | Conv1D
    | Conv2D
    | MaxPool1D
    | AvgPool1D
    | MaxPool2D
    | AvgPool2D
    | GlobalAvgPool1D
    | GlobalMaxPool1D
    | GlobalAvgPool2D
    | GlobalMaxPool2D
    | ZeroPadding1D
    | ZeroPadding2D
    | BatchNorm
    | LayerNorm
    | Embedding
    | Masking
    | SimpleRNN
    | LSTM
    | GRU
    | Bidirectional
    | MultiHeadAttention
    | PositionEmbedding
    | Add
    | Concatenate
    | Multiply,
    Field(discriminator="type"),
]
"""Any layer of the catalogue, told apart by its ``type`` tag (what a spec's ``layers`` hold)."""

LAYER_TYPES: tuple[type[LayerBase], ...] = get_args(get_args(Layer)[0])
"""Every layer class, in catalogue order (the members of ``Layer``)."""


def layer_type_name(cls: type[LayerBase]) -> str:
    """The ``type`` tag of a layer class (``Dense`` -> ``"dense"``)."""
    (tag,) = get_args(cls.model_fields["type"].annotation)  # Literal["dense"] -> ("dense",)
    return tag


__all__ = [
    "GRU",
    "LAYER_TYPES",
    "LSTM",
    "Activation",
    "Add",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNorm",
    "Bidirectional",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "Layer",
    "LayerBase",
    "LayerNorm",
    "LayerShapeError",
    "MaskRule",
    "Masking",
    "MaxPool1D",
    "MaxPool2D",
    "MultiHeadAttention",
    "Multiply",
    "ParamSpec",
    "PositionEmbedding",
    "RecurrentLayer",
    "Reshape",
    "SimpleRNN",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "layer_type_name",
]
