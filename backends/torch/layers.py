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

from archspec.definitions.positions import sinusoidal_table
from archspec.errors import lookup
from archspec.graph import Node
from archspec.random import keep_threshold
from archspec.spec import layers as spec

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


def _axis_padding(size: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """(before, after) padding of one axis: none for 'valid'; TensorFlow's 'same' (the odd
    one after); 'causal' (Keras' 1-D mode) all of the window's reach before, none after."""
    if padding == "valid":
        return 0, 0
    span = (kernel - 1) * dilation + 1
    if padding == "causal":
        return span - 1, 0
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _paddings(node: Node, padding: str, kernel, strides, dilation) -> tuple[int, ...]:
    """F.pad's amounts for the node's spatial axes, last axis first: (left, right) for a
    sequence, (left, right, top, bottom) for an image."""
    sizes = node.input_shapes[0][:-1]
    amounts: tuple[int, ...] = ()
    for axis in reversed(range(len(sizes))):
        amounts += _axis_padding(sizes[axis], kernel[axis], strides[axis], dilation[axis], padding)
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


# --- attention and positions --------------------------------------------------------


class MultiHeadAttention(nn.Module):
    """Keras' multi-head attention (``archspec.spec.layers.MultiHeadAttention``) on batch-first
    sequences. The four projections are ``Dense`` modules (``query``, ``key``, ``value``,
    ``output``: torch's (out, in) weights); dropout on the attention weights is archspec's
    ``Dropout`` on the (heads, query steps, key steps) weights of each sample.

    ``forward(query, value=None, key=None, *, step, offset)``; ``allowed`` is the
    (query steps, key steps) boolean buffer of the keys each query may attend to (causal),
    or None for all: a key mask combines with it by "and".
    """

    allowed: torch.Tensor | None  # a buffer (registered in __init__)

    def __init__(self, context: BuildContext, node: Node):
        super().__init__()
        layer = node.layer_as(spec.MultiHeadAttention)
        shapes = node.input_shapes
        query_shape = shapes[0]
        value_shape = shapes[1] if len(shapes) > 1 else query_shape
        key_shape = shapes[2] if len(shapes) > 2 else value_shape
        self.heads, self.key_dim, self.value_dim = layer.num_heads, layer.key_dim, layer.value_size
        output_dim = node.output_shape[-1]
        bias = layer.use_bias
        self.query = Dense(context, query_shape[-1], self.heads * self.key_dim, bias)
        self.key = Dense(context, key_shape[-1], self.heads * self.key_dim, bias)
        self.value = Dense(context, value_shape[-1], self.heads * self.value_dim, bias)
        self.output = Dense(context, self.heads * self.value_dim, output_dim, bias)
        weights_shape = (self.heads, query_shape[0], key_shape[0])
        self.attention_dropout = Dropout(context, layer.dropout, node.index, weights_shape)
        allowed = None
        if layer.causal:
            allowed = torch.ones(weights_shape[1:], dtype=torch.bool, device=context.device).tril()
        self.register_buffer("allowed", allowed, persistent=False)

    def _heads(self, x: torch.Tensor, size: int) -> torch.Tensor:
        """(N, T, heads * size) -> (N, heads, T, size)."""
        return x.reshape(x.shape[0], x.shape[1], self.heads, size).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        value: torch.Tensor | None = None,
        key: torch.Tensor | None = None,
        *,
        step: torch.Tensor | int = 0,
        offset: int = 0,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        value = query if value is None else value
        key = value if key is None else key
        q = self._heads(self.query(query), self.key_dim)
        k = self._heads(self.key(key), self.key_dim)
        v = self._heads(self.value(value), self.value_dim)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.key_dim)
        if mask is None:
            if self.allowed is not None:
                scores = scores.masked_fill(~self.allowed, -math.inf)
            weights = torch.softmax(scores, dim=-1)
        else:
            # The key's mask (batch, key steps): masked keys are never attended to, and a query
            # allowed no key gets zero weights (its row is made finite first, so no NaN flows back).
            allowed = mask[:, None, None, :]
            if self.allowed is not None:
                allowed = allowed & self.allowed
            sees = allowed.any(dim=-1, keepdim=True)
            scores = scores.masked_fill(~allowed, -math.inf).masked_fill(~sees, 0.0)
            weights = torch.where(sees, torch.softmax(scores, dim=-1), torch.zeros_like(scores))
        weights = self.attention_dropout(weights, step, offset)
        attended = (weights @ v).transpose(1, 2)
        return self.output(attended.reshape(attended.shape[0], attended.shape[1], self.heads * self.value_dim))

    def extra_repr(self) -> str:
        return (
            f"heads={self.heads}, key_dim={self.key_dim}, value_dim={self.value_dim}, causal={self.allowed is not None}"
        )


