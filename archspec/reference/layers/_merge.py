"""Reference merges of several inputs: add, multiply and concatenate."""

from __future__ import annotations

import numpy as np

from archspec.reference.layers._base import LayerOutput


def _per_sample_axis(axis: int) -> int:
    """A per-sample axis (no batch axis; negative counts from the end) as a batch-first axis."""
    return axis + 1 if axis >= 0 else axis


def add(layer, params, inputs, training, context) -> LayerOutput:
    return LayerOutput(sum(inputs[1:], inputs[0]))


def multiply(layer, params, inputs, training, context) -> LayerOutput:
    output = inputs[0]
    for x in inputs[1:]:
        output = output * x
    return LayerOutput(output)


def concatenate(layer, params, inputs, training, context) -> LayerOutput:
    return LayerOutput(np.concatenate(inputs, axis=_per_sample_axis(layer.axis)))
