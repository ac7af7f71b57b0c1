"""Convolution and pooling over channels-last sequences (1-D) and images (2-D).

Each 1-D type is its 2-D sibling with one spatial axis: the same fields, one size
per axis instead of two, and the same output-length rule.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, Strict, model_validator

from archspec.spec.common import (
    ActivationName,
    Initializer,
    PositiveInteger,
    PositivePair,
    Regularizer,
    Shape,
    as_pair,
    written,
)
from archspec.spec.layers._base import LayerBase, LayerShapeError, MaskRule, ParamSpec, init, need_rank

_INPUT = {1: "a sequence (steps, channels)", 2: "an image (height, width, channels)"}


def _conv_length(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    if padding in ("same", "causal"):  # causal pads (kernel - 1) * dilation before: the same length
        return -(-size // stride)
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def _spatial_out(layer: str, shape: Shape, kernel, strides, dilation, padding, channels) -> Shape:
    """The output shape of a window op over the ``len(kernel)`` spatial axes before the channels."""
    rank = len(kernel)
    need_rank(layer, shape, rank + 1, _INPUT[rank])
    sizes = tuple(_conv_length(shape[i], kernel[i], strides[i], dilation[i], padding) for i in range(rank))
    if min(sizes) < 1:
        extent = "x".join(str(size) for size in shape[:rank])
        what = "a sequence of" if rank == 1 else "an image of"
        raise LayerShapeError(
            f"{layer} with kernel {list(kernel)} and padding '{padding}' does not fit {what} {extent}"
        )
    return (*sizes, channels)


def _as_sizes(value, rank: int) -> tuple[int, ...]:
    return (value,) if rank == 1 else as_pair(value)


class _Convolution(LayerBase):
    """What 1-D and 2-D convolutions share. Abstract: ``rank`` says how many spatial axes."""

    rank: ClassVar[int]
    activation_after: ClassVar[bool] = True
    filters: PositiveInteger
    activation: ActivationName = "linear"
    use_bias: bool = True
    kernel_initializer: Initializer = init("glorot_uniform")
    bias_initializer: Initializer = init("zeros")
    kernel_regularizer: Regularizer | None = None
    bias_regularizer: Regularizer | None = None

    # Declared by the final classes (one size per spatial axis, or one for all).
    kernel_size: PositiveInteger | PositivePair
    strides: PositiveInteger | PositivePair
    dilation_rate: PositiveInteger | PositivePair
    padding: str

    @property
    def kernel_sizes(self) -> tuple[int, ...]:
        return _as_sizes(self.kernel_size, self.rank)

    @property
    def stride_sizes(self) -> tuple[int, ...]:
        return _as_sizes(self.strides, self.rank)

    @property
    def dilation_sizes(self) -> tuple[int, ...]:
        return _as_sizes(self.dilation_rate, self.rank)

    @model_validator(mode="after")
    def _strides_or_dilation(self):
        if max(self.stride_sizes) > 1 and max(self.dilation_sizes) > 1:
            raise ValueError(
                "expected strides of 1 when dilation_rate > 1 (as Keras requires), received "
                f"strides={self.strides}, dilation_rate={self.dilation_rate}"
            )
        return self

    def output_shape(self, input_shapes):
        return _spatial_out(
            self.type,
            input_shapes[0],
            self.kernel_sizes,
            self.stride_sizes,
            self.dilation_sizes,
            self.padding,
            self.filters,
        )

    def parameters(self, input_shapes):
        channels = input_shapes[0][-1]
        kernel_shape = (*self.kernel_sizes, channels, self.filters)
        params = [ParamSpec("kernel", kernel_shape, self.kernel_initializer, True, self.kernel_regularizer)]
        if self.use_bias:
            params.append(ParamSpec("bias", (self.filters,), self.bias_initializer, True, self.bias_regularizer))
        return params


class Conv1D(_Convolution):
    """1-D convolution over channels-last sequences ``(steps, channels)``. ``padding: same``
    pads like TensorFlow (the extra step, if any, goes after); ``causal`` pads
    ``(kernel_size - 1) * dilation_rate`` steps before and none after, so output step t
    reads input steps up to t only (Keras' ``causal``)."""

    type: Literal["conv1d"]
    rank: ClassVar[int] = 1
    kernel_size: PositiveInteger
    strides: PositiveInteger = 1
    padding: Literal["valid", "same", "causal"] = "valid"
    dilation_rate: PositiveInteger = 1


class Conv2D(_Convolution):
    """2-D convolution over channels-last images. ``padding: same`` pads like
    TensorFlow (the extra row/column, if any, goes after: bottom/right)."""

    type: Literal["conv2d"]
    rank: ClassVar[int] = 2
    kernel_size: PositivePair
    strides: PositivePair = 1
    padding: Literal["valid", "same"] = "valid"
    dilation_rate: PositivePair = 1


class _Pool(LayerBase):
    """What the window poolings share. Abstract: ``rank`` says how many spatial axes;
    ``strides`` default to ``pool_size``."""

    rank: ClassVar[int]
    padding: Literal["valid", "same"] = "valid"

    # Declared by the final classes.
    pool_size: PositiveInteger | PositivePair
    strides: PositiveInteger | PositivePair | None

    @property
    def pool_sizes(self) -> tuple[int, ...]:
        return _as_sizes(self.pool_size, self.rank)

    @property
    def stride_sizes(self) -> tuple[int, ...]:
        return _as_sizes(self.strides if self.strides is not None else self.pool_size, self.rank)

    @property
    def stride_pair(self) -> tuple[int, int]:
        """The strides of a 2-D pooling (height, width)."""
        return as_pair(self.strides if self.strides is not None else self.pool_size)

    def output_shape(self, input_shapes):
        shape = input_shapes[0]
        return _spatial_out(
            self.type,
            shape,
            self.pool_sizes,
            self.stride_sizes,
            (1,) * self.rank,
            self.padding,
            shape[-1] if shape else 0,
        )


class _Pool1D(_Pool):
    rank: ClassVar[int] = 1
    pool_size: PositiveInteger = 2
    strides: PositiveInteger | None = None


class _Pool2D(_Pool):
    rank: ClassVar[int] = 2
    pool_size: PositivePair = 2
    strides: PositivePair | None = None


class MaxPool1D(_Pool1D):
    """Max over windows of steps; ``same`` padding never selects a padded position."""

    type: Literal["maxpool1d"]


class AvgPool1D(_Pool1D):
    """Mean over windows of steps; with ``same`` padding the mean counts only real
    positions (Keras' rule; PyTorch's ``count_include_pad=False``)."""

    type: Literal["avgpool1d"]


class MaxPool2D(_Pool2D):
    """Max over windows; ``same`` padding never selects a padded position."""

    type: Literal["maxpool2d"]


class AvgPool2D(_Pool2D):
    """Mean over windows; with ``same`` padding the mean counts only real
    positions (Keras' rule; PyTorch's ``count_include_pad=False``)."""

    type: Literal["avgpool2d"]


class _GlobalPool(LayerBase):
    """Mean or max over every spatial axis: ``(..., channels) -> (channels,)``."""

    rank: ClassVar[int]

    def output_shape(self, input_shapes):
        need_rank(self.type, input_shapes[0], self.rank + 1, _INPUT[self.rank])
        return (input_shapes[0][-1],)


class GlobalAvgPool1D(_GlobalPool):
    """Mean over steps: ``(steps, c) -> (c,)``; with a mask, over the valid steps only
    (0 for a sequence without any)."""

    type: Literal["global_avgpool1d"]
    rank: ClassVar[int] = 1
    mask_rule: ClassVar[MaskRule] = "consume"


class GlobalMaxPool1D(_GlobalPool):
    """Max over steps: ``(steps, c) -> (c,)``; with a mask, over the valid steps only
    (0 for a sequence without any)."""

    type: Literal["global_maxpool1d"]
    rank: ClassVar[int] = 1
    mask_rule: ClassVar[MaskRule] = "consume"


class GlobalAvgPool2D(_GlobalPool):
    """Mean over height and width: ``(h, w, c) -> (c,)``."""

    type: Literal["global_avgpool2d"]
    rank: ClassVar[int] = 2


class GlobalMaxPool2D(_GlobalPool):
    """Max over height and width: ``(h, w, c) -> (c,)``."""

    type: Literal["global_maxpool2d"]
    rank: ClassVar[int] = 2


_Amount = Annotated[int, Strict(), Field(ge=0)]


def _is_amount(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _padding_amounts(rank: int, expected: str):
    """Checks a zero padding's amounts whole, before the union (one message per mistake)."""

    def check(value: Any) -> Any:
        if _is_amount(value):
            return value
        if isinstance(value, list) and len(value) == 2:
            if all(_is_amount(item) for item in value):
                return value
            if rank == 2 and all(isinstance(v, list) and len(v) == 2 and all(map(_is_amount, v)) for v in value):
                return value
        raise ValueError(f"expected {expected}, received {written(value)}")

    return BeforeValidator(check)


class _ZeroPadding(LayerBase):
    """Zeros added before and after each spatial axis (Keras' ``ZeroPadding1D/2D``). Abstract:
    ``rank`` says how many spatial axes; ``amounts`` gives (before, after) per axis."""

    rank: ClassVar[int]

    @property
    def amounts(self) -> tuple[tuple[int, int], ...]:
        raise NotImplementedError

    def output_shape(self, input_shapes):
        shape = input_shapes[0]
        need_rank(self.type, shape, self.rank + 1, _INPUT[self.rank])
        sizes = tuple(size + before + after for size, (before, after) in zip(shape, self.amounts))
        return (*sizes, shape[-1])


class ZeroPadding1D(_ZeroPadding):
    """Pads a sequence ``(steps, channels)`` with zero steps: ``padding`` steps on both sides, or
    ``[before, after]``."""

    type: Literal["zero_padding1d"]
    rank: ClassVar[int] = 1
    padding: Annotated[
        _Amount | list[_Amount],
        _padding_amounts(1, "a non-negative integer or [before, after]"),
    ] = 1

    @property
    def amounts(self) -> tuple[tuple[int, int], ...]:
        value = self.padding
        return ((value, value),) if isinstance(value, int) else ((value[0], value[1]),)


class ZeroPadding2D(_ZeroPadding):
    """Pads an image ``(height, width, channels)`` with zero rows and columns: ``padding`` on
    every side, ``[rows, columns]`` (each on both sides), or ``[[top, bottom], [left, right]]``."""

    type: Literal["zero_padding2d"]
    rank: ClassVar[int] = 2
    padding: Annotated[
        _Amount | list[_Amount] | list[list[_Amount]],
        _padding_amounts(2, "a non-negative integer, [rows, columns] or [[top, bottom], [left, right]]"),
    ] = 1

    @property
    def amounts(self) -> tuple[tuple[int, int], ...]:
        value = self.padding
        if isinstance(value, int):
            return ((value, value), (value, value))
        return tuple((v, v) if isinstance(v, int) else (v[0], v[1]) for v in value)
