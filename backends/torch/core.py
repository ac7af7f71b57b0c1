"""The core torch layers: dense, archspec's dropout (its mask from the neutral stream), flatten,
reshape, the mask-making embedding and masking, and the merges of several inputs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from archspec.random import keep_threshold

from . import random
from .context import BuildContext, parameter


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
