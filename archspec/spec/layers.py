"""The layer catalogue: one final class per layer type.

Each class holds its options, validates them, infers its output shape from its
input shapes (per sample, no batch axis, images channels-last) and lists its
parameters in the canonical layout (see ``docs/layout.md``). Backends build
what these classes describe; they never decide shapes or parameters themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal, Union

from pydantic import Field, PositiveInt, field_validator, model_validator

from archspec.spec.common import (
    ActivationName,
    Initializer,
    PositivePair,
    Regularizer,
    Shape,
    StrictModel,
    as_pair,
)


class LayerShapeError(ValueError):
    """A layer cannot take the shapes it was given (turned into a located Problem)."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a layer, in the canonical layout.

    ``name`` is local to the layer (``kernel``); the canonical name of the
    parameter in a model is ``"{layer_id}.{name}"``.
    """

    name: str
    shape: Shape
    initializer: Initializer
    trainable: bool = True
    regularizer: Regularizer | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _init(name: str, **options) -> Initializer:
    return Initializer(type=name, **options)


class LayerBase(StrictModel):
    """Fields every layer has. Not a layer type itself."""

    id: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    inputs: list[str] | None = Field(None, min_length=1)

    # How many inputs the layer takes: (minimum, maximum or None for any).
    arity: ClassVar[tuple[int, int | None]] = (1, 1)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def parameters(self, input_shapes: list[Shape]) -> list[ParamSpec]:
        return []


def _need_rank(layer: str, shape: Shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        raise LayerShapeError(f"{layer} expects {what} (rank {rank} per sample), received shape {list(shape)}")


# --- core -------------------------------------------------------------------------


class Dense(LayerBase):
    """Fully connected layer on the last axis: ``y = activation(x @ kernel + bias)``."""

    type: Literal["dense"]
    units: PositiveInt
    activation: ActivationName = "linear"
    use_bias: bool = True
    kernel_initializer: Initializer = _init("glorot_uniform")
    bias_initializer: Initializer = _init("zeros")
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
    activation: ActivationName

    def output_shape(self, input_shapes):
        return input_shapes[0]


class Dropout(LayerBase):
    """Zeroes each element with probability ``rate`` during training and scales
    the rest by ``1 / (1 - rate)``; the identity at inference. Masks come from
    archspec's neutral random stream, so both backends drop the same elements."""

    type: Literal["dropout"]
    rate: float = Field(ge=0.0, lt=1.0)

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
    target_shape: list[int] = Field(min_length=1)

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


# --- convolution and pooling --------------------------------------------------------


