"""The JAX training engine (being written: branch jax-engine)."""

from __future__ import annotations

from typing import Any

from archspec.errors import BackendUnavailableError


class Engine:
    def __init__(self, model: Any, **options: Any) -> None:
        raise BackendUnavailableError("training: not yet available on the jax backend")
