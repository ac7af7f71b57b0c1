"""One emitter per layer type for the Keras code format: a graph node -> the lines of the generated
``build_model`` (functional API), and its weights keyed ``"{layer name}/{attribute path}"``
(``dense_1/kernel``, ``enc/forward_layer.cell.kernel``): Keras keeps the canonical layout but for
the GRU's two biases, which are the rows of one ``(2, 3u)`` variable (``docs/layout.md``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from archspec.graph import Node
from archspec.spec import layers as spec

from ._writer import INDENT, LINE, Tensors, literal, python_name, statement


@dataclass
class KerasContext:
    """What the emitters fill: the lines of ``build_model`` (unindented statements), the weights by
    key, the helpers the file must define. ``name`` gives a node's Keras layer name."""

    tensors: Tensors
    name: Callable[[str], str]
    weights: Mapping[str, np.ndarray]
    lines: list[str] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    helpers: set[str] = field(default_factory=set)

    def weight(self, node: Node, name: str) -> np.ndarray:
        return np.asarray(self.weights[f"{node.id}.{name}"])

    def assign(self, target: str, expression: str, comment: str = "") -> None:
        self.lines.extend(statement(target, expression, INDENT, comment))

    def layer_call(self, target: str, expression: str) -> None:
        """``target = Layer(options)(inputs)``; when too long for a line, the layer gets a line of its own."""
        line = f"{INDENT}{target} = {expression}"
        if len(line) <= LINE or not expression.endswith(")"):
            self.assign(target, expression)
            return
        depth = 0
        for i in range(len(expression) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(expression[i], 0)
            if depth == 0:
                break
        layer = python_name(f"{target}_layer", self.tensors.taken)
        self.assign(layer, expression[:i])
        self.assign(target, f"{layer}{expression[i:]}")

    def store(self, node: Node, attributes: Mapping[str, str], prefix: str = "") -> None:
        """The node's canonical parameters ``{prefix}{param}`` under ``{layer}/{attribute}``."""
        for param, attribute in attributes.items():
            if f"{node.id}.{prefix}{param}" in self.weights:
                self.arrays[f"{self.name(node.id)}/{attribute}"] = self.weight(node, prefix + param)


def _options(node: Node, c: KerasContext) -> str:
    return f"name={literal(c.name(node.id))}, dtype=dtype"


def _dense(node: Node, c: KerasContext, x: list[str]) -> str:
    layer = node.layer_as(spec.Dense)
    c.store(node, {"kernel": "kernel", "bias": "bias"})
    return f"keras.layers.Dense({layer.units}, use_bias={layer.use_bias}, {_options(node, c)})({x[0]})"


def _convolution(node: Node, c: KerasContext, x: list[str]) -> str:
    layer = node.layer_as(spec.Conv1D if node.type == "conv1d" else spec.Conv2D)
    one = (lambda v: literal(v[0])) if layer.rank == 1 else literal
    arguments = f"{layer.filters}, {one(layer.kernel_sizes)}, strides={one(layer.stride_sizes)}"
    arguments += f", padding={literal(layer.padding)}, dilation_rate={one(layer.dilation_sizes)}"
    c.store(node, {"kernel": "kernel", "bias": "bias"})
    return f"keras.layers.Conv{layer.rank}D({arguments}, use_bias={layer.use_bias}, {_options(node, c)})({x[0]})"


def _pool(node: Node, c: KerasContext, x: list[str]) -> str:
    layer = node.layer
    if not isinstance(layer, (spec.MaxPool1D, spec.AvgPool1D, spec.MaxPool2D, spec.AvgPool2D)):
        raise TypeError(f"layer '{node.id}' is a {node.type} layer, not a pooling")
    kind = "MaxPooling" if node.type.startswith("max") else "AveragePooling"
    one = (lambda v: literal(v[0])) if layer.rank == 1 else literal
    arguments = f"{one(layer.pool_sizes)}, strides={one(layer.stride_sizes)}, padding={literal(layer.padding)}"
    return f"keras.layers.{kind}{layer.rank}D({arguments}, {_options(node, c)})({x[0]})"


def _global_pool(node: Node, c: KerasContext, x: list[str]) -> str:
    mode = "max" if node.type.startswith("global_max") else "avg"
    if node.input_masked and node.input_masked[0]:
        c.helpers.add("masked_pool")
        mask = c.tensors.masks[node.inputs[0]]
        return f"MaskedGlobalPool1D({literal(mode)}, {_options(node, c)})({x[0]}, steps_mask={mask})"
    kind = "GlobalMaxPooling" if mode == "max" else "GlobalAveragePooling"
    return f"keras.layers.{kind}{node.type[-2:].upper()}({_options(node, c)})({x[0]})"


def _norm(node: Node, c: KerasContext, x: list[str]) -> str:
    layer = node.layer
    if not isinstance(layer, (spec.BatchNorm, spec.LayerNorm)):
        raise TypeError(f"layer '{node.id}' is a {node.type} layer, not a normalisation")
    options = f"epsilon={layer.epsilon!r}, center={layer.center}, scale={layer.scale}"
    names = {"gamma": "gamma", "beta": "beta", "moving_mean": "moving_mean", "moving_variance": "moving_variance"}
    c.store(node, names)
    if isinstance(layer, spec.BatchNorm):
        # Keras' momentum is archspec's: moving = momentum * moving + (1 - momentum) * batch value.
        options = f"momentum={layer.momentum!r}, {options}"
        return f"keras.layers.BatchNormalization({options}, {_options(node, c)})({x[0]})"
    return f"keras.layers.LayerNormalization({options}, {_options(node, c)})({x[0]})"


def _embedding(node: Node, c: KerasContext, x: list[str]) -> str:
    layer = node.layer_as(spec.Embedding)
    c.store(node, {"embeddings": "embeddings"})
    if node.masked:
        mask = c.tensors.add_mask(node.id)
        c.assign(mask, f"keras.ops.not_equal({x[0]}, 0)", "mask_zero: the id 0 is padding (its row is still looked up)")
    return f"keras.layers.Embedding({layer.input_dim}, {layer.output_dim}, {_options(node, c)})({x[0]})"


def _masking(node: Node, c: KerasContext, x: list[str]) -> str:
    value = node.layer_as(spec.Masking).mask_value
    mask = c.tensors.add_mask(node.id)
    comment = f"steps whose features all equal {value!r} are padding"
    c.assign(mask, f"keras.ops.any(keras.ops.not_equal({x[0]}, {value!r}), axis=-1)", comment)
    return f"keras.ops.where({mask}[:, :, None], {x[0]}, keras.ops.zeros_like({x[0]}))"


def _recurrent_layer(layer, name: str) -> str:
    options = f"return_sequences={layer.return_sequences}, use_bias={layer.use_bias}, name={literal(name)}, dtype=dtype"
    if layer.type == "simple_rnn":
        return f"keras.layers.SimpleRNN({layer.units}, activation={literal(layer.activation)}, {options})"
    if layer.type == "lstm":
        return f"keras.layers.LSTM({layer.units}, {options})"
    # reset_after=True (Keras' default): the reset gate acts after the recurrent product, two biases.
    return f"keras.layers.GRU({layer.units}, reset_after=True, {options})"


def _store_recurrent(node: Node, c: KerasContext, layer, path: str, prefix: str) -> None:
    c.store(node, {"kernel": f"{path}cell.kernel", "recurrent_kernel": f"{path}cell.recurrent_kernel"}, prefix)
    if not layer.use_bias:
        return
    if layer.type == "gru":  # Keras keeps the input and recurrent biases as the rows of one variable
        biases = [c.weight(node, f"{prefix}bias"), c.weight(node, f"{prefix}recurrent_bias")]
        c.arrays[f"{c.name(node.id)}/{path}cell.bias"] = np.stack(biases)
    else:
        c.store(node, {"bias": f"{path}cell.bias"}, prefix)


def _masked_call(node: Node, c: KerasContext, layer: str, x: list[str]) -> str:
    """A Keras layer called with the mask archspec's rules give it; the copy drops the mask Keras
    attaches to the output, so no later layer applies it by Keras' own (different) rules."""
    if not node.input_masked[0]:
        return f"{layer}({x[0]})"
    var = c.tensors[node.id]
    c.layer_call(var, f"{layer}({x[0]}, mask={c.tensors.masks[node.inputs[0]]})")
    return f"keras.ops.copy({var})"


def _recurrent(node: Node, c: KerasContext, x: list[str]) -> str:
    layer = node.layer
    if not isinstance(layer, (spec.SimpleRNN, spec.LSTM, spec.GRU)):
        raise TypeError(f"layer '{node.id}' is a {node.type} layer, not a recurrent one")
    _store_recurrent(node, c, layer, "", "")
    return _masked_call(node, c, _recurrent_layer(layer, c.name(node.id)), x)


def _bidirectional(node: Node, c: KerasContext, x: list[str]) -> str:
    layer = node.layer_as(spec.Bidirectional)
    for direction in ("forward", "backward"):
        _store_recurrent(node, c, layer.layer, f"{direction}_layer.", f"{direction}.")
    # With a mask, Keras' backward copy (go_backwards) skips the masked steps too.
    inner = _recurrent_layer(layer.layer, c.name(node.id))
    wrapper = f"keras.layers.Bidirectional({inner}, merge_mode={literal(layer.merge_mode)}, {_options(node, c)})"
    return _masked_call(node, c, wrapper, x)


def _attention(node: Node, c: KerasContext, x: list[str]) -> str:
    layer = node.layer_as(spec.MultiHeadAttention)
    c.helpers.update({"attention", "dropout"})
    shapes = node.input_shapes
    query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
    key = shapes[2] if len(shapes) > 2 else value
    features = literal((query[-1], value[-1], key[-1]))
    sizes = f"features={features}, heads={layer.num_heads}, key_dim={layer.key_dim}, value_dim={layer.value_size}"
    sizes += f", output_dim={node.output_shape[-1]}"
    options = f"use_bias={layer.use_bias}, causal={layer.causal}, dropout={layer.dropout!r}, layer={node.index}"
    for projection in ("query", "key", "value", "output"):
        c.store(node, {f"{projection}_{part}": f"{projection}_dense.{part}" for part in ("kernel", "bias")})
    masked = node.input_masked[node.mask_input]
    extra = [f"key_mask={c.tensors.masks[node.inputs[node.mask_input]]}"] if masked else []
    return f"MultiHeadAttention({sizes}, {options}, {_options(node, c)})({', '.join([*x, *extra])})"


def _position(node: Node, c: KerasContext, x: list[str]) -> str:
    layer = node.layer_as(spec.PositionEmbedding)
    c.helpers.add("position")
    c.store(node, {"embeddings": "embeddings"})
    return f"PositionEmbedding({literal(layer.kind)}, {layer.max_length}, {_options(node, c)})({x[0]})"


def _dropout(node: Node, c: KerasContext, x: list[str]) -> str:
    c.helpers.add("dropout")
    rate = node.layer_as(spec.Dropout).rate
    return f"ArchspecDropout(rate={rate!r}, layer={node.index}, {_options(node, c)})({x[0]})"


def _merge(node: Node, c: KerasContext, x: list[str]) -> str:
    if node.type == "concatenate":
        axis = node.layer_as(spec.Concatenate).axis
        return (
            f"keras.layers.Concatenate(axis={axis + 1 if axis >= 0 else axis}, {_options(node, c)})([{', '.join(x)}])"
        )
    kind = "Add" if node.type == "add" else "Multiply"
    return f"keras.layers.{kind}({_options(node, c)})([{', '.join(x)}])"


def _reshape(node: Node, c: KerasContext, x: list[str]) -> str:
    return f"keras.layers.Reshape({literal(tuple(node.output_shape))}, {_options(node, c)})({x[0]})"


def activation_layer(c: KerasContext, activation: str, name: str, x: str) -> str:
    """Keras' Activation layer; leaky_relu and gelu are the file's own (Keras rounds their constants
    to float32)."""
    function = literal(activation)
    if activation in ("leaky_relu", "gelu"):
        c.helpers.add(activation)
        function = activation
    return f"keras.layers.Activation({function}, name={literal(name)}, dtype=dtype)({x})"


def _activation(node: Node, c: KerasContext, x: list[str]) -> str:
    return activation_layer(c, node.layer_as(spec.Activation).activation, c.name(node.id), x[0])


Emitter = Callable[[Node, KerasContext, list[str]], str]

EMITTERS: dict[str, Emitter] = {
    "dense": _dense,
    "activation": _activation,
    "dropout": _dropout,
    "flatten": lambda node, c, x: f"keras.layers.Flatten({_options(node, c)})({x[0]})",
    "reshape": _reshape,
    "conv1d": _convolution,
    "conv2d": _convolution,
    **dict.fromkeys(("maxpool1d", "avgpool1d", "maxpool2d", "avgpool2d"), _pool),
    **dict.fromkeys(("global_avgpool1d", "global_maxpool1d", "global_avgpool2d", "global_maxpool2d"), _global_pool),
    "batch_norm": _norm,
    "layer_norm": _norm,
    "embedding": _embedding,
    "masking": _masking,
    "simple_rnn": _recurrent,
    "lstm": _recurrent,
    "gru": _recurrent,
    "bidirectional": _bidirectional,
    "multi_head_attention": _attention,
    "position_embedding": _position,
    "add": _merge,
    "multiply": _merge,
    "concatenate": _merge,
}
