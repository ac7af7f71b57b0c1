"""The torch training engine: one optimizer step on a batch the neutral trainer chose.

The training set lives on the model's device as one tensor per input; a step
receives sample indices and gathers its batch there, so no batch is copied from
the host. Losses stay tensors until the trainer asks for many at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from archspec.definitions.constants import EPSILON
from archspec.errors import DataError, UsageError
from archspec.spec.training import Training

from . import distributed, layout
from .layers import BatchNorm
from .model import TorchModel
from .optimizers import build_optimizer, read_slot, set_learning_rate, slots, write_state


def _log_probabilities(output: torch.Tensor, from_logits: bool) -> torch.Tensor:
    if from_logits:
        return torch.log_softmax(output, dim=1)  # subtracts the row maximum, as the reference does
    return torch.log(torch.clamp(output / output.sum(dim=1, keepdim=True), EPSILON, 1 - EPSILON))


def batch_loss(name: str, output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    """The mean loss of a batch, by the formulas of ``archspec/reference/losses.py``.

    ``target``: int64 labels (N,) for sparse categorical cross-entropy, else floats
    with as many elements as ``output``.
    """
    if name == "sparse_categorical_crossentropy":
        log_p = _log_probabilities(output, from_logits)
        return -log_p.gather(1, target.unsqueeze(1)).mean()
    target = target.reshape(output.shape)
    if name == "categorical_crossentropy":
        return -(target * _log_probabilities(output, from_logits)).sum(dim=1).mean()
    if name == "binary_crossentropy":
        if from_logits:
            # max(z, 0) - z*y + log1p(exp(-|z|)), with the gradient sigmoid(z) - y everywhere
            # (differentiating the formula as written gives 1 - y at z = 0).
            return F.binary_cross_entropy_with_logits(output, target)
        p = torch.clamp(output, EPSILON, 1 - EPSILON)
        return (-target * torch.log(p) - (1 - target) * torch.log(1 - p)).mean()
    if name == "mse":
        return ((output - target) ** 2).mean()
    if name == "mae":
        return (output - target).abs().mean()
    raise UsageError(
        f"expected a loss among sparse_categorical_crossentropy, categorical_crossentropy, "
        f"binary_crossentropy, mse, mae, received {name!r}"
    )


class Engine:
    """Executes optimizer steps for the neutral trainer (``archspec/trainer.py``).

    ``x``: the training inputs by name; ``y``: int64 labels (N,) for sparse
    cross-entropy, float one-hot (N, C) for categorical, float (N, 1) otherwise.
    ``compiled`` runs the forward pass and loss through ``torch.compile``. ``cluster``
    (an ``archspec.distributed.Cluster``, after ``distributed.join``): the loss runs through
    ``DistributedDataParallel``, which averages the gradients across workers, and batch
    normalisation uses the statistics of the global batch.
    """

    def __init__(
        self,
        model: TorchModel,
        *,
        x: Mapping[str, np.ndarray],
        y: np.ndarray,
        training: Training,
        compiled: bool = False,
        foreach: bool = True,
        cluster=None,
    ):
        graph = model.graph
        if not graph.heads:
            raise UsageError("training needs a model with one output (a head)")
        self.model = model
        self.module = model.native
        self.training = training
        self.head = graph.heads[0]
        arrays = model._as_input_dict(x)
        self.x = model.input_tensors(arrays)
        count = len(next(iter(self.x.values())))
        y = np.asarray(y)
        if len(y) != count:
            raise DataError(f"expected {count} targets (one per training sample), received {len(y)}")
        target_dtype = torch.int64 if training.loss == "sparse_categorical_crossentropy" else model.torch_dtype
        self.y = torch.as_tensor(y).to(device=model.device, dtype=target_dtype)
        self.trainable = model.trainable_slots()
        self.parameters = [tensor for _, tensor in self.trainable]
        by_name = {slot.canonical: tensor for slot, tensor in self.trainable}
        self.penalties = [
            (by_name[name], param.regularizer.l1, param.regularizer.l2)
            for name, param in graph.parameters.items()
            if param.regularizer is not None and (param.regularizer.l1 or param.regularizer.l2)
        ]
        self.optimizer = build_optimizer(training.optimizer, self.parameters, foreach=foreach)
        self.slots = slots(training.optimizer)
        self.compiled = compiled
        self._loss = torch.compile(self._forward_loss, dynamic=False) if compiled else self._forward_loss
        self.world_size = 1
        if cluster is not None:
            from torch.nn.parallel import DistributedDataParallel

            self.world_size = cluster.world_size
            for layer in self.module.modules():
                if isinstance(layer, BatchNorm):
                    layer.synchronized = True
            # DDP hooks the parameters of the module it wraps: the loss must run through its forward.
            # Buffers need no broadcast: synchronised statistics are the same on every worker.
            self._loss = DistributedDataParallel(_Objective(self), forward_sync_buffers=False)

    def unwrap(self) -> None:
        """Drop the ``DistributedDataParallel`` wrapper (and with it the process group)."""
        self._loss = self._forward_loss

    def _forward_loss(self, inputs: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        logits = self.module.tensors(inputs, (self.head.logits,))[self.head.logits]
        loss = batch_loss(self.training.loss, logits, target, self.head.from_logits)
        for tensor, l1, l2 in self.penalties:
            if l1:
                loss = loss + l1 * tensor.abs().sum()
            if l2:
                loss = loss + l2 * (tensor * tensor).sum()
        return loss

    def train_step(
        self, indices: np.ndarray, step: int, learning_rate: float, *, offset: int = 0, fraction: float = 1.0
    ) -> torch.Tensor:
        """One optimizer step on samples ``indices``; dropout uses masks of ``step`` (0-based).

        With workers: ``indices`` are this worker's share of the global batch, starting at
        position ``offset`` in it and making up ``fraction`` of it. Returns the share's mean
        loss (penalties included) as a 0-d tensor, without synchronising.
        """
        index = torch.as_tensor(indices, dtype=torch.int64).to(self.model.device, non_blocking=True)
        if not self.module.training:
            self.module.train()
        self.module.set_step(step, eager=not self.compiled, offset=offset)
        inputs = {name: tensor.index_select(0, index) for name, tensor in self.x.items()}
        loss = self._loss(inputs, self.y.index_select(0, index))
        self.optimizer.zero_grad(set_to_none=True)
        if self.world_size > 1:
            # DDP averages the workers' gradients; weighting each by world_size * its share
            # of the batch makes the average the gradient of the global batch's mean loss.
            (loss * (fraction * self.world_size)).backward()
        else:
            loss.backward()
        set_learning_rate(self.optimizer, learning_rate)
        self.optimizer.step()
        return loss.detach()

    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of ``values`` over all workers."""
        return distributed.all_reduce_sum(values, self.model.device)

    def losses_to_numpy(self, losses: list) -> np.ndarray:
        """Many step losses as one float64 array, with one device synchronisation."""
        if not losses:
            return np.zeros(0)
        return torch.stack(list(losses)).to(torch.float64).cpu().numpy()

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """``"{canonical parameter name}/{slot}"`` -> array in the canonical layout (zeros before any step)."""
        return {
            f"{slot.canonical}/{name}": layout.to_canonical(
                slot, read_slot(self.optimizer, tensor, name).detach().cpu().numpy()
            )
            for slot, tensor in self.trainable
            for name in self.slots
        }

    def load_optimizer_state(self, state: Mapping[str, np.ndarray], step: int) -> None:
        """Restore slots saved by :meth:`optimizer_state`, ``step`` optimizer updates into the run."""
        expected = {f"{slot.canonical}/{name}" for slot, _ in self.trainable for name in self.slots}
        if set(state) != expected:
            missing, unknown = sorted(expected - set(state)), sorted(set(state) - expected)
            raise UsageError(
                f"optimizer state does not fit this model and optimizer: missing {missing[:3]}, unknown {unknown[:3]}"
            )
        shapes = {name: param.shape for name, param in self.model.graph.parameters.items()}
        for slot, tensor in self.trainable:
            values = {}
            for name in self.slots:
                array = np.asarray(state[f"{slot.canonical}/{name}"])
                if array.shape != tuple(shapes[slot.canonical]):
                    raise UsageError(
                        f"optimizer slot '{slot.canonical}/{name}' expects shape "
                        f"{list(shapes[slot.canonical])}, received {list(array.shape)}"
                    )
                values[name] = torch.from_numpy(layout.to_native(slot, array))
            write_state(self.optimizer, tensor, values, step)

    def optimizer_step_only(self, grads: Mapping[str, np.ndarray], learning_rate: float, step: int) -> None:
        """Apply one optimizer update with given gradients (canonical layout); for tests.

        ``step`` (the 0-based index of this update) is accepted for symmetry with the
        TensorFlow engine; torch.optim counts its updates itself.
        """
        for slot, tensor in self.trainable:
            tensor.grad = torch.from_numpy(layout.to_native(slot, grads[slot.canonical])).to(
                tensor.device, tensor.dtype
            )
        set_learning_rate(self.optimizer, learning_rate)
        self.optimizer.step()


class _Objective(torch.nn.Module):
    """The engine's loss as a module, so DistributedDataParallel can wrap it."""

    def __init__(self, engine: Engine):
        super().__init__()
        self.graph = engine.module
        self._engine = [engine]  # a list: not a submodule, not a reference cycle in the module tree

    def forward(self, inputs: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return self._engine[0]._forward_loss(inputs, target)
