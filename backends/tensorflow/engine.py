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
from archspec.errors import UsageError, lookup
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
    return -tf.gather(_log_probabilities(output, from_logits), target, axis=1, batch_dims=1)


def _categorical_crossentropy(output: tf.Tensor, target: tf.Tensor, from_logits: bool) -> tf.Tensor:
    target = tf.reshape(target, tf.shape(output))
    return -tf.reduce_sum(target * _log_probabilities(output, from_logits), axis=1)


def _binary_crossentropy(output: tf.Tensor, target: tf.Tensor, from_logits: bool) -> tf.Tensor:
    target = tf.reshape(target, tf.shape(output))
    if from_logits:
        return _binary_crossentropy_from_logits(output, target)
    p = tf.clip_by_value(output, EPSILON, 1 - EPSILON)
    return -target * tf.math.log(p) - (1 - target) * tf.math.log(1 - p)


def _mse(output: tf.Tensor, target: tf.Tensor, from_logits: bool) -> tf.Tensor:
    return tf.square(output - tf.reshape(target, tf.shape(output)))


def _mae(output: tf.Tensor, target: tf.Tensor, from_logits: bool) -> tf.Tensor:
    return tf.abs(output - tf.reshape(target, tf.shape(output)))


LOSSES: dict[str, Callable[[tf.Tensor, tf.Tensor, bool], tf.Tensor]] = {
    "sparse_categorical_crossentropy": _sparse_categorical_crossentropy,
    "categorical_crossentropy": _categorical_crossentropy,
    "binary_crossentropy": _binary_crossentropy,
    "mse": _mse,
    "mae": _mae,
}
"""Each loss of the spec by the formulas of ``archspec/reference/losses.py``: its terms, one
row per sample (the batch loss is their mean)."""


def batch_loss(
    name: str, output: tf.Tensor, target: tf.Tensor, from_logits: bool, weights: tf.Tensor | None = None
) -> tf.Tensor:
    """The mean loss ``name`` of a batch; with ``weights`` (N,): ``sum(w * l) / N``, ``l`` each
    sample's loss (the mean of its terms), as Keras weights a loss.

    ``target``: int64 labels (N,) for sparse categorical cross-entropy, else floats
    with as many elements as ``output``.
    """
    terms = lookup(LOSSES, name, "loss")(output, target, from_logits)
    if weights is None:
        return tf.reduce_mean(terms)
    count = tf.shape(terms)[0]
    per_sample = tf.reduce_mean(tf.reshape(terms, tf.stack([count, -1])), axis=1)
    return tf.reduce_sum(weights * per_sample) / tf.cast(count, terms.dtype)


