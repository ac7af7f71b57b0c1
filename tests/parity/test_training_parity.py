"""Training parity: the same spec trained on every backend follows the same trajectory.

float64: every per-step loss within 1e-9 relative over 200 steps, every final weight tensor
within 1e-8 relative (max |a - b| / max |a| per tensor), between every two registered backends
(``parity/trajectory.py``), for every trainable config: the dense and convolutional ones here,
the recurrent, attention and masked ones in test_training_sequences.py, every optimizer and
schedule with L2 and dropout in test_training_optimizers.py. float32 (one epoch on full MNIST):
test_training_float32*.py. Files of their own, so that `make test`'s workers share the long cases.
"""

import pytest
from paths import CONFIGS

import archspec
from parity.trajectory import STEPS, assert_same_trajectory, mnist, train_all, with_training

CONFIGS_HERE = ["mnist_mlp", "mnist_cnn", "mnist_residual", "mnist_tcn"]


@pytest.mark.parametrize("config", CONFIGS_HERE)
def test_configs_follow_the_same_trajectory_float64(config):
    spec = archspec.load(CONFIGS / f"{config}.yaml")
    spec = with_training(spec, batch_size=64)
    results = train_all(spec, data=mnist(spec.data.view), dtype="float64", max_steps=STEPS, epochs=10)
    assert_same_trajectory(config, results)
