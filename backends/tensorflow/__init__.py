"""The TensorFlow / Keras 3 backend: ``build`` a spec's graph as a keras.Model, train it with ``Engine``.

Its names are imported on first use, so ``environment`` (``TF_CONFIG`` and the Keras check,
read by the core before a framework loads) can be imported without importing TensorFlow.
"""

from archspec.backend import lazy_names

__all__ = ["Engine", "TensorFlowModel", "build", "distributed"]

_MODULE_OF = {"Engine": "engine", "TensorFlowModel": "model", "build": "model"}
__getattr__ = lazy_names(__name__, _MODULE_OF)
