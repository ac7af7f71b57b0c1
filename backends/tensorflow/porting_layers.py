"""Keras layer -> spec layer fields, one converter per Keras class (``porting.py`` walks the graph).

A converter takes the layer, its Keras call node and the spec names of the tensors it reads,
and returns the spec fields (without ``id``) and the spec inputs; a setting archspec cannot
express raises ``Unsupported`` with the reason. Keras' stock layers and archspec's own (which
a spec compiled on this backend holds, so that a round trip reads back the same spec) are
read alike.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from archspec.graph import Node
from archspec.porting.training import shortest
from archspec.spec import layers as spec

from .porting_common import (
    KERNEL_INITIALIZERS,
    NORM_INITIALIZERS,
    RECURRENT_INITIALIZERS,
    Converter,
    activation_name,
    channels_last,
    compact,
    initialized,
    is_stock,
    need,
    regularizers,
)


def _dense(layer, node, sources):
    fields = {"type": "dense", "units": int(layer.units), "activation": activation_name(layer.activation)}
    if not layer.use_bias:
        fields["use_bias"] = False
    fields.update(initialized(layer, KERNEL_INITIALIZERS, spec.Dense))
    return {**fields, **regularizers(layer, ("kernel_regularizer", "bias_regularizer"))}, sources


def _activation(layer, node, sources):
    if hasattr(layer, "function"):  # archspec's own
        return {"type": "activation", "activation": layer.function}, sources
    return {"type": "activation", "activation": activation_name(layer.activation)}, sources


def _relu(layer, node, sources):
    need(
        layer.max_value is None and not layer.negative_slope and not layer.threshold,
        "expected a plain ReLU (no max_value, negative_slope or threshold)",
    )
    return {"type": "activation", "activation": "relu"}, sources


def _leaky_relu(layer, node, sources):
    need(
        np.isclose(layer.negative_slope, 0.2, rtol=0, atol=1e-7),
        f"expected negative_slope=0.2 (archspec's leaky_relu), received {layer.negative_slope}",
    )
    return {"type": "activation", "activation": "leaky_relu"}, sources


def _softmax(layer, node, sources):
    need(
        layer.axis in (-1, len(node.outputs[0].shape) - 1), f"expected softmax on the last axis, received {layer.axis}"
    )
    return {"type": "activation", "activation": "softmax"}, sources


def _elu(layer, node, sources):
    need(layer.alpha == 1.0, f"expected alpha=1.0 (archspec's elu), received {layer.alpha}")
    return {"type": "activation", "activation": "elu"}, sources


def _convolution(rank: int) -> Converter:
    def convert(layer, node, sources):
        channels_last(layer)
        need(layer.groups == 1, f"expected groups=1, received {layer.groups}")
        fields: dict[str, Any] = {
            "type": f"conv{rank}d",
            "filters": int(layer.filters),
            "kernel_size": compact(layer.kernel_size),
            "activation": activation_name(layer.activation),
        }
        if any(s != 1 for s in layer.strides):
            fields["strides"] = compact(layer.strides)
        if layer.padding != "valid":
            fields["padding"] = layer.padding
        if any(d != 1 for d in layer.dilation_rate):
            fields["dilation_rate"] = compact(layer.dilation_rate)
        if not layer.use_bias:
            fields["use_bias"] = False
        fields.update(initialized(layer, KERNEL_INITIALIZERS, spec.Conv2D))
        return {**fields, **regularizers(layer, ("kernel_regularizer", "bias_regularizer"))}, sources

    return convert


def _pool(type_name: str) -> Converter:
    def convert(layer, node, sources):
        channels_last(layer)
        fields: dict[str, Any] = {"type": type_name, "pool_size": compact(layer.pool_size)}
        if tuple(layer.strides) != tuple(layer.pool_size):
            fields["strides"] = compact(layer.strides)
        if layer.padding != "valid":
            fields["padding"] = layer.padding
        return fields, sources

    return convert


def _global_pool(type_name: str) -> Converter:
    def convert(layer, node, sources):
        channels_last(layer)
        need(not getattr(layer, "keepdims", False), "expected keepdims=False")
        return {"type": type_name}, sources

    return convert


def _zero_padding(rank: int) -> Converter:
    def convert(layer, node, sources):
        channels_last(layer)
        pairs = [tuple(int(v) for v in pair) for pair in ((layer.padding,) if rank == 1 else layer.padding)]
        flat = [amount for pair in pairs for amount in pair]
        if len(set(flat)) == 1:
            padding: Any = flat[0]
        elif rank == 2 and all(before == after for before, after in pairs):
            padding = [before for before, _ in pairs]
        else:
            padding = [list(pair) for pair in pairs] if rank == 2 else list(pairs[0])
        return {"type": f"zero_padding{rank}d", "padding": padding}, sources

    return convert


def _masked_global_pool(layer, node, sources):  # archspec's own, over a masked sequence
    return {"type": f"global_{layer.mode}pool1d"}, sources


def _last_axis(layer, node) -> None:
    axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
    rank = len(node.outputs[0].shape)
    need(axis in (-1, rank - 1), f"expected normalisation over the last axis, received axis={layer.axis}")


def _batch_norm(layer, node, sources):
    _last_axis(layer, node)
    need(not getattr(layer, "renorm", False), "expected renorm=False")
    fields = {"type": "batch_norm", "momentum": shortest(layer.momentum), "epsilon": shortest(layer.epsilon)}
    fields.update(initialized(layer, NORM_INITIALIZERS, spec.BatchNorm))
    return {**fields, **{flag: False for flag in ("center", "scale") if not getattr(layer, flag)}}, sources


def _layer_norm(layer, node, sources):
    _last_axis(layer, node)
    need(not getattr(layer, "rms_scaling", False), "expected rms_scaling=False")
    fields = {"type": "layer_norm", "epsilon": shortest(layer.epsilon)}
    fields.update(initialized(layer, NORM_INITIALIZERS, spec.LayerNorm))
    return {**fields, **{flag: False for flag in ("center", "scale") if not getattr(layer, flag)}}, sources


def _embedding(layer, node, sources):
    fields = {"type": "embedding", "input_dim": int(layer.input_dim), "output_dim": int(layer.output_dim)}
    if layer.mask_zero:
        fields["mask_zero"] = True
    fields.update(initialized(layer, ("embeddings_initializer",), spec.Embedding))
    return {**fields, **regularizers(layer, ("embeddings_regularizer",))}, sources


def _recurrent_fields(layer) -> dict[str, Any]:
    kind = type(layer).__name__
    cell = layer.cell
    for flag in ("go_backwards", "stateful", "return_state"):
        need(not getattr(layer, flag), f"expected {flag}=False")
    need(not cell.dropout and not cell.recurrent_dropout, "expected dropout=0 and recurrent_dropout=0")
    activation = activation_name(cell.activation)
    fields: dict[str, Any] = {"type": {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}[kind]}
    fields["units"] = int(cell.units)
    if kind == "SimpleRNN":
        need(activation in ("tanh", "relu"), f"expected activation tanh or relu, received {activation!r}")
        if activation != "tanh":
            fields["activation"] = activation
    else:
        need(activation == "tanh", f"expected activation='tanh', received {activation!r}")
        recurrent = activation_name(cell.recurrent_activation)
        need(recurrent == "sigmoid", f"expected recurrent_activation='sigmoid', received {recurrent!r}")
    if kind == "GRU":
        need(cell.reset_after, "expected reset_after=True (archspec's GRU applies the reset gate after the product)")
    if kind == "LSTM" and not cell.unit_forget_bias:
        fields["unit_forget_bias"] = False
    if layer.return_sequences:
        fields["return_sequences"] = True
    if not cell.use_bias:
        fields["use_bias"] = False
    fields.update(initialized(cell, RECURRENT_INITIALIZERS, spec.LSTM))
    names = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer")
    return {**fields, **regularizers(cell, names)}


def _recurrent(layer, node, sources):
    return _recurrent_fields(layer), sources


def _bidirectional(layer, node, sources):
    need(layer.merge_mode in ("concat", "sum", "mul", "ave"), f"expected a merge_mode, received {layer.merge_mode!r}")
    forward = _recurrent_fields(layer.forward_layer)
    backward = layer.backward_layer
    need(
        backward.go_backwards and type(backward) is type(layer.forward_layer),
        "expected the backward layer to be the forward one reading backwards",
    )
    backward_fields = _recurrent_fields(type(backward).from_config({**backward.get_config(), "go_backwards": False}))
    need(backward_fields == forward, "expected forward and backward layers of one configuration")
    fields: dict[str, Any] = {"type": "bidirectional", "layer": forward}
    if layer.merge_mode != "concat":
        fields["merge_mode"] = layer.merge_mode
    return fields, sources


def _attention(layer, node, sources):
    if not is_stock(layer):
        fields: dict[str, Any] = {"num_heads": layer.num_heads, "key_dim": layer.key_dim}
        value_dim, output_dim = layer.value_dim, layer.output_dim
        use_bias, causal, dropout = layer.use_bias, layer.causal, layer.dropout
    else:
        need(
            layer._attention_axes in (None, (1,)),
            f"expected attention over the steps, received {layer._attention_axes}",
        )
        fields = {"num_heads": int(layer.num_heads), "key_dim": int(layer.key_dim)}
        value_dim, output_dim = layer.value_dim, layer._output_shape
        use_bias, dropout = layer.use_bias, layer.dropout
        causal = bool(node.arguments.kwargs.get("use_causal_mask", False))
        need(
            not isinstance(node.arguments.kwargs.get("attention_mask"), keras.KerasTensor),
            "expected no attention_mask tensor (archspec derives masks from the inputs)",
        )
        if isinstance(output_dim, (tuple, list)):
            need(len(output_dim) == 1, f"expected a one-axis output_shape, received {output_dim}")
            output_dim = output_dim[0]
        sources = _attention_sources(sources)
    fields["type"] = "multi_head_attention"
    if value_dim is not None and value_dim != fields["key_dim"]:
        fields["value_dim"] = int(value_dim)
    if output_dim is not None and output_dim != node.arguments.args[0].shape[-1]:
        fields["output_dim"] = int(output_dim)
    if not use_bias:
        fields["use_bias"] = False
    if causal:
        fields["causal"] = True
    if dropout:
        fields["dropout"] = shortest(dropout)
    return fields, sources


def _attention_sources(sources: list[str]) -> list[str]:
    """Keras calls attention with (query, value[, key]); archspec's [query] is self-attention."""
    if len(sources) == 3 and sources[2] == sources[1]:
        sources = sources[:2]
    if len(sources) == 2 and sources[1] == sources[0]:
        sources = sources[:1]
    return sources


