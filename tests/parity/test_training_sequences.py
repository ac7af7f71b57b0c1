"""Training parity of the recurrent, attention and masked-sequence configs: float64, 200
steps, every two registered backends on the same trajectory (bounds: ``parity/trajectory.py``).
"""

import pytest
from paths import CONFIGS

import archspec
from archspec.data import load_dataset
from parity.trajectory import STEPS, SUBSET, assert_same_trajectory, mnist, train_all, with_training

CONFIGS_HERE = ["mnist_lstm", "mnist_gru", "mnist_bidirectional", "mnist_transformer"]


@pytest.mark.parametrize("config", CONFIGS_HERE)
def test_configs_follow_the_same_trajectory_float64(config):
    spec = archspec.load(CONFIGS / f"{config}.yaml")
    spec = with_training(spec, batch_size=64)
    results = train_all(spec, data=mnist(spec.data.view), dtype="float64", max_steps=STEPS, epochs=10)
    assert_same_trajectory(config, results)


SEQUENCE_CONFIGS = ["sequences_masked_lstm", "sequences_masked_transformer"]


@pytest.mark.parametrize("config", SEQUENCE_CONFIGS)
def test_masked_sequence_configs_follow_the_same_trajectory_float64(config):
    spec = with_training(archspec.load(CONFIGS / f"{config}.yaml"), batch_size=64)
    splits = load_dataset(spec.data.model_dump())
    (x, y), (x_test, y_test) = splits.train, splits.test
    data = {"train": (x[:SUBSET], y[:SUBSET]), "test": (x_test[:500], y_test[:500])}
    results = train_all(spec, data=data, dtype="float64", max_steps=STEPS, epochs=10)
    assert_same_trajectory(config, results)
