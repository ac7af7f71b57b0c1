"""Training parity in float32, the recurrent configs: after one epoch on full MNIST, every two
backends' test accuracy within 0.5 percentage points and final training loss within 2%
(``parity/float32_training.py``)."""

import pytest

from parity.float32_training import assert_one_epoch_float32_agrees


@pytest.mark.parametrize("config", ["mnist_lstm", "mnist_gru", "mnist_bidirectional"])
def test_one_epoch_float32_agrees(config):
    assert_one_epoch_float32_agrees(config)
