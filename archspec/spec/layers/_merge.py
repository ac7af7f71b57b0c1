"""Layers that merge several inputs: add, multiply, concatenate."""

from __future__ import annotations

from typing import ClassVar, Literal

from archspec.spec.common import Integer
from archspec.spec.layers._base import LayerBase, LayerShapeError, MaskRule


class _Elementwise(LayerBase):
    arity: ClassVar[tuple[int, int | None]] = (2, None)
    mask_rule: ClassVar[MaskRule] = "combine"

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
    axis: Integer = -1
    arity: ClassVar[tuple[int, int | None]] = (2, None)
    mask_rule: ClassVar[MaskRule] = "combine"  # along the step axis (0), the masks are concatenated too

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
