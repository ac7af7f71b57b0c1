"""The torch model of a graph (``GraphModule``) and the CompiledModel around it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import nn

from archspec.errors import BackendUnavailableError, UsageError
from archspec.graph import ModelGraph
from archspec.layout import Slot, to_canonical, to_native
from archspec.model import CompiledModel, Inputs

from . import layout
from .activations import activation
from .context import BuildContext
from .core import Embedding, Masking
from .layers import STEP_READERS, build_layer
from .normalization import BatchNorm

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device: str) -> torch.device:
    """``auto`` (a CUDA GPU when torch sees one, else the CPU), ``cpu`` or ``cuda``."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                "expected a CUDA GPU for device 'cuda', received none: torch sees no CUDA GPU "
                "(torch.cuda.is_available() is False); use device 'auto' or 'cpu', or install a CUDA build of torch"
            )
        _exact_float32()
        return torch.device("cuda")
    raise UsageError(f"expected device 'auto', 'cpu' or 'cuda', received {device!r}")


def _exact_float32() -> None:
    """Turn TF32 off for float32 matmuls and cuDNN (docs/semantics.md: needed for float32 parity on a GPU).

    These flags are process-wide in torch, so they are set only when a model goes to a GPU.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def _module_keys(graph: ModelGraph) -> dict[str, str]:
    """Node id -> ModuleDict key: the id itself, unless it shadows an attribute of ModuleDict ('train', 'forward')."""
    taken = {node.id for node in graph.nodes}
    keys = {}
    for node in graph.nodes:
        key = node.id
        while hasattr(nn.ModuleDict, key) or (key != node.id and key in taken):
            key += "_"
        taken.add(key)
        keys[node.id] = key
    return keys


@dataclass(frozen=True)
class _PlannedNode:
    """One node as the GraphModule runs it, in graph order."""

    key: str  # in the ModuleDict
    output: str
    inputs: tuple[str, ...]
    activation: str | None
    takes_step: bool  # dropout (of a dropout layer or of attention weights) reads the optimizer step
    done_with: tuple[str, ...]  # tensors no later node reads
    takes_mask: bool  # a layer that honours a mask reads a masked input
    mask_input: int  # which input's mask it reads
    mask_source: str | None  # how its output's mask is computed (Node.mask_source)
    step_counts: tuple[int, ...]  # its inputs' step counts (a concatenation along the steps)


class GraphModule(nn.Module):
    """Runs a graph's nodes in order; every layer is a module in ``layers`` keyed by node id.

    ``forward(*inputs)`` takes the model inputs in spec order (channels-last) and returns
    the output tensor, or a tuple in ``outputs`` order. ``tensors`` returns any named
    tensors, including pre-activations ``"{id}:pre"``. ``step`` is the optimizer step that
    dropout masks depend on: archspec's engine sets it before each training step, and each
    training-mode ``forward`` (a user's own loop) uses it and then advances it by one, so
    every batch gets fresh masks.
    """

    step: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, graph: ModelGraph, context: BuildContext):
        super().__init__()
        keys = _module_keys(graph)
        self.graph = graph  # what it was built from: archspec.from_torch reads it back
        self.input_names = tuple(graph.spec.inputs)
        self.output_names = tuple(graph.outputs)
        self.layers = nn.ModuleDict({keys[node.id]: build_layer(node, context) for node in graph.nodes})
        last_reader = {name: i for i, node in enumerate(graph.nodes) for name in node.inputs}
        self.plan = tuple(
            _PlannedNode(
                keys[node.id],
                node.id,
                node.inputs,
                node.activation,
                isinstance(self.layers[keys[node.id]], STEP_READERS),
                tuple(name for name in dict.fromkeys(node.inputs) if last_reader[name] == i),
                node.layer.mask_rule == "consume" and node.input_masked[node.mask_input],
                node.mask_input,
                node.mask_source,
                tuple(shape[0] if shape else 0 for shape in node.input_shapes),
            )
            for i, node in enumerate(graph.nodes)
        )
        self.register_buffer("step", torch.zeros((), dtype=torch.int64, device=context.device), persistent=False)
        # Eager runs also keep the step as a Python int, so dropout folds it into the hash on
        # the host instead of running a chain of 0-d tensor ops; compiled runs read the buffer
        # (a tensor, so the compiled graph is not specialised on every step).
        self.step_value: int | None = 0
        self.has_dropout = any(node.takes_step for node in self.plan)
        # Where this worker's share starts in the global batch (dropout indexes samples by it).
        self.position_offset = 0

    def set_step(self, step: int, eager: bool = True, offset: int = 0) -> None:
        self.step.fill_(step)
        self.step_value = step if eager else None
        self.position_offset = offset

    def tensors(
        self, inputs: Mapping[str, torch.Tensor], names: Sequence[str], step: torch.Tensor | int | None = None
    ) -> dict[str, torch.Tensor]:
        """The tensors named ``names`` (node ids, ``"{id}:pre"`` or input names) for ``inputs``;
        dropout uses ``step`` if given, else the one ``set_step`` set."""
        values = dict(inputs)
        masks: dict[str, torch.Tensor] = {}  # masked tensor -> (batch, steps) bool, True at valid steps
        wanted = set(names)
        if step is None:
            step = self.step if self.step_value is None else self.step_value
        for node in self.plan:
            arguments = [values[name] for name in node.inputs]
            module = self.layers[node.key]
            # A layer that honours a mask gets the one it reads (a recurrent layer its input's,
            # attention its key's), as a keyword.
            mask = {"mask": masks[node.inputs[node.mask_input]]} if node.takes_mask else {}
            if node.takes_step:
                result = module(*arguments, step=step, offset=self.position_offset, **mask)
            else:
                result = module(*arguments, **mask)
            if node.mask_source is not None:
                masks[node.output] = _output_mask(node, module, arguments, masks)
            if node.activation is not None:
                values[f"{node.output}:pre"] = result
                result = activation(node.activation)(result)
            values[node.output] = result
            for name in node.done_with:  # let inference free activations early
                if name not in wanted:
                    values.pop(name)
                    values.pop(f"{name}:pre", None)
                    masks.pop(name, None)
        return {name: values[name] for name in names}

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise UsageError(
                f"expected {len(self.input_names)} input tensor(s) {list(self.input_names)}, received {len(inputs)}"
            )
        # The step buffer, not a Python int: torch.compile(module) is not specialised per step.
        values = self.tensors(dict(zip(self.input_names, inputs)), self.output_names, step=self.step)
        if self.training and self.has_dropout:
            self.step.add_(1)  # the next training call gets fresh masks
        outputs = tuple(values[name] for name in self.output_names)
        return outputs[0] if len(outputs) == 1 else outputs


def _output_mask(
    node: _PlannedNode, module: nn.Module, arguments: list[torch.Tensor], masks: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """The mask of a masked node's output, as ``Node.mask_source`` says (docs/semantics.md, "Masks")."""
    if node.mask_source == "create":
        if not isinstance(module, (Embedding, Masking)):
            raise TypeError(f"layer '{node.output}' creates a mask, but its module {type(module).__name__} cannot")
        return module.make_mask(arguments[0])
    if node.mask_source == "input":
        return masks[node.inputs[0]]
    if node.mask_source == "steps":
        batch = arguments[0].shape[0]
        parts = [
            masks[name] if name in masks else torch.ones((batch, count), dtype=torch.bool, device=arguments[0].device)
            for name, count in zip(node.inputs, node.step_counts)
        ]
        return torch.cat(parts, dim=1)
    present = [masks[name] for name in node.inputs if name in masks]
    combined = present[0]
    for other in present[1:]:
        combined = combined & other
    return combined


class TorchModel(CompiledModel):
    """A spec built with torch; ``native`` is a ``GraphModule``."""

    backend = "torch"

    def __init__(self, graph: ModelGraph, dtype: str, device: str = "auto"):
        super().__init__(graph, dtype)
        if dtype not in DTYPES:
            raise UsageError(f"expected dtype float32 or float64, received {dtype!r}")
        self.torch_dtype = DTYPES[dtype]
        self.device = resolve_device(device)
        seed = graph.spec.training.seed if graph.spec.training else 0
        self._module = GraphModule(graph, BuildContext(self.torch_dtype, self.device, seed))
        self._module.eval()
        keys = {planned.output: planned.key for planned in self._module.plan}
        self.slots = {slot.canonical: slot for node in graph.nodes for slot in layout.node_slots(node)}
        # torch keeps each parameter in a tensor of its own, so a slot is its array.
        self._slots = [
            (slot, _tensor_at(self._module.layers[keys[slot.node]], slot.path)) for slot in self.slots.values()
        ]

    @property
    def native(self) -> GraphModule:
        return self._module

    # --- weights ------------------------------------------------------------------

    def get_weights(self) -> dict[str, np.ndarray]:
        weights = {}
        for slot, tensor in self._slots:
            weights.update(to_canonical([slot], tensor.detach().cpu().numpy()))
        return weights

    def _assign_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        with torch.no_grad():
            for slot, tensor in self._slots:
                tensor.copy_(torch.from_numpy(to_native([slot], weights)))

    def native_param_count(self) -> int:
        parameters = sum(p.numel() for p in self._module.parameters())
        statistics = sum(
            m.running_mean.numel() + m.running_var.numel() for m in self._module.modules() if isinstance(m, BatchNorm)
        )
        return parameters + statistics

    def trainable_slots(self) -> list[tuple[Slot, torch.Tensor]]:
        """(slot, parameter) for every trainable parameter, in canonical order."""
        return [(slot, tensor) for slot, tensor in self._slots if slot.trainable]

    # --- running ------------------------------------------------------------------

    def input_tensors(self, arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Checked numpy inputs (from ``_as_input_dict``) as tensors on the model's device."""
        return {name: torch.from_numpy(np.ascontiguousarray(array)).to(self.device) for name, array in arrays.items()}

    def tensor_names(self) -> list[str]:
        """Names ``forward`` reports and ``gradients`` accepts: the outputs, then every head's logits tensor."""
        return list(dict.fromkeys([*self.graph.outputs, *(head.logits for head in self.graph.heads)]))

    def _set_mode(self, training: bool, step: int) -> None:
        self._module.train(training)
        self._module.set_step(step)

    def predict(self, inputs: Inputs, batch_size: int = 1024) -> np.ndarray | dict[str, np.ndarray]:
        arrays = self._as_input_dict(inputs)
        if batch_size < 1:
            raise UsageError(f"expected a positive batch_size, received {batch_size}")
        count = len(next(iter(arrays.values())))
        self._set_mode(False, 0)
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in self.graph.outputs}
        with torch.inference_mode():
            for start in range(0, count, batch_size):
                batch = self.input_tensors({k: v[start : start + batch_size] for k, v in arrays.items()})
                for name, value in self._module.tensors(batch, self.graph.outputs).items():
                    chunks[name].append(value.cpu().numpy())
        results = {
            name: np.concatenate(parts) if parts else np.zeros((0, *self.graph.output_shape(name)), self.dtype)
            for name, parts in chunks.items()
        }
        return results[self.graph.outputs[0]] if len(results) == 1 else results

    def forward(self, inputs: Inputs, *, training: bool = False, step: int = 0) -> dict[str, np.ndarray]:
        """Outputs by id, plus every head's logits under their tensor name (``head.logits``).

        Training mode uses the dropout masks of ``step`` and updates batch-norm statistics.
        """
        tensors = self.input_tensors(self._as_input_dict(inputs))
        self._set_mode(training, step)
        try:
            with torch.no_grad():
                values = self._module.tensors(tensors, self.tensor_names())
        finally:
            self._module.eval()
        return {name: value.cpu().numpy() for name, value in values.items()}

    def gradients(
        self, inputs: Inputs, cotangents: Mapping[str, np.ndarray], *, training: bool = False, step: int = 0
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Gradients of ``sum_k sum(tensor_k * cotangents[k])``; k: an output id, the head's logits
        tensor name, or any other node id or ``"{id}:pre"``.

        Returns (canonical trainable parameter name -> gradient, float input name -> gradient).
        With ``training=True`` batch norm uses (and updates) batch statistics, as in ``forward``.
        """
        arrays = self._as_input_dict(inputs)
        tensors = self.input_tensors(arrays)
        float_inputs = [name for name in arrays if self.spec.inputs[name].dtype == "float"]
        for name in float_inputs:
            tensors[name].requires_grad_(True)
        known = {node.id for node in self.graph.nodes} | {f"{n.id}:pre" for n in self.graph.nodes if n.activation}
        unknown = [key for key in cotangents if key not in known]
        if unknown or not cotangents:
            raise UsageError(
                f"expected cotangents for output ids or the logits tensor {self.tensor_names()} "
                f"(or any node id / '{{id}}:pre'), received {list(cotangents)}"
            )
        trainable = self.trainable_slots()
        self._set_mode(training, step)
        try:
            with torch.enable_grad():
                values = self._module.tensors(tensors, list(cotangents))
                # cotangents is not empty (checked above), so the sum is a tensor, never the start value 0.
                total = cast(
                    torch.Tensor,
                    sum(
                        (
                            values[key]
                            * torch.as_tensor(np.asarray(cotangent), dtype=self.torch_dtype, device=self.device)
                        ).sum()
                        for key, cotangent in cotangents.items()
                    ),
                )
                sources = [tensor for _, tensor in trainable] + [tensors[name] for name in float_inputs]
                found = torch.autograd.grad(total, sources, allow_unused=True) if sources else ()
        finally:
            self._module.eval()
        # allow_unused: None for a source the total does not depend on.
        grads = [torch.zeros_like(source) if g is None else g for g, source in zip(found, sources)]
        params = {}
        for (slot, _), grad in zip(trainable, grads):
            params.update(to_canonical([slot], grad.cpu().numpy()))
        inputs_grads = {name: g.cpu().numpy() for name, g in zip(float_inputs, grads[len(trainable) :])}
        return params, inputs_grads


def _tensor_at(module: nn.Module, path: str) -> torch.Tensor:
    owner, _, name = path.rpartition(".")
    return getattr(module.get_submodule(owner) if owner else module, name)


def build(
    graph: ModelGraph, weights: Mapping[str, np.ndarray], dtype: str = "float32", device: str = "auto"
) -> TorchModel:
    """Build ``graph`` as a torch model holding ``weights`` (canonical layout)."""
    model = TorchModel(graph, dtype, device)
    model.set_weights(weights)
    return model
