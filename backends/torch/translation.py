"""The graph of a traced ``torch.nn.Module`` translated, node by node, into spec layers.

``Translation`` walks a ``torch.fx`` graph (shapes from ``ShapeProp``) and keeps, for every
fx node, what it is in the spec: a spec tensor (``Tensor``: its name, torch's per-sample
shape, whether torch holds it channels-first, and for a flattened channels-first tensor the
order of its features), a recurrent call whose output is not chosen yet, or a size. Each
layer gets torch's own arrays under the paths of archspec's torch modules (``weight``,
``bias_ih``, ``forward_layer.weight_ih``, ``query.weight``), which ``layout.py`` converts
to the canonical layout. What cannot be expressed is collected, never raised one by one.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

ACTIVATION_MODULES: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.SiLU: "silu",
}
ACTIVATION_FUNCTIONS: dict[Any, str] = {
    F.relu: "relu",
    torch.relu: "relu",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    F.silu: "silu",
}
ACTIVATION_METHODS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}
SOFTMAX_FUNCTIONS: dict[Any, str] = {
    F.softmax: "softmax",
    torch.softmax: "softmax",
    F.log_softmax: "log_softmax",
    torch.log_softmax: "log_softmax",
}
IDENTITY_METHODS = {"contiguous", "clone", "detach"}
RESHAPE_METHODS = {"view", "reshape"}

# The arguments of the functional pooling calls, in order (F.max_pool2d(x, 2) passes them by position).
POOL_ARGUMENTS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
AVG_POOL_ARGUMENTS = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
POOL_FUNCTIONS: dict[Any, tuple[str, int]] = {
    F.max_pool1d: ("maxpool1d", 1),
    F.max_pool2d: ("maxpool2d", 2),
    F.avg_pool1d: ("avgpool1d", 1),
    F.avg_pool2d: ("avgpool2d", 2),
}
POOL_MODULES: dict[type[nn.Module], tuple[str, int]] = {
    nn.MaxPool1d: ("maxpool1d", 1),
    nn.MaxPool2d: ("maxpool2d", 2),
    nn.AvgPool1d: ("avgpool1d", 1),
    nn.AvgPool2d: ("avgpool2d", 2),
}
ADAPTIVE_POOL_MODULES: dict[type[nn.Module], tuple[str, int]] = {
    nn.AdaptiveAvgPool1d: ("avg", 1),
    nn.AdaptiveAvgPool2d: ("avg", 2),
    nn.AdaptiveMaxPool1d: ("max", 1),
    nn.AdaptiveMaxPool2d: ("max", 2),
}
ADAPTIVE_POOL_FUNCTIONS: dict[Any, tuple[str, int]] = {
    F.adaptive_avg_pool1d: ("avg", 1),
    F.adaptive_avg_pool2d: ("avg", 2),
    F.adaptive_max_pool1d: ("max", 1),
    F.adaptive_max_pool2d: ("max", 2),
}
MERGE_FUNCTIONS: dict[Any, str] = {
    operator.add: "add",
    torch.add: "add",
    operator.mul: "multiply",
    torch.mul: "multiply",
}
CONCATENATIONS = (torch.cat, torch.concat, torch.concatenate)

TIME_MAJOR_LAYERS = {"activation", "dropout", "dense", "add", "multiply", "layer_norm", "embedding"}
"""The spec layers that read a time-major tensor (steps, batch, ...) as torch does: per step."""
TIME_MAJOR_PATH = (nn.Embedding, nn.Linear, nn.Dropout, nn.LayerNorm, *ACTIVATION_MODULES)
"""Modules through which an input reaches a ``batch_first=False`` recurrent layer time-major."""

LEAF_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.LayerNorm,
    nn.Embedding,
    nn.RNN,
    nn.LSTM,
    nn.GRU,
    nn.MultiheadAttention,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
    nn.Softmax,
    nn.LogSoftmax,
    nn.GELU,
    nn.ELU,
    nn.LeakyReLU,
    *ACTIVATION_MODULES,
    *POOL_MODULES,
    *ADAPTIVE_POOL_MODULES,
)
"""The modules the tracer keeps whole (torch.fx would trace into some, and must not into LSTM)."""


@dataclass(frozen=True)
class Tensor:
    """A spec tensor as torch holds it: ``shape`` is torch's per-sample shape; ``channels_first``
    says torch keeps it (channels, *spatial) where the spec keeps (*spatial, channels); ``order``
    (flat tensors only) says which spec feature each torch feature is, when torch flattened
    channels-first: spec feature ``order[i]`` is torch feature ``i``; ``time_major`` says torch
    keeps the steps before the batch (``shape`` is then (steps, ...), without the batch)."""

    name: str
    shape: tuple[int, ...]
    channels_first: bool = False
    order: np.ndarray | None = None
    time_major: bool = False  # torch holds it (steps, batch, ...): a batch_first=False recurrent layer's side

    @property
    def spec_shape(self) -> tuple[int, ...]:
        if self.channels_first:
            return (*self.shape[1:], self.shape[0])
        return self.shape


@dataclass
class RecurrentCall:
    """A call of ``nn.RNN``/``LSTM``/``GRU`` whose output is chosen later: the sequence (item 0)
    becomes layers that return sequences; ``output[:, -1]`` or the last state ``h_n[-1]`` a
    last layer that returns only its final output."""

    node: fx.Node
    module: nn.RNNBase
    source: Tensor
    built: dict[bool, Tensor] = field(default_factory=dict)  # return_sequences -> the spec tensor


@dataclass(frozen=True)
class RecurrentItem:
    call: RecurrentCall
    part: str  # "sequence", "states" (h_n), "pair" (LSTM's (h_n, c_n)), "cells" (c_n)


@dataclass(frozen=True)
class BatchSize:
    """``x.size(0)`` or ``x.shape[0]``: stands for the batch in a ``view``."""


@dataclass(frozen=True)
class Sizes:
    """``x.size()`` or ``x.shape`` of a tensor of per-sample ``shape``."""

    shape: tuple[int, ...]


@dataclass(frozen=True)
class AttentionCall:
    output: Tensor


class Unsupported(Exception):
    """One fx node that cannot be expressed; ``Translation`` collects them."""


def spec_name(text: str) -> str:
    """A spec identifier from a module's qualified name or an fx node's name."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if re.match(r"[A-Za-z_]", name) else f"m_{name}"


