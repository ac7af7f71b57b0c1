"""The attention and position layers of the torch backend: Keras' multi-head attention (its
dropout archspec's own) and the learned or sinusoidal position embedding."""

from __future__ import annotations

import math

import torch
from torch import nn

from archspec.definitions.positions import sinusoidal_table
from archspec.graph import Node
from archspec.spec import layers as spec

from .context import BuildContext, parameter
from .core import Dense, Dropout


class MultiHeadAttention(nn.Module):
    """Keras' multi-head attention (``archspec.spec.layers.MultiHeadAttention``) on batch-first
    sequences. The four projections are ``Dense`` modules (``query``, ``key``, ``value``,
    ``output``: torch's (out, in) weights); dropout on the attention weights is archspec's
    ``Dropout`` on the (heads, query steps, key steps) weights of each sample.

    ``forward(query, value=None, key=None, *, step, offset)``; ``allowed`` is the
    (query steps, key steps) boolean buffer of the keys each query may attend to (causal),
    or None for all: a key mask combines with it by "and".
    """

    allowed: torch.Tensor | None  # a buffer (registered in __init__)

    def __init__(self, context: BuildContext, node: Node):
        super().__init__()
        layer = node.layer_as(spec.MultiHeadAttention)
        shapes = node.input_shapes
        query_shape = shapes[0]
        value_shape = shapes[1] if len(shapes) > 1 else query_shape
        key_shape = shapes[2] if len(shapes) > 2 else value_shape
        self.heads, self.key_dim, self.value_dim = layer.num_heads, layer.key_dim, layer.value_size
        output_dim = node.output_shape[-1]
        bias = layer.use_bias
        self.query = Dense(context, query_shape[-1], self.heads * self.key_dim, bias)
        self.key = Dense(context, key_shape[-1], self.heads * self.key_dim, bias)
        self.value = Dense(context, value_shape[-1], self.heads * self.value_dim, bias)
        self.output = Dense(context, self.heads * self.value_dim, output_dim, bias)
        weights_shape = (self.heads, query_shape[0], key_shape[0])
        self.attention_dropout = Dropout(context, layer.dropout, node.index, weights_shape)
        allowed = None
        if layer.causal:
            allowed = torch.ones(weights_shape[1:], dtype=torch.bool, device=context.device).tril()
        self.register_buffer("allowed", allowed, persistent=False)

    def _heads(self, x: torch.Tensor, size: int) -> torch.Tensor:
        """(N, T, heads * size) -> (N, heads, T, size)."""
        return x.reshape(x.shape[0], x.shape[1], self.heads, size).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        value: torch.Tensor | None = None,
        key: torch.Tensor | None = None,
        *,
        step: torch.Tensor | int = 0,
        offset: int = 0,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        value = query if value is None else value
        key = value if key is None else key
        q = self._heads(self.query(query), self.key_dim)
        k = self._heads(self.key(key), self.key_dim)
        v = self._heads(self.value(value), self.value_dim)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.key_dim)
        if mask is None:
            if self.allowed is not None:
                scores = scores.masked_fill(~self.allowed, -math.inf)
            weights = torch.softmax(scores, dim=-1)
        else:
            # The key's mask (batch, key steps): masked keys are never attended to, and a query
            # allowed no key gets zero weights (its row is made finite first, so no NaN flows back).
            allowed = mask[:, None, None, :]
            if self.allowed is not None:
                allowed = allowed & self.allowed
            sees = allowed.any(dim=-1, keepdim=True)
            scores = scores.masked_fill(~allowed, -math.inf).masked_fill(~sees, 0.0)
            weights = torch.where(sees, torch.softmax(scores, dim=-1), torch.zeros_like(scores))
        weights = self.attention_dropout(weights, step, offset)
        attended = (weights @ v).transpose(1, 2)
        return self.output(attended.reshape(attended.shape[0], attended.shape[1], self.heads * self.value_dim))

    def extra_repr(self) -> str:
        return (
            f"heads={self.heads}, key_dim={self.key_dim}, value_dim={self.value_dim}, causal={self.allowed is not None}"
        )


class PositionEmbedding(nn.Module):
    """``x + table[:steps]``: a learned ``weight`` (max_length, features) or the fixed sinusoidal table."""

    table: torch.Tensor | None  # a buffer (registered in __init__)

    def __init__(self, context: BuildContext, node: Node):
        super().__init__()
        layer = node.layer_as(spec.PositionEmbedding)
        steps, features = node.input_shapes[0]
        self.steps = steps
        self.weight = parameter(context, layer.max_length, features) if layer.kind == "learned" else None
        table = None
        if layer.kind == "sinusoidal":
            table = torch.from_numpy(sinusoidal_table(steps, features)).to(context.dtype).to(context.device)
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = self.weight[: self.steps] if self.weight is not None else self.table
        if table is None:  # never: __init__ sets one of the two
            raise RuntimeError("position_embedding has neither a learned nor a sinusoidal table")
        return x + table
