"""Import a ``torch.nn.Module`` into a spec and canonical weights (``from_torch``).

The module's forward is captured with ``torch.fx`` (a tracer that keeps ``nn.LSTM``,
``nn.MultiheadAttention`` and every mapped ``torch.nn`` module whole), its shapes from one
run on the example input, and translated node by node (``translator.py``). Inputs: a torch
CNN reads NCHW (or NCL) where the spec reads channels-last, so the spec input of an image
``(N, C, H, W)`` is ``(N, H, W, C)``; ``TorchOriginal`` moves the channels back before
running the original. archspec's own ``GraphModule`` (a compiled spec's ``native``) is read
from the graph it was built from, its weights through ``layout.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from archspec.errors import PortingError, SpecError, UsageError
from archspec.graph import GraphProblems, ModelGraph, resolve
from archspec.layout import to_canonical
from archspec.porting import Imported
from archspec.spec.document import Spec

from . import layout
from .model import DTYPES, GraphModule
from .translation import LEAF_MODULES, Tensor, spec_name
from .translator import Translator

DEFAULT_TRAINING_NOTE = (
    "training: a default (adam 0.001, batch 32, 10 epochs, seed 0; none for several outputs) that torch "
    "modules do not carry; review the loss, the optimizer and the epochs"
)


class _Tracer(fx.Tracer):
    """Traces into the user's own modules and keeps every mapped ``torch.nn`` module whole."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, LEAF_MODULES) or super().is_leaf_module(m, module_qualified_name)


def from_torch(module: nn.Module, example_input: torch.Tensor | np.ndarray | Sequence[torch.Tensor]) -> Imported:
    """The spec (a YAML-ready dict), canonical weights and the original of ``module``.

    ``example_input`` is one batch as the module takes it (NCHW for a CNN; a tensor or a numpy
    array), or a tuple of tensors for a module of several inputs. Raises ``PortingError`` listing every module or operation
    that cannot be mapped, with its name and type.
    """
    if not isinstance(module, nn.Module):
        raise UsageError(f"expected a torch.nn.Module, received {type(module).__name__}")
    if isinstance(example_input, np.ndarray):  # the command line's example: a numpy batch
        example_input = torch.from_numpy(example_input)
    examples = (example_input,) if isinstance(example_input, torch.Tensor) else tuple(example_input)
    if not examples or not all(isinstance(item, torch.Tensor) for item in examples):
        raise UsageError(
            f"expected example_input to be a tensor or a tuple of tensors, received {type(example_input).__name__}"
        )
    if isinstance(module, GraphModule):
        return _from_graph_module(module)
    # Traced and run in eval mode: `self.training` in a forward reads False (F.dropout(x, training=
    # self.training) is the identity the Original runs), and no batch-norm statistic moves.
    training = module.training
    module.eval()
    try:
        traced = _trace(module)
        names = [str(node.target) for node in traced.graph.nodes if node.op == "placeholder"]
        if len(names) != len(examples):
            raise UsageError(
                f"expected {len(names)} example input(s) for forward({', '.join(names)}), received {len(examples)}"
            )
        _propagate_shapes(module, traced, examples)
    finally:
        module.train(training)
    translator = Translator(traced, dict(zip(names, examples)))
    translator.run()
    if translator.problems:
        raise PortingError(
            f"expected modules and operations archspec can express, received {len(translator.problems)} that it "
            "cannot: " + "; ".join(translator.problems)
        )
    document = _document(type(module).__name__, translator)
    graph = _graph(document)
    weights = _canonical(graph, translator.native)
    original = TorchOriginal(traced, [spec_name(name) for name in names], translator)
    return Imported(document, weights, original, [*_input_notes(translator), *translator.notes, DEFAULT_TRAINING_NOTE])


