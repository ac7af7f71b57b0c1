"""Transformer pieces over sequences ``(steps, features)``: multi-head attention and position embeddings."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from archspec.spec.common import Initializer, Number, PositiveInteger, Regularizer
from archspec.spec.layers._base import LayerBase, LayerShapeError, MaskRule, ParamSpec, init, need_rank


class MultiHeadAttention(LayerBase):
    """Scaled dot-product attention with ``num_heads`` heads (Keras' ``MultiHeadAttention``).

    ``inputs: [query]`` attends a sequence to itself; ``[query, value]`` attends to
    ``value`` (which is also the key); ``[query, value, key]`` takes a separate key of
    value's length. Per head h (columns ``h * key_dim .. (h + 1) * key_dim`` of the
    projections)::

        q = query @ query_kernel + query_bias        (Tq, heads * key_dim)
        k = key @ key_kernel + key_bias              (Tk, heads * key_dim)
        v = value @ value_kernel + value_bias        (Tk, heads * value_dim)
        weights_h = softmax(q_h @ k_h.T / sqrt(key_dim)) over the keys (masked keys excluded)
        output = concat_h(dropout(weights_h) @ v_h) @ output_kernel + output_bias

    ``causal`` lets query step i attend only to key steps j <= i. ``dropout`` drops
    attention weights in training, with archspec's neutral stream (as the dropout layer).
    With a mask on the key (the value, or the query in self-attention), masked keys are not
    attended to (combined with ``causal`` by "and"); a query step that may attend to no key
    at all gets zero weights. The output carries the query's mask.
    """

    type: Literal["multi_head_attention"]
    arity: ClassVar[tuple[int, int | None]] = (1, 3)
    mask_rule: ClassVar[MaskRule] = "consume"
    num_heads: PositiveInteger
    key_dim: PositiveInteger
    value_dim: PositiveInteger | None = None
    output_dim: PositiveInteger | None = None
    use_bias: bool = True
    causal: bool = False
    dropout: Number = Field(0.0, ge=0.0, lt=1.0)
    kernel_initializer: Initializer = init("glorot_uniform")
    bias_initializer: Initializer = init("zeros")
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None

    def keeps_steps(self) -> bool:
        return True  # one output step per query step

    def mask_input(self, input_count: int) -> int:
        return input_count - 1  # the key: [query], [query, value] or [query, value, key]

    @property
    def value_size(self) -> int:
        """Features per head of the values (``value_dim``, else ``key_dim``)."""
        return self.value_dim if self.value_dim is not None else self.key_dim

    def _shapes(self, input_shapes) -> tuple:
        """(query, value, key) shapes, checked: sequences, key and value of one length."""
        names = ("query", "value", "key")
        for name, shape in zip(names, input_shapes):
            need_rank(f"multi_head_attention {name}", shape, 2, "a sequence (steps, features)")
        query = input_shapes[0]
        value = input_shapes[1] if len(input_shapes) > 1 else query
        key = input_shapes[2] if len(input_shapes) > 2 else value
        if key[0] != value[0]:
            raise LayerShapeError(
                f"multi_head_attention expects a key as long as the value, received key steps {key[0]}, "
                f"value steps {value[0]}"
            )
        return query, value, key

    def internal_elements(self, input_shapes) -> int:
        """q, k and v, the scores, the weights (and their dropped copy), the attended values."""
        query, value, _ = self._shapes(input_shapes)
        heads, query_steps, key_steps = self.num_heads, query[0], value[0]
        projections = heads * (query_steps * self.key_dim + key_steps * (self.key_dim + self.value_size))
        weights = (3 if self.dropout > 0 else 2) * heads * query_steps * key_steps
        return projections + weights + query_steps * heads * self.value_size

    def output_shape(self, input_shapes):
        query, _, _ = self._shapes(input_shapes)
        return (query[0], self.output_dim if self.output_dim is not None else query[1])

    def parameters(self, input_shapes):
        query, value, key = self._shapes(input_shapes)
        heads = self.num_heads
        output_dim = self.output_dim if self.output_dim is not None else query[1]
        projections = [
            ("query", query[1], heads * self.key_dim),
            ("key", key[1], heads * self.key_dim),
            ("value", value[1], heads * self.value_size),
            ("output", heads * self.value_size, output_dim),
        ]
        params = []
        for name, features, units in projections:
            params.append(
                ParamSpec(f"{name}_kernel", (features, units), self.kernel_initializer, True, self.kernel_regularizer)
            )
            if self.use_bias:
                params.append(ParamSpec(f"{name}_bias", (units,), self.bias_initializer, True, self.bias_regularizer))
        return params


class PositionEmbedding(LayerBase):
    """Adds a position vector to each step of ``(steps, features)``: ``y[t] = x[t] + table[t]``.

    ``kind: learned`` trains a ``(max_length, features)`` table (``embeddings``);
    ``kind: sinusoidal`` uses the fixed table of ``docs/semantics.md`` (no parameters).
    A sequence longer than ``max_length`` is refused.
    """

    type: Literal["position_embedding"]
    mask_rule: ClassVar[MaskRule] = "pass"
    kind: Literal["learned", "sinusoidal"] = "learned"
    max_length: PositiveInteger
    embeddings_initializer: Initializer = init("glorot_uniform")
    embeddings_regularizer: Regularizer | None = None

    def output_shape(self, input_shapes):
        shape = input_shapes[0]
        need_rank("position_embedding", shape, 2, "a sequence (steps, features)")
        if shape[0] > self.max_length:
            raise LayerShapeError(
                f"position_embedding expects at most max_length={self.max_length} steps, received {shape[0]}"
            )
        return shape

    def parameters(self, input_shapes):
        if self.kind == "sinusoidal":
            return []
        features = input_shapes[0][-1]
        return [
            ParamSpec(
                "embeddings",
                (self.max_length, features),
                self.embeddings_initializer,
                True,
                self.embeddings_regularizer,
            )
        ]