class PositionEmbedding(nn.Module):
    """``x + table[:steps]``: a learned ``weight`` (max_length, features) or the fixed sinusoidal table."""

    table: torch.Tensor | None  # a buffer (registered in __init__)

    def __init__(self, context: BuildContext, node: Node):
        super().__init__()
        layer = node.layer_as(spec.PositionEmbedding)
        steps, features = node.input_shapes[0]
        self.steps = steps
        self.weight = parameter(context, layer.max_length, features) if layer.kind == "learned" else None
        table = None
        if layer.kind == "sinusoidal":
            table = torch.from_numpy(sinusoidal_table(steps, features)).to(context.dtype).to(context.device)
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = self.weight[: self.steps] if self.weight is not None else self.table
        if table is None:  # never: __init__ sets one of the two
            raise RuntimeError("position_embedding has neither a learned nor a sinusoidal table")
        return x + table


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

STEP_READERS = (Dropout, MultiHeadAttention)
"""Modules whose ``forward`` also takes ``step=`` (the optimizer step) and ``offset=`` (the first
sample's position in the global batch): their dropout masks depend on both."""

BUILDERS: dict[str, Builder] = {
    "dense": _dense,
    "activation": lambda node, c: nn.Identity(),  # the node's activation does the work
    "dropout": lambda node, c: Dropout(c, node.layer_as(spec.Dropout).rate, node.index, node.input_shapes[0]),
    "flatten": lambda node, c: Flatten(),
    "reshape": lambda node, c: Reshape(node.output_shape),
    "conv1d": lambda node, c: Convolution(c, node),
    "conv2d": lambda node, c: Convolution(c, node),
    "maxpool1d": lambda node, c: Pool(node, node.layer_as(spec.MaxPool1D)),
    "avgpool1d": lambda node, c: Pool(node, node.layer_as(spec.AvgPool1D)),
    "maxpool2d": lambda node, c: Pool(node, node.layer_as(spec.MaxPool2D)),
    "avgpool2d": lambda node, c: Pool(node, node.layer_as(spec.AvgPool2D)),
    "global_avgpool1d": lambda node, c: GlobalPool("avg", 1),
    "global_maxpool1d": lambda node, c: GlobalPool("max", 1),
    "global_avgpool2d": lambda node, c: GlobalPool("avg", 2),
    "global_maxpool2d": lambda node, c: GlobalPool("max", 2),
    "batch_norm": _batch_norm,
    "layer_norm": lambda node, c: LayerNorm(c, _features(node), **_norm_options(node.layer_as(spec.LayerNorm))),
    "embedding": _embedding,
    "masking": lambda node, c: Masking(node.layer_as(spec.Masking).mask_value),
    "simple_rnn": lambda node, c: Recurrent(c, node.layer_as(spec.SimpleRNN), _features(node)),
    "lstm": lambda node, c: Recurrent(c, node.layer_as(spec.LSTM), _features(node)),
    "gru": lambda node, c: Recurrent(c, node.layer_as(spec.GRU), _features(node)),
    "bidirectional": lambda node, c: Bidirectional(c, node),
    "multi_head_attention": lambda node, c: MultiHeadAttention(c, node),
    "position_embedding": lambda node, c: PositionEmbedding(c, node),
    "add": lambda node, c: Merge("add"),
    "multiply": lambda node, c: Merge("multiply"),
    "concatenate": lambda node, c: Merge("concatenate", node.layer_as(spec.Concatenate).axis),
}


def build_layer(node: Node, context: BuildContext) -> nn.Module:
    """The torch module for ``node``; the error lists the layer types this backend knows."""
    return lookup(BUILDERS, node.type, "layer type", owner="the torch backend")(node, context)
