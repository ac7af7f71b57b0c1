"""The torch model and engine are real torch objects: torch.compile, torch.optim options, a plain optimizer loop, state_dict files."""

import numpy as np
import torch
from paths import CONFIGS

import archspec


def test_native_module_works_with_torch_tooling(tmp_path):
    model = archspec.compile(CONFIGS / "mnist_cnn.yaml", backend="torch")
    native = model.native
    assert isinstance(native, torch.nn.Module)
    x = torch.from_numpy(np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32))

    native.eval()
    expected = native(x)
    compiled = torch.compile(native)
    assert torch.allclose(compiled(x), expected, atol=1e-6)

    # A user's own training loop with torch.optim moves archspec's parameters.
    native.train()
    optimizer = torch.optim.SGD(native.parameters(), lr=0.1)
    before = model.get_weights()["dense_2.kernel"].copy()
    loss = native(x).square().mean()
    loss.backward()
    optimizer.step()
    assert not np.array_equal(model.get_weights()["dense_2.kernel"], before)

    torch.save(native.state_dict(), tmp_path / "state.pt")
    fresh = archspec.compile(CONFIGS / "mnist_cnn.yaml", backend="torch")
    fresh.native.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    for name, value in model.get_weights().items():
        assert np.array_equal(fresh.get_weights()[name], value), name


def test_each_training_call_of_the_native_module_draws_fresh_dropout_masks():
    """A user's own loop calls the module; each training call uses the dropout step and
    advances it, so call s has the masks archspec's step s has (compiled or not)."""
    model, reference, other = (
        archspec.compile(CONFIGS / "mnist_mlp.yaml", backend="torch", dtype="float64") for _ in range(3)
    )
    native = model.native
    native.train()
    x = torch.from_numpy(np.random.default_rng(0).random((4, 784)))
    with torch.no_grad():
        outputs = [native(x).numpy() for _ in range(3)]
        assert not np.array_equal(outputs[0], outputs[1])
        for step, output in enumerate(outputs):
            expected = reference.forward(x.numpy(), training=True, step=step)["logits"]
            np.testing.assert_allclose(output, expected, rtol=1e-12, atol=1e-15)
        compiled = torch.compile(other.native.train())
        for step in range(3):
            np.testing.assert_allclose(compiled(x).numpy(), outputs[step], rtol=1e-12, atol=1e-15)
        native.eval()
        native(x)
    assert int(native.step) == int(other.native.step) == 3  # inference calls leave it alone


def test_buffers_are_constants_and_the_step_not_parameters():
    model = archspec.compile(
        """
name: buffers
inputs: {x: {shape: [5, 4]}}
layers:
  - {id: lstm, type: lstm, units: 3, return_sequences: true}
  - {id: bi, type: bidirectional, layer: {type: simple_rnn, units: 2}}
  - {id: drop, type: dropout, rate: 0.5}
""",
        backend="torch",
        dtype="float64",
    )
    assert sum(p.numel() for p in model.native.parameters()) == model.graph.trainable_param_count
    assert {n for n, _ in model.native.named_buffers()} >= {"layers.lstm.bias_hh", "step"}


def test_dense_gradients_are_exact_for_any_pre_activation_tensor():
    """torch's ``gradients`` takes any node id or ``{id}:pre`` tensor, not only outputs and logits."""
    model = archspec.compile(
        """
name: affine
inputs: {x: {shape: [3]}}
layers: [{id: d, type: dense, units: 2, activation: tanh}]
""",
        backend="torch",
        dtype="float64",
    )
    x = np.random.default_rng(0).normal(size=(5, 3))
    cotangent = np.random.default_rng(1).normal(size=(5, 2))
    params, inputs = model.gradients(x, {"d:pre": cotangent})
    kernel = model.get_weights()["d.kernel"]
    np.testing.assert_allclose(params["d.kernel"], x.T @ cotangent, rtol=1e-14)
    np.testing.assert_allclose(params["d.bias"], cotangent.sum(0), rtol=1e-14)
    np.testing.assert_allclose(inputs["x"], cotangent @ kernel.T, rtol=1e-14)


def test_attention_dropout_alone_advances_the_step_of_the_native_module():
    source = """
name: attention-dropout
inputs: {x: {shape: [5, 4]}}
layers:
  - {id: att, type: multi_head_attention, num_heads: 2, key_dim: 3, dropout: 0.5, causal: true}
training: {loss: mse, seed: 2}
"""
    model, reference = (archspec.compile(source, backend="torch", dtype="float64") for _ in range(2))
    native = model.native.train()
    x = torch.from_numpy(np.random.default_rng(0).random((4, 5, 4)))
    with torch.no_grad():
        outputs = [native(x).numpy() for _ in range(3)]
    assert not np.array_equal(outputs[0], outputs[1])
    for step, output in enumerate(outputs):
        np.testing.assert_allclose(output, reference.forward(x.numpy(), training=True, step=step)["att"], rtol=1e-12)
    assert int(native.step) == 3
