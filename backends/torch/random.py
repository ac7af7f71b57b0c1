"""Dropout keep masks from archspec's neutral hash, with torch integer ops.

The op sequence is exactly ``archspec.random.hash32``. The per-layer, per-step and per-sample
parts run in int64 with values kept in [0, 2**32) between ops, so int64 never overflows; the
last mix, over every element of the batch, runs on the same 32 bits held in int32 (half the
memory traffic of int64; ``mix32_bits``), and torch agrees with numpy bit for bit.
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


LOW_BITS = (1 << (32 - SHIFT)) - 1
"""The bits a logical right shift by SHIFT keeps of a 32-bit value."""
SIGN = -(2**31)
"""The int32 with only the top bit set: XOR with it maps unsigned order onto signed order."""
if not 0 < MULTIPLIER < 2**31:  # an int32 scalar must hold it (it does: 0x45d9f3b)
    raise ValueError(f"expected a hash multiplier below 2**31, received {MULTIPLIER:#x}")


def as_bits32(x: torch.Tensor) -> torch.Tensor:
    """int64 values in [0, 2**32) as int32 holding the same 32 bits (two's complement)."""
    return (x - ((x >> 31) << 32)).to(torch.int32)


def mix32_bits(x: torch.Tensor) -> torch.Tensor:
    """``mix32`` on an int32 tensor holding 32-bit values' bits: int32 multiplication wraps modulo
    2**32 (what ``& MASK32`` does in int64), and the sign bits an arithmetic shift brings in are
    masked off, which makes it the logical shift of the unsigned value."""
    x = x ^ ((x >> SHIFT) & LOW_BITS)
    x = x * MULTIPLIER
    x = x ^ ((x >> SHIFT) & LOW_BITS)
    x = x * MULTIPLIER
    return x ^ ((x >> SHIFT) & LOW_BITS)


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
    if threshold > MASK32:  # rate 1: no 32-bit hash reaches 2**32
        return torch.zeros((h.shape[0], mixed_elements.shape[0]), dtype=torch.bool, device=h.device)
    # Over the whole batch in int32; unsigned >= is signed >= after flipping the top bit of both sides.
    hashes = mix32_bits(as_bits32(h) ^ as_bits32(mixed_elements))
    return (hashes ^ SIGN) >= threshold + SIGN
