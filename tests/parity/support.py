"""Small specs that exercise every layer type and activation, for the parity tests."""

from __future__ import annotations

import numpy as np

from archspec.spec.common import ActivationName

IMAGE = [9, 8, 3]
SEQUENCE = [6, 5]
LONG_SEQUENCE = [11, 3]


def one_layer(name: str, input_shape, layer: dict, dtype: str = "float", training: bool = True) -> dict:
    document = {"name": name, "inputs": {"x": {"shape": list(input_shape), "dtype": dtype}}, "layers": [layer]}
    if training:
        document["training"] = {"loss": "mse", "seed": 7}
    return document


def merge(kind: str, **options) -> dict:
    return {
        "name": kind,
        "inputs": {"x": {"shape": [4, 6]}},
        "layers": [
            {"id": "a", "type": "dense", "units": 6, "activation": "tanh"},
            {"id": "b", "type": "dense", "units": 6, "inputs": ["x"]},
            {"id": "m", "type": kind, "inputs": ["a", "b", "x"], **options},
        ],
        "training": {"loss": "mse", "seed": 3},
    }


def attention(inputs: list[str], **options) -> dict:
    """Cross-attention from x (6 steps) to m (4 steps); k, if used, is a key of m's length with other features."""
    key = [{"id": "k", "type": "dense", "units": 2, "activation": "tanh", "inputs": ["m"]}] if "k" in inputs else []
    return {
        "name": "cross_" + "_".join(inputs),
        "inputs": {"x": {"shape": [6, 5]}, "m": {"shape": [4, 3]}},
        "layers": [
            *key,
            {"id": "a", "type": "multi_head_attention", "num_heads": 2, "key_dim": 3, "inputs": inputs, **options},
        ],
        "training": {"loss": "mse", "seed": 5},
    }


