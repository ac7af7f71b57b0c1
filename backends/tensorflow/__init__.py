"""The TensorFlow / Keras 3 backend: ``build`` a spec's graph as a keras.Model, train it with ``Engine``."""

from . import distributed
from .engine import Engine
from .model import TensorFlowModel, build

__all__ = ["Engine", "TensorFlowModel", "build", "distributed"]
