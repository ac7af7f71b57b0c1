"""Where a training step went non-finite: the first parameter or layer tensor that is NaN or infinite.

Backend-neutral: the engine replays the steps from the last good state up to the weights the
bad step started from, and the numpy reference (``archspec.reference``) runs the forward pass
of the bad batch. The reference computes in float64, so a value beyond the range of the
run's dtype (which overflowed there) counts as non-finite too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from archspec.graph import ModelGraph
from archspec.reference.forward import reference_forward


@dataclass(frozen=True)
class Snapshot:
    """The last state whose losses and weights were all finite (host copies)."""

    step: int
    weights: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]


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
    limit = np.finfo(dtype).max
    with np.errstate(all="ignore"):
        result = reference_forward(graph, weights, inputs, training=True, step=step)
        for node in graph.nodes:
            for name, what in ((f"{node.id}:pre", "pre-activation"), (node.id, "output")):
                value = result.tensors.get(name)
                if value is not None and value.size and not (np.abs(value) <= limit).all():
                    return f"the {what} of layer '{node.id}' ({node.type})"
    return None


def locate(
    step: int,
    good: Snapshot,
    graph: ModelGraph,
    model,
    engine,
    replay: Callable[[int], None],
    inputs_of: Callable[[int], dict[str, np.ndarray]],
    dtype: str,
) -> str:
    """Why step ``step``'s loss is non-finite, in words.

    Restores ``good``, runs ``replay(s)`` (one optimizer step) for every step since, then
    looks for the first non-finite parameter, else the first non-finite tensor of step
    ``step``'s forward pass on its batch ``inputs_of(step)``.
    """
    model.set_weights(good.weights)
    engine.load_optimizer_state(good.optimizer, good.step)
    for earlier in range(good.step, step):
        replay(earlier)
    weights = model.get_weights()
    parameter = first_nonfinite_parameter(weights)
    if parameter is not None:
        return f"parameter '{parameter}' was already non-finite when the step began"
    tensor = first_nonfinite_tensor(graph, weights, inputs_of(step), step=step, dtype=dtype)
    if tensor is None:
        return "every layer output of that step is finite, so the loss computation itself overflowed"
    return f"the first non-finite tensor of that step's forward pass is {tensor}"
