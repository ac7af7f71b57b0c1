"""Normalisation layers: batch and layer normalisation over the last axis."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from archspec.spec.common import Initializer, Number
from archspec.spec.layers._base import LayerBase, LayerShapeError, MaskRule, ParamSpec, init


class _Normalization(LayerBase):
    """What batch and layer normalisation share: ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``
    over the last axis, with the affine ``gamma`` (``scale``) and ``beta`` (``center``) optional.
    Abstract: the two final classes below say which mean and variance."""

    epsilon: Number = Field(1e-3, gt=0.0)
    center: bool = True
    scale: bool = True
    gamma_initializer: Initializer = init("ones")
    beta_initializer: Initializer = init("zeros")

    def output_shape(self, input_shapes):
        if len(input_shapes[0]) < 1:
            raise LayerShapeError(f"{self.type} expects at least one axis per sample")
        return input_shapes[0]

    def parameters(self, input_shapes):
        channels = (input_shapes[0][-1],)
        params = []
        if self.scale:
            params.append(ParamSpec("gamma", channels, self.gamma_initializer))
        if self.center:
            params.append(ParamSpec("beta", channels, self.beta_initializer))
        return params


class BatchNorm(_Normalization):
    """Batch normalisation over the last axis, with Keras' meaning of the options:
    ``moving = momentum * moving + (1 - momentum) * batch_statistic`` and
    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``. The batch variance is
    the biased one (divided by N), in normalisation and in the moving average."""

    type: Literal["batch_norm"]
    removes_channel_offsets: ClassVar[bool] = True
    momentum: Number = Field(0.99, ge=0.0, lt=1.0)

    def parameters(self, input_shapes):
        channels = (input_shapes[0][-1],)
        return [
            *super().parameters(input_shapes),
            ParamSpec("moving_mean", channels, init("zeros"), trainable=False),
            ParamSpec("moving_variance", channels, init("ones"), trainable=False),
        ]


class LayerNorm(_Normalization):
    """Layer normalisation over the last axis (biased variance):
    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``."""

    type: Literal["layer_norm"]
    mask_rule: ClassVar[MaskRule] = "pass"  # each step is normalised over its own features