def _input_notes(translator: Translator) -> list[str]:
    """How each input whose axes differ maps: torch's layout and the spec's."""
    notes = []
    for name in translator.inputs:
        shape = translator.inputs[name]["shape"]
        if name in translator.channels_first_inputs:
            torch_axes = ["C", *"HW"[: len(shape) - 1]] if len(shape) == 3 else ["C", "L"]
            spec_axes = [*torch_axes[1:], "C"]
            notes.append(
                f"input {name}: torch reads (N, {', '.join(torch_axes)}), the spec (N, {', '.join(spec_axes)}), "
                "channels last"
            )
        if name in translator.time_major_inputs:
            notes.append(
                f"input {name}: torch reads (steps, batch, ...) (batch_first=False), the spec (batch, steps, ...)"
            )
    return notes


def _propagate_shapes(module: nn.Module, traced: fx.GraphModule, examples: tuple[torch.Tensor, ...]) -> None:
    try:
        with torch.no_grad():
            ShapeProp(traced).propagate(*examples)
    except Exception as error:  # noqa: BLE001 (the user's forward may raise anything)
        raise UsageError(
            f"expected example_input that {type(module).__name__} accepts, received shapes "
            f"{[list(item.shape) for item in examples]} on which its forward failed: {type(error).__name__}: {error}"
        ) from None


def _trace(module: nn.Module) -> fx.GraphModule:
    try:
        graph = _Tracer().trace(module)
    except Exception as error:  # noqa: BLE001 (fx raises many types: TraceError, TypeError on control flow ...)
        raise PortingError(
            f"expected a forward that torch.fx can trace (no Python control flow on tensor values), "
            f"received {type(module).__name__} whose trace failed: {type(error).__name__}: {error}"
        ) from None
    traced = fx.GraphModule(module, graph)
    traced.graph.eliminate_dead_code()  # results nobody reads (`_` of `out, _ = attention(...)`) are no layers
    traced.recompile()
    return traced


def _document(name: str, translator: Translator) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": name,
        "inputs": translator.inputs,
        "layers": translator.layers,
        "outputs": [tensor.name for tensor in translator.outputs],
    }
    if len(translator.outputs) == 1:
        output = translator.outputs[0]
        last: Mapping[str, Any] = next((layer for layer in translator.layers if layer["id"] == output.name), {})
        document["training"] = _default_training(last, output.spec_shape)
    return document


def _default_training(last: Mapping[str, Any], shape: Sequence[int]) -> dict[str, Any]:
    """A training section for a module that carries none: for classes (softmax or log_softmax
    over one axis; torch's nll_loss on log_softmax is this cross-entropy) the sparse categorical
    cross-entropy, else mean squared error."""
    classifier = last.get("activation") in ("softmax", "log_softmax") and len(shape) == 1 and shape[0] >= 2
    return {
        "loss": "sparse_categorical_crossentropy" if classifier else "mse",
        "optimizer": {"type": "adam", "learning_rate": 0.001},
        "batch_size": 32,
        "epochs": 10,
        "seed": 0,
    }


def _graph(document: dict[str, Any]) -> ModelGraph:
    try:
        return resolve(Spec.model_validate(document))
    except GraphProblems as error:  # a translation the spec refuses is archspec's bug, said plainly
        raise SpecError(f"the imported spec is invalid: {error.problems}") from None


