"""The proof finds a wrong port and names the first layer whose output differs."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from archspec.porting import import_keras
from archspec.porting.proof import BOUNDS, prove
from porting.support import randomize


def small_model():
    model = keras.Sequential(
        [
            keras.Input((12,)),
            layers.Dense(8, activation="tanh", name="first"),
            layers.Dense(6, activation="relu", name="second"),
            layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    randomize(model)
    return model


def test_a_faithful_port_passes_every_comparison():
    report = prove(import_keras(small_model()))
    assert report.passed
    assert report.inputs == "32 random samples (seed 0)"
    for comparison in report.comparisons:
        assert comparison.largest <= BOUNDS[comparison.dtype] and comparison.first_difference is None
    assert "proof passed" in str(report)


def test_a_wrong_weight_fails_and_names_its_layer():
    imported = import_keras(small_model())
    imported.weights["second.bias"] = imported.weights["second.bias"] + np.float32(1e-3)
    report = prove(imported)
    assert not report.passed
    assert all(not c.passed for c in report.comparisons)
    located = {c.first_difference for c in report.comparisons}
    assert len(located) == 1 and located.pop().startswith("layer 'second' (dense) differs from archspec's reference")
    assert "proof FAILED" in str(report) and "first difference: layer 'second'" in str(report)


def test_given_inputs_are_used():
    imported = import_keras(small_model())
    (name,) = imported.document["inputs"]
    report = prove(imported, {name: np.random.default_rng(3).standard_normal((5, 12))})
    assert report.inputs == "5 given samples" and report.passed


def test_a_model_reading_mnist_images_is_proven_on_mnist():
    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(10, activation="softmax")])
    randomize(model)
    report = prove(import_keras(model))
    assert report.inputs == "32 MNIST test images" and report.passed


def test_a_mask_keras_drops_at_an_operation_fails_at_the_layer_that_reads_it():
    # Keras carries a mask through the Add layer but not through `x + y` (an operation), so
    # its pooling then averages the padded steps too; archspec carries it by its rules. The
    # padded steps themselves are no part of any layer's meaning: the attention before (whose
    # padded query rows Keras computes otherwise) is not blamed.
    inputs = keras.Input(shape=(6,), dtype="int32")
    x = layers.Embedding(20, 8, mask_zero=True)(inputs)
    attended = layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
    pooled = layers.GlobalAveragePooling1D(name="pool")(x + attended)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(pooled))
    randomize(model)
    report = prove(import_keras(model))
    assert not report.passed
    assert report.comparisons[0].first_difference.startswith("layer 'pool' (global_avgpool1d) differs")
