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
from .model import TorchModel
from .normalization import BatchNorm
from .optimizers import build_optimizer, read_slot, set_learning_rate, write_state


def _log_probabilities(output: torch.Tensor, from_logits: bool) -> torch.Tensor:
    if from_logits:
        return torch.log_softmax(output, dim=1)  # subtracts the row maximum, as the reference does
    return torch.log(torch.clamp(output / output.sum(dim=1, keepdim=True), EPSILON, 1 - EPSILON))


def _sparse_categorical_crossentropy(output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    return -_log_probabilities(output, from_logits).gather(1, target.unsqueeze(1))


def _categorical_crossentropy(output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    target = target.reshape(output.shape)
    return -(target * _log_probabilities(output, from_logits)).sum(dim=1)


def _binary_crossentropy(output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    target = target.reshape(output.shape)
    if from_logits:
        # max(z, 0) - z*y + log1p(exp(-|z|)), with the gradient sigmoid(z) - y everywhere
        # (differentiating the formula as written gives 1 - y at z = 0).
        return F.binary_cross_entropy_with_logits(output, target, reduction="none")
    p = torch.clamp(output, EPSILON, 1 - EPSILON)
    return -target * torch.log(p) - (1 - target) * torch.log(1 - p)


def _mse(output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    return (output - target.reshape(output.shape)) ** 2


def _mae(output: torch.Tensor, target: torch.Tensor, from_logits: bool) -> torch.Tensor:
    return (output - target.reshape(output.shape)).abs()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]] = {
    "sparse_categorical_crossentropy": _sparse_categorical_crossentropy,
    "categorical_crossentropy": _categorical_crossentropy,
    "binary_crossentropy": _binary_crossentropy,
    "mse": _mse,
    "mae": _mae,
}
"""Each loss of the spec by the formulas of ``archspec/reference/losses.py``: its terms, one
row per sample (the batch loss is their mean)."""


def batch_loss(
    name: str, output: torch.Tensor, target: torch.Tensor, from_logits: bool, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """The mean loss ``name`` of a batch; with ``weights`` (N,): ``sum(w * l) / N``, ``l`` each
    sample's loss (the mean of its terms), as Keras weights a loss.

    ``target``: int64 labels (N,) for sparse categorical cross-entropy, else floats
    with as many elements as ``output``.
    """
    terms = lookup(LOSSES, name, "loss")(output, target, from_logits)
    if weights is None:
        return terms.mean()
    per_sample = terms.reshape(len(terms), -1).mean(dim=1)
    return (weights * per_sample).sum() / len(terms)


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
        sample_weight: np.ndarray | None = None,
        gradient_norms: bool = False,
    ):
        super().__init__(model, x=x, y=y, training=training, sample_weight=sample_weight, gradient_norms=gradient_norms)
        self.module = model.native
        self.x = model.input_tensors(self.inputs)
        self.y = {name: torch.as_tensor(target).to(device=model.device) for name, target in self.targets.items()}
        self.w = None if self.sample_weight is None else torch.as_tensor(self.sample_weight).to(device=model.device)
        self.last_gradient_norm: torch.Tensor | None = None
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

    def _forward_loss(
        self, inputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``sum_o weight_o * loss_o`` over the outputs (in the spec's order), plus the penalties."""
        logits = self.module.tensors(inputs, tuple(objective.head.logits for objective in self.objectives))
        loss: torch.Tensor | None = None
        for objective in self.objectives:
            head = objective.head
            term = batch_loss(objective.loss, logits[head.logits], targets[objective.output], head.from_logits, weights)
            if objective.weight != 1.0:
                term = term * objective.weight
            loss = term if loss is None else loss + term
        assert loss is not None, "a model has at least one output"
        for tensor, l1, l2 in self.penalty_tensors:
            if l1:
                loss = loss + l1 * tensor.abs().sum()
            if l2:
                loss = loss + l2 * (tensor * tensor).sum()
        return loss

    def train_step(
        self, indices: np.ndarray, step: int, learning_rate: float, *, offset: int = 0, fraction: float = 1.0
    ) -> torch.Tensor:
        return self._step([(indices, offset, fraction)], step, learning_rate)[1]

    def train_parts(self, parts, step: int, learning_rate: float) -> torch.Tensor:
        return self._step(parts, step, learning_rate)[0]

    def _step(self, parts, step: int, learning_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of fraction * mean loss over the parts, the last part's mean loss)."""
        if not self.module.training:
            self.module.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = loss = None
        for indices, offset, fraction in parts:
            index = torch.as_tensor(indices, dtype=torch.int64).to(self.model.device, non_blocking=True)
            self.module.set_step(step, eager=not self.compiled, offset=offset)
            inputs = {name: tensor.index_select(0, index) for name, tensor in self.x.items()}
            weights = None if self.w is None else self.w.index_select(0, index)
            targets = {name: target.index_select(0, index) for name, target in self.y.items()}
            loss = self._loss(inputs, targets, weights)
            # Gradients add up in .grad over the parts. With workers DDP averages them, so
            # world_size * share makes the average the gradient of the global batch's mean loss.
            scale = fraction * self.world_size
            (loss if scale == 1.0 else loss * scale).backward()
            share = loss.detach() if fraction == 1.0 else loss.detach() * fraction
            total = share if total is None else total + share
        assert total is not None and loss is not None, "a step needs at least one part"
        self._clip()
        set_learning_rate(self.optimizer, learning_rate)
        self.optimizer.step()
        return total, loss.detach()

    def _clip(self) -> None:
        """clip_value, then clip_norm, on the step's (global) gradient; measures its norm first."""
        grads = [tensor.grad for tensor in self.parameters if tensor.grad is not None]
        if self.gradient_norms:
            self.last_gradient_norm = _global_norm(grads)
        if self.clip_value is not None:
            for grad in grads:
                grad.clamp_(-self.clip_value, self.clip_value)
        if self.clip_norm is not None:
            norm = _global_norm(grads) if self.clip_value is not None else self.last_gradient_norm
            assert norm is not None
            factor = self.clip_norm / torch.clamp(norm, min=self.clip_norm)
            for grad in grads:
                grad.mul_(factor)

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
        self._clip()
        set_learning_rate(self.optimizer, learning_rate)
        self.optimizer.step()


class _Objective(torch.nn.Module):
    """The engine's loss as a module, so DistributedDataParallel can wrap it."""

    def __init__(self, engine: Engine):
        super().__init__()
        self.graph = engine.module
        self._engine = [engine]  # a list: not a submodule, not a reference cycle in the module tree

    def forward(
        self, inputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self._engine[0]._forward_loss(inputs, targets, weights)


def _global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """sqrt(sum over the gradients of sum g**2), as the reference's ``global_norm``."""
    return torch.sqrt(torch.stack([(grad * grad).sum() for grad in grads]).sum())