def _conv_length(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def _image_out(layer: str, shape: Shape, kernel, strides, dilation, padding, channels) -> Shape:
    _need_rank(layer, shape, 3, "an image (height, width, channels)")
    height, width = (_conv_length(shape[i], kernel[i], strides[i], dilation[i], padding) for i in (0, 1))
    if height < 1 or width < 1:
        raise LayerShapeError(
            f"{layer} with kernel {list(kernel)} and padding '{padding}' does not fit an image of {shape[0]}x{shape[1]}"
        )
    return (height, width, channels)


class Conv2D(LayerBase):
    """2-D convolution over channels-last images. ``padding: same`` pads like
    TensorFlow (the extra row/column, if any, goes after: bottom/right)."""

    type: Literal["conv2d"]
    filters: PositiveInt
    kernel_size: PositivePair
    strides: PositivePair = 1
    padding: Literal["valid", "same"] = "valid"
    dilation_rate: PositivePair = 1
    activation: ActivationName = "linear"
    use_bias: bool = True
    kernel_initializer: Initializer = _init("glorot_uniform")
    bias_initializer: Initializer = _init("zeros")
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None

    @model_validator(mode="after")
    def _strides_or_dilation(self):
        if max(as_pair(self.strides)) > 1 and max(as_pair(self.dilation_rate)) > 1:
            raise ValueError(
                "expected strides of 1 when dilation_rate > 1 (as Keras requires), received "
                f"strides={self.strides}, dilation_rate={self.dilation_rate}"
            )
        return self

    def output_shape(self, input_shapes):
        return _image_out(
            "conv2d",
            input_shapes[0],
            as_pair(self.kernel_size),
            as_pair(self.strides),
            as_pair(self.dilation_rate),
            self.padding,
            self.filters,
        )

    def parameters(self, input_shapes):
        kh, kw = as_pair(self.kernel_size)
        channels = input_shapes[0][-1]
        params = [
            ParamSpec(
                "kernel", (kh, kw, channels, self.filters), self.kernel_initializer, True, self.kernel_regularizer
            )
        ]
        if self.use_bias:
            params.append(ParamSpec("bias", (self.filters,), self.bias_initializer, True, self.bias_regularizer))
        return params


class _Pool2D(LayerBase):
    pool_size: PositivePair = 2
    strides: PositivePair | None = None
    padding: Literal["valid", "same"] = "valid"

    @property
    def stride_pair(self) -> tuple[int, int]:
        return as_pair(self.strides if self.strides is not None else self.pool_size)

    def output_shape(self, input_shapes):
        shape = input_shapes[0]
        return _image_out(
            self.type,
            shape,
            as_pair(self.pool_size),
            self.stride_pair,
            (1, 1),
            self.padding,
            shape[-1] if shape else 0,
        )


class MaxPool2D(_Pool2D):
    """Max over windows; ``same`` padding never selects a padded position."""

    type: Literal["maxpool2d"]


class AvgPool2D(_Pool2D):
    """Mean over windows; with ``same`` padding the mean counts only real
    positions (Keras' rule; PyTorch's ``count_include_pad=False``)."""

    type: Literal["avgpool2d"]


class GlobalAvgPool2D(LayerBase):
    """Mean over height and width: ``(h, w, c) -> (c,)``."""

    type: Literal["global_avgpool2d"]

    def output_shape(self, input_shapes):
        _need_rank("global_avgpool2d", input_shapes[0], 3, "an image (height, width, channels)")
        return (input_shapes[0][-1],)


# --- normalisation ------------------------------------------------------------------


class BatchNorm(LayerBase):
    """Batch normalisation over the last axis, with Keras' meaning of the options:
    ``moving = momentum * moving + (1 - momentum) * batch_statistic`` and
    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``. The batch variance is
    the biased one (divided by N), in normalisation and in the moving average."""

    type: Literal["batch_norm"]
    momentum: float = Field(0.99, ge=0.0, lt=1.0)
    epsilon: float = Field(1e-3, gt=0.0)
    center: bool = True
    scale: bool = True
    gamma_initializer: Initializer = _init("ones")
    beta_initializer: Initializer = _init("zeros")

    def output_shape(self, input_shapes):
        if len(input_shapes[0]) < 1:
            raise LayerShapeError("batch_norm expects at least one axis per sample")
        return input_shapes[0]

    def parameters(self, input_shapes):
        channels = (input_shapes[0][-1],)
        params = []
        if self.scale:
            params.append(ParamSpec("gamma", channels, self.gamma_initializer))
        if self.center:
            params.append(ParamSpec("beta", channels, self.beta_initializer))
        params.append(ParamSpec("moving_mean", channels, _init("zeros"), trainable=False))
        params.append(ParamSpec("moving_variance", channels, _init("ones"), trainable=False))
        return params


class LayerNorm(LayerBase):
    """Layer normalisation over the last axis (biased variance):
    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``."""

    type: Literal["layer_norm"]
    epsilon: float = Field(1e-3, gt=0.0)
    center: bool = True
    scale: bool = True
    gamma_initializer: Initializer = _init("ones")
    beta_initializer: Initializer = _init("zeros")

    def output_shape(self, input_shapes):
        if len(input_shapes[0]) < 1:
            raise LayerShapeError("layer_norm expects at least one axis per sample")
        return input_shapes[0]

    def parameters(self, input_shapes):
        channels = (input_shapes[0][-1],)
        params = []
        if self.scale:
            params.append(ParamSpec("gamma", channels, self.gamma_initializer))
        if self.center:
            params.append(ParamSpec("beta", channels, self.beta_initializer))
        return params


class Embedding(LayerBase):
    """Looks up integer ids ``(steps,)`` in a table: ``-> (steps, output_dim)``."""

    type: Literal["embedding"]
    input_dim: PositiveInt
    output_dim: PositiveInt
    embeddings_initializer: Initializer = _init("uniform", minval=-0.05, maxval=0.05)
    embeddings_regularizer: Regularizer | None = None

    def output_shape(self, input_shapes):
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


# --- recurrent ----------------------------------------------------------------------


class _Recurrent(LayerBase):
    """Options shared by the recurrent layers. The initial state is zeros."""

    units: PositiveInt
    return_sequences: bool = False
    use_bias: bool = True
    kernel_initializer: Initializer = _init("glorot_uniform")
    recurrent_initializer: Initializer = _init("orthogonal")
    bias_initializer: Initializer = _init("zeros")
    kernel_regularizer: Regularizer | None = None
    recurrent_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None

    gates: ClassVar[int] = 1  # blocks stacked along the last axis of the kernels

    def output_shape(self, input_shapes):
        _need_rank(self.type, input_shapes[0], 2, "a sequence (steps, features)")
        if self.return_sequences:
            return (input_shapes[0][0], self.units)
        return (self.units,)

    def _bias_params(self) -> list[ParamSpec]:
        size = (self.gates * self.units,)
        return [ParamSpec("bias", size, self.bias_initializer, True, self.bias_regularizer)]

    def parameters(self, input_shapes):
        features = input_shapes[0][-1]
        width = self.gates * self.units
        params = [
            ParamSpec("kernel", (features, width), self.kernel_initializer, True, self.kernel_regularizer),
            ParamSpec(
                "recurrent_kernel", (self.units, width), self.recurrent_initializer, True, self.recurrent_regularizer
            ),
        ]
        if self.use_bias:
            params.extend(self._bias_params())
        return params


class SimpleRNN(_Recurrent):
    """``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``."""

    type: Literal["simple_rnn"]
    activation: Literal["tanh", "relu"] = "tanh"


class LSTM(_Recurrent):
    """LSTM with gate blocks in the order input, forget, cell, output (i, f, g, o),
    sigmoid gates and tanh cell, one bias. ``unit_forget_bias`` starts the
    forget-gate bias at 1 (Keras' default)."""

    type: Literal["lstm"]
    unit_forget_bias: bool = True
    gates: ClassVar[int] = 4


class GRU(_Recurrent):
    """GRU with gate blocks in the order update, reset, candidate (z, r, h) and
    two biases, the reset gate applied after the recurrent product
    (Keras' ``reset_after=True``, PyTorch's formulation)::

        z = sigmoid(x Wz + bz + h Uz + rz);  r = sigmoid(x Wr + br + h Ur + rr)
        n = tanh(x Wh + bh + r * (h Uh + rh));  h' = z * h + (1 - z) * n
    """

    type: Literal["gru"]
    gates: ClassVar[int] = 3

    def _bias_params(self):
        size = (self.gates * self.units,)
        return [
            ParamSpec("bias", size, self.bias_initializer, True, self.bias_regularizer),
            ParamSpec("recurrent_bias", size, self.bias_initializer, True, self.bias_regularizer),
        ]


RecurrentLayer = Annotated[SimpleRNN | LSTM | GRU, Field(discriminator="type")]


class Bidirectional(LayerBase):
    """Runs ``layer`` forwards and a copy of it over the reversed sequence.
    With ``return_sequences`` the backward outputs are re-reversed to line up in
    time; without, the backward output is its state after reading step 0.
    Parameters are ``{id}.forward.*`` and ``{id}.backward.*``."""

    type: Literal["bidirectional"]
    layer: RecurrentLayer
    merge_mode: Literal["concat", "sum", "mul", "ave"] = "concat"

    @field_validator("layer")
    @classmethod
    def _no_graph_fields(cls, value):
        if value.id is not None or value.inputs is not None:
            raise ValueError("the wrapped layer takes no 'id' or 'inputs'; give them to the bidirectional layer")
        return value

    def output_shape(self, input_shapes):
        inner = self.layer.output_shape(input_shapes)
        if self.merge_mode == "concat":
            return (*inner[:-1], 2 * inner[-1])
        return inner

    def parameters(self, input_shapes):
        inner = self.layer.parameters(input_shapes)
        return [
            ParamSpec(f"{direction}.{p.name}", p.shape, p.initializer, p.trainable, p.regularizer)
            for direction in ("forward", "backward")
            for p in inner
        ]


# --- merges -------------------------------------------------------------------------


class _Elementwise(LayerBase):
    arity: ClassVar[tuple[int, int | None]] = (2, None)

    def output_shape(self, input_shapes):
        first = input_shapes[0]
        for other in input_shapes[1:]:
            if other != first:
                raise LayerShapeError(
                    f"{self.type} expects inputs of one shape, received "
                    + ", ".join(str(list(s)) for s in input_shapes)
                )
        return first


class Add(_Elementwise):
    """Element-wise sum of two or more inputs of one shape."""

    type: Literal["add"]


class Multiply(_Elementwise):
    """Element-wise product of two or more inputs of one shape."""

    type: Literal["multiply"]


class Concatenate(LayerBase):
    """Joins inputs along ``axis`` (per-sample axes; -1 is the last)."""

    type: Literal["concatenate"]
    axis: int = -1
    arity: ClassVar[tuple[int, int | None]] = (2, None)

    def output_shape(self, input_shapes):
        rank = len(input_shapes[0])
        axis = self.axis if self.axis >= 0 else rank + self.axis
        if not 0 <= axis < rank or any(len(s) != rank for s in input_shapes):
            raise LayerShapeError(
                f"concatenate on axis {self.axis} expects inputs of equal rank with that axis, "
                "received " + ", ".join(str(list(s)) for s in input_shapes)
            )
        rest = {s[:axis] + s[axis + 1 :] for s in input_shapes}
        if len(rest) > 1:
            raise LayerShapeError(
                f"concatenate on axis {self.axis} expects inputs that agree on the other axes, "
                "received " + ", ".join(str(list(s)) for s in input_shapes)
            )
        return (*input_shapes[0][:axis], sum(s[axis] for s in input_shapes), *input_shapes[0][axis + 1 :])


LAYER_TYPES: tuple[type[LayerBase], ...] = (
    Dense,
    Activation,
    Dropout,
    Flatten,
    Reshape,
    Conv2D,
    MaxPool2D,
    AvgPool2D,
    GlobalAvgPool2D,
    BatchNorm,
    LayerNorm,
    Embedding,
    SimpleRNN,
    LSTM,
    GRU,
    Bidirectional,
    Add,
    Concatenate,
    Multiply,
)

Layer = Annotated[Union[LAYER_TYPES], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007 (a union built from a tuple)


def layer_type_name(cls: type[LayerBase]) -> str:
    """The ``type`` tag of a layer class (``Dense`` -> ``"dense"``)."""
    return cls.model_fields["type"].annotation.__args__[0]
