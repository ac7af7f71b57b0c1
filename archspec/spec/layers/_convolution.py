"""Convolution and pooling over channels-last images."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from archspec.spec.common import (
    ActivationName,
    Initializer,
    PositiveInteger,
    PositivePair,
    Regularizer,
    Shape,
    as_pair,
)
from archspec.spec.layers._base import LayerBase, LayerShapeError, ParamSpec, init, need_rank


def _conv_length(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def _image_out(layer: str, shape: Shape, kernel, strides, dilation, padding, channels) -> Shape:
    need_rank(layer, shape, 3, "an image (height, width, channels)")
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
    activation_after: ClassVar[bool] = True
    filters: PositiveInteger
    kernel_size: PositivePair
    strides: PositivePair = 1
    padding: Literal["valid", "same"] = "valid"
    dilation_rate: PositivePair = 1
    activation: ActivationName = "linear"
    use_bias: bool = True
    kernel_initializer: Initializer = init("glorot_uniform")
    bias_initializer: Initializer = init("zeros")
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
        need_rank("global_avgpool2d", input_shapes[0], 3, "an image (height, width, channels)")
        return (input_shapes[0][-1],)
