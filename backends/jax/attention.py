"""Attention and position layers of the JAX backend (being written: branch jax-attn)."""

from __future__ import annotations

from flax import nnx

from archspec.errors import BackendUnavailableError


class _Pending(nnx.Module):
    def __init__(self, *args: object, **kwargs: object):
        raise BackendUnavailableError(f"{type(self).__name__}: not yet available on the jax backend")


class MultiHeadAttention(_Pending):
    pass


class PositionEmbedding(_Pending):
    pass
