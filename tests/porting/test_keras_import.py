"""Importing Keras models written as their authors write them: each is imported, compiled on
every backend, and the proof (float64 and float32, against the original) passes. The traps of
porting between frameworks each have a test that fails if their conversion is dropped."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers
from paths import CONFIGS

import archspec
from archspec.errors import UnsupportedModelError
from archspec.porting import import_keras
from archspec.porting.proof import prove
from porting.support import randomize
from porting.test_round_trip import architecture


def proven(model):
    """Import ``model``, prove the port, and return the import (the proof must pass)."""
    imported = import_keras(model)
    report = prove(imported)
    assert report.passed, str(report)
    assert {(c.backend, c.dtype) for c in report.comparisons} == {
        (b, d) for b in archspec.BACKENDS for d in ("float64", "float32")
    }
    return imported


def layer_of(imported, layer_type):
    (layer,) = [layer for layer in imported.document["layers"] if layer["type"] == layer_type]
    return layer


def test_the_keras_docs_simple_mnist_convnet():
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    randomize(model)
    imported = proven(model)
    types = [layer["type"] for layer in imported.document["layers"]]
    assert types == ["conv2d", "maxpool2d", "conv2d", "maxpool2d", "flatten", "dropout", "dense"]
    assert any("dropout keeps its rates" in note for note in imported.notes)
    assert imported.document["training"] == {
        "loss": "categorical_crossentropy",
        "optimizer": {"type": "adam", "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
        "metrics": ["accuracy"],
    }


def test_the_source_documents_keras_example_imports_as_its_config():
    model = keras.Sequential(
        [
            keras.Input((784,), name="image"),
            layers.Dense(10, activation="relu", name="dense_1"),
            layers.Dense(10, activation="softmax", name="dense_2"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    randomize(model)
    imported = proven(model)
    config = archspec.load(CONFIGS / "keras_example.yaml")
    spec = archspec.load(imported.document)
    assert architecture(spec) == architecture(config)
    assert spec.training.loss == config.training.loss and spec.training.metrics == config.training.metrics
    assert spec.training.optimizer.type == "adam" and spec.training.optimizer.learning_rate == 0.001


def test_an_embedding_and_bidirectional_lstm_text_classifier():
    max_features, maxlen = 2000, 40
    inputs = keras.Input(shape=(maxlen,), dtype="int32", name="tokens")
    x = layers.Embedding(max_features, 32)(inputs)
    x = layers.Bidirectional(layers.LSTM(16, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(16))(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    randomize(model)
    imported = proven(model)
    first, second = [layer for layer in imported.document["layers"] if layer["type"] == "bidirectional"]
    assert first["layer"] == {"type": "lstm", "units": 16, "return_sequences": True}
    assert second["layer"] == {"type": "lstm", "units": 16}
    assert imported.document["inputs"] == {"tokens": {"shape": [40], "dtype": "int32"}}
    assert imported.document["training"]["loss"] == "binary_crossentropy"


def test_a_transformer_encoder_block():
    vocab_size, maxlen, embed_dim, num_heads, ff_dim = 200, 12, 16, 2, 32
    # The Keras docs' "Text classification with Transformer", its blocks written out functionally
    # (their TransformerBlock is a subclassed layer: see test_a_subclassed_layer_is_refused_by_name).
    inputs = keras.Input(shape=(maxlen,), dtype="int32")
    x = layers.Embedding(vocab_size, embed_dim, name="embedding")(inputs)
    attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim, name="attention")(x, x)
    attention = layers.Dropout(0.1, name="attention_dropout")(attention)
    out1 = layers.LayerNormalization(epsilon=1e-6, name="norm_1")(x + attention)
    ffn = layers.Dense(ff_dim, activation="relu")(out1)
    ffn = layers.Dense(embed_dim)(ffn)
    ffn = layers.Dropout(0.1, name="ffn_dropout")(ffn)
    out2 = layers.LayerNormalization(epsilon=1e-6)(layers.Add(name="residual_2")([out1, ffn]))
    x = layers.GlobalAveragePooling1D()(out2)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu")(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    randomize(model)
    imported = proven(model)
    attention = layer_of(imported, "multi_head_attention")
    assert attention == {"id": "attention", "num_heads": 2, "key_dim": 16, "type": "multi_head_attention"}
    assert [layer["epsilon"] for layer in imported.document["layers"] if layer["type"] == "layer_norm"] == [1e-6, 1e-6]
    assert [layer["inputs"] for layer in imported.document["layers"] if layer["type"] == "add"] == [
        ["embedding", "attention_dropout"],
        ["norm_1", "ffn_dropout"],
    ]


def test_a_masked_gru_and_two_inputs():
    tokens = keras.Input((7,), dtype="int32", name="tokens")
    features = keras.Input((3,), name="features")
    x = layers.Embedding(12, 4, mask_zero=True, name="embed")(tokens)  # ids 0 are padding, skipped
    x = layers.GRU(5, name="gru")(x)
    x = layers.Concatenate(name="joined")([x, layers.Dense(2, activation="tanh", name="side")(features)])
    outputs = layers.Dense(1, name="head")(x)
    model = keras.Model([tokens, features], outputs)
    randomize(model)
    imported = proven(model)
    assert list(imported.document["inputs"]) == ["tokens", "features"]
    assert layer_of(imported, "embedding")["mask_zero"] is True
    assert layer_of(imported, "concatenate")["inputs"] == ["gru", "side"]
    assert imported.document["training"]["loss"] == "mse"


def test_trap_gru_reset_after_keeps_both_biases():
    model = keras.Sequential([keras.Input((6, 3)), layers.GRU(5, name="gru"), layers.Dense(2)])
    randomize(model)
    imported = proven(model)
    bias = keras.ops.convert_to_numpy(model.layers[0].cell.bias)  # Keras: (2, 3u), rows input and recurrent
    assert np.array_equal(imported.weights["gru.bias"], bias[0])
    assert np.array_equal(imported.weights["gru.recurrent_bias"], bias[1])


def test_trap_gru_reset_before_is_refused():
    model = keras.Sequential([keras.Input((6, 3)), layers.GRU(5, reset_after=False, name="old_gru")])
    with pytest.raises(UnsupportedModelError, match=r"old_gru \(GRU\): expected reset_after=True"):
        import_keras(model)


def test_trap_batch_norm_epsilon_and_momentum():
    model = keras.Sequential(
        [
            keras.Input((8,)),
            layers.Dense(6),
            layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="norm"),
            layers.Dense(2),
        ]
    )
    # Moving variances near epsilon: a wrong epsilon (PyTorch's 1e-5 for Keras' 1e-3) shows at once.
    randomize(model, variance_range=(1e-5, 1e-3))
    imported = proven(model)
    assert layer_of(imported, "batch_norm") == {
        "id": "norm",
        "type": "batch_norm",
        "momentum": 0.9,
        "epsilon": 1e-5,
    }


def test_trap_same_padding_with_stride_2_pads_after():
    # 28 + 1 rows for a 3x3 window at stride 2: the one padded row and column go after (TensorFlow's rule).
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), layers.Conv2D(4, 3, strides=2, padding="same"), layers.Flatten()]
    )
    randomize(model)
    imported = proven(model)
    assert layer_of(imported, "conv2d")["padding"] == "same" and layer_of(imported, "conv2d")["strides"] == 2


def test_trap_flatten_order_is_channels_last():
    model = keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            layers.Conv2D(4, 3),
            layers.Flatten(),
            layers.Dense(5, activation="softmax", name="dense"),
        ]
    )
    randomize(model)
    imported = proven(model)  # the torch backend computes NCHW inside: its flatten must still read HWC
    assert np.array_equal(imported.weights["dense.kernel"], keras.ops.convert_to_numpy(model.layers[-1].kernel))


def test_zero_padding_before_a_convolution():
    model = keras.Sequential(
        [
            keras.Input((9, 8, 2)),
            layers.ZeroPadding2D(((0, 1), (2, 0)), name="pad"),
            layers.Conv2D(3, 3, strides=2),
            layers.Reshape((4 * 4, 3)),
            layers.ZeroPadding1D((1, 2), name="pad_steps"),
            layers.GlobalAveragePooling1D(),
        ]
    )
    randomize(model)
    imported = proven(model)
    assert layer_of(imported, "zero_padding2d")["padding"] == [[0, 1], [2, 0]]
    assert layer_of(imported, "zero_padding1d")["padding"] == [1, 2]


def test_every_unsupported_layer_is_listed_in_one_error():
    inputs = keras.Input((8, 8, 4))
    x = layers.Conv2D(4, 3, groups=2, name="grouped")(inputs)
    x = layers.Lambda(lambda t: t * 2, name="doubled")(x)
    x = layers.Reshape((6 * 6, 4))(x)
    x = layers.GRU(3, reset_after=False, name="reset_before")(x)
    x = layers.Dense(2, activation="softplus", name="soft")(x)
    with pytest.raises(UnsupportedModelError) as caught:
        import_keras(keras.Model(inputs, x))
    assert [(name, kind) for name, kind, _ in caught.value.unsupported] == [
        ("grouped", "Conv2D"),
        ("doubled", "Lambda"),
        ("reset_before", "GRU"),
        ("soft", "Dense"),
    ]
    assert str(caught.value).startswith("expected layers and operations archspec can express, received 4")


def test_a_subclassed_layer_is_refused_by_name():
    class TransformerBlock(layers.Layer):
        def call(self, inputs):
            return inputs

    inputs = keras.Input((4, 8))
    outputs = layers.Dense(2)(TransformerBlock(name="block")(inputs))
    with pytest.raises(UnsupportedModelError, match=r"block \(TransformerBlock\): no archspec layer type"):
        import_keras(keras.Model(inputs, outputs))


def test_training_comes_from_compile():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True, global_clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy", keras.metrics.AUC(), "mean_absolute_error", "top_k_categorical_accuracy"],
    )
    imported = import_keras(model)
    assert imported.document["training"] == {
        "loss": "sparse_categorical_crossentropy",
        "optimizer": {"type": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
        "clip_norm": 1.0,
        "metrics": ["accuracy", "auc"],
    }
    assert any("'top_k_categorical_accuracy' has no archspec counterpart" in note for note in imported.notes)
    assert any("'mae' does not go with the loss" in note for note in imported.notes)
    archspec.load(imported.document)  # a valid spec


@pytest.mark.parametrize(
    ("activation", "units", "loss"),
    [("softmax", 3, "sparse_categorical_crossentropy"), ("sigmoid", 1, "binary_crossentropy"), ("linear", 1, "mse")],
)
def test_an_uncompiled_model_gets_a_default_to_review(activation, units, loss):
    model = keras.Sequential([keras.Input((4,)), layers.Dense(units, activation=activation)])
    imported = import_keras(model)
    assert imported.document["training"]["loss"] == loss
    assert any("was not compiled" in note and "review" in note for note in imported.notes)


def test_from_keras_returns_the_spec_and_canonical_weights():
    model = keras.Sequential(
        [keras.Input((5,)), layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.01), name="dense")]
    )
    spec, weights = archspec.from_keras(model)
    assert isinstance(spec, archspec.Spec) and spec.layers[0].kernel_regularizer.l2 == 0.01
    assert sorted(weights) == ["dense.bias", "dense.kernel"]
    assert np.array_equal(weights["dense.kernel"], keras.ops.convert_to_numpy(model.layers[0].kernel))


def test_a_model_with_two_outputs():
    inputs = keras.Input((10,))
    hidden = layers.Dense(8, activation="relu", name="hidden")(inputs)
    model = keras.Model(
        inputs, [layers.Dense(3, activation="softmax", name="a")(hidden), layers.Dense(1, name="b")(hidden)]
    )
    randomize(model)
    imported = proven(model)
    assert imported.document["outputs"] == ["a", "b"] and "training" not in imported.document
    assert any("2 outputs" in note for note in imported.notes)


def test_a_model_without_a_graph_is_a_usage_error():
    unbuilt = keras.Sequential([layers.Dense(2)])
    with pytest.raises(archspec.UsageError, match="expected a built Sequential or functional Keras model"):
        import_keras(unbuilt)
    with pytest.raises(archspec.UsageError, match="expected a keras.Model, received str"):
        import_keras("model.keras")


def test_a_compiled_loss_that_does_not_fit_the_spec_becomes_a_default_to_review():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2, activation="sigmoid")])  # multi-label
    model.compile(optimizer="adam", loss="binary_crossentropy")
    imported = import_keras(model)
    assert imported.document["training"]["loss"] == "mse"
    assert any("does not fit the spec (binary_crossentropy expects an output of shape [1]" in n for n in imported.notes)
    archspec.load(imported.document)


def test_initializers_carry_over_where_archspec_has_them():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(
                3, kernel_initializer="he_normal", bias_initializer=keras.initializers.Constant(0.1), name="a"
            ),
            layers.Dense(2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="b"),
        ]
    )
    imported = import_keras(model)
    first, second = imported.document["layers"]
    assert first["kernel_initializer"] == {"type": "he_normal"}
    assert first["bias_initializer"] == {"type": "constant", "value": 0.1}
    assert "kernel_initializer" not in second  # TruncatedNormal: the default, and a note
    assert any("no counterpart" in note and "b.kernel_initializer" in note for note in imported.notes)
    archspec.load(imported.document)
