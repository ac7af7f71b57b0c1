"""Translates a traced ``torch.nn.Module``'s fx graph into spec layers and torch-layout arrays.

One handler per kind of fx node (modules by type, functions, tensor methods); a handler returns
what the node is in the spec (``translation.Tensor`` and friends) or raises ``Unsupported``.
Every unsupported node is collected with its name and type, so one error can list them all.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from . import translator_modules
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
    POOL_MODULES,
    RESHAPE_METHODS,
    SOFTMAX_FUNCTIONS,
    TIME_MAJOR_LAYERS,
    TIME_MAJOR_PATH,
    AttentionCall,
    BatchSize,
    RecurrentCall,
    RecurrentItem,
    Sizes,
    Tensor,
    Unsupported,
    describe,
    flat_order,
    same_padding,
    sizes,
    spec_name,
)

_UNKNOWN = object()  # the value of a node downstream of an unsupported one (not reported again)


def _arguments(node: fx.Node) -> tuple[Any, ...]:
    """An fx node's positional arguments, typed loosely: each handler checks what it reads."""
    return tuple(node.args)


def _shape(node: fx.Node) -> tuple[int, ...]:
    """The per-sample shape of a tensor-valued fx node (from ShapeProp)."""
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise Unsupported("no tensor shape")
    return tuple(int(size) for size in meta.shape[1:])


