"""The convolution and pooling layers of the torch backend, 1-D and 2-D, on channels-last inputs.

torch's ops are channels-first: each layer permutes around its op and back, so the tensors
between layers keep the spec's axis order. Padding is TensorFlow's (``same``) or Keras'
(``causal``), applied explicitly where torch's own cannot express it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from archspec.definitions.padding import axis_padding
from archspec.graph import Node
from archspec.spec import layers as spec

from .context import BuildContext, parameter


def _paddings(node: Node, padding: str, kernel, strides, dilation) -> tuple[int, ...]:
    """F.pad's amounts for the node's spatial axes, last axis first: (left, right) for a
    sequence, (left, right, top, bottom) for an image."""
    sizes = node.input_shapes[0][:-1]
    amounts: tuple[int, ...] = ()
    for axis in reversed(range(len(sizes))):
        amounts += axis_padding(sizes[axis], kernel[axis], strides[axis], dilation[axis], padding)
    return amounts


class Convolution(nn.Module):
    """1-D or 2-D convolution of channels-last inputs; weight is (out, in, *kernel) as in
    ``nn.Conv1d`` / ``nn.Conv2d``. torch's own 'same' refuses strides and has no 'causal',
    so uneven padding is an explicit ``F.pad`` and only an even one goes to the convolution."""

    def __init__(self, context: BuildContext, node: Node):
        super().__init__()
        layer = node.layer_as(spec.Conv1D if node.type == "conv1d" else spec.Conv2D)
        kernel, self.stride, self.dilation = layer.kernel_sizes, layer.stride_sizes, layer.dilation_sizes
        self.rank = layer.rank
        in_channels = node.input_shapes[0][-1]
        self.weight = parameter(context, layer.filters, in_channels, *kernel)
        self.bias = parameter(context, layer.filters) if layer.use_bias else None
        pads = _paddings(node, layer.padding, kernel, self.stride, self.dilation)
        befores, afters = pads[::2][::-1], pads[1::2][::-1]  # per axis, first axis first
        self.symmetric = befores if befores == afters else (0,) * self.rank
        self.pad = None if befores == afters else pads
        # channels-last <-> channels-first
        self.to_first = (0, 2, 1) if self.rank == 1 else (0, 3, 1, 2)
        self.to_last = (0, 2, 1) if self.rank == 1 else (0, 2, 3, 1)
        self.convolve = F.conv1d if self.rank == 1 else F.conv2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(*self.to_first)  # for images a view with channels_last memory, which conv2d runs fast
        if self.pad is not None:
            x = F.pad(x, self.pad)
        y = self.convolve(x, self.weight, self.bias, self.stride, self.symmetric, self.dilation)
        return y.permute(*self.to_last)


class Pool(nn.Module):
    """Max or average pooling of channels-last sequences or images with TensorFlow's 'same'
    rule. A sequence is pooled as an image of height 1."""

    def __init__(self, node: Node, layer: spec.MaxPool1D | spec.AvgPool1D | spec.MaxPool2D | spec.AvgPool2D):
        super().__init__()
        self.mode = "max" if layer.type.startswith("max") else "avg"
        self.rank = layer.rank
        padding = _paddings(node, layer.padding, layer.pool_sizes, layer.stride_sizes, (1,) * self.rank)
        self.kernel = (1, *layer.pool_sizes) if self.rank == 1 else layer.pool_sizes
        self.stride = (1, *layer.stride_sizes) if self.rank == 1 else layer.stride_sizes
        self.pad = (*padding, 0, 0) if self.rank == 1 and any(padding) else (padding if any(padding) else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rank == 1:
            x = x.unsqueeze(1)
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
        y = y.permute(0, 2, 3, 1)
        return y.squeeze(1) if self.rank == 1 else y

    def extra_repr(self) -> str:
        return f"mode={self.mode}, kernel={self.kernel}, stride={self.stride}, pad={self.pad}"


class GlobalPool(nn.Module):
    """Mean or max over every spatial axis (steps; or height and width)."""

    def __init__(self, mode: str, rank: int):
        super().__init__()
        self.mode = mode
        self.dims = tuple(range(1, rank + 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            return self._masked(x, mask)
        if self.mode == "max":
            return x.amax(dim=self.dims)
        return x.mean(dim=self.dims)

    def _masked(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Over the valid steps of (batch, steps, channels) only; 0 for a sequence without any."""
        valid = mask.unsqueeze(-1)
        any_valid = valid.any(dim=1)
        if self.mode == "max":
            largest = x.masked_fill(~valid, -math.inf).amax(dim=1)
            return torch.where(any_valid, largest, torch.zeros_like(largest))
        total = torch.where(valid, x, torch.zeros_like(x)).sum(dim=1)
        count = valid.sum(dim=1).to(x.dtype)
        return torch.where(any_valid, total / count.clamp(min=1), torch.zeros_like(total))

    def extra_repr(self) -> str:
        return self.mode


class ZeroPadding(nn.Module):
    """Zeros before and after each spatial axis of a channels-last sequence or image."""

    def __init__(self, layer: spec.ZeroPadding1D | spec.ZeroPadding2D):
        super().__init__()
        # F.pad lists the last axis first: the channels (not padded), then the spatial axes backwards.
        self.pad = (0, 0, *(amount for pair in reversed(layer.amounts) for amount in pair))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad)

    def extra_repr(self) -> str:
        return f"pad={self.pad}"
