"""The framework-free half of every training engine: what a step trains on, and the names
and shapes of the optimizer state.

A backend's ``Engine`` (``backends/<name>/engine.py``) derives from :class:`Engine` and
adds only tensor work: holding the data on its device, the step, the update, and reading
and writing the optimizer's slots. The neutral trainer (``archspec/training/loop.py``) calls
the public methods below and nothing else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from archspec.definitions.optimizers import options_from_spec, state_slots
from archspec.errors import DataError, UsageError
from archspec.objectives import Objective, objectives
from archspec.spec.training import Training

SPARSE_LOSS = "sparse_categorical_crossentropy"
"""The one loss whose targets are int64 labels (N,); every other loss takes float targets."""


class Engine(ABC):
    """Executes optimizer steps on a compiled model for the neutral trainer.

    ``model``: an ``archspec.model.CompiledModel`` with one head per output (each loss reads
    ``head.logits``, from logits or not as ``head.from_logits`` says). ``x``: the training
    inputs by name (checked like ``predict``'s); ``y``: one target per sample, int64 labels
    (N,) for sparse cross-entropy, float one-hot (N, C) for categorical, float (N, 1) or
    (N, K) otherwise; a dict of those by output name (an array alone for one output).

    After ``__init__``, a backend finds here: ``inputs`` (checked numpy arrays by input
    name) and ``targets`` (numpy by output name, already in each loss's target dtype) to move
    onto its device; ``objectives`` (``archspec.objectives.Objective``: per output its head,
    loss and weight) for its batch loss ``sum_o weight_o * loss_o``; ``penalties``
    (canonical name, l1, l2) to add to it once; ``trainable`` (canonical names, in canonical
    order) and ``slot_names`` (the optimizer's canonical state slots per parameter).
    """

    def __init__(
        self,
        model: Any,
        *,
        x: Mapping[str, np.ndarray],
        y: np.ndarray | Mapping[str, np.ndarray],
        training: Training,
        sample_weight: np.ndarray | None = None,
        gradient_norms: bool = False,
    ):
        graph = model.graph
        if not graph.heads:
            raise UsageError("training needs a model with an output (a head)")
        self.model = model
        self.training = training
        self.objectives: tuple[Objective, ...] = objectives(graph, training)
        self.inputs: dict[str, np.ndarray] = model._as_input_dict(x)
        self.sample_count = len(next(iter(self.inputs.values())))
        outputs = list(graph.outputs)
        if not isinstance(y, Mapping):
            if len(outputs) != 1:
                raise DataError(f"expected targets by output name ({', '.join(outputs)}), received one array")
            y = {outputs[0]: y}
        if sorted(y) != sorted(outputs):
            raise DataError(f"expected targets for the outputs {outputs}, received {sorted(y)}")
        self.targets: dict[str, np.ndarray] = {}
        for objective in self.objectives:
            target = np.asarray(y[objective.output])
            if len(target) != self.sample_count:
                raise DataError(
                    f"expected {self.sample_count} targets (one per training sample), received {len(target)}"
                )
            self.targets[objective.output] = target.astype("int64" if objective.loss == SPARSE_LOSS else model.dtype)
        self.trainable: list[str] = [name for name, param in graph.parameters.items() if param.trainable]
        self.penalties: list[tuple[str, float, float]] = [
            (name, param.regularizer.l1, param.regularizer.l2)
            for name, param in graph.parameters.items()
            if param.regularizer is not None and (param.regularizer.l1 or param.regularizer.l2)
        ]
        self.slot_names: tuple[str, ...] = state_slots(training.optimizer.type, options_from_spec(training.optimizer))
        self.sample_weight: np.ndarray | None = None
        if sample_weight is not None:
            weights = np.asarray(sample_weight, dtype=model.dtype)
            if weights.shape != (self.sample_count,):
                raise DataError(
                    f"expected {self.sample_count} sample weights (one per sample), received {weights.shape}"
                )
            self.sample_weight = weights
        self.clip_norm: float | None = training.clip_norm
        self.clip_value: float | None = training.clip_value
        # The global gradient norm before clipping, per step (for the logs); clip_norm needs it anyway.
        self.gradient_norms: bool = gradient_norms or training.clip_norm is not None

    # --- what the trainer calls -------------------------------------------------------

    @abstractmethod
    def train_step(
        self, indices: np.ndarray, step: int, learning_rate: float, *, offset: int = 0, fraction: float = 1.0
    ) -> Any:
        """One optimizer step on samples ``indices``; dropout uses masks of ``step`` (0-based).

        With workers: ``indices`` are this worker's share of the global batch, starting at
        position ``offset`` in it and making up ``fraction`` of it. Returns the share's mean
        loss (penalties included) as a 0-d tensor of the framework, without synchronising.
        """

    @abstractmethod
    def train_parts(self, parts: Sequence[tuple[np.ndarray, int, float]], step: int, learning_rate: float) -> Any:
        """One optimizer step on a global batch given in parts ``(indices, offset, fraction)``:
        each part's gradient is that of its mean loss times ``fraction`` (its share of the
        global batch), summed over the parts (and, with workers, all-reduced), clipped, and
        applied. ``offset``: the position of the part's first sample in the global batch.

        Returns ``sum(fraction * mean loss)`` over the parts as a 0-d tensor; with workers,
        the all-reduced sum of these is the global batch's loss. With ``gradient_norms``,
        :attr:`last_gradient_norm` is the step's global gradient norm before clipping.
        """

    @abstractmethod
    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of ``values`` over all workers."""

    def losses_to_numpy(self, losses: Sequence[Any]) -> np.ndarray:
        """Many step losses (from :meth:`train_step`) as one float64 array, with one device synchronisation."""
        if not losses:
            return np.zeros(0)
        return self._stack_losses(list(losses))

    def state_keys(self) -> list[str]:
        """``"{canonical parameter name}/{slot}"`` for every slot of the optimizer state, in canonical order."""
        return [f"{name}/{slot}" for name in self.trainable for slot in self.slot_names]

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """``"{canonical parameter name}/{slot}"`` -> array in the canonical layout (zeros before any step)."""
        state = self._read_optimizer_state()
        return {key: state[key] for key in self.state_keys()}

    def load_optimizer_state(self, state: Mapping[str, np.ndarray], step: int) -> None:
        """Restore slots saved by :meth:`optimizer_state`, ``step`` optimizer updates into the run."""
        self._write_optimizer_state(self.check_optimizer_state(state), step)

    def check_optimizer_state(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``state`` as numpy arrays, once its keys and shapes are those of this model and optimizer."""
        expected = self.state_keys()
        if set(state) != set(expected):
            missing, unknown = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
            raise UsageError(
                f"optimizer state does not fit this model and optimizer: missing {missing[:3]}, unknown {unknown[:3]}"
            )
        parameters = self.model.graph.parameters
        arrays = {}
        for key in expected:
            array = np.asarray(state[key])
            shape = tuple(parameters[key.rsplit("/", 1)[0]].shape)
            if array.shape != shape:
                raise UsageError(f"optimizer slot '{key}': expected shape {list(shape)}, received {list(array.shape)}")
            arrays[key] = array
        return arrays

    @abstractmethod
    def optimizer_step_only(self, grads: Mapping[str, np.ndarray], learning_rate: float, step: int) -> None:
        """Apply one optimizer update with ``grads`` (canonical names and layout), the update
        of 0-based index ``step``, without a forward pass; for tests against the reference."""

    def unwrap(self) -> None:
        """Drop whatever wraps the step for distributed training; nothing to drop by default."""
        return None

    # --- what a backend implements ----------------------------------------------------

    @abstractmethod
    def _stack_losses(self, losses: list[Any]) -> np.ndarray:
        """A non-empty list of 0-d loss tensors as one float64 numpy array."""

    @abstractmethod
    def _read_optimizer_state(self) -> Mapping[str, np.ndarray]:
        """Every slot as ``"{name}/{slot}"`` -> canonical array, in any order."""

    @abstractmethod
    def _write_optimizer_state(self, state: Mapping[str, np.ndarray], step: int) -> None:
        """Write checked canonical slots (every key of :meth:`state_keys`), ``step`` updates into the run."""
