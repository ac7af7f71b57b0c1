"""The ``backend`` fixture: every backend of the registry, each behind a small adapter.

A test written against the adapter runs for every backend in ``archspec.backend.BACKENDS``;
a new backend is tested by adding its adapter here (a missing adapter fails, it is
never skipped). What an adapter does is only what the public surface cannot say
without naming a framework: calling the native model, reading its layer shapes,
computing a loss or an activation on the framework's tensors.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import pytest

import archspec
from archspec.backend import BACKENDS


class Adapter:
    """What a backend-neutral test needs from a backend, beyond ``archspec.compile``."""

    name: str
    no_gpu_message: str  # a pattern of the error asking for device 'cuda' without a GPU
    unknown_cotangent_message: str  # a pattern of ``gradients``' error for an unknown tensor name
    exact_dropout_scaling: bool  # kept values bit-equal to x / (1 - rate)
    engine_variants: tuple[dict, ...]  # engine options that select other implementations of the updates

    def module(self, name: str):
        """``archspec.backends.<backend>.<name>`` (imports the framework)."""
        return importlib.import_module(f"archspec.backends.{self.name}.{name}")

    def compile(self, source, dtype: str = "float64", **options):
        return archspec.compile(source, backend=self.name, dtype=dtype, **options)

    def engine(self, model, x, y, **options):
        return self.module("engine").Engine(model, x=x, y=y, training=model.spec.training, **options)

    # --- the framework's own objects -----------------------------------------------------

    def has_gpu(self) -> bool:
        raise NotImplementedError

    def device_kind(self, model) -> str:
        """'cpu' or 'gpu': where the model runs."""
        raise NotImplementedError

    def call_native(self, model, x: np.ndarray) -> np.ndarray:
        """The native model called on one input array, in inference mode."""
        raise NotImplementedError

    def node_output_shapes(self, model, inputs: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        """Per-sample output shape of every node, as the framework reports it."""
        raise NotImplementedError

    def native_param_counts(self, model) -> list[int]:
        """Every parameter count the framework reports (each must equal the graph's)."""
        raise NotImplementedError

    def native_weight_dtypes(self, model) -> set[str]:
        raise NotImplementedError

    def native_trainable_size(self, model) -> int:
        """How many numbers the framework trains (its own count of trainable parameters)."""
        raise NotImplementedError

    def saved_state_size(self, model) -> int:
        """How many numbers the framework's own weight saving writes (torch: state_dict; Keras: get_weights)."""
        raise NotImplementedError

    def activation(self, name: str) -> Callable[[np.ndarray], np.ndarray]:
        """The backend's activation ``name`` on numpy arrays, through its tensors."""
        raise NotImplementedError

    def activation_gradient(self, name: str, x: np.ndarray) -> np.ndarray:
        """d activation(x) / dx element-wise, by the framework's autodiff."""
        raise NotImplementedError

    def batch_loss(self, name: str, output: np.ndarray, target: np.ndarray, from_logits: bool) -> float:
        """The engine's batch loss on numpy arrays."""
        raise NotImplementedError

    def batch_loss_gradient(self, name: str, output: np.ndarray, target: np.ndarray, from_logits: bool) -> np.ndarray:
        """d batch_loss / d output, by the framework's autodiff."""
        raise NotImplementedError

    def keep_mask(self, seed: int, layer: int, step: int, shape: tuple[int, ...], rate: float) -> np.ndarray:
        """The dropout keep mask the backend's random module computes (step as a tensor)."""
        raise NotImplementedError


class TorchAdapter(Adapter):
    name = "torch"
    no_gpu_message = "no CUDA GPU"
    unknown_cotangent_message = "expected cotangents for output ids"
    exact_dropout_scaling = True
    engine_variants = ({}, {"foreach": False})

    def has_gpu(self) -> bool:
        import torch  # imported here: collecting the tests must not import every framework

        return torch.cuda.is_available()

    def device_kind(self, model) -> str:
        return "gpu" if model.device.type == "cuda" else "cpu"

    def call_native(self, model, x):
        import torch

        with torch.no_grad():
            return model.native(torch.from_numpy(x)).numpy()

    def node_output_shapes(self, model, inputs):
        tensors = model.native.tensors(
            model.input_tensors(model._as_input_dict(inputs)), [node.id for node in model.graph.nodes]
        )
        return {name: tuple(tensor.shape[1:]) for name, tensor in tensors.items()}

    def native_param_counts(self, model):
        return [model.native_param_count()]

    def native_weight_dtypes(self, model):
        return {str(p.dtype).removeprefix("torch.") for p in model.native.parameters()}

    def native_trainable_size(self, model):
        return sum(p.numel() for p in model.native.parameters())

    def saved_state_size(self, model):
        return sum(v.numel() for v in model.native.state_dict().values())

    def activation(self, name):
        import torch

        function = self.module("activations").activation(name)
        return lambda x: function(torch.from_numpy(np.asarray(x))).numpy()

    def activation_gradient(self, name, x):
        import torch

        tensor = torch.from_numpy(np.asarray(x)).requires_grad_(True)
        self.module("activations").activation(name)(tensor).sum().backward()
        return tensor.grad.numpy()

    def batch_loss(self, name, output, target, from_logits):
        import torch

        return float(
            self.module("engine").batch_loss(name, torch.from_numpy(output), torch.from_numpy(target), from_logits)
        )

    def batch_loss_gradient(self, name, output, target, from_logits):
        import torch

        tensor = torch.from_numpy(output).requires_grad_(True)
        self.module("engine").batch_loss(name, tensor, torch.from_numpy(target), from_logits).backward()
        return tensor.grad.numpy()

    def keep_mask(self, seed, layer, step, shape, rate):
        import math

        import torch

        from archspec.random import keep_threshold

        random = self.module("random")
        mixed = random.element_hashes(math.prod(shape[1:]))
        positions = random.mix32(torch.arange(shape[0], dtype=torch.int64).unsqueeze(1))
        mask = random.keep_mask(
            random.layer_prefix(seed, layer), torch.tensor(step), positions, mixed, keep_threshold(rate)
        )
        return mask.reshape(shape).numpy()


class TensorFlowAdapter(Adapter):
    name = "tensorflow"
    no_gpu_message = "GPU"
    unknown_cotangent_message = "expected a key"
    # Inside a tf.function grappler may turn "/ 0.75" into "* (1 / 0.75)": within one ulp.
    exact_dropout_scaling = False
    engine_variants = ({},)

    def has_gpu(self) -> bool:
        import tensorflow as tf  # imported here: collecting the tests must not import every framework

        return bool(tf.config.list_logical_devices("GPU"))

    def device_kind(self, model) -> str:
        return {"/CPU:0": "cpu", "/GPU:0": "gpu"}[model.device]

    def call_native(self, model, x):
        return model.native(x, training=False).numpy()

    def node_output_shapes(self, model, inputs):
        # By node id through the model's own table: Keras names block copies with "." for "/".
        return {node.id: tuple(model.layers[node.id].output.shape[1:]) for node in model.graph.nodes}

    def native_param_counts(self, model):
        return [model.native_param_count(), model.native.count_params()]

    def native_weight_dtypes(self, model):
        return {str(v.dtype) for v in model.native.weights}

    def native_trainable_size(self, model):
        return sum(int(np.prod(v.shape)) for v in model.native.trainable_weights)

    def saved_state_size(self, model):
        return sum(np.size(w) for w in model.native.get_weights())

    def activation(self, name):
        import tensorflow as tf

        function = self.module("activations").ACTIVATIONS[name]
        return lambda x: function(tf.constant(x)).numpy()

    def activation_gradient(self, name, x):
        import tensorflow as tf

        tensor = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(tensor)
            y = self.module("activations").ACTIVATIONS[name](tensor)
        return tape.gradient(y, tensor).numpy()

    def batch_loss(self, name, output, target, from_logits):
        import tensorflow as tf

        return float(self.module("engine").batch_loss(name, tf.constant(output), tf.constant(target), from_logits))

    def batch_loss_gradient(self, name, output, target, from_logits):
        import tensorflow as tf

        tensor = tf.constant(output)
        with tf.GradientTape() as tape:
            tape.watch(tensor)
            loss = self.module("engine").batch_loss(name, tensor, tf.constant(target), from_logits)
        return tape.gradient(loss, tensor).numpy()

    def keep_mask(self, seed, layer, step, shape, rate):
        import tensorflow as tf

        mask = self.module("random").dropout_keep_mask(
            seed, layer, tf.constant(step, tf.int64), tf.constant(shape), rate
        )
        return mask.numpy()


class JaxAdapter(Adapter):
    name = "jax"
    no_gpu_message = "no GPU"
    unknown_cotangent_message = "expected cotangents for output ids"
    # XLA turns a division by a scalar into a multiplication by its reciprocal: within one ulp.
    exact_dropout_scaling = False
    engine_variants = ({},)

    def has_gpu(self) -> bool:
        import jax  # imported here: collecting the tests must not import every framework

        return any(device.platform == "gpu" for device in jax.devices())

    def device_kind(self, model) -> str:
        return "gpu" if model.device.platform == "gpu" else "cpu"

    def call_native(self, model, x):
        with model.precision():
            return np.asarray(model.native(x))

    def node_output_shapes(self, model, inputs):
        with model.precision():
            arrays = model.input_arrays(model._as_input_dict(inputs))
            tensors = model.native.tensors(arrays, [node.id for node in model.graph.nodes])
        return {name: tuple(tensor.shape[1:]) for name, tensor in tensors.items()}

    def _sizes(self, model, *kinds) -> int:
        import jax
        from flax import nnx

        return sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(nnx.state(model.native, *kinds)))

    def native_param_counts(self, model):
        from flax import nnx

        return [model.native_param_count(), self._sizes(model, nnx.Param, nnx.BatchStat)]

    def native_weight_dtypes(self, model):
        import jax
        from flax import nnx

        return {str(leaf.dtype) for leaf in jax.tree_util.tree_leaves(nnx.state(model.native, nnx.Param))}

    def native_trainable_size(self, model):
        from flax import nnx

        return self._sizes(model, nnx.Param)

    def saved_state_size(self, model):
        from flax import nnx

        # What a Flax user saves (e.g. with orbax): the module's parameters and batch statistics.
        return self._sizes(model, nnx.Param, nnx.BatchStat)

    def activation(self, name):
        import jax

        function = self.module("activations").activation(name)

        def run(x):
            with jax.enable_x64(np.asarray(x).dtype == np.float64):
                return np.asarray(function(jax.numpy.asarray(x)))

        return run

    def activation_gradient(self, name, x):
        import jax

        function = self.module("activations").activation(name)
        with jax.enable_x64(np.asarray(x).dtype == np.float64):
            return np.asarray(jax.grad(lambda t: function(t).sum())(jax.numpy.asarray(x)))

    def batch_loss(self, name, output, target, from_logits):
        import jax

        with jax.enable_x64(output.dtype == np.float64):
            return float(
                self.module("engine").batch_loss(
                    name, jax.numpy.asarray(output), jax.numpy.asarray(target), from_logits
                )
            )

    def batch_loss_gradient(self, name, output, target, from_logits):
        import jax

        loss = self.module("engine").batch_loss
        with jax.enable_x64(output.dtype == np.float64):
            return np.asarray(
                jax.grad(lambda t: loss(name, t, jax.numpy.asarray(target), from_logits))(jax.numpy.asarray(output))
            )

    def keep_mask(self, seed, layer, step, shape, rate):
        import jax

        with jax.enable_x64(True):  # the step as an int64 array (as a jitted step traces it), wrapped to 32 bits
            step_array = jax.numpy.asarray(step, dtype=jax.numpy.int64)
            return np.asarray(self.module("random").keep_mask(seed, layer, step_array, 0, shape, rate))


ADAPTERS: dict[str, Adapter] = {"torch": TorchAdapter(), "tensorflow": TensorFlowAdapter(), "jax": JaxAdapter()}


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> Adapter:
    """Each registered backend in turn; one without an adapter fails instead of being skipped."""
    if request.param not in ADAPTERS:
        pytest.fail(f"backend {request.param!r} is registered but tests/backends/conftest.py has no adapter for it")
    return ADAPTERS[request.param]
