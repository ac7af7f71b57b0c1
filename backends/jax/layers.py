"""One ``flax.nnx`` module per spec layer type, built from a graph node (``BUILDERS``).

Arrays between layers are channels-last, as in the spec (and as ``jax.lax``'s convolutions take
them), and every parameter is kept in the canonical layout under its canonical name. The modules
live by family: ``core.py``, ``convolution.py``, ``normalization.py``, ``recurrent.py`` and
``attention.py``. Mode follows nnx: ``deterministic`` (dropout) and ``use_running_average``
(batch norm) attributes, flipped by ``module.train()`` / ``module.eval()``.
"""

from __future__ import annotations

from collections.abc import Callable

from flax import nnx

from archspec.errors import lookup
from archspec.graph import Node
from archspec.spec import layers as spec

from .attention import MultiHeadAttention, PositionEmbedding
from .context import BuildContext
from .convolution import Convolution, GlobalPool, Pool, ZeroPadding
from .core import Dense, Dropout, Embedding, Flatten, Identity, Masking, Merge, Reshape
from .normalization import BatchNorm, LayerNorm
from .recurrent import Bidirectional, Recurrent


def _features(node: Node) -> int:
    return node.input_shapes[0][-1]


def _norm_options(layer: spec.BatchNorm | spec.LayerNorm) -> dict:
    return {"epsilon": layer.epsilon, "scale": layer.scale, "center": layer.center}


def _dense(node: Node, context: BuildContext) -> Dense:
    layer = node.layer_as(spec.Dense)
    return Dense(context, _features(node), layer.units, layer.use_bias)


def _batch_norm(node: Node, context: BuildContext) -> BatchNorm:
    layer = node.layer_as(spec.BatchNorm)
    return BatchNorm(context, _features(node), layer.momentum, **_norm_options(layer))


def _embedding(node: Node, context: BuildContext) -> Embedding:
    layer = node.layer_as(spec.Embedding)
    return Embedding(context, layer.input_dim, layer.output_dim)


Builder = Callable[[Node, BuildContext], nnx.Module]

STEP_READERS = (Dropout, MultiHeadAttention)
"""Modules called with ``step=`` (the optimizer step) and ``offset=`` (the first sample's position
in the global batch) keywords: their dropout masks depend on both."""

BUILDERS: dict[str, Builder] = {
    "dense": _dense,
    "activation": lambda node, c: Identity(),  # the node's activation does the work
    "dropout": lambda node, c: Dropout(c, node.layer_as(spec.Dropout).rate, node.index),
    "flatten": lambda node, c: Flatten(),
    "reshape": lambda node, c: Reshape(node.output_shape),
    "conv1d": lambda node, c: Convolution(c, node),
    "conv2d": lambda node, c: Convolution(c, node),
    "maxpool1d": lambda node, c: Pool(node, node.layer_as(spec.MaxPool1D)),
    "avgpool1d": lambda node, c: Pool(node, node.layer_as(spec.AvgPool1D)),
    "maxpool2d": lambda node, c: Pool(node, node.layer_as(spec.MaxPool2D)),
    "avgpool2d": lambda node, c: Pool(node, node.layer_as(spec.AvgPool2D)),
    "global_avgpool1d": lambda node, c: GlobalPool("avg", 1),
    "global_maxpool1d": lambda node, c: GlobalPool("max", 1),
    "global_avgpool2d": lambda node, c: GlobalPool("avg", 2),
    "global_maxpool2d": lambda node, c: GlobalPool("max", 2),
    "zero_padding1d": lambda node, c: ZeroPadding(node.layer_as(spec.ZeroPadding1D)),
    "zero_padding2d": lambda node, c: ZeroPadding(node.layer_as(spec.ZeroPadding2D)),
    "batch_norm": _batch_norm,
    "layer_norm": lambda node, c: LayerNorm(c, _features(node), **_norm_options(node.layer_as(spec.LayerNorm))),
    "embedding": _embedding,
    "masking": lambda node, c: Masking(node.layer_as(spec.Masking).mask_value),
    "simple_rnn": lambda node, c: Recurrent(c, node.layer_as(spec.SimpleRNN), _features(node)),
    "lstm": lambda node, c: Recurrent(c, node.layer_as(spec.LSTM), _features(node)),
    "gru": lambda node, c: Recurrent(c, node.layer_as(spec.GRU), _features(node)),
    "bidirectional": lambda node, c: Bidirectional(c, node),
    "multi_head_attention": lambda node, c: MultiHeadAttention(c, node),
    "position_embedding": lambda node, c: PositionEmbedding(c, node),
    "add": lambda node, c: Merge("add"),
    "multiply": lambda node, c: Merge("multiply"),
    "concatenate": lambda node, c: Merge("concatenate", node.layer_as(spec.Concatenate).axis),
}


def build_layer(node: Node, context: BuildContext) -> nnx.Module:
    """The nnx module for ``node``; the error lists the layer types this backend knows."""
    return lookup(BUILDERS, node.type, "layer type", owner="the jax backend")(node, context)
