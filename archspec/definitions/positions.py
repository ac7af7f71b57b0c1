"""The fixed table of a sinusoidal position embedding (formula in ``docs/semantics.md``)."""

from __future__ import annotations

import numpy as np

from archspec.definitions.constants import SINUSOIDAL_WAVELENGTH


def sinusoidal_table(length: int, features: int) -> np.ndarray:
    """``(length, features)`` float64: for step t and feature c with i = c // 2,
    ``sin(t / W**(2i / features))`` where c is even and ``cos(...)`` where c is odd (W = 10000)."""
    steps = np.arange(length, dtype=np.float64)[:, None]
    pairs = 2 * (np.arange(features) // 2)
    angles = steps * np.power(SINUSOIDAL_WAVELENGTH, -pairs / features)
    return np.where(np.arange(features) % 2 == 0, np.sin(angles), np.cos(angles))
