"""Importing a Keras 3 model: its graph as a spec, its variables as canonical weights, and the
model itself as the ``Original`` the proof runs (``archspec.porting``).

The functional graph (a ``Sequential`` has one too) is walked from the outputs back to the
inputs, following the tensors a layer computes from (never the masks Keras passes beside
them: archspec derives masks by its own rules, ``docs/semantics.md``). Each layer becomes one
spec node named after it; its parameters are read through this backend's layout table
(``layout.node_slots``), the one place that knows where Keras keeps them. Every layer or
operation that cannot be expressed is collected, and all are refused together.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import keras
import numpy as np
from pydantic import ValidationError

from archspec.errors import UnsupportedModelError, UsageError
from archspec.graph import GraphProblems, ModelGraph, resolve
from archspec.layout import group_by_array, to_canonical
from archspec.porting import Imported
from archspec.porting.training import default_training, training_from_compile
from archspec.spec.document import Spec

from . import layout
from .porting_common import ARCHSPEC_ACTIVATION, IDENTITY_OPERATIONS, Unsupported, is_stock, unmapped_initializers
from .porting_layers import CONVERTERS, OPERATION_CONVERTERS, stock_attention
from .porting_original import KerasOriginal

_MASK_ARGUMENTS = ("mask", "attention_mask", "query_mask", "value_mask", "key_mask", "training")
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


def _history(tensor) -> tuple[Any, Any]:
    """(operation, Keras node) that computed ``tensor``."""
    operation, node_index, _ = tensor._keras_history
    return operation, operation._inbound_nodes[node_index]


def _data_tensors(node) -> list:
    """The tensors a call computes from: its positional arguments and the key/value of attention,
    not masks or flags."""
    tensors = list(keras.tree.flatten(node.arguments.args))
    for key, value in node.arguments.kwargs.items():
        if key not in _MASK_ARGUMENTS:
            tensors += keras.tree.flatten(value)
    return [t for t in tensors if isinstance(t, keras.KerasTensor)]


def _in_order(model) -> list:
    """The Keras nodes that lead to the outputs, each after the nodes it reads."""
    order: list = []
    seen: set[int] = set()
    stack = [(t, False) for t in reversed(list(model.outputs))]
    while stack:
        tensor, expanded = stack.pop()
        _, node = _history(tensor)
        if id(node) in seen:
            continue
        if expanded:
            seen.add(id(node))
            order.append(node)
            continue
        stack.append((tensor, True))
        stack += [(t, False) for t in reversed(_data_tensors(node)) if id(_history(t)[1]) not in seen]
    return order


def _spec_id(name: str, taken: set[str]) -> str:
    # archspec names a block copy's layers "copy.layer" (Keras refuses "/"): "." reads back as "/".
    wanted = name.replace(".", "/")
    if not _ID.match(wanted):
        wanted = re.sub(r"[^A-Za-z0-9_]", "_", name)
        wanted = wanted if re.match(r"^[A-Za-z_]", wanted) else f"_{wanted}"
    candidate, count = wanted, 1
    while candidate in taken:
        count += 1
        candidate = f"{wanted}_{count}"
    taken.add(candidate)
    return candidate


class _Reading:
    """One walk over a Keras model: the spec document's inputs and layers, the tensor of each
    spec node, the Keras layer of each node, and what cannot be expressed."""

    def __init__(self, model):
        if not isinstance(model, keras.Model):
            raise UsageError(f"expected a keras.Model, received {type(model).__name__}")
        try:
            outputs = model.outputs
        except (AttributeError, ValueError):
            outputs = None
        if not outputs:
            raise UsageError(
                "expected a built Sequential or functional Keras model (with an Input), received "
                f"{type(model).__name__} {model.name!r} without a graph (subclassed, or never built)"
            )
        self.model = model
        self.inputs: dict[str, dict[str, Any]] = {}
        self.input_order: list[str] = []
        self.layers: list[dict[str, Any]] = []
        self.tensors: dict[str, Any] = {}  # spec node id -> the Keras tensor it computes
        self.keras_layers: dict[str, Any] = {}
        self.unsupported: list[tuple[str, str, str]] = []
        self._refs: dict[int, str] = {}  # id(Keras tensor) -> spec name (input or node id)
        self._taken: set[str] = set()
        self._kinds: dict[str, str] = {}
        self._called: set[int] = set()  # the operations read so far (a second call shares weights)
        for node in _in_order(model):
            self._read(node)
        self.outputs = [self._refs.get(id(t), "") for t in outputs]
        for tensor in model.inputs:  # an input that no output reads is still an input of the model
            if id(tensor) not in self._refs:
                self._read(_history(tensor)[1])
        self.input_order = [self._refs[id(t)] for t in model.inputs]
        self._mark_mask_zero()

    def _read(self, node) -> None:
        operation = node.operation
        kind = type(operation).__name__
        if isinstance(operation, keras.layers.InputLayer):
            self._read_input(operation, node)
            return
        if isinstance(operation, keras.Model):
            self._refuse(operation, node, "a nested model (build the model from its layers)")
            return
        found = [self._refs.get(id(t)) for t in _data_tensors(node)]
        sources = [source for source in found if source is not None]
        if len(sources) != len(found):
            return  # an earlier part could not be read (already listed)
        if kind in IDENTITY_OPERATIONS and len(sources) == 1:
            self._refs[id(node.outputs[0])] = sources[0]  # archspec's copy that drops Keras' own mask
            return
        if id(operation) in self._called:
            self._refuse(operation, node, "a layer called more than once (shared weights)")
            return
        self._called.add(id(operation))
        if self._fold_activation(operation, sources, node):
            return
        is_layer = isinstance(operation, keras.layers.Layer)
        converter = (CONVERTERS if is_layer else OPERATION_CONVERTERS).get(kind)
        if converter is None or len(node.outputs) != 1:
            reason = "runs arbitrary Python code" if kind == "Lambda" else "no archspec layer type computes it"
            self._refuse(operation, node, reason)
            return
        try:
            fields, sources = converter(operation, node, sources)
        except Unsupported as reason:
            self._refuse(operation, node, str(reason))
            return
        node_id = _spec_id(operation.name, self._taken)
        layer: dict[str, Any] = {"id": node_id, **fields}
        previous = self.layers[-1]["id"] if self.layers else None
        if not (
            sources == [previous] or (previous is None and len(self.model.inputs) == 1 and sources == list(self.inputs))
        ):
            layer["inputs"] = sources
        self.layers.append(layer)
        self.tensors[node_id] = node.outputs[0]
        self.keras_layers[node_id] = operation
        self._kinds[node_id] = kind
        self._refs[id(node.outputs[0])] = node_id

    def _refuse(self, operation, node, reason: str) -> None:
        """List ``operation`` as unsupported; its outputs still name it, so that the layers after
        it are read (and listed when they are unsupported too)."""
        self.unsupported.append((operation.name, type(operation).__name__, reason))
        for tensor in node.outputs:
            self._refs[id(tensor)] = operation.name

    def _read_input(self, operation, node) -> None:
        tensor = node.outputs[0]
        shape = tuple(tensor.shape[1:])
        name = _spec_id(operation.name, self._taken)
        self._refs[id(tensor)] = name
        if not shape or any(size is None for size in shape):
            self.unsupported.append(
                (operation.name, "InputLayer", f"expected a fixed shape per sample, received {list(shape)}")
            )
            return
        dtype = str(tensor.dtype)
        if dtype not in ("int32", "int64") and not dtype.startswith("float"):
            self.unsupported.append(
                (operation.name, "InputLayer", f"expected a float or integer input, received {dtype}")
            )
        self.inputs[name] = {"shape": [int(size) for size in shape]}
        if dtype in ("int32", "int64"):
            self.inputs[name]["dtype"] = dtype

    def _fold_activation(self, operation, sources, node) -> bool:
        """archspec's own build applies a dense or convolution's activation as a layer named
        ``"{layer}.activation"``: read it back as that layer's ``activation``."""
        own = type(operation).__name__ == ARCHSPEC_ACTIVATION and hasattr(operation, "function")
        if not own or len(sources) != 1 or not self.layers:
            return False
        last = self.layers[-1]
        keras_name = getattr(self.keras_layers.get(last["id"]), "name", None)
        if sources != [last["id"]] or operation.name != f"{keras_name}.activation" or "activation" not in last:
            return False
        if last["activation"] != "linear":
            return False
        last["activation"] = operation.function
        self.tensors[last["id"]] = node.outputs[0]
        self._refs[id(node.outputs[0])] = last["id"]
        return True

    def _mark_mask_zero(self) -> None:
        """archspec's own build masks ids with ``not_equal(ids, 0)`` beside a plain Embedding (it
        passes masks itself): such an embedding is ``mask_zero``."""
        compared = {
            self._refs.get(id(t))
            for operation in getattr(getattr(self.model, "_functional", None) or self.model, "operations", [])
            if type(operation).__name__ == "NotEqual"
            for node in operation._inbound_nodes
            for t in _data_tensors(node)[:1]
        }
        for layer in self.layers:
            if layer["type"] == "embedding" and self._kinds[layer["id"]] == "Embedding":
                source = layer.get("inputs", [self._previous_of(layer)])[0]
                if source in compared:
                    layer["mask_zero"] = True

    def _previous_of(self, layer: dict[str, Any]) -> str:
        index = self.layers.index(layer)
        return self.layers[index - 1]["id"] if index else next(iter(self.inputs))

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": re.sub(r"[^A-Za-z0-9_.-]", "_", self.model.name) or "imported",
            "inputs": {name: self.inputs[name] for name in self.input_order if name in self.inputs},
            "layers": self.layers,
        }
        if self.outputs != [self.layers[-1]["id"]]:
            document["outputs"] = self.outputs
        return document


