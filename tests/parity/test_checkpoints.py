"""Weights cross backends through safetensors in the canonical layout, bit for bit."""

import numpy as np
import pytest
from paths import mnist_dir
from safetensors import safe_open

import archspec
from archspec.backend import BACKENDS
from archspec.errors import CheckpointError

# Each backend is paired with the first: weights go both ways between it and every other.
FIRST, OTHERS = BACKENDS[0], BACKENDS[1:]


def perturbed(model, seed=0):
    """Canonical weights moved away from their initial values, so every entry matters."""
    rng = np.random.default_rng(seed)
    return {
        k: (v + 0.05 * rng.standard_normal(v.shape)).astype(v.dtype) if not k.endswith("moving_variance") else v + 0.5
        for k, v in model.get_weights().items()
    }


# Chains through every backend from the first back to it: in the registry's order and in the
# reverse one (torch -> tensorflow -> jax -> torch and torch -> jax -> tensorflow -> torch), so
# that every backend reads what every other wrote. With two backends: one chain, both ways.
CHAINS = list(dict.fromkeys([(FIRST, *OTHERS, FIRST), (FIRST, *reversed(OTHERS), FIRST)]))


@pytest.mark.parametrize("chain", CHAINS, ids=["-".join(chain) for chain in CHAINS])
@pytest.mark.parametrize(
    "config", ["mnist_cnn", "mnist_gru", "mnist_bidirectional", "mnist_residual", "mnist_tcn", "mnist_transformer"]
)
def test_weights_round_trip_bit_exactly_through_every_backend(configs_dir, tmp_path, config, chain):
    from archspec.weights import spec_hash

    spec = archspec.load(configs_dir / f"{config}.yaml")
    start = archspec.compile(spec, backend=chain[0], dtype="float64")
    start.set_weights(perturbed(start))
    original = start.get_weights()
    path = tmp_path / f"0-{chain[0]}.safetensors"
    start.save_weights(path)
    for hop, backend in enumerate(chain[1:], start=1):
        model = archspec.compile(spec, backend=backend, dtype="float64")
        archspec.load_weights(model, path)
        loaded = model.get_weights()
        assert list(loaded) == list(original), f"hop {hop} ({backend}): names or order differ"
        for key, value in original.items():
            assert loaded[key].dtype == value.dtype and np.array_equal(loaded[key], value), (
                f"{' -> '.join(chain[: hop + 1])}: {key} is not bit-identical"
            )
        path = tmp_path / f"{hop}-{backend}.safetensors"
        model.save_weights(path)
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata()
        assert metadata["saved_by_backend"] == backend
        assert metadata["spec_hash"] == spec_hash(spec)


@pytest.mark.parametrize("other", OTHERS)
@pytest.mark.parametrize("dtype, required", [("float64", 1.0), ("float32", 0.9999)])
@pytest.mark.parametrize("config", ["mnist_mlp", "mnist_cnn"])
def test_loaded_models_predict_the_same_classes_on_mnist(configs_dir, tmp_path, config, dtype, required, other):
    from archspec.data import load_dataset

    spec = archspec.load(configs_dir / f"{config}.yaml")
    source = archspec.compile(spec, backend=other, dtype=dtype)
    source.set_weights(perturbed(source, seed=1))
    source.save_weights(tmp_path / "w.safetensors")
    target = archspec.compile(spec, backend=FIRST, dtype=dtype)
    archspec.load_weights(target, tmp_path / "w.safetensors")

    splits = load_dataset(spec.data.model_dump(mode="json"), data_dir=mnist_dir())
    x_test = splits.test[0]
    assert len(x_test) == 10_000
    a = np.argmax(source.predict(x_test), axis=1)
    b = np.argmax(target.predict(x_test), axis=1)
    agreement = float(np.mean(a == b))
    assert agreement >= required, f"{config} {dtype}: classes agree on {agreement:.4%} of the test set"


@pytest.mark.parametrize("reader", BACKENDS)
def test_weights_of_another_architecture_are_refused(configs_dir, tmp_path, reader):
    mlp = archspec.compile(configs_dir / "mnist_mlp.yaml", backend=FIRST)
    mlp.save_weights(tmp_path / "mlp.safetensors")
    other = archspec.compile(configs_dir / "mnist_residual.yaml", backend=reader)
    before = other.get_weights()
    with pytest.raises(CheckpointError, match="parameter 'stem.kernel' is missing"):
        archspec.load_weights(other, tmp_path / "mlp.safetensors")
    after = other.get_weights()
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_corrupt_file_is_refused(configs_dir, tmp_path, backend):
    model = archspec.compile(configs_dir / "mnist_mlp.yaml", backend=backend)
    model.save_weights(tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        archspec.load_weights(model, tmp_path / "cut.safetensors")