def _global_norm(grads: list[tf.Tensor]) -> tf.Tensor:
    """sqrt(sum over the gradients of sum g**2), as the reference's ``global_norm``."""
    return tf.sqrt(tf.reduce_sum(tf.stack([tf.reduce_sum(grad * grad) for grad in grads])))


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
        sample_weight: np.ndarray | None = None,
        gradient_norms: bool = False,
    ):
        super().__init__(model, x=x, y=y, training=training, sample_weight=sample_weight, gradient_norms=gradient_norms)
        with tf.device(model.device):
            self.x = {name: tf.constant(array) for name, array in self.inputs.items()}
            self.y = {name: tf.constant(target) for name, target in self.targets.items()}
            self.w = None if self.sample_weight is None else tf.constant(self.sample_weight)

        self.groups = model.trainable_arrays()  # [(variable, [slot, ...])]
        self.variables = [variable for variable, _ in self.groups]
        holding = {slot.canonical: variable for variable, group in model.arrays for slot in group}
        self.penalty_slots = [(model.slots[name], holding[name], l1, l2) for name, l1, l2 in self.penalties]
        with tf.device(model.device):
            self.optimizer = Optimizer(training.optimizer, self.variables)
            # With accumulate_steps, the parts' gradients add up here until the step applies them.
            self.accumulators = (
                [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in self.variables]
                if training.accumulate_steps > 1
                else []
            )
        self.steps_taken = 0
        self.last_gradient_norm: tf.Tensor | None = None
        self.distributed = cluster is not None
        indices = tf.TensorSpec([None], tf.int64, name="indices")
        step = tf.TensorSpec([], tf.int64, name="step")
        rate = tf.TensorSpec([], tf.float64, name="learning_rate")
        offset = tf.TensorSpec([], tf.int64, name="offset")
        fraction = tf.TensorSpec([], tf.float64, name="fraction")
        jit = None if self.distributed else (compiled or None)
        self._step = tf.function(
            self._whole_step, input_signature=[indices, step, offset, fraction, rate], jit_compile=jit
        )
        self._accumulate = tf.function(self._accumulate_part, input_signature=[indices, step, offset, fraction])
        self._apply = tf.function(self._apply_accumulated, input_signature=[step, rate])

    def _loss(
        self, inputs: dict[str, tf.Tensor], targets: dict[str, tf.Tensor], weights: tf.Tensor | None
    ) -> tf.Tensor:
        """``sum_o weight_o * loss_o`` over the outputs (in the spec's order), plus the penalties."""
        logits = self.model.heads_model(inputs, training=True)
        if not isinstance(logits, (list, tuple)):  # Keras returns a bare tensor for a one-element list
            logits = [logits]
        loss = None
        for objective, output in zip(self.objectives, logits):
            head = objective.head
            term = batch_loss(objective.loss, output, targets[objective.output], head.from_logits, weights)
            if objective.weight != 1.0:
                term = term * tf.cast(objective.weight, term.dtype)
            loss = term if loss is None else loss + term
        for slot, variable, l1, l2 in self.penalty_slots:
            weight = slot.view(tf.convert_to_tensor(variable))
            if l1:
                loss = loss + l1 * tf.reduce_sum(tf.abs(weight))
            if l2:
                loss = loss + l2 * tf.reduce_sum(weight * weight)
        return loss

    def _gradients(self, indices: tf.Tensor, fraction: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """The mean loss on samples ``indices`` and the dense gradients of ``fraction * loss``."""
        inputs = {name: tf.gather(tensor, indices) for name, tensor in self.x.items()}
        weights = None if self.w is None else tf.gather(self.w, indices)
        with tf.GradientTape() as tape:
            targets = {name: tf.gather(target, indices) for name, target in self.y.items()}
            loss = self._loss(inputs, targets, weights)
            scaled = loss * tf.cast(fraction, loss.dtype)
        grads = tape.gradient(scaled, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        # Embedding gradients come as IndexedSlices; the update rules are dense, as torch's are.
        return loss, [tf.convert_to_tensor(grad) for grad in grads]

    def _part_gradients(self, indices, step, offset, fraction):
        """One part's mean loss and the gradients of the global batch's share of it (all-reduced
        over the workers when there are several)."""
        self.model.step.assign(step)
        self.model.offset.assign(offset)
        if not self.distributed:
            return self._gradients(indices, fraction)
        loss, grads = distributed.strategy().run(self._replica_gradients, args=(indices, fraction))
        return distributed.local(loss), [distributed.local(grad) for grad in grads]

    def _replica_gradients(self, indices, fraction):
        """This worker's loss and the summed gradients of all workers, each weighted by its share."""
        loss, grads = self._gradients(indices, fraction)
        return loss, tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)

    def _update(self, grads: list[tf.Tensor], step: tf.Tensor, learning_rate: tf.Tensor) -> tf.Tensor:
        """clip_value, then clip_norm, then the optimizer; returns the norm before clipping (or 0)."""
        norm = _global_norm(grads) if self.gradient_norms else tf.zeros([], grads[0].dtype)
        if self.clip_value is not None:
            grads = [tf.clip_by_value(grad, -self.clip_value, self.clip_value) for grad in grads]
        if self.clip_norm is not None:
            current = _global_norm(grads) if self.clip_value is not None else norm
            factor = self.clip_norm / tf.maximum(current, tf.cast(self.clip_norm, current.dtype))
            grads = [grad * factor for grad in grads]
        self.optimizer.apply(grads, learning_rate, step + 1)
        return norm

    def _whole_step(self, indices, step, offset, fraction, learning_rate):
        with tf.device(self.model.device):
            loss, grads = self._part_gradients(indices, step, offset, fraction)
            norm = self._update(grads, step, learning_rate)
        return loss * tf.cast(fraction, loss.dtype), loss, norm

    def _accumulate_part(self, indices, step, offset, fraction):
        with tf.device(self.model.device):
            loss, grads = self._part_gradients(indices, step, offset, fraction)
            for accumulator, grad in zip(self.accumulators, grads):
                accumulator.assign_add(grad)
        return loss * tf.cast(fraction, loss.dtype)

    def _apply_accumulated(self, step, learning_rate):
        with tf.device(self.model.device):
            norm = self._update([accumulator.read_value() for accumulator in self.accumulators], step, learning_rate)
            for accumulator in self.accumulators:
                accumulator.assign(tf.zeros_like(accumulator))
        return norm

    def train_step(
        self, indices: np.ndarray, step: int, learning_rate: float, *, offset: int = 0, fraction: float = 1.0
    ) -> tf.Tensor:
        _, loss, norm = self._step(*self._arguments(indices, step, offset, fraction), np.float64(learning_rate))
        self._after(step, norm)
        return loss

    def train_parts(self, parts, step: int, learning_rate: float) -> tf.Tensor:
        if len(parts) == 1:
            (indices, offset, fraction), rate = parts[0], np.float64(learning_rate)
            total, _, norm = self._step(*self._arguments(indices, step, offset, fraction), rate)
            self._after(step, norm)
            return total
        if not self.accumulators:
            raise UsageError(f"expected one part per step without accumulate_steps, received {len(parts)}")
        total = None
        for indices, offset, fraction in parts:
            share = self._accumulate(*self._arguments(indices, step, offset, fraction))
            total = share if total is None else total + share
        self._after(step, self._apply(np.int64(step), np.float64(learning_rate)))
        return total

    @staticmethod
    def _arguments(indices, step, offset, fraction):
        return np.asarray(indices, dtype=np.int64), np.int64(step), np.int64(offset), np.float64(fraction)

    def _after(self, step: int, norm: tf.Tensor) -> None:
        self.steps_taken = step + 1
        if self.gradient_norms:
            self.last_gradient_norm = norm

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
            norm = self._update(native, tf.constant(step, tf.int64), tf.constant(learning_rate, tf.float64))
        self._after(step, norm)
