"""Output shapes and parameter counts of every layer type, against numbers computed by hand."""

import pytest

import archspec
from archspec.graph import layer_types, resolve


def graph_of(input_shape, layers, dtype="float"):
    spec = archspec.Spec.model_validate(
        {"name": "t", "inputs": {"x": {"shape": list(input_shape), "dtype": dtype}}, "layers": layers}
    )
    return resolve(spec)


# (input shape, layer, expected output shape, expected parameter count, how the count is made)
CASES = [
    ((784,), {"type": "dense", "units": 256}, (256,), 784 * 256 + 256),
    ((784,), {"type": "dense", "units": 10, "use_bias": False}, (10,), 7840),
    ((28, 16), {"type": "dense", "units": 8}, (28, 8), 16 * 8 + 8),
    ((10,), {"type": "activation", "activation": "gelu"}, (10,), 0),
    ((10,), {"type": "dropout", "rate": 0.5}, (10,), 0),
    ((12, 5), {"type": "masking", "mask_value": -1.0}, (12, 5), 0),
    ((28, 28, 1), {"type": "flatten"}, (784,), 0),
    ((784,), {"type": "reshape", "target_shape": [28, -1, 1]}, (28, 28, 1), 0),
    ((28, 28, 1), {"type": "conv2d", "filters": 32, "kernel_size": 3}, (26, 26, 32), 3 * 3 * 1 * 32 + 32),
    (
        (28, 28, 3),
        {"type": "conv2d", "filters": 8, "kernel_size": [2, 4], "strides": 2, "padding": "same"},
        (14, 14, 8),
        2 * 4 * 3 * 8 + 8,
    ),
    (
        (28, 28, 3),
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "dilation_rate": 2},
        (24, 24, 4),
        3 * 3 * 3 * 4 + 4,
    ),
    ((27, 27, 3), {"type": "conv2d", "filters": 4, "kernel_size": 3, "strides": 2}, (13, 13, 4), 3 * 3 * 3 * 4 + 4),
    ((28, 28, 4), {"type": "maxpool2d", "pool_size": 2}, (14, 14, 4), 0),
    ((27, 27, 4), {"type": "maxpool2d", "pool_size": 2, "padding": "same"}, (14, 14, 4), 0),
    ((27, 27, 4), {"type": "avgpool2d", "pool_size": 3, "strides": 2}, (13, 13, 4), 0),
    ((7, 7, 64), {"type": "global_avgpool2d"}, (64,), 0),
    ((7, 7, 64), {"type": "global_maxpool2d"}, (64,), 0),
    ((28, 28, 1), {"type": "zero_padding2d"}, (30, 30, 1), 0),
    ((28, 28, 1), {"type": "zero_padding2d", "padding": [2, 0]}, (32, 28, 1), 0),
    ((28, 28, 1), {"type": "zero_padding2d", "padding": [[0, 1], [3, 2]]}, (29, 33, 1), 0),
    ((10, 4), {"type": "zero_padding1d", "padding": [2, 1]}, (13, 4), 0),
    ((28, 28), {"type": "conv1d", "filters": 8, "kernel_size": 5}, (24, 8), 5 * 28 * 8 + 8),
    (
        (28, 28),
        {"type": "conv1d", "filters": 16, "kernel_size": 3, "dilation_rate": 4, "padding": "causal"},
        (28, 16),
        3 * 28 * 16 + 16,
    ),
    (
        (28, 4),
        {"type": "conv1d", "filters": 6, "kernel_size": 4, "strides": 3, "padding": "same", "use_bias": False},
        (10, 6),
        4 * 4 * 6,
    ),
    ((28, 4), {"type": "maxpool1d"}, (14, 4), 0),
    ((27, 4), {"type": "avgpool1d", "pool_size": 3, "strides": 2, "padding": "same"}, (14, 4), 0),
    ((27, 4), {"type": "avgpool1d", "pool_size": 3, "strides": 2}, (13, 4), 0),
    ((28, 16), {"type": "global_avgpool1d"}, (16,), 0),
    ((28, 16), {"type": "global_maxpool1d"}, (16,), 0),
    # Keras' MultiHeadAttention counts the same: (16 * 4 * 8 + 4 * 8) * 3 + 4 * 8 * 16 + 16.
    (
        (28, 16),
        {"type": "multi_head_attention", "num_heads": 4, "key_dim": 8},
        (28, 16),
        3 * (16 * 32 + 32) + 32 * 16 + 16,
    ),
    (
        (28, 16),
        {
            "type": "multi_head_attention",
            "num_heads": 4,
            "key_dim": 8,
            "value_dim": 5,
            "output_dim": 10,
            "use_bias": False,
        },
        (28, 10),
        2 * 16 * 32 + 16 * 20 + 20 * 10,
    ),
    ((28, 16), {"type": "position_embedding", "max_length": 64}, (28, 16), 64 * 16),
    ((28, 16), {"type": "position_embedding", "kind": "sinusoidal", "max_length": 28}, (28, 16), 0),
    ((128,), {"type": "batch_norm"}, (128,), 4 * 128),
    ((14, 14, 32), {"type": "batch_norm", "center": False}, (14, 14, 32), 3 * 32),
    ((64,), {"type": "layer_norm"}, (64,), 2 * 64),
    ((10, 32), {"type": "simple_rnn", "units": 32}, (32,), 32 * 32 + 32 * 32 + 32),
    ((28, 28), {"type": "lstm", "units": 128}, (128,), 4 * (28 * 128 + 128 * 128 + 128)),
    ((28, 28), {"type": "lstm", "units": 16, "return_sequences": True}, (28, 16), 4 * (28 * 16 + 16 * 16 + 16)),
    ((28, 28), {"type": "gru", "units": 128}, (128,), 3 * (28 * 128 + 128 * 128 + 2 * 128)),
    (
        (28, 28),
        {"type": "bidirectional", "layer": {"type": "lstm", "units": 64}},
        (128,),
        2 * 4 * (28 * 64 + 64 * 64 + 64),
    ),
    (
        (28, 28),
        {"type": "bidirectional", "merge_mode": "sum", "layer": {"type": "gru", "units": 8, "return_sequences": True}},
        (28, 8),
        2 * 3 * (28 * 8 + 8 * 8 + 16),
    ),
]


