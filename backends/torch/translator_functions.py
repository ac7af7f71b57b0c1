"""The functions and tensor methods of a traced forward (``F.relu``, ``torch.flatten``, ``x.view``,
``+``, ``torch.cat``, indexing of a layer's result) as spec layers, for ``translator.Translator``."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import fx, nn

from .translation import (
    ACTIVATION_FUNCTIONS,
    ACTIVATION_METHODS,
    ADAPTIVE_POOL_FUNCTIONS,
    AVG_POOL_ARGUMENTS,
    CONCATENATIONS,
    IDENTITY_METHODS,
    MERGE_FUNCTIONS,
    POOL_ARGUMENTS,
    POOL_FUNCTIONS,
    RESHAPE_METHODS,
    SOFTMAX_FUNCTIONS,
    AttentionCall,
    BatchSize,
    RecurrentCall,
    RecurrentItem,
    Sizes,
    Tensor,
    Unsupported,
)

if TYPE_CHECKING:
    from .translator import Translator


def _arguments(node: fx.Node) -> tuple[Any, ...]:
    """An fx node's positional arguments, typed loosely: each handler checks what it reads."""
    return tuple(node.args)


def function(self: Translator, node: fx.Node) -> Any:
    target, args, kwargs = node.target, _arguments(node), dict[str, Any](node.kwargs)
    if target in ACTIVATION_FUNCTIONS:
        return self._activation(self._tensor(args[0]), ACTIVATION_FUNCTIONS[target])
    if target in SOFTMAX_FUNCTIONS:
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if dim is None:
            raise Unsupported("expected an explicit dim, received none (torch's implicit dim is deprecated)")
        return self._activation(self._tensor(args[0]), SOFTMAX_FUNCTIONS[target], int(dim))
    if target is torch.nn.functional.dropout:
        p = kwargs.get("p", args[1] if len(args) > 1 else 0.5)
        return self._dropout(self._tensor(args[0]), float(p))
    if target in POOL_FUNCTIONS:
        kind, rank = POOL_FUNCTIONS[target]
        names = POOL_ARGUMENTS if kind.startswith("max") else AVG_POOL_ARGUMENTS
        options = dict(zip(names, args))
        options.update(kwargs)
        return self.pool(self._tensor(options.pop("input")), kind, rank, options)
    if target in ADAPTIVE_POOL_FUNCTIONS:
        mode, rank = ADAPTIVE_POOL_FUNCTIONS[target]
        size = kwargs.get("output_size", args[1] if len(args) > 1 else None)
        return self.global_pool(self._tensor(args[0]), mode, rank, size)
    if target is torch.flatten:
        start = kwargs.get("start_dim", args[1] if len(args) > 1 else 0)
        end = kwargs.get("end_dim", args[2] if len(args) > 2 else -1)
        return self.flatten(self._tensor(args[0]), int(start), int(end))
    if target in MERGE_FUNCTIONS:
        return _merge(self, MERGE_FUNCTIONS[target], args, kwargs)
    if target in CONCATENATIONS:
        tensors = [self._tensor(item) for item in args[0]]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        return _concatenate(self, tensors, int(dim))
    if target is operator.getitem:
        return _getitem(self, args[0], args[1])
    if target is getattr and args[1] == "shape":
        return Sizes(self._tensor(args[0]).shape)
    raise Unsupported("expected a function archspec maps (activations, softmax, pooling, flatten, add, cat ...)")


def _merge(self: Translator, kind: str, args: tuple, kwargs: dict) -> Tensor:
    if kwargs.get("alpha", 1) != 1:
        raise Unsupported("expected alpha 1, received a scaled add")
    if not all(isinstance(arg, fx.Node) for arg in args[:2]):
        raise Unsupported(f"expected two tensors, received a tensor and a constant ({args!r})")
    first, second = self._tensor(args[0]), self._tensor(args[1])
    if first.shape != second.shape or (first.channels_first, first.time_major) != (
        second.channels_first,
        second.time_major,
    ):
        raise Unsupported(f"expected two tensors of one shape, received {list(first.shape)}, {list(second.shape)}")
    first_order, second_order = first.order, second.order
    if first_order is None or second_order is None:
        same_order = first_order is None and second_order is None
    else:
        same_order = bool(np.array_equal(first_order, second_order))
    if not same_order:
        self._reorder(first)
    return self._add(
        {"type": kind}, [first, second], first.shape, channels_first=first.channels_first, order=first.order
    )


