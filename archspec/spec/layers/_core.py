"""Core layers: dense, activation, dropout, flatten, reshape, embedding, masking."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from archspec.spec.common import ActivationName, Initializer, Integer, Number, PositiveInteger, Regularizer
from archspec.spec.layers._base import LayerBase, LayerShapeError, MaskRule, ParamSpec, init, need_rank


class Dense(LayerBase):
    """Fully connected layer on the last axis: ``y = activation(x @ kernel + bias)``."""

    type: Literal["dense"]
    activation_after: ClassVar[bool] = True
    mask_rule: ClassVar[MaskRule] = "pass"
    units: PositiveInteger
    activation: ActivationName = "linear"
    use_bias: bool = True
    kernel_initializer: Initializer = init("glorot_uniform")
    bias_initializer: Initializer = init("zeros")
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None

    def output_shape(self, input_shapes):
        (shape,) = input_shapes
        if len(shape) < 1:
            raise LayerShapeError(f"dense expects at least one axis, received shape {list(shape)}")
        return (*shape[:-1], self.units)

    def parameters(self, input_shapes):
        (shape,) = input_shapes
        params = [ParamSpec("kernel", (shape[-1], self.units), self.kernel_initializer, True, self.kernel_regularizer)]
        if self.use_bias:
            params.append(ParamSpec("bias", (self.units,), self.bias_initializer, True, self.bias_regularizer))
        return params


class Activation(LayerBase):
    """Applies an activation function element-wise (softmax: on the last axis)."""

    type: Literal["activation"]
    activation_only: ClassVar[bool] = True
    mask_rule: ClassVar[MaskRule] = "pass"
    activation: ActivationName

    def output_shape(self, input_shapes):
        return input_shapes[0]


class Dropout(LayerBase):
    """Zeroes each element with probability ``rate`` during training and scales
    the rest by ``1 / (1 - rate)``; the identity at inference. Masks come from
    archspec's neutral random stream, so every backend drops the same elements."""

    type: Literal["dropout"]
    mask_rule: ClassVar[MaskRule] = "pass"
    rate: Number = Field(ge=0.0, lt=1.0)

    def output_shape(self, input_shapes):
        return input_shapes[0]


class Flatten(LayerBase):
    """Flattens each sample to one axis, in channels-last (row-major) order."""

    type: Literal["flatten"]

    def output_shape(self, input_shapes):
        return (math.prod(input_shapes[0]),)


class Reshape(LayerBase):
    """Reshapes each sample (row-major); one entry of ``target_shape`` may be -1."""

    type: Literal["reshape"]
    target_shape: list[Integer] = Field(min_length=1)

    @field_validator("target_shape")
    @classmethod
    def _check_target(cls, value):
        if any(v == 0 or v < -1 for v in value) or value.count(-1) > 1:
            raise ValueError(f"expected positive sizes and at most one -1, received {value}")
        return value

    def output_shape(self, input_shapes):
        total = math.prod(input_shapes[0])
        known = math.prod(v for v in self.target_shape if v != -1)
        if -1 in self.target_shape:
            if total % known:
                raise LayerShapeError(f"reshape cannot fit {total} values per sample into {self.target_shape}")
            return tuple(total // known if v == -1 else v for v in self.target_shape)
        if known != total:
            raise LayerShapeError(
                f"reshape expects {known} values per sample for {self.target_shape}, "
                f"received shape {list(input_shapes[0])} ({total} values)"
            )
        return tuple(self.target_shape)


class Embedding(LayerBase):
    """Looks up integer ids ``(steps,)`` in a table: ``-> (steps, output_dim)``.

    With ``mask_zero`` the id 0 is padding: the steps that hold it are masked (their
    output is still row 0 of the table, as in Keras), so ``input_dim`` counts the padding id."""

    type: Literal["embedding"]
    integer_input: ClassVar[bool] = True
    mask_rule: ClassVar[MaskRule] = "create"
    input_dim: PositiveInteger
    output_dim: PositiveInteger
    mask_zero: bool = False
    embeddings_initializer: Initializer = init("uniform", minval=-0.05, maxval=0.05)
    embeddings_regularizer: Regularizer | None = None

    def creates_mask(self) -> bool:
        return self.mask_zero

    def output_shape(self, input_shapes):
        if self.mask_zero:
            need_rank("embedding with mask_zero", input_shapes[0], 1, "a sequence of ids (steps,)")
        return (*input_shapes[0], self.output_dim)

    def parameters(self, input_shapes):
        return [
            ParamSpec(
                "embeddings",
                (self.input_dim, self.output_dim),
                self.embeddings_initializer,
                True,
                self.embeddings_regularizer,
            )
        ]


class Masking(LayerBase):
    """Marks the steps of a float sequence ``(steps, features)`` whose features all equal
    ``mask_value`` as padding, and zeroes them (Keras' ``Masking``): ``y_t = x_t`` where some
    feature differs from ``mask_value``, else 0."""

    type: Literal["masking"]
    mask_rule: ClassVar[MaskRule] = "create"
    mask_value: Number = 0.0

    def creates_mask(self) -> bool:
        return True

    def output_shape(self, input_shapes):
        need_rank("masking", input_shapes[0], 2, "a sequence (steps, features)")
        return input_shapes[0]
