"""Activation functions by spec name, as torch functions of one tensor."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from archspec.definitions.constants import ELU_ALPHA, LEAKY_RELU_SLOPE
from archspec.errors import lookup

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": torch.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, negative_slope=LEAKY_RELU_SLOPE),
    "elu": lambda x: F.elu(x, alpha=ELU_ALPHA),
    "gelu": lambda x: F.gelu(x, approximate="none"),  # exact (erf), as Keras' default
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function for activation ``name``; the error lists the valid names."""
    return lookup(ACTIVATIONS, name, "activation")
