"""Memory: every run is estimated from the graph and refused, with the estimate shown, before
anything is allocated when it would not fit the available memory or the configured cap."""

import numpy as np
import pytest

import archspec
import archspec.training.preparation
from archspec.api import load_with_graph
from archspec.cli import main
from archspec.errors import ResourceError, UsageError
from archspec.resources import available_memory, estimate_for_training, memory_limit, parse_size

GIANT = """\
name: giant
inputs: {x: {shape: [1000000]}}
layers: [{type: dense, units: 1000000}]
training: {loss: mse}
"""


def test_the_estimate_of_the_mnist_mlp(configs_dir):
    _, graph = load_with_graph(configs_dir / "mnist_mlp.yaml")
    estimate = estimate_for_training(graph, graph.spec.training, data_samples=54_000)
    params = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    assert estimate.parameter_bytes == params * 4 == estimate.gradient_bytes
    assert estimate.optimizer_bytes == 2 * params * 4  # Adam: m and v
    # input 784; dense 256 (+ its pre-activation); dropout 256; dense 128 (+ pre); logits 10 (+ pre)
    per_sample = 784 + 2 * 256 + 256 + 2 * 128 + 2 * 10
    assert estimate.activation_bytes == 2 * per_sample * 128 * 4
    assert estimate.data_bytes == 54_000 * (784 * 4 + 8)  # float32 images, int64 labels
    assert (
        estimate.total_bytes
        == 4 * params * 4 + max(estimate.activation_bytes, estimate.evaluation_bytes) + estimate.data_bytes
    )


@pytest.fixture
def nothing_allocated(monkeypatch):
    """Fails the test if the trainer loads data or a framework."""

    def refuse(*args, **kwargs):
        raise AssertionError("allocated before the memory check")

    monkeypatch.setattr(archspec.training.preparation, "load_splits", refuse)
    monkeypatch.setattr("archspec.backend.load_backend", refuse)


def test_a_spec_larger_than_the_memory_is_refused_before_anything_is_allocated(nothing_allocated):
    with pytest.raises(
        ResourceError, match=r"this run needs about 14.6 TiB|this run needs about \d[\d.]* GiB"
    ) as caught:
        archspec.train(GIANT, data=(np.zeros((1, 1)), np.zeros(1)))
    message = str(caught.value)
    assert "parameters" in message and "optimizer state" in message and "available memory (MemAvailable)" in message


def test_the_cap_argument_and_the_environment_variable(configs_dir, monkeypatch, nothing_allocated):
    with pytest.raises(ResourceError, match=r"more than the 1.0 MiB of memory_cap"):
        archspec.train(configs_dir / "mnist_mlp.yaml", memory_cap="1MiB")
    monkeypatch.setenv("ARCHSPEC_MEMORY_CAP", "2MB")
    with pytest.raises(ResourceError, match=r"more than the 1.9 MiB of \$ARCHSPEC_MEMORY_CAP"):
        archspec.train(configs_dir / "mnist_mlp.yaml")


def test_the_training_data_counts_too(configs_dir):
    _, graph = load_with_graph(configs_dir / "mnist_mlp.yaml")
    model_only = estimate_for_training(graph, graph.spec.training).total_bytes
    x, y = np.zeros((20_000, 784), np.float32), np.zeros(20_000, np.int64)
    with pytest.raises(ResourceError, match=r"training data 60.0 MiB\), more than the 6.3 MiB of memory_cap"):
        archspec.train(configs_dir / "mnist_mlp.yaml", data=(x, y), memory_cap=model_only + 1_000_000)


def test_the_cli_refuses_in_one_line(configs_dir, capsys):
    assert main(["train", str(configs_dir / "mnist_cnn.yaml"), "--memory-cap", "10MiB", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("archspec: error: this run needs about ")
    assert "more than the 10.0 MiB of memory_cap" in err


def test_the_summary_shows_the_estimate(configs_dir, capsys):
    assert main(["summary", str(configs_dir / "mnist_mlp.yaml")]) == 0
    out = capsys.readouterr().out
    assert "training memory: about 5.4 MiB in float32 (parameters 918.5 KiB" in out


@pytest.mark.parametrize(
    "text, size", [("512", 512), ("1KiB", 1024), ("2 MB", 2_000_000), ("1.5GiB", 1536 * 1024**2), (4096, 4096)]
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "many", "-1", "0", "3 parsecs", True])
def test_bad_sizes_are_usage_errors(text):
    with pytest.raises(UsageError, match="ARCHSPEC_MEMORY_CAP"):
        parse_size(text)


def test_available_memory_is_read_from_meminfo(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemAvailable:   1000 kB\n")
    assert available_memory(meminfo) == 1_024_000
    assert available_memory(tmp_path / "missing") is None
    monkeypatch.delenv("ARCHSPEC_MEMORY_CAP", raising=False)
    assert memory_limit("1GiB") == (1024**3, "memory_cap")
