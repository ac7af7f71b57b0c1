"""The TensorFlow / Keras 3 backend: ``build`` a spec's graph as a keras.Model, train it with ``Engine``.

Its names are imported on first use, so ``environment`` (``TF_CONFIG`` and the Keras check,
read by the core before a framework loads) can be imported without importing TensorFlow.
"""

from importlib import import_module

__all__ = ["Engine", "TensorFlowModel", "build", "distributed"]

_MODULE_OF = {"Engine": "engine", "TensorFlowModel": "model", "build": "model"}


def __getattr__(name: str):
    if name == "distributed":
        return import_module(f"{__name__}.distributed")
    if name in _MODULE_OF:
        return getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
