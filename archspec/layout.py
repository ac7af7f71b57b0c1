"""Where a canonical parameter lives in a native model (:class:`Slot`), and the conversions both ways.

Each backend's ``layout`` module says, per layer type and parameter name, which native
array holds the parameter and how its layout differs (``docs/layout.md``); the arithmetic
of moving values between the two layouts is the same for every backend, so it is here.
The conversions are linear (transposes, block swaps, rows), so they also convert
gradients and optimizer state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from archspec.errors import BackendUnavailableError

Entry = TypeVar("Entry")

Convert = Callable[[np.ndarray], np.ndarray]


def same(array: np.ndarray) -> np.ndarray:
    """The identity conversion: the native layout is the canonical one."""
    return array


@dataclass(frozen=True)
class Slot:
    """One canonical parameter and the native array that holds it.

    ``path`` leads from the node's native layer to the array by attribute names
    (``"weight_ih"``, ``"cell.bias"``, ``"forward_layer.cell.kernel"``). ``row`` is set
    when one native array holds several canonical parameters, one per row (Keras keeps
    a GRU's two biases as the rows of one ``(2, 3 * units)`` variable). ``to_native`` and
    ``to_canonical`` convert one parameter's array (its row, if ``row`` is set).
    """

    canonical: str  # "gru_1.recurrent_kernel"
    node: str  # the id of the node whose native layer holds the array
    path: str
    row: int | None = None
    trainable: bool = True
    to_native: Convert = same
    to_canonical: Convert = same

    def view(self, native):
        """This parameter's part of ``native`` (a value, gradient or optimizer state of the array)."""
        return native if self.row is None else native[self.row]


def table_entry(tables: Mapping[str, Mapping[str, Entry]], layer_type: str, name: str, backend: str) -> Entry:
    """A backend's layout entry for parameter ``name`` of ``layer_type``.

    Raises ``BackendUnavailableError`` naming the layer type, the parameter and the backend when
    the table has none, so a layer type added to the spec without its layout fails clearly.
    """
    entries = tables.get(layer_type)
    if entries is None:
        raise BackendUnavailableError(
            f"{layer_type}: no weight layout on backend '{backend}' (parameter '{name}'); "
            f"expected a layer type among {', '.join(tables)}, received '{layer_type}'"
        )
    if name not in entries:
        raise BackendUnavailableError(
            f"{layer_type}: no layout entry for '{name}' on backend '{backend}'; "
            f"expected one of {', '.join(entries)}, received '{name}'"
        )
    return entries[name]


def group_by_array(slots: Iterable[Slot]) -> list[list[Slot]]:
    """The slots that share one native array, each array once, in the order of its first slot."""
    groups: dict[tuple[str, str], list[Slot]] = {}
    for slot in slots:
        groups.setdefault((slot.node, slot.path), []).append(slot)
    return list(groups.values())


def to_native(group: Sequence[Slot], canonical: Mapping[str, np.ndarray]) -> np.ndarray:
    """One native array assembled from the canonical arrays of the slots it holds (a C-contiguous copy)."""
    if len(group) == 1 and group[0].row is None:
        slot = group[0]
        return np.array(slot.to_native(np.asarray(canonical[slot.canonical])), order="C")
    rows = sorted(group, key=lambda slot: -1 if slot.row is None else slot.row)
    if [slot.row for slot in rows] != list(range(len(rows))):
        raise ValueError(
            f"expected the slots of one native array to be its rows 0..{len(rows) - 1}, "
            f"received rows {[slot.row for slot in rows]} ({[slot.canonical for slot in rows]})"
        )
    return np.stack([np.asarray(slot.to_native(np.asarray(canonical[slot.canonical]))) for slot in rows])


def to_canonical(group: Sequence[Slot], native: np.ndarray) -> dict[str, np.ndarray]:
    """The canonical arrays held in one native array (C-contiguous copies: never the array's memory)."""
    native = np.asarray(native)
    return {slot.canonical: np.array(slot.to_canonical(slot.view(native)), order="C") for slot in group}
