"""The ids of the layers and block uses of a list, and the names of a use's copies (the prefixes
of their layers' ids)."""

from __future__ import annotations

from typing import Any


def layer_names(layers: list[Any], reserved: set[str]) -> list[str]:
    """The id of each layer of a list: as written, else the graph's default for a layer
    (``dense_1``: ``graph._default_ids``), else for a block use the block's name (then
    ``encoder_2``, ...), skipping names already taken by ``reserved`` or a use's copies."""
    names = [layer["id"] if isinstance(layer, dict) and isinstance(layer.get("id"), str) else "" for layer in layers]
    taken = {name for name, layer in zip(names, layers) if name and not is_use(layer)} | reserved
    counters: dict[str, int] = {}
    for k, layer in enumerate(layers):
        if names[k] or is_use(layer) or not isinstance(layer, dict):
            continue
        kind = str(layer.get("type"))
        while True:
            counters[kind] = counters.get(kind, 0) + 1
            candidate = f"{kind}_{counters[kind]}"
            if candidate not in taken:
                break
        taken.add(candidate)
        names[k] = candidate
    taken |= {name for name in names if name}
    taken |= {
        copy
        for name, layer in zip(names, layers)
        if name and is_use(layer)
        for copy in copy_names(name, repeat_count(layer))
    }
    for k, layer in enumerate(layers):
        if names[k] or not is_use(layer):
            continue
        base = str(layer.get("block"))
        candidate, number = base, 1
        while candidate in taken or any(copy in taken for copy in copy_names(candidate, repeat_count(layer))):
            number += 1
            candidate = f"{base}_{number}"
        taken |= {candidate, *copy_names(candidate, repeat_count(layer))}
        names[k] = candidate
    return names


def copy_names(use_id: str, repeat: int) -> tuple[str, ...]:
    """The prefix of each copy of a use: ``encoder`` once; ``encoder_1``, ``encoder_2``... when repeated."""
    if repeat <= 1:
        return (use_id,)
    return tuple(f"{use_id}_{k}" for k in range(1, repeat + 1))


def is_use(layer: Any) -> bool:
    """Whether a written layer is a block use."""
    return isinstance(layer, dict) and layer.get("type") == "block"


def repeat_count(layer: Any) -> int:
    """How many copies a use makes, as far as naming goes (a bad ``repeat`` is reported elsewhere)."""
    repeat = layer.get("repeat", 1) if isinstance(layer, dict) else 1
    return repeat if isinstance(repeat, int) and not isinstance(repeat, bool) and repeat >= 1 else 1
