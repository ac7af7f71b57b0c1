"""The TensorFlow training engine: one compiled optimizer step on a batch the neutral trainer chose.

The training set lives on the model's device as one tensor per input; the step is one
``tf.function`` with a fixed signature (indices, step, learning rate) that gathers its
batch there, so nothing is copied per batch and nothing retraces. Losses stay tensors
until the trainer asks for many at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from archspec.definitions.constants import EPSILON
from archspec.errors import DataError, UsageError
from archspec.spec.training import Training

from . import distributed, layout
from .model import TensorFlowModel
from .optimizers import Optimizer


def _log_probabilities(output: tf.Tensor, from_logits: bool) -> tf.Tensor:
    if from_logits:
        # The maximum only shifts the logits (it cancels): no gradient flows through it.
        shifted = output - tf.stop_gradient(tf.reduce_max(output, axis=1, keepdims=True))
        return shifted - tf.math.log(tf.reduce_sum(tf.exp(shifted), axis=1, keepdims=True))
    probabilities = output / tf.reduce_sum(output, axis=1, keepdims=True)
    return tf.math.log(tf.clip_by_value(probabilities, EPSILON, 1 - EPSILON))


@tf.custom_gradient
def _binary_crossentropy_from_logits(z: tf.Tensor, y: tf.Tensor):
    """max(z, 0) - z y + log1p(exp(-|z|)), with its exact derivative sigmoid(z) - y
    (autodiff of the formula is wrong at z = 0, where |z| has no derivative)."""
    value = tf.maximum(z, tf.zeros_like(z)) - z * y + tf.math.log1p(tf.exp(-tf.abs(z)))

    def gradient(upstream):
        return upstream * (tf.math.sigmoid(z) - y), upstream * -z

    return value, gradient


def batch_loss(name: str, output: tf.Tensor, target: tf.Tensor, from_logits: bool) -> tf.Tensor:
    """The mean loss of a batch, by the formulas of ``archspec/reference/losses.py``.

    ``target``: int64 labels (N,) for sparse categorical cross-entropy, else floats
    with as many elements as ``output``.
    """
    if name == "sparse_categorical_crossentropy":
        log_p = _log_probabilities(output, from_logits)
        return -tf.reduce_mean(tf.gather(log_p, target, axis=1, batch_dims=1))
    target = tf.reshape(target, tf.shape(output))
    if name == "categorical_crossentropy":
        return -tf.reduce_mean(tf.reduce_sum(target * _log_probabilities(output, from_logits), axis=1))
    if name == "binary_crossentropy":
        if from_logits:
            return tf.reduce_mean(_binary_crossentropy_from_logits(output, target))
        p = tf.clip_by_value(output, EPSILON, 1 - EPSILON)
        return tf.reduce_mean(-target * tf.math.log(p) - (1 - target) * tf.math.log(1 - p))
    if name == "mse":
        return tf.reduce_mean(tf.square(output - target))
    if name == "mae":
        return tf.reduce_mean(tf.abs(output - target))
    raise UsageError(
        f"expected a loss among sparse_categorical_crossentropy, categorical_crossentropy, "
        f"binary_crossentropy, mse, mae. Received: {name!r}"
    )


class Engine:
    """Executes optimizer steps for the neutral trainer (``archspec/trainer.py``).

    ``x``: the training inputs by name; ``y``: int64 labels (N,) for sparse
    cross-entropy, float one-hot (N, C) for categorical, float (N, 1) otherwise.
    ``compiled`` compiles the step with XLA (``jit_compile=True``). ``cluster`` (an
    ``archspec.distributed.Cluster``; model and engine built under ``distributed.join``):
    the step runs as one replica of MultiWorkerMirroredStrategy, gradients summed across
    workers, batch normalisation on the statistics of the global batch.
    """

    def __init__(
        self,
        model: TensorFlowModel,
        *,
        x: Mapping[str, np.ndarray],
        y: np.ndarray,
        training: Training,
        compiled: bool = False,
        cluster=None,
    ):
        graph = model.graph
        if not graph.heads:
            raise UsageError("training needs a model with one output (a head)")
        self.model = model
        self.training = training
        self.head = graph.heads[0]
        arrays = model._as_input_dict(x)
        count = len(next(iter(arrays.values())))
        y = np.asarray(y)
        if len(y) != count:
            raise DataError(f"expected {count} targets (one per training sample). Received: {len(y)}")
        target_dtype = "int64" if training.loss == "sparse_categorical_crossentropy" else model.dtype
        with tf.device(model.device):
            self.x = {name: tf.constant(array) for name, array in arrays.items()}
            self.y = tf.constant(y.astype(target_dtype))

        self.trainable = {name: slot for name, slot in model.slots.items() if slot.trainable}
        self.groups = layout.group_by_variable(self.trainable)  # [(variable, [(name, slot), ...])]
        self.variables = [variable for variable, _ in self.groups]
        self.penalties = [
            (model.slots[name], param.regularizer.l1, param.regularizer.l2)
            for name, param in graph.parameters.items()
            if param.regularizer is not None and (param.regularizer.l1 or param.regularizer.l2)
        ]
        with tf.device(model.device):
            self.optimizer = Optimizer(training.optimizer, self.variables)
        self.steps_taken = 0
        signature = [
            tf.TensorSpec([None], tf.int64, name="indices"),
            tf.TensorSpec([], tf.int64, name="step"),
            tf.TensorSpec([], tf.float64, name="learning_rate"),
        ]
        if cluster is None:
            self._step = tf.function(self._train_step, input_signature=signature, jit_compile=compiled or None)
        else:
            signature += [tf.TensorSpec([], tf.int64, name="offset"), tf.TensorSpec([], tf.float64, name="fraction")]
            self._step = tf.function(self._distributed_step, input_signature=signature)
        self.distributed = cluster is not None

    def _loss(self, inputs: dict[str, tf.Tensor], target: tf.Tensor) -> tf.Tensor:
        logits = self.model.logits_model(inputs, training=True)
        loss = batch_loss(self.training.loss, logits, target, self.head.from_logits)
        for slot, l1, l2 in self.penalties:
            weight = slot.view(tf.convert_to_tensor(slot.variable))
            if l1:
                loss = loss + l1 * tf.reduce_sum(tf.abs(weight))
            if l2:
                loss = loss + l2 * tf.reduce_sum(weight * weight)
        return loss

    def _gradients(self, indices: tf.Tensor, weight: tf.Tensor | None = None) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """The loss on samples ``indices`` and the dense gradients of ``weight * loss``."""
        inputs = {name: tf.gather(tensor, indices) for name, tensor in self.x.items()}
        with tf.GradientTape() as tape:
            loss = self._loss(inputs, tf.gather(self.y, indices))
            scaled = loss if weight is None else loss * tf.cast(weight, loss.dtype)
        grads = tape.gradient(scaled, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        # Embedding gradients come as IndexedSlices; the update rules are dense, as torch's are.
        return loss, [tf.convert_to_tensor(grad) for grad in grads]

    def _train_step(self, indices: tf.Tensor, step: tf.Tensor, learning_rate: tf.Tensor) -> tf.Tensor:
        with tf.device(self.model.device):
            self.model.step.assign(step)
            loss, grads = self._gradients(indices)
            self.optimizer.apply(grads, learning_rate, step + 1)
        return loss

    def _distributed_step(self, indices, step, learning_rate, offset, fraction) -> tf.Tensor:
        strategy = distributed.strategy()
        with tf.device(self.model.device):
            self.model.step.assign(step)
            self.model.offset.assign(offset)
            loss, grads = strategy.run(self._replica_gradients, args=(indices, fraction))
            self.optimizer.apply([distributed.local(grad) for grad in grads], learning_rate, step + 1)
        return distributed.local(loss)

    def _replica_gradients(self, indices, fraction):
        """This worker's loss and the summed gradients of all workers, each weighted by its share."""
        loss, grads = self._gradients(indices, fraction)
        return loss, tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)

    def train_step(
        self, indices: np.ndarray, step: int, learning_rate: float, *, offset: int = 0, fraction: float = 1.0
    ) -> tf.Tensor:
        """One optimizer step on samples ``indices``; dropout uses masks of ``step`` (0-based).

        With workers: ``indices`` are this worker's share of the global batch, starting at
        position ``offset`` in it and making up ``fraction`` of it. Returns the share's mean
        loss (penalties included) as a scalar tensor, without synchronising.
        """
        arguments = [np.asarray(indices, dtype=np.int64), np.int64(step), np.float64(learning_rate)]
        if self.distributed:
            arguments += [np.int64(offset), np.float64(fraction)]
        loss = self._step(*arguments)
        self.steps_taken = step + 1
        return loss

    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of ``values`` over all workers."""
        return distributed.all_reduce_sum(values)

    def losses_to_numpy(self, losses: list) -> np.ndarray:
        """Many step losses as one float64 array, with one device synchronisation."""
        if not losses:
            return np.zeros(0)
        return tf.stack(list(losses)).numpy().astype(np.float64)

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """``"{canonical parameter name}/{slot}"`` -> array in the canonical layout (zeros before any step)."""
        state = {}
        for (_, parts), slots in zip(self.groups, self.optimizer.slots):
            for slot_name, variable in slots.items():
                for name, value in layout.to_canonical(parts, variable.numpy()).items():
                    state[f"{name}/{slot_name}"] = value
        return {f"{name}/{s}": state[f"{name}/{s}"] for name in self.trainable for s in self.optimizer.slot_names}

    def load_optimizer_state(self, state: Mapping[str, np.ndarray], step: int) -> None:
        """Restore slots saved by :meth:`optimizer_state`, ``step`` optimizer updates into the run."""
        names = self.optimizer.slot_names
        expected = {f"{name}/{s}" for name in self.trainable for s in names}
        if set(state) != expected:
            missing, unknown = sorted(expected - set(state)), sorted(set(state) - expected)
            raise UsageError(
                f"optimizer state does not fit this model and optimizer: missing {missing[:3]}, unknown {unknown[:3]}"
            )
        shapes = self.model.graph.parameters
        for key, value in state.items():
            name = key.rsplit("/", 1)[0]
            if np.shape(value) != tuple(shapes[name].shape):
                raise UsageError(
                    f"optimizer slot '{key}' expects shape {list(shapes[name].shape)}, received {list(np.shape(value))}"
                )
        for (_, parts), slots in zip(self.groups, self.optimizer.slots):
            for slot_name, variable in slots.items():
                canonical = {name: state[f"{name}/{slot_name}"] for name, _ in parts}
                variable.assign(layout.to_native(parts, canonical).astype(self.model.dtype))
        self.steps_taken = step

    def optimizer_step_only(self, grads: Mapping[str, np.ndarray], learning_rate: float, step: int) -> None:
        """Apply one optimizer update with given gradients (canonical layout); for tests.

        ``step`` is the 0-based index of this update (the reference's count is ``step + 1``).
        """
        native = [tf.constant(layout.to_native(parts, grads).astype(self.model.dtype)) for _, parts in self.groups]
        with tf.device(self.model.device):
            self.optimizer.apply(native, tf.constant(learning_rate, tf.float64), tf.constant(step + 1, tf.int64))
        self.steps_taken = step + 1
