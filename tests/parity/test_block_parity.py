"""A model written with blocks builds and trains the same on every backend: forward and
gradients against the numpy reference and across backends (float64), a short float64 training
trajectory, weights that cross backends through safetensors under their nested names, and
native names each framework accepts."""

import textwrap

import numpy as np

import archspec
from archspec.backend import BACKENDS
from parity.test_model_parity import check
from parity.trajectory import assert_same_trajectory, train_all

BLOCKS = textwrap.dedent(
    """
    name: repeated_blocks
    inputs:
      x: {shape: [5, 6]}
    blocks:
      encoder:
        params:
          hidden: {type: int, default: 12}
          rate: {type: float, default: 0.2}
        layers:
          - {type: dense, id: attention, units: 6, activation: tanh}
          - {type: add, id: residual, inputs: [input, attention]}
          - {type: layer_norm, id: norm}
          - {type: dense, id: expand, units: "${hidden}", activation: gelu}
          - {type: dropout, id: drop, rate: "${rate}"}
          - {type: dense, id: project, units: 6}
          - {type: add, id: out, inputs: [norm, project]}
    layers:
      - {type: block, block: encoder, repeat: 2, with: {hidden: 8}}
      - {type: flatten}
      - {type: dense, units: 1}
    training: {loss: mse, optimizer: {type: adam, learning_rate: 0.01}, batch_size: 16, seed: 4}
    """
).lstrip()


def test_forward_and_gradients_agree_with_the_reference_float64():
    check(BLOCKS, "float64")


def test_training_follows_the_same_trajectory_float64():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((160, 5, 6))
    y = np.tanh(x.sum(axis=(1, 2)) / 4)[:, None] + 0.1 * rng.standard_normal((160, 1))
    spec = archspec.load(BLOCKS)
    results = train_all(spec, data=(x, y), dtype="float64", max_steps=200, epochs=20)
    assert_same_trajectory("repeated_blocks", results)


def test_weights_cross_backends_under_their_nested_names(tmp_path):
    models = {name: archspec.compile(BLOCKS, backend=name, dtype="float64") for name in BACKENDS}
    names = list(models[BACKENDS[0]].get_weights())
    assert "encoder_2/attention.kernel" in names and "encoder_2/norm.gamma" in names
    rng = np.random.default_rng(1)
    changed = {key: rng.standard_normal(value.shape) for key, value in models[BACKENDS[0]].get_weights().items()}
    source, *targets = BACKENDS
    models[source].set_weights(changed)
    path = tmp_path / "weights.safetensors"
    models[source].save_weights(path)
    for target in targets:
        archspec.load_weights(models[target], path)
        loaded = models[target].get_weights()
        assert list(loaded) == names
        for key in names:
            assert np.array_equal(loaded[key], changed[key]), f"{target}: {key}"


def test_native_names_are_legal_and_distinct():
    keras_model = archspec.compile(BLOCKS, backend="tensorflow").native
    keras_names = [layer.name for layer in keras_model.layers]
    assert "encoder_2.attention" in keras_names and "encoder_2.attention.activation" in keras_names
    assert len(set(keras_names)) == len(keras_names) and not any("/" in name for name in keras_names)
    torch_model = archspec.compile(BLOCKS, backend="torch").native
    assert "layers.encoder_2/attention.weight" in dict(torch_model.named_parameters())


def test_keras_names_never_collide():
    from backends.tensorflow.model import native_names

    text = (
        "name: clash\ninputs: {x: {shape: [3]}}\nlayers:\n"
        "  - {type: dense, id: a, units: 3, activation: relu}\n"
        "  - {type: dense, id: a/activation, units: 3}\n"
        "  - {type: dense, id: a_b, units: 3}\n"
        "  - {type: dense, id: a/b, units: 3}\n"
    )
    names = native_names(archspec.api.graph_of(text))
    assert names == {
        "a": "a",
        "a/activation": "a.activation",
        "a_b": "a_b",
        "a/b": "a.b",
        "a:pre": "a.activation_",
        "a/activation:pre": "a.activation.activation",
        "a_b:pre": "a_b.activation",
        "a/b:pre": "a.b.activation",
    }
