"""What every torch layer builder needs besides the node, and the empty parameters they create.

Parameters are created empty in torch's layout; their values always come from
canonical weights (``layout.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class BuildContext:
    """What every builder needs besides the node: parameter dtype, device and the dropout seed."""

    dtype: torch.dtype
    device: torch.device
    seed: int


def parameter(context: BuildContext, *shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape, dtype=context.dtype, device=context.device))


def buffer(context: BuildContext, *shape: int) -> torch.Tensor:
    return torch.empty(shape, dtype=context.dtype, device=context.device)
