"""Where a training step went non-finite: the first parameter or layer tensor that is NaN or infinite.

Backend-neutral: the step is replayed by the engine up to the weights it started from, and
the forward pass of the bad batch is run by the numpy reference (``archspec.reference``).
The reference computes in float64, so a value beyond the range of the run's dtype (which
overflowed there) counts as non-finite too.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from archspec.graph import ModelGraph


def first_nonfinite_parameter(weights: Mapping[str, np.ndarray]) -> str | None:
    """The first canonical parameter (in build order) holding NaN or infinity, or None."""
    for name, value in weights.items():
        if not np.isfinite(value).all():
            return name
    return None


def first_nonfinite_tensor(
    graph: ModelGraph, weights: Mapping[str, np.ndarray], inputs, *, step: int, dtype: str
) -> str | None:
    """Describe the first tensor of a training-mode forward pass, in graph order, that is NaN,
    infinite or beyond ``dtype``'s range: ``"the pre-activation of layer 'dense_2' (dense)"``.
    None when every tensor is finite (the loss itself then overflowed)."""
    from archspec.reference.forward import reference_forward

    limit = np.finfo(dtype).max
    with np.errstate(all="ignore"):
        result = reference_forward(graph, weights, inputs, training=True, step=step)
        for node in graph.nodes:
            for name, what in ((f"{node.id}:pre", "pre-activation"), (node.id, "output")):
                value = result.tensors.get(name)
                if value is not None and value.size and not (np.abs(value) <= limit).all():
                    return f"the {what} of layer '{node.id}' ({node.type})"
    return None
