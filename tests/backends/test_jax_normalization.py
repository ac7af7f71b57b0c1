"""JAX's batch norm beyond the shared layer tests: nnx's own mode switch and statistics, and the
global-batch statistics over a workers' axis (``BuildContext.axis_name``), here a ``jax.vmap``
axis (the collectives and their gradients are JAX's; one device suffices) and a ``shard_map``
of one worker, as a distributed engine runs it."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import archspec
from archspec.api import load_with_graph
from archspec.backends.jax.model import JaxModel, apply
from archspec.initializers import canonical_weights
from archspec.reference.forward import reference_forward

SPEC = """
name: synced
inputs: {x: {shape: [3, 4]}}
layers:
  - {id: d, type: dense, units: 5, activation: tanh}
  - {id: bn, type: batch_norm, momentum: 0.8, epsilon: 0.01, gamma_initializer: glorot_uniform, beta_initializer: glorot_uniform}
  - {id: out, type: dense, units: 2}
training: {loss: mse, seed: 3}
"""
WORKERS, SHARE = 3, 4


def scaled_error(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected)) / max(1.0, float(np.max(np.abs(expected)))))


def test_worker_statistics_are_those_of_the_global_batch_with_its_gradients():
    """Three workers of four samples, their moments summed over the axis: outputs and moving
    statistics equal the numpy reference on the twelve samples, and the gradients (summed over
    the workers, flowing through the collectives) equal one model's on the whole batch."""
    spec, graph = load_with_graph(SPEC)
    weights = canonical_weights(graph)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(WORKERS * SHARE, 3, 4)) * 2 + 0.5
    cotangent = rng.normal(size=(WORKERS * SHARE, 3, 2))
    reference = reference_forward(graph, weights, {"x": x}, training=True)

    synced = JaxModel(graph, "float64", "cpu", axis_name="workers")
    synced.set_weights(weights)
    with synced.precision():
        params, stats, rest = synced.states()

        def worker(params, x):
            values, new_stats = apply(synced.graphdef, (params, stats, rest), {"x": x}, ("out",), training=True)
            return values["out"], new_stats

        def loss(params, x):
            outputs, new_stats = jax.vmap(worker, in_axes=(None, 0), axis_name="workers")(params, x)
            flat = outputs.reshape(cotangent.shape)
            return jnp.sum(flat * jnp.asarray(cotangent)), (flat, new_stats)

        shares = jnp.asarray(x.reshape(WORKERS, SHARE, 3, 4))
        (param_grads, input_grads), (outputs, new_stats) = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(
            params, shares
        )
    assert scaled_error(outputs, reference.outputs["out"]) <= 1e-12
    for name in ("moving_mean", "moving_variance"):
        every_worker = np.asarray(new_stats["layers"]["bn"][name][...])
        for statistic in every_worker:  # each worker holds the same global statistics
            assert scaled_error(statistic, reference.updated_weights[f"bn.{name}"]) <= 1e-12, name

    single = archspec.compile(spec, backend="jax", dtype="float64", weights=weights)
    expected_params, expected_inputs = single.gradients({"x": x}, {"out": cotangent}, training=True)
    assert scaled_error(np.asarray(input_grads).reshape(x.shape), expected_inputs["x"]) <= 1e-12
    for key, expected in expected_params.items():
        node, name = key.split(".")
        assert scaled_error(param_grads["layers"][node][name][...], expected) <= 1e-12, key
    # Not the per-worker statistics: a worker alone would normalise with its own share's moments.
    alone = reference_forward(graph, weights, {"x": x[:SHARE]}, training=True).outputs["out"]
    assert scaled_error(outputs[:SHARE], alone) > 1e-3


def test_nnx_train_and_eval_switch_batch_norm_and_a_user_step_updates_its_statistics():
    model = archspec.compile(SPEC, backend="jax", dtype="float32")
    native = model.native
    norm = native.layers["bn"]
    assert norm.use_running_average  # inference by default
    x = np.random.default_rng(0).normal(size=(6, 3, 4)).astype(np.float32)
    before = model.get_weights()
    inference = np.asarray(native(jnp.asarray(x)))
    assert np.array_equal(model.get_weights()["bn.moving_mean"], before["bn.moving_mean"])

    native.train()
    assert not norm.use_running_average

    @nnx.jit
    def step(module, x):
        return module(x)

    training = np.asarray(step(native, jnp.asarray(x)))
    assert not np.allclose(training, inference)
    hidden = np.tanh(x @ before["d.kernel"] + before["d.bias"])
    mean = hidden.mean(axis=(0, 1))
    expected = 0.8 * before["bn.moving_mean"] + 0.2 * mean
    np.testing.assert_allclose(model.get_weights()["bn.moving_mean"], expected, rtol=1e-6, atol=1e-7)

    native.eval()
    assert norm.use_running_average


def test_statistics_update_inside_shard_map():
    """A distributed engine runs the model under ``shard_map`` with replicated states and a
    sharded batch (one worker here): the statistics still update, and the gradients are the
    whole batch's."""
    spec, graph = load_with_graph(SPEC)
    weights = canonical_weights(graph)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(SHARE, 3, 4))
    cotangent = rng.normal(size=(SHARE, 3, 2))
    reference = reference_forward(graph, weights, {"x": x}, training=True)
    synced = JaxModel(graph, "float64", "cpu", axis_name="workers")
    synced.set_weights(weights)
    mesh = Mesh(np.array(jax.devices("cpu")[:1]), ("workers",))
    with synced.precision():
        params, stats, rest = jax.device_put(synced.states(), NamedSharding(mesh, P()))

        def worker(params, x, cotangent):
            values, new_stats = apply(synced.graphdef, (params, stats, rest), {"x": x}, ("out",), training=True)
            return jnp.sum(values["out"] * cotangent)[None], (values["out"], new_stats)

        def loss(params, x):
            sharded = jax.shard_map(
                worker,
                mesh=mesh,
                in_specs=(P(), P("workers"), P("workers")),
                out_specs=(P("workers"), (P("workers"), P())),
            )
            parts, aux = sharded(params, x, jnp.asarray(cotangent))
            return jnp.sum(parts), aux

        (param_grads, input_grads), (outputs, new_stats) = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(
            params, jnp.asarray(x)
        )
    assert scaled_error(outputs, reference.outputs["out"]) <= 1e-12
    for name in ("moving_mean", "moving_variance"):
        assert scaled_error(new_stats["layers"]["bn"][name][...], reference.updated_weights[f"bn.{name}"]) <= 1e-12
    single = archspec.compile(spec, backend="jax", dtype="float64", weights=weights)
    expected_params, expected_inputs = single.gradients({"x": x}, {"out": cotangent}, training=True)
    assert scaled_error(input_grads, expected_inputs["x"]) <= 1e-12
    for key, expected in expected_params.items():
        node, name = key.split(".")
        assert scaled_error(param_grads["layers"][node][name][...], expected) <= 1e-12, key
