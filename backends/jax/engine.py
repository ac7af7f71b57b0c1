"""The JAX training engine: one jitted optimizer step on a batch the neutral trainer chose.

The training set lives on the model's device (``device_put`` once); a step receives sample
indices and gathers its batch inside the jitted function, so no batch is copied from the host.
The step is one ``jax.jit`` of pure functions over the model's arrays (``model.apply`` for the
forward pass, ``optimizers.py`` for the update), taking the optimizer step, the dropout offset,
the part's share and the step's optimizer scalars as traced arguments: nothing retraces from
step to step (a batch of another size compiles once more). Parameters, batch statistics and
optimizer state are donated to the step, which returns their new values; the engine writes
them back into the model's ``nnx`` variables after every step, so the model (``get_weights``,
``predict``, ``set_weights``) is always the one being trained. Losses stay device arrays until
the trainer asks for many at once. Everything runs inside ``model.precision()`` (JAX's 64-bit
mode for a float64 model).

With workers, the step's gradients and batch statistics must be those of the global batch:
:meth:`Engine.share_loss` is the pure loss function of one share, the piece that
``distributed.py`` differentiates on every worker under ``shard_map``, summing the gradients
with ``psum`` (``_Workers``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from archspec.definitions.constants import EPSILON
from archspec.engine import Engine as BaseEngine
from archspec.errors import UsageError, lookup
from archspec.layout import to_canonical, to_native
from archspec.spec.training import Training

from .distributed import Shares, sum_over_workers
from .model import JaxModel, apply
from .optimizers import Optimizer, Slots


def _abs(x: jax.Array) -> jax.Array:
    """|x| with the derivative sign(x), 0 at x = 0 as torch and TensorFlow differentiate it
    (``jnp.abs``' derivative is 1 there: an L1 penalty on a bias that starts at zeros would
    move it on the first step)."""
    return jnp.sign(x) * x


def _log_probabilities(output: jax.Array, from_logits: bool) -> jax.Array:
    if from_logits:
        # The row maximum only shifts the logits (it cancels): no gradient flows through it.
        shifted = output - jax.lax.stop_gradient(jnp.max(output, axis=1, keepdims=True))
        return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=1, keepdims=True))
    probabilities = output / jnp.sum(output, axis=1, keepdims=True)
    return jnp.log(jnp.clip(probabilities, EPSILON, 1 - EPSILON))


@jax.custom_jvp
def _binary_crossentropy_from_logits(z: jax.Array, y: jax.Array) -> jax.Array:
    """max(z, 0) - z y + log1p(exp(-|z|)), with its exact derivative sigmoid(z) - y
    (autodiff of the formula is wrong at z = 0, where |z| has no derivative)."""
    return jnp.maximum(z, jnp.zeros_like(z)) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))


@_binary_crossentropy_from_logits.defjvp
def _binary_crossentropy_from_logits_jvp(primals, tangents):
    z, y = primals
    dz, dy = tangents
    return _binary_crossentropy_from_logits(z, y), (jax.nn.sigmoid(z) - y) * dz - z * dy


def _sparse_categorical_crossentropy(output: jax.Array, target: jax.Array, from_logits: bool) -> jax.Array:
    return -jnp.take_along_axis(_log_probabilities(output, from_logits), target[:, None], axis=1)


def _categorical_crossentropy(output: jax.Array, target: jax.Array, from_logits: bool) -> jax.Array:
    target = target.reshape(output.shape)
    return -jnp.sum(target * _log_probabilities(output, from_logits), axis=1)


def _binary_crossentropy(output: jax.Array, target: jax.Array, from_logits: bool) -> jax.Array:
    target = target.reshape(output.shape)
    if from_logits:
        return _binary_crossentropy_from_logits(output, target)
    p = jnp.clip(output, EPSILON, 1 - EPSILON)
    return -target * jnp.log(p) - (1 - target) * jnp.log(1 - p)


def _mse(output: jax.Array, target: jax.Array, from_logits: bool) -> jax.Array:
    return jnp.square(output - target.reshape(output.shape))


def _mae(output: jax.Array, target: jax.Array, from_logits: bool) -> jax.Array:
    return _abs(output - target.reshape(output.shape))


LOSSES: dict[str, Callable[[jax.Array, jax.Array, bool], jax.Array]] = {
    "sparse_categorical_crossentropy": _sparse_categorical_crossentropy,
    "categorical_crossentropy": _categorical_crossentropy,
    "binary_crossentropy": _binary_crossentropy,
    "mse": _mse,
    "mae": _mae,
}
"""Each loss of the spec by the formulas of ``archspec/reference/losses.py``: its terms, one
row per sample (the batch loss is their mean)."""


def batch_loss(
    name: str,
    output: jax.Array,
    target: jax.Array,
    from_logits: bool,
    weights: jax.Array | None = None,
    valid: jax.Array | None = None,
) -> jax.Array:
    """The mean loss ``name`` of a batch; with ``weights`` (N,): ``sum(w * l) / N``, ``l`` each
    sample's loss (the mean of its terms), as Keras weights a loss.

    ``target``: integer labels (N,) for sparse categorical cross-entropy, else floats with as
    many elements as ``output``. ``valid`` (bool (N,)): only these rows are the batch (the
    others pad a worker's share to the common shape); N is then their count.
    """
    terms = lookup(LOSSES, name, "loss")(output, target, from_logits)
    if weights is None and valid is None:
        return jnp.mean(terms)
    per_sample = jnp.mean(terms.reshape(terms.shape[0], -1), axis=1)
    if weights is not None:
        per_sample = weights * per_sample
    if valid is None:
        return jnp.sum(per_sample) / terms.shape[0]
    rows = valid.astype(per_sample.dtype)
    return jnp.sum(per_sample * rows) / jnp.sum(rows)


def _global_norm(grads: Sequence[jax.Array]) -> jax.Array:
    """sqrt(sum over the gradients of sum g**2), as the reference's ``global_norm``."""
    return jnp.sqrt(sum(jnp.sum(grad * grad) for grad in grads))


def _leaves(state: nnx.State) -> list[jax.Array]:
    return jax.tree.leaves(state)


Arrays = list[jax.Array]


@dataclass(frozen=True)
class Plan:
    """What a training step computes, as hashable values: the pure functions of the step.

    ``objectives``: per output ``(loss, output id, logits tensor, from_logits, weight)`` in the
    spec's order; ``penalties``: ``(index of the parameter among the trainable arrays, l1, l2)``;
    ``trees``: the tree structures of the model's parameters, batch statistics and other
    arrays, whose leaves the step takes as lists.
    """

    graphdef: nnx.GraphDef
    trees: tuple[Any, ...]
    objectives: tuple[tuple[str, str, str, bool, float], ...]
    penalties: tuple[tuple[int, float, float], ...]
    optimizer: Optimizer
    clip_value: float | None
    clip_norm: float | None
    gradient_norms: bool

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(logits for _, _, logits, _, _ in self.objectives)

    def share_loss(
        self, params: Arrays, common: tuple, indices: jax.Array, valid: jax.Array | None, offset: jax.Array
    ) -> tuple[jax.Array, Arrays]:
        """One share's mean loss ``sum_o weight_o * loss_o`` over the outputs (in the spec's
        order) plus the penalties, and the batch statistics after its forward pass.

        ``params``: the trainable arrays (differentiated); ``common``: ``(stats, rest, data,
        step)``, the model's other arrays, the training set on the device and the optimizer
        step (dropout masks); ``indices``: the share's samples in the training set; ``valid``
        (bool, or ``None``): which rows are real (a worker's share padded to the common shape);
        ``offset``: where the share starts in the global batch (dropout masks index samples by
        it). Pure: one process differentiates ``fraction`` times it (``_share_gradients``);
        with workers ``distributed.Shares.gradients`` does, summing over the workers.
        """
        stats, rest, data, step = common
        states = tuple(jax.tree.unflatten(tree, leaves) for tree, leaves in zip(self.trees, (params, stats, rest)))
        inputs = {name: array[indices] for name, array in data["x"].items()}
        weights = data["w"][indices] if "w" in data else None
        values, new_stats = apply(self.graphdef, states, inputs, self.names, training=True, step=step, offset=offset)
        loss: jax.Array | None = None
        for name, output, logits, from_logits, loss_weight in self.objectives:
            target = data["y"][output][indices]
            term = batch_loss(name, values[logits], target, from_logits, weights, valid)
            if loss_weight != 1.0:
                term = term * loss_weight
            loss = term if loss is None else loss + term
        assert loss is not None, "a model has at least one output"
        for index, l1, l2 in self.penalties:
            weight = params[index]
            if l1:
                loss = loss + l1 * jnp.sum(_abs(weight))
            if l2:
                loss = loss + l2 * jnp.sum(weight * weight)
        return loss, _leaves(new_stats)

    def _share_gradients(
        self, params: Arrays, common: tuple, indices: jax.Array, offset: jax.Array, fraction: jax.Array
    ) -> tuple[jax.Array, Arrays, Arrays]:
        """One process's share: its mean loss, the gradients of ``fraction`` times it, the new statistics."""

        def weighted(param_leaves: Arrays) -> tuple[jax.Array, tuple[jax.Array, Arrays]]:
            loss, new_stats = self.share_loss(param_leaves, common, indices, None, offset)
            return loss * fraction, (loss, new_stats)

        grads, (loss, new_stats) = jax.grad(weighted, has_aux=True)(params)
        return loss, grads, new_stats

    def _apply_update(
        self, params: Arrays, slots: list[Slots], grads: Arrays, scalars: jax.Array
    ) -> tuple[Arrays, list[Slots], jax.Array]:
        """clip_value, then clip_norm, then the optimizer; returns the norm before clipping (or 0)."""
        norm = _global_norm(grads) if self.gradient_norms else jnp.zeros((), scalars.dtype)
        if self.clip_value is not None:
            grads = [jnp.clip(grad, -self.clip_value, self.clip_value) for grad in grads]
        if self.clip_norm is not None:
            current = _global_norm(grads) if self.clip_value is not None else norm
            factor = self.clip_norm / jnp.maximum(current, self.clip_norm)
            grads = [grad * factor for grad in grads]
        new_params, new_slots = self.optimizer.apply(params, grads, slots, scalars)
        return new_params, new_slots, norm

    def _whole_step(self, params, stats, rest, slots, data, indices, step, offset, fraction, scalars):
        """A step of one part: its gradients, clipped, applied."""
        common = (stats, rest, data, step)
        loss, grads, new_stats = self._share_gradients(params, common, indices, offset, fraction)
        new_params, new_slots, norm = self._apply_update(params, slots, grads, scalars)
        return new_params, new_stats, new_slots, loss, loss * fraction, norm

    def _part_step(self, params, stats, rest, data, indices, step, offset, fraction):
        """One part of a step of several (accumulate_steps): its mean loss, its share of the
        step's loss, its gradients and the statistics after it."""
        loss, grads, new_stats = self._share_gradients(params, (stats, rest, data, step), indices, offset, fraction)
        return loss, loss * fraction, grads, new_stats


@functools.cache
def _programs(plan: Plan) -> tuple[Callable, ...]:
    """The jitted step programs of ``plan``: (whole step, one part, sum of gradients, update)."""
    return (
        jax.jit(plan._whole_step, donate_argnums=(0, 1, 3)),
        jax.jit(plan._part_step, donate_argnums=(1,)),
        jax.jit(lambda total, grads: [a + b for a, b in zip(total, grads)], donate_argnums=(0,)),
        jax.jit(plan._apply_update, donate_argnums=(0, 1)),
    )


class Engine(BaseEngine):
    """Executes optimizer steps for the neutral trainer (``archspec/training/loop.py``); the
    checks, the targets' dtype and the optimizer state's names come from ``archspec.engine``.

    The step is always compiled (``jax.jit``): ``compiled`` is accepted for the contract and
    changes nothing. ``cluster`` (workers, after ``distributed.join``): each part's gradients
    and batch statistics are those of the global batch (``_Workers``).
    """

    def __init__(
        self,
        model: JaxModel,
        *,
        x: Mapping[str, np.ndarray],
        y: np.ndarray,
        training: Training,
        compiled: bool = False,
        cluster: Any = None,
        sample_weight: np.ndarray | None = None,
        gradient_norms: bool = False,
    ):
        super().__init__(model, x=x, y=y, training=training, sample_weight=sample_weight, gradient_norms=gradient_norms)
        self.compiled = compiled
        self.cluster = cluster
        self.world_size = 1 if cluster is None else cluster.world_size
        self.dtype = np.dtype(model.dtype)
        self.last_gradient_norm: jax.Array | None = None
        with model.precision():
            self.data: dict[str, Any] = {
                "x": model.input_arrays(self.inputs),
                "y": {
                    name: jax.device_put(target.astype(np.int32) if target.dtype.kind in "iu" else target, model.device)
                    for name, target in self.targets.items()
                },
            }
            if self.sample_weight is not None:
                self.data["w"] = jax.device_put(self.sample_weight, model.device)

        # The model's variables in the order of its states' leaves: read before every step
        # (set_weights may have replaced them) and written after it.
        states = model.states()
        self._trees = [jax.tree.structure(state) for state in states]
        self._variables: list[list[nnx.Variable]] = [[v for _, v in nnx.to_flat_state(state)] for state in states]
        for state, variables in zip(states, self._variables):
            if any(leaf is not v.get_raw_value() for leaf, v in zip(_leaves(state), variables, strict=True)):
                raise RuntimeError("the model's state leaves and variables are not in the same order")
        paths = [tuple(str(key) for key in path) for path, _ in nnx.to_flat_state(states[0])]
        self.trainable_slots = model.trainable_slots()
        self._index = {
            slot.canonical: paths.index(("layers", slot.node, *slot.path.split("."))) for slot in self.trainable_slots
        }
        self.optimizer = Optimizer(training.optimizer, model.dtype)
        with model.precision():
            self.slots: list[Slots] = self.optimizer.zeros(self._read(0))
        self.plan = Plan(
            model.graphdef,
            tuple(self._trees),
            tuple((o.loss, o.output, o.head.logits, o.head.from_logits, float(o.weight)) for o in self.objectives),
            tuple((self._index[name], float(l1), float(l2)) for name, l1, l2 in self.penalties),
            self.optimizer,
            self.clip_value,
            self.clip_norm,
            self.gradient_norms,
        )
        # The jitted programs of this plan: engines of equal plans (one spec, one optimizer) share them.
        self._whole, self._part, self._sum, self._apply = _programs(self.plan)
        self._workers = _Workers(self, training.batch_size) if cluster is not None else None

    def share_loss(
        self, params: Arrays, common: tuple, indices: jax.Array, valid: jax.Array | None, offset: jax.Array
    ) -> tuple[jax.Array, Arrays]:
        """One share's mean loss and batch statistics: :meth:`Plan.share_loss`."""
        return self.plan.share_loss(params, common, indices, valid, offset)

    # --- the model's arrays ----------------------------------------------------------------

    def _read(self, which: int) -> Arrays:
        """The model's current arrays: 0 parameters, 1 batch statistics, 2 the rest."""
        return [variable.get_raw_value() for variable in self._variables[which]]

    def _write(self, which: int, arrays: Arrays) -> None:
        for variable, array in zip(self._variables[which], arrays):
            variable.set_raw_value(array)

    # --- what the trainer calls ------------------------------------------------------------

    def _arguments(self, indices: np.ndarray, step: int, offset: int, fraction: float) -> tuple:
        return (
            np.asarray(indices, dtype=np.int32),
            np.uint32(step),
            np.int32(offset),
            self.dtype.type(fraction),
        )

    def train_step(
        self, indices: np.ndarray, step: int, learning_rate: float, *, offset: int = 0, fraction: float = 1.0
    ) -> jax.Array:
        return self._step([(indices, offset, fraction)], step, learning_rate)[1]

    def train_parts(self, parts, step: int, learning_rate: float) -> jax.Array:
        return self._step(parts, step, learning_rate)[0]

    def _step(self, parts, step: int, learning_rate: float) -> tuple[jax.Array, jax.Array]:
        """(sum of fraction * mean loss over the parts, the last part's mean loss)."""
        if not parts:
            raise UsageError("expected at least one part per step, received none")
        scalars = self.optimizer.scalars(learning_rate, step + 1)
        with self.model.precision():
            params, stats, rest = self._read(0), self._read(1), self._read(2)
            if self._workers is not None:
                params, stats, total, loss, norm = self._workers.step(params, stats, rest, parts, step, scalars)
            elif len(parts) == 1:
                indices, offset, fraction = parts[0]
                params, stats, self.slots, loss, total, norm = self._whole(
                    params,
                    stats,
                    rest,
                    self.slots,
                    self.data,
                    *self._arguments(indices, step, offset, fraction),
                    scalars,
                )
            else:
                grads: Arrays | None = None
                total = None
                for indices, offset, fraction in parts:
                    loss, share, part_grads, stats = self._part(
                        params, stats, rest, self.data, *self._arguments(indices, step, offset, fraction)
                    )
                    grads = part_grads if grads is None else self._sum(grads, part_grads)
                    total = share if total is None else total + share
                assert grads is not None and total is not None
                params, self.slots, norm = self._apply(params, self.slots, grads, scalars)
            self._write(0, params)
            self._write(1, stats)
        if self.gradient_norms:
            self.last_gradient_norm = norm
        return total, loss

    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        if self._workers is not None:
            return sum_over_workers(values)
        # One worker: the sum over the workers is its own values.
        return np.array(values, copy=True)

    def _stack_losses(self, losses: list[jax.Array]) -> np.ndarray:
        return np.asarray(jax.device_get(losses), dtype=np.float64).reshape(len(losses))

    def _read_optimizer_state(self) -> dict[str, np.ndarray]:
        state = {}
        for slot in self.trainable_slots:
            for name, value in self.slots[self._index[slot.canonical]].items():
                state.update({f"{key}/{name}": array for key, array in to_canonical([slot], np.array(value)).items()})
        return state

    def _write_optimizer_state(self, state: Mapping[str, np.ndarray], step: int) -> None:
        # ``step`` is unused: every update is given its count (step + 1) by the trainer.
        slots = [dict(entry) for entry in self.slots]
        with self.model.precision():
            for slot in self.trainable_slots:
                for name in self.slot_names:
                    value = to_native([slot], {slot.canonical: state[f"{slot.canonical}/{name}"]})
                    slots[self._index[slot.canonical]][name] = jax.device_put(
                        np.asarray(value, dtype=self.dtype), self.model.device
                    )
        self.slots = slots

    def optimizer_step_only(self, grads: Mapping[str, np.ndarray], learning_rate: float, step: int) -> None:
        scalars = self.optimizer.scalars(learning_rate, step + 1)
        with self.model.precision():
            params = self._read(0)
            native = list(params)
            for slot in self.trainable_slots:
                value = np.asarray(to_native([slot], grads), dtype=self.dtype)
                native[self._index[slot.canonical]] = jax.device_put(value, self.model.device)
            params, self.slots, norm = self._apply(params, self.slots, native, scalars)
            self._write(0, params)
        if self.gradient_norms:
            self.last_gradient_norm = norm


class _Workers:
    """The step of a worker (``cluster``): each part's gradients are those of the global batch.

    :meth:`Plan.share_loss` runs on every worker's share in one ``shard_map`` program
    (``distributed.Shares``), which differentiates ``fraction`` times it and sums the gradients
    and batch norm's sums over the workers; the update is then the one-process program's, on
    the same (summed) gradients on every worker.
    """

    def __init__(self, engine: Engine, batch_size: int):
        self.engine = engine
        self.shares = Shares(batch_size)
        self.program = self.shares.gradients(engine.plan.share_loss)
        with engine.model.precision():
            self.data = self.shares.replicate(engine.data)  # once: the training set is the same everywhere

    def step(self, params: Arrays, stats: Arrays, rest: Arrays, parts, step: int, scalars: Any) -> tuple:
        """(new parameters, new statistics, sum of fraction * share loss, the last share's loss, norm)."""
        engine = self.engine
        grads: Arrays | None = None
        total = loss = None
        for indices, offset, fraction in parts:
            common = (stats, rest, self.data, np.uint32(step))
            loss, part_grads, stats = self.shares.run(self.program, params, common, indices, offset, fraction)
            share = loss * engine.dtype.type(fraction)
            grads = part_grads if grads is None else engine._sum(grads, part_grads)
            total = share if total is None else total + share
        assert grads is not None
        params, engine.slots, norm = engine._apply(params, engine.slots, grads, scalars)
        return params, stats, total, loss, norm