@pytest.mark.parametrize(
    "input_shape, layer, shape, count", CASES, ids=[f"{c[1]['type']}-{i}" for i, c in enumerate(CASES)]
)
def test_shape_and_count(input_shape, layer, shape, count):
    graph = graph_of(input_shape, [layer])
    (node,) = graph.nodes
    assert node.output_shape == shape
    assert node.param_count == count == graph.param_count


def test_embedding_takes_integer_ids():
    graph = graph_of((20,), [{"type": "embedding", "input_dim": 1000, "output_dim": 16}], dtype="int64")
    assert graph.nodes[0].output_shape == (20, 16)
    assert graph.param_count == 1000 * 16


@pytest.mark.parametrize("merge, shape", [("add", (32,)), ("multiply", (32,)), ("concatenate", (64,))])
def test_merges(merge, shape):
    spec = archspec.Spec.model_validate(
        {
            "name": "t",
            "inputs": {"x": {"shape": [16]}},
            "layers": [
                {"id": "a", "type": "dense", "units": 32},
                {"id": "b", "type": "dense", "units": 32, "inputs": ["x"]},
                {"id": "m", "type": merge, "inputs": ["a", "b"]},
            ],
        }
    )
    graph = resolve(spec)
    assert graph.node_by_id["m"].output_shape == shape
    assert graph.param_count == 2 * (16 * 32 + 32)


