"""The torch training engine: one optimizer step on a batch the neutral trainer chose.

The training set lives on the model's device as one tensor per input; a step
receives sample indices and gathers its batch there, so no batch is copied from
the host. Losses stay tensors until the trainer asks for many at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from archspec.definitions.constants import EPSILON
from archspec.engine import Engine as BaseEngine
from archspec.errors import lookup
from archspec.layout import to_canonical, to_native
from archspec.spec.training import Training

from . import distributed
from .layers import BatchNorm
from .model import TorchModel
from .optimizers import build_optimizer, read_slot, set_learning_rate, write_state


def _log_probabilities(output: torch.Tensor, from_logits: bool) -> torch.Tensor:
    if from_logits:
        return torch.log_softmax(output, dim=1)  # subtracts the row maximum, as the reference does
    return torch.log(torch.clamp(output / output.sum(dim=1, keepdim=True), EPSILON, 1 - EPSILON))


def _sparse_categorical_crossentropy(output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    log_p = _log_probabilities(output, from_logits)
    return -log_p.gather(1, target.unsqueeze(1)).mean()


def _categorical_crossentropy(output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    target = target.reshape(output.shape)
    return -(target * _log_probabilities(output, from_logits)).sum(dim=1).mean()


def _binary_crossentropy(output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    target = target.reshape(output.shape)
    if from_logits:
        # max(z, 0) - z*y + log1p(exp(-|z|)), with the gradient sigmoid(z) - y everywhere
        # (differentiating the formula as written gives 1 - y at z = 0).
        return F.binary_cross_entropy_with_logits(output, target)
    p = torch.clamp(output, EPSILON, 1 - EPSILON)
    return (-target * torch.log(p) - (1 - target) * torch.log(1 - p)).mean()


def _mse(output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    return ((output - target.reshape(output.shape)) ** 2).mean()


def _mae(output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    return (output - target.reshape(output.shape)).abs().mean()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]] = {
    "sparse_categorical_crossentropy": _sparse_categorical_crossentropy,
    "categorical_crossentropy": _categorical_crossentropy,
    "binary_crossentropy": _binary_crossentropy,
    "mse": _mse,
    "mae": _mae,
}
"""Each loss of the spec, by the formulas of ``archspec/reference/losses.py``."""


def batch_loss(name: str, output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    """The mean loss ``name`` of a batch.

    ``target``: int64 labels (N,) for sparse categorical cross-entropy, else floats
    with as many elements as ``output``.
    """
    return lookup(LOSSES, name, "loss")(output, target, from_logits)


class Engine(BaseEngine):
    """Executes optimizer steps for the neutral trainer (``archspec/training/loop.py``); the
    checks, the targets' dtype and the optimizer state's names come from ``archspec.engine``.

    ``compiled`` runs the forward pass and loss through ``torch.compile``. ``foreach``
    selects torch.optim's multi-tensor implementations. ``cluster`` (an
    ``archspec.training.cluster.Cluster``, after ``distributed.join``): the loss runs through
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
        super().__init__(model, x=x, y=y, training=training)
        self.module = model.native
        self.x = model.input_tensors(self.inputs)
        self.y = torch.as_tensor(self.targets).to(device=model.device)
        self.trainable_parameters = model.trainable_slots()
        self.parameters = [tensor for _, tensor in self.trainable_parameters]
        by_name = {slot.canonical: tensor for slot, tensor in self.trainable_parameters}
        self.penalty_tensors = [(by_name[name], l1, l2) for name, l1, l2 in self.penalties]
        self.optimizer = build_optimizer(training.optimizer, self.parameters, foreach=foreach)
        self.compiled = compiled
        self._loss = torch.compile(self._forward_loss, dynamic=False) if compiled else self._forward_loss
        self.world_size = 1
        if cluster is not None:
            # Imported here: only a distributed run needs DDP.
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
        loss = batch_loss(self.loss, logits, target, self.from_logits)
        for tensor, l1, l2 in self.penalty_tensors:
            if l1:
                loss = loss + l1 * tensor.abs().sum()
            if l2:
                loss = loss + l2 * (tensor * tensor).sum()
        return loss

    def train_step(
        self, indices: np.ndarray, step: int, learning_rate: float, *, offset: int = 0, fraction: float = 1.0
    ) -> torch.Tensor:
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
        return distributed.all_reduce_sum(values, self.model.device)

    def _stack_losses(self, losses: list[torch.Tensor]) -> np.ndarray:
        return torch.stack(losses).to(torch.float64).cpu().numpy()

    def _read_optimizer_state(self) -> dict[str, np.ndarray]:
        return {
            f"{slot.canonical}/{name}": to_canonical(
                [slot], read_slot(self.optimizer, tensor, name).detach().cpu().numpy()
            )[slot.canonical]
            for slot, tensor in self.trainable_parameters
            for name in self.slot_names
        }

    def _write_optimizer_state(self, state: Mapping[str, np.ndarray], step: int) -> None:
        for slot, tensor in self.trainable_parameters:
            values = {
                name: torch.from_numpy(to_native([slot], {slot.canonical: state[f"{slot.canonical}/{name}"]}))
                for name in self.slot_names
            }
            write_state(self.optimizer, tensor, values, step)

    def optimizer_step_only(self, grads: Mapping[str, np.ndarray], learning_rate: float, step: int) -> None:
        # ``step`` is unused: torch.optim counts its updates itself.
        for slot, tensor in self.trainable_parameters:
            tensor.grad = torch.from_numpy(to_native([slot], grads)).to(tensor.device, tensor.dtype)
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
