"""The source document's two examples train to the accuracy one expects, on every registered backend."""

import pytest
from paths import CONFIGS, mnist_dir

import archspec
from archspec.backend import BACKENDS


@pytest.mark.parametrize("config", ["keras_example", "torch_example"])
def test_example_trains_above_90_percent_and_backends_agree(config):
    spec = archspec.load(CONFIGS / f"{config}.yaml")
    assert spec.training.epochs == 5
    runs = {b: archspec.train(spec, backend=b, data_dir=mnist_dir(), evaluate_every_epoch=False) for b in BACKENDS}
    accuracies = {b: r.final["test"]["accuracy"] for b, r in runs.items()}
    for backend, accuracy in accuracies.items():
        assert accuracy > 0.90, f"{config} on {backend}: test accuracy {accuracy:.4f} after 5 epochs"
    assert max(accuracies.values()) - min(accuracies.values()) <= 0.005, accuracies
    losses = [r.history[-1]["loss"] for r in runs.values()]
    assert (max(losses) - min(losses)) / max(losses) <= 0.02, losses