def _weights(reading: _Reading, graph: ModelGraph) -> dict[str, np.ndarray]:
    weights: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        keras_layer = reading.keras_layers[node.id]
        if type(keras_layer).__name__ == "MultiHeadAttention" and is_stock(keras_layer):
            weights.update(stock_attention(node, keras_layer))
            continue
        for group in group_by_array(layout.node_slots(node)):
            variable = keras_layer
            for part in group[0].path.split("."):
                variable = getattr(variable, part)
            weights.update(to_canonical(group, np.asarray(keras.ops.convert_to_numpy(variable))))
    return {name: weights[name] for name in graph.parameters}


def read_keras(model) -> tuple[_Reading, ModelGraph]:
    """Walk ``model``; raises ``UnsupportedModelError`` listing every layer archspec cannot express."""
    reading = _Reading(model)
    if reading.unsupported:
        raise UnsupportedModelError(reading.unsupported)
    graph = resolve(Spec.model_validate(reading.document()))
    return reading, graph


def _training_problem(document: dict[str, Any]) -> str | None:
    """Why ``document``'s training section does not fit its model (a loss for another output), or None."""
    try:
        resolve(Spec.model_validate(document))
    except ValidationError as error:
        return str(error.errors()[0]["msg"])
    except GraphProblems as error:
        return error.problems[0][1]
    return None


