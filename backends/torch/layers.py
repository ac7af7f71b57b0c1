"""One torch module per spec layer type, built from a graph node (``BUILDERS``).

Tensors between layers are channels-last, as in the spec: image layers permute to
channels-first around their torch op and back, so flatten and concatenate read the
spec's own axis order. Parameters are named as torch names them (``context.py``
creates them empty). The recurrent layers live in ``recurrent.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from archspec.errors import lookup
from archspec.graph import Node
from archspec.random import keep_threshold
from archspec.spec import layers as spec
from archspec.spec.common import as_pair

from . import random
from .context import BuildContext, buffer, parameter
from .recurrent import Bidirectional, Recurrent

# --- core -------------------------------------------------------------------------


class Dense(nn.Module):
    """``x @ weight.T + bias`` on the last axis (``nn.Linear``'s layout, without its random init)."""

    def __init__(self, context: BuildContext, in_features: int, units: int, use_bias: bool):
        super().__init__()
        self.weight = parameter(context, units, in_features)
        self.bias = parameter(context, units) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.weight.shape[1]}, units={self.weight.shape[0]}, bias={self.bias is not None}"


class Dropout(nn.Module):
    """Zeroes the units whose neutral hash falls below ``rate * 2**32``; identity in eval mode.

    ``forward`` takes the optimizer step (an int64 scalar tensor held by the model) and
    the position of the first sample in the global batch (non-zero on workers after the first).
    """

    element_hashes: torch.Tensor  # buffers (registered in __init__)
    position_hashes: torch.Tensor

    def __init__(self, context: BuildContext, rate: float, layer_index: int, sample_shape: tuple[int, ...]):
        super().__init__()
        self.rate = rate
        self.threshold = keep_threshold(rate)
        self.prefix = random.layer_prefix(context.seed, layer_index)
        # mix32(element) depends only on the sample shape: computed once, not per step.
        self.register_buffer(
            "element_hashes", random.element_hashes(math.prod(sample_shape), context.device), persistent=False
        )
        # mix32(position) for batch positions 0..n-1, grown on demand.
        self.register_buffer(
            "position_hashes", torch.zeros((0, 1), dtype=torch.int64, device=context.device), persistent=False
        )

    def forward(self, x: torch.Tensor, step: torch.Tensor | int, offset: int = 0) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        batch = x.shape[0]
        if self.position_hashes.shape[0] < offset + batch:
            positions = torch.arange(offset + batch, dtype=torch.int64, device=x.device).unsqueeze(1)
            self.position_hashes = random.mix32(positions)
        mixed = self.position_hashes[offset : offset + batch]
        keep = random.keep_mask(self.prefix, step, mixed, self.element_hashes, self.threshold)
        # Dividing first keeps the kept values bit-equal to the reference's x / (1 - rate).
        return (x / (1.0 - self.rate)) * keep.reshape(x.shape).to(x.dtype)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


class Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


# --- convolution and pooling --------------------------------------------------------


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: (before, after), the odd one after."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _paddings(node: Node, padding: str, kernel, strides, dilation) -> tuple[int, int, int, int]:
    """F.pad's (left, right, top, bottom) for the node's ``padding`` mode (its layer's)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    height, width = node.input_shapes[0][:2]
    top, bottom = _same_padding(height, kernel[0], strides[0], dilation[0])
    left, right = _same_padding(width, kernel[1], strides[1], dilation[1])
    return (left, right, top, bottom)


class Conv2D(nn.Module):
    """2-D convolution of channels-last images; weight is (out, in, kh, kw) as in ``nn.Conv2d``."""

    def __init__(self, context: BuildContext, node: Node):
        super().__init__()
        layer = node.layer_as(spec.Conv2D)
        kernel, self.stride, self.dilation = (
            as_pair(v) for v in (layer.kernel_size, layer.strides, layer.dilation_rate)
        )
        in_channels = node.input_shapes[0][-1]
        self.weight = parameter(context, layer.filters, in_channels, *kernel)
        self.bias = parameter(context, layer.filters) if layer.use_bias else None
        left, right, top, bottom = _paddings(node, layer.padding, kernel, self.stride, self.dilation)
        # Even padding goes to the convolution itself; only an odd total needs an explicit pad.
        self.symmetric = (top, left) if (top, left) == (bottom, right) else (0, 0)
        self.pad = None if (top, left) == (bottom, right) else (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)  # a view with channels_last memory, which conv2d runs fast
        if self.pad is not None:
            x = F.pad(x, self.pad)
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.symmetric, self.dilation)
        return y.permute(0, 2, 3, 1)


class Pool2D(nn.Module):
    """Max or average pooling of channels-last images with TensorFlow's 'same' rule."""

    def __init__(self, node: Node, mode: str):
        super().__init__()
        layer = node.layer_as(spec.MaxPool2D if mode == "max" else spec.AvgPool2D)
        self.mode = mode
        self.kernel = as_pair(layer.pool_size)
        self.stride = layer.stride_pair
        padding = _paddings(node, layer.padding, self.kernel, self.stride, (1, 1))
        self.pad = padding if any(padding) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        if self.mode == "max":
            if self.pad is not None:
                x = F.pad(x, self.pad, value=-math.inf)  # a padded position never wins
            y = F.max_pool2d(x, self.kernel, self.stride)
        elif self.pad is None:
            y = F.avg_pool2d(x, self.kernel, self.stride)
        else:
            # The mean over real positions only: window sums of x over window counts of ones.
            sums = F.avg_pool2d(F.pad(x, self.pad), self.kernel, self.stride, divisor_override=1)
            ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
            counts = F.avg_pool2d(F.pad(ones, self.pad), self.kernel, self.stride, divisor_override=1)
            y = sums / counts
        return y.permute(0, 2, 3, 1)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, kernel={self.kernel}, stride={self.stride}, pad={self.pad}"


