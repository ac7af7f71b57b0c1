"""The JAX model is a real flax.nnx.Module: nnx.jit, nnx.grad, an optax loop of a user's own, and
float64 confined to archspec's calls (a user's own JAX code keeps its float32 defaults)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from paths import CONFIGS

import archspec

X = np.random.default_rng(0).random((4, 784))


def test_native_module_works_with_flax_tooling():
    model = archspec.compile(CONFIGS / "mnist_mlp.yaml", backend="jax")
    native = model.native
    assert isinstance(native, nnx.Module)
    x = jnp.asarray(X, dtype=jnp.float32)
    expected = model.predict(X.astype(np.float32))
    np.testing.assert_allclose(np.asarray(nnx.jit(lambda m, x: m(x))(native, x)), expected, rtol=1e-5, atol=1e-6)

    # A user's own training loop with nnx.grad and an optax optimizer moves archspec's parameters.
    native.train()
    optimizer = nnx.Optimizer(native, optax.sgd(0.1), wrt=nnx.Param)
    before = model.get_weights()["dense_2.kernel"].copy()

    @nnx.jit
    def step(module, optimizer, x):
        grads = nnx.grad(lambda m: jnp.mean(jnp.square(m(x))))(module)
        optimizer.update(module, grads)

    step(native, optimizer, x)
    native.eval()
    after = model.get_weights()["dense_2.kernel"]
    assert not np.array_equal(after, before)
    # The update is the one plain SGD makes with archspec's own gradients of the same loss.
    fresh = archspec.compile(CONFIGS / "mnist_mlp.yaml", backend="jax")
    logits = fresh.forward(X.astype(np.float32), training=True, step=0)["logits"]
    grads, _ = fresh.gradients(X.astype(np.float32), {"logits": 2 * logits / logits.size}, training=True, step=0)
    np.testing.assert_allclose(after, before - 0.1 * grads["dense_2.kernel"], rtol=1e-5, atol=1e-7)


def test_each_training_call_of_the_native_module_draws_fresh_dropout_masks():
    """A user's own loop calls the module; each training call uses the dropout step and advances
    it, so call s has the masks archspec's step s has (under nnx.jit or not)."""
    model, reference, other = (
        archspec.compile(CONFIGS / "mnist_mlp.yaml", backend="jax", dtype="float64") for _ in range(3)
    )
    with jax.enable_x64(True):
        native = model.native
        native.train()
        x = jnp.asarray(X)
        outputs = [np.asarray(native(x)) for _ in range(3)]
        assert not np.array_equal(outputs[0], outputs[1])
        for step, output in enumerate(outputs):
            expected = reference.forward(X, training=True, step=step)["logits"]
            np.testing.assert_allclose(output, expected, rtol=1e-12, atol=1e-15)
        other.native.train()
        jitted = nnx.jit(lambda m, x: m(x))
        for step in range(3):
            np.testing.assert_allclose(np.asarray(jitted(other.native, x)), outputs[step], rtol=1e-12, atol=1e-15)
        native.eval()
        native(x)
        assert int(native.step[...]) == int(other.native.step[...]) == 3  # inference calls leave it alone


def test_float64_stays_inside_archspec_calls():
    """A float64 model computes in float64 in every archspec call, and JAX's process-wide
    defaults stay float32 around it: 64-bit mode is a context, not the global flag."""
    assert not jax.config.jax_enable_x64
    model = archspec.compile(CONFIGS / "mnist_mlp.yaml", backend="jax", dtype="float64")
    assert model.predict(X).dtype == np.float64
    assert model.get_weights()["dense_1.kernel"].dtype == np.float64
    assert not jax.config.jax_enable_x64
    assert jnp.ones(2).dtype == jnp.float32 and jnp.arange(2).dtype == jnp.int32
    # The user opts in to call the float64 module directly, the way JAX documents it.
    with jax.enable_x64(True):
        output = np.asarray(model.native(jnp.asarray(X)))
    assert output.dtype == np.float64
    np.testing.assert_array_equal(output, model.predict(X))
