"""The normalisation layers of the torch backend: batch_norm with Keras' momentum (and global-batch
statistics under a distributed engine) and layer_norm, both over the last axis."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .context import BuildContext, buffer, parameter


class BatchNorm(nn.Module):
    """Batch normalisation over the last axis with Keras' meaning of ``momentum``.

    Training: batch mean and biased variance; ``running = momentum * running +
    (1 - momentum) * batch_statistic`` (torch's own batch_norm uses the unbiased
    variance there and the opposite momentum, hence this module). Eval: running statistics.
    With ``synchronized`` (set by a distributed engine) the statistics are those of the
    global batch: sums all-reduced across workers, in the same two passes.
    """

    synchronized = False
    running_mean: torch.Tensor  # buffers (registered in __init__)
    running_var: torch.Tensor

    def __init__(
        self, context: BuildContext, channels: int, momentum: float, epsilon: float, scale: bool, center: bool
    ):
        super().__init__()
        self.momentum, self.epsilon = momentum, epsilon
        self.weight = parameter(context, channels) if scale else None
        self.bias = parameter(context, channels) if center else None
        self.register_buffer("running_mean", buffer(context, channels))
        self.register_buffer("running_var", buffer(context, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            if self.synchronized:
                mean, var = _global_moments(x)
            else:
                var, mean = torch.var_mean(x, dim=tuple(range(x.dim() - 1)), correction=0)
            with torch.no_grad():
                self.running_mean.copy_(self.momentum * self.running_mean + (1 - self.momentum) * mean)
                self.running_var.copy_(self.momentum * self.running_var + (1 - self.momentum) * var)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean) / torch.sqrt(var + self.epsilon)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return f"{self.running_mean.shape[0]}, momentum={self.momentum}, epsilon={self.epsilon}"


class _AllReduceSum(torch.autograd.Function):
    """Sum over all workers; the gradient of every worker's input is the sum of the
    workers' upstream gradients (each worker's loss depends on every worker's input)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, upstream: torch.Tensor) -> torch.Tensor:
        total = upstream.contiguous().clone()
        dist.all_reduce(total)
        return total


def _global_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance over every axis but the last, across all workers' batches.

    Two passes, as on one worker: the mean from the summed sums and counts, then the
    variance from the summed squared deviations. The all-reduce differentiates (its
    backward sums the workers' upstream gradients), so gradients flow across workers.
    """
    all_reduce = _AllReduceSum.apply
    dims = tuple(range(x.dim() - 1))
    count = x.new_full((1,), x.numel() // x.shape[-1])
    totals = all_reduce(torch.cat([x.sum(dims), count]))
    n = totals[-1]
    mean = totals[:-1] / n
    var = all_reduce(((x - mean) ** 2).sum(dims)) / n
    return mean, var


class LayerNorm(nn.Module):
    """Layer normalisation over the last axis (biased variance)."""

    def __init__(self, context: BuildContext, channels: int, epsilon: float, scale: bool, center: bool):
        super().__init__()
        self.epsilon = epsilon
        self.weight = parameter(context, channels) if scale else None
        self.bias = parameter(context, channels) if center else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.epsilon)
