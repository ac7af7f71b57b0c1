"""The TensorFlow training engine: one compiled optimizer step on a batch the neutral trainer chose.

The training set lives on the model's device as one tensor per input; the step is one
``tf.function`` with a fixed signature (indices, step, learning rate) that gathers its
batch there, so nothing is copied per batch and nothing retraces. Losses stay tensors
until the trainer asks for many at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import tensorflow as tf

from archspec.definitions.constants import EPSILON
from archspec.engine import Engine as BaseEngine
from archspec.errors import lookup
from archspec.layout import to_canonical, to_native
from archspec.spec.training import Training

from . import distributed
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


def _sparse_categorical_crossentropy(output: tf.Tensor, target: tf.Tensor, from_logits: bool) -> tf.Tensor:
    log_p = _log_probabilities(output, from_logits)
    return -tf.reduce_mean(tf.gather(log_p, target, axis=1, batch_dims=1))


def _categorical_crossentropy(output: tf.Tensor, target: tf.Tensor, from_logits: bool) -> tf.Tensor:
    target = tf.reshape(target, tf.shape(output))
    return -tf.reduce_mean(tf.reduce_sum(target * _log_probabilities(output, from_logits), axis=1))


def _binary_crossentropy(output: tf.Tensor, target: tf.Tensor, from_logits: bool) -> tf.Tensor:
    target = tf.reshape(target, tf.shape(output))
    if from_logits:
        return tf.reduce_mean(_binary_crossentropy_from_logits(output, target))
    p = tf.clip_by_value(output, EPSILON, 1 - EPSILON)
    return tf.reduce_mean(-target * tf.math.log(p) - (1 - target) * tf.math.log(1 - p))


def _mse(output: tf.Tensor, target: tf.Tensor, from_logits: bool) -> tf.Tensor:
    return tf.reduce_mean(tf.square(output - tf.reshape(target, tf.shape(output))))


def _mae(output: tf.Tensor, target: tf.Tensor, from_logits: bool) -> tf.Tensor:
    return tf.reduce_mean(tf.abs(output - tf.reshape(target, tf.shape(output))))


LOSSES: dict[str, Callable[[tf.Tensor, tf.Tensor, bool], tf.Tensor]] = {
    "sparse_categorical_crossentropy": _sparse_categorical_crossentropy,
    "categorical_crossentropy": _categorical_crossentropy,
    "binary_crossentropy": _binary_crossentropy,
    "mse": _mse,
    "mae": _mae,
}
"""Each loss of the spec, by the formulas of ``archspec/reference/losses.py``."""


def batch_loss(name: str, output: tf.Tensor, target: tf.Tensor, from_logits: bool) -> tf.Tensor:
    """The mean loss ``name`` of a batch.

    ``target``: int64 labels (N,) for sparse categorical cross-entropy, else floats
    with as many elements as ``output``.
    """
    return lookup(LOSSES, name, "loss")(output, target, from_logits)


class Engine(BaseEngine):
    """Executes optimizer steps for the neutral trainer (``archspec/training/loop.py``); the
    checks, the targets' dtype and the optimizer state's names come from ``archspec.engine``.

    ``compiled`` compiles the step with XLA (``jit_compile=True``). ``cluster`` (an
    ``archspec.training.cluster.Cluster``; model and engine built under ``distributed.join``):
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
        super().__init__(model, x=x, y=y, training=training)
        with tf.device(model.device):
            self.x = {name: tf.constant(array) for name, array in self.inputs.items()}
            self.y = tf.constant(self.targets)

        self.groups = model.trainable_arrays()  # [(variable, [slot, ...])]
        self.variables = [variable for variable, _ in self.groups]
        holding = {slot.canonical: variable for variable, group in model.arrays for slot in group}
        self.penalty_slots = [(model.slots[name], holding[name], l1, l2) for name, l1, l2 in self.penalties]
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
        loss = batch_loss(self.loss, logits, target, self.from_logits)
        for slot, variable, l1, l2 in self.penalty_slots:
            weight = slot.view(tf.convert_to_tensor(variable))
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
        arguments = [np.asarray(indices, dtype=np.int64), np.int64(step), np.float64(learning_rate)]
        if self.distributed:
            arguments += [np.int64(offset), np.float64(fraction)]
        loss = self._step(*arguments)
        self.steps_taken = step + 1
        return loss

    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        return distributed.all_reduce_sum(values)

    def _stack_losses(self, losses: list[tf.Tensor]) -> np.ndarray:
        return tf.stack(losses).numpy().astype(np.float64)

    def _read_optimizer_state(self) -> dict[str, np.ndarray]:
        state = {}
        for (_, parts), slots in zip(self.groups, self.optimizer.slots):
            for slot_name, variable in slots.items():
                for name, value in to_canonical(parts, variable.numpy()).items():
                    state[f"{name}/{slot_name}"] = value
        return state

    def _write_optimizer_state(self, state: Mapping[str, np.ndarray], step: int) -> None:
        for (_, parts), slots in zip(self.groups, self.optimizer.slots):
            for slot_name, variable in slots.items():
                canonical = {slot.canonical: state[f"{slot.canonical}/{slot_name}"] for slot in parts}
                variable.assign(to_native(parts, canonical).astype(self.model.dtype))
        self.steps_taken = step

    def optimizer_step_only(self, grads: Mapping[str, np.ndarray], learning_rate: float, step: int) -> None:
        # The reference's update count is ``step + 1``.
        native = [tf.constant(to_native(parts, grads).astype(self.model.dtype)) for _, parts in self.groups]
        with tf.device(self.model.device):
            self.optimizer.apply(native, tf.constant(learning_rate, tf.float64), tf.constant(step + 1, tf.int64))
        self.steps_taken = step + 1