class GlobalAvgPool2D(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2))


# --- normalisation ------------------------------------------------------------------


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


class Embedding(nn.Module):
    """Rows of ``weight`` (input_dim, output_dim) for integer ids."""

    def __init__(self, context: BuildContext, input_dim: int, output_dim: int):
        super().__init__()
        self.weight = parameter(context, input_dim, output_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids.long(), self.weight)

    def make_mask(self, ids: torch.Tensor) -> torch.Tensor:
        """``mask_zero``: the id 0 is padding (the row it looks up stays in the output)."""
        return ids != 0


class Masking(nn.Module):
    """Masks the steps whose features all equal ``mask_value`` and zeroes them (Keras' ``Masking``)."""

    def __init__(self, mask_value: float):
        super().__init__()
        self.mask_value = mask_value

    def make_mask(self, x: torch.Tensor) -> torch.Tensor:
        return (x != self.mask_value).any(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.make_mask(x).unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))

    def extra_repr(self) -> str:
        return f"mask_value={self.mask_value}"


# --- merges -------------------------------------------------------------------------


class Merge(nn.Module):
    """add / multiply / concatenate of several inputs (concatenate's axis is per sample)."""

    def __init__(self, mode: str, axis: int = -1):
        super().__init__()
        self.mode = mode
        self.axis = axis if axis < 0 else axis + 1  # skip the batch axis

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.mode == "concatenate":
            return torch.cat(inputs, dim=self.axis)
        result = inputs[0]
        for other in inputs[1:]:
            result = result + other if self.mode == "add" else result * other
        return result

    def extra_repr(self) -> str:
        return self.mode


# --- the registry -------------------------------------------------------------------


def _features(node: Node) -> int:
    return node.input_shapes[0][-1]


def _norm_options(layer: spec.BatchNorm | spec.LayerNorm) -> dict:
    return {"epsilon": layer.epsilon, "scale": layer.scale, "center": layer.center}


def _dense(node: Node, context: BuildContext) -> Dense:
    layer = node.layer_as(spec.Dense)
    return Dense(context, _features(node), layer.units, layer.use_bias)


def _batch_norm(node: Node, context: BuildContext) -> BatchNorm:
    layer = node.layer_as(spec.BatchNorm)
    return BatchNorm(context, _features(node), layer.momentum, **_norm_options(layer))


def _embedding(node: Node, context: BuildContext) -> Embedding:
    layer = node.layer_as(spec.Embedding)
    return Embedding(context, layer.input_dim, layer.output_dim)


Builder = Callable[[Node, BuildContext], nn.Module]

BUILDERS: dict[str, Builder] = {
    "dense": _dense,
    "activation": lambda node, c: nn.Identity(),  # the node's activation does the work
    "dropout": lambda node, c: Dropout(c, node.layer_as(spec.Dropout).rate, node.index, node.input_shapes[0]),
    "flatten": lambda node, c: Flatten(),
    "reshape": lambda node, c: Reshape(node.output_shape),
    "conv2d": lambda node, c: Conv2D(c, node),
    "maxpool2d": lambda node, c: Pool2D(node, "max"),
    "avgpool2d": lambda node, c: Pool2D(node, "avg"),
    "global_avgpool2d": lambda node, c: GlobalAvgPool2D(),
    "batch_norm": _batch_norm,
    "layer_norm": lambda node, c: LayerNorm(c, _features(node), **_norm_options(node.layer_as(spec.LayerNorm))),
    "embedding": _embedding,
    "masking": lambda node, c: Masking(node.layer_as(spec.Masking).mask_value),
    "simple_rnn": lambda node, c: Recurrent(c, node.layer_as(spec.SimpleRNN), _features(node)),
    "lstm": lambda node, c: Recurrent(c, node.layer_as(spec.LSTM), _features(node)),
    "gru": lambda node, c: Recurrent(c, node.layer_as(spec.GRU), _features(node)),
    "bidirectional": lambda node, c: Bidirectional(c, node),
    "add": lambda node, c: Merge("add"),
    "multiply": lambda node, c: Merge("multiply"),
    "concatenate": lambda node, c: Merge("concatenate", node.layer_as(spec.Concatenate).axis),
}


def build_layer(node: Node, context: BuildContext) -> nn.Module:
    """The torch module for ``node``; the error lists the layer types this backend knows."""
    return lookup(BUILDERS, node.type, "layer type", owner="the torch backend")(node, context)
