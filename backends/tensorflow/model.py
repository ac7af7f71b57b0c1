"""The TensorFlow CompiledModel: a functional keras.Model built node by node from the graph."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from archspec.errors import BackendUnavailableError, UsageError
from archspec.graph import ModelGraph, Node
from archspec.layout import Slot, group_by_array, to_canonical, to_native
from archspec.model import CompiledModel, Inputs

from . import layout
from .activations import Activation
from .context import BuildContext
from .core import created_mask
from .layers import BUILDERS, STEP_READERS


def resolve_device(device: str) -> str:
    """ "auto" | "cpu" | "cuda" -> a TensorFlow device name."""
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"expected device 'auto', 'cpu' or 'cuda', received {device!r}")
    has_gpu = bool(tf.config.list_logical_devices("GPU"))
    if device == "cuda" and not has_gpu:
        raise BackendUnavailableError(
            "expected a GPU for device 'cuda', received none: TensorFlow sees no GPU (use device 'auto' or 'cpu')"
        )
    if device != "cpu" and has_gpu:
        # float32 parity on a GPU needs full-precision matmuls (docs/semantics.md).
        tf.config.experimental.enable_tensor_float_32_execution(False)
        return "/GPU:0"
    return "/CPU:0"


def native_names(graph: ModelGraph) -> dict[str, str]:
    """Node id -> Keras layer name, and ``"{id}:pre"`` -> the name of the Activation layer that
    follows a dense or conv2d. Keras refuses "/" in names, which the ids of block copies hold
    (``encoder_2/attention``): it becomes "." ("." occurs in no node id), and an activation
    layer is ``"{name}.activation"``; a name already taken gets "_" appended until it is free."""
    taken: set[str] = set()
    names: dict[str, str] = {}
    wanted = [(node.id, node.id.replace("/", ".")) for node in graph.nodes]
    wanted += [
        (f"{node.id}:pre", node.id.replace("/", ".") + ".activation")
        for node in graph.nodes
        if node.layer.activation_after
    ]
    for key, name in wanted:
        while name in taken:
            name += "_"
        taken.add(name)
        names[key] = name
    return names


@keras.saving.register_keras_serializable(package="archspec")
class Network(keras.Model):
    """A functional ``keras.Model`` whose training calls advance its dropout step.

    archspec's engine sets the step before each of its steps (and runs the layers through
    other functional models); ``fit`` or a user's own loop calls this model, and each
    training call uses the step and then advances it by one, so every batch gets fresh masks.
    """

    def call(self, inputs, training=None, mask=None, **kwargs):
        outputs = super().call(inputs, training=training, mask=mask, **kwargs)
        if training:
            # Automatic control dependencies order this after the dropout layers' reads.
            for step in {
                id(layer.step): layer.step for layer in self.layers if isinstance(layer, STEP_READERS)
            }.values():
                step.assign_add(1)
        return outputs


class TensorFlowModel(CompiledModel):
    """A spec built with Keras on TensorFlow.

    ``native`` is a functional ``keras.Model`` (spec inputs -> spec outputs) whose layers
    are named after the node ids. ``logits_model`` shares its layers and outputs the
    tensor the loss reads. ``step`` is the int64 variable the dropout layers read.
    """

    backend = "tensorflow"

    def __init__(self, graph: ModelGraph, dtype: str, device: str):
        super().__init__(graph, dtype)
        self.device = device
        with tf.device(device):
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="dropout_step")
            # Where this worker's share starts in the global batch (dropout indexes samples by it).
            self.offset = tf.Variable(0, dtype=tf.int64, trainable=False, name="dropout_offset")
            self._build()
        # Canonical name -> slot; and each variable holding parameters, with the slots it holds.
        self.slots = {slot.canonical: slot for node in graph.nodes for slot in layout.node_slots(node)}
        self.arrays = [
            (_attribute(self.layers[group[0].node], group[0].path), group)
            for group in group_by_array(self.slots.values())
        ]
        # TensorFlow's "frequent retracing" warning counts traces per code object, so every
        # model built in one process would add to one count; a partial has no code object.
        self._infer = tf.function(functools.partial(TensorFlowModel._call_forward_model, self), reduce_retracing=True)

    def _build(self) -> None:
        graph, dtype = self.graph, self.dtype
        seed = graph.spec.training.seed if graph.spec.training else 0
        context = BuildContext(dtype, seed, self.step, self.offset)
        inputs = {
            name: keras.Input(tuple(spec.shape), dtype=dtype if spec.dtype == "float" else spec.dtype, name=name)
            for name, spec in graph.spec.inputs.items()
        }
        tensors = dict(inputs)
        # Masked tensor -> its mask ((batch, steps) bool), by archspec's rules (Node.mask_source):
        # masks are passed explicitly to the layers that honour them, never left to Keras' own
        # propagation (which, for merges, differs: docs/semantics.md, "Masks").
        masks: dict[str, keras.KerasTensor] = {}
        self.layers: dict[str, keras.layers.Layer] = {}
        names = native_names(graph)
        for node in graph.nodes:
            # Builders name the Keras layer after node.id; they get the Keras-legal name.
            layer = BUILDERS[node.type](dataclasses.replace(node, id=names[node.id]), context)
            arguments = [tensors[ref] for ref in node.inputs]
            if node.layer.mask_rule == "consume" and node.input_masked[node.mask_input]:
                # The one mask it reads (a recurrent layer its input's, attention its key's).
                mask = masks[node.inputs[node.mask_input]]
                output = layer(arguments[0] if len(arguments) == 1 else arguments, mask=mask)
                # Keras attaches the mask to a sequence output for its own propagation (which
                # other Keras layers would then apply by Keras' rules); a copy carries none, so
                # only the masks passed here, by archspec's rules, ever reach a layer.
                output = keras.ops.copy(output)
            else:
                output = layer(arguments[0] if len(arguments) == 1 else arguments)
            if node.mask_source is not None:
                masks[node.id] = _output_mask(node, arguments, masks)
            # The spec class says where a layer's activation acts (archspec.spec.layers): the whole
            # of an activation layer, or a separate Activation after dense/conv2d, so the
            # pre-activation tensor (the logits of a softmax head) exists.
            if node.layer.activation_only:
                tensors[f"{node.id}:pre"] = arguments[0]
            elif node.layer.activation_after:
                tensors[f"{node.id}:pre"] = output
                # Never None here: a layer with activation_after has an activation field.
                if node.activation is not None and node.activation != "linear":
                    output = Activation(node.activation, name=names[f"{node.id}:pre"], dtype=dtype)(output)
            tensors[node.id] = output
            self.layers[node.id] = layer

        outputs = graph.outputs
        single_input = len(inputs) == 1
        self._native = Network(
            next(iter(inputs.values())) if single_input else inputs,
            tensors[outputs[0]] if len(outputs) == 1 else {name: tensors[name] for name in outputs},
            name=re.sub(r"[^A-Za-z0-9_.-]", "_", graph.spec.name),
        )
        # The tensors forward() and gradients() report: the outputs, then the head logits.
        self._forward_names = list(dict.fromkeys([*outputs, *(head.logits for head in graph.heads)]))
        self._forward_model = keras.Model(inputs, [tensors[name] for name in self._forward_names])
        self.logits_model = keras.Model(inputs, tensors[graph.heads[0].logits]) if graph.heads else None
        # Every head's logits, in the order of graph.heads (what a step's loss reads).
        self.heads_model = keras.Model(inputs, [tensors[head.logits] for head in graph.heads]) if graph.heads else None

    @property
    def native(self) -> keras.Model:
        return self._native

    # --- running ---------------------------------------------------------------------

    def _call_forward_model(self, inputs, training=False) -> Sequence[tf.Tensor]:
        with tf.device(self.device):
            values = self._forward_model(inputs, training=training)
        # Keras returns a bare tensor for a one-element output list.
        return values if isinstance(values, (list, tuple)) else [values]

    def _tensor_name(self, key: str) -> str:
        """A key of forward()/gradients() (an output id, or the head's logits tensor name) -> that tensor."""
        if any(key == head.logits for head in self.graph.heads):
            return key
        if key not in self.graph.outputs:
            expected = self._forward_names
            raise UsageError(f"expected a key among {expected}, received {key!r}")
        return key

    def predict(self, inputs: Inputs, batch_size: int = 1024):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"expected a positive integer batch_size, received batch_size={batch_size!r}")
        arrays = self._as_input_dict(inputs)
        count = len(next(iter(arrays.values())))
        chunks = []
        for start in range(0, max(count, 1), batch_size):
            batch = {name: array[start : start + batch_size] for name, array in arrays.items()}
            chunks.append([value.numpy() for value in self._infer(batch)])
        results = {name: np.concatenate([chunk[k] for chunk in chunks]) for k, name in enumerate(self._forward_names)}
        if len(self.graph.outputs) == 1:
            return results[self.graph.outputs[0]]
        return {name: results[name] for name in self.graph.outputs}

    def _run(self, inputs: Inputs, training: bool, step: int, tape: tf.GradientTape | None = None):
        arrays = self._as_input_dict(inputs)
        with tf.device(self.device):
            tensors = {name: tf.convert_to_tensor(array) for name, array in arrays.items()}
            if tape is not None:
                for name, model_input in self.spec.inputs.items():
                    if model_input.dtype == "float":
                        tape.watch(tensors[name])
            self.step.assign(step)
            self.offset.assign(0)
            values = self._infer(tensors, training=training)
        return tensors, dict(zip(self._forward_names, values))

    def forward(self, inputs: Inputs, *, training: bool = False, step: int = 0) -> dict[str, np.ndarray]:
        """Outputs by id, plus every head's logits under their tensor name (``head.logits``,
        e.g. ``"dense_2:pre"``); training mode uses batch statistics (and updates the moving
        ones) and the dropout masks of ``step``."""
        _, values = self._run(inputs, training, step)
        return {name: values[name].numpy() for name in self._forward_names}

    def gradients(self, inputs: Inputs, cotangents: Mapping[str, np.ndarray], *, training: bool = False, step: int = 0):
        """Gradients of ``sum_k sum(tensor_k * cotangents[k])``: (canonical name -> gradient
        for trainable parameters, input name -> gradient for float inputs)."""
        if not cotangents:
            raise UsageError("expected at least one cotangent (by output id or the logits tensor name), received none")
        names = {key: self._tensor_name(key) for key in cotangents}
        trainable = [name for name, slot in self.slots.items() if slot.trainable]
        groups = self.trainable_arrays()
        with tf.GradientTape() as tape:
            tensors, values = self._run(inputs, training, step, tape)
            total = tf.add_n(
                [
                    tf.reduce_sum(values[names[key]] * tf.convert_to_tensor(cotangent, values[names[key]].dtype))
                    for key, cotangent in cotangents.items()
                ]
            )
        float_inputs = [name for name, spec in self.spec.inputs.items() if spec.dtype == "float"]
        sources = [variable for variable, _ in groups] + [tensors[name] for name in float_inputs]
        grads = tape.gradient(total, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        # Embedding gradients come as IndexedSlices; the canonical gradient is dense.
        grads = [tf.convert_to_tensor(grad).numpy() for grad in grads]
        param_grads = {}
        for (_, parts), grad in zip(groups, grads):
            param_grads.update(to_canonical(parts, grad))
        param_grads = {name: param_grads[name] for name in trainable}
        input_grads = dict(zip(float_inputs, grads[len(groups) :]))
        return param_grads, input_grads

    # --- weights ---------------------------------------------------------------------

    def trainable_arrays(self) -> list[tuple[keras.Variable, list[Slot]]]:
        """(variable, the slots it holds) for every variable holding trainable parameters, in canonical order."""
        return [(variable, group) for variable, group in self.arrays if group[0].trainable]

    def get_weights(self) -> dict[str, np.ndarray]:
        values = {}
        for variable, group in self.arrays:
            values.update(to_canonical(group, variable.numpy()))
        return {name: values[name] for name in self.slots}

    def _assign_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        weights = {name: np.asarray(value, dtype=self.dtype) for name, value in weights.items()}
        for variable, group in self.arrays:  # one assignment per variable
            variable.assign(to_native(group, weights))

    def native_param_count(self) -> int:
        return self._native.count_params()


def _output_mask(node: Node, arguments: list, masks: Mapping[str, keras.KerasTensor]):
    """The mask of a masked node's output, as ``Node.mask_source`` says (docs/semantics.md, "Masks")."""
    if node.mask_source == "create":
        return created_mask(node, arguments[0])
    if node.mask_source == "input":
        return masks[node.inputs[0]]
    if node.mask_source == "steps":
        # An input without a mask is valid at every step: a row of True as long as its steps.
        parts = [
            masks[name] if name in masks else keras.ops.ones_like(keras.ops.sum(x, axis=-1), dtype="bool")
            for name, x in zip(node.inputs, arguments)
        ]
        return keras.ops.concatenate(parts, axis=1)
    present = [masks[name] for name in node.inputs if name in masks]
    combined = present[0]
    for other in present[1:]:
        combined = keras.ops.logical_and(combined, other)
    return combined


def _attribute(layer: keras.layers.Layer, path: str) -> keras.Variable:
    """The variable at ``path`` (``"cell.bias"``) inside ``layer``."""
    return functools.reduce(getattr, path.split("."), layer)


def build(
    graph: ModelGraph, weights: Mapping[str, np.ndarray], dtype: str = "float32", device: str = "auto"
) -> TensorFlowModel:
    """Build ``graph`` as a Keras model holding ``weights`` (canonical layout)."""
    model = TensorFlowModel(graph, dtype, resolve_device(device))
    model.set_weights(weights)
    return model
