"""Training parity in float32, the dense and convolutional configs: after one epoch on full MNIST,
every two backends' test accuracy within 0.5 percentage points and final training loss within
2% (``parity/float32_training.py``; the recurrent configs: test_training_float32_recurrent.py,
a file of its own so that `make test`'s workers share the long cases)."""

import pytest

from parity.float32_training import assert_one_epoch_float32_agrees


@pytest.mark.parametrize("config", ["mnist_mlp", "mnist_cnn", "mnist_residual"])
def test_one_epoch_float32_agrees(config):
    assert_one_epoch_float32_agrees(config)