def _canonical(graph: ModelGraph, native: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """torch's arrays (by archspec's torch module paths) in the canonical layout, via ``layout.py``."""
    weights: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        for slot in layout.node_slots(node):
            weights.update(to_canonical([slot], native[node.id][slot.path]))
    return weights


# --- archspec's own modules ---------------------------------------------------------------


def _from_graph_module(module: GraphModule) -> Imported:
    """A compiled spec's ``native``: the graph it was built from and its tensors, in the canonical layout."""
    graph: ModelGraph = module.graph
    document = graph.spec.model_dump(mode="json", exclude_none=True, exclude={"data", "training"})
    if len(graph.outputs) == 1:
        (output,) = graph.outputs
        last: Mapping[str, Any] = next((layer for layer in document["layers"] if layer.get("id") == output), {})
        document["training"] = _default_training(last, graph.output_shape(output))
    keys = {planned.output: planned.key for planned in module.plan}
    weights: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        for slot in layout.node_slots(node):
            owner, _, attribute = slot.path.rpartition(".")
            layer = module.layers[keys[node.id]]
            tensor = getattr(layer.get_submodule(owner) if owner else layer, attribute)
            weights.update(to_canonical([slot], tensor.detach().cpu().numpy()))
    return Imported(document, weights, _GraphOriginal(module), [DEFAULT_TRAINING_NOTE])


# --- the originals --------------------------------------------------------------------------


def _to_numpy(value: Any, tensor: Tensor) -> np.ndarray:
    """A torch value as the spec holds it: channels-last, flat features in the spec's order."""
    if isinstance(value, (tuple, list)):
        value = value[0]  # attention's (output, weights)
    result = value.detach().cpu().numpy()
    if tensor.time_major:
        result = np.swapaxes(result, 0, 1)
    if tensor.channels_first:
        result = np.moveaxis(result, 1, -1)
    if tensor.order is not None:
        spec = np.empty_like(result)
        spec[:, tensor.order] = result
        result = spec
    return result


class _Recorder(fx.Interpreter):
    def __init__(self, module: fx.GraphModule, wanted: set[str]):
        super().__init__(module)
        self.wanted = wanted
        self.recorded: dict[str, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        if n.name in self.wanted:
            self.recorded[n.name] = value
        return value


class TorchOriginal:
    """The traced module, run in torch on channels-last spec inputs (moved to NCHW where torch reads channels first)."""

    framework = "torch"

    def __init__(self, traced: fx.GraphModule, names: Sequence[str], translator: Translator):
        self.traced = traced
        self.names = list(names)
        self.channels_first = set(translator.channels_first_inputs)
        self.time_major = set(translator.time_major_inputs)
        self.output_names = [tensor.name for tensor in translator.outputs]
        self.output_tensors = list(translator.outputs)
        self.taps = dict(translator.taps)

    def _run(self, inputs: Mapping[str, np.ndarray], dtype: str, wanted: set[str]) -> tuple[Any, dict[str, Any]]:
        model = copy.deepcopy(self.traced).to(DTYPES[dtype]).eval()
        arguments = []
        for name in self.names:
            value = np.asarray(inputs[name])
            if name in self.channels_first:
                value = np.moveaxis(value, -1, 1)
            if name in self.time_major:
                value = np.swapaxes(value, 0, 1)
            tensor = torch.from_numpy(np.ascontiguousarray(value))
            arguments.append(tensor.to(DTYPES[dtype]) if tensor.is_floating_point() else tensor.long())
        recorder = _Recorder(model, wanted)
        with torch.no_grad():
            result = recorder.run(*arguments)
        return result, recorder.recorded

    def outputs(self, inputs: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
        result, _ = self._run(inputs, dtype, set())
        values = result if isinstance(result, (tuple, list)) else (result,)
        return {
            name: _to_numpy(value, tensor)
            for name, value, tensor in zip(self.output_names, values, self.output_tensors)
        }

    def intermediates(self, inputs: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
        _, recorded = self._run(inputs, dtype, {node for node, _ in self.taps.values()})
        return {layer: _to_numpy(recorded[node], tensor) for layer, (node, tensor) in self.taps.items()}


class _GraphOriginal:
    """archspec's own GraphModule, run as it is (its inputs are channels-last already)."""

    framework = "torch"

    def __init__(self, module: GraphModule):
        self.module = module

    def _tensors(self, inputs: Mapping[str, np.ndarray], dtype: str, names: Sequence[str]) -> dict[str, np.ndarray]:
        model = copy.deepcopy(self.module).to(DTYPES[dtype]).eval()
        arrays = {}
        for name in model.input_names:
            tensor = torch.from_numpy(np.ascontiguousarray(inputs[name]))
            arrays[name] = tensor.to(DTYPES[dtype]) if tensor.is_floating_point() else tensor
        with torch.no_grad():
            values = model.tensors(arrays, names, step=0)
        return {name: value.cpu().numpy() for name, value in values.items()}

    def outputs(self, inputs: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
        return self._tensors(inputs, dtype, self.module.output_names)

    def intermediates(self, inputs: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
        return self._tensors(inputs, dtype, [planned.output for planned in self.module.plan])