def stock_attention(node: Node, layer) -> dict[str, np.ndarray]:
    """Canonical weights of Keras' stock ``MultiHeadAttention`` (heads as a separate axis there)."""
    weights: dict[str, np.ndarray] = {}
    for projection in ("query", "key", "value", "output"):
        dense = getattr(layer, f"_{projection}_dense")
        kernel = np.asarray(keras.ops.convert_to_numpy(dense.kernel))
        rows = kernel.shape[0] if projection != "output" else kernel.shape[0] * kernel.shape[1]
        weights[f"{node.id}.{projection}_kernel"] = kernel.reshape(rows, -1)
        if dense.bias is not None:
            weights[f"{node.id}.{projection}_bias"] = np.asarray(keras.ops.convert_to_numpy(dense.bias)).reshape(-1)
    return weights


def _merge(type_name: str) -> Converter:
    def convert(layer, node, sources):
        return {"type": type_name}, sources

    return convert


def _concatenate(layer, node, sources):
    axis = int(layer.axis)
    return {"type": "concatenate", "axis": axis - 1 if axis > 0 else axis}, sources


def _flatten(layer, node, sources):
    channels_last(layer)
    return {"type": "flatten"}, sources


def _reshape(layer, node, sources):
    return {"type": "reshape", "target_shape": [int(v) for v in layer.target_shape]}, sources


