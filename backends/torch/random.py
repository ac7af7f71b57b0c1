"""Dropout keep masks from archspec's neutral hash, with torch int64 ops.

The op sequence is exactly ``archspec.random.hash32``; values stay in [0, 2**32)
between ops, so int64 never overflows and torch agrees with numpy bit for bit.
"""

from __future__ import annotations

import torch

from archspec import random as archspec_random
from archspec.random import MASK32, MULTIPLIER, SHIFT


def mix32(x: torch.Tensor) -> torch.Tensor:
    """``archspec.random.mix32`` on an int64 tensor of 32-bit values."""
    x = x ^ (x >> SHIFT)
    x = (x * MULTIPLIER) & MASK32
    x = x ^ (x >> SHIFT)
    x = (x * MULTIPLIER) & MASK32
    return x ^ (x >> SHIFT)


def layer_prefix(seed: int, layer: int) -> int:
    """The hash after folding in ``seed`` and ``layer``: a constant per dropout layer."""
    h = mix32(torch.tensor(seed, dtype=torch.int64) & MASK32)
    h = mix32(h ^ mix32(torch.tensor(layer, dtype=torch.int64) & MASK32))
    return int(h)


def element_hashes(count: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``mix32(element)`` for the elements 0..count-1 of one sample: a constant per layer."""
    return mix32(torch.arange(count, dtype=torch.int64, device=device))


def keep_mask(
    prefix: int, step: torch.Tensor | int, mixed_positions: torch.Tensor, mixed_elements: torch.Tensor, threshold: int
) -> torch.Tensor:
    """Boolean (batch, elements) mask: ``hash32(seed, layer, step, position, element) >= threshold``.

    ``prefix`` comes from :func:`layer_prefix`, ``mixed_positions`` (batch, 1) and
    ``mixed_elements`` from :func:`element_hashes`. ``step`` is a Python int (folded in on
    the host, the same integer ops) or an int64 scalar tensor (so a compiled step does not
    retrace for each step).
    """
    if isinstance(step, int):
        h = archspec_random.mix32(prefix ^ archspec_random.mix32(step & MASK32))
    else:
        h = mix32(prefix ^ mix32(step.to(torch.int64) & MASK32))
    h = mix32(h ^ mixed_positions)  # the per-sample prefix, on (batch, 1)
    return mix32(h ^ mixed_elements) >= threshold
