"""The JAX backend: builds a spec's graph as a ``flax.nnx.Module`` (see ``model.py``).

Its names are imported on first use, so ``environment`` (the cluster variables, read by the
core before a framework loads) can be imported without importing JAX.
"""

from archspec.backend import lazy_names

__all__ = ["Engine", "GraphModule", "JaxModel", "build", "distributed"]

_MODULE_OF = {
    "Engine": "engine",
    "GraphModule": "model",
    "JaxModel": "model",
    "build": "model",
}
__getattr__ = lazy_names(__name__, _MODULE_OF)
