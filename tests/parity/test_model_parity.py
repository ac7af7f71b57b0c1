"""Same weights, same function: every registered backend against the numpy reference and the first backend.

For every layer type and every activation: outputs (inference and training mode), gradients
of a scalar loss with respect to every parameter and to the input, and the batch-norm
statistics a training step leaves behind. Every config: test_config_parity.py (a file of its
own, so that `make test`'s workers, which take whole files, share the long cases).
"""

import numpy as np
import pytest

import archspec
from archspec.api import load_with_graph
from archspec.backend import BACKENDS
from archspec.initializers import canonical_weights
from archspec.reference.forward import reference_forward
from parity.support import ACTIVATION_CASES, LAYER_CASES, random_inputs, scaled_error

TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def build_all(source, dtype):
    spec, graph = load_with_graph(source)
    weights = canonical_weights(graph, dtype="float64")
    models = {
        name: archspec.compile(
            spec, backend=name, dtype=dtype, weights={k: v.astype(dtype) for k, v in weights.items()}
        )
        for name in BACKENDS
    }
    return graph, weights, models


def compare_forward(graph, weights, models, dtype, batch, training):
    inputs = random_inputs(graph, batch, seed=11)
    cast = {k: (v.astype(dtype) if v.dtype.kind == "f" else v) for k, v in inputs.items()}
    reference = reference_forward(
        graph, {k: v.astype(dtype).astype(np.float64) for k, v in weights.items()}, cast, training=training, step=5
    )
    tolerance = TOLERANCE[dtype]
    for name, model in models.items():
        outputs = model.forward(cast, training=training, step=5)
        for output_id in graph.outputs:
            error = scaled_error(outputs[output_id], reference.outputs[output_id])
            assert error <= tolerance, (
                f"{graph.spec.name} [{name}, {dtype}, training={training}] output '{output_id}': error {error:.3g} > {tolerance}"
            )
        for head in graph.heads if graph.spec.training is not None else ():
            error = scaled_error(outputs[head.logits], reference.tensors[head.logits])
            assert error <= tolerance, f"{graph.spec.name} [{name}] logits of '{head.output}': error {error:.3g}"
        if training:
            updated = model.get_weights()
            for key, value in reference.updated_weights.items():
                if key.endswith(("moving_mean", "moving_variance")):
                    error = scaled_error(updated[key], value)
                    assert error <= tolerance, (
                        f"{graph.spec.name} [{name}] {key} after a training step: error {error:.3g}"
                    )
    return cast


def compare_gradients(graph, models, dtype, inputs, training):
    rng = np.random.default_rng(5)
    cotangents = {
        out: rng.standard_normal((len(next(iter(inputs.values()))), *graph.node_by_id[out].output_shape)).astype(dtype)
        for out in graph.outputs
    }
    results = {name: model.gradients(inputs, cotangents, training=training, step=5) for name, model in models.items()}
    first, *others = BACKENDS
    param_a, input_a = results[first]
    trainable = [n for n, p in graph.parameters.items() if p.trainable]
    assert sorted(param_a) == sorted(trainable), first
    tolerance = TOLERANCE[dtype]
    for other in others:
        param_b, input_b = results[other]
        assert sorted(param_b) == sorted(trainable), other
        for key in trainable:
            error = scaled_error(param_b[key], param_a[key])
            assert error <= tolerance, (
                f"{graph.spec.name} [{dtype}, training={training}] d/d{key}: {other} vs {first} error {error:.3g}"
            )
        assert sorted(input_b) == sorted(input_a), other
        for key in input_a:
            error = scaled_error(input_b[key], input_a[key])
            assert error <= tolerance, f"{graph.spec.name} [{other}, {dtype}] d/d input {key}: error {error:.3g}"


def check(document, dtype, batch=4):
    for training in (False, True):
        graph, weights, models = build_all(document, dtype)
        inputs = compare_forward(graph, weights, models, dtype, batch, training)
        graph, weights, models = build_all(document, dtype)
        compare_gradients(graph, models, dtype, inputs, training)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer(case, dtype):
    check(LAYER_CASES[case], dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", sorted(ACTIVATION_CASES))
def test_activation(case, dtype):
    check(ACTIVATION_CASES[case], dtype)
