"""The reference's masked layers against their meaning, by hand: a sequence padded at the end
gives what the same layer gives on the valid steps alone (no mask, no padding)."""

from __future__ import annotations

import numpy as np
import pytest

from archspec.api import load_with_graph
from archspec.initializers import canonical_weights
from archspec.reference.forward import reference_forward

LENGTHS = [3, 6, 1, 4]
STEPS = 6


def model(layers: list[dict], steps: int, mask_zero: bool) -> tuple:
    document = {
        "name": "m",
        "inputs": {"x": {"shape": [steps], "dtype": "int64"}},
        "layers": [{"type": "embedding", "input_dim": 7, "output_dim": 3, "mask_zero": mask_zero}, *layers],
    }
    _, graph = load_with_graph(document)
    return graph, canonical_weights(graph)


LAYERS = {
    "lstm": [{"type": "lstm", "units": 4, "bias_initializer": "glorot_uniform"}],
    "gru_sequences": [{"type": "gru", "units": 3, "return_sequences": True}],
    "simple_rnn": [{"type": "simple_rnn", "units": 3}],
    "bidirectional": [{"type": "bidirectional", "layer": {"type": "lstm", "units": 2}}],
    "bidirectional_sequences": [
        {"type": "bidirectional", "merge_mode": "sum", "layer": {"type": "gru", "units": 2, "return_sequences": True}}
    ],
    "global_avgpool1d": [{"type": "dense", "units": 3}, {"type": "global_avgpool1d"}],
    "global_maxpool1d": [{"type": "global_maxpool1d"}],
    "attention": [{"type": "multi_head_attention", "num_heads": 2, "key_dim": 2}],
    "attention_causal": [{"type": "multi_head_attention", "num_heads": 1, "key_dim": 3, "causal": True}],
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_padded_and_masked_equals_the_valid_steps_alone(name):
    rng = np.random.default_rng(0)
    graph, weights = model(LAYERS[name], STEPS, mask_zero=True)
    tokens = np.zeros((len(LENGTHS), STEPS), dtype=np.int64)
    for i, length in enumerate(LENGTHS):
        tokens[i, :length] = rng.integers(1, 7, length)
    masked = reference_forward(graph, weights, tokens).outputs[graph.outputs[0]]
    for i, length in enumerate(LENGTHS):
        alone_graph, alone_weights = model(LAYERS[name], length, mask_zero=False)
        assert alone_weights.keys() == weights.keys()
        alone = reference_forward(alone_graph, weights, tokens[i : i + 1, :length]).outputs[alone_graph.outputs[0]]
        expected = alone[0]
        if graph.node_by_id[graph.outputs[0]].masked:
            masked_valid = masked[i, :length]
        else:
            masked_valid = masked[i]
        np.testing.assert_allclose(masked_valid, expected, rtol=0, atol=1e-15, err_msg=f"{name}, sample {i}")


def test_masked_steps_repeat_the_last_output_and_a_fully_padded_sequence_gives_zeros():
    graph, weights = model([{"type": "lstm", "units": 3, "return_sequences": True}], 5, mask_zero=True)
    tokens = np.array([[2, 3, 0, 0, 0], [0, 0, 0, 0, 0], [0, 4, 0, 5, 0]])
    outputs = reference_forward(graph, weights, tokens).outputs["lstm_1"]
    np.testing.assert_array_equal(outputs[0, 2:], np.broadcast_to(outputs[0, 1], (3, 3)))
    np.testing.assert_array_equal(outputs[1], 0.0)
    np.testing.assert_array_equal(outputs[2, 0], 0.0)  # before the first valid step
    np.testing.assert_array_equal(outputs[2, 2], outputs[2, 1])
    assert not np.array_equal(outputs[2, 3], outputs[2, 2])


def test_masking_zeroes_masked_steps_and_pooling_an_empty_sequence_gives_zero():
    document = {
        "name": "m",
        "inputs": {"x": {"shape": [4, 2]}},
        "layers": [{"type": "masking", "mask_value": -1.0}, {"id": "pool", "type": "global_maxpool1d"}],
    }
    _, graph = load_with_graph(document)
    x = np.array([[[-1.0, -1.0], [-5.0, -1.0], [-1.0, -1.0], [-3.0, -4.0]], np.full((4, 2), -1.0)])
    result = reference_forward(graph, {}, x)
    np.testing.assert_array_equal(result.masks["masking_1"], [[False, True, False, True], [False] * 4])
    np.testing.assert_array_equal(result.tensors["masking_1"][0], [[0, 0], [-5, -1], [0, 0], [-3, -4]])
    np.testing.assert_array_equal(result.outputs["pool"], [[-3.0, -1.0], [0.0, 0.0]])