def array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()


def sizes(value: Any, rank: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank


def flat_order(shape: tuple[int, ...]) -> np.ndarray | None:
    """For a channels-first (channels, *spatial) tensor flattened by torch: ``order[i]``, the spec
    (channels-last) position of torch feature ``i``; None when the two orders agree."""
    torch_index = np.arange(int(np.prod(shape))).reshape(shape)
    spec_positions = np.moveaxis(torch_index, 0, -1).reshape(-1)  # spec position j holds torch index
    if np.array_equal(spec_positions, np.arange(spec_positions.size)):
        return None
    return np.argsort(spec_positions)


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis (the odd one after), as archspec pads."""
    span = (kernel - 1) * dilation + 1
    total = max((-(-size // stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def describe(node: fx.Node, root: nn.Module) -> str:
    """``name (type)`` of an fx node, for the error that lists what cannot be mapped."""
    if node.op == "call_module":
        module = root.get_submodule(str(node.target))
        return f"{node.target} ({type(module).__module__}.{type(module).__qualname__})"
    if node.op == "call_function":
        target = node.target
        module_name = getattr(target, "__module__", None) or "builtins"
        return f"{node.name} (function {module_name}.{getattr(target, '__name__', str(target))})"
    if node.op == "call_method":
        return f"{node.name} (method Tensor.{node.target})"
    return f"{node.name} ({node.op} {node.target})"