def _concatenate(self: Translator, tensors: list[Tensor], dim: int) -> Tensor:
    first = tensors[0]
    rank = len(first.shape) + 1
    axis = dim % rank
    if axis == 0:
        raise Unsupported("expected a concatenation along a per-sample axis, received the batch axis")
    if any(t.channels_first != first.channels_first or t.order is not None for t in tensors):
        raise Unsupported("expected inputs of one layout (all channels-first, or all not) and no pending order")
    if first.channels_first:
        spec_axis = -1 if axis == 1 else axis - 2
    else:
        spec_axis = axis - 1 if axis != rank - 1 else -1
    shape = list(first.shape)
    shape[axis - 1] = sum(t.shape[axis - 1] for t in tensors)
    return self._add(
        {"type": "concatenate", "axis": spec_axis}, tensors, tuple(shape), channels_first=first.channels_first
    )


def _getitem(self: Translator, source: Any, index: Any) -> Any:
    value = self.values.get(source) if isinstance(source, fx.Node) else None
    if isinstance(value, RecurrentCall):
        parts = {0: "sequence", 1: "pair" if isinstance(value.module, nn.LSTM) else "states"}
        if index not in parts:
            raise Unsupported(f"expected item 0 or 1 of a recurrent layer's result, received {index!r}")
        return RecurrentItem(value, parts[index])
    if isinstance(value, RecurrentItem):
        return _recurrent_item(self, value, index)
    if isinstance(value, AttentionCall):
        if index != 0:
            raise Unsupported("expected the attention output (item 0), received the attention weights")
        return value
    if isinstance(value, Sizes):
        if index == 0:
            return BatchSize()
        return value.shape[index - 1] if isinstance(index, int) and index > 0 else value.shape[index]
    raise Unsupported(f"expected indexing of a layer's result or of a size, received [{index!r}]")


def _recurrent_item(self: Translator, item: RecurrentItem, index: Any) -> Any:
    call = item.call
    if item.part == "pair":
        if index == 0:
            return RecurrentItem(call, "states")
        raise Unsupported("expected the hidden states h_n (item 0 of an LSTM's (h_n, c_n)), received c_n")
    last = call.module.num_layers * (2 if call.module.bidirectional else 1) - 1
    if item.part == "states" and index in (-1, last):
        if call.module.bidirectional:
            raise Unsupported("expected h_n[-1] of a unidirectional layer; a bidirectional one's is only one direction")
        return self._recurrent(call, return_sequences=False)
    if item.part == "sequence" and index in ((slice(None), -1), (slice(None), -1, slice(None))):
        if call.module.bidirectional:
            raise Unsupported(
                "expected output[:, -1] of a unidirectional layer; the backward half of it is not a final state"
            )
        if not call.module.batch_first:
            raise Unsupported("expected output[:, -1] with batch_first=True (or output[-1] with batch_first=False)")
        return self._recurrent(call, return_sequences=False)
    if item.part == "sequence" and index == -1 and not call.module.batch_first and not call.module.bidirectional:
        return self._recurrent(call, return_sequences=False)
    raise Unsupported(f"expected output[:, -1] or h_n[-1] of a recurrent layer, received [{index!r}]")


def method(self: Translator, node: fx.Node) -> Any:
    method, args, kwargs = str(node.target), _arguments(node), dict[str, Any](node.kwargs)
    if method in IDENTITY_METHODS:
        return self._tensor(args[0])
    if method in ACTIVATION_METHODS:
        return self._activation(self._tensor(args[0]), ACTIVATION_METHODS[method])
    if method in ("softmax", "log_softmax"):
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if dim is None:
            raise Unsupported("expected an explicit dim, received none")
        return self._activation(self._tensor(args[0]), method, int(dim))
    if method == "size":
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        shape = self._tensor(args[0]).shape
        if dim is None:
            return Sizes(shape)
        return BatchSize() if dim == 0 else shape[dim - 1 if dim > 0 else dim]
    if method == "flatten":
        start = kwargs.get("start_dim", args[1] if len(args) > 1 else 0)
        end = kwargs.get("end_dim", args[2] if len(args) > 2 else -1)
        return self.flatten(self._tensor(args[0]), int(start), int(end))
    if method in RESHAPE_METHODS:
        target = args[1:] if len(args) > 2 or not isinstance(args[1], (tuple, list)) else args[1]
        return self.reshape(self._tensor(args[0]), [self.values.get(t, t) for t in target])
    if method in ("add", "mul"):
        return _merge(self, "add" if method == "add" else "multiply", args, kwargs)
    raise Unsupported("expected a tensor method archspec maps (view, reshape, flatten, size, relu ...)")
