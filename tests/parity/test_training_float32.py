"""Training parity in float32: after one epoch on full MNIST, both backends' test accuracy within
0.5 percentage points and final training loss within 2% (float64: test_training_parity.py)."""

import pytest
from paths import CONFIGS, mnist_dir

import archspec

FLOAT32_CONFIGS = ["mnist_mlp", "mnist_cnn", "mnist_lstm", "mnist_gru", "mnist_bidirectional", "mnist_residual"]


@pytest.mark.parametrize("config", FLOAT32_CONFIGS)
def test_one_epoch_float32_agrees(config):
    spec = archspec.load(CONFIGS / f"{config}.yaml")
    results = {
        b: archspec.train(spec, backend=b, epochs=1, dtype="float32", data_dir=mnist_dir())
        for b in ("torch", "tensorflow")
    }
    torch_run, keras_run = results["torch"], results["tensorflow"]
    acc_a, acc_b = torch_run.final["test"]["accuracy"], keras_run.final["test"]["accuracy"]
    assert abs(acc_a - acc_b) <= 0.005, f"{config}: test accuracy torch {acc_a:.4f} vs tensorflow {acc_b:.4f}"
    loss_a, loss_b = torch_run.history[-1]["loss"], keras_run.history[-1]["loss"]
    assert abs(loss_a - loss_b) / max(loss_a, loss_b) <= 0.02, (
        f"{config}: final training loss torch {loss_a:.5f} vs tensorflow {loss_b:.5f}"
    )
    assert acc_a > 0.8 and acc_b > 0.8, f"{config}: did not learn ({acc_a:.3f}, {acc_b:.3f})"
