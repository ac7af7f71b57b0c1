"""Translates a traced ``torch.nn.Module``'s fx graph into spec layers and torch-layout arrays.

One handler per kind of fx node (modules by type, functions, tensor methods); a handler returns
what the node is in the spec (``translation.Tensor`` and friends) or raises ``Unsupported``.
Every unsupported node is collected with its name and type, so one error can list them all.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from . import translator_functions, translator_modules
from .translation import (
    POOL_FUNCTIONS,
    POOL_MODULES,
    TIME_MAJOR_LAYERS,
    TIME_MAJOR_PATH,
    AttentionCall,
    BatchSize,
    RecurrentCall,
    RecurrentItem,
    Tensor,
    Unsupported,
    describe,
    flat_order,
    same_padding,
    sizes,
    spec_name,
)

_UNKNOWN = object()  # the value of a node downstream of an unsupported one (not reported again)


def _torch_shape(node: fx.Node, time_major: bool) -> tuple[int, ...] | None:
    """The per-sample shape torch computed for a tensor-valued fx node (ShapeProp), or None."""
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    if shape is None:
        return None
    batch_axis = 1 if time_major else 0
    return tuple(int(size) for axis, size in enumerate(shape) if axis != batch_axis)


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
        expected = _torch_shape(node, time_major) if tap else None
        if expected is not None and expected != shape:  # a translation bug, never a silent one
            raise Unsupported(f"expected torch's per-sample shape {list(expected)}, received {list(shape)} in the spec")
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

    # --- functions and methods (translator_functions.py) ---------------------------

    def _function(self, node: fx.Node) -> Any:
        return translator_functions.function(self, node)

    def _method(self, node: fx.Node) -> Any:
        return translator_functions.method(self, node)

    def _dropout(self, source: Tensor, rate: float) -> Tensor:
        return self._add(
            {"type": "dropout", "rate": rate},
            [source],
            source.shape,
            channels_first=source.channels_first,
            order=source.order,
        )

    def _recurrent(self, call: RecurrentCall, return_sequences: bool) -> Tensor:
        if return_sequences not in call.built:
            call.built[return_sequences] = translator_modules.recurrent_layers(self, call, return_sequences)
        return call.built[return_sequences]

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
