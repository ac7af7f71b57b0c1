"""Masks for variable-length sequences: the defining property and parity.

For every mask-aware layer and model, in float64 on every backend: appending padding to a
sequence changes no output and no gradient (within 1e-12), each backend agrees with the numpy
reference (forward, with padding at the end and in the middle) and with the first backend
(gradients), in inference and training mode. And the property needs the mask: the same model
without it changes with the padding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import yaml
from paths import CONFIGS

import archspec
from archspec.api import load_with_graph
from archspec.backend import BACKENDS
from archspec.data import load_dataset
from archspec.initializers import canonical_weights
from archspec.reference.forward import reference_forward
from parity.support import scaled_error

STEPS, LONGER = 6, 10  # the spec's step count, and the same model with more padding appended
VOCABULARY, FEATURES, BATCH = 9, 3, 5
TOLERANCE = 1e-12
MASKED_CONFIGS = ["sequences_masked_lstm", "sequences_masked_transformer"]


def int_model(name: str, layers: list[dict], mask_zero: bool = True, train: bool = True) -> Callable[[int], dict]:
    """A model reading token ids (0 is padding) through an embedding with ``mask_zero``."""

    def document(steps: int) -> dict:
        embedding = {"id": "tokens", "type": "embedding", "input_dim": VOCABULARY, "output_dim": 4}
        spec = {
            "name": name,
            "inputs": {"x": {"shape": [steps], "dtype": "int64"}},
            "layers": [{**embedding, "mask_zero": mask_zero}, *layers],
        }
        if train:
            spec["training"] = {"loss": "mse", "seed": 5}
        return spec

    return document


def float_model(name: str, layers: list[dict], mask_value: float = 0.0) -> Callable[[int], dict]:
    """A model reading float sequences whose padded steps hold ``mask_value`` everywhere."""

    def document(steps: int) -> dict:
        return {
            "name": name,
            "inputs": {"x": {"shape": [steps, FEATURES]}},
            "layers": [{"id": "masked", "type": "masking", "mask_value": mask_value}, *layers],
            "training": {"loss": "mse", "seed": 5},
        }

    return document


LSTM = {"type": "lstm", "units": 3, "bias_initializer": "glorot_uniform"}
GRU = {"type": "gru", "units": 3, "bias_initializer": "glorot_uniform"}
RNN = {"type": "simple_rnn", "units": 3, "bias_initializer": "glorot_uniform"}


def sequences(layer: dict) -> dict:
    return {**layer, "return_sequences": True}


def branches(merge: dict) -> list[dict]:
    """Two masked branches of the embedding, merged, then read by a GRU."""
    return [
        {"id": "a", **sequences(LSTM)},
        {"id": "b", "type": "dense", "units": 3, "activation": "tanh", "inputs": ["tokens"]},
        {"id": "m", "inputs": ["a", "b"], **merge},
        GRU,
    ]


CASES: dict[str, Callable[[int], dict]] = {
    "lstm": int_model("lstm", [LSTM]),
    "gru_no_bias": int_model("gru", [{"type": "gru", "units": 3, "use_bias": False}]),
    "simple_rnn_relu_stack": int_model("rnn", [sequences({**RNN, "activation": "relu"}), RNN]),
    "per_step_layers": int_model(
        "per_step",
        [
            {"type": "dense", "units": 5},
            {"type": "activation", "activation": "gelu"},
            {"type": "layer_norm", "gamma_initializer": "glorot_uniform"},
            {"type": "dropout", "rate": 0.3},
            sequences(LSTM),
            {"type": "dropout", "rate": 0.2},
            GRU,
        ],
    ),
    "bidirectional_concat": int_model("bi", [{"type": "bidirectional", "layer": LSTM}]),
    "bidirectional_sequences_ave": int_model(
        "bi_seq", [{"type": "bidirectional", "merge_mode": "ave", "layer": sequences(GRU)}, RNN]
    ),
    "bidirectional_rnn_mul": int_model("bi_mul", [{"type": "bidirectional", "merge_mode": "mul", "layer": RNN}]),
    "add": int_model("add", branches({"type": "add"})),
    "multiply": int_model("mul", branches({"type": "multiply"})),
    "concatenate_features": int_model("cat", branches({"type": "concatenate"})),
    "concatenate_steps": int_model("cat_steps", branches({"type": "concatenate", "axis": 0})),
    "sequence_output": int_model("seq_out", [sequences(LSTM), {"type": "dense", "units": 2}], train=False),
    "global_avgpool1d": int_model(
        "avg", [{"type": "dense", "units": 4, "activation": "tanh"}, {"type": "global_avgpool1d"}]
    ),
    "global_maxpool1d": int_model("max", [sequences(GRU), {"type": "global_maxpool1d"}]),
    "attention": int_model(
        "attention",
        [
            {"type": "position_embedding", "max_length": 12},
            {"id": "attend", "type": "multi_head_attention", "num_heads": 2, "key_dim": 3},
            {"type": "add", "inputs": ["attend", "position_embedding_1"]},
            {"type": "layer_norm"},
            {"type": "global_avgpool1d"},
        ],
    ),
    "attention_causal": int_model(
        "causal",
        [
            {"type": "position_embedding", "kind": "sinusoidal", "max_length": 12},
            {"type": "multi_head_attention", "num_heads": 2, "key_dim": 2, "causal": True, "output_dim": 3},
            {"type": "dropout", "rate": 0.25},
            {"type": "global_maxpool1d"},
        ],
    ),
    "attention_cross": int_model(
        "cross",
        [
            {"id": "recurrent", **sequences(LSTM)},
            {"id": "query", "type": "dense", "units": 3, "inputs": ["tokens"]},
            {
                "type": "multi_head_attention",
                "num_heads": 1,
                "key_dim": 4,
                "value_dim": 2,
                "inputs": ["query", "recurrent"],
            },
            GRU,
        ],
    ),
    "attention_sequence_output": int_model(
        "attention_out", [{"type": "multi_head_attention", "num_heads": 2, "key_dim": 2}], train=False
    ),
    # Attention dropout draws its masks over (heads, query steps, key steps), so which weights
    # drop depends on the step count: this case is held to the reference, not to the property.
    "attention_dropout": int_model(
        "attention_dropout",
        [{"type": "multi_head_attention", "num_heads": 2, "key_dim": 2, "dropout": 0.3}, {"type": "global_avgpool1d"}],
    ),
    "masking_lstm": float_model("masking", [{"type": "dense", "units": 4, "activation": "tanh"}, LSTM]),
    "masking_value_bidirectional": float_model(
        "masking_value", [{"type": "bidirectional", "layer": sequences(GRU)}, LSTM], mask_value=-1.0
    ),
}


def lengths(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, STEPS + 1, BATCH)


def padded_inputs(graph, steps: int, seed: int = 0, middle: bool = False) -> np.ndarray:
    """Sequences of ``lengths(seed)`` valid steps padded at the end to ``steps`` (the same
    valid steps whatever ``steps``); ``middle`` also pads some steps inside the sequences."""
    rng = np.random.default_rng(seed + 1)
    spec_input = graph.spec.inputs["x"]
    valid = np.arange(steps)[None, :] < lengths(seed)[:, None]
    if middle:
        valid &= rng.random((BATCH, steps)) > 0.3
    if spec_input.dtype != "float":
        tokens = rng.integers(1, VOCABULARY, (BATCH, STEPS))
        tokens = np.pad(tokens, [(0, 0), (0, steps - STEPS)], constant_values=1)
        return np.where(valid, tokens, 0).astype(np.int64)
    mask_value = next(node.layer.mask_value for node in graph.nodes if node.type == "masking")
    values = rng.standard_normal((BATCH, STEPS, FEATURES))
    values = np.pad(values, [(0, 0), (0, steps - STEPS), (0, 0)], constant_values=1.0)
    return np.where(valid[..., None], values, mask_value)


def valid_mask(graph, inputs: np.ndarray) -> np.ndarray:
    """(batch, steps): True at the steps that are not padding."""
    if inputs.ndim == 2:
        return inputs != 0
    mask_value = next(node.layer.mask_value for node in graph.nodes if node.type == "masking")
    return np.any(inputs != mask_value, axis=-1)


def valid_steps(graph, output: str, inputs: np.ndarray, value: np.ndarray) -> np.ndarray:
    """An output restricted to what the property speaks of: per-step outputs (a masked
    output) at the first STEPS steps, with padded steps zeroed; other outputs whole."""
    if not graph.node_by_id[output].masked:
        return value
    return np.where(valid_mask(graph, inputs)[:, :STEPS, None], value[:, :STEPS], 0.0)


def cotangents(graph, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """The same cotangents at both lengths: zero on padded steps of a per-step output."""
    rng = np.random.default_rng(3)
    result = {}
    for output in graph.outputs:
        shape = graph.node_by_id[output].output_shape
        if graph.node_by_id[output].masked:
            values = rng.standard_normal((BATCH, STEPS, *shape[1:]))
            padding = np.zeros((BATCH, shape[0] - STEPS, *shape[1:]))
            result[output] = np.where(valid_mask(graph, inputs)[:, :, None], np.concatenate([values, padding], 1), 0.0)
        else:
            result[output] = rng.standard_normal((BATCH, *shape))
    return result


def run(case: str, steps: int, seed: int = 0, middle: bool = False):
    """Outputs (inference and training mode), reference outputs and gradients at one length."""
    spec, graph = load_with_graph(CASES[case](steps))
    weights = canonical_weights(graph)
    inputs = padded_inputs(graph, steps, seed, middle)
    results = {}
    for training in (False, True):
        reference = reference_forward(graph, weights, inputs, training=training, step=3)
        results[("reference", training)] = {o: reference.outputs[o] for o in graph.outputs}
    for backend in BACKENDS:
        model = archspec.compile(spec, backend=backend, dtype="float64", weights=weights)
        for training in (False, True):
            outputs = model.forward(inputs, training=training, step=3)
            results[(backend, training)] = {o: outputs[o] for o in graph.outputs}
        results[(backend, "gradients")] = model.gradients(inputs, cotangents(graph, inputs), training=True, step=3)
    return graph, inputs, results


def assert_close(actual, expected, label: str) -> None:
    error = scaled_error(actual, expected)
    assert error <= TOLERANCE, f"{label}: error {error:.3g} > {TOLERANCE}"


@pytest.mark.parametrize("case", sorted(set(CASES) - {"attention_dropout"}))
def test_appending_padding_changes_no_output_and_backends_follow_the_reference(case):
    graph, inputs, short = run(case, STEPS)
    long_graph, long_inputs, long = run(case, LONGER)
    first = BACKENDS[0]
    for engine in ("reference", *BACKENDS):
        for training in (False, True):
            for output in graph.outputs:
                label = f"{case} [{engine}, training={training}] '{output}'"
                a = valid_steps(graph, output, inputs, short[(engine, training)][output])
                b = valid_steps(long_graph, output, long_inputs, long[(engine, training)][output])
                assert_close(b, a, f"{label}: {LONGER} steps vs {STEPS}")
                if engine != "reference":
                    for results in (short, long):
                        reference = results[("reference", training)][output]
                        assert_close(results[(engine, training)][output], reference, f"{label} vs reference")
    for backend in BACKENDS:
        (params, input_grads), (long_params, long_input_grads) = (
            short[(backend, "gradients")],
            long[(backend, "gradients")],
        )
        for name in params:
            assert_close(long_params[name], params[name], f"{case} [{backend}] d/d{name}: {LONGER} steps vs {STEPS}")
            assert_close(params[name], short[(first, "gradients")][0][name], f"{case} d/d{name}: {backend} vs {first}")
        for name, grad in input_grads.items():
            assert_close(long_input_grads[name][:, :STEPS], grad, f"{case} [{backend}] d/d input: {LONGER} vs {STEPS}")
            assert np.all(long_input_grads[name][:, STEPS:] == 0.0), f"{case} [{backend}]: padding has a gradient"


@pytest.mark.parametrize(
    "case",
    [
        "per_step_layers",
        "bidirectional_sequences_ave",
        "concatenate_steps",
        "masking_lstm",
        "global_maxpool1d",
        "attention_causal",
        "attention_cross",
        "attention_dropout",
    ],
)
def test_padding_inside_sequences_backends_follow_the_reference(case):
    _, _, results = run(case, STEPS, seed=4, middle=True)
    first = BACKENDS[0]
    for backend in BACKENDS:
        for training in (False, True):
            for output, value in results[(backend, training)].items():
                reference = results[("reference", training)][output]
                assert_close(value, reference, f"{case} [{backend}, training={training}] '{output}' vs reference")
        params = results[(backend, "gradients")][0]
        for name, grad in params.items():
            assert_close(grad, results[(first, "gradients")][0][name], f"{case} d/d{name}: {backend} vs {first}")


@pytest.mark.parametrize("config", MASKED_CONFIGS)
def test_masked_configs_predict_the_same_whatever_the_padding(config):
    """The config's model on its own test sequences, and the same model (same weights) on
    the same sequences with 8 more padding steps: the same predictions on every backend."""
    path = CONFIGS / f"{config}.yaml"
    spec, graph = load_with_graph(path)
    weights = canonical_weights(graph)
    longer = yaml.safe_load(path.read_text())
    (name, model_input), *_ = longer["inputs"].items()
    steps = model_input["shape"][0]
    longer["inputs"][name]["shape"] = [steps + 8]
    del longer["data"], longer["training"]
    tokens = load_dataset(spec.data.model_dump()).test[0][:64]
    padded = np.pad(tokens, [(0, 0), (0, 8)])
    for backend in BACKENDS:
        short = archspec.compile(spec, backend=backend, dtype="float64", weights=weights).predict(tokens)
        long = archspec.compile(longer, backend=backend, dtype="float64", weights=weights).predict(padded)
        assert_close(long, short, f"{config} [{backend}]: {steps + 8} steps vs {steps}")


def test_without_the_mask_padding_changes_the_output():
    """The property above is a property of the mask: without it, the same model's output
    moves when padding is appended (so the test above can fail)."""
    document = int_model("unmasked", [LSTM], mask_zero=False)
    outputs = []
    for steps in (STEPS, LONGER):
        _, graph = load_with_graph(document(steps))
        weights = canonical_weights(graph)
        outputs.append(reference_forward(graph, weights, padded_inputs(graph, steps)).outputs["lstm_1"])
    assert scaled_error(outputs[1], outputs[0]) > 1e-4
