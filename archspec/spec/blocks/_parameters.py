"""Block parameters: the types they may have, and a value checked against one."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from archspec.spec.blocks._locations import kind_of
from archspec.spec.common import written

PARAM_TYPES = ("int", "float", "str", "bool", "list")
"""The types a block parameter may have."""

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""What the name of a block, a parameter, a block input or an id inside a block is made of."""

_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "a boolean", "list": "a list"}


@dataclass(frozen=True)
class Param:
    """One parameter of a block: its type and, unless required, its default."""

    type: str
    required: bool
    default: Any = None


def check_value(kind: str, value: Any, *, allow_null: bool) -> tuple[Any, str | None]:
    """``value`` as a parameter of type ``kind`` (an integer becomes a float for ``float``), or an error."""
    if value is None:
        return (None, None) if allow_null else (None, f"expected {_TYPE_WORDS[kind]}, received null")
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value), None
        return None, f"expected a finite number, received {written(value)}"
    if kind == "str" and isinstance(value, str):
        return value, None
    if kind == "bool" and isinstance(value, bool):
        return value, None
    if kind == "list" and isinstance(value, list):
        return value, None
    shown = kind_of(value) if isinstance(value, (list, dict)) else written(value)
    return None, f"expected {_TYPE_WORDS[kind]}, received {shown}"