def from_keras(model) -> Imported:
    """Import a built Sequential or functional Keras 3 ``model``: the spec document (with a
    training section from its ``compile()`` settings), canonical weights, and the model as the
    proof's ``Original``."""
    reading, graph = read_keras(model)
    document = reading.document()
    compile_config = model.get_compile_config() if getattr(model, "compiled", False) else None
    head = graph.node_by_id[graph.outputs[0]]
    training, notes = training_from_compile(compile_config, head.activation, head.output_shape[-1])
    if len(graph.outputs) == 1:
        document["training"] = training
        problem = _training_problem(document)
        if problem is not None:
            document["training"] = default_training(head.activation, head.output_shape[-1])
            notes.append(f"the compiled training does not fit the spec ({problem}); a default instead: review it")
            if _training_problem(document) is not None:
                del document["training"]
    else:  # a spec's training section reads one output
        notes = [f"the model has {len(graph.outputs)} outputs: the spec has no training section; add one to train it"]
    if any(layer["type"] == "dropout" or layer.get("dropout") for layer in reading.layers):
        notes.append(
            "dropout keeps its rates; in training its masks come from archspec's seeded stream "
            "(the same on every backend), not from Keras' generator"
        )
    unmapped = [
        f"{node_id}.{name}" for node_id, layer in reading.keras_layers.items() for name in unmapped_initializers(layer)
    ]
    if unmapped:
        notes.append(
            "initializers archspec has no counterpart for keep the spec's default (only training from scratch "
            f"sees them; the imported weights are unaffected): {', '.join(unmapped)}"
        )
    weights = _weights(reading, graph)
    return Imported(document, weights, KerasOriginal(model, reading, _Reading), notes)


def load_keras_file(path: str) -> Any:
    """A ``.keras`` file's model, loaded with ``safe_mode=True``: a Lambda layer (whose Python
    code the file would run) is refused before anything runs."""
    try:
        with warnings.catch_warnings():  # Keras warns of optimizer variables it does not restore
            warnings.simplefilter("ignore")
            return keras.saving.load_model(path, compile=True, safe_mode=True)
    except ValueError as error:
        text = str(error)
        if "safe_mode" in text or "Lambda" in text or "lambda" in text:
            raise UnsupportedModelError(
                [(path, "Lambda", "holds Python code (a Lambda layer), which safe mode refuses to load and run")]
            ) from None
        raise UsageError(
            f"expected a Keras model file, received {path!r} that Keras cannot load ({text.splitlines()[0]})"
        ) from None
    except (OSError, TypeError, KeyError) as error:
        raise UsageError(f"expected a Keras model file, received {path!r} that Keras cannot load ({error})") from None
