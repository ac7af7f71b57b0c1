"""Data-parallel workers on JAX's multi-process runtime (being written: branch jax-dist)."""

from __future__ import annotations

from typing import Any

from archspec.errors import BackendUnavailableError
from archspec.training.cluster import Cluster


def join(cluster: Cluster, device: str) -> Any:
    raise BackendUnavailableError("--workers: not yet available on the jax backend")


def leave(engine: Any) -> None:
    """Nothing to leave: ``join`` refuses."""
