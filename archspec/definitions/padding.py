"""How much a convolution or pooling window pads each spatial axis (``docs/semantics.md``), for
the backends whose framework does not pad as Keras does."""

from __future__ import annotations

import math


def axis_padding(size: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple[int, int]:
    """(before, after) padding of one axis: none for 'valid'; TensorFlow's 'same' (the odd
    one after); 'causal' (Keras' 1-D mode) all of the window's reach before, none after."""
    if padding == "valid":
        return 0, 0
    span = (kernel - 1) * dilation + 1
    if padding == "causal":
        return span - 1, 0
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2