def _dropout(layer, node, sources):
    need(getattr(layer, "noise_shape", None) is None, "expected noise_shape=None")
    return {"type": "dropout", "rate": shortest(layer.rate)}, sources


def _masking(layer, node, sources):
    return {"type": "masking", "mask_value": float(layer.mask_value)}, sources


def _position_embedding(layer, node, sources):  # archspec's own
    return {"type": "position_embedding", "kind": layer.kind, "max_length": int(layer.max_length)}, sources


def _operation_merge(type_name: str) -> Converter:
    """``x + y`` and ``x * y`` in a functional model are operations, not layers."""

    def convert(operation, node, sources):
        shapes = {tuple(t.shape) for t in keras.tree.flatten(node.arguments.args)}
        need(len(sources) == 2 and len(shapes) == 1, "expected two tensors of one shape (no broadcasting)")
        return {"type": type_name}, sources

    return convert


CONVERTERS: dict[str, Converter] = {
    "Dense": _dense,
    "Activation": _activation,
    "ReLU": _relu,
    "LeakyReLU": _leaky_relu,
    "Softmax": _softmax,
    "ELU": _elu,
    "Conv1D": _convolution(1),
    "Conv2D": _convolution(2),
    "MaxPooling1D": _pool("maxpool1d"),
    "AveragePooling1D": _pool("avgpool1d"),
    "MaxPooling2D": _pool("maxpool2d"),
    "AveragePooling2D": _pool("avgpool2d"),
    "GlobalAveragePooling1D": _global_pool("global_avgpool1d"),
    "GlobalMaxPooling1D": _global_pool("global_maxpool1d"),
    "GlobalAveragePooling2D": _global_pool("global_avgpool2d"),
    "GlobalMaxPooling2D": _global_pool("global_maxpool2d"),
    "MaskedGlobalPool1D": _masked_global_pool,
    "ZeroPadding1D": _zero_padding(1),
    "ZeroPadding2D": _zero_padding(2),
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "Embedding": _embedding,
    "Masking": _masking,
    "SimpleRNN": _recurrent,
    "LSTM": _recurrent,
    "GRU": _recurrent,
    "Bidirectional": _bidirectional,
    "MultiHeadAttention": _attention,
    "PositionEmbedding": _position_embedding,
    "Add": _merge("add"),
    "Multiply": _merge("multiply"),
    "Concatenate": _concatenate,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Dropout": _dropout,
}
OPERATION_CONVERTERS: dict[str, Converter] = {"Add": _operation_merge("add"), "Multiply": _operation_merge("multiply")}