# Layer-type cases: every type appears at least once; option variants cover the traps
# (asymmetric same padding, strides, dilation, gate orders, merge modes, training-mode layers).
LAYER_CASES: dict[str, dict] = {
    "dense": one_layer(
        "dense", [7], {"type": "dense", "units": 5, "activation": "tanh", "bias_initializer": "glorot_uniform"}
    ),
    "dense_on_sequence": one_layer("dense_seq", SEQUENCE, {"type": "dense", "units": 4}),
    "activation": one_layer("act", [7], {"type": "activation", "activation": "gelu"}),
    "dropout": one_layer("drop", [50], {"type": "dropout", "rate": 0.4}),
    "flatten": {
        "name": "flat",
        "inputs": {"x": {"shape": IMAGE}},
        "layers": [
            {"type": "conv2d", "filters": 2, "kernel_size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 3},
        ],
    },
    "reshape": one_layer("reshape", [24], {"type": "reshape", "target_shape": [4, -1, 2]}),
    "conv2d_valid": one_layer(
        "conv",
        IMAGE,
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu", "bias_initializer": "he_normal"},
    ),
    "conv2d_same_even_stride": one_layer(
        "conv_s", IMAGE, {"type": "conv2d", "filters": 4, "kernel_size": [2, 4], "strides": [2, 3], "padding": "same"}
    ),
    "conv2d_dilated_same": one_layer(
        "conv_d", IMAGE, {"type": "conv2d", "filters": 3, "kernel_size": 3, "dilation_rate": 2, "padding": "same"}
    ),
    "maxpool2d_same": one_layer("maxp", IMAGE, {"type": "maxpool2d", "pool_size": 2, "strides": 2, "padding": "same"}),
    "maxpool2d_valid": one_layer("maxv", IMAGE, {"type": "maxpool2d", "pool_size": [3, 2], "strides": [2, 1]}),
    "avgpool2d_same": one_layer("avgp", IMAGE, {"type": "avgpool2d", "pool_size": 3, "strides": 2, "padding": "same"}),
    "avgpool2d_valid": one_layer("avgv", IMAGE, {"type": "avgpool2d", "pool_size": 2}),
    "zero_padding2d_then_conv": {
        "name": "pad2",
        "inputs": {"x": {"shape": IMAGE}},
        "layers": [
            {"id": "pad2", "type": "zero_padding2d", "padding": [[1, 2], [0, 3]]},
            {"type": "conv2d", "filters": 2, "kernel_size": 3, "strides": 2},
        ],
    },
    "global_avgpool2d": one_layer("gap", IMAGE, {"type": "global_avgpool2d"}),
    "global_maxpool2d": one_layer("gmp", IMAGE, {"type": "global_maxpool2d"}),
    "conv1d_valid": one_layer(
        "conv1",
        SEQUENCE,
        {"type": "conv1d", "filters": 4, "kernel_size": 3, "activation": "relu", "bias_initializer": "he_normal"},
    ),
    "conv1d_same_stride": one_layer(
        "conv1_s", LONG_SEQUENCE, {"type": "conv1d", "filters": 3, "kernel_size": 4, "strides": 3, "padding": "same"}
    ),
    "conv1d_same_dilated_even_kernel": one_layer(
        "conv1_d", SEQUENCE, {"type": "conv1d", "filters": 3, "kernel_size": 2, "dilation_rate": 3, "padding": "same"}
    ),
    "conv1d_causal_dilated": one_layer(
        "conv1_c",
        SEQUENCE,
        {"type": "conv1d", "filters": 4, "kernel_size": 3, "dilation_rate": 2, "padding": "causal", "use_bias": False},
    ),
    "conv1d_causal_strided": one_layer(
        "conv1_cs", LONG_SEQUENCE, {"type": "conv1d", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "causal"}
    ),
    "maxpool1d_same": one_layer(
        "maxp1", LONG_SEQUENCE, {"type": "maxpool1d", "pool_size": 3, "strides": 2, "padding": "same"}
    ),
    "maxpool1d_valid": one_layer("maxv1", LONG_SEQUENCE, {"type": "maxpool1d", "pool_size": 3, "strides": 1}),
    "avgpool1d_same": one_layer(
        "avgp1", LONG_SEQUENCE, {"type": "avgpool1d", "pool_size": 4, "strides": 3, "padding": "same"}
    ),
    "avgpool1d_valid": one_layer("avgv1", LONG_SEQUENCE, {"type": "avgpool1d"}),
    "global_avgpool1d": one_layer("gap1", SEQUENCE, {"type": "global_avgpool1d"}),
    "global_maxpool1d": one_layer("gmp1", SEQUENCE, {"type": "global_maxpool1d"}),
    "zero_padding1d": one_layer("zp1", SEQUENCE, {"type": "zero_padding1d", "padding": [2, 1]}),
    "zero_padding2d": {
        "name": "zp2",
        "inputs": {"x": {"shape": IMAGE}},
        "layers": [
            {"type": "zero_padding2d", "padding": [[0, 1], [2, 0]]},  # asymmetric, as a torch port needs
            {"type": "conv2d", "filters": 2, "kernel_size": 3, "strides": 2},
        ],
        "training": {"loss": "mse", "seed": 7},
    },
    "batch_norm": one_layer(
        "bn",
        IMAGE,
        {
            "type": "batch_norm",
            "momentum": 0.9,
            "gamma_initializer": "glorot_uniform",
            "beta_initializer": "glorot_uniform",
        },
    ),
    "batch_norm_dense": one_layer("bn_d", [6], {"type": "batch_norm", "center": False}),
    "layer_norm": one_layer(
        "ln",
        SEQUENCE,
        {"type": "layer_norm", "gamma_initializer": "glorot_uniform", "beta_initializer": "glorot_uniform"},
    ),
    "embedding": {
        "name": "emb",
        "inputs": {"x": {"shape": [6], "dtype": "int64"}},
        "layers": [
            {"type": "embedding", "input_dim": 11, "output_dim": 4},
            {"type": "flatten"},
            {"type": "dense", "units": 2},
        ],
        "training": {"loss": "mse"},
    },
    "embedding_mask_zero": {
        "name": "emb_mask",
        "inputs": {"x": {"shape": [6], "dtype": "int64"}},
        "layers": [
            {"type": "embedding", "input_dim": 5, "output_dim": 4, "mask_zero": True},
            {"type": "dense", "units": 3, "activation": "tanh"},
            {"type": "gru", "units": 3, "bias_initializer": "glorot_uniform"},
        ],
        "training": {"loss": "mse"},
    },
    "masking": {
        "name": "masking",
        "inputs": {"x": {"shape": SEQUENCE}},
        "layers": [{"type": "masking", "mask_value": 0.0}, {"type": "lstm", "units": 3}],
        "training": {"loss": "mse"},
    },
    "simple_rnn": one_layer("rnn", SEQUENCE, {"type": "simple_rnn", "units": 4, "bias_initializer": "glorot_uniform"}),
    "simple_rnn_relu_seq": one_layer(
        "rnn_r", SEQUENCE, {"type": "simple_rnn", "units": 3, "activation": "relu", "return_sequences": True}
    ),
    "lstm": one_layer("lstm", SEQUENCE, {"type": "lstm", "units": 4, "bias_initializer": "glorot_uniform"}),
    "lstm_seq": one_layer("lstm_s", SEQUENCE, {"type": "lstm", "units": 3, "return_sequences": True}),
    "gru": one_layer("gru", SEQUENCE, {"type": "gru", "units": 4, "bias_initializer": "glorot_uniform"}),
    "gru_seq_no_bias": one_layer(
        "gru_s", SEQUENCE, {"type": "gru", "units": 3, "return_sequences": True, "use_bias": False}
    ),
    "bidirectional_concat": one_layer(
        "bi",
        SEQUENCE,
        {"type": "bidirectional", "layer": {"type": "lstm", "units": 3, "bias_initializer": "glorot_uniform"}},
    ),
    "bidirectional_seq_ave": one_layer(
        "bi_s",
        SEQUENCE,
        {
            "type": "bidirectional",
            "merge_mode": "ave",
            "layer": {"type": "gru", "units": 3, "return_sequences": True, "bias_initializer": "glorot_uniform"},
        },
    ),
    "bidirectional_sum_rnn": one_layer(
        "bi_r", SEQUENCE, {"type": "bidirectional", "merge_mode": "sum", "layer": {"type": "simple_rnn", "units": 3}}
    ),
    "bidirectional_mul": one_layer(
        "bi_m", SEQUENCE, {"type": "bidirectional", "merge_mode": "mul", "layer": {"type": "gru", "units": 2}}
    ),
    "attention_self": one_layer(
        "mha",
        SEQUENCE,
        {"type": "multi_head_attention", "num_heads": 2, "key_dim": 3, "bias_initializer": "glorot_uniform"},
    ),
    "attention_causal_dropout": one_layer(
        "mha_cd",
        SEQUENCE,
        {
            "type": "multi_head_attention",
            "num_heads": 3,
            "key_dim": 2,
            "value_dim": 4,
            "output_dim": 3,
            "causal": True,
            "dropout": 0.3,
            "bias_initializer": "glorot_uniform",
        },
    ),
    "attention_cross_query_value": attention(["x", "m"], causal=True, dropout=0.25),
    "attention_cross_query_value_key": attention(["x", "m", "k"], use_bias=False, num_heads=1),
    "position_embedding_learned": one_layer(
        "pos_l", SEQUENCE, {"type": "position_embedding", "max_length": 9, "embeddings_initializer": "he_normal"}
    ),
    "position_embedding_sinusoidal": one_layer(
        "pos_s", SEQUENCE, {"type": "position_embedding", "kind": "sinusoidal", "max_length": 6}
    ),
    "encoder_block": {
        # A Transformer encoder block: every layer on (steps, features), on the last axis.
        "name": "encoder",
        "inputs": {"x": {"shape": [7, 4]}},
        "layers": [
            {"id": "pos", "type": "position_embedding", "kind": "sinusoidal", "max_length": 16},
            {"id": "att", "type": "multi_head_attention", "num_heads": 2, "key_dim": 3, "dropout": 0.2},
            {"id": "att_drop", "type": "dropout", "rate": 0.1},
            {"id": "res1", "type": "add", "inputs": ["pos", "att_drop"]},
            {"id": "ln1", "type": "layer_norm"},
            {"id": "ffn1", "type": "dense", "units": 8, "activation": "gelu"},
            {"id": "ffn2", "type": "dense", "units": 4},
            {"id": "res2", "type": "add", "inputs": ["ln1", "ffn2"]},
            {"id": "ln2", "type": "layer_norm"},
            {"id": "act", "type": "activation", "activation": "tanh"},
            {"id": "pool", "type": "global_avgpool1d"},
            {"id": "out", "type": "dense", "units": 3},
        ],
        "training": {"loss": "mse", "seed": 9},
    },
    "add": merge("add"),
    "multiply": merge("multiply"),
    "concatenate": merge("concatenate"),
    "concatenate_axis0": merge("concatenate", axis=0),
}

ACTIVATION_CASES: dict[str, dict] = {
    name: one_layer(
        f"act_{name}", [9], {"type": "dense", "units": 6, "activation": name, "bias_initializer": "glorot_uniform"}
    )
    for name in ActivationName.__args__
}


def covered_layer_types() -> set[str]:
    """Layer types that appear in at least one of ``LAYER_CASES`` (``tests/backends/test_conformance.py`` checks
    that this is every type of the catalogue)."""
    types = set()
    for document in LAYER_CASES.values():
        for layer in document["layers"]:
            types.add(layer["type"])
    return types


def random_inputs(graph, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, spec_input in graph.spec.inputs.items():
        shape = (batch, *spec_input.shape)
        if spec_input.dtype == "float":
            arrays[name] = rng.standard_normal(shape)
            masking = next((n for n in graph.nodes if n.type == "masking" and name in n.inputs), None)
            if masking is not None:  # pad some steps, so that the mask matters
                padded = rng.random(shape[:2]) < 0.3
                arrays[name] = np.where(padded[..., None], masking.layer.mask_value, arrays[name])
        else:
            embedding = next(n for n in graph.nodes if n.type == "embedding" and name in n.inputs)
            arrays[name] = rng.integers(0, embedding.layer.input_dim, shape).astype(np.int64)
    return arrays


def scaled_error(actual, expected) -> float:
    """max |actual - expected| / max(1, max |expected|): absolute near 0, relative for large values."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shapes differ: {actual.shape} vs {expected.shape}"
    if expected.size == 0:
        return 0.0
    return float(np.max(np.abs(actual - expected)) / max(1.0, float(np.max(np.abs(expected)))))