class Translator:
    """Walks ``traced`` (its nodes' ``tensor_meta`` filled) and builds the spec's layers.

    Afterwards: ``inputs`` (spec input name -> {"shape", "dtype"}), ``channels_first_inputs``,
    ``layers`` (spec layer dicts), ``native`` (layer id -> torch-layout arrays by archspec's
    module paths), ``outputs`` (fx node -> Tensor), ``taps`` (layer id -> (fx node name,
    Tensor)) for the intermediates, ``problems`` and ``notes``."""

    def __init__(self, traced: fx.GraphModule, example: dict[str, torch.Tensor]):
        self.traced = traced
        self.example = example
        self.layers: list[dict[str, Any]] = []
        self.native: dict[str, dict[str, np.ndarray]] = {}
        self.inputs: dict[str, dict[str, Any]] = {}
        self.channels_first_inputs: set[str] = set()
        self.time_major_inputs: set[str] = set()
        self.owners: dict[str, str] = {}  # torch module -> the first spec layer holding its weights
        self.taps: dict[str, tuple[str, Tensor]] = {}
        self.outputs: list[Tensor] = []
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.values: dict[fx.Node, Any] = {}
        self.taken: set[str] = set()
        self.current: fx.Node | None = None

    # --- the walk -------------------------------------------------------------------

    def run(self) -> None:
        for node in self.traced.graph.nodes:
            if node.op == "output":
                self._output(node)
                continue
            if any(self.values.get(arg) is _UNKNOWN for arg in node.all_input_nodes):
                self.values[node] = _UNKNOWN
                continue
            self.current = node
            try:
                self.values[node] = self._translate(node)
            except Unsupported as reason:
                self.problems.append(f"{describe(node, self.traced)}: {reason}")
                self.values[node] = _UNKNOWN

    def _translate(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            return self._placeholder(node)
        if node.op == "call_module":
            return self._module(node, self.traced.get_submodule(str(node.target)))
        if node.op == "call_function":
            return self._function(node)
        if node.op == "call_method":
            return self._method(node)
        if node.op == "get_attr":
            raise Unsupported("a tensor attribute of the module used as a value is not a spec layer")
        raise Unsupported(f"unknown fx node kind {node.op}")

    def _output(self, node: fx.Node) -> None:
        (result,) = node.args
        items = result if isinstance(result, (tuple, list)) else (result,)
        for item in items:
            value = self.values.get(item, _UNKNOWN) if isinstance(item, fx.Node) else _UNKNOWN
            if value is _UNKNOWN:
                if not self.problems:
                    self.problems.append(f"output ({type(item).__name__}): expected a tensor output")
                continue
            try:
                self.outputs.append(self._tensor(item))
            except Unsupported as reason:
                self.problems.append(f"output {item}: {reason}")

    # --- layers ---------------------------------------------------------------------

    def _id(self, base: str) -> str:
        name, count = spec_name(base), 1
        candidate = name
        while candidate in self.taken:
            count += 1
            candidate = f"{name}_{count}"
        self.taken.add(candidate)
        return candidate

    def _add(
        self,
        layer: dict[str, Any],
        inputs: list[Tensor],
        shape: tuple[int, ...],
        *,
        channels_first: bool = False,
        order: np.ndarray | None = None,
        native: dict[str, np.ndarray] | None = None,
        name: str | None = None,
        tap: bool = True,
        time_major: bool | None = None,
    ) -> Tensor:
        """Appends a spec layer reading ``inputs``; returns its output as torch holds it."""
        node = self.current
        if node is None:
            raise RuntimeError("a layer added outside the walk")
        if time_major is None:
            time_major = any(tensor.time_major for tensor in inputs)
            if time_major and layer["type"] not in TIME_MAJOR_LAYERS:
                raise Unsupported("expected a batch-first tensor, received a time-major one (batch_first=False)")
        layer_id = self._id(name or (str(node.target) if node.op == "call_module" else node.name))
        self.layers.append({"id": layer_id, **layer, "inputs": [tensor.name for tensor in inputs]})
        if native:
            self.native[layer_id] = native
            owner = str(node.target)
            if node.op == "call_module" and owner in self.owners:
                self.notes.append(
                    f"{owner}: one torch module (its weights shared) became the layers {self.owners[owner]} and "
                    f"{layer_id}, each with a copy: outputs agree, but training updates the copies apart"
                )
            self.owners.setdefault(owner, layer_id)
        result = Tensor(layer_id, shape, channels_first, order, time_major)
        if tap:
            self.taps[layer_id] = (node.name, result)
        return result

    def _tensor(self, argument: Any) -> Tensor:
        """The spec tensor an fx argument stands for (a recurrent sequence is built here)."""
        value = self.values.get(argument) if isinstance(argument, fx.Node) else None
        if isinstance(value, RecurrentItem) and value.part == "sequence":
            return self._recurrent(value.call, return_sequences=True)
        if isinstance(value, AttentionCall):
            return value.output
        if not isinstance(value, Tensor):
            raise Unsupported(f"expected a tensor argument, received {argument!r}")
        return value

    def _activation(self, source: Tensor, activation: str, dim: int | None = None) -> Tensor:
        if dim is not None and not self._is_last_axis(source, dim):
            raise Unsupported(f"{activation} over torch axis {dim}: expected the feature (spec's last) axis")
        if source.order is not None and activation in ("softmax", "log_softmax"):
            source = self._reorder(source)
        layer = {"type": "activation", "activation": activation}
        return self._add(layer, [source], source.shape, channels_first=source.channels_first, order=source.order)

    def _is_last_axis(self, source: Tensor, dim: int) -> bool:
        rank = len(source.shape) + 1  # with the batch axis
        axis = dim % rank
        return axis == (1 if source.channels_first else rank - 1)

    def _reorder(self, source: Tensor) -> Tensor:
        raise Unsupported(
            "expected a channels-first flatten to feed a linear layer (whose rows archspec permutes), "
            "received it feeding another operation"
        )

    # --- placeholders ---------------------------------------------------------------

    def _placeholder(self, node: fx.Node) -> Tensor:
        name = spec_name(str(node.target))
        self.taken.add(name)
        example = self.example[str(node.target)]
        time_major = self._reaches_time_major(node)
        batch_axis = 1 if time_major else 0
        shape = tuple(int(size) for axis, size in enumerate(example.shape) if axis != batch_axis)
        channels_first = self._feeds_channels_first(node, len(shape))
        integer = not torch.is_floating_point(example)
        tensor = Tensor(name, shape, channels_first, time_major=time_major)
        self.inputs[name] = {"shape": list(tensor.spec_shape), **({"dtype": "int64"} if integer else {})}
        if channels_first:
            self.channels_first_inputs.add(name)
        if time_major:
            self.time_major_inputs.add(name)
        return tensor

    def _reaches_time_major(self, node: fx.Node) -> bool:
        """Whether this input reaches a ``batch_first=False`` recurrent layer through per-step
        modules only (an embedding, linear layers, activations): then torch reads it (steps, batch, ...)."""
        for user in node.users:
            if user.op != "call_module":
                continue
            module = self.traced.get_submodule(str(user.target))
            if isinstance(module, nn.RNNBase) and not module.batch_first:
                return True
            if isinstance(module, TIME_MAJOR_PATH) and self._reaches_time_major(user):
                return True
        return False

    def _feeds_channels_first(self, node: fx.Node, rank: int) -> bool:
        """Whether torch reads this input as (channels, *spatial): it feeds a convolution, a
        pooling or a batch norm over images or sequences."""
        if rank < 2:
            return False
        for user in node.users:
            if user.op == "call_module":
                module = self.traced.get_submodule(str(user.target))
                if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, *POOL_MODULES)):
                    return True
            if user.op == "call_function" and user.target in POOL_FUNCTIONS:
                return True
        return False

    # --- modules --------------------------------------------------------------------

    def _module(self, node: fx.Node, module: nn.Module) -> Any:
        return translator_modules.translate_module(self, node, module)

    # --- functions ------------------------------------------------------------------

    def _function(self, node: fx.Node) -> Any:
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
            return self._merge(MERGE_FUNCTIONS[target], args, kwargs)
        if target in CONCATENATIONS:
            tensors = [self._tensor(item) for item in args[0]]
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            return self._concatenate(tensors, int(dim))
        if target is operator.getitem:
            return self._getitem(args[0], args[1])
        if target is getattr and args[1] == "shape":
            return Sizes(self._tensor(args[0]).shape)
        raise Unsupported("expected a function archspec maps (activations, softmax, pooling, flatten, add, cat ...)")

    def _dropout(self, source: Tensor, rate: float) -> Tensor:
        return self._add(
            {"type": "dropout", "rate": rate},
            [source],
            source.shape,
            channels_first=source.channels_first,
            order=source.order,
        )

    def _merge(self, kind: str, args: tuple, kwargs: dict) -> Tensor:
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

    def _concatenate(self, tensors: list[Tensor], dim: int) -> Tensor:
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

    def _getitem(self, source: Any, index: Any) -> Any:
        value = self.values.get(source) if isinstance(source, fx.Node) else None
        if isinstance(value, RecurrentCall):
            parts = {0: "sequence", 1: "pair" if isinstance(value.module, nn.LSTM) else "states"}
            if index not in parts:
                raise Unsupported(f"expected item 0 or 1 of a recurrent layer's result, received {index!r}")
            return RecurrentItem(value, parts[index])
        if isinstance(value, RecurrentItem):
            return self._recurrent_item(value, index)
        if isinstance(value, AttentionCall):
            if index != 0:
                raise Unsupported("expected the attention output (item 0), received the attention weights")
            return value
        if isinstance(value, Sizes):
            if index == 0:
                return BatchSize()
            return value.shape[index - 1] if isinstance(index, int) and index > 0 else value.shape[index]
        raise Unsupported(f"expected indexing of a layer's result or of a size, received [{index!r}]")

    def _recurrent_item(self, item: RecurrentItem, index: Any) -> Any:
        call = item.call
        if item.part == "pair":
            if index == 0:
                return RecurrentItem(call, "states")
            raise Unsupported("expected the hidden states h_n (item 0 of an LSTM's (h_n, c_n)), received c_n")
        last = call.module.num_layers * (2 if call.module.bidirectional else 1) - 1
        if item.part == "states" and index in (-1, last):
            if call.module.bidirectional:
                raise Unsupported(
                    "expected h_n[-1] of a unidirectional layer; a bidirectional one's is only one direction"
                )
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

    def _recurrent(self, call: RecurrentCall, return_sequences: bool) -> Tensor:
        if return_sequences not in call.built:
            call.built[return_sequences] = translator_modules.recurrent_layers(self, call, return_sequences)
        return call.built[return_sequences]

    # --- methods --------------------------------------------------------------------

    def _method(self, node: fx.Node) -> Any:
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
            return self._merge("add" if method == "add" else "multiply", args, kwargs)
        raise Unsupported("expected a tensor method archspec maps (view, reshape, flatten, size, relu ...)")

    # --- shared by modules and functions --------------------------------------------

    def flatten(self, source: Tensor, start: int, end: int) -> Tensor:
        rank = len(source.shape) + 1
        if start % rank != 1 or end % rank != rank - 1:
            raise Unsupported(
                f"expected a flatten of every per-sample axis (start_dim=1, end_dim=-1), received {start}, {end}"
            )
        if len(source.shape) == 1:
            return source
        order = flat_order(source.shape) if source.channels_first else None
        return self._add({"type": "flatten"}, [source], (math.prod(source.shape),), order=order)

    def reshape(self, source: Tensor, target: list[Any]) -> Tensor:
        if not target or not (isinstance(target[0], BatchSize) or target[0] == -1):
            raise Unsupported(f"expected a view keeping the batch axis first (x.size(0) or -1), received {target}")
        per_sample = [int(size) for size in target[1:]]
        total = math.prod(source.shape)
        if -1 in per_sample:
            known = math.prod(size for size in per_sample if size != -1)
            per_sample = [total // known if size == -1 else size for size in per_sample]
        if math.prod(per_sample) != total:
            raise Unsupported(f"expected {total} values per sample, received a view to {per_sample}")
        if len(per_sample) == 1:
            return self.flatten(source, 1, -1) if len(source.shape) > 1 else source
        if source.channels_first or source.order is not None:
            raise Unsupported("expected a view of a channels-last tensor; archspec has no transpose of channels")
        if len(per_sample) in (2, 3) and per_sample[0] == 1 and self._feeds_image_layer():
            # A flat sample viewed as (1, H, W) for a convolution: channels-last it is (H, W, 1).
            shape = tuple(per_sample)
            layer = {"type": "reshape", "target_shape": [*per_sample[1:], 1]}
            return self._add(layer, [source], shape, channels_first=True)
        return self._add({"type": "reshape", "target_shape": per_sample}, [source], tuple(per_sample))

    def _feeds_image_layer(self) -> bool:
        node = self.current
        if node is None:
            return False
        for user in node.users:
            if user.op == "call_module":
                module = self.traced.get_submodule(str(user.target))
                if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.BatchNorm2d, *POOL_MODULES)):
                    return True
            if user.op == "call_function" and user.target in POOL_FUNCTIONS:
                return True
        return False

    def pool(self, source: Tensor, kind: str, rank: int, options: dict[str, Any]) -> Tensor:
        if not source.channels_first or len(source.shape) != rank + 1:
            raise Unsupported(f"expected a channels-first input of {rank} spatial axes, received {list(source.shape)}")
        kernel = sizes(options["kernel_size"], rank)
        stride_option = options.get("stride")
        strides = sizes(stride_option, rank) if stride_option not in (None, [], ()) else kernel
        if options.get("ceil_mode") or options.get("return_indices") or options.get("divisor_override"):
            raise Unsupported("expected ceil_mode=False, no indices and no divisor_override")
        if sizes(options.get("dilation", 1), rank) != (1,) * rank:
            raise Unsupported("expected a pooling without dilation")
        spatial = source.shape[1:]
        padding = self._padding(spatial, kernel, strides, (1,) * rank, sizes(options.get("padding", 0), rank))
        if padding == "explicit":
            raise Unsupported("expected pooling padding 0 or equal to 'same' padding")
        if padding == "same" and kind.startswith("avg") and options.get("count_include_pad", True):
            raise Unsupported(
                "expected count_include_pad=False with average pooling padding (archspec counts only real positions)"
            )
        out = tuple(
            (size + (sum(same_padding(size, k, s, 1)) if padding == "same" else 0) - k) // s + 1
            for size, k, s in zip(spatial, kernel, strides)
        )
        layer: dict[str, Any] = {"type": kind, "pool_size": list(kernel), "strides": list(strides), "padding": padding}
        if rank == 1:
            layer.update(pool_size=kernel[0], strides=strides[0])
        return self._add(layer, [source], (source.shape[0], *out), channels_first=True)

    def global_pool(self, source: Tensor, mode: str, rank: int, output_size: Any) -> Tensor:
        """An adaptive pooling to one position per axis: archspec's global pooling, then the
        (1, ..., channels) shape torch keeps (a flatten after it then has nothing to permute)."""
        if sizes(output_size, rank) != (1,) * rank:
            raise Unsupported(f"expected an adaptive pooling to size 1, received output_size={output_size!r}")
        if not source.channels_first or len(source.shape) != rank + 1:
            raise Unsupported(f"expected a channels-first input of {rank} spatial axes, received {list(source.shape)}")
        channels = source.shape[0]
        pooled = self._add({"type": f"global_{mode}pool{rank}d"}, [source], (channels,), tap=False)
        layer = {"type": "reshape", "target_shape": [*(1,) * rank, channels]}
        return self._add(layer, [pooled], (channels, *(1,) * rank), channels_first=True)

    @staticmethod
    def _padding(spatial, kernel, strides, dilation, padding) -> str:
        """'valid', 'same' or 'explicit' for torch's symmetric integer ``padding``."""
        if all(p == 0 for p in padding):
            return "valid"
        if all(
            same_padding(size, k, s, d) == (p, p)
            for size, k, s, d, p in zip(spatial, kernel, strides, dilation, padding)
        ):
            return "same"
        return "explicit"
