"""The dropout hash: deterministic, unbiased, and reproducible op for op in torch and TensorFlow."""

import numpy as np
import pytest
import tensorflow as tf
import torch

from archspec.errors import UsageError
from archspec.random import MASK32, MULTIPLIER, SHIFT, dropout_keep_mask, hash32, keep_threshold

rng = np.random.default_rng(0)
# counters well outside 32 bits and negative too: the hash takes their low 32 bits
COUNTERS = [rng.integers(-(2**40), 2**40, size=1000) for _ in range(5)]


def torch_hash32(seed, layer, step, position, element):
    def mix(x):
        x = x ^ (x >> SHIFT)
        x = (x * MULTIPLIER) & MASK32
        x = x ^ (x >> SHIFT)
        x = (x * MULTIPLIER) & MASK32
        return x ^ (x >> SHIFT)

    h = mix(seed & MASK32)
    for counter in (layer, step, position, element):
        h = mix(h ^ mix(counter & MASK32))
    return h


def tensorflow_hash32(seed, layer, step, position, element):
    mask, multiplier = tf.constant(MASK32, tf.int64), tf.constant(MULTIPLIER, tf.int64)

    def mix(x):
        x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, SHIFT))
        x = tf.bitwise.bitwise_and(tf.math.multiply(x, multiplier), mask)
        x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, SHIFT))
        x = tf.bitwise.bitwise_and(tf.math.multiply(x, multiplier), mask)
        return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, SHIFT))

    h = mix(tf.bitwise.bitwise_and(seed, mask))
    for counter in (layer, step, position, element):
        h = mix(tf.bitwise.bitwise_xor(h, mix(tf.bitwise.bitwise_and(counter, mask))))
    return h


def test_torch_int64_ops_give_the_same_values():
    expected = hash32(*COUNTERS)
    actual = torch_hash32(*(torch.tensor(c, dtype=torch.int64) for c in COUNTERS))
    np.testing.assert_array_equal(actual.numpy(), expected)


def test_tensorflow_int64_ops_give_the_same_values():
    expected = hash32(*COUNTERS)
    actual = tensorflow_hash32(*(tf.constant(c, tf.int64) for c in COUNTERS))
    np.testing.assert_array_equal(actual.numpy(), expected)


def test_whole_masks_match_torch_and_tensorflow():
    rate, shape = 0.3, (4, 3, 5, 5)
    position = np.arange(4).reshape(4, 1, 1, 1)
    element = np.arange(75).reshape(1, 3, 5, 5)
    threshold = keep_threshold(rate)
    torch_mask = torch_hash32(*(torch.tensor(c, dtype=torch.int64) for c in (7, 2, 11, position, element))) >= threshold
    tf_mask = tensorflow_hash32(*(tf.constant(c, tf.int64) for c in (7, 2, 11, position, element))) >= threshold
    expected = dropout_keep_mask(7, 2, 11, shape, rate)
    np.testing.assert_array_equal(torch_mask.numpy(), expected)
    np.testing.assert_array_equal(tf_mask.numpy(), expected)


def test_values_are_32_bit_and_broadcast():
    values = hash32(*COUNTERS)
    assert values.dtype == np.int64 and values.min() >= 0 and values.max() < 2**32
    grid = hash32(1, 2, 3, np.arange(4)[:, None], np.arange(6)[None, :])
    assert grid.shape == (4, 6)
    assert grid[2, 5] == hash32(1, 2, 3, 2, 5)


def test_no_intermediate_leaves_int64():
    # worst case: the largest 32-bit value times the multiplier
    assert (2**32 - 1) * MULTIPLIER < 2**63 and MULTIPLIER < 2**31


def test_masks_are_deterministic():
    first = dropout_keep_mask(5, 1, 9, (16, 32), 0.5)
    assert np.array_equal(first, dropout_keep_mask(5, 1, 9, (16, 32), 0.5))


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_keep_rate_is_one_minus_rate(rate):
    mask = dropout_keep_mask(3, 0, 0, (1000, 1000), rate)
    assert abs(mask.mean() - (1 - rate)) < 0.003


def test_rate_zero_keeps_all_and_rate_one_drops_all():
    assert dropout_keep_mask(0, 0, 0, (64, 64), 0.0).all()
    assert not dropout_keep_mask(0, 0, 0, (64, 64), 1.0).any()
    assert keep_threshold(0.25) == 2**30


@pytest.mark.parametrize("other", [(1, 0, 0), (0, 1, 0), (0, 0, 1)])
def test_other_seed_layer_or_step_gives_an_unrelated_mask(other):
    base = dropout_keep_mask(0, 0, 0, (100, 100), 0.5)
    changed = dropout_keep_mask(*other, (100, 100), 0.5)
    assert abs(np.mean(base == changed) - 0.5) < 0.02  # agreement of independent masks


def test_samples_in_a_batch_get_unrelated_masks():
    mask = dropout_keep_mask(0, 0, 0, (200, 1000), 0.5)
    agreement = np.mean(mask[:-1] == mask[1:], axis=1)
    assert abs(agreement.mean() - 0.5) < 0.01 and agreement.max() < 0.6


def test_bad_arguments_are_refused():
    with pytest.raises(UsageError, match="expected a dropout rate in \\[0, 1\\]"):
        dropout_keep_mask(0, 0, 0, (2, 2), 1.5)
    with pytest.raises(UsageError, match="expected a shape \\(batch, \\*features\\)"):
        dropout_keep_mask(0, 0, 0, (), 0.5)
