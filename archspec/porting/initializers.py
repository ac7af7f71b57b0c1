"""Keras initializers (as Keras serialises them: plain data) -> the spec's ``Initializer``.

They only matter when an imported spec is trained from scratch (an import carries the
weights themselves); one archspec does not have keeps the spec's default, and the notes say so.
"""

from __future__ import annotations

from typing import Any

from archspec.spec.common import Initializer

_NAMED = {
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform",
    "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform",
    "LecunNormal": "lecun_normal",
    "Zeros": "zeros",
    "Ones": "ones",
}
# Options of each Keras class that the spec's initializer carries (Keras name -> spec name).
_OPTIONS = {
    "Orthogonal": ("orthogonal", {"gain": "gain"}),
    "Constant": ("constant", {"value": "value"}),
    "RandomUniform": ("uniform", {"minval": "minval", "maxval": "maxval"}),
    "RandomNormal": ("normal", {"mean": "mean", "stddev": "stddev"}),
}


def initializer(serialized: Any) -> Initializer | None:
    """The spec initializer of a serialised Keras one, or None when archspec has none like it."""
    if not isinstance(serialized, dict):
        return None
    class_name = serialized.get("class_name")
    config = serialized.get("config") or {}
    if not isinstance(config, dict) or config.get("input_axes") or config.get("output_axes"):
        return None
    if class_name in _NAMED:
        return Initializer.model_validate({"type": _NAMED[class_name]})
    if class_name in _OPTIONS:
        kind, options = _OPTIONS[class_name]
        values = {
            ours: config[theirs] for theirs, ours in options.items() if isinstance(config.get(theirs), (int, float))
        }
        return Initializer.model_validate({"type": kind, **{k: float(v) for k, v in values.items()}})
    return None


def initializer_fields(serialized: dict[str, Any], defaults: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Spec fields for the initializers that differ from the spec's ``defaults`` (field name ->
    default ``Initializer``), and the fields whose Keras initializer archspec does not have."""
    fields: dict[str, Any] = {}
    missing = []
    for name, value in serialized.items():
        found = initializer(value)
        if found is None:
            missing.append(name)
        elif found != defaults.get(name):
            fields[name] = found.model_dump(mode="json", exclude_defaults=True) | {"type": found.type}
    return fields, missing
