"""Losses against torch.nn.functional, Keras' probability clipping and hand values; and the
core's own numpy losses (the trainer's evaluation loss, the regression metrics) against the reference."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from keras import losses as keras_losses
from keras import ops as keras_ops

from archspec import losses as core_losses
from archspec.definitions.constants import EPSILON
from archspec.errors import DataError, UsageError
from archspec.reference.losses import loss_value, regularization_penalty

rng = np.random.default_rng(0)
LOGITS = rng.normal(scale=3.0, size=(8, 5))
LABELS = rng.integers(0, 5, size=8)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_sparse_categorical_crossentropy_matches_torch():
    expected = F.cross_entropy(torch.tensor(LOGITS), torch.tensor(LABELS)).item()
    from_logits = loss_value("sparse_categorical_crossentropy", LOGITS, LABELS, from_logits=True)
    assert from_logits == pytest.approx(expected, rel=1e-14)
    from_probabilities = loss_value("sparse_categorical_crossentropy", softmax(LOGITS), LABELS, from_logits=False)
    assert from_probabilities == pytest.approx(expected, rel=1e-12)


def test_categorical_crossentropy_matches_torch_with_soft_targets():
    soft = softmax(rng.normal(size=(8, 5)))
    expected = F.cross_entropy(torch.tensor(LOGITS), torch.tensor(soft)).item()
    assert loss_value("categorical_crossentropy", LOGITS, soft, from_logits=True) == pytest.approx(expected, rel=1e-14)
    onehot = np.eye(5)[LABELS]
    assert loss_value("categorical_crossentropy", LOGITS, onehot, from_logits=True) == pytest.approx(
        loss_value("sparse_categorical_crossentropy", LOGITS, LABELS, from_logits=True), rel=1e-15
    )


def test_crossentropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    value = loss_value("sparse_categorical_crossentropy", logits, np.array([1, 2]), from_logits=True)
    assert value == pytest.approx((1000.0 + math.log(3)) / 2, rel=1e-15)


def test_probabilities_are_clipped_like_keras():
    probabilities = np.array([[1.0, 0.0], [0.5, 0.5]])
    value = loss_value("sparse_categorical_crossentropy", probabilities, np.array([1, 0]), from_logits=False)
    assert value == pytest.approx((-math.log(EPSILON) + math.log(2)) / 2, rel=1e-12)
    assert loss_value("binary_crossentropy", np.array([1.0]), np.array([0.0]), from_logits=False) == pytest.approx(
        -math.log(EPSILON), rel=1e-9
    )


def test_probability_paths_match_keras_where_clipping_bites():
    probabilities = rng.uniform(size=(6, 4))
    probabilities[0, 1] = 0.0
    probabilities[1] = [1.0, 0.0, 0.0, 0.0]
    labels = rng.integers(0, 4, size=6)
    onehot = np.eye(4)[labels]
    keras_value = np.mean(
        keras_losses.categorical_crossentropy(
            keras_ops.convert_to_tensor(onehot, "float64"), keras_ops.convert_to_tensor(probabilities, "float64")
        )
    )
    ours = loss_value("categorical_crossentropy", probabilities, onehot, from_logits=False)
    assert ours == pytest.approx(float(keras_value), rel=1e-12)
    # Sparse is categorical with one-hot labels (as Keras' numpy backend computes it).
    assert loss_value("sparse_categorical_crossentropy", probabilities, labels, from_logits=False) == pytest.approx(
        ours, rel=1e-15
    )
    binary = rng.uniform(size=(6, 1))
    binary[0], binary[1] = 1.0, 0.0
    targets = rng.integers(0, 2, size=(6, 1)).astype(np.float64)
    keras_value = np.mean(
        keras_losses.binary_crossentropy(
            keras_ops.convert_to_tensor(targets, "float64"), keras_ops.convert_to_tensor(binary, "float64")
        )
    )
    assert loss_value("binary_crossentropy", binary, targets, from_logits=False) == pytest.approx(
        float(keras_value), rel=1e-12
    )


@pytest.mark.parametrize("shape", [(8,), (8, 1)])
def test_binary_crossentropy_matches_torch(shape):
    logits = rng.normal(scale=5.0, size=shape)
    logits[0] = 800.0  # exp would overflow without the stable form
    targets = rng.uniform(size=(8,))
    expected = F.binary_cross_entropy_with_logits(torch.tensor(logits.reshape(-1)), torch.tensor(targets)).item()
    assert loss_value("binary_crossentropy", logits, targets, from_logits=True) == pytest.approx(expected, rel=1e-14)
    mild = np.clip(logits, -10, 10)
    expected = F.binary_cross_entropy(torch.sigmoid(torch.tensor(mild.reshape(-1))), torch.tensor(targets)).item()
    probabilities = 1 / (1 + np.exp(-mild))
    assert loss_value("binary_crossentropy", probabilities, targets.reshape(-1, 1), from_logits=False) == pytest.approx(
        expected, rel=1e-12
    )


def test_mse_and_mae_are_means_of_all_elements():
    output = np.array([[1.0, 2.0], [3.0, 4.0]])
    target = np.array([[0.0, 0.0], [3.0, 8.0]])
    assert loss_value("mse", output, target, from_logits=False) == (1 + 4 + 0 + 16) / 4
    assert loss_value("mae", output, target, from_logits=True) == (1 + 2 + 0 + 4) / 4
    output_tensor, target_tensor = torch.tensor(output), torch.tensor(target)
    assert loss_value("mse", output, target, from_logits=False) == F.mse_loss(output_tensor, target_tensor).item()
    assert loss_value("mae", output, target, from_logits=False) == F.l1_loss(output_tensor, target_tensor).item()
    assert loss_value("mse", np.array([[1.0], [2.0]]), np.array([0.0, 0.0]), from_logits=False) == 2.5


def test_regularization_penalty_by_hand():
    weights = {"dense.kernel": np.array([[1.0, -2.0], [0.5, 0.0]]), "dense.bias": np.array([3.0]), "other": np.ones(9)}
    regularizers = {"dense.kernel": {"l1": 0.1, "l2": 0.01}, "dense.bias": {"l2": 0.5}}
    expected = 0.1 * 3.5 + 0.01 * 5.25 + 0.5 * 9.0
    assert regularization_penalty(weights, regularizers) == pytest.approx(expected, rel=1e-15)
    assert regularization_penalty(weights, {}) == 0.0


def test_bad_calls_are_refused():
    with pytest.raises(UsageError, match="expected a loss among"):
        loss_value("hinge", LOGITS, LABELS, from_logits=True)
    with pytest.raises(DataError, match="expected labels in \\[0, 5\\)"):
        loss_value("sparse_categorical_crossentropy", LOGITS, np.full(8, 5), from_logits=True)
    with pytest.raises(DataError, match="expected integer labels of shape \\(8,\\)"):
        loss_value("sparse_categorical_crossentropy", LOGITS, np.zeros(8), from_logits=True)
    with pytest.raises(DataError, match="expected targets of shape \\(8, 5\\)"):
        loss_value("categorical_crossentropy", LOGITS, np.zeros((8, 4)), from_logits=True)
    with pytest.raises(UsageError, match="expected a regularized weight among"):
        regularization_penalty({"w": np.ones(2)}, {"v": {"l2": 0.1}})
    with pytest.raises(UsageError, match="'l1' and/or 'l2'"):
        regularization_penalty({"w": np.ones(2)}, {"w": {"l3": 0.1}})


def core_loss_cases():
    """(name, output, target, from_logits) for every loss, from logits and from probabilities,
    with rows where the probability clip bites."""
    probabilities = softmax(LOGITS)
    probabilities[0] = [1.0, 0.0, 0.0, 0.0, 0.0]
    soft = softmax(rng.normal(size=(8, 5)))
    binary_logits = rng.normal(scale=5.0, size=(8, 1))
    binary_logits[0] = 800.0
    binary_probabilities = 1 / (1 + np.exp(-np.clip(binary_logits, -30, 30)))
    binary_targets = rng.integers(0, 2, size=8).astype(np.float64)
    regression = rng.normal(size=(8, 3))
    cases = []
    for from_logits, output in ((True, LOGITS), (False, probabilities)):
        cases.append(("sparse_categorical_crossentropy", output, LABELS, from_logits))
        cases.append(("categorical_crossentropy", output, soft, from_logits))
    cases.append(("binary_crossentropy", binary_logits, binary_targets, True))
    cases.append(("binary_crossentropy", binary_probabilities, binary_targets.reshape(-1, 1), False))
    for name in ("mse", "mae"):
        cases.append((name, regression, rng.normal(size=(8, 3)), False))
        cases.append((name, regression[:, :1], rng.normal(size=8), True))
    return cases


@pytest.mark.parametrize("case", range(len(core_loss_cases())))
def test_the_core_losses_equal_the_reference(case):
    """Bit for bit today (same formulas, same order of operations), so the trainer's evaluation
    loss did not change when it stopped calling the reference."""
    name, output, target, from_logits = core_loss_cases()[case]
    ours = core_losses.loss_value(name, output, target, from_logits=from_logits)
    assert ours == loss_value(name, output, target, from_logits=from_logits), name
    if name == "mse":
        assert core_losses.mean_squared_error(output, target) == ours
    if name == "mae":
        assert core_losses.mean_absolute_error(output, target) == ours


def test_the_core_losses_refuse_what_the_reference_refuses():
    bad_calls = [
        ("hinge", LOGITS, LABELS, UsageError, "expected a loss among"),
        ("sparse_categorical_crossentropy", LOGITS, np.full(8, 5), DataError, "expected labels in \\[0, 5\\)"),
        (
            "sparse_categorical_crossentropy",
            LOGITS,
            np.zeros(8),
            DataError,
            "expected integer labels of shape \\(8,\\)",
        ),
        ("categorical_crossentropy", LOGITS, np.zeros((8, 4)), DataError, "expected targets of shape \\(8, 5\\)"),
        ("categorical_crossentropy", LOGITS[:, 0], LABELS, DataError, "expected outputs of shape \\(N, C\\)"),
        ("mse", np.zeros((0, 2)), np.zeros((0, 2)), DataError, "expected a non-empty batch"),
    ]
    for name, output, target, error, message in bad_calls:
        for implementation in (core_losses.loss_value, loss_value):
            with pytest.raises(error, match=message):
                implementation(name, output, target, from_logits=True)
