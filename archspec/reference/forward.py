"""The reference forward pass: a whole model graph in float64 numpy, layer by layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from archspec.errors import DataError, UsageError
from archspec.graph import ModelGraph
from archspec.reference.layers import LayerContext, output_mask, reference_layer


@dataclass(frozen=True)
class ReferenceResult:
    """Everything one forward pass computed.

    ``tensors`` holds every named tensor: the model inputs, each node's output
    under its id and, for nodes with an activation, the pre-activation under
    ``"{id}:pre"``. ``logits`` is the tensor ``graph.heads[0].logits`` (None
    without heads). ``updated_weights`` are the weights after the pass: batch-norm
    moving statistics updated in training mode, everything else unchanged. ``masks``
    holds the mask of every masked tensor (``(batch, steps)``, True at valid steps).
    """

    outputs: dict[str, np.ndarray]
    tensors: dict[str, np.ndarray]
    logits: np.ndarray | None
    updated_weights: dict[str, np.ndarray]
    masks: dict[str, np.ndarray] = field(default_factory=dict)


def _input_arrays(graph: ModelGraph, inputs) -> dict[str, np.ndarray]:
    names = list(graph.spec.inputs)
    if not isinstance(inputs, Mapping):
        if len(names) != 1:
            raise UsageError(f"expected a dict of arrays by input name ({', '.join(names)}), received one array")
        inputs = {names[0]: inputs}
    if set(inputs) != set(names):
        raise UsageError(f"expected arrays for the inputs {sorted(names)}, received {sorted(inputs)}")
    arrays = {}
    for name, model_input in graph.spec.inputs.items():
        value = np.asarray(inputs[name])
        if value.ndim < 1 or tuple(value.shape[1:]) != tuple(model_input.shape):
            raise DataError(
                f"expected input '{name}' of shape [batch, {', '.join(map(str, model_input.shape))}], "
                f"received {list(value.shape)}"
            )
        if model_input.dtype == "float":
            arrays[name] = value.astype(np.float64)
        elif np.issubdtype(value.dtype, np.integer):
            arrays[name] = value.astype(np.int64)
        else:
            raise DataError(f"expected integer ids for input '{name}' ({model_input.dtype}), received {value.dtype}")
    return arrays


def _float64_weights(graph: ModelGraph, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    expected = graph.parameters
    missing = [name for name in expected if name not in weights]
    extra = [name for name in weights if name not in expected]
    if missing or extra:
        raise UsageError(
            f"expected weights for exactly the model's parameters, received missing: {missing}, unknown: {extra}"
        )
    converted = {}
    for name, param in expected.items():
        value = np.asarray(weights[name], dtype=np.float64)
        if value.shape != tuple(param.shape):
            raise UsageError(f"expected weight '{name}' of shape {list(param.shape)}, received {list(value.shape)}")
        converted[name] = value
    return converted


def reference_forward(
    graph: ModelGraph,
    weights: Mapping[str, np.ndarray],
    inputs,
    *,
    training: bool = False,
    step: int = 0,
) -> ReferenceResult:
    """Runs ``graph`` on ``inputs`` (an array, or a dict by input name; batch first)
    with ``weights`` (canonical layout), in float64.

    ``training`` switches dropout on (masks for optimizer ``step``) and batch norm
    to batch statistics.
    """
    tensors: dict[str, np.ndarray] = dict(_input_arrays(graph, inputs))
    current = _float64_weights(graph, weights)
    updated = dict(current)
    seed = graph.spec.training.seed if graph.spec.training else 0
    masks: dict[str, np.ndarray] = {}  # tensor -> its mask (True at valid steps), for masked tensors
    for node in graph.nodes:
        params = {param.name: current[node.canonical_name(param)] for param in node.params}
        input_masks = [masks.get(r) for r in node.inputs]
        context = LayerContext(seed=seed, layer_index=node.index, step=step, masks=tuple(input_masks))
        result = reference_layer(node.type)(node.layer, params, [tensors[r] for r in node.inputs], training, context)
        mask = output_mask(node, input_masks, result.mask)
        if mask is not None:
            masks[node.id] = mask
        tensors[node.id] = result.output
        if result.pre_activation is not None:
            tensors[f"{node.id}:pre"] = result.pre_activation
        for local_name, value in result.state.items():
            updated[f"{node.id}.{local_name}"] = value
    outputs = {name: tensors[name] for name in graph.outputs}
    logits = tensors[graph.heads[0].logits] if graph.heads else None
    return ReferenceResult(outputs, tensors, logits, updated, masks)
