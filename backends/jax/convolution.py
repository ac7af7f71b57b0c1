"""Convolution and pooling layers of the JAX backend (being written: branch jax-conv)."""

from __future__ import annotations

from flax import nnx

from archspec.errors import BackendUnavailableError


class _Pending(nnx.Module):
    def __init__(self, *args: object, **kwargs: object):
        raise BackendUnavailableError(f"{type(self).__name__}: not yet available on the jax backend")


class Convolution(_Pending):
    pass


class Pool(_Pending):
    pass


class GlobalPool(_Pending):
    pass


class ZeroPadding(_Pending):
    pass
