"""The support matrix: which layer types each backend implements.

Generated from the backends' own builder registries (importing them, so the
frameworks are imported when this is called, not when archspec is imported).
The README's matrix is this function's output; a test keeps the two equal.
"""

from __future__ import annotations

import importlib

from archspec.backend import BACKENDS, load_backend
from archspec.graph import layer_types


def builders(backend: str) -> set[str]:
    """Layer types that ``backend`` (a name in the registry) has a builder for."""
    package = load_backend(backend)  # says what to install if the framework is missing
    module = importlib.import_module(f"{package.__name__}.layers")
    return set(module.BUILDERS)


def support_matrix() -> str:
    """A Markdown table: one row per layer type, one column per registered backend."""
    available = {backend: builders(backend) for backend in BACKENDS}
    lines = ["| layer type | " + " | ".join(BACKENDS) + " |", "|---|" + ":---:|" * len(BACKENDS)]
    for layer in layer_types():
        marks = ["yes" if layer in available[b] else "**no**" for b in BACKENDS]
        lines.append(f"| `{layer}` | " + " | ".join(marks) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(support_matrix())