def test_cross_attention_projects_query_key_and_value_from_their_own_features():
    spec = archspec.Spec.model_validate(
        {
            "name": "t",
            "inputs": {"q": {"shape": [6, 5]}, "v": {"shape": [4, 3]}, "k": {"shape": [4, 2]}},
            "layers": [
                {"id": "a", "type": "multi_head_attention", "num_heads": 2, "key_dim": 3, "inputs": ["q", "v", "k"]}
            ],
        }
    )
    graph = resolve(spec)
    assert graph.node_by_id["a"].output_shape == (6, 5)
    assert {name: param.shape for name, param in graph.parameters.items()} == {
        "a.query_kernel": (5, 6),
        "a.query_bias": (6,),
        "a.key_kernel": (2, 6),
        "a.key_bias": (6,),
        "a.value_kernel": (3, 6),
        "a.value_bias": (6,),
        "a.output_kernel": (6, 5),
        "a.output_bias": (5,),
    }


def test_batch_norm_statistics_are_not_trainable():
    graph = graph_of((128,), [{"type": "batch_norm"}])
    assert graph.trainable_param_count == 256
    assert {n: p.trainable for n, p in graph.parameters.items()} == {
        "batch_norm_1.gamma": True,
        "batch_norm_1.beta": True,
        "batch_norm_1.moving_mean": False,
        "batch_norm_1.moving_variance": False,
    }


def test_every_layer_type_has_a_counted_case():
    covered = {c[1]["type"] for c in CASES} | {"embedding", "add", "multiply", "concatenate"}
    assert covered == set(layer_types())


CONFIG_COUNTS = {
    "keras_example": 784 * 10 + 10 + 10 * 10 + 10,
    "torch_example": 784 * 10 + 10 + 10 * 10 + 10,
    "linear_regression": 8 + 1,
    "logistic_regression": 8 + 1,
    "mnist_mlp": 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10,
    "mnist_cnn": (9 * 32 + 32) + (9 * 32 * 64 + 64) + (5 * 5 * 64 * 128 + 128) + (128 * 10 + 10),
    "mnist_lstm": 4 * (28 * 128 + 128 * 128 + 128) + 128 * 10 + 10,
    "mnist_gru": 3 * (28 * 128 + 128 * 128 + 256) + 128 * 10 + 10,
    "mnist_bidirectional": 2 * 4 * (28 * 64 + 64 * 64 + 64) + 3 * (128 * 64 + 64 * 64 + 128) + 64 * 10 + 10,
    "mnist_residual": (784 * 128 + 128) + (128 * 128 + 128) + 4 * 128 + (128 * 10 + 10),
    "mnist_tcn": (3 * 28 * 32 + 32) + 3 * (3 * 32 * 32 + 32) + (28 * 32 * 128 + 128) + (128 * 10 + 10),
    # embedding, positions, two blocks of (attention: 4 projections; norm; feed-forward; norm), head
    "mnist_transformer": (28 * 64 + 64)
    + 28 * 64
    + 2 * (4 * (64 * 64 + 64) + 2 * 64 + (64 * 128 + 128) + (128 * 64 + 64) + 2 * 64)
    + (64 * 10 + 10),
    "sequences_masked_lstm": 10 * 16 + 4 * (16 * 32 + 32 * 32 + 32) + (32 * 2 + 2),
    # embedding, positions, two blocks of (attention: 4 projections without bias; norm; feed-forward; norm), head
    "sequences_masked_transformer": 10 * 32
    + 32 * 32
    + 2 * (4 * (32 * 32) + 2 * 32 + (32 * 64 + 64) + (64 * 32 + 32) + 2 * 32)
    + (32 * 2 + 2),
}


@pytest.mark.parametrize("name", sorted(CONFIG_COUNTS))
def test_config_counts(configs_dir, name):
    spec = archspec.load(configs_dir / f"{name}.yaml")
    assert resolve(spec).param_count == CONFIG_COUNTS[name]
